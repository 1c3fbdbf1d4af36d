//! logjam-reports: renders runs and sweeps for people (text) and for programs (JSON).
//!
//! Everything rendered here is a pure function of the results: no wall clock, no
//! machine names, no paths beyond what the user gave, so a report can be snapshotted
//! and diffed in review.
//!
//! Architecture invariant: sits on top of `sim` and `model`; knows nothing of the CLI,
//! and never runs a simulation itself.

pub mod html;
pub mod report;

use std::fmt::Write;

use logjam_sim::run::{RunResult, RunVerdict, SweepResult, replay_command};
use logjam_sim::scenario::Scenario;
use logjam_sim::time::format_ns;
use serde::Serialize;

/// One run as text: the fingerprint, what happened, each invariant, the verdict, and
/// `replay`, the command that replays it (of its seed, or of its schedule file).
pub fn run_text(scenario: &Scenario, run: &RunResult, replay: &str) -> String {
    run_text_of(scenario, run, replay, None)
}

/// `run_text` of a run of an explicit schedule (a schedule file): `summary`
/// (`schedule_summary`) says what it ran, in place of the scenario's fault menus.
pub fn run_text_of(
    scenario: &Scenario,
    run: &RunResult,
    replay: &str,
    summary: Option<&str>,
) -> String {
    let mut out = String::new();
    let stats = &run.stats;
    let _ = writeln!(out, "scenario   {} ({})", scenario.name, scenario.path);
    let _ = writeln!(out, "seed       {}", run.seed);
    if let Some(summary) = summary {
        let _ = writeln!(out, "schedule   {summary}");
    }
    let _ = writeln!(out, "trace hash {:016x}", run.trace_hash);
    // A scenario with menus: the configuration this run drew.
    let drawn = scenario.pinned(&run.config).ok();
    let scenario = drawn.as_ref().unwrap_or(scenario);
    if !run.config.is_empty() {
        let _ = writeln!(out, "config     {}", logjam_sim::scenario::shown_config(&run.config));
    }
    let _ = writeln!(out, "nodes      {}", scenario.node_map());
    let _ = writeln!(
        out,
        "simulated  {} in {} events; {} client ops started, {} skipped (target down or busy); {} faults scheduled",
        format_ns(run.simulated_ns),
        stats.events,
        run.ops_started,
        run.ops_skipped,
        run.faults_scheduled
    );
    let _ = writeln!(
        out,
        "messages   {} sent, {} delivered, {} dropped (random {}, partition {}, node down {}), {} duplicated, {} reordered, {} held by clogs",
        stats.sent,
        stats.delivered,
        stats.dropped(),
        stats.dropped_random,
        stats.dropped_partitioned,
        stats.dropped_node_down,
        stats.duplicated,
        stats.reordered,
        stats.clog_delayed
    );
    let _ = writeln!(
        out,
        "faults     {} crashes, {} starts, {} pauses, {} partitions, {} heals, {} clogs, {} clock jumps, {} ignored",
        stats.crashes,
        stats.starts,
        stats.pauses,
        stats.partitions,
        stats.heals,
        stats.clogs,
        stats.clock_jumps,
        stats.faults_ignored
    );
    if let Some(limit) = run.limit {
        let _ = writeln!(out, "LIMIT      run ended early: {limit}");
    }
    if let Some(why) = &run.budget_exceeded {
        let _ = writeln!(out, "budget     {why}: promised only what that allows");
    }
    let _ = writeln!(out, "invariants");
    let width = run.checks.iter().map(|check| check.invariant.len()).max().unwrap_or(0);
    for check in &run.checks {
        // "seen": an anomaly this configuration allows (not a broken promise).
        let mark = match (check.holds, check.expected_anomaly) {
            (false, _) => "FAIL",
            (true, true) => "seen",
            (true, false) => "ok  ",
        };
        let _ = writeln!(out, "  {mark} {:<width$} {}", check.invariant, check.checked);
        if let Some(witness) = &check.witness {
            let _ = writeln!(out, "       witness: {witness}");
        }
        for line in &check.witness_lines {
            let _ = writeln!(out, "         {line}");
        }
    }
    let _ = writeln!(out, "verdict    {}", report::verdict_text(scenario, run));
    let _ = writeln!(out, "replay     {replay}");
    out
}

