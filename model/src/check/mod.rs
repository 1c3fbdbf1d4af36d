//! `check`: a history in, a verdict out.
//!
//! `digest` reads the history once into the indexes every checker shares (values,
//! claims about which value sits at which offset, the reference final log of each
//! partition); each other module checks one family of invariants that partition one
//! kind of fact between them, and reports through `Findings`.
//!
//! Every checker is linear or `n log n` in the size of the history: one pass, sorts and
//! binary searches, ordered maps keyed by process or node. Nothing iterates a hash map,
//! so the verdict is a pure function of the history.

mod atomic;
mod budget;
mod cycles;
mod digest;
mod duplicate;
mod durability;
mod exactly_once;
mod internal_sends;
mod liveness;
mod membership;
mod offsets;
mod polls;
mod precommitted;
mod protocol;
mod replicas;
mod sends;
mod spans;
mod txn_reads;
mod values;
mod zombie;

use crate::history::{Closing, History, Op, Replica};
use crate::invariant::{Guarantee, Invariant};
use crate::verdict::{Anomaly, Check, Verdict, Witness, tally};

use digest::Digest;

/// Checks every invariant of the catalogue against a history.
pub fn check(history: &History) -> Verdict {
    let header = history.header();
    // Promises derived from the configuration are judged against the faults the run
    // showed: more replicas lossy at once than the budget says promise less.
    let exceeded = if header.promises.is_none() { budget::exceeded(history) } else { None };
    let promises = match &exceeded {
        Some(exceeded) => {
            let mut config = header.config;
            config.fault_budget.crashes_max = exceeded.lossy;
            config.promises()
        }
        None => header.promises(),
    };
    let mut findings = Findings::new(history, promises);
    findings.budget_exceeded = exceeded.map(|exceeded| exceeded.explanation);
    let digest = Digest::new(history);
    values::check(&digest, &mut findings);
    txn_reads::check(&digest, &mut findings);
    precommitted::check(&digest, &mut findings);
    cycles::check(&digest, &mut findings);
    atomic::check(&digest, &mut findings);
    zombie::check(&digest, &mut findings);
    exactly_once::check(&digest, &mut findings);
    duplicate::check(&digest, &mut findings);
    offsets::check(&digest, &mut findings);
    durability::check(&digest, &mut findings);
    polls::check(&digest, &mut findings);
    sends::check(&digest, &mut findings);
    internal_sends::check(&digest, &mut findings);
    replicas::check(&digest, &mut findings);
    liveness::check(&digest, &mut findings);
    liveness::check_hanging(&digest, &mut findings);
    protocol::check(&digest, &mut findings);

    findings.into_verdict(&digest)
}

/// Collects counts and anomalies while the checkers run.
pub(crate) struct Findings<'h> {
    history: &'h History,
    promises: Vec<Guarantee>,
    checks: Vec<Check>,
    anomalies: Vec<Anomaly>,
    budget_exceeded: Option<String>,
}

impl<'h> Findings<'h> {
    /// Whether the history's configuration promises `guarantee`.
    pub(crate) fn promised(&self, guarantee: Guarantee) -> bool {
        self.promises.contains(&guarantee)
    }

