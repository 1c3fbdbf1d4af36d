//! What the event-store checkers conclude: every check with counts, each anomaly with
//! the guarantee it breaks, whether the setup promised it, a one-line explanation and
//! the one or two commands or events that prove it.

use std::fmt::{self, Write as _};

use serde::Serialize;

use super::history::{CommandRecord, ProjectionCheckpoint, StoredEvent};
use crate::verdict::{
    ANOMALIES_SHOWN_PER_INVARIANT, Judgement, Status, plural, tally, write_summary,
};

/// One event-store check. The order of the variants is the order of a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EsInvariant {
    /// On every replica each stream's versions run 0, 1, 2... in offset order.
    StreamContiguity,
    /// A command id's events appear once in any replica's log.
    DuplicateCommand,
    /// An `Ok` command's events are where it was told, and no two `Ok` commands decided
    /// on the same version of one stream.
    LostUpdate,
    /// An `Ok` command's events are allowed by the fold of the stream it decided on, and
    /// are the events the log holds at its versions.
    ReplayEquivalence,
    /// Every replica's fold of every stream equals the longest replica's on their
    /// common prefix.
    FoldsAgree,
    /// The domain's rules hold on every prefix of every stream.
    BusinessRules,
    /// Bank: every debit is completed at most once, by a matching credit or refund, and
    /// balances sum to deposits minus withdrawals minus transfers in flight, in the
    /// final log and at every cut of the projections' checkpoints. With atomic
    /// transfers nothing stays in flight: a debit and its credit commit together.
    MoneyConservation,
    /// Bank: every debit is completed by the end of the run.
    TransferCompletion,
    /// Every checkpointed read model equals the reference fold of what it covers.
    ProjectionEquivalence,
    /// By the end, every projection's last checkpoint covers every committed event of
    /// its partition: none is left stuck behind.
    ProjectionProgress,
}

impl EsInvariant {
    /// Every check, in verdict order.
    pub const ALL: &'static [EsInvariant] = &[
        EsInvariant::StreamContiguity,
        EsInvariant::DuplicateCommand,
        EsInvariant::LostUpdate,
        EsInvariant::ReplayEquivalence,
        EsInvariant::FoldsAgree,
        EsInvariant::BusinessRules,
        EsInvariant::MoneyConservation,
        EsInvariant::TransferCompletion,
        EsInvariant::ProjectionEquivalence,
        EsInvariant::ProjectionProgress,
    ];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            EsInvariant::StreamContiguity => "stream-contiguity",
            EsInvariant::DuplicateCommand => "duplicate-command",
            EsInvariant::LostUpdate => "lost-update",
            EsInvariant::ReplayEquivalence => "replay-equivalence",
            EsInvariant::FoldsAgree => "folds-agree",
            EsInvariant::BusinessRules => "business-rules",
            EsInvariant::MoneyConservation => "money-conservation",
            EsInvariant::TransferCompletion => "transfer-completion",
            EsInvariant::ProjectionEquivalence => "projection-equivalence",
            EsInvariant::ProjectionProgress => "projection-progress",
        }
    }

    /// What it demands, in one line.
    pub fn promise(self) -> &'static str {
        match self {
            EsInvariant::StreamContiguity => {
                "on every replica each stream's versions are 0..n in offset order, no gap or repeat"
            }
            EsInvariant::DuplicateCommand => {
                "a command id's events appear once in any replica's log"
            }
            EsInvariant::LostUpdate => {
                "an ok command's events stay at its versions, and no two ok commands decided on one version"
            }
            EsInvariant::ReplayEquivalence => {
                "an ok command's events are allowed by the state it decided on and are what the log holds"
            }
            EsInvariant::FoldsAgree => {
                "every replica's fold of a stream equals the longest replica's on their common prefix"
            }
            EsInvariant::BusinessRules => "the domain's rules hold on every prefix of every stream",
            EsInvariant::MoneyConservation => {
                "each debit is completed at most once, by a matching credit or refund (with atomic transfers, in the same transaction); money is conserved in the final log and at every read-committed cut of the projections"
            }
            EsInvariant::TransferCompletion => {
                "every transfer debited is credited or refunded by the end"
            }
            EsInvariant::ProjectionEquivalence => {
                "a checkpointed read model equals the reference fold of the events below its offset"
            }
            EsInvariant::ProjectionProgress => {
                "by the end every projection's last checkpoint covers its partition's committed events"
            }
        }
    }
}

