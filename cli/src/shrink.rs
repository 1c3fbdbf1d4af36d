//! `logjam shrink`: from a failing seed to the smallest schedule that fails the same way,
//! written as a schedule file that `replay --schedule` and `cargo test` run.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use logjam_sim::run::{RunResult, Schedule, run_schedule, schedule_for};
use logjam_sim::scenario::{Expect, Scenario};
use logjam_sim::schedule_file::{
    Expectation, FORMAT, Origin, ScheduleFile, anomalies, primary_anomaly,
};
use logjam_sim::shrink::{Progress, Shrunk, shrink, shrink_with};

pub fn command(
    scenario: &Scenario,
    seed: u64,
    max_runs: u64,
    budget_ns: u64,
    output: Option<PathBuf>,
    regression: Option<PathBuf>,
) -> ExitCode {
    let original = schedule_for(scenario, seed);
    let run = match run_caught(scenario, &original) {
        Ok(run) => run,
        // An assertion firing in simulation is a found bug too: shrink to a smaller
        // schedule that stops on the same assertion.
        Err(message) => {
            return shrink_panic(
                scenario, seed, original, &message, max_runs, budget_ns, output, regression,
            );
        }
    };
    let Some(anomaly) = primary_anomaly(scenario, &run) else {
        eprintln!(
            "logjam: {} seed {seed}: every invariant holds; there is nothing to shrink",
            scenario.path
        );
        return ExitCode::from(2);
    };
    let witness = witness_of(&run, &anomaly);
    print_head(scenario, seed);
    println!("anomaly    {anomaly}: {witness}");
    println!("before     {}", size_text(&original));

    let (shrunk, elapsed_s) = searched(max_runs, budget_ns, &mut |keep_going| {
        shrink(scenario, original.clone(), &anomaly, keep_going)
    });

    // The result is the last candidate that failed; run it once more to show it.
    let (final_run, _) = run_schedule(scenario, &shrunk.schedule, 0);
    if !anomalies(&final_run).contains(&anomaly) {
        eprintln!("logjam: the shrunk schedule no longer shows `{anomaly}`: a nondeterminism bug");
        return ExitCode::from(1);
    }
    print_after(&shrunk, elapsed_s);
    println!("witness    {}", witness_of(&final_run, &anomaly));
    println!("trace hash {:016x}", final_run.trace_hash);

    let expect = match &scenario.expect {
        Expect::Violation { invariant, .. } if *invariant == anomaly => Expectation::Anomaly,
        _ => Expectation::Holds,
    };
    let ending = format!("witness: {}", witness_of(&final_run, &anomaly));
    let file = shrunk_file(scenario, seed, &original, shrunk.schedule, (anomaly, expect), &ending);
    write_files(&file, output, regression)
}

/// The schedule file of a shrunk seed: `ending` closes its note (the witness, or the
/// assertion it stops on).
fn shrunk_file(
    scenario: &Scenario,
    seed: u64,
    original: &Schedule,
    schedule: Schedule,
    (anomaly, expect): (String, Expectation),
    ending: &str,
) -> ScheduleFile {
    ScheduleFile {
        format: FORMAT.to_owned(),
        scenario: scenario.path.clone(),
        anomaly,
        expect,
        note: format!(
            "seed {seed} shrunk from {} to {} by `logjam shrink`; {ending}",
            size_text(original),
            size_text(&schedule),
        ),
        origin: Some(Origin {
            seed,
            faults: original.size() - original.ops.len(),
            ops: original.ops.len(),
        }),
        schedule,
    }
}

fn print_head(scenario: &Scenario, seed: u64) {
    println!("scenario   {} ({})", scenario.name, scenario.path);
    println!("seed       {seed}");
}

fn print_after(shrunk: &Shrunk, elapsed_s: f64) {
    println!(
        "after      {} ({} runs in {elapsed_s:.1}s{})",
        size_text(&shrunk.schedule),
        shrunk.runs,
        if shrunk.stopped_early { ", budget spent: smaller may exist" } else { "" }
    );
}

