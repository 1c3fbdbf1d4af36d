//! `RunReport` and `SweepReport`: what a reader needs of a run or a sweep, gathered once
//! and rendered as Markdown (for review, and the snapshots under `reports/snapshots/`)
//! or JSON (`logjam.run-report.v1`, `logjam.sweep-report.v1`; documented in
//! `reports/REPORTS.md`). Nothing here depends on the machine or the wall clock.

use std::collections::BTreeMap;
use std::fmt::Write;

use logjam_sim::coverage;
use logjam_sim::run::{RunResult, RunVerdict, SweepResult, replay_command};
use logjam_sim::scenario::{Expect, Scenario, System};
use logjam_sim::time::{format_duration_short, format_ns};
use serde::Serialize;

/// One run, for people and programs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    pub schema: &'static str,
    pub scenario: String,
    pub path: String,
    pub about: String,
    pub seed: u64,
    /// For a run of an explicit schedule (a schedule file): what it ran
    /// (`schedule_summary`); its phases replace the scenario's in the configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    pub trace_hash: String,
    pub simulated: String,
    pub events: u64,
    /// Which nodes play which role (`brokers n0-n2, controller n3, ...`).
    pub nodes: String,
    /// The configuration as `key=value` pairs, in a fixed order.
    pub configuration: Vec<(String, String)>,
    /// The values this run drew from the scenario's configuration menus (none without
    /// menus).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drawn: Vec<(String, String)>,
    /// The guarantees that configuration promises (the model's catalogue).
    pub promises: Vec<String>,
    /// Why the run was promised less than its configuration (more replicas lossy at
    /// once than the budget), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_exceeded: Option<String>,
    /// Client operations by kind and outcome.
    pub operations: BTreeMap<String, u64>,
    /// Messages by fate.
    pub messages: Vec<(String, u64)>,
    /// Faults and protocol events reached, by coverage item.
    pub reached: BTreeMap<String, u64>,
    /// The coverage items this scenario can reach (`coverage::reachable`), and any it
    /// did reach: the Markdown table lists these.
    #[serde(skip)]
    pub reachable: Vec<String>,
    pub invariants: Vec<InvariantRow>,
    pub verdict: String,
    pub anomaly: Option<AnomalyReport>,
    pub replay: String,
}

/// One invariant's line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InvariantRow {
    /// `ok`, `seen` (an anomaly the configuration allows) or `FAIL`.
    pub mark: &'static str,
    pub invariant: String,
    pub checked: String,
    pub witness: Option<String>,
}

/// The anomaly a failing run is remembered by, with its smallest witness.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnomalyReport {
    pub invariant: String,
    /// True when the configuration promised it would not happen.
    pub violation: bool,
    pub explanation: String,
    pub witness_lines: Vec<String>,
}