impl fmt::Display for EsInvariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an event-store setup can promise. An anomaly breaks one; whether it is a
/// violation or expected depends on whether the setup promised it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EsGuarantee {
    /// Commands on one stream are decided one after another: each on the state its
    /// append lands after. Promised when the store checks expected versions.
    SerialDecisions,
    /// An acknowledged append stays in the log. Promised unless the history says the
    /// log under the store is lossy.
    AckedDurable,
    /// Streams, commands, folds and projections are what they claim. Always promised.
    Integrity,
    /// Work started is finished by the end of the run. Always promised.
    Liveness,
    /// A read model folds only committed events. Given up by a projection that reads
    /// uncommitted, whose dirty reads are then expected.
    CommittedReads,
}

impl EsGuarantee {
    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            EsGuarantee::SerialDecisions => "serial-decisions",
            EsGuarantee::AckedDurable => "acked-durable",
            EsGuarantee::Integrity => "integrity",
            EsGuarantee::Liveness => "liveness",
            EsGuarantee::CommittedReads => "committed-reads",
        }
    }
}

impl fmt::Display for EsGuarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One piece of evidence.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EsWitness {
    /// A command, with its position in `EsHistory::commands`.
    Command { index: u64, record: CommandRecord },
    /// An event as one replica holds it.
    Event { node: u32, partition: u32, event: StoredEvent },
    /// A projection checkpoint, with its position in `EsHistory::projections`.
    Projection { index: u64, checkpoint: ProjectionCheckpoint },
}

/// One anomaly.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EsAnomaly {
    pub invariant: EsInvariant,
    pub guarantee: EsGuarantee,
    pub judgement: Judgement,
    pub stream: Option<String>,
    /// What went wrong in one line, naming stream, versions, offsets and command ids.
    pub explanation: String,
    /// The one or two commands, events or checkpoints that prove it.
    pub witness: Vec<EsWitness>,
}

/// How one check fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EsCheck {
    pub invariant: EsInvariant,
    /// How many things were examined...
    pub examined: u64,
    /// ...and what they are ("ok commands").
    pub unit: &'static str,
    /// Things the check could not judge (e.g. an ok command beyond every replica's
    /// committed log)...
    pub skipped: u64,
    /// ...and why.
    pub skipped_unit: &'static str,
    /// Set when the check could not run at all (a domain the model has no fold of and
    /// none was given): why, in words. Such a check never says it holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_checked: Option<&'static str>,
    /// Anomalies whose guarantee was promised.
    pub violations: u64,
    /// Anomalies whose guarantee was not promised.
    pub expected: u64,
}

impl EsCheck {
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

/// Bank: the money on the longest replicas at the end of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MoneyTotals {
    pub deposits: i128,
    pub withdrawals: i128,
    /// The sum of every account's balance.
    pub balances: i128,
    /// Transfers debited and not yet credited or refunded...
    pub in_flight_count: u64,
    /// ...and the money they hold.
    pub in_flight: i128,
}

/// The event-store checkers' conclusion about one history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EsVerdict {
    pub domain: String,
    pub expected_versions: bool,
    pub lossy_log: bool,
    /// The guarantees the history was held to.
    pub promises: Vec<EsGuarantee>,
    pub commands: u64,
    pub replica_logs: u64,
    pub projections: u64,
    /// One per check, in `EsInvariant::ALL` order.
    pub checks: Vec<EsCheck>,
    /// Ordered by check, then in the order found; at most
    /// `ANOMALIES_KEPT_PER_INVARIANT` of each kind.
    pub anomalies: Vec<EsAnomaly>,
    /// Bank histories only.
    pub money: Option<MoneyTotals>,
}

