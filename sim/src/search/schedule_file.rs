//! Schedule files: one explicit schedule with the scenario it runs in, what it showed
//! and what it must keep showing. `logjam shrink` writes them, `logjam replay
//! --schedule` runs them, and every file under `scenarios/regressions/` is replayed by
//! `cargo test`.
//!
//! The format is JSON (`logjam-schedule/1`):
//!
//! ```json
//! {
//!   "format": "logjam-schedule/1",
//!   "scenario": "scenarios/legacy-truncation.toml",
//!   "anomaly": "lost-write",
//!   "expect": "anomaly",
//!   "note": "how it was found",
//!   "origin": { "seed": 17, "faults": 40, "ops": 1500 },
//!   "schedule": { "seed": 17, "chaos_ns": ..., "quiet_ns": ..., "faults": [...], "ops": [...] }
//! }
//! ```
//!
//! `expect` is `"anomaly"` when the scenario's configuration allows the anomaly (the
//! file must keep showing it, or the harness lost its teeth) and `"holds"` when it was a
//! bug (the file must hold once fixed, and fails the build if the bug comes back).
//!
//! A file is checked against its scenario before anything runs: every node, partition
//! and time must be one the scenario has. Unknown keys are refused everywhere in the
//! format, and every refusal names the line and column of the value it is about.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::Fault;
use crate::NodeId;
use crate::run::{OPS_PER_RUN_MAX, RunResult, Schedule};
use crate::scenario::{Scenario, System};

/// The format this version reads and writes, named in every file's `format`.
pub const FORMAT: &str = "logjam-schedule/1";

/// The most faults one schedule file may hold.
pub const FAULTS_PER_SCHEDULE_MAX: usize = 100_000;

/// What replaying the file must show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expectation {
    /// The anomaly, which the scenario's configuration allows.
    Anomaly,
    /// Every invariant holds: the anomaly was a bug, now fixed.
    Holds,
}

/// Where a shrunk schedule came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// The seed whose schedule was shrunk.
    pub seed: u64,
    /// The seed's schedule before shrinking: faults (the closing heal not counted)...
    pub faults: usize,
    /// ...and client operations.
    pub ops: usize,
}

/// A schedule file's contents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    /// The format's name and version: `FORMAT`.
    pub format: String,
    /// The scenario file, relative to the repository root (or the working directory).
    pub scenario: String,
    /// The invariant the schedule broke when it was written.
    pub anomaly: String,
    /// What replaying it must show.
    pub expect: Expectation,
    /// Free text for people: how it was found (may be empty).
    #[serde(default)]
    pub note: String,
    /// Where it was shrunk from, if it was.
    #[serde(default)]
    pub origin: Option<Origin>,
    /// The schedule replayed.
    pub schedule: Schedule,
}

