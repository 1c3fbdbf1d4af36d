//! Transactions in the simulated cluster, end to end: what the KIP-890 rules buy, and
//! what `read_uncommitted` consumers are told.

use std::path::{Path, PathBuf};

use logjam_broker::txn::TxnProtocol;
use logjam_sim::run::{run_schedule, run_seed};
use logjam_sim::scenario::{Scenario, System};
use logjam_sim::schedule_file::ScheduleFile;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The shrunk pre-KIP-890 failure (a produce held past its transaction's abort, then
/// taken for the next transaction's batch) replayed under each protocol: the same
/// faults and operations, and only the protocol decides whether it breaks.
#[test]
fn the_same_late_produce_breaks_only_the_legacy_protocol() {
    let path = repo("scenarios/regressions/txn-pre-kip-890.json");
    let (file, legacy) = ScheduleFile::load(&path).unwrap_or_else(|error| panic!("{error}"));
    let mut kip_890 = legacy.clone();
    let System::LogCluster(spec) = &mut kip_890.system else { panic!("a log cluster") };
    spec.txn.as_mut().expect("transactions").protocol = TxnProtocol::Kip890;
    for (scenario, breaks) in [(&legacy, true), (&kip_890, false)] {
        let (run, _) = run_schedule(scenario, &file.schedule, 0);
        let aborted_read =
            run.checks.iter().find(|check| check.invariant == "txn-aborted-read").expect("judged");
        assert_eq!(
            !aborted_read.holds || aborted_read.expected_anomaly,
            breaks,
            "{:?}: {:?}",
            spec_protocol(scenario),
            aborted_read.witness
        );
        if !breaks {
            let broken: Vec<_> = run.violations().map(|c| c.invariant).collect();
            assert!(broken.is_empty(), "KIP-890 broke {broken:?}");
            let seen: Vec<_> =
                run.checks.iter().filter(|c| c.expected_anomaly).map(|c| c.invariant).collect();
            assert!(seen.iter().all(|name| *name == "dirty-read"), "KIP-890 showed {seen:?}");
        }
    }
}

fn spec_protocol(scenario: &Scenario) -> Option<TxnProtocol> {
    match &scenario.system {
        System::LogCluster(spec) => spec.txn.as_ref().map(|txn| txn.protocol),
        System::GossipCounter { .. } => None,
    }
}

/// A `read_uncommitted` consumer reads records of transactions that later abort: the
/// verdict says so as an expected dirty read, and holds.
#[test]
fn dirty_reads_of_read_uncommitted_consumers_are_expected_not_violations() {
    let scenario = Scenario::load(&repo("scenarios/txn-faults.toml")).unwrap();
    let mut dirty = 0;
    for seed in 1..=4 {
        let run = run_seed(&scenario, seed, 0).0;
        let broken: Vec<_> = run.violations().map(|c| c.invariant).collect();
        assert!(broken.is_empty(), "seed {seed} broke {broken:?}");
        let check = run.checks.iter().find(|c| c.invariant == "dirty-read").expect("judged");
        assert!(check.holds, "a dirty read is never a violation");
        dirty += u32::from(check.expected_anomaly);
    }
    assert!(dirty > 0, "no seed read an aborted record uncommitted: the test lost its point");
}

/// Exactly-once projections: bank-transactions holds, and the same runs with each
/// projection committing its position in a transaction after its output's (the weak
/// setup) are caught: a crash between the two counts a batch twice, which the log's
/// `exactly-once` (input ranges committed twice) and the event store's checks of the
/// read models (projection equivalence, money at the projections' cuts, and progress:
/// a double-counted debit can leave a balance the next event cannot take) see.
#[test]
fn projections_commit_their_position_with_their_output_or_are_caught() {
    let scenario = Scenario::load(&repo("scenarios/bank-transactions.toml")).unwrap();
    let mut weak = scenario.clone();
    let System::LogCluster(spec) = &mut weak.system else { panic!("a cluster") };
    spec.txn.as_mut().expect("transactions").offsets_in_txn = false;
    let symptoms =
        ["exactly-once", "projection-equivalence", "money-conservation", "projection-progress"];
    let mut caught = 0;
    for seed in 0..8 {
        let strong = run_seed(&scenario, seed, 0).0;
        let broken: Vec<_> = strong.violations().map(|c| c.invariant).collect();
        assert!(broken.is_empty(), "seed {seed}: exactly-once projections broke {broken:?}");
        let run = run_seed(&weak, seed, 0).0;
        let broken: Vec<_> = run.violations().map(|c| c.invariant).collect();
        assert!(broken.iter().all(|name| symptoms.contains(name)), "seed {seed}: {broken:?}");
        caught += usize::from(!broken.is_empty());
    }
    assert!(caught >= 3, "the weak projections were caught in only {caught} of 8 seeds");
}