impl EsVerdict {
    /// True if no promised guarantee is broken.
    pub fn holds(&self) -> bool {
        self.checks.iter().all(|check| check.violations == 0)
    }

    /// How one check fared.
    pub fn check(&self, invariant: EsInvariant) -> &EsCheck {
        let check = &self.checks[invariant as usize];
        debug_assert_eq!(check.invariant, invariant);
        check
    }

    /// The checks with at least one violation.
    pub fn violated(&self) -> Vec<EsInvariant> {
        self.checks.iter().filter(|c| c.violations > 0).map(|c| c.invariant).collect()
    }

    /// The checks with at least one anomaly the setup does not promise to prevent.
    pub fn expected(&self) -> Vec<EsInvariant> {
        self.checks.iter().filter(|c| c.expected > 0).map(|c| c.invariant).collect()
    }

    pub fn violation_count(&self) -> u64 {
        self.checks.iter().map(|c| c.violations).sum()
    }

    pub fn expected_count(&self) -> u64 {
        self.checks.iter().map(|c| c.expected).sum()
    }
}

/// Collects counts and anomalies while the checkers run.
pub(super) struct Findings {
    promises: Vec<EsGuarantee>,
    checks: Vec<EsCheck>,
    anomalies: Vec<EsAnomaly>,
}

impl Findings {
    pub(super) fn new(promises: Vec<EsGuarantee>) -> Findings {
        let checks = EsInvariant::ALL
            .iter()
            .map(|&invariant| EsCheck {
                invariant,
                examined: 0,
                unit: "",
                skipped: 0,
                skipped_unit: "",
                not_checked: None,
                violations: 0,
                expected: 0,
            })
            .collect();
        Findings { promises, checks, anomalies: Vec::new() }
    }

    fn slot(&mut self, invariant: EsInvariant) -> &mut EsCheck {
        let check = &mut self.checks[invariant as usize];
        debug_assert_eq!(check.invariant, invariant);
        check
    }

    /// Records how much a check looked at.
    pub(super) fn examined(&mut self, invariant: EsInvariant, examined: u64, unit: &'static str) {
        let check = self.slot(invariant);
        check.examined = examined;
        check.unit = unit;
    }

    /// Records how much a check could not judge, and why.
    pub(super) fn skipped(&mut self, invariant: EsInvariant, skipped: u64, unit: &'static str) {
        let check = self.slot(invariant);
        check.skipped = skipped;
        check.skipped_unit = unit;
    }

    /// Records that a check could not run, and why.
    pub(super) fn not_checked(&mut self, invariant: EsInvariant, why: &'static str) {
        self.slot(invariant).not_checked = Some(why);
    }

    /// Records an anomaly; `describe` (explanation and witness) runs only if it is kept.
    pub(super) fn found(
        &mut self,
        invariant: EsInvariant,
        guarantee: EsGuarantee,
        stream: Option<&str>,
        describe: impl FnOnce() -> (String, Vec<EsWitness>),
    ) {
        let promised = self.promises.contains(&guarantee);
        let check = self.slot(invariant);
        let (judgement, kept) = tally(promised, &mut check.violations, &mut check.expected);
        if kept {
            let (explanation, witness) = describe();
            self.anomalies.push(EsAnomaly {
                invariant,
                guarantee,
                judgement,
                stream: stream.map(str::to_string),
                explanation,
                witness,
            });
        }
    }

    pub(super) fn into_parts(mut self) -> (Vec<EsGuarantee>, Vec<EsCheck>, Vec<EsAnomaly>) {
        // Stable: within a check, anomalies stay in the order they were found.
        self.anomalies.sort_by_key(|a| a.invariant);
        (self.promises, self.checks, self.anomalies)
    }
}

/// Keeps a witness line readable: long commands and read models are cut, with a count.
const WITNESS_CHARS_MAX: usize = 200;

fn clipped(text: String) -> String {
    match text.char_indices().nth(WITNESS_CHARS_MAX) {
        Some((cut, _)) => format!("{} ... ({} more chars)", &text[..cut], text.len() - cut),
        None => text,
    }
}