/// Why a schedule file was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleError {
    /// The schedule file, as given.
    pub path: String,
    /// 1-based line and column, when the problem has a place in the file.
    pub place: Option<(usize, usize)>,
    /// The problem, in one line.
    pub message: String,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.place {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

impl std::error::Error for ScheduleError {}

/// The invariants a run broke or showed as an allowed anomaly, in catalogue order, and
/// `limit` when a limit ended it: the "anomaly kinds" a shrinker must keep.
pub fn anomalies(result: &RunResult) -> Vec<String> {
    let mut kinds: Vec<String> = result
        .checks
        .iter()
        .filter(|check| !check.holds || check.expected_anomaly)
        .map(|check| check.invariant.to_owned())
        .collect();
    if result.limit.is_some() {
        kinds.push("limit".to_owned());
    }
    kinds
}

/// The anomaly a failing run is remembered by: the one the scenario expects if it is
/// there, else the first broken invariant (or `limit`).
pub fn primary_anomaly(scenario: &Scenario, result: &RunResult) -> Option<String> {
    let kinds = anomalies(result);
    if let crate::scenario::Expect::Violation { invariant, .. } = &scenario.expect {
        if kinds.contains(invariant) {
            return Some(invariant.clone());
        }
    }
    let broken = result.checks.iter().find(|check| !check.holds);
    match (broken, result.limit) {
        (Some(check), _) => Some(check.invariant.to_owned()),
        (None, Some(_)) => Some("limit".to_owned()),
        (None, None) => kinds.into_iter().next(),
    }
}

impl ScheduleFile {
    /// Reads and checks a schedule file, and loads and checks it against its scenario.
    pub fn load(path: &Path) -> Result<(ScheduleFile, Scenario), ScheduleError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ScheduleError {
            path: shown.clone(),
            place: None,
            message: format!("cannot read: {error}"),
        })?;
        let file = ScheduleFile::parse(&text, &shown)?;
        let scenario_path = resolve(path, &file.scenario);
        let scenario = Scenario::load(&scenario_path).map_err(|error| ScheduleError {
            path: shown.clone(),
            place: locate(&text, "scenario"),
            message: format!("its scenario `{}`: {error}", file.scenario),
        })?;
        file.check(&scenario).map_err(|message| placed(&shown, &text, message))?;
        Ok((file, scenario))
    }

    /// Checks the file read from `path` against `scenario`, as `check`, and names the
    /// place of a problem in the file (read again only then, to find it).
    pub fn check_at(&self, scenario: &Scenario, path: &Path) -> Result<(), ScheduleError> {
        self.check(scenario).map_err(|message| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            placed(&path.display().to_string(), &text, message)
        })
    }

    /// Parses the text of a schedule file (not yet checked against its scenario).
    pub fn parse(text: &str, path: &str) -> Result<ScheduleFile, ScheduleError> {
        let file: ScheduleFile = serde_json::from_str(text).map_err(|error| ScheduleError {
            path: path.to_owned(),
            place: (error.line() > 0).then(|| (error.line(), error.column())),
            message: error.to_string(),
        })?;
        if file.format != FORMAT {
            let message = format!("format: `{}`, but this logjam reads `{FORMAT}`", file.format);
            return Err(placed(path, text, message));
        }
        // Serde refuses unknown keys of structs, not those of a fault (its enum is read
        // as a whole before its variant is known): compare every key of the text with
        // what was read.
        let read = serde_json::to_value(&file).expect("a schedule file serializes");
        let raw: &RawValue = serde_json::from_str(text).expect("parsed above");
        if let Some(unknown) = unknown_key(raw, &read, String::new()) {
            let message = format!(
                "{}: unknown field `{}`, expected one of {}",
                unknown.path,
                unknown.key,
                unknown.known.iter().map(|key| format!("`{key}`")).collect::<Vec<_>>().join(", ")
            );
            return Err(ScheduleError {
                path: path.to_owned(),
                place: Some(line_column(text, offset(text, unknown.raw))),
                message,
            });
        }
        Ok(file)
    }

    /// Checks the schedule against the scenario: nodes, partitions and times it has;
    /// and an expected anomaly must be one the scenario allows.
    pub fn check(&self, scenario: &Scenario) -> Result<(), String> {
        if self.expect == Expectation::Anomaly {
            let allowed = scenario.expect.known_anomaly();
            if allowed != Some(self.anomaly.as_str()) {
                return Err(format!(
                    "expect: `anomaly` `{}`, which scenario {} does not allow (it expects {})",
                    self.anomaly,
                    scenario.name,
                    allowed.map_or("every invariant to hold".to_owned(), |i| format!("`{i}`"))
                ));
            }
        }
        check_schedule(scenario, &self.schedule)
    }

    /// The file's text: pretty-printed JSON ending in a newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a schedule file serializes");
        text.push('\n');
        text
    }
}

/// A scenario path as written in a schedule file: relative to the working directory,
/// or else to the first directory above the schedule file where it exists (so that
/// `scenarios/regressions/x.json` finds `scenarios/x.toml` from anywhere in the tree).
fn resolve(schedule_path: &Path, scenario: &str) -> PathBuf {
    let given = PathBuf::from(scenario);
    if given.is_absolute() || given.exists() {
        return given;
    }
    let absolute = std::path::absolute(schedule_path).unwrap_or_else(|_| schedule_path.into());
    absolute
        .ancestors()
        .skip(1)
        .map(|dir| dir.join(&given))
        .find(|candidate| candidate.exists())
        .unwrap_or(given)
}

/// A key of the text that the file read has not: a field no part of the format knows.
struct UnknownKey<'t> {
    /// Where it is: `schedule.faults[0].fault.colour`.
    path: String,
    key: String,
    /// Its value in the text.
    raw: &'t RawValue,
    /// The keys the object it is in may have (those the file read has there).
    known: Vec<String>,
}

/// The first key of `raw` (in the order of the text) that `read` does not have.
fn unknown_key<'t>(raw: &'t RawValue, read: &Value, path: String) -> Option<UnknownKey<'t>> {
    match read {
        Value::Object(fields) => {
            for (key, value) in members(raw) {
                let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                let Some(field) = fields.get(&key) else {
                    let known = fields.keys().cloned().collect();
                    return Some(UnknownKey { path: here, key, raw: value, known });
                };
                if let Some(unknown) = unknown_key(value, field, here) {
                    return Some(unknown);
                }
            }
            None
        }
        Value::Array(items) => elements(raw)
            .into_iter()
            .zip(items)
            .enumerate()
            .find_map(|(index, (raw, item))| unknown_key(raw, item, format!("{path}[{index}]"))),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => None,
    }
}

