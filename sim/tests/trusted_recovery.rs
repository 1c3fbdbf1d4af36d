//! Log recovery that trusts the segments below its recovery point (`cluster.verify_on_open
//! = false`, Kafka's way) with small segments (`cluster.segment_kib`), under disk faults
//! at rest: the trusted path runs, and what a disk corrupted below the recovery point
//! stays in the recovered log. The model knows that configuration does not promise a
//! recovered prefix (`recovered-prefix`), so `recovery-prefix` is an allowed anomaly,
//! never a violation; verifying everything on open promises it again. Found by putting
//! both settings on config-swarm's menus: before, no run had a second segment, and the
//! trusted path never ran under faults.

use logjam_sim::run::{RunVerdict, run_seed};
use logjam_sim::scenario::Scenario;

fn scenario(verify_on_open: bool) -> Scenario {
    let text = format!(
        r#"
name = "trusted-recovery"
system = "log-cluster"
[cluster]
brokers = 3
partitions = 1
replication_factor = 3
min_insync_replicas = 2
acks = "all"
flush = "every-batch"
verify_on_open = {verify_on_open}
segment_kib = 16
[workload]
producers = 3
consumers = 1
ops_per_s = 300
[faults]
crash = {{ every = ["200ms", "600ms"], down_for = ["20ms", "200ms"], max_down = 1 }}
disk = {{ kinds = ["bit-rot", "batch-header", "misdirect-write"], every = ["200ms", "800ms"], nodes = 1 }}
[phases]
chaos = "6s"
quiet = "4s"
[expect]
all_hold = true
"#
    );
    Scenario::parse(&text, "trusted-recovery.toml").expect("the scenario checks")
}

#[test]
fn a_trusting_recovery_keeps_corruption_at_rest_as_an_allowed_anomaly_never_a_violation() {
    let trusting = scenario(false);
    let (mut trusted, mut seen) = (0, 0);
    for seed in 0..40 {
        let run = run_seed(&trusting, seed, 0).0;
        assert_eq!(
            run.verdict(&trusting.expect),
            RunVerdict::Held,
            "seed {seed}: {:?}",
            run.violations().collect::<Vec<_>>()
        );
        trusted += run.reached.get("recovery-trusted").copied().unwrap_or(0);
        let check = run.checks.iter().find(|c| c.invariant == "recovery-prefix").expect("checked");
        seen += u64::from(check.expected_anomaly);
    }
    assert!(trusted > 0, "the trusted path ran");
    assert!(seen > 0, "corruption at rest kept by a trusting recovery was seen");
    // Verifying everything on open promises a recovered prefix again: no run may break it.
    let verifying = scenario(true);
    for seed in 0..20 {
        let run = run_seed(&verifying, seed, 0).0;
        assert_eq!(run.verdict(&verifying.expect), RunVerdict::Held, "seed {seed}");
        assert_eq!(run.reached.get("recovery-trusted").copied().unwrap_or(0), 0, "seed {seed}");
    }
}
