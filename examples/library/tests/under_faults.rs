//! The library holds under crashes, partitions and disk faults: the first test a team
//! writes of its own code on logjam. One line says it (`assert_holds`); the rest shows
//! what else the suite gives: a report to keep as a snapshot, and proof the faults
//! struck.

use std::path::Path;

use library_loans::Library;
use logjam_sim::user::EsSuite;

fn suite() -> EsSuite {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/loans-under-faults.toml");
    EsSuite::load(Library, &scenario).unwrap_or_else(|error| panic!("{error}"))
}

/// Every event-store invariant, and the library's own, for seeds 0..40. On a failure
/// it panics with the seed, the invariant, the witness, the command that replays it
/// and the schedule shrunk, written under `target/logjam-regressions/`.
#[test]
fn loans_hold_under_crashes_partitions_and_disk_faults() {
    suite().assert_holds(0..40);
}

/// What a sweep decided, per invariant: reviewed once, then a change of verdict fails
/// the test (`cargo insta review` to accept one).
#[test]
fn the_sweep_report_is_reviewed() {
    insta::assert_snapshot!(suite().report(0..8));
}

/// The faults the scenario names reached the runs: a pass under faults that never
/// struck would prove nothing.
#[test]
fn the_faults_struck() {
    let suite = suite();
    let mut reached = std::collections::BTreeMap::<String, u64>::new();
    for seed in 0..8 {
        for (item, count) in suite.run_seed(seed).reached {
            *reached.entry(item).or_default() += count;
        }
    }
    for item in ["crash", "partition", "disk-fault", "projection-restart"] {
        let count = reached.get(item).copied().unwrap_or(0);
        assert!(count > 0, "`{item}` never reached in seeds 0..8: {reached:?}");
    }
}

/// The schedules committed under `regressions/` (shrunk failures `assert_holds` wrote,
/// of bugs since fixed) replay as they say: a fixed bug stays fixed.
#[test]
fn committed_regressions_stay_fixed() {
    suite().assert_regressions(&Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions"));
}