fn json<T: Serialize>(value: &T) -> String {
    clipped(serde_json::to_string(value).expect("witnesses serialize"))
}

impl fmt::Display for EsWitness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EsWitness::Command { index, record } => write!(
                f,
                "command #{index} (id {}, process {}, {}..{} ns) on {}: {}, decided at {}, {}",
                record.command_id,
                record.process,
                record.invoke_ns,
                record.complete_ns,
                record.stream,
                json(&record.command),
                match record.decided_at_version {
                    Some(version) => format!("version {version}"),
                    None => "no version".to_string(),
                },
                json(&record.outcome),
            ),
            EsWitness::Event { node, partition, event } => write!(
                f,
                "n{node} partition {partition} offset {}: {} version {} (command {}) {}",
                event.offset,
                event.stream,
                event.version,
                event.command_id,
                json(&event.event),
            ),
            EsWitness::Projection { index, checkpoint } => write!(
                f,
                "checkpoint #{index} (consumer {}, {} ns) partition {} below offset {}: {}",
                checkpoint.consumer,
                checkpoint.t_ns,
                checkpoint.partition,
                checkpoint.offset,
                json(&checkpoint.read_model),
            ),
        }
    }
}

impl fmt::Display for EsAnomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let judgement = match self.judgement {
            Judgement::Violation => "VIOLATION",
            Judgement::Expected => "expected",
        };
        write!(
            f,
            "{judgement} {} (breaks {}): {}",
            self.invariant, self.guarantee, self.explanation
        )?;
        for witness in &self.witness {
            write!(f, "\n    {witness}")?;
        }
        Ok(())
    }
}

impl fmt::Display for EsVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "event store {}: {} {}, {} {}, {} {}",
            self.domain,
            self.commands,
            plural(self.commands, "command", "commands"),
            self.replica_logs,
            plural(self.replica_logs, "replica log", "replica logs"),
            self.projections,
            plural(self.projections, "projection checkpoint", "projection checkpoints"),
        )?;
        let versions =
            if self.expected_versions { "expected versions" } else { "appends with any" };
        let log = if self.lossy_log { "a lossy log" } else { "a durable log" };
        let promises: Vec<&str> = self.promises.iter().map(|g| g.name()).collect();
        writeln!(f, "setup     {versions} on {log}; promises {}", promises.join(" "))?;
        if let Some(money) = &self.money {
            writeln!(
                f,
                "money     deposits {} withdrawals {} balances {} in flight {} ({} transfers)",
                money.deposits,
                money.withdrawals,
                money.balances,
                money.in_flight,
                money.in_flight_count
            )?;
        }
        writeln!(f)?;
        for check in &self.checks {
            let mut line = format!("{:<24}", check.invariant.name());
            let anomalies = check.violations + check.expected;
            match check.status() {
                Status::Holds if check.not_checked.is_some() => {
                    let why = check.not_checked.unwrap_or_default();
                    write!(line, "NOT CHECKED  {why}")?
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
                write!(line, " ({} expected under this setup)", check.expected)?;
            }
            if check.skipped > 0 {
                write!(line, "; {} {} not judged", check.skipped, check.skipped_unit)?;
            }
            writeln!(f, "{line}")?;
        }
        for check in &self.checks {
            let of_kind = self.anomalies.iter().filter(|a| a.invariant == check.invariant);
            let mut shown = 0;
            for anomaly in of_kind.take(ANOMALIES_SHOWN_PER_INVARIANT) {
                write!(f, "\n{anomaly}\n")?;
                shown += 1;
            }
            let not_shown = (check.violations + check.expected).saturating_sub(shown);
            if not_shown > 0 {
                writeln!(f, "\n... and {not_shown} more {} anomalies not shown", check.invariant)?;
            }
        }
        writeln!(f)?;
        let counts = (self.violation_count(), self.violated().len() as u64, self.expected_count());
        write_summary(f, counts, ("check", "checks"), "setup")
    }
}
