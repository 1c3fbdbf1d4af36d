//! logjam: the command line. Runs sweeps of a scenario across seeds (one run per thread,
//! never threads inside a run), replays one seed, checks a recorded history, and reports.
//!
//! Exit codes (scripts depend on them): 0 when every run met the scenario's expectation,
//! 1 when one did not, 2 on bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use logjam_sim::run::{RunOutput, RunVerdict, run_full, schedule_for};
use logjam_sim::scenario::Scenario;
use logjam_sim::schedule_file::{self, Expectation, ScheduleFile};

mod shard;
mod shrink;
mod sweep;
mod trace_view;

/// A run allocates and frees many small buffers per event (messages, batches, history
/// strings): mimalloc serves them faster than the system allocator. Allocation order
/// never reaches a run's behaviour, so traces are the same under any allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Trace events kept by `replay --trace` (about 50 bytes each).
const TRACE_KEPT_MAX: usize = 4_000_000;

/// What every command's `--help` ends with: scripts depend on the exit codes.
const EXIT_CODES: &str = "Exit codes:\n  0  every run met the scenario's expectation (check: the history holds)\n  1  a run did not (check: a promised invariant is violated)\n  2  bad input: a malformed scenario, schedule or history file, or bad arguments";

/// Where regressions live; `cargo test` replays every file in it.
const REGRESSIONS_DIR: &str = "scenarios/regressions";

#[derive(Parser)]
#[command(
    name = "logjam",
    version,
    about = "Deterministic simulation of a replicated log under faults",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sweep a scenario over a range of seeds.
    #[command(after_help = EXIT_CODES)]
    Run {
        /// The scenario file (TOML, as in scenarios/).
        scenario: PathBuf,
        /// How many seeds to run (default 100; with --time-budget, no limit).
        #[arg(long)]
        seeds: Option<u64>,
        /// The first seed (default 0; with --time-budget, drawn at random and printed).
        #[arg(long)]
        start: Option<u64>,
        /// Runs in parallel (one seed per thread); 0 means one per core.
        #[arg(long, default_value_t = 0)]
        jobs: usize,
        /// Print the sweep as JSON.
        #[arg(long)]
        json: bool,
        /// Run only shard K of N (0 <= K < N: the seeds start + i with i % N == K) and
        /// print JSON Lines for `logjam report merge`. `auto`: K and N from a Kubernetes
        /// Indexed Job, a CI matrix (GitLab's CI_NODE_INDEX/CI_NODE_TOTAL, or
        /// LOGJAM_SHARD_INDEX/LOGJAM_SHARD_COUNT) or a Slurm array.
        #[arg(long, value_name = "K/N|auto", conflicts_with_all = ["time_budget", "json"])]
        shard: Option<String>,
        /// Sweep until this much wall time is spent (e.g. 30m), from a random start seed.
        #[arg(long, value_name = "DURATION")]
        time_budget: Option<String>,
        /// Write each failing seed here: a schedule file to replay or shrink.
        #[arg(long, value_name = "DIR")]
        failures: Option<PathBuf>,
        /// Write the sweep report (Markdown: failures, coverage, seeds to failure).
        #[arg(long, value_name = "FILE.md", conflicts_with = "shard")]
        report: Option<PathBuf>,
    },
    /// Run one seed (or a schedule file) and print its verdict and trace hash.
    #[command(
        after_help = EXIT_CODES,
        override_usage = "logjam replay <SCENARIO> --seed <SEED> [OPTIONS]\n       logjam replay --schedule <FILE> [OPTIONS]"
    )]
    Replay {
        /// The scenario (optional with --schedule: the file names its scenario).
        #[arg(required_unless_present = "schedule")]
        scenario: Option<PathBuf>,
        /// The seed to run (or give --schedule FILE instead).
        #[arg(long, required_unless_present = "schedule", conflicts_with = "schedule")]
        seed: Option<u64>,
        /// Run a schedule file (written by `shrink`) instead of a seed.
        #[arg(long, value_name = "FILE")]
        schedule: Option<PathBuf>,
        /// Print the trace around the anomaly's witness, per node (or the last events
        /// of the run if nothing went wrong), up to --trace-events.
        #[arg(long)]
        trace: bool,
        /// With --trace: at most this many trace events printed.
        #[arg(long, default_value_t = 10_000)]
        trace_events: usize,
        /// Print the run as JSON.
        #[arg(long)]
        json: bool,
        /// Write the recorded history (JSON Lines, checkable with `logjam check`).
        #[arg(long, value_name = "FILE")]
        history: Option<PathBuf>,
        /// Write the run report (Markdown).
        #[arg(long, value_name = "FILE.md")]
        report: Option<PathBuf>,
        /// Write the run's timeline: one self-contained HTML file (lanes per node,
        /// messages, faults, client operations, the witness and the invariants).
        #[arg(long, value_name = "FILE.html")]
        html: Option<PathBuf>,
    },
    /// Shrink a failing seed to a small schedule that fails the same way.
    #[command(after_help = EXIT_CODES)]
    Shrink {
        /// The scenario file (TOML, as in scenarios/).
        scenario: PathBuf,
        /// The failing seed to shrink.
        #[arg(long)]
        seed: u64,
        /// Write the shrunk schedule here (JSON; run it with `replay --schedule`).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Also save it as scenarios/regressions/NAME.json, replayed by `cargo test`.
        #[arg(long, value_name = "NAME")]
        save_regression: Option<String>,
        /// Stop after this many candidate runs.
        #[arg(long, default_value_t = 2_000)]
        max_runs: u64,
        /// Stop after this much wall time (e.g. 90s, 5m).
        #[arg(long, default_value = "10m")]
        time_budget: String,
    },
    /// Combine sweep results.
    #[command(after_help = EXIT_CODES)]
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Check a recorded history (JSON Lines, see model/HISTORY.md) from any system.
    #[command(after_help = EXIT_CODES)]
    Check {
        /// The history file (JSON Lines).
        history: PathBuf,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Merge the JSON Lines of `run --shard K/N` into the report of the whole sweep.
    #[command(after_help = EXIT_CODES)]
    Merge {
        /// The shards' JSON Lines files, one per shard.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Print the sweep as JSON.
        #[arg(long)]
        json: bool,
        /// Write the sweep report (Markdown).
        #[arg(long, value_name = "FILE.md")]
        report: Option<PathBuf>,
    },
}

