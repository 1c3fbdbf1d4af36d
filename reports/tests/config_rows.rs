//! A sweep of a scenario with menus says, per menu value, which corners of the space
//! its runs never reached.

use std::path::Path;

use logjam_reports::report::config_rows;
use logjam_sim::run::{SweepResult, run_seed};
use logjam_sim::scenario::Scenario;

#[test]
fn each_menu_value_names_the_coverage_items_its_runs_never_reached() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/config-swarm.toml");
    let scenario = Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"));
    let runs: Vec<_> = (0..40).map(|seed| run_seed(&scenario, seed, 0).0).collect();
    let sweep = SweepResult::judge(&scenario, 0, &runs);
    let rows = config_rows(&sweep);
    let row = |value: &str| {
        rows.iter().find(|row| row.value == value).unwrap_or_else(|| panic!("no row {value}"))
    };
    // Without long polls a leader never holds a fetch; with them the sweep did.
    let polled = row("cluster.replica_fetch_wait=20ms");
    let unpolled = row("cluster.replica_fetch_wait=0ms");
    assert!(polled.runs > 0 && unpolled.runs > 0);
    assert!(!polled.not_reached.contains(&"long-poll-wait".to_owned()), "{polled:?}");
    assert!(unpolled.not_reached.contains(&"long-poll-wait".to_owned()), "{unpolled:?}");
    // One replica never changes its ISR.
    let single = row("cluster.replication_factor=1");
    assert!(single.not_reached.contains(&"isr-shrink".to_owned()), "{single:?}");
    // Every item named is one the sweep reached, and no run of the value did.
    for row in &rows {
        for item in &row.not_reached {
            assert!(sweep.coverage.get(item).is_some_and(|&runs| runs > 0), "{item}");
        }
    }
}
