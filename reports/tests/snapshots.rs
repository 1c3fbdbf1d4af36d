//! Snapshot reports under review: one curated run of every catalogue scenario, its
//! Markdown report stored under `reports/snapshots/`. A change in behaviour (a message,
//! a timing, a fault, a verdict) changes a report and shows up as a diff to review
//! (`cargo insta review`); CI runs with `INSTA_UPDATE=no`, so an unreviewed change
//! fails the build.
//!
//! The curated run is seed 1 for a scenario that must hold, and the first seed that
//! shows the anomaly for one that expects it (so failing runs are snapshotted too).

use std::path::{Path, PathBuf};

use logjam_reports::report::RunReport;
use logjam_sim::run::{RunVerdict, replay_command, run_seed};
use logjam_sim::scenario::{Expect, Scenario};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn catalogue() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn load(name: &str) -> Scenario {
    // The path as a user types it from the repository root: it appears in the report.
    let relative = format!("scenarios/{name}.toml");
    let scenario = Scenario::load(&root().join(&relative)).unwrap();
    Scenario { path: relative, ..scenario }
}

/// The curated seed of a scenario.
fn curated_seed(scenario: &Scenario) -> u64 {
    match &scenario.expect {
        Expect::AllHold => 1,
        Expect::Violation { within_seeds, .. } => (0..*within_seeds)
            .find(|&seed| {
                run_seed(scenario, seed, 0).0.verdict(&scenario.expect)
                    == RunVerdict::ExpectedViolation
            })
            .expect("the expected anomaly shows within the scenario's budget"),
    }
}

fn report(scenario: &Scenario, seed: u64) -> String {
    let run = run_seed(scenario, seed, 0).0;
    RunReport::new(scenario, &run, &replay_command(scenario, seed)).markdown()
}

#[test]
fn every_catalogue_scenario_has_a_reviewed_report() {
    let names = catalogue();
    assert!(names.len() >= 15, "the catalogue shrank: {names:?}");
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(root().join("reports/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    let mut curated = Vec::new();
    settings.bind(|| {
        for name in &names {
            let scenario = load(name);
            let seed = curated_seed(&scenario);
            curated.push(format!("{name}-seed-{seed}.snap"));
            insta::assert_snapshot!(format!("{name}-seed-{seed}"), report(&scenario, seed));
        }
    });
    // A snapshot no curated run writes (a renamed scenario, a curated seed that moved,
    // an unreviewed `.snap.new`) would rot unseen: every file is one of this run's.
    let mut stale: Vec<String> = std::fs::read_dir(root().join("reports/snapshots"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|file| !curated.contains(file))
        .collect();
    stale.sort();
    assert!(stale.is_empty(), "snapshots no curated run writes (delete them): {stale:?}");
}

#[test]
fn a_report_is_the_same_every_time_and_a_changed_seed_changes_it() {
    let scenario = load("crash-restart-loop");
    let stored =
        std::fs::read_to_string(root().join("reports/snapshots/crash-restart-loop-seed-1.snap"))
            .expect("the reviewed snapshot of crash-restart-loop seed 1");
    // A snapshot file: a header between `---` lines, then the report.
    let stored_report = stored.splitn(3, "---\n").nth(2).unwrap().trim_end();
    assert_eq!(report(&scenario, 1).trim_end(), stored_report);
    let other = report(&scenario, 2);
    assert_ne!(other.trim_end(), stored_report, "seed 2 gives seed 1's report");
    // The difference is in what happened, not only in the seed's number.
    let body = |text: &str| {
        text.lines().skip_while(|line| !line.starts_with("## ")).collect::<Vec<_>>().join("\n")
    };
    assert_ne!(body(&other), body(stored_report));
}
