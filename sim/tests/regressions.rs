//! Every minimized failing schedule under `scenarios/regressions/` is replayed: an
//! anomaly a weak configuration allows must still be found (or the harness lost its
//! teeth), and a fixed bug must stay fixed. Also: a seed's schedule, written to a file
//! and read back, replays to the very same run.

use std::path::{Path, PathBuf};

use logjam_sim::run::{run_schedule, run_seed, schedule_for};
use logjam_sim::scenario::Scenario;
use logjam_sim::schedule_file::{self, Expectation, FORMAT, ScheduleFile};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

#[test]
fn every_regression_replays_as_expected() {
    let dir = repo("scenarios/regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios/regressions exists")
        .map(|entry| entry.expect("a readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the weak configurations' regressions are missing: {files:?}");
    let mut failures = Vec::new();
    for path in &files {
        let (file, scenario) = ScheduleFile::load(path).unwrap_or_else(|error| panic!("{error}"));
        let (run, _) = run_schedule(&scenario, &file.schedule, 0);
        if let Err(problem) = schedule_file::judge(&file, &run) {
            failures.push(format!(
                "{}: {problem}\n  trace hash {:016x}; replay: cargo run --release -p logjam -- replay --schedule {}",
                path.display(),
                run.trace_hash,
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_judge_fails_a_regression_that_stops_showing_its_anomaly_or_a_bug_that_returns() {
    // The smoke scenario holds on seed 0: as an "expected anomaly" file it must fail
    // (lost teeth); as a "holds" file it passes.
    let scenario = Scenario::load(&repo("scenarios/smoke.toml")).unwrap();
    let schedule = schedule_for(&scenario, 0);
    let (run, _) = run_schedule(&scenario, &schedule, 0);
    let mut file = ScheduleFile {
        format: FORMAT.to_owned(),
        scenario: "scenarios/smoke.toml".to_owned(),
        anomaly: "lost-write".to_owned(),
        expect: Expectation::Anomaly,
        note: String::new(),
        origin: None,
        schedule,
    };
    let lost = schedule_file::judge(&file, &run).unwrap_err();
    assert!(lost.contains("lost its teeth"), "{lost}");
    file.expect = Expectation::Holds;
    assert_eq!(schedule_file::judge(&file, &run), Ok(()));

    // The same file once a run breaks an invariant the configuration promises: the
    // bug is back.
    let mut broken = run.clone();
    let check = broken.checks.iter_mut().find(|c| c.invariant == "lost-write").unwrap();
    check.holds = false;
    check.witness =
        Some("`v1` was acknowledged at offset 1, which n0 has committed without it".into());
    let back = schedule_file::judge(&file, &broken);
    assert!(
        back.as_ref().is_err_and(|why| why.contains("bug is back") && why.contains("v1")),
        "{back:?}"
    );
    file.expect = Expectation::Anomaly;
    assert_eq!(schedule_file::judge(&file, &broken), Ok(()), "the anomaly it expects");
}

#[test]
fn a_seeds_schedule_written_and_read_back_replays_to_the_same_trace_hash() {
    for (name, seeds) in [("crash-restart-loop", 0..3), ("disk-faults", 0..3), ("partitions", 0..3)]
    {
        let path = format!("scenarios/{name}.toml");
        let scenario = Scenario::load(&repo(&path)).unwrap();
        for seed in seeds {
            let file = ScheduleFile {
                format: FORMAT.to_owned(),
                scenario: path.clone(),
                anomaly: String::new(),
                expect: Expectation::Holds,
                note: String::new(),
                origin: None,
                schedule: schedule_for(&scenario, seed),
            };
            let read = ScheduleFile::parse(&file.to_json(), "memory").unwrap();
            assert!(read == file, "{name} seed {seed}: the file round trip changed the schedule");
            read.check(&scenario).unwrap_or_else(|problem| panic!("{name} seed {seed}: {problem}"));
            let from_seed = run_seed(&scenario, seed, 0).0.trace_hash;
            let from_file = run_schedule(&scenario, &read.schedule, 0).0.trace_hash;
            assert_eq!(from_file, from_seed, "{name} seed {seed}");
        }
    }
}