/// The most seeds one sweep may run.
const SEEDS_MAX: u64 = 1_000_000_000_000;
/// Seeds of a sweep when `--seeds` is not given.
const SEEDS_DEFAULT: u64 = 100;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenario,
            seeds,
            start,
            jobs,
            json,
            shard,
            time_budget,
            failures,
            report,
        } => {
            let Some(scenario) = load(&scenario) else { return ExitCode::from(2) };
            let budget_ns = match time_budget.as_deref().map(logjam_sim::time::parse_duration_ns) {
                None => None,
                Some(Ok(ns)) => Some(ns),
                Some(Err(problem)) => {
                    eprintln!("logjam: --time-budget: {problem}");
                    return ExitCode::from(2);
                }
            };
            let seeds =
                seeds.unwrap_or(if budget_ns.is_some() { SEEDS_MAX } else { SEEDS_DEFAULT });
            let start =
                start.unwrap_or_else(|| if budget_ns.is_some() { random_start() } else { 0 });
            if seeds == 0 || seeds > SEEDS_MAX || start.checked_add(seeds).is_none() {
                eprintln!(
                    "logjam: --seeds must be between 1 and {SEEDS_MAX}, and --start + --seeds must fit u64"
                );
                return ExitCode::from(2);
            }
            let environment = |name: &str| std::env::var(name).ok();
            let shard = match shard.as_deref().map(|text| shard::parse(text, environment)) {
                None => None,
                Some(Ok(shard)) => {
                    if shard.source != "--shard" {
                        eprintln!(
                            "logjam: shard {}/{} (from {})",
                            shard.index, shard.count, shard.source
                        );
                    }
                    Some((shard.index, shard.count))
                }
                Some(Err(problem)) => {
                    eprintln!("logjam: --shard: {problem}");
                    return ExitCode::from(2);
                }
            };
            if let Some(dir) = &failures {
                if let Err(error) = std::fs::create_dir_all(dir) {
                    eprintln!("logjam: --failures {}: {error}", dir.display());
                    return ExitCode::from(2);
                }
            }
            let slice = sweep::Slice { start, seeds, shard };
            let options = SweepOptions { jobs, json, budget_ns, failures, report };
            run_sweep(&scenario, slice, &options)
        }
        Command::Report { command: ReportCommand::Merge { shards, json, report } } => {
            report_merge(&shards, json, report.as_deref())
        }
        Command::Check { history, json } => check(&history, json),
        Command::Replay {
            scenario,
            seed,
            schedule,
            trace,
            trace_events,
            json,
            history,
            report,
            html,
        } => {
            let options = ReplayOptions {
                trace_events: trace.then_some(trace_events.max(1)),
                json,
                history: history.as_deref(),
                report: report.as_deref(),
                html: html.as_deref(),
            };
            let (scenario, file) = match (&schedule, &scenario) {
                (Some(path), scenario_path) => {
                    let Some((file, mut scenario)) = load_schedule(path) else {
                        return ExitCode::from(2);
                    };
                    if let Some(scenario_path) = scenario_path {
                        let Some(given) = load(scenario_path) else { return ExitCode::from(2) };
                        if let Err(problem) = file.check_at(&given, path) {
                            eprintln!("logjam: {problem}");
                            return ExitCode::from(2);
                        }
                        scenario = given;
                    }
                    (scenario, Some((path.clone(), file)))
                }
                (None, Some(path)) => {
                    let Some(scenario) = load(path) else { return ExitCode::from(2) };
                    (scenario, None)
                }
                (None, None) => unreachable!("clap requires a scenario without --schedule"),
            };
            let target = match (&file, seed) {
                (Some((path, file)), _) => Replayed::Schedule(path, file),
                (None, Some(seed)) => Replayed::Seed(seed),
                (None, None) => unreachable!("clap requires --seed without --schedule"),
            };
            replay(&scenario, target, &options)
        }
        Command::Shrink { scenario, seed, output, save_regression, max_runs, time_budget } => {
            let Some(scenario) = load(&scenario) else { return ExitCode::from(2) };
            let budget_ns = match logjam_sim::time::parse_duration_ns(&time_budget) {
                Ok(ns) => ns,
                Err(problem) => {
                    eprintln!("logjam: --time-budget: {problem}");
                    return ExitCode::from(2);
                }
            };
            let regression = match save_regression.as_deref().map(regression_path).transpose() {
                Ok(path) => path,
                Err(problem) => {
                    eprintln!("logjam: --save-regression: {problem}");
                    return ExitCode::from(2);
                }
            };
            shrink::command(&scenario, seed, max_runs, budget_ns, output, regression)
        }
    }
}

