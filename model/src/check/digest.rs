//! One pass over the history into the indexes every checker shares.
//!
//! The central one is the list of *claims*: every statement, by anyone, that a value
//! sits at an offset of a partition. An acknowledged send claims its offset (`Ack`), an
//! ok poll claims each record it returned (`Read`), and the reference replica's final
//! log claims each committed record (`Final`). Claims sorted by (partition, offset)
//! give the version order Jepsen builds; claims per value tell where a value landed.
//!
//! Values are named by dense ids: a sent value's id is its send's position among the
//! history's sends (in invocation order); values read but never sent get the ids after
//! those.
//!
//! Transactions are flattened here, once, for every checker: each send micro-op is a
//! `Send` with its transaction's outcome and events, each poll micro-op a `PollView`
//! (read_committed) of its transaction. The final log is the reference replica's
//! records below its high watermark that no aborted transaction wrote; the final
//! read_committed *view* is the part of it below the last stable offset.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use crate::history::{Closing, EventType, History, Isolation, Op, Record};

/// How a send ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Fail,
    Info,
    Pending,
}

/// A send (plain, or a send micro-op of a transaction), indexed by its value id.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Send<'h> {
    pub op: u32,
    /// The transaction it belongs to (an index into `Digest::txns`).
    pub txn: Option<u32>,
    pub invoke: u32,
    pub completion: Option<u32>,
    pub outcome: Outcome,
    /// Dense partition index.
    pub part: u32,
    pub key: Option<&'h str>,
    pub value: &'h str,
    /// The offset the acknowledgement gave, if it gave one; for an `info` send whose
    /// operation must have committed (some value of it was read at read_committed or is
    /// in the final view, Jepsen's `must-have-committed?`), the offset its completion
    /// reported.
    pub ack_offset: Option<u64>,
    /// The offset its completion reported, whatever the outcome (a `fail` send's is
    /// never believed: its write did not happen).
    pub reported_offset: Option<u64>,
}

impl Send<'_> {
    /// Whether it is known to have taken effect: acknowledged, or `info` with its
    /// operation proven committed and an offset reported.
    pub fn committed_at(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Ok | Outcome::Info => self.ack_offset,
            Outcome::Fail | Outcome::Pending => None,
        }
    }
}

/// A completed poll (plain, or a poll micro-op of a transaction) and what it read: every
/// ok one, and every fail or info one that states records it read before it ended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PollView<'h> {
    /// The completion event (the poll's, or its transaction's).
    pub event: u32,
    /// How the poll (or its transaction) ended: a `fail` one did not move the
    /// consumer's position, an `info` one may have.
    pub outcome: Outcome,
    pub invoke: u32,
    pub process: u64,
    pub part: u32,
    pub from: u64,
    pub records: &'h [Record],
    pub isolation: Isolation,
}

/// A transaction.
#[derive(Clone, Debug)]
pub(crate) struct TxnView<'h> {
    pub op: u32,
    pub invoke: u32,
    pub completion: Option<u32>,
    pub outcome: Outcome,
    pub process: u64,
    pub txn_id: &'h str,
    /// The value ids of its sends (consecutive: a transaction's sends are indexed
    /// together when it is invoked).
    pub sends: Range<u32>,
    /// The completion of another process's `init` of the same id, the latest one before
    /// this transaction was invoked, if that process held the id then: the transaction
    /// came from a fenced producer.
    pub fenced_by: Option<u32>,
}

impl TxnView<'_> {
    /// The event that shows how it ended (its invocation while it is pending).
    pub fn last_event(&self) -> u32 {
        self.completion.unwrap_or(self.invoke)
    }
}

/// Who claims that a value sits at an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Source {
    /// An acknowledged send (the op).
    Ack { op: u32 },
    /// A record returned by an ok poll (its index in `Digest::polls`, and the record's
    /// position in it).
    Read { poll: u32, record: u32 },
    /// A committed record of the reference replica that no aborted transaction wrote
    /// (its closing line and position).
    Final { closing: u32, record: u32 },
}

