//! What the checkers conclude: every invariant checked with counts, and each anomaly
//! with its kind, the guarantee it breaks, whether that guarantee was promised, a
//! one-line explanation and the few events that prove it.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::config::Config;
use crate::history::{self, Event, Protocol, Record};
use crate::invariant::{Guarantee, Invariant};

/// At most this many anomalies of one kind are kept with their witnesses; the rest are
/// only counted. A badly broken million-operation history must not need a second
/// million-entry list to say so.
pub const ANOMALIES_KEPT_PER_INVARIANT: usize = 100;

/// At most this many anomalies of one kind are printed by `Display`.
pub const ANOMALIES_SHOWN_PER_INVARIANT: usize = 5;

/// Whether a broken invariant was promised by the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Judgement {
    /// The configuration promised the guarantee: a bug.
    Violation,
    /// The configuration does not promise it: the loss is the documented price of it.
    Expected,
}

/// One piece of evidence: a line of the history, or part of one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Witness {
    /// An operation event, as recorded.
    Event { line: u64, event: Event },
    /// What a replica's final log holds at one offset (`record: None`: nothing).
    Replica {
        line: u64,
        node: u32,
        partition: u32,
        high_watermark: u64,
        log_end_offset: u64,
        offset: u64,
        record: Option<Record>,
    },
    /// A protocol event.
    Protocol { line: u64, protocol: Protocol },
}

impl Witness {
    /// The line of the history it comes from.
    pub fn line(&self) -> u64 {
        match self {
            Witness::Event { line, .. }
            | Witness::Replica { line, .. }
            | Witness::Protocol { line, .. } => *line,
        }
    }

    /// Where it sits in the story of an anomaly: its time (an event's or a protocol
    /// event's), a replica's final log last, ties in history order.
    pub fn story_key(&self) -> (u64, u64) {
        match self {
            Witness::Event { line, event } => (event.t_ns, *line),
            Witness::Protocol { line, protocol } => (protocol.t_ns, *line),
            Witness::Replica { line, .. } => (u64::MAX, *line),
        }
    }
}

/// One anomaly: a broken invariant with its proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    pub invariant: Invariant,
    /// The guarantee it breaks.
    pub guarantee: Guarantee,
    pub judgement: Judgement,
    pub partition: Option<u32>,
    /// What went wrong, in one line.
    pub explanation: String,
    /// The few lines that prove it, in time order (a replica's final log last).
    pub witness: Vec<Witness>,
}

/// How one invariant fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub invariant: Invariant,
    /// How many things were examined...
    pub examined: u64,
    /// ...and what they are ("acknowledged sends").
    pub unit: &'static str,
    /// Anomalies whose guarantee was promised.
    pub violations: u64,
    /// Anomalies whose guarantee was not promised.
    pub expected: u64,
}

/// A check's outcome in one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Holds,
    Expected,
    Violated,
}

impl Check {
    pub fn status(&self) -> Status {
        if self.violations > 0 {
            Status::Violated
        } else if self.expected > 0 {
            Status::Expected
        } else {
            Status::Holds
        }
    }
}

/// The checkers' conclusion about one history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub system: String,
    pub config: Config,
    /// The guarantees the history was held to.
    pub promises: Vec<Guarantee>,
    /// True if the header stated them; false if derived from the configuration.
    pub promises_stated: bool,
    /// Set when the run had more replicas lossy at once than the header's fault budget
    /// (a restarted replica not yet caught up when another crashed): the promises are
    /// those of the budget the run showed, and this says why, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_exceeded: Option<String>,
    pub operations: u64,
    pub partitions: u64,
    pub replica_logs: u64,
    pub protocol_events: u64,
    /// One per invariant, in catalogue order.
    pub checks: Vec<Check>,
    /// Ordered by invariant, then by the first line of the witness; at most
    /// `ANOMALIES_KEPT_PER_INVARIANT` of each kind.
    pub anomalies: Vec<Anomaly>,
    /// The history holds nothing to judge: no send, poll or transaction completed, no
    /// replica's final log holds a record and no protocol event was reported. Its verdict is neither "holds" nor
    /// "violated" (unless a promise broke anyway, such as an operation left pending).
    pub nothing_to_judge: bool,
}