/// The members of a JSON object, in the order of the text (none if it is no object).
fn members(raw: &RawValue) -> Vec<(String, &RawValue)> {
    let members: std::collections::BTreeMap<String, &RawValue> =
        serde_json::from_str(raw.get()).unwrap_or_default();
    let mut members: Vec<(String, &RawValue)> = members.into_iter().collect();
    members.sort_by_key(|(_, value)| value.get().as_ptr().addr());
    members
}

/// The elements of a JSON array (none if it is no array).
fn elements(raw: &RawValue) -> Vec<&RawValue> {
    serde_json::from_str(raw.get()).unwrap_or_default()
}

/// Where `raw`, a part of `text`, starts in it.
fn offset(text: &str, raw: &RawValue) -> usize {
    raw.get().as_ptr().addr() - text.as_ptr().addr()
}

/// The 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// The place in `text` of the value `path` names (`schedule.faults[3].at_ns`): as far
/// down the path as the text goes.
fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let mut raw: &RawValue = serde_json::from_str(text).ok()?;
    'steps: for step in path.split('.') {
        let (key, indices) = step.split_once('[').map_or((step, ""), |(key, rest)| (key, rest));
        let Some((_, value)) = members(raw).into_iter().find(|(name, _)| name == key) else {
            break;
        };
        raw = value;
        for index in indices.split('[').filter(|index| !index.is_empty()) {
            let index = index.trim_end_matches(']').parse::<usize>().ok();
            let Some(element) = index.and_then(|index| elements(raw).get(index).copied()) else {
                break 'steps;
            };
            raw = element;
        }
    }
    Some(line_column(text, offset(text, raw)))
}

/// A problem of the file at `shown` whose message starts with the path of the value it
/// is about (`schedule.faults[3].at_ns: ...`), placed at that value in `text`.
fn placed(shown: &str, text: &str, message: String) -> ScheduleError {
    let path = message.split_once(": ").map_or("", |(path, _)| path);
    let is_path =
        !path.is_empty() && path.chars().all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c));
    let place = if is_path { locate(text, path) } else { None };
    ScheduleError { path: shown.to_owned(), place, message }
}