/// "This value is at this offset", with who says so. Field order is sort order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Claim<'h> {
    pub part: u32,
    pub offset: u64,
    pub value: u32,
    pub source: Source,
    /// The record a read or the final log holds; kept at hand because reaching it
    /// through the source costs cache misses in every checker that looks.
    pub record: Option<&'h Record>,
}

impl Claim<'_> {
    /// A committed observation (a read or the final log), not an acknowledgement.
    pub fn observed(&self) -> bool {
        !matches!(self.source, Source::Ack { .. })
    }
}

/// What the claims say about one value. Reads at read_uncommitted prove nothing
/// about commitment, so only read_committed reads count here.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ValueFacts {
    /// Some ok read_committed poll returned it.
    pub read: bool,
    /// The reference replica holds it below its high watermark, not aborted.
    pub in_final: bool,
    /// ...and below its last stable offset: in the final read_committed view.
    pub in_view: bool,
    /// The lowest offset it was observed at (by a read_committed read or the final
    /// log), and the claim that shows it.
    pub landed: Option<(u64, u32)>,
}

pub(crate) struct Digest<'h> {
    pub history: &'h History,
    pub witness: super::Witnesses<'h>,
    /// Every partition mentioned, sorted; a partition's position is its dense index.
    pub partitions: Vec<u32>,
    /// The closing lines holding replica logs.
    pub replicas: Vec<u32>,
    /// Per replica (in `replicas` order), what makes its log malformed, at which offset.
    pub replica_problems: Vec<Option<(u64, String)>>,
    /// Per dense partition, the closing line of the reference replica: the well-formed
    /// one with the highest high watermark (the lowest node on a tie).
    pub reference: Vec<Option<u32>>,
    /// Sends by value id.
    pub sends: Vec<Send<'h>>,
    /// Completed polls with a result, plain and in transactions, in operation order.
    pub polls: Vec<PollView<'h>>,
    /// Per poll (as `polls`), where its consumer's reading reached back to: the lowest
    /// of its `from`, its first record, and one past what the same consumer's earlier
    /// ok polls read since its last seek. The poll and those before it passed every
    /// offset from there to its last record.
    pub reach_start: Vec<u64>,
    /// Transactions, in invocation order.
    pub txns: Vec<TxnView<'h>>,
    /// Per value id (sent ones first, then values never sent).
    pub facts: Vec<ValueFacts>,
    /// Every claim, sorted.
    pub claims: Vec<Claim<'h>>,
}

