//! Every curated scenario, over a fixed seed range: deterministic, never flaky.
//! `LOGJAM_SEEDS=N` widens the range for a longer sweep (`LOGJAM_START=S` moves it).

use std::path::{Path, PathBuf};

use logjam_sim::run::{SweepResult, replay_command, run_seed};
use logjam_sim::scenario::Scenario;

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.parse().unwrap_or_else(|_| panic!("{name}={value} is not a number")))
}

fn catalogue() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 3, "the catalogue lost scenarios: {paths:?}");
    paths
}

fn load(path: &Path) -> Scenario {
    let mut scenario = Scenario::load(path).unwrap_or_else(|error| panic!("{error}"));
    scenario.path = format!("scenarios/{}", path.file_name().unwrap().to_string_lossy());
    scenario
}

/// One catalogue scenario over its fixed seed range: it meets its expectation, and its
/// world was busy.
fn meets_its_expectation(name: &str) {
    let start = env_u64("LOGJAM_START").unwrap_or(0);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{name}.toml"));
    let scenario = load(&path);
    // A scenario with configuration menus runs one configuration a seed: its coverage
    // minimums are over twice as many.
    let all_hold_seeds = if scenario.space.is_some() { 40 } else { 20 };
    let seeds = env_u64("LOGJAM_SEEDS").unwrap_or(match scenario.expect {
        logjam_sim::scenario::Expect::AllHold => all_hold_seeds,
        logjam_sim::scenario::Expect::Violation { within_seeds, .. } => within_seeds.max(20),
    });
    let runs: Vec<_> = (start..start + seeds).map(|seed| run_seed(&scenario, seed, 0).0).collect();
    let sweep = SweepResult::judge(&scenario, start, &runs);
    let failures: Vec<String> = sweep
        .unexpected
        .iter()
        .map(|f| {
            format!(
                "  seed {}: {}\n    trace hash {}\n    replay: {}\n    shrink: cargo run --release -p logjam -- shrink {} --seed {} -o {}-{}.json",
                f.seed,
                f.why,
                f.trace_hash.map_or("(none: it panicked)".to_owned(), |h| format!("{h:016x}")),
                replay_command(&scenario, f.seed),
                scenario.path,
                f.seed,
                scenario.name,
                f.seed
            )
        })
        .collect();
    assert!(
        sweep.passed(),
        "{}: {} of {seeds} seeds broke the expectation\n{}\n{}",
        scenario.name,
        sweep.unexpected.len(),
        failures.join("\n"),
        sweep.expected_violation_missing.unwrap_or_default()
    );
    // A sweep that did nothing would pass too: insist the world was busy.
    assert!(
        runs.iter().all(|run| run.stats.delivered > 0 && run.ops_started > 0),
        "{}: idle runs",
        scenario.name
    );
}

/// A test of its own for every catalogue scenario (`catalogue::NAME`), so that
/// `cargo nextest run --partition count:K/N` spreads them evenly over K runners.
/// `the_catalogue_lists_every_scenario_file` keeps the list equal to `scenarios/`.
macro_rules! catalogue_tests {
    ($($test:ident => $name:literal,)*) => {
        mod catalogue {
            $(
                #[test]
                fn $test() {
                    super::meets_its_expectation($name);
                }
            )*
        }
        const LISTED: &[&str] = &[$($name),*];
    };
}

catalogue_tests! {
    acks_1_leader_crash => "acks-1-leader-crash",
    bank_crash_restart => "bank-crash-restart",
    bank_no_expected_version => "bank-no-expected-version",
    bank_partitions => "bank-partitions",
    bank_projections => "bank-projections",
    bank_transactions => "bank-transactions",
    bank_transactions_read_uncommitted => "bank-transactions-read-uncommitted",
    cart_crash_restart => "cart-crash-restart",
    cdc_disk_faults => "cdc-disk-faults",
    clock_skew => "clock-skew",
    config_swarm => "config-swarm",
    config_swarm_es => "config-swarm-es",
    config_swarm_txn => "config-swarm-txn",
    crash_restart_loop => "crash-restart-loop",
    disk_faults => "disk-faults",
    disk_faults_one_broker => "disk-faults-one-broker",
    finer_faults => "finer-faults",
    flush_never_power_loss => "flush-never-power-loss",
    gossip_smoke => "gossip-smoke",
    inventory_partitions => "inventory-partitions",
    kip_101_swarm => "kip-101-swarm",
    kip_101_unclean_turns => "kip-101-unclean-turns",
    kip_279_unclean_turns => "kip-279-unclean-turns",
    last_replica_standing => "last-replica-standing",
    leader_failover => "leader-failover",
    legacy_truncation => "legacy-truncation",
    long_poll => "long-poll",
    min_isr_1 => "min-isr-1",
    min_isr_2_flush_never => "min-isr-2-flush-never",
    partition_storm => "partition-storm",
    partitions => "partitions",
    power_loss => "power-loss",
    pre_kip_966_swarm => "pre-kip-966-swarm",
    smoke => "smoke",
    txn_exactly_once => "txn-exactly-once",
    txn_faults => "txn-faults",
    txn_offsets_after_output => "txn-offsets-after-output",
    txn_pre_kip_890 => "txn-pre-kip-890",
    txn_smoke => "txn-smoke",
    unclean_election => "unclean-election",
    volatile_counter => "volatile-counter",
}

