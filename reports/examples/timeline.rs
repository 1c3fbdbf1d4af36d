//! Writes the HTML timeline of one run, for a schedule file or a scenario's seed:
//!
//! ```sh
//! cargo run --release -p logjam-reports --example timeline -- scenarios/regressions/unclean-election.json /tmp/timeline.html
//! cargo run --release -p logjam-reports --example timeline -- scenarios/crash-restart-loop.toml --seed 3 /tmp/timeline.html
//! ```
//!
//! Optional: `--chaos DURATION` cuts a seed's chaos phase short (its operations and
//! faults after the cut dropped), for a shorter long run.
//!
//! Prints the run's verdict line, the trace's size and the file's size to stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use logjam_reports::html::timeline;
use logjam_sim::run::{RunOutput, Schedule, replay_command, run_full, schedule_for};
use logjam_sim::scenario::Scenario;
use logjam_sim::schedule_file::ScheduleFile;
use logjam_sim::time::parse_duration_ns;
use logjam_sim::{Fault, nemesis::TimedFault};

/// Every trace event of a run is kept (about 50 bytes each): the timeline draws the
/// whole run.
const TRACE_KEPT_MAX: usize = 50_000_000;

const USAGE: &str =
    "usage: timeline SCHEDULE.json|SCENARIO.toml [--seed S] [--chaos DURATION] OUT.html";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut positional, mut seed, mut chaos) = (Vec::new(), None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => match args.next().and_then(|s| s.parse::<u64>().ok()) {
                Some(s) => seed = Some(s),
                None => return usage("--seed needs a number"),
            },
            "--chaos" => match args.next().map(|s| parse_duration_ns(&s)) {
                Some(Ok(ns)) if ns > 0 => chaos = Some(ns),
                Some(Err(error)) => return usage(&error),
                _ => return usage("--chaos needs a duration"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [input, output] = positional.as_slice() else {
        return usage("give the input and the output file");
    };
    let is_schedule = input.extension().is_some_and(|ext| ext == "json");
    let (scenario, schedule, replay) = if is_schedule {
        if seed.is_some() || chaos.is_some() {
            return usage("--seed and --chaos are for scenarios; a schedule file has its own");
        }
        match ScheduleFile::load(input) {
            Ok((file, scenario)) => {
                let replay = format!(
                    "cargo run --release -p logjam -- replay --schedule {}",
                    input.display()
                );
                (scenario, file.schedule, replay)
            }
            Err(error) => return fail(&error.to_string()),
        }
    } else {
        let Some(seed) = seed else { return usage("a scenario needs --seed S") };
        let scenario = match Scenario::load(input) {
            Ok(scenario) => scenario,
            Err(error) => return fail(&error.to_string()),
        };
        let mut schedule = schedule_for(&scenario, seed);
        let mut replay = replay_command(&scenario, seed);
        if let Some(chaos_ns) = chaos {
            cut_chaos(&mut schedule, chaos_ns);
            replay.push_str(" (chaos phase cut to ");
            replay.push_str(&logjam_sim::time::format_ns(chaos_ns));
            replay.push_str(" by the timeline example)");
        }
        (scenario, schedule, replay)
    };
    let RunOutput { result, trace, history } = run_full(&scenario, &schedule, TRACE_KEPT_MAX);
    let html = timeline(&scenario, &schedule, &result, &trace, history.as_ref(), &replay);
    if let Err(error) = std::fs::write(output, &html) {
        return fail(&format!("{}: cannot write: {error}", output.display()));
    }
    let anomalies: Vec<&str> = result
        .checks
        .iter()
        .filter(|check| !check.holds || check.expected_anomaly)
        .map(|check| check.invariant)
        .collect();
    eprintln!(
        "{}: seed {}, trace hash {:016x}, {} trace events, {} operations, anomalies [{}]; wrote {} bytes to {}",
        scenario.name,
        result.seed,
        result.trace_hash,
        trace.len(),
        history.as_ref().map_or(0, |history| history.ops().len()),
        anomalies.join(", "),
        html.len(),
        display(output)
    );
    ExitCode::SUCCESS
}

/// Cuts the chaos phase at `chaos_ns`: later operations and faults go, and the closing
/// heal moves to the cut.
fn cut_chaos(schedule: &mut Schedule, chaos_ns: u64) {
    if chaos_ns >= schedule.chaos_ns {
        return;
    }
    schedule.chaos_ns = chaos_ns;
    schedule.ops.retain(|op| op.at_ns < chaos_ns);
    schedule.faults.retain(|timed| timed.at_ns < chaos_ns && timed.fault != Fault::HealAll);
    schedule.faults.push(TimedFault { at_ns: chaos_ns, fault: Fault::HealAll });
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("timeline: {problem}\n{USAGE}");
    ExitCode::from(2)
}

fn fail(problem: &str) -> ExitCode {
    eprintln!("timeline: {problem}");
    ExitCode::from(2)
}