/// The shrinker's budget callback: whether to try another candidate.
type KeepGoing<'a> = dyn FnMut(Progress) -> bool + 'a;

/// Runs a shrink search under the run and wall-time budgets, with a spinner; returns
/// what it found and the seconds it took.
fn searched(
    max_runs: u64,
    budget_ns: u64,
    search: &mut dyn FnMut(&mut KeepGoing<'_>) -> Shrunk,
) -> (Shrunk, f64) {
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
    let shrunk = search(&mut keep_going);
    bar.finish_and_clear();
    (shrunk, began.elapsed().as_secs_f64())
}

/// A run, or the message of the assertion it stopped on (the panic is caught, and its
/// report silenced: a shrink makes thousands of runs).
fn run_caught(scenario: &Scenario, schedule: &Schedule) -> Result<RunResult, String> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_schedule(scenario, schedule, 0).0
    }));
    std::panic::set_hook(previous);
    outcome.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic without a message".to_owned())
    })
}

/// A panic message with its numbers blanked: a smaller schedule may stop on the same
/// assertion at another version or offset.
fn panic_shape(message: &str) -> String {
    let first_line = message.lines().next().unwrap_or_default();
    let mut shape = String::with_capacity(first_line.len());
    for c in first_line.chars() {
        if c.is_ascii_digit() {
            if !shape.ends_with('#') {
                shape.push('#');
            }
        } else {
            shape.push(c);
        }
    }
    shape
}

/// Shrinks a seed whose run panics: candidates must stop on the same assertion. The
/// schedule file expects every invariant to hold (a panic is never allowed), so it
/// fails in `cargo test` while the bug is there.
#[allow(clippy::too_many_arguments)]
fn shrink_panic(
    scenario: &Scenario,
    seed: u64,
    original: Schedule,
    message: &str,
    max_runs: u64,
    budget_ns: u64,
    output: Option<PathBuf>,
    regression: Option<PathBuf>,
) -> ExitCode {
    let shape = panic_shape(message);
    print_head(scenario, seed);
    println!("anomaly    panic: {message}");
    println!("before     {}", size_text(&original));
    let mut fails = |candidate: &Schedule| {
        run_caught(scenario, candidate).is_err_and(|message| panic_shape(&message) == shape)
    };
    let (shrunk, elapsed_s) = searched(max_runs, budget_ns, &mut |keep_going| {
        shrink_with(original.clone(), &mut fails, keep_going)
    });
    let Err(last) = run_caught(scenario, &shrunk.schedule) else {
        eprintln!("logjam: the shrunk schedule no longer panics: a nondeterminism bug");
        return ExitCode::from(1);
    };
    print_after(&shrunk, elapsed_s);
    println!("witness    panic: {last}");
    let ending = format!("it stopped on: {last}");
    let anomaly = ("panic".to_owned(), Expectation::Holds);
    let file = shrunk_file(scenario, seed, &original, shrunk.schedule, anomaly, &ending);
    write_files(&file, output, regression)
}

/// Writes the schedule file where asked and says how to replay it.
fn write_files(
    file: &ScheduleFile,
    output: Option<PathBuf>,
    regression: Option<PathBuf>,
) -> ExitCode {
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

#[cfg(test)]
mod tests {
    use super::panic_shape;

    #[test]
    fn a_panic_keeps_its_shape_when_its_numbers_change() {
        let at_eight = "sku-0: snapshot at version 8 + tail is not the full fold\nmore";
        let at_twelve = "sku-0: snapshot at version 12 + tail is not the full fold";
        assert_eq!(panic_shape(at_eight), panic_shape(at_twelve));
        assert_eq!(
            panic_shape(at_eight),
            "sku-#: snapshot at version # + tail is not the full fold"
        );
        assert_ne!(panic_shape(at_eight), panic_shape("sku-0: a reply after the command finished"));
    }
}