#[test]
fn the_catalogue_lists_every_scenario_file() {
    let mut files: Vec<String> = catalogue()
        .iter()
        .map(|path| path.file_stem().expect("a name").to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut listed = LISTED.to_vec();
    listed.sort_unstable();
    assert_eq!(files, listed, "add the new scenario to catalogue_tests! (or remove the old one)");
}

#[test]
fn a_thousand_seeds_replay_to_the_same_trace_hash() {
    let scenario =
        load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/gossip-smoke.toml"));
    let hashes: Vec<u64> =
        (0..1000).map(|seed| run_seed(&scenario, seed, 0).0.trace_hash).collect();
    for (seed, hash) in hashes.iter().enumerate() {
        let again = run_seed(&scenario, seed as u64, 0).0.trace_hash;
        assert_eq!(again, *hash, "seed {seed} did not replay to the same trace hash");
    }
    let mut distinct = hashes.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), hashes.len(), "two seeds gave the same trace");
}

#[test]
fn cluster_runs_replay_to_the_same_trace_hash_and_verdict() {
    // The fault-heaviest cluster scenario: crashes, pauses, clogs, drops, clock skew.
    let scenario =
        load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/crash-restart-loop.toml"));
    let runs: Vec<_> = (0..30).map(|seed| run_seed(&scenario, seed, 0).0).collect();
    for run in &runs {
        let again = run_seed(&scenario, run.seed, 0).0;
        assert_eq!(&again, run, "seed {} did not replay to the same run", run.seed);
    }
    let mut hashes: Vec<u64> = runs.iter().map(|run| run.trace_hash).collect();
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), runs.len(), "two seeds gave the same trace");
}

#[test]
fn keeping_the_trace_does_not_change_the_run() {
    let scenario = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.toml"));
    let (plain, none) = run_seed(&scenario, 7, 0);
    let (traced, kept) = run_seed(&scenario, 7, 50);
    assert_eq!(plain, traced);
    assert!(none.is_empty());
    assert_eq!(kept.len(), 50);
}

/// Seeds that found bugs in the broker and controller, replayed forever after. A seed's
/// fault and workload schedule depend only on the seed, so these keep hitting the same
/// crashes at the same times whatever the system does.
const FOUND_BUGS: &[(&str, u64, &str)] = &[
    (
        "crash-restart-loop",
        8,
        "truncation kept producer entries of removed batches: duplicate and lost write",
    ),
    (
        "crash-restart-loop",
        437,
        "a restarted follower's pre-crash progress put it back into the ISR",
    ),
    (
        "crash-restart-loop",
        865,
        "a restarted broker resumed the epoch its earlier life led: two logs, one epoch",
    ),
    (
        "crash-restart-loop",
        25,
        "the controller elected a just-proposed ISR member the leader did not count",
    ),
    ("crash-restart-loop", 6424, "a proposal whose answer was lost dropped out of the maximal ISR"),
    (
        "crash-restart-loop",
        4260,
        "a crash undid a follower's cut but kept later appends: a stale record under a new epoch",
    ),
    (
        "power-loss",
        79,
        "a recovered log was never flushed, so the leader's durable end lagged forever",
    ),
    ("power-loss", 253, "a follower joined the ISR with committed records only in memory"),
    ("txn-faults", 386, "an answer to the coordinator's previous life took a marker for done"),
    (
        "long-poll",
        780,
        "a duplicated produce refused as not appended after its first copy was: the sequence reused, an acknowledged write lost",
    ),
    ("long-poll", 1495, "a send refused as not appended whose duplicated first copy had landed"),
    (
        "txn-faults",
        9479,
        "a late answer to an earlier transaction's marker completed the next one's partition",
    ),
];

#[test]
fn seeds_that_found_bugs_hold() {
    for (name, seed, bug) in FOUND_BUGS {
        let scenario =
            load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{name}.toml")));
        let run = run_seed(&scenario, *seed, 0).0;
        let broken: Vec<String> =
            run.violations().map(|c| format!("{}: {:?}", c.invariant, c.witness)).collect();
        assert!(broken.is_empty(), "{name} seed {seed} ({bug}) is back: {broken:?}");
        assert!(run.limit.is_none(), "{name} seed {seed} hit a limit");
    }
}