/// Faults a schedule summary lists one by one; more are counted by kind.
const SUMMARY_FAULTS_LISTED_MAX: usize = 12;

/// What an explicit schedule runs, in words: its phases, its faults (each with its time
/// when few, by kind when many) and its operations.
pub fn schedule_summary(schedule: &logjam_sim::run::Schedule) -> String {
    let fault = |timed: &logjam_sim::nemesis::TimedFault| {
        let value = serde_json::to_value(&timed.fault).unwrap_or_default();
        let kind = value["kind"].as_str().unwrap_or("fault").to_owned();
        let fields: Vec<String> = value
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(key, _)| *key != "kind")
            .map(|(key, value)| format!("{key} {value}"))
            .collect();
        (kind, fields)
    };
    let faults: Vec<String> = if schedule.faults.len() <= SUMMARY_FAULTS_LISTED_MAX {
        schedule
            .faults
            .iter()
            .map(|timed| {
                let (kind, fields) = fault(timed);
                let fields = if fields.is_empty() {
                    String::new()
                } else {
                    format!(" {}", fields.join(" "))
                };
                format!("{kind}{fields} at {}", format_ns(timed.at_ns))
            })
            .collect()
    } else {
        let mut kinds: std::collections::BTreeMap<String, u64> = Default::default();
        for timed in &schedule.faults {
            *kinds.entry(fault(timed).0).or_default() += 1;
        }
        kinds.into_iter().map(|(kind, count)| format!("{count} {kind}")).collect()
    };
    let count =
        |n: usize, thing: &str| if n == 1 { format!("1 {thing}") } else { format!("{n} {thing}s") };
    format!(
        "chaos {}, quiet {}; {} ({}); {}",
        format_ns(schedule.chaos_ns),
        format_ns(schedule.quiet_ns),
        count(schedule.faults.len(), "fault"),
        faults.join(", "),
        count(schedule.ops.len(), "operation")
    )
}

/// How many runs held, and how many of them showed anomalies the configuration allows:
/// the words the sweep's text and Markdown share.
pub fn held_words(held: u64, held_with_anomalies: u64) -> String {
    match held_with_anomalies {
        0 => format!("{held} held"),
        n => format!("{held} held ({n} with anomalies the configuration allows)"),
    }
}

/// The command that shrinks a failing seed to a minimal schedule file.
pub fn shrink_command(scenario: &Scenario, seed: u64) -> String {
    format!(
        "cargo run --release -p logjam -- shrink {} --seed {seed} -o {}-{seed}.json",
        scenario.path, scenario.name
    )
}

