//! Every fault kind a scenario can script in `[[faults.at]]` strikes what it names: a
//! run of a small cluster with one scripted fault reaches the fault's coverage item,
//! and the cluster keeps its promises (all faults here are within the budget).

use logjam_sim::run::{RunVerdict, run_seed};
use logjam_sim::scenario::Scenario;

const BASE: &str = r#"
name = "scripted"
system = "log-cluster"

[cluster]
brokers = 3
partitions = 1
replication_factor = 3
min_insync_replicas = 2
acks = "all"

[workload]
producers = 2
consumers = 1
ops_per_s = 200

[faults]
swarm = false

FAULTS

[phases]
chaos = "3s"
quiet = "3s"

[expect]
all_hold = true
"#;

/// (what, the scripted faults, the coverage item they must reach)
const CASES: &[(&str, &str, &str)] = &[
    ("split", "time = \"1s\"\nkind = \"split\"\nnodes = [\"n0\"]", "partition"),
    (
        "one-way",
        "time = \"1s\"\nkind = \"one-way\"\nfrom = [\"n0\"]\nto = [\"n1\", \"n2\"]",
        "partition",
    ),
    (
        "cut",
        "time = \"1s\"\nkind = \"cut\"\nfrom = \"n0\"\nto = [\"n1\", \"n2\", \"n3\"]",
        "partition",
    ),
    (
        "clog",
        "time = \"1s\"\nkind = \"clog\"\nfrom = \"n0\"\nto = \"n1\"\nduration = \"300ms\"",
        "clog",
    ),
    (
        "burst",
        "time = \"1s\"\nkind = \"burst\"\nfrom = \"n0\"\nto = \"n1\"\nduration = \"500ms\"",
        "link-loss",
    ),
    (
        "lossy-link",
        "time = \"1s\"\nkind = \"lossy-link\"\nfrom = \"n1\"\nto = \"n0\"\nduration = \"1s\"\nprobability = 0.5",
        "link-loss",
    ),
    (
        "network-faults",
        "time = \"1s\"\nkind = \"network-faults\"\nprobability = 0.1\nduplicate = 0.1",
        "message-drop",
    ),
    (
        "torn-tail then a crash",
        "time = \"1s\"\nkind = \"disk\"\ntarget = \"n1\"\ndisk = \"torn-tail\"\n\n[[faults.at]]\ntime = \"1.5s\"\nkind = \"crash\"\ntarget = \"n1\"\n\n[[faults.at]]\ntime = \"1.8s\"\nkind = \"restart\"\ntarget = \"n1\"",
        "torn-tail",
    ),
    (
        "batch-header",
        "time = \"1.5s\"\nkind = \"disk\"\ntarget = \"n2\"\ndisk = \"batch-header\"\nfield = \"leader-epoch\"",
        "header-flip",
    ),
    ("leader-move", "time = \"1s\"\nkind = \"leader-move\"\npartition = 0", "leader-move"),
    (
        "checkpoint",
        "time = \"1.5s\"\nkind = \"disk\"\ntarget = \"n2\"\ndisk = \"checkpoint\"\nfile = \"leader-epochs\"",
        "checkpoint-flip",
    ),
];

#[test]
fn every_scripted_fault_kind_reaches_its_target() {
    let mut failures = Vec::new();
    for &(what, faults, item) in CASES {
        let text = BASE.replace("FAULTS", &format!("[[faults.at]]\n{faults}"));
        let scenario = Scenario::parse(&text, "scripted.toml")
            .unwrap_or_else(|error| panic!("{what}: {error}"));
        let (result, _) = run_seed(&scenario, 1, 0);
        let reached = result.reached.get(item).copied().unwrap_or(0);
        if reached == 0 {
            failures.push(format!("{what}: never reached `{item}`"));
        }
        if result.verdict(&scenario.expect) != RunVerdict::Held {
            failures.push(format!("{what}: {:?}", result.verdict(&scenario.expect)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_torn_tail_is_cut_by_recovery_and_the_recovered_log_checked() {
    let (_, faults, _) = CASES.iter().find(|case| case.0.starts_with("torn-tail")).unwrap();
    let text = BASE.replace("FAULTS", &format!("[[faults.at]]\n{faults}"));
    let scenario = Scenario::parse(&text, "scripted.toml").unwrap();
    let (result, _) = run_seed(&scenario, 1, 0);
    assert!(result.reached["recovery-truncation"] > 0, "recovery never cut the torn batch");
    assert!(result.reached["log-recovery"] > 0, "the recovered log was never checked");
    let check = result.checks.iter().find(|check| check.invariant == "recovery-prefix").unwrap();
    assert!(check.holds, "{check:?}");
}
