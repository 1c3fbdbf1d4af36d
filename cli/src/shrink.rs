//! `logjam shrink`: from a failing seed to the smallest schedule that fails the same way,
//! written as a schedule file that `replay --schedule` and `cargo test` run.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use logjam_sim::run::{Schedule, run_schedule, schedule_for};
use logjam_sim::scenario::{Expect, Scenario};
use logjam_sim::schedule_file::{
    Expectation, FORMAT, Origin, ScheduleFile, anomalies, primary_anomaly,
};
use logjam_sim::shrink::{Progress, shrink};

pub fn command(
    scenario: &Scenario,
    seed: u64,
    max_runs: u64,
    budget_ns: u64,
    output: Option<PathBuf>,
    regression: Option<PathBuf>,
) -> ExitCode {
    let original = schedule_for(scenario, seed);
    let (run, _) = run_schedule(scenario, &original, 0);
    let Some(anomaly) = primary_anomaly(scenario, &run) else {
        eprintln!(
            "logjam: {} seed {seed}: every invariant holds; there is nothing to shrink",
            scenario.path
        );
        return ExitCode::from(2);
    };
    let witness = witness_of(&run, &anomaly);
    println!("scenario   {} ({})", scenario.name, scenario.path);
    println!("seed       {seed}");
    println!("anomaly    {anomaly}: {witness}");
    println!("before     {}", size_text(&original));

    // Wall-clock time bounds the search for the user; it never enters a run.
    #[allow(clippy::disallowed_methods)]
    let began = std::time::Instant::now();
    let bar = progress_bar();
    let mut keep_going = |progress: Progress| {
        bar.set_message(format!(
            "{}: {} runs, size {}",
            progress.phase.name(),
            progress.runs,
            progress.size
        ));
        bar.tick();
        progress.runs < max_runs && (began.elapsed().as_nanos() as u64) < budget_ns
    };
    let shrunk = shrink(scenario, original.clone(), &anomaly, &mut keep_going);
    bar.finish_and_clear();
    let elapsed_s = began.elapsed().as_secs_f64();

    // The result is the last candidate that failed; run it once more to show it.
    let (final_run, _) = run_schedule(scenario, &shrunk.schedule, 0);
    if !anomalies(&final_run).contains(&anomaly) {
        eprintln!("logjam: the shrunk schedule no longer shows `{anomaly}`: a nondeterminism bug");
        return ExitCode::from(1);
    }
    println!(
        "after      {} ({} runs in {elapsed_s:.1}s{})",
        size_text(&shrunk.schedule),
        shrunk.runs,
        if shrunk.stopped_early { ", budget spent: smaller may exist" } else { "" }
    );
    println!("witness    {}", witness_of(&final_run, &anomaly));
    println!("trace hash {:016x}", final_run.trace_hash);

    let expect = match &scenario.expect {
        Expect::Violation { invariant, .. } if *invariant == anomaly => Expectation::Anomaly,
        _ => Expectation::Holds,
    };
    let file = ScheduleFile {
        format: FORMAT.to_owned(),
        scenario: scenario.path.clone(),
        anomaly: anomaly.clone(),
        expect,
        note: format!(
            "seed {seed} shrunk from {} to {} by `logjam shrink`; witness: {}",
            size_text(&original),
            size_text(&shrunk.schedule),
            witness_of(&final_run, &anomaly)
        ),
        origin: Some(Origin {
            seed,
            faults: original.size() - original.ops.len(),
            ops: original.ops.len(),
        }),
        schedule: shrunk.schedule,
    };
    let mut written = Vec::new();
    for path in output.iter().chain(regression.iter()) {
        if let Err(error) = write_new(path, &file.to_json()) {
            eprintln!("logjam: {}: cannot write: {error}", path.display());
            return ExitCode::from(2);
        }
        written.push(path);
    }
    for path in &written {
        println!(
            "replay     cargo run --release -p logjam -- replay --schedule {}",
            path.display()
        );
    }
    if written.is_empty() {
        println!("(nothing written: pass -o FILE or --save-regression NAME to keep it)");
    }
    ExitCode::SUCCESS
}

fn size_text(schedule: &Schedule) -> String {
    let ops = schedule.ops.len();
    let faults = schedule.size() - ops;
    format!(
        "{} ({faults} faults, {ops} operations; chaos {}, quiet {})",
        schedule.size(),
        seconds(schedule.chaos_ns),
        seconds(schedule.quiet_ns)
    )
}

fn seconds(ns: u64) -> String {
    format!("{:.3}s", ns as f64 / 1e9)
}

fn witness_of(run: &logjam_sim::run::RunResult, anomaly: &str) -> String {
    run.checks
        .iter()
        .find(|check| check.invariant == anomaly)
        .and_then(|check| check.witness.clone())
        .or_else(|| run.limit.map(|limit| format!("limit reached: {limit}")))
        .unwrap_or_default()
}

/// Writes a file, creating its directory.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}

fn progress_bar() -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    let style = indicatif::ProgressStyle::with_template("{spinner} shrinking: {msg} ({elapsed})");
    bar.set_style(style.unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()));
    bar
}