fn check(path: &std::path::Path, json: bool) -> ExitCode {
    let shown = path.display().to_string();
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("logjam: {shown}: cannot read: {error}");
            return ExitCode::from(2);
        }
    };
    let history = match logjam_model::parse_history(std::io::BufReader::new(file)) {
        Ok(history) => history,
        Err(error) => {
            eprintln!("logjam: {}", error.in_file(&shown));
            return ExitCode::from(2);
        }
    };
    let verdict = logjam_model::check(&history);
    // The process ends here: freeing a large history record by record would only cost
    // time (a tenth of a second at a million operations) that exiting gives back at once.
    std::mem::forget(history);
    if json {
        println!("{}", serde_json::to_string_pretty(&verdict).expect("a verdict serializes"));
    } else {
        print!("{verdict}");
    }
    if verdict.holds() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn load(path: &std::path::Path) -> Option<Scenario> {
    Scenario::load(path).map_err(|error| eprintln!("logjam: {error}")).ok()
}

fn load_schedule(path: &std::path::Path) -> Option<(ScheduleFile, Scenario)> {
    ScheduleFile::load(path).map_err(|error| eprintln!("logjam: {error}")).ok()
}

/// Where `--save-regression NAME` writes: a plain file name under scenarios/regressions.
fn regression_path(name: &str) -> Result<PathBuf, String> {
    let plain =
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !plain {
        return Err(format!("`{name}`: use letters, digits, '-' and '_' only"));
    }
    Ok(PathBuf::from(REGRESSIONS_DIR).join(format!("{name}.json")))
}