impl Verdict {
    /// True if no promised invariant is broken and there was something to judge.
    pub fn holds(&self) -> bool {
        !self.nothing_to_judge && self.checks.iter().all(|check| check.violations == 0)
    }

    /// How one invariant fared.
    pub fn check(&self, invariant: Invariant) -> &Check {
        let check = &self.checks
            [Invariant::ALL.iter().position(|&i| i == invariant).expect("in the catalogue")];
        debug_assert_eq!(check.invariant, invariant);
        check
    }

    /// The invariants with at least one violation.
    pub fn violated(&self) -> Vec<Invariant> {
        self.checks.iter().filter(|c| c.violations > 0).map(|c| c.invariant).collect()
    }

    /// The invariants with at least one anomaly the configuration does not promise
    /// to prevent.
    pub fn expected(&self) -> Vec<Invariant> {
        self.checks.iter().filter(|c| c.expected > 0).map(|c| c.invariant).collect()
    }

    /// The invariants with any anomaly at all.
    pub fn anomalous(&self) -> Vec<Invariant> {
        self.checks.iter().filter(|c| c.violations + c.expected > 0).map(|c| c.invariant).collect()
    }

    pub fn violation_count(&self) -> u64 {
        self.checks.iter().map(|c| c.violations).sum()
    }

    pub fn expected_count(&self) -> u64 {
        self.checks.iter().map(|c| c.expected).sum()
    }
}

/// Keeps a witness line readable: long polls and logs are cut, with a count.
const WITNESS_CHARS_MAX: usize = 200;

fn clipped(text: String) -> String {
    match text.char_indices().nth(WITNESS_CHARS_MAX) {
        Some((cut, _)) => format!("{} ... ({} more chars)", &text[..cut], text.len() - cut),
        None => text,
    }
}

