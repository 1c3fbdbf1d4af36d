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

use std::collections::BTreeSet;

use crate::history::{Closing, EventType, History, Op, Record};

/// How a send ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Fail,
    Info,
    Pending,
}

/// A send operation, indexed by its value id.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Send<'h> {
    pub op: u32,
    pub invoke: u32,
    pub completion: Option<u32>,
    pub outcome: Outcome,
    /// Dense partition index.
    pub part: u32,
    pub key: Option<&'h str>,
    pub value: &'h str,
    /// The offset the acknowledgement gave, if it gave one.
    pub ack_offset: Option<u64>,
}

/// Who claims that a value sits at an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Source {
    /// An acknowledged send (the op).
    Ack { op: u32 },
    /// A record returned by an ok poll (the op, and the record's position in it).
    Read { op: u32, record: u32 },
    /// A committed record of the reference replica (its closing line and position).
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

/// What the claims say about one value.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ValueFacts {
    /// Some ok poll returned it.
    pub read: bool,
    /// The reference replica holds it below its high watermark.
    pub in_final: bool,
    /// The lowest offset it was observed at (by a read or the final log), and the
    /// claim that shows it.
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
            facts: Vec::new(),
            claims: Vec::new(),
        };
        digest.index_replicas();
        digest.index_sends();
        digest.collect_claims();
        digest.collect_facts();
        digest
    }

    /// The dense index of a partition the history mentions.
    pub fn part(&self, partition: u32) -> u32 {
        self.partitions.binary_search(&partition).expect("every partition is indexed") as u32
    }

    pub fn partition_id(&self, part: u32) -> u32 {
        self.partitions[part as usize]
    }

    /// The ok poll's completion event and what it read, for a poll op.
    pub fn poll(&self, op: u32) -> (usize, u64, &'h [Record]) {
        let completion =
            self.history.ops()[op as usize].completion.expect("an ok poll has completed");
        match &self.history.events()[completion as usize].op {
            Op::Poll { from, records, .. } => (completion as usize, *from, records),
            _ => unreachable!("op {op} is a poll"),
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
            Source::Read { op, .. } => self.history.ops()[op as usize].invoke as u64,
            Source::Final { .. } => u64::MAX,
        }
    }

    /// The event position a committed observation was complete at.
    pub fn observed_by(&self, claim: &Claim) -> u64 {
        match claim.source {
            Source::Ack { .. } => unreachable!("an acknowledgement is not an observation"),
            Source::Read { op, .. } => self.poll(op).0 as u64,
            Source::Final { .. } => u64::MAX,
        }
    }

    /// The witness for a claim: the acknowledging or polling event, or the replica.
    pub fn claim_witness(&self, claim: &Claim) -> crate::verdict::Witness {
        match claim.source {
            Source::Ack { op } => self
                .witness
                .event(self.history.ops()[op as usize].completion.expect("acknowledged") as usize),
            Source::Read { op, .. } => self.witness.event(self.poll(op).0),
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
        for (closing, line) in self.history.closing().iter().enumerate() {
            let Closing::Replica(replica) = line else { continue };
            let problem = replica_problem(replica);
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

    fn index_sends(&mut self) {
        let history = self.history;
        let sends: Vec<Send<'h>> = history
            .sends()
            .iter()
            .map(|&op| {
                let span = history.ops()[op as usize];
                let invoke = &history.events()[span.invoke as usize];
                let Op::Send { partition, key, value, .. } = &invoke.op else {
                    unreachable!("the value index holds sends")
                };
                let completion = span.completion.map(|c| &history.events()[c as usize]);
                let outcome = match completion.map(|event| event.kind) {
                    None => Outcome::Pending,
                    Some(EventType::Ok) => Outcome::Ok,
                    Some(EventType::Fail) => Outcome::Fail,
                    Some(EventType::Info) => Outcome::Info,
                    Some(EventType::Invoke) => unreachable!("a completion is not an invoke"),
                };
                let ack_offset = match completion.map(|event| &event.op) {
                    Some(Op::Send { offset, .. }) => *offset,
                    _ => None,
                };
                Send {
                    op,
                    invoke: span.invoke,
                    completion: span.completion,
                    outcome,
                    part: self.part(*partition),
                    key: key.as_deref(),
                    value,
                    ack_offset,
                }
            })
            .collect();
        self.sends = sends;
    }

    /// The id of a sent value.
    fn sent_value(&self, part: u32, value: &str) -> Option<u32> {
        self.history.send_position(self.partition_id(part), value)
    }

    fn collect_claims(&mut self) {
        let history = self.history;
        let mut claims = Vec::new();
        for (id, send) in self.sends.iter().enumerate() {
            if let (Outcome::Ok, Some(offset)) = (send.outcome, send.ack_offset) {
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
        for (op, span) in history.ops().iter().enumerate() {
            let Some(completion) = span.completion else { continue };
            let event = &history.events()[completion as usize];
            if let (EventType::Ok, Op::Poll { partition, records, .. }) = (event.kind, &event.op) {
                let part = self.part(*partition);
                for (index, record) in records.iter().enumerate() {
                    push(
                        &mut claims,
                        part,
                        record,
                        Source::Read { op: op as u32, record: index as u32 },
                    );
                }
            }
        }
        for part in 0..self.partitions.len() as u32 {
            let Some((closing, replica)) = self.reference_replica(part) else { continue };
            for (index, record) in replica.records.iter().enumerate() {
                if record.offset >= replica.log_start_offset
                    && record.offset < replica.high_watermark
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
        sort_claims(&mut claims, self.partitions.len());
        debug_assert!(claims.iter().all(|claim| (claim.value as usize) < value_count));
        self.claims = claims;
    }

    fn collect_facts(&mut self) {
        for (index, claim) in self.claims.iter().enumerate() {
            let facts = &mut self.facts[claim.value as usize];
            match claim.source {
                Source::Ack { .. } => continue,
                Source::Read { .. } => facts.read = true,
                Source::Final { .. } => facts.in_final = true,
            }
            // Claims are in offset order, so the first observation is the lowest.
            facts.landed.get_or_insert((claim.offset, index as u32));
        }
    }
}

/// Sorts claims into their derived order, cheaply when they come in source order.
///
/// (part, offset, value, source) is unique per claim (a source names one op's
/// acknowledgement, or one record of one read or one replica's log), so the `record`
/// field never decides. Claims are gathered in source order (acknowledgements, then
/// reads, then final logs, each in op or line order): then ordering them by partition
/// (a counting sort) and each partition's run by (offset, value) with a stable sort
/// gives the same order, and the stable sort finds the long ascending runs each
/// source makes within a partition. Otherwise the plain sort does it.
fn sort_claims(claims: &mut Vec<Claim<'_>>, partitions: usize) {
    let in_source_order = claims.windows(2).all(|pair| pair[0].source < pair[1].source);
    if !in_source_order || claims.iter().any(|claim| claim.part as usize >= partitions) {
        claims.sort_unstable();
        return;
    }
    let mut starts = vec![0usize; partitions + 1];
    for claim in claims.iter() {
        starts[claim.part as usize + 1] += 1;
    }
    for part in 0..partitions {
        starts[part + 1] += starts[part];
    }
    let mut next = starts.clone();
    let mut by_part: Vec<Option<Claim<'_>>> = vec![None; claims.len()];
    for claim in claims.drain(..) {
        let at = &mut next[claim.part as usize];
        by_part[*at] = Some(claim);
        *at += 1;
    }
    claims.extend(by_part.into_iter().map(|claim| claim.expect("every slot filled")));
    for part in 0..partitions {
        claims[starts[part]..starts[part + 1]].sort_by_key(|claim| (claim.offset, claim.value));
    }
}

/// Every partition mentioned by an operation, a replica or a protocol event.
fn partitions(history: &History) -> Vec<u32> {
    let mut partitions = BTreeSet::new();
    for event in history.events() {
        match &event.op {
            Op::Send { partition, .. } | Op::Poll { partition, .. } => {
                partitions.insert(*partition);
            }
            Op::Assign { partitions: assigned } => partitions.extend(assigned.iter().copied()),
        }
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
/// increase, records below the log start, a high watermark outside the log.
fn replica_problem(replica: &crate::history::Replica) -> Option<(u64, String)> {
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
    if replica.high_watermark > log_end_offset {
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