    fn new(history: &'h History, promises: Vec<Guarantee>) -> Findings<'h> {
        let checks = Invariant::ALL
            .iter()
            .map(|&invariant| Check {
                invariant,
                examined: 0,
                unit: "",
                violations: 0,
                expected: 0,
            })
            .collect();
        Findings { history, promises, checks, anomalies: Vec::new(), budget_exceeded: None }
    }

    fn slot(&mut self, invariant: Invariant) -> &mut Check {
        // The catalogue order is the enum order, so the discriminant is the index.
        let check = &mut self.checks[invariant as usize];
        debug_assert_eq!(check.invariant, invariant);
        check
    }

    /// Records how much an invariant's checker looked at.
    pub(crate) fn examined(&mut self, invariant: Invariant, examined: u64, unit: &'static str) {
        let check = self.slot(invariant);
        check.examined = examined;
        check.unit = unit;
    }

    /// Records an anomaly. `describe` gives the explanation and witness; it runs only
    /// if the anomaly is kept (see `ANOMALIES_KEPT_PER_INVARIANT`).
    pub(crate) fn found(
        &mut self,
        invariant: Invariant,
        guarantee: Guarantee,
        partition: Option<u32>,
        describe: impl FnOnce() -> (String, Vec<Witness>),
    ) {
        let promised = guarantee.stateable() && self.promises.contains(&guarantee);
        let check = self.slot(invariant);
        let (judgement, kept) = tally(promised, &mut check.violations, &mut check.expected);
        if kept {
            let (explanation, mut witness) = describe();
            witness.sort_by_key(Witness::story_key);
            witness.dedup();
            self.anomalies.push(Anomaly {
                invariant,
                guarantee,
                judgement,
                partition,
                explanation,
                witness,
            });
        }
    }

    fn into_verdict(mut self, digest: &Digest<'_>) -> Verdict {
        // Stable: within a kind, anomalies stay in the order their checker found them
        // when their first lines tie.
        self.anomalies.sort_by_key(|a| (a.invariant, a.witness.first().map(Witness::line)));
        let header = self.history.header();
        Verdict {
            nothing_to_judge: nothing_to_judge(self.history),
            system: header.system.clone(),
            config: header.config,
            promises: self.promises,
            promises_stated: header.promises.is_some(),
            budget_exceeded: self.budget_exceeded,
            operations: self.history.ops().len() as u64,
            partitions: digest.partitions.len() as u64,
            replica_logs: digest.replicas.len() as u64,
            protocol_events: (self.history.closing().len() - digest.replicas.len()) as u64,
            checks: self.checks,
            anomalies: self.anomalies,
        }
    }
}

/// Whether the history holds nothing to judge: no send, poll or transaction completed,
/// no replica's final log holds a record, and no protocol event was reported. Such a history must not pass as holding.
fn nothing_to_judge(history: &History) -> bool {
    let data_completed = history.ops().iter().any(|span| {
        span.completion.is_some()
            && matches!(
                history.events()[span.invoke as usize].op,
                Op::Send { .. } | Op::Poll { .. } | Op::Txn { .. }
            )
    });
    let closing_facts = history.closing().iter().any(|line| match line {
        Closing::Replica(replica) => !replica.records.is_empty(),
        Closing::Protocol(_) => true,
    });
    !data_completed && !closing_facts
}

/// Builds witnesses from a history: cheap to copy into the closures that describe
/// anomalies while `Findings` is borrowed mutably.
#[derive(Clone, Copy)]
pub(crate) struct Witnesses<'h> {
    history: &'h History,
}

impl<'h> Witnesses<'h> {
    pub(crate) fn new(history: &'h History) -> Witnesses<'h> {
        Witnesses { history }
    }

    /// An operation event as a witness.
    pub(crate) fn event(&self, event: usize) -> Witness {
        Witness::Event {
            line: self.history.line_of_event(event),
            event: self.history.events()[event].clone(),
        }
    }

    /// What a replica's final log (a closing line) holds at `offset`.
    pub(crate) fn replica_at(&self, closing: usize, offset: u64) -> Witness {
        let replica = replica_of(self.history, closing);
        let found = replica.records.binary_search_by_key(&offset, |r| r.offset).ok();
        Witness::Replica {
            line: self.history.line_of_closing(closing),
            node: replica.node,
            partition: replica.partition,
            high_watermark: replica.high_watermark,
            log_end_offset: replica.log_end_offset(),
            offset,
            record: found.map(|i| replica.records[i].clone()),
        }
    }

    /// A protocol event (a closing line) as a witness.
    pub(crate) fn protocol(&self, closing: usize) -> Witness {
        match &self.history.closing()[closing] {
            Closing::Protocol(protocol) => Witness::Protocol {
                line: self.history.line_of_closing(closing),
                protocol: *protocol,
            },
            Closing::Replica(_) => unreachable!("closing line {closing} is a replica's log"),
        }
    }
}

/// The replica's final log on a closing line known to hold one.
pub(crate) fn replica_of(history: &History, closing: usize) -> &Replica {
    match &history.closing()[closing] {
        Closing::Replica(replica) => replica,
        Closing::Protocol(_) => unreachable!("closing line {closing} is a protocol event"),
    }
}

/// A time in seconds, to the microsecond (`1.234567s`), as witnesses tell their stories.
pub(crate) fn seconds(t_ns: u64) -> String {
    format!("{}.{:06}s", t_ns / 1_000_000_000, t_ns % 1_000_000_000 / 1_000)
}