/// The checks a schedule must pass before it runs in `scenario`. Each problem starts
/// with the path of the value it is about (`schedule.faults[3].at_ns: ...`), which
/// `ScheduleFile::load` turns into a line and column.
pub fn check_schedule(scenario: &Scenario, schedule: &Schedule) -> Result<(), String> {
    // A scenario with menus runs the configuration the schedule names: check the
    // schedule against that one.
    let drawn =
        scenario.pinned(&schedule.config).map_err(|error| format!("schedule.config: {error}"))?;
    let scenario = &drawn;
    let (chaos_ns, quiet_ns) = (schedule.chaos_ns, schedule.quiet_ns);
    if chaos_ns == 0 {
        return Err("schedule.chaos_ns: the chaos phase must last longer than 0 ns".to_owned());
    }
    let length_max_ns = scenario.chaos_ns + scenario.quiet_ns;
    if chaos_ns.saturating_add(quiet_ns) > length_max_ns {
        return Err(format!(
            "schedule: chaos_ns + quiet_ns = {} ns runs past the scenario's {length_max_ns} ns",
            chaos_ns.saturating_add(quiet_ns)
        ));
    }
    if schedule.faults.len() > FAULTS_PER_SCHEDULE_MAX {
        return Err(format!(
            "schedule.faults: {} faults, more than the {FAULTS_PER_SCHEDULE_MAX} allowed",
            schedule.faults.len()
        ));
    }
    let Some((last, faults)) = schedule.faults.split_last() else {
        return Err("schedule.faults: must end with the closing heal-all at chaos_ns".to_owned());
    };
    if last.fault != Fault::HealAll || last.at_ns != chaos_ns {
        return Err(format!(
            "schedule.faults[{}]: must be the closing heal-all at chaos_ns ({chaos_ns})",
            schedule.faults.len() - 1
        ));
    }
    for (index, timed) in faults.iter().enumerate() {
        let place = format!("schedule.faults[{index}]");
        if timed.at_ns >= chaos_ns {
            return Err(format!(
                "{place}.at_ns: {} is not within the chaos phase [0, {chaos_ns})",
                timed.at_ns
            ));
        }
        timed
            .fault
            .validate(scenario.world.nodes)
            .map_err(|error| format!("{place}.fault: {error}"))?;
        for node in struck_nodes(&timed.fault) {
            let targets = if matches!(timed.fault, Fault::Disk { .. }) {
                &scenario.disk_targets
            } else {
                &scenario.fault_targets
            };
            if !targets.contains(&node) {
                return Err(format!(
                    "{place}.fault.node: node {} is not one this scenario's faults strike ({})",
                    node.0,
                    list(targets)
                ));
            }
        }
    }
    if schedule.ops.len() as u64 > OPS_PER_RUN_MAX {
        return Err(format!(
            "schedule.ops: {} operations, more than the {OPS_PER_RUN_MAX} allowed",
            schedule.ops.len()
        ));
    }
    let mut previous_ns = 0;
    for (index, op) in schedule.ops.iter().enumerate() {
        let place = format!("schedule.ops[{index}]");
        if op.at_ns >= chaos_ns {
            return Err(format!(
                "{place}.at_ns: {} is not within the chaos phase [0, {chaos_ns})",
                op.at_ns
            ));
        }
        if op.at_ns < previous_ns {
            return Err(format!("{place}.at_ns: {} is before the operation above it", op.at_ns));
        }
        previous_ns = op.at_ns;
        match &scenario.system {
            System::LogCluster(spec) => {
                let producers = spec.producer(0).0..spec.producer(0).0 + spec.producers;
                if !producers.contains(&op.node.0) {
                    return Err(format!(
                        "{place}.node: node {} is not a producer (producers are nodes {}..{})",
                        op.node.0, producers.start, producers.end
                    ));
                }
                match &spec.es {
                    // An event-store operation names the account it starts at.
                    Some(es) if op.partition >= es.accounts => {
                        return Err(format!(
                            "{place}.partition: account {} does not exist (the scenario has {})",
                            op.partition, es.accounts
                        ));
                    }
                    None if op.partition >= spec.partitions => {
                        return Err(format!(
                            "{place}.partition: partition {} does not exist (the scenario has {})",
                            op.partition, spec.partitions
                        ));
                    }
                    Some(_) | None => {}
                }
            }
            System::GossipCounter { .. } => {
                if op.node.0 >= scenario.world.nodes {
                    return Err(format!(
                        "{place}.node: node {} does not exist (the scenario has {})",
                        op.node.0, scenario.world.nodes
                    ));
                }
                if op.partition != 0 {
                    return Err(format!(
                        "{place}.partition: the gossip counter has only partition 0"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The nodes a fault acts on as a process or disk fault (partitions and clogs may
/// name clients: a client cut off from the cluster is a network fault).
fn struck_nodes(fault: &Fault) -> Vec<NodeId> {
    match fault {
        Fault::Crash { node }
        | Fault::Restart { node }
        | Fault::Pause { node }
        | Fault::Resume { node }
        | Fault::ClockJump { node, .. }
        | Fault::Operator { node, .. }
        | Fault::Disk { node, .. } => vec![*node],
        Fault::Partition(_)
        | Fault::Clog { .. }
        | Fault::LinkLoss { .. }
        | Fault::NetworkFaults { .. }
        | Fault::HealNetwork
        | Fault::HealAll => Vec::new(),
    }
}

fn list(nodes: &[NodeId]) -> String {
    nodes.iter().map(|node| node.0.to_string()).collect::<Vec<_>>().join(", ")
}

/// What a replayed schedule file showed, judged against what it expects.
pub fn judge(file: &ScheduleFile, scenario: &Scenario, result: &RunResult) -> Result<(), String> {
    let kinds = anomalies(result);
    match file.expect {
        // The allowed anomaly, and nothing the scenario does not allow.
        Expectation::Anomaly if kinds.contains(&file.anomaly) => {
            match result.verdict(&scenario.expect) {
                crate::run::RunVerdict::Unexpected(why) => {
                    Err(format!("`{}` showed, but so did something else: {why}", file.anomaly))
                }
                crate::run::RunVerdict::Held | crate::run::RunVerdict::ExpectedViolation => Ok(()),
            }
        }
        Expectation::Anomaly => Err(format!(
            "expected `{}` (allowed by this configuration) and it did not happen: the \
             harness lost its teeth (saw: {})",
            file.anomaly,
            if kinds.is_empty() { "nothing".to_owned() } else { kinds.join(", ") }
        )),
        Expectation::Holds => {
            let broken: Vec<&str> =
                result.violations().map(|check| check.invariant).collect::<Vec<_>>();
            match (broken.first(), result.limit) {
                (None, None) => Ok(()),
                (_, Some(limit)) => Err(format!("limit reached: {limit}")),
                (Some(_), None) => {
                    let witness = result
                        .violations()
                        .map(|check| {
                            format!(
                                "{}: {}",
                                check.invariant,
                                check.witness.as_deref().unwrap_or("")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    Err(format!("the bug is back: {witness}"))
                }
            }
        }
    }
}