impl<'h> Digest<'h> {
    pub fn new(history: &'h History) -> Digest<'h> {
        let partitions = partitions(history);
        let mut digest = Digest {
            history,
            witness: super::Witnesses::new(history),
            partitions,
            replicas: Vec::new(),
            replica_problems: Vec::new(),
            reference: Vec::new(),
            sends: Vec::new(),
            polls: Vec::new(),
            reach_start: Vec::new(),
            txns: Vec::new(),
            facts: Vec::new(),
            claims: Vec::new(),
        };
        digest.index_replicas();
        digest.index_txns();
        digest.index_sends();
        digest.index_polls();
        digest.collect_claims();
        digest.collect_facts();
        if digest.believe_info_offsets() {
            sort_claims(&mut digest.claims);
            digest.collect_facts();
        }
        digest.reach_start = digest.reach_starts();
        digest
    }

    /// Where a send landed, and the claim that shows it if it was observed: its
    /// acknowledged (or believed) offset, else the lowest offset it was observed at.
    /// `None` for a failed send, or one nobody can place.
    pub fn landing(&self, value: u32) -> Option<(u64, Option<u32>)> {
        let send = &self.sends[value as usize];
        if send.outcome == Outcome::Fail {
            return None;
        }
        match send.committed_at() {
            Some(offset) => Some((offset, None)),
            None => self.facts[value as usize].landed.map(|(offset, claim)| (offset, Some(claim))),
        }
    }

    /// Jepsen's rule for indeterminate operations: an `info` operation one of whose
    /// values was read at read_committed, or is in the final view, committed, so every
    /// offset its completion reported is a claim like an acknowledgement. Returns
    /// whether any was added (the claims must then be sorted again).
    fn believe_info_offsets(&mut self) -> bool {
        let mut proven = vec![false; self.history.ops().len()];
        for (value, send) in self.sends.iter().enumerate() {
            let facts = &self.facts[value];
            if send.outcome == Outcome::Info && (facts.read || facts.in_view) {
                proven[send.op as usize] = true;
            }
        }
        let mut added = false;
        for (value, send) in self.sends.iter_mut().enumerate() {
            let (Outcome::Info, Some(offset)) = (send.outcome, send.reported_offset) else {
                continue;
            };
            if !proven[send.op as usize] {
                continue;
            }
            send.ack_offset = Some(offset);
            self.claims.push(Claim {
                part: send.part,
                offset,
                value: value as u32,
                source: Source::Ack { op: send.op },
                record: None,
            });
            added = true;
        }
        added
    }

    /// `reach_start` of every poll: one sweep in event order keeps, per (process,
    /// partition), the last offset its ok polls read since its position last started
    /// anew (an assign, a subscribe, a rebalance: `membership`).
    fn reach_starts(&self) -> Vec<u64> {
        let history = self.history;
        let mut last_read: BTreeMap<(u64, u32), u64> = BTreeMap::new();
        let mut membership = super::membership::Membership::new(self);
        let mut resets = Vec::new();
        let mut by_completion: Vec<(u32, u32)> =
            self.polls.iter().enumerate().map(|(index, poll)| (poll.event, index as u32)).collect();
        by_completion.sort_unstable();
        let mut reach_start = vec![0; self.polls.len()];
        let mut next = by_completion.iter().peekable();
        for (index, event) in history.events().iter().enumerate() {
            membership.resets(index, event, &mut resets);
            for reset in &resets {
                last_read.remove(&(event.process, reset.part));
            }
            while let Some(&&(_, poll)) = next.peek().filter(|&&&(at, _)| at as usize == index) {
                next.next();
                let view = &self.polls[poll as usize];
                let place = (view.process, view.part);
                let first = view.records.first().map_or(view.from, |record| record.offset);
                let mut start = view.from.min(first);
                if let Some(&last) = last_read.get(&place) {
                    start = start.min(last + 1);
                }
                reach_start[poll as usize] = start;
                if let (Outcome::Ok, Some(last)) = (view.outcome, view.records.last()) {
                    last_read.insert(place, last.offset);
                }
            }
        }
        reach_start
    }

    /// The dense index of a partition the history mentions.
    pub fn part(&self, partition: u32) -> u32 {
        self.partitions.binary_search(&partition).expect("every partition is indexed") as u32
    }

    pub fn partition_id(&self, part: u32) -> u32 {
        self.partitions[part as usize]
    }

    /// The end of the final read_committed view of a dense partition: the reference
    /// replica's last stable offset (0 without a reference replica).
    pub fn view_end(&self, part: u32) -> u64 {
        self.reference_replica(part).map_or(0, |(_, replica)| replica.last_stable())
    }

    /// Whether a claim is a read_committed observation: the final log, or a record an
    /// ok read_committed poll returned.
    pub fn read_committed(&self, claim: &Claim) -> bool {
        match claim.source {
            Source::Ack { .. } => false,
            Source::Read { poll, .. } => {
                self.polls[poll as usize].isolation == Isolation::ReadCommitted
            }
            Source::Final { .. } => true,
        }
    }

    /// The record a read or final claim is about.
    pub fn record(&self, claim: &Claim<'h>) -> Option<&'h Record> {
        claim.record
    }

    /// The value a claim names, as text.
    pub fn value_text(&self, claim: &Claim<'h>) -> &'h str {
        match self.record(claim) {
            Some(record) => &record.value,
            None => self.sends[claim.value as usize].value,
        }
    }

    /// The event position a committed observation began at (the final log: after
    /// everything), to order observations in time.
    pub fn observed_from(&self, claim: &Claim) -> u64 {
        match claim.source {
            Source::Ack { .. } => unreachable!("an acknowledgement is not an observation"),
            Source::Read { poll, .. } => self.polls[poll as usize].invoke as u64,
            Source::Final { .. } => u64::MAX,
        }
    }

    /// The event position a committed observation was complete at.
    pub fn observed_by(&self, claim: &Claim) -> u64 {
        match claim.source {
            Source::Ack { .. } => unreachable!("an acknowledgement is not an observation"),
            Source::Read { poll, .. } => self.polls[poll as usize].event as u64,
            Source::Final { .. } => u64::MAX,
        }
    }

    /// The witness for a claim: the acknowledging or polling event, or the replica.
    pub fn claim_witness(&self, claim: &Claim) -> crate::verdict::Witness {
        match claim.source {
            Source::Ack { op } => self
                .witness
                .event(self.history.ops()[op as usize].completion.expect("acknowledged") as usize),
            Source::Read { poll, .. } => {
                self.witness.event(self.polls[poll as usize].event as usize)
            }
            Source::Final { closing, .. } => {
                self.witness.replica_at(closing as usize, claim.offset)
            }
        }
    }

    /// The reference replica of a dense partition, if it has one.
    pub fn reference_replica(&self, part: u32) -> Option<(usize, &'h crate::history::Replica)> {
        self.reference[part as usize]
            .map(|closing| (closing as usize, super::replica_of(self.history, closing as usize)))
    }

    fn index_replicas(&mut self) {
        self.reference = vec![None; self.partitions.len()];
        let transactional =
            self.history.events().iter().any(|event| matches!(event.op, Op::Txn { .. }));
        for (closing, line) in self.history.closing().iter().enumerate() {
            let Closing::Replica(replica) = line else { continue };
            let problem = replica_problem(replica, transactional);
            if problem.is_none() {
                let part = self.part(replica.partition) as usize;
                let better = match self.reference[part] {
                    None => true,
                    Some(current) => {
                        let current = super::replica_of(self.history, current as usize);
                        (replica.high_watermark, std::cmp::Reverse(replica.node))
                            > (current.high_watermark, std::cmp::Reverse(current.node))
                    }
                };
                if better {
                    self.reference[part] = Some(closing as u32);
                }
            }
            self.replicas.push(closing as u32);
            self.replica_problems.push(problem);
        }
    }

    /// Transactions in invocation order, and which came from a fenced producer: one
    /// sweep in event order keeps the holder of each transactional id (the process of
    /// its latest ok `init`).
    fn index_txns(&mut self) {
        let history = self.history;
        let mut holders: BTreeMap<&'h str, (u64, u32)> = BTreeMap::new();
        let mut txns = Vec::new();
        for (index, event) in history.events().iter().enumerate() {
            match (&event.op, event.kind) {
                (Op::Init { txn_id }, EventType::Ok) => {
                    holders.insert(txn_id, (event.process, index as u32));
                }
                (Op::Txn { txn_id, .. }, EventType::Invoke) => {
                    let op = history.op_of_event(index);
                    let span = history.ops()[op];
                    let fenced_by = holders
                        .get(txn_id.as_str())
                        .filter(|&&(holder, _)| holder != event.process)
                        .map(|&(_, init)| init);
                    txns.push(TxnView {
                        op: op as u32,
                        invoke: span.invoke,
                        completion: span.completion,
                        outcome: outcome_of(history, span.completion),
                        process: event.process,
                        txn_id,
                        sends: 0..0,
                        fenced_by,
                    });
                }
                _ => {}
            }
        }
        self.txns = txns;
    }

    fn index_sends(&mut self) {
        let history = self.history;
        let mut txn_of_op: BTreeMap<u32, u32> = BTreeMap::new();
        for (index, txn) in self.txns.iter().enumerate() {
            txn_of_op.insert(txn.op, index as u32);
        }
        let mut sends = Vec::with_capacity(history.sends().len());
        for (id, at) in history.sends().iter().enumerate() {
            let span = history.ops()[at.op as usize];
            let invoke = &history.events()[span.invoke as usize];
            let send = nth_send(&invoke.op, at.micro);
            let completion = span.completion.map(|c| &history.events()[c as usize]);
            let outcome = outcome_of(history, span.completion);
            let reported_offset = completion.and_then(|c| nth_send(&c.op, at.micro).offset);
            let ack_offset = match outcome {
                Outcome::Ok => reported_offset,
                _ => None,
            };
            let txn = at.micro.map(|_| txn_of_op[&at.op]);
            if let Some(txn) = txn {
                let range = &mut self.txns[txn as usize].sends;
                if range.start == range.end {
                    *range = id as u32..id as u32;
                }
                debug_assert_eq!(range.end, id as u32, "a transaction's sends are consecutive");
                range.end = id as u32 + 1;
            }
            sends.push(Send {
                op: at.op,
                txn,
                invoke: span.invoke,
                completion: span.completion,
                outcome,
                part: self.part(send.partition),
                key: send.key,
                value: send.value,
                ack_offset,
                reported_offset,
            });
        }
        self.sends = sends;
    }

    /// Every ok poll, plain or in an ok transaction, and every fail or info one that
    /// states what it read, flattened in operation order.
    fn index_polls(&mut self) {
        let history = self.history;
        let mut polls = Vec::new();
        for span in history.ops() {
            let Some(completion) = span.completion else { continue };
            let event = &history.events()[completion as usize];
            let outcome = outcome_of(history, Some(completion));
            for poll in event.op.polls() {
                if outcome != Outcome::Ok && poll.records.is_empty() {
                    continue;
                }
                polls.push(PollView {
                    event: completion,
                    outcome,
                    invoke: span.invoke,
                    process: event.process,
                    part: self.part(poll.partition),
                    from: poll.from,
                    records: poll.records,
                    isolation: poll.isolation,
                });
            }
        }
        self.polls = polls;
    }

    /// The id of a sent value.
    pub fn sent_value(&self, part: u32, value: &str) -> Option<u32> {
        self.history.send_position(self.partition_id(part), value)
    }

    fn collect_claims(&mut self) {
        let mut claims = Vec::new();
        for (id, send) in self.sends.iter().enumerate() {
            if let Some(offset) = send.ack_offset {
                claims.push(Claim {
                    record: None,
                    part: send.part,
                    offset,
                    value: id as u32,
                    source: Source::Ack { op: send.op },
                });
            }
        }
        // Values never sent are named after the claims are in: collect them aside.
        let mut unsent: Vec<(u32, &'h str, u32)> = Vec::new();
        let mut push = |claims: &mut Vec<Claim<'h>>,
                        part: u32,
                        record: &'h Record,
                        source: Source| {
            let value = self.sent_value(part, &record.value).unwrap_or_else(|| {
                unsent.push((part, &record.value, claims.len() as u32));
                u32::MAX
            });
            claims.push(Claim { part, offset: record.offset, value, source, record: Some(record) });
        };
        for (index, poll) in self.polls.iter().enumerate() {
            for (position, record) in poll.records.iter().enumerate() {
                let source = Source::Read { poll: index as u32, record: position as u32 };
                push(&mut claims, poll.part, record, source);
            }
        }
        for part in 0..self.partitions.len() as u32 {
            let Some((closing, replica)) = self.reference_replica(part) else { continue };
            for (index, record) in replica.records.iter().enumerate() {
                if record.offset >= replica.log_start_offset
                    && record.offset < replica.high_watermark
                    && !replica.is_aborted(record.offset)
                {
                    let source = Source::Final { closing: closing as u32, record: index as u32 };
                    push(&mut claims, part, record, source);
                }
            }
        }
        unsent.sort_unstable();
        let mut next_id = self.sends.len() as u32;
        for (i, &(part, value, claim)) in unsent.iter().enumerate() {
            if i > 0 && (unsent[i - 1].0, unsent[i - 1].1) != (part, value) {
                next_id += 1;
            }
            claims[claim as usize].value = next_id;
        }
        let value_count = if unsent.is_empty() { self.sends.len() } else { next_id as usize + 1 };
        self.facts = vec![ValueFacts::default(); value_count];
        sort_claims(&mut claims);
        debug_assert!(claims.iter().all(|claim| (claim.value as usize) < value_count));
        self.claims = claims;
    }

    fn collect_facts(&mut self) {
        let view_ends: Vec<u64> =
            (0..self.partitions.len() as u32).map(|part| self.view_end(part)).collect();
        self.facts.fill(ValueFacts::default());
        for (index, claim) in self.claims.iter().enumerate() {
            if !self.read_committed(claim) {
                continue;
            }
            let facts = &mut self.facts[claim.value as usize];
            match claim.source {
                Source::Ack { .. } => continue,
                Source::Read { .. } => facts.read = true,
                Source::Final { .. } => {
                    facts.in_final = true;
                    facts.in_view |= claim.offset < view_ends[claim.part as usize];
                }
            }
            // Claims are in offset order, so the first observation is the lowest.
            facts.landed.get_or_insert((claim.offset, index as u32));
        }
    }
}

/// Sorts claims into their derived order, in place.
///
/// (part, offset, value, source) is unique per claim (a source names one op's
/// acknowledgement, or one record of one read or one replica's log), so the `record`
/// field never decides and an unstable sort on those four gives the one order. In place
/// matters: the claims are the checkers' largest index (one per record read or held: at a
/// million operations, 3.9 million of them, 150 MB), and a sort that buffers them
/// doubles the peak memory.
fn sort_claims(claims: &mut [Claim<'_>]) {
    claims.sort_unstable_by_key(|claim| (claim.part, claim.offset, claim.value, claim.source));
}

/// How an operation ended, from its completion event.
fn outcome_of(history: &History, completion: Option<u32>) -> Outcome {
    match completion.map(|event| history.events()[event as usize].kind) {
        None => Outcome::Pending,
        Some(EventType::Ok) => Outcome::Ok,
        Some(EventType::Fail) => Outcome::Fail,
        Some(EventType::Info) => Outcome::Info,
        Some(EventType::Invoke) => unreachable!("a completion is not an invoke"),
    }
}

/// The send a `SendAt` names inside an operation (the op itself, or a micro-op).
fn nth_send(op: &Op, micro: Option<u32>) -> crate::history::SendArgs<'_> {
    match (op, micro) {
        (Op::Txn { ops, .. }, Some(micro)) => {
            ops[micro as usize].send_args().expect("the send index holds send micro-ops")
        }
        _ => op.sends().next().expect("the send index holds sends"),
    }
}

/// Every partition mentioned by an operation, a replica or a protocol event.
fn partitions(history: &History) -> Vec<u32> {
    let mut partitions = BTreeSet::new();
    for event in history.events() {
        partitions.extend(event.op.partitions());
    }
    for line in history.closing() {
        match line {
            Closing::Replica(replica) => {
                partitions.insert(replica.partition);
            }
            Closing::Protocol(protocol) => {
                if let Some(partition) = protocol.event.partition() {
                    partitions.insert(partition);
                }
            }
        }
    }
    partitions.into_iter().collect()
}

/// What makes a replica's log malformed, if anything: offsets that do not strictly
/// increase, records below the log start, a high watermark outside the log. With
/// transactions, control markers occupy offsets without being records, so the high
/// watermark may pass the last record (`transactional`: the history has any).
fn replica_problem(
    replica: &crate::history::Replica,
    transactional: bool,
) -> Option<(u64, String)> {
    let markers =
        transactional || replica.last_stable_offset.is_some() || !replica.aborted.is_empty();
    let first = replica.records.first();
    if let Some(first) = first.filter(|first| first.offset < replica.log_start_offset) {
        return Some((
            first.offset,
            format!(
                "holds offset {} below its log start {}",
                first.offset, replica.log_start_offset
            ),
        ));
    }
    if let Some(pair) = replica.records.windows(2).find(|pair| pair[1].offset <= pair[0].offset) {
        return Some((
            pair[1].offset,
            format!("holds offset {} after offset {}", pair[1].offset, pair[0].offset),
        ));
    }
    let log_end_offset = replica.log_end_offset();
    if replica.high_watermark > log_end_offset && !markers {
        return Some((
            replica.high_watermark,
            format!(
                "has high watermark {} beyond its log end {log_end_offset}",
                replica.high_watermark
            ),
        ));
    }
    if replica.high_watermark < replica.log_start_offset {
        return Some((
            replica.high_watermark,
            format!(
                "has high watermark {} below its log start {}",
                replica.high_watermark, replica.log_start_offset
            ),
        ));
    }
    None
}