impl RunReport {
    pub fn new(scenario: &Scenario, run: &RunResult, replay: &str) -> RunReport {
        let stats = &run.stats;
        let invariants = run
            .checks
            .iter()
            .map(|check| InvariantRow {
                mark: mark(check.holds, check.expected_anomaly),
                invariant: check.invariant.to_owned(),
                checked: check.checked.clone(),
                witness: check.witness.clone(),
            })
            .collect();
        let anomaly = run
            .checks
            .iter()
            .find(|check| !check.holds)
            // The anomaly the scenario names first, then any other allowed one.
            .or_else(|| {
                run.checks.iter().find(|check| {
                    check.expected_anomaly
                        && matches!(&scenario.expect, Expect::Violation { invariant, .. } if invariant == check.invariant)
                })
            })
            .or_else(|| run.checks.iter().find(|check| check.expected_anomaly))
            .map(|check| AnomalyReport {
                invariant: check.invariant.to_owned(),
                violation: !check.holds,
                explanation: check.witness.clone().unwrap_or_default(),
                witness_lines: check.witness_lines.clone(),
            });
        // A scenario with menus: the configuration this run drew.
        let drawn = scenario.pinned(&run.config).ok();
        let scenario = drawn.as_ref().unwrap_or(scenario);
        let (configuration, promises) = configuration(scenario);
        RunReport {
            schema: "logjam.run-report.v1",
            scenario: scenario.name.clone(),
            path: scenario.path.clone(),
            about: scenario.about.clone(),
            seed: run.seed,
            schedule: None,
            trace_hash: format!("{:016x}", run.trace_hash),
            simulated: format_ns(run.simulated_ns),
            events: stats.events,
            nodes: scenario.node_map(),
            configuration,
            drawn: run.config.clone(),
            promises,
            budget_exceeded: run.budget_exceeded.clone(),
            operations: run.ops.clone(),
            messages: vec![
                ("sent".to_owned(), stats.sent),
                ("delivered".to_owned(), stats.delivered),
                ("dropped at random".to_owned(), stats.dropped_random),
                ("dropped by a partition".to_owned(), stats.dropped_partitioned),
                ("dropped: node down".to_owned(), stats.dropped_node_down),
                ("duplicated".to_owned(), stats.duplicated),
                ("reordered".to_owned(), stats.reordered),
                ("held by a clog".to_owned(), stats.clog_delayed),
            ],
            reached: run.reached.clone(),
            reachable: coverage::ITEMS
                .iter()
                .map(|(name, _)| *name)
                .filter(|name| {
                    coverage::reachable(scenario, name)
                        || run.reached.get(*name).is_some_and(|&n| n > 0)
                })
                .map(str::to_owned)
                .collect(),
            invariants,
            verdict: verdict_text(scenario, run),
            anomaly,
            replay: replay.to_owned(),
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }

    /// The report of a run of an explicit schedule (`schedule_summary` of it).
    pub fn with_schedule(self, summary: String) -> RunReport {
        RunReport { schedule: Some(summary), ..self }
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Run: {} seed {}\n", self.scenario, self.seed);
        let _ = writeln!(out, "{}\n", self.about);
        let mut rows = vec![
            vec!["scenario".into(), format!("`{}`", self.path)],
            vec!["seed".into(), self.seed.to_string()],
        ];
        rows.extend(self.schedule.iter().map(|summary| vec!["schedule".into(), summary.clone()]));
        rows.extend([
            vec!["trace hash".into(), format!("`{}`", self.trace_hash)],
            vec!["simulated".into(), format!("{} in {} events", self.simulated, self.events)],
            vec!["nodes".into(), self.nodes.clone()],
            vec!["verdict".into(), self.verdict.clone()],
            vec!["replay".into(), format!("`{}`", self.replay)],
        ]);
        table(&mut out, &["", ""], &rows);
        let _ = writeln!(out, "## Configuration\n");
        let pairs: Vec<String> =
            self.configuration.iter().map(|(k, v)| format!("`{k}={v}`")).collect();
        let _ = writeln!(out, "{}\n", pairs.join(" "));
        if !self.drawn.is_empty() {
            let drawn: Vec<String> = self.drawn.iter().map(|(k, v)| format!("`{k}={v}`")).collect();
            let _ = writeln!(out, "Drawn from the scenario's menus: {}\n", drawn.join(" "));
        }
        let promised = if self.promises.is_empty() {
            "nothing (no model for this system)".to_owned()
        } else {
            self.promises.join(", ")
        };
        let _ = writeln!(out, "Promises: {promised}.\n");
        if let Some(why) = &self.budget_exceeded {
            let _ = writeln!(out, "Budget: {why}; this run is held only to what that allows.\n");
        }
        if let Some(anomaly) = &self.anomaly {
            let kind =
                if anomaly.violation { "Violation" } else { "Anomaly this configuration allows" };
            let _ = writeln!(out, "## {kind}: `{}`\n", anomaly.invariant);
            let _ = writeln!(out, "{}\n", anomaly.explanation);
            if !anomaly.witness_lines.is_empty() {
                let _ = writeln!(out, "```");
                for line in &anomaly.witness_lines {
                    let _ = writeln!(out, "{line}");
                }
                let _ = writeln!(out, "```\n");
            }
        }
        let _ = writeln!(out, "## Invariants\n");
        let rows: Vec<Vec<String>> = self
            .invariants
            .iter()
            .map(|row| {
                vec![
                    row.mark.to_owned(),
                    format!("`{}`", row.invariant),
                    row.checked.clone(),
                    row.witness.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(&mut out, &["", "invariant", "checked", "witness"], &rows);
        let _ = writeln!(out, "## What happened\n");
        let counts = |map: &BTreeMap<String, u64>| -> Vec<Vec<String>> {
            map.iter().map(|(name, count)| vec![name.clone(), count.to_string()]).collect()
        };
        if !self.operations.is_empty() {
            table(&mut out, &["operation", "count"], &counts(&self.operations));
        }
        let messages: Vec<Vec<String>> = self
            .messages
            .iter()
            .map(|(name, count)| vec![name.clone(), count.to_string()])
            .collect();
        table(&mut out, &["messages", "count"], &messages);
        let reached: Vec<Vec<String>> = coverage::ITEMS
            .iter()
            .filter(|(name, _)| self.reachable.iter().any(|item| item == name))
            .map(|(name, meaning)| {
                let count = self.reached.get(*name).copied().unwrap_or(0);
                vec![format!("`{name}`"), count.to_string(), (*meaning).to_owned()]
            })
            .collect();
        table(&mut out, &["faults and protocol events", "count", "meaning"], &reached);
        out
    }
}

/// A sweep, with its coverage and (where failures are expected) how many seeds a
/// search needs to find one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepReport {
    pub schema: &'static str,
    pub scenario: String,
    pub path: String,
    pub about: String,
    /// Which nodes play which role (`brokers n0-n2, controller n3, ...`).
    pub nodes: String,
    pub start: u64,
    pub seeds: u64,
    pub held: u64,
    /// Of the runs that held, those that showed anomalies the configuration allows.
    pub held_with_anomalies: u64,
    pub expected_violations: u64,
    pub unexpected: u64,
    pub passed: bool,
    /// Each failing seed: why, and the commands that replay and shrink it.
    pub failures: Vec<FailureRow>,
    /// Why the sweep failed besides failing seeds (lost teeth, under-covered).
    pub problems: Vec<String>,
    /// Per coverage item: runs that reached it, and the share the scenario requires.
    pub coverage: Vec<CoverageRow>,
    /// Seeds-to-failure histogram: (low, high, count) buckets.
    pub seeds_to_failure: Vec<(u64, u64, u64)>,
    /// The seeds that showed the anomaly the scenario expects, lowest first (at most
    /// `EXPECTED_SEEDS_KEPT_MAX`), with the commands that replay and shrink the first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expected_seeds: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_expected: Option<ExpectedRow>,
    /// Per configuration menu value, for a scenario with menus (none without).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configurations: Vec<ConfigRow>,
}

/// The runs of a sweep that drew one menu value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigRow {
    /// `cluster.acks=1`.
    pub value: String,
    pub runs: u64,
    pub held: u64,
    pub expected_violations: u64,
    pub unexpected: u64,
    pub first_unexpected_seed: Option<u64>,
    pub first_expected_seed: Option<u64>,
    /// Coverage items these runs reached, of those the whole sweep reached.
    pub items_reached: usize,
    pub items_reached_by_sweep: usize,
    /// The items the sweep reached that no run of this value did, in catalogue
    /// order: the corners of the space this value never led to.
    pub not_reached: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailureRow {
    pub seed: u64,
    pub why: String,
    pub trace_hash: Option<String>,
    pub replay: String,
    pub shrink: String,
}

/// The first seed that showed the expected anomaly, and how to look at it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExpectedRow {
    pub seed: u64,
    pub replay: String,
    pub shrink: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CoverageRow {
    pub item: String,
    pub runs: u64,
    pub required: Option<String>,
}

impl SweepReport {
    pub fn new(scenario: &Scenario, sweep: &SweepResult) -> SweepReport {
        let required: BTreeMap<&str, u32> = scenario
            .coverage
            .iter()
            .map(|requirement| (requirement.item.as_str(), requirement.min_per_mille))
            .collect();
        let mut problems = Vec::new();
        problems.extend(
            sweep
                .expected_violation_missing
                .iter()
                .map(|m| format!("{m}: the harness lost its teeth")),
        );
        problems.extend(sweep.under_covered.iter().cloned());
        SweepReport {
            schema: "logjam.sweep-report.v1",
            scenario: scenario.name.clone(),
            path: scenario.path.clone(),
            about: scenario.about.clone(),
            nodes: scenario.node_map(),
            start: sweep.start,
            seeds: sweep.seeds,
            held: sweep.held,
            held_with_anomalies: sweep.held_with_anomalies,
            expected_violations: sweep.expected_violations,
            unexpected: sweep.unexpected_total,
            passed: sweep.passed(),
            failures: sweep
                .unexpected
                .iter()
                .map(|failure| FailureRow {
                    seed: failure.seed,
                    why: failure.why.clone(),
                    trace_hash: failure.trace_hash.map(|hash| format!("{hash:016x}")),
                    replay: replay_command(scenario, failure.seed),
                    shrink: crate::shrink_command(scenario, failure.seed),
                })
                .collect(),
            problems,
            // The items this scenario can reach, and any a run did reach.
            coverage: coverage::ITEMS
                .iter()
                .filter(|(name, _)| {
                    coverage::reachable(scenario, name)
                        || sweep.coverage.get(*name).is_some_and(|&runs| runs > 0)
                        || required.contains_key(name)
                })
                .map(|(name, _)| CoverageRow {
                    item: (*name).to_owned(),
                    runs: sweep.coverage.get(*name).copied().unwrap_or(0),
                    required: required
                        .get(name)
                        .map(|&per_mille| coverage::per_mille_text(per_mille)),
                })
                .collect(),
            seeds_to_failure: sweep.seeds_to_failure(),
            expected_seeds: sweep.expected_seeds.clone(),
            first_expected: sweep.first_expected_seed.map(|seed| ExpectedRow {
                seed,
                replay: replay_command(scenario, seed),
                shrink: crate::shrink_command(scenario, seed),
            }),
            configurations: config_rows(sweep),
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let end = self.start + self.seeds;
        let _ = writeln!(out, "# Sweep: {} seeds {}..{end}\n", self.scenario, self.start);
        if !self.about.is_empty() {
            let _ = writeln!(out, "{}\n", self.about);
        }
        let _ = writeln!(out, "Nodes: {}.\n", self.nodes);
        let _ = writeln!(
            out,
            "**{}**: {}, {} expected violations, {} unexpected.\n",
            if self.passed { "PASS" } else { "FAIL" },
            crate::held_words(self.held, self.held_with_anomalies),
            self.expected_violations,
            self.unexpected
        );
        for problem in &self.problems {
            let _ = writeln!(out, "- FAIL {problem}");
        }
        if !self.problems.is_empty() {
            let _ = writeln!(out);
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "## Failing seeds\n");
            for failure in &self.failures {
                let hash = failure.trace_hash.as_deref().unwrap_or("none: it panicked");
                let _ =
                    writeln!(out, "- seed {}: {} (trace hash `{hash}`)", failure.seed, failure.why);
                let _ = writeln!(out, "  - replay: `{}`", failure.replay);
                let _ = writeln!(out, "  - shrink: `{}`", failure.shrink);
            }
            if self.unexpected > self.failures.len() as u64 {
                let more = self.unexpected - self.failures.len() as u64;
                let _ = writeln!(out, "- ... and {more} more, not listed");
            }
            let _ = writeln!(out);
        }
        if let Some(first) = &self.first_expected {
            let _ = writeln!(out, "## Seeds that showed the expected anomaly\n");
            let seeds: Vec<String> = self.expected_seeds.iter().map(u64::to_string).collect();
            let _ = writeln!(out, "{}\n", seeds.join(", "));
            let _ = writeln!(out, "- first, seed {}:", first.seed);
            let _ = writeln!(out, "  - replay: `{}`", first.replay);
            let _ = writeln!(out, "  - shrink: `{}`\n", first.shrink);
        }
        let _ = writeln!(out, "## Coverage\n");
        let _ = writeln!(out, "Runs (of {}) that reached each at least once.\n", self.seeds);
        let rows: Vec<Vec<String>> = self
            .coverage
            .iter()
            .map(|row| {
                let share =
                    if self.seeds == 0 { 0.0 } else { 100.0 * row.runs as f64 / self.seeds as f64 };
                vec![
                    format!("`{}`", row.item),
                    row.runs.to_string(),
                    format!("{share:.1}%"),
                    row.required.clone().map_or(String::new(), |r| format!("at least {r}")),
                ]
            })
            .collect();
        table(&mut out, &["item", "runs", "share", "required"], &rows);
        if !self.configurations.is_empty() {
            let _ = writeln!(out, "## Configurations\n");
            let _ = writeln!(
                out,
                "Each menu value with the runs that drew it, each judged by what its drawn \
                 configuration promises; coverage counts the items those runs reached, of \
                 the items the sweep reached.\n"
            );
            let seed = |seed: Option<u64>| seed.map_or(String::new(), |seed| seed.to_string());
            let rows: Vec<Vec<String>> = self
                .configurations
                .iter()
                .map(|row| {
                    vec![
                        format!("`{}`", row.value),
                        row.runs.to_string(),
                        row.held.to_string(),
                        row.expected_violations.to_string(),
                        row.unexpected.to_string(),
                        seed(row.first_unexpected_seed),
                        seed(row.first_expected_seed),
                        format!("{}/{}", row.items_reached, row.items_reached_by_sweep),
                        not_reached_text(&row.not_reached),
                    ]
                })
                .collect();
            table(
                &mut out,
                &[
                    "value",
                    "runs",
                    "held",
                    "expected",
                    "failed",
                    "first failing",
                    "first expected",
                    "coverage",
                    "never reached",
                ],
                &rows,
            );
            let never: Vec<String> = self
                .configurations
                .iter()
                .filter(|row| row.runs == 0)
                .map(|row| format!("`{}`", row.value))
                .collect();
            if !never.is_empty() {
                let _ = writeln!(out, "Drawn by no seed: {}.\n", never.join(", "));
            }
        }
        if !self.seeds_to_failure.is_empty() {
            let _ = writeln!(out, "## Seeds to failure\n");
            let _ = writeln!(
                out,
                "How many consecutive seeds a search needs to find the expected violation \
                 (the gaps between the seeds that showed it).\n"
            );
            let most = self.seeds_to_failure.iter().map(|(_, _, count)| *count).max().unwrap_or(1);
            let rows: Vec<Vec<String>> = self
                .seeds_to_failure
                .iter()
                .map(|&(low, high, count)| {
                    let bar = "#".repeat(((count * 40).div_ceil(most)) as usize);
                    let range = if low == high { low.to_string() } else { format!("{low}-{high}") };
                    vec![range, count.to_string(), format!("`{bar}`")]
                })
                .collect();
            table(&mut out, &["seeds", "times", ""], &rows);
        }
        out
    }
}

/// The per-value rows of a sweep of a scenario with menus.
/// Items a value's runs never reached, for people: at most `NOT_REACHED_SHOWN_MAX`
/// named, then how many more.
pub fn not_reached_text(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(NOT_REACHED_SHOWN_MAX).map(String::as_str).collect();
    match items.len().saturating_sub(NOT_REACHED_SHOWN_MAX) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// Unreached items a configuration row names before it counts the rest.
pub const NOT_REACHED_SHOWN_MAX: usize = 6;

pub fn config_rows(sweep: &SweepResult) -> Vec<ConfigRow> {
    let reached_by_sweep = sweep.coverage.values().filter(|&&runs| runs > 0).count();
    sweep
        .by_config
        .iter()
        .map(|(value, tally)| ConfigRow {
            value: value.clone(),
            runs: tally.runs,
            held: tally.held,
            expected_violations: tally.expected_violations,
            unexpected: tally.unexpected,
            first_unexpected_seed: tally.first_unexpected_seed,
            first_expected_seed: tally.first_expected_seed,
            items_reached: tally.coverage.values().filter(|&&runs| runs > 0).count(),
            items_reached_by_sweep: reached_by_sweep,
            not_reached: sweep
                .coverage
                .iter()
                .filter(|&(item, &runs)| {
                    runs > 0 && tally.coverage.get(item).is_none_or(|&mine| mine == 0)
                })
                .map(|(item, _)| item.clone())
                .collect(),
        })
        .collect()
}

fn mark(holds: bool, expected_anomaly: bool) -> &'static str {
    match (holds, expected_anomaly) {
        (false, _) => "FAIL",
        (true, true) => "seen",
        (true, false) => "ok",
    }
}

/// A run's verdict in words, the one wording every output uses (text, Markdown, JSON,
/// HTML): whether every promise held, and the anomalies the configuration allows that
/// the run showed, by name, so a "held" never hides them.
pub fn verdict_text(scenario: &Scenario, run: &RunResult) -> String {
    let known = scenario.expect.known_anomaly();
    let allowed: Vec<&str> = run
        .checks
        .iter()
        .filter(|check| check.holds && check.expected_anomaly)
        .map(|check| check.invariant)
        .filter(|&invariant| Some(invariant) != known)
        .collect();
    // Kinds, not instances: a check counts its anomalies in its own line.
    let also = if known.is_some() { "also " } else { "" };
    let seen = match allowed.len() {
        0 => String::new(),
        1 => format!("; {also}seen, as the configuration allows: {}", allowed[0]),
        n => {
            format!("; {also}seen, as the configuration allows ({n} kinds): {}", allowed.join(", "))
        }
    };
    match run.verdict(&scenario.expect) {
        RunVerdict::Held => format!("held: every promised invariant holds{seen}"),
        RunVerdict::ExpectedViolation => format!(
            "expected violation: {}, the scenario's known anomaly, and no broken promise{seen}",
            known.unwrap_or("the anomaly")
        ),
        RunVerdict::Unexpected(why) => format!("UNEXPECTED: {why}{seen}"),
    }
}

/// The scenario's configuration as pairs, and the guarantees it promises.
fn configuration(scenario: &Scenario) -> (Vec<(String, String)>, Vec<String>) {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut add = |key: &str, value: String| pairs.push((key.to_owned(), value));
    let promises = match &scenario.system {
        System::LogCluster(spec) => {
            add("brokers", spec.brokers.to_string());
            add("partitions", spec.partitions.to_string());
            add("replication_factor", spec.replication_factor.to_string());
            add("producers", spec.producers.to_string());
            add("consumers", spec.consumers.to_string());
            let config = spec.model_config(scenario.crashes_max, scenario.disk_faults_max);
            for part in config.to_string().split_whitespace().filter(|p| p.contains('=')) {
                if let Some((key, value)) = part.split_once('=') {
                    add(key, value.to_owned());
                }
            }
            let segment_kib = spec.segment_bytes_max / 1024;
            if segment_kib != logjam_sim::scenario::SEGMENT_KIB_DEFAULT {
                add("segment_kib", segment_kib.to_string());
            }
            config.promises().into_iter().map(|g| g.name().to_owned()).collect()
        }
        System::GossipCounter { gossip_every_ns, durable } => {
            add("nodes", scenario.world.nodes.to_string());
            add("gossip_every", format_duration_short(*gossip_every_ns));
            add("durable", durable.to_string());
            Vec::new()
        }
    };
    add("ops_per_s", scenario.ops_per_s.to_string());
    add("chaos", format_duration_short(scenario.chaos_ns));
    add("quiet", format_duration_short(scenario.quiet_ns));
    let expect = match &scenario.expect {
        Expect::AllHold => "all-hold".to_owned(),
        Expect::Violation { invariant, within_seeds } => {
            format!("{invariant} within {within_seeds} seeds")
        }
    };
    add("expect", expect);
    (pairs, promises)
}

/// A Markdown table; `|` in cells is escaped.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let cell = |text: &str| text.replace('|', "\\|").replace('\n', " ");
    let _ = writeln!(out, "| {} |", header.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in rows {
        let _ =
            writeln!(out, "| {} |", row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | "));
    }
    let _ = writeln!(out);
}