impl fmt::Display for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Witness::Event { line, event } => {
                write!(f, "line {line:<6} {}", clipped(history::event_json(event)))
            }
            Witness::Replica {
                line,
                node,
                partition,
                high_watermark,
                log_end_offset,
                offset,
                record,
            } => {
                write!(
                    f,
                    "line {line:<6} replica n{node} partition {partition}: offset {offset} "
                )?;
                match record {
                    Some(record) => write!(
                        f,
                        "holds {}",
                        clipped(serde_json::to_string(record).expect("records serialize"))
                    )?,
                    None => f.write_str("holds nothing")?,
                }
                write!(f, " (high watermark {high_watermark}, log end {log_end_offset})")
            }
            Witness::Protocol { line, protocol } => {
                write!(f, "line {line:<6} {}", history::protocol_json(protocol))
            }
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let judgement = match self.judgement {
            Judgement::Violation => "VIOLATION",
            Judgement::Expected => "expected",
        };
        write!(f, "{judgement} {} (breaks {})", self.invariant, self.guarantee)?;
        if let Some(partition) = self.partition {
            write!(f, " in partition {partition}")?;
        }
        write!(f, ": {}", self.explanation)?;
        for witness in &self.witness {
            write!(f, "\n    {witness}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "history   {}: {} {} on {} {}, {} {}, {} {}",
            self.system,
            self.operations,
            plural(self.operations, "operation", "operations"),
            self.partitions,
            plural(self.partitions, "partition", "partitions"),
            self.replica_logs,
            plural(self.replica_logs, "replica log", "replica logs"),
            self.protocol_events,
            plural(self.protocol_events, "protocol event", "protocol events"),
        )?;
        writeln!(f, "config    {}", self.config)?;
        let promises: Vec<&str> = self.promises.iter().map(|g| g.name()).collect();
        let source =
            if self.promises_stated { "as the header states" } else { "from the configuration" };
        writeln!(f, "promises  {} ({source})", promises.join(" "))?;
        if let Some(why) = &self.budget_exceeded {
            writeln!(f, "budget    {why}: promised as for that many")?;
        }
        writeln!(f)?;
        for check in &self.checks {
            let mut line = format!("{:<24}", check.invariant.name());
            let anomalies = check.violations + check.expected;
            match check.status() {
                Status::Holds if self.nothing_to_judge => {
                    write!(line, "nothing   {} {}", check.examined, check.unit)?
                }
                Status::Holds => write!(line, "holds     {} {}", check.examined, check.unit)?,
                Status::Violated => {
                    write!(line, "VIOLATED  {anomalies} in {} {}", check.examined, check.unit)?
                }
                Status::Expected => {
                    write!(line, "expected  {anomalies} in {} {}", check.examined, check.unit)?
                }
            }
            if check.violations > 0 && check.expected > 0 {
                write!(line, " ({} expected under this configuration)", check.expected)?;
            }
            writeln!(f, "{line}")?;
        }
        for invariant in Invariant::ALL {
            let of_kind: Vec<&Anomaly> =
                self.anomalies.iter().filter(|a| a.invariant == *invariant).collect();
            for anomaly in of_kind.iter().take(ANOMALIES_SHOWN_PER_INVARIANT) {
                write!(f, "\n{anomaly}\n")?;
            }
            let check = self.check(*invariant);
            let not_shown = (check.violations + check.expected)
                .saturating_sub(of_kind.len().min(ANOMALIES_SHOWN_PER_INVARIANT) as u64);
            if not_shown > 0 {
                writeln!(f, "\n... and {not_shown} more {invariant} anomalies not shown")?;
            }
        }
        writeln!(f)?;
        let counts = (self.violation_count(), self.violated().len() as u64, self.expected_count());
        if self.nothing_to_judge && counts.0 == 0 {
            return writeln!(
                f,
                "verdict: nothing to judge: no send, poll or transaction completed, no replica's final log holds a record, no protocol event"
            );
        }
        write_summary(f, counts, ("invariant", "invariants"), "configuration")
    }
}

/// The last line of a verdict: how many promises broke in how many checks (`kind`), and
/// how many anomalies the `setup` allows were seen. Shared by the log's and the event
/// store's verdicts.
pub(crate) fn write_summary(
    f: &mut fmt::Formatter<'_>,
    (violations, broken_checks, expected): (u64, u64, u64),
    kind: (&'static str, &'static str),
    setup: &str,
) -> fmt::Result {
    if violations > 0 {
        write!(
            f,
            "verdict: VIOLATED: {violations} {} of {broken_checks} {}",
            plural(violations, "violation", "violations"),
            plural(broken_checks, kind.0, kind.1)
        )?;
    } else {
        write!(f, "verdict: holds: every promised invariant holds")?;
    }
    if expected > 0 {
        let anomalies = plural(expected, "anomaly", "anomalies");
        write!(f, "; {expected} {anomalies} expected under this {setup}")?;
    }
    writeln!(f)
}

/// Counts one anomaly on a check: a violation if its guarantee was `promised`, else an
/// expected one. Returns the judgement and whether the anomaly is kept (at most
/// `ANOMALIES_KEPT_PER_INVARIANT` per check). Shared by both checkers.
pub(crate) fn tally(promised: bool, violations: &mut u64, expected: &mut u64) -> (Judgement, bool) {
    let kept = *violations + *expected < ANOMALIES_KEPT_PER_INVARIANT as u64;
    if promised {
        *violations += 1;
        (Judgement::Violation, kept)
    } else {
        *expected += 1;
        (Judgement::Expected, kept)
    }
}

pub(crate) fn plural(count: u64, one: &'static str, many: &'static str) -> &'static str {
    if count == 1 { one } else { many }
}
