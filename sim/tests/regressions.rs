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
        if let Err(problem) = schedule_file::judge(&file, &scenario, &run) {
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

fn file_of(path: &str, schedule: logjam_sim::run::Schedule, expect: Expectation) -> ScheduleFile {
    ScheduleFile {
        format: FORMAT.to_owned(),
        scenario: path.to_owned(),
        anomaly: "lost-write".to_owned(),
        expect,
        note: String::new(),
        origin: None,
        schedule,
    }
}

#[test]
fn the_judge_fails_a_regression_that_loses_its_anomaly_shows_more_or_whose_bug_returns() {
    // A weak configuration: acks=1 allows lost writes.
    let path = "scenarios/acks-1-leader-crash.toml";
    let weak = Scenario::load(&repo(path)).unwrap();
    let runs: Vec<_> = (0..40).map(|seed| run_seed(&weak, seed, 0).0).collect();
    let showing = runs.iter().find(|r| schedule_file::anomalies(r).contains(&"lost-write".into()));
    let quiet = runs.iter().find(|r| schedule_file::anomalies(r).is_empty());
    let (showing, quiet) = (showing.expect("a lost write"), quiet.expect("a quiet seed"));
    let file = file_of(path, schedule_for(&weak, showing.seed), Expectation::Anomaly);
    assert_eq!(file.check(&weak), Ok(()));
    assert_eq!(schedule_file::judge(&file, &weak, showing), Ok(()), "the anomaly it expects");
    let lost = schedule_file::judge(&file, &weak, quiet).unwrap_err();
    assert!(lost.contains("lost its teeth"), "{lost}");
    // The anomaly, and a broken promise besides: not as expected.
    let mut more = showing.clone();
    let check = more.checks.iter_mut().find(|c| c.invariant == "divergence").unwrap();
    check.holds = false;
    check.witness = Some("n0 and n1 disagree at offset 3".into());
    let also = schedule_file::judge(&file, &weak, &more).unwrap_err();
    assert!(also.contains("so did something else") && also.contains("divergence"), "{also}");

    // A scenario that allows no anomaly refuses an "anomaly" file before it runs.
    let smoke_path = "scenarios/smoke.toml";
    let smoke = Scenario::load(&repo(smoke_path)).unwrap();
    let schedule = schedule_for(&smoke, 0);
    let refused = file_of(smoke_path, schedule.clone(), Expectation::Anomaly).check(&smoke);
    assert!(refused.is_err_and(|why| why.contains("does not allow")));

    // A fixed bug's file holds, and fails once the bug is back.
    let file = file_of(smoke_path, schedule.clone(), Expectation::Holds);
    let (run, _) = run_schedule(&smoke, &schedule, 0);
    assert_eq!(schedule_file::judge(&file, &smoke, &run), Ok(()));
    let mut broken = run.clone();
    let check = broken.checks.iter_mut().find(|c| c.invariant == "lost-write").unwrap();
    check.holds = false;
    check.witness =
        Some("`v1` was acknowledged at offset 1, which n0 has committed without it".into());
    let back = schedule_file::judge(&file, &smoke, &broken);
    assert!(
        back.as_ref().is_err_and(|why| why.contains("bug is back") && why.contains("v1")),
        "{back:?}"
    );
}

#[test]
fn a_seeds_schedule_written_and_read_back_replays_to_the_same_trace_hash() {
    for (name, seeds) in [
        ("crash-restart-loop", 0..3),
        ("disk-faults", 0..3),
        ("partitions", 0..3),
        ("config-swarm", 0..3),
    ] {
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