/// A sweep as text: the tally, then every seed that broke the expectation with its
/// replay command.
pub fn sweep_text(scenario: &Scenario, sweep: &SweepResult) -> String {
    let mut out = String::new();
    let end = sweep.start + sweep.seeds;
    let about =
        if scenario.about.is_empty() { String::new() } else { format!(": {}", scenario.about) };
    let _ = writeln!(out, "scenario {} ({}){about}", scenario.name, scenario.path);
    let _ = writeln!(out, "nodes    {}", scenario.node_map());
    let _ = writeln!(
        out,
        "seeds {}..{end}: {}, {} expected violations, {} unexpected",
        sweep.start,
        held_words(sweep.held, sweep.held_with_anomalies),
        sweep.expected_violations,
        sweep.unexpected_total
    );
    if let Some(seed) = sweep.first_expected_seed {
        let _ = writeln!(out, "expected violation first seen at seed {seed}");
        let _ = writeln!(out, "  replay: {}", replay_command(scenario, seed));
        let _ = writeln!(out, "  shrink: {}", shrink_command(scenario, seed));
        if sweep.expected_seeds.len() > 1 {
            let seeds: Vec<String> = sweep.expected_seeds.iter().map(u64::to_string).collect();
            let _ = writeln!(out, "  seen at seeds {}", seeds.join(", "));
        }
    }
    for failure in &sweep.unexpected {
        let _ = writeln!(out, "FAIL seed {}: {}", failure.seed, failure.why);
        let hash = failure
            .trace_hash
            .map(|hash| format!("  (trace hash {hash:016x})"))
            .unwrap_or_default();
        let _ = writeln!(out, "  replay: {}{hash}", replay_command(scenario, failure.seed));
        let _ = writeln!(out, "  shrink: {}", shrink_command(scenario, failure.seed));
    }
    let unlisted = sweep.unexpected_total.saturating_sub(sweep.unexpected.len() as u64);
    if unlisted > 0 {
        let _ = writeln!(out, "... and {unlisted} more failing seeds, not listed");
    }
    for row in report::config_rows(sweep) {
        let first = row
            .first_unexpected_seed
            .map(|seed| format!(", first failing seed {seed}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "config {}: {} runs, {} held, {} expected violations, {} unexpected{first}",
            row.value, row.runs, row.held, row.expected_violations, row.unexpected
        );
        if !row.not_reached.is_empty() && row.runs > 0 {
            let _ =
                writeln!(out, "  never reached: {}", report::not_reached_text(&row.not_reached));
        }
    }
    let never: Vec<String> =
        sweep.by_config.iter().filter(|(_, t)| t.runs == 0).map(|(v, _)| v.clone()).collect();
    if !never.is_empty() {
        let _ = writeln!(out, "drawn by no seed: {}", never.join(", "));
    }
    if let Some(missing) = &sweep.expected_violation_missing {
        let _ = writeln!(out, "FAIL {missing}: the harness lost its teeth");
    }
    for shortfall in &sweep.under_covered {
        let _ = writeln!(out, "FAIL {shortfall}");
    }
    let _ = writeln!(out, "{}", if sweep.passed() { "PASS" } else { "FAIL" });
    out
}

/// The JSON of a sweep: the tally and, per unexpected seed, why and how to replay it.
#[derive(Serialize)]
struct SweepJson<'a> {
    schema: &'static str,
    #[serde(flatten)]
    sweep: &'a SweepResult,
    passed: bool,
    replay: Vec<String>,
}

pub fn sweep_json(scenario: &Scenario, sweep: &SweepResult) -> String {
    let replay =
        sweep.unexpected.iter().map(|failure| replay_command(scenario, failure.seed)).collect();
    let json = SweepJson { schema: "logjam.sweep.v1", sweep, passed: sweep.passed(), replay };
    serde_json::to_string_pretty(&json).expect("a sweep serializes")
}

#[derive(Serialize)]
struct RunJson<'a> {
    schema: &'static str,
    #[serde(flatten)]
    run: &'a RunResult,
    /// `held`, `expected-violation` or `unexpected: ...`, for machines.
    verdict: String,
    /// The verdict in the words every output shares (`report::verdict_text`).
    verdict_text: String,
    replay: String,
}

pub fn run_json(scenario: &Scenario, run: &RunResult, replay: &str) -> String {
    let verdict = match run.verdict(&scenario.expect) {
        RunVerdict::Held => "held".to_owned(),
        RunVerdict::ExpectedViolation => "expected-violation".to_owned(),
        RunVerdict::Unexpected(why) => format!("unexpected: {why}"),
    };
    let verdict_text = report::verdict_text(scenario, run);
    let json =
        RunJson { schema: "logjam.run.v1", run, verdict, verdict_text, replay: replay.to_owned() };
    serde_json::to_string_pretty(&json).expect("a run serializes")
}