/// What `replay` runs: a seed of the scenario, or a schedule file.
enum Replayed<'a> {
    Seed(u64),
    Schedule(&'a PathBuf, &'a ScheduleFile),
}

/// What `replay` prints and writes besides the report on stdout.
#[derive(Clone, Copy)]
struct ReplayOptions<'a> {
    trace_events: Option<usize>,
    json: bool,
    history: Option<&'a std::path::Path>,
    report: Option<&'a std::path::Path>,
    html: Option<&'a std::path::Path>,
}

fn replay(scenario: &Scenario, target: Replayed<'_>, options: &ReplayOptions<'_>) -> ExitCode {
    let ReplayOptions { trace_events, json, history: history_path, report, html } = *options;
    let schedule = match &target {
        Replayed::Seed(seed) => schedule_for(scenario, *seed),
        Replayed::Schedule(_, file) => file.schedule.clone(),
    };
    // A schedule's report shows the schedule's own phases and faults, not the
    // scenario's menus.
    let (shown, summary);
    let (view, summary) = match &target {
        Replayed::Seed(_) => (scenario, None),
        Replayed::Schedule(..) => {
            shown = Scenario {
                chaos_ns: schedule.chaos_ns,
                quiet_ns: schedule.quiet_ns,
                ..scenario.clone()
            };
            summary = logjam_reports::schedule_summary(&schedule);
            (&shown, Some(summary.as_str()))
        }
    };
    // With --trace or --html, the whole trace is kept: the window around a witness may
    // lie anywhere.
    let kept_max = if trace_events.is_some() || html.is_some() { TRACE_KEPT_MAX } else { 0 };
    let RunOutput { result: run, trace, history } = run_full(scenario, &schedule, kept_max);
    if let Some(path) = history_path {
        let Some(history) = &history else {
            eprintln!("logjam: {}: this system records no history", scenario.path);
            return ExitCode::from(2);
        };
        if let Err(error) = std::fs::write(path, history.to_jsonl()) {
            eprintln!("logjam: {}: cannot write: {error}", path.display());
            return ExitCode::from(2);
        }
    }
    let replay_command = match &target {
        Replayed::Seed(seed) => logjam_sim::run::replay_command(scenario, *seed),
        Replayed::Schedule(path, _) => {
            format!("cargo run --release -p logjam -- replay --schedule {}", path.display())
        }
    };
    if let Some(path) = report {
        let report = logjam_reports::report::RunReport::new(view, &run, &replay_command);
        let report = match summary {
            Some(summary) => report.with_schedule(summary.to_owned()),
            None => report,
        };
        let markdown = report.markdown();
        if !write_report(path, &markdown) {
            return ExitCode::from(2);
        }
    }
    if let Some(path) = html {
        let page = logjam_reports::html::timeline(
            view,
            &schedule,
            &run,
            &trace,
            history.as_ref(),
            &replay_command,
        );
        if !write_report(path, &page) {
            return ExitCode::from(2);
        }
    }
    if json {
        println!("{}", logjam_reports::run_json(view, &run, &replay_command));
    } else {
        if let Some(events_max) = trace_events {
            let text = trace_view::around_witness(&trace, &run, events_max)
                .unwrap_or_else(|| trace_view::last_events(&trace, &run, events_max));
            print!("{text}");
        }
        print!("{}", logjam_reports::run_text_of(view, &run, &replay_command, summary));
    }
    // The process exits next: freeing the history's million small allocations one by
    // one would only cost time (about 4% of a long replay).
    std::mem::forget(history);
    match target {
        Replayed::Seed(_) => match run.verdict(&scenario.expect) {
            RunVerdict::Held | RunVerdict::ExpectedViolation => ExitCode::SUCCESS,
            RunVerdict::Unexpected(_) => ExitCode::from(1),
        },
        Replayed::Schedule(path, file) => {
            let shown = path.display();
            match schedule_file::judge(file, scenario, &run) {
                Ok(()) => {
                    eprintln!("logjam: {shown}: as expected ({})", expectation(file));
                    ExitCode::SUCCESS
                }
                Err(problem) => {
                    eprintln!("logjam: {shown}: {problem}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn expectation(file: &ScheduleFile) -> String {
    match file.expect {
        Expectation::Anomaly => {
            format!("shows `{}`, which this configuration allows", file.anomaly)
        }
        Expectation::Holds => format!("holds: the `{}` bug stays fixed", file.anomaly),
    }
}

struct SweepOptions {
    jobs: usize,
    json: bool,
    budget_ns: Option<u64>,
    failures: Option<PathBuf>,
    report: Option<PathBuf>,
}

/// Writes a report file; false (after saying why) if it cannot.
fn write_report(path: &std::path::Path, text: &str) -> bool {
    match std::fs::write(path, text) {
        Ok(()) => true,
        Err(error) => {
            eprintln!("logjam: {}: cannot write: {error}", path.display());
            false
        }
    }
}

fn run_sweep(scenario: &Scenario, slice: sweep::Slice, options: &SweepOptions) -> ExitCode {
    let jobs = match options.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        jobs => jobs,
    };
    let jobs = jobs.min(usize::try_from(slice.seeds).unwrap_or(usize::MAX)).max(1);
    // Wall-clock time measures the sweep for the user and bounds a long run; it never
    // enters a run.
    #[allow(clippy::disallowed_methods)]
    let began = std::time::Instant::now();
    let deadline = options.budget_ns.map(|ns| began + std::time::Duration::from_nanos(ns));
    if options.budget_ns.is_some() {
        eprintln!("logjam: sweeping from seed {} until the time budget is spent", slice.start);
    }
    let budget = sweep::Budget { deadline };
    let sink = options.failures.clone().map(|dir| sweep::FailureSink { dir });
    let result = sweep::run(scenario, slice, jobs, &budget, sink.as_ref());
    let elapsed_s = began.elapsed().as_secs_f64();
    if slice.shard.is_some() {
        print!("{}", sweep::shard_jsonl(&result, slice));
    } else if options.json {
        println!("{}", logjam_reports::sweep_json(scenario, &result));
    } else {
        print!("{}", logjam_reports::sweep_text(scenario, &result));
    }
    if let Some(path) = &options.report {
        let markdown = logjam_reports::report::SweepReport::new(scenario, &result).markdown();
        if !write_report(path, &markdown) {
            return ExitCode::from(2);
        }
    }
    eprintln!(
        "logjam: {} in {elapsed_s:.2}s on {} ({})",
        counted(result.seeds, "seed"),
        counted(jobs as u64, "thread"),
        rate(result.seeds as f64 / elapsed_s.max(1e-9), "seeds")
    );
    // A shard alone cannot tell whether an expected violation was found in time.
    let passed = if slice.shard.is_some() { result.unexpected_total == 0 } else { result.passed() };
    if passed { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn report_merge(paths: &[PathBuf], json: bool, report: Option<&std::path::Path>) -> ExitCode {
    let (mut result, digest) = match sweep::merge(paths) {
        Ok(merged) => merged,
        Err(problem) => {
            eprintln!("logjam: {problem}");
            return ExitCode::from(2);
        }
    };
    let Some(scenario) = load(std::path::Path::new(&result.path)) else {
        return ExitCode::from(2);
    };
    if sweep::scenario_digest(&result.path).as_deref() != Some(digest.as_str()) {
        eprintln!(
            "logjam: {}: the scenario file is not the one the shards ran (it changed since)",
            result.path
        );
        return ExitCode::from(2);
    }
    result.finish(&scenario);
    if json {
        println!("{}", logjam_reports::sweep_json(&scenario, &result));
    } else {
        print!("{}", logjam_reports::sweep_text(&scenario, &result));
    }
    if let Some(path) = report {
        let markdown = logjam_reports::report::SweepReport::new(&scenario, &result).markdown();
        if !write_report(path, &markdown) {
            return ExitCode::from(2);
        }
    }
    if result.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// `K/N` with `K < N`.
/// A start seed for a long run: drawn once, outside any run, and printed.
fn random_start() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // std's RandomState is seeded from the OS; the seed only picks where to start.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish() >> 1
}

/// `count` things, in words (`1 thread`, `2 threads`).
fn counted(count: u64, thing: &str) -> String {
    if count == 1 { format!("1 {thing}") } else { format!("{count} {thing}s") }
}

/// A rate with as many digits as it deserves: `13.9 seeds/s`, `394 seeds/s`, `0.52 seeds/s`.
fn rate(per_s: f64, things: &str) -> String {
    if per_s >= 100.0 {
        format!("{per_s:.0} {things}/s")
    } else if per_s >= 10.0 {
        format!("{per_s:.1} {things}/s")
    } else {
        format!("{per_s:.2} {things}/s")
    }
}

#[cfg(test)]
mod deploy_tests {
    //! Every logjam command in the files under `deploy/` is a valid invocation: the
    //! manifests and workflows a team copies must not rot as the CLI changes.

    use clap::Parser;

    use super::Cli;

    const DEPLOY: &[(&str, &str)] = &[
        ("kubernetes/sweep-job.yaml", include_str!("../../deploy/kubernetes/sweep-job.yaml")),
        ("kubernetes/merge-job.yaml", include_str!("../../deploy/kubernetes/merge-job.yaml")),
        ("github/sweep.yml", include_str!("../../deploy/github/sweep.yml")),
        ("gitlab/sweep.gitlab-ci.yml", include_str!("../../deploy/gitlab/sweep.gitlab-ci.yml")),
        ("slurm/sweep.sbatch", include_str!("../../deploy/slurm/sweep.sbatch")),
    ];

    /// The logjam command lines of a file (a line that starts with the binary, after
    /// its indentation and a YAML list's `- `): up to the first shell operator, each
    /// word with its quotes taken off and every variable (`$X`, `${X}`, `${{ x }}`)
    /// standing for `1`. Comment lines are skipped.
    fn commands(text: &str) -> Vec<Vec<String>> {
        let mut found = Vec::new();
        for line in text.lines().filter(|line| !line.trim_start().starts_with('#')) {
            let line = substitute(line);
            let command = line.trim_start();
            let command = command.strip_prefix("- ").unwrap_or(command);
            let Some(at) = ["./target/release/logjam ", "logjam "]
                .iter()
                .find_map(|name| command.starts_with(name).then_some(name.len()))
            else {
                continue;
            };
            let line = command;
            let rest = &line[at..];
            let end = rest.find(['>', '|', ';', '&']).unwrap_or(rest.len());
            let mut words = vec!["logjam".to_owned()];
            words.extend(rest[..end].split_whitespace().map(|word| word.replace(['"', '\''], "")));
            found.push(words);
        }
        found
    }

    fn substitute(line: &str) -> String {
        let mut out = String::new();
        let mut rest = line;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let tail = &rest[at + 1..];
            let skip = if let Some(inner) = tail.strip_prefix("{{") {
                inner.find("}}").map_or(tail.len(), |end| end + 4)
            } else if tail.starts_with('{') {
                tail.find('}').map_or(tail.len(), |end| end + 1)
            } else {
                tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len())
            };
            out.push('1');
            rest = &tail[skip..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn every_command_in_the_shipped_deploy_files_is_a_valid_invocation() {
        let mut checked = 0;
        for (file, text) in DEPLOY {
            let commands = commands(text);
            assert!(!commands.is_empty(), "deploy/{file}: no logjam command found");
            for words in commands {
                if let Err(error) = Cli::try_parse_from(&words) {
                    panic!(
                        "deploy/{file}: `{}` is not a valid invocation:\n{error}",
                        words.join(" ")
                    );
                }
                checked += 1;
            }
        }
        // A sweep with --shard auto, and a merge, at least once per engine.
        assert!(checked >= 2 * (DEPLOY.len() - 2), "{checked} commands");
        // The checker itself refuses what is wrong.
        assert!(Cli::try_parse_from(["logjam", "run", "x.toml", "--shards", "auto"]).is_err());
        assert_eq!(commands("  - logjam run a.toml --seeds ${{ inputs.seeds }} > x").len(), 1);
        assert_eq!(commands("  - logjam run a.toml --seeds ${{ inputs.seeds }} > x")[0][4], "1");
    }
}
