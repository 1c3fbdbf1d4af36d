//! One targeted break in a valid history, and the invariant that must catch it.
//!
//! Each mutation edits the closing lines (the replicas' final logs or the protocol
//! events) the way a buggy log would have left them, and works out from the history
//! itself which anomaly kind is the right diagnosis: a dropped record that someone
//! read is a committed read that changed, one only acknowledged is a lost write.
//! Records are chosen among those the history can vouch for (acknowledged or read at
//! that offset): an unread `info` send that vanished is not a bug anyone could see.

use std::collections::BTreeSet;

use crate::history::{Closing, EventType, History, Op, Protocol, ProtocolEvent, Record, Replica};
use crate::invariant::Invariant;

/// The mutations, named after what a buggy log does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mutation {
    /// Every replica loses one committed record (not the last).
    DropRecord,
    /// One replica loses one committed record (not its last).
    DropRecordOnOneReplica,
    /// Every replica holds two committed records in each other's places.
    SwapRecords,
    /// Every replica appends a committed copy of one record.
    DuplicateRecord,
    /// Every replica holds a value nobody sent in place of a committed one.
    ChangeValue,
    /// A replica truncates below the high watermark it reported itself.
    TruncateBelowHighWatermark,
}

impl Mutation {
    pub const ALL: &'static [Mutation] = &[
        Mutation::DropRecord,
        Mutation::DropRecordOnOneReplica,
        Mutation::SwapRecords,
        Mutation::DuplicateRecord,
        Mutation::ChangeValue,
        Mutation::TruncateBelowHighWatermark,
    ];
}

/// A mutated history and the anomaly kind it must be flagged with.
#[derive(Clone, Debug)]
pub struct Mutated {
    pub history: History,
    pub expected: Invariant,
    /// What was changed, for failure messages.
    pub description: String,
}

/// Applies `mutation` to the target `choice` picks (modulo the candidates); `None` if
/// the history has nothing the mutation applies to.
pub fn mutate(history: &History, mutation: Mutation, choice: u64) -> Option<Mutated> {
    let vouched = Vouched::new(history);
    let (header, events, mut closing) = history.clone().into_parts();
    let (expected, description) = match mutation {
        Mutation::DropRecord => {
            let (partition, record) = pick(&vouched.records(&closing, false), choice)?;
            for_each_replica(&mut closing, partition, |replica| {
                replica.records.retain(|r| r.offset != record.offset)
            });
            let read = vouched.read_at(partition, &record);
            let expected =
                if read { Invariant::CommittedReadChanged } else { Invariant::LostWrite };
            let how = if read { "read" } else { "acknowledged" };
            (
                expected,
                format!(
                    "dropped offset {} of partition {partition} ({}, {how})",
                    record.offset, record.value
                ),
            )
        }
        Mutation::DropRecordOnOneReplica => {
            let candidates: Vec<(usize, u64)> = replica_lines(&closing)
                .into_iter()
                .filter(|&line| replica_count(&closing, partition_of(&closing, line)) >= 2)
                .flat_map(|line| {
                    let replica = replica_at(&closing, line);
                    let committed = committed_everywhere(&closing, replica.partition);
                    let last = replica.records.last().map(|r| r.offset);
                    replica
                        .records
                        .iter()
                        .filter(move |r| r.offset < committed && Some(r.offset) != last)
                        .map(move |r| (line, r.offset))
                        .collect::<Vec<_>>()
                })
                .collect();
            let (line, offset) = pick(&candidates, choice)?;
            let Closing::Replica(replica) = &mut closing[line] else {
                unreachable!("a replica line")
            };
            replica.records.retain(|r| r.offset != offset);
            let description = format!(
                "dropped offset {offset} of partition {} from n{} only",
                replica.partition, replica.node
            );
            (Invariant::Divergence, description)
        }
        Mutation::SwapRecords => {
            let records = vouched.records(&closing, true);
            let pairs: Vec<(usize, usize)> = (0..records.len())
                .flat_map(|a| ((a + 1)..records.len()).map(move |b| (a, b)))
                .filter(|&(a, b)| records[a].0 == records[b].0)
                .collect();
            let (a, b) = pick(&pairs, choice)?;
            let (partition, first) = records[a].clone();
            let second = records[b].1.clone();
            for_each_replica(&mut closing, partition, |replica| {
                for record in &mut replica.records {
                    if record.offset == first.offset {
                        (record.key, record.value) = (second.key.clone(), second.value.clone());
                    } else if record.offset == second.offset {
                        (record.key, record.value) = (first.key.clone(), first.value.clone());
                    }
                }
            });
            let expected = if vouched.read_at(partition, &first) {
                Invariant::CommittedReadChanged
            } else {
                Invariant::InconsistentOffsets
            };
            let description = format!(
                "swapped offsets {} and {} of partition {partition}",
                first.offset, second.offset
            );
            (expected, description)
        }
        Mutation::DuplicateRecord => {
            let (partition, record) = pick(&committed_records(&closing), choice)?;
            for_each_replica(&mut closing, partition, |replica| {
                let end = replica.log_end_offset();
                if replica.high_watermark == end {
                    replica.high_watermark = end + 1;
                }
                replica.records.push(Record { offset: end, ..record.clone() });
            });
            let description = format!(
                "copied offset {} of partition {partition} ({}) to the end",
                record.offset, record.value
            );
            (Invariant::Duplicate, description)
        }
        Mutation::ChangeValue => {
            let (partition, record) = pick(&committed_records(&closing), choice)?;
            let mutant = format!("mutant-{choice}");
            for_each_replica(&mut closing, partition, |replica| {
                for held in replica.records.iter_mut().filter(|r| r.offset == record.offset) {
                    held.value = mutant.clone();
                }
            });
            let description =
                format!("changed offset {} of partition {partition} to {mutant}", record.offset);
            (Invariant::Phantom, description)
        }
        Mutation::TruncateBelowHighWatermark => {
            let (line, target) = pick(&truncation_targets(&closing), choice)?;
            let offset = choice % target.committed;
            let description = format!(
                "n{} truncates partition {} to {offset}, below its own high watermark {}",
                target.node, target.partition, target.committed
            );
            let truncate = Protocol {
                t_ns: target.t_ns,
                node: target.node,
                event: ProtocolEvent::Truncate { partition: target.partition, offset },
            };
            if target.replace {
                closing[line] = Closing::Protocol(truncate);
            } else {
                closing.insert(line + 1, Closing::Protocol(truncate));
            }
            (Invariant::TruncationBelowHw, description)
        }
    };
    let history = History::new(header, events, closing)
        .unwrap_or_else(|e| panic!("a mutation broke a format rule: {e}"));
    Some(Mutated { history, expected, description })
}

fn pick<T: Clone>(candidates: &[T], choice: u64) -> Option<T> {
    (!candidates.is_empty())
        .then(|| candidates[(choice % candidates.len() as u64) as usize].clone())
}

/// What the operations vouch for: (partition, offset, value) acknowledged or read.
struct Vouched {
    acknowledged: BTreeSet<(u32, u64, String)>,
    read: BTreeSet<(u32, u64, String)>,
}

impl Vouched {
    fn new(history: &History) -> Vouched {
        let mut vouched = Vouched { acknowledged: BTreeSet::new(), read: BTreeSet::new() };
        for event in history.events().iter().filter(|e| e.kind == EventType::Ok) {
            match &event.op {
                Op::Send { partition, value, offset: Some(offset), .. } => {
                    vouched.acknowledged.insert((*partition, *offset, value.clone()));
                }
                Op::Poll { partition, records, .. } => {
                    for record in records {
                        vouched.read.insert((*partition, record.offset, record.value.clone()));
                    }
                }
                _ => {}
            }
        }
        vouched
    }

    fn read_at(&self, partition: u32, record: &Record) -> bool {
        self.read.contains(&(partition, record.offset, record.value.clone()))
    }

    fn vouches(&self, partition: u32, record: &Record) -> bool {
        let place = (partition, record.offset, record.value.clone());
        self.acknowledged.contains(&place) || self.read.contains(&place)
    }

    /// Committed records of each partition's first replica line that the operations
    /// vouch for; the last record only if `with_last`.
    fn records(&self, closing: &[Closing], with_last: bool) -> Vec<(u32, Record)> {
        first_replicas(closing)
            .into_iter()
            .flat_map(|replica| {
                let last = replica.records.last().map(|r| r.offset);
                replica
                    .records
                    .iter()
                    .filter(|r| {
                        r.offset < replica.high_watermark && (with_last || Some(r.offset) != last)
                    })
                    .filter(|r| self.vouches(replica.partition, r))
                    .map(|r| (replica.partition, r.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

fn replica_lines(closing: &[Closing]) -> Vec<usize> {
    (0..closing.len()).filter(|&line| matches!(closing[line], Closing::Replica(_))).collect()
}

fn replica_at(closing: &[Closing], line: usize) -> &Replica {
    match &closing[line] {
        Closing::Replica(replica) => replica,
        Closing::Protocol(_) => unreachable!("a replica line"),
    }
}

fn partition_of(closing: &[Closing], line: usize) -> u32 {
    replica_at(closing, line).partition
}

fn replica_count(closing: &[Closing], partition: u32) -> usize {
    replica_lines(closing)
        .into_iter()
        .filter(|&line| partition_of(closing, line) == partition)
        .count()
}

/// The lowest high watermark among a partition's replicas.
fn committed_everywhere(closing: &[Closing], partition: u32) -> u64 {
    replica_lines(closing)
        .into_iter()
        .map(|line| replica_at(closing, line))
        .filter(|replica| replica.partition == partition)
        .map(|replica| replica.high_watermark)
        .min()
        .unwrap_or(0)
}

/// The first replica line of each partition.
fn first_replicas(closing: &[Closing]) -> Vec<&Replica> {
    let mut seen = BTreeSet::new();
    replica_lines(closing)
        .into_iter()
        .map(|line| replica_at(closing, line))
        .filter(|replica| seen.insert(replica.partition))
        .collect()
}

/// Every committed record of each partition's first replica line.
fn committed_records(closing: &[Closing]) -> Vec<(u32, Record)> {
    first_replicas(closing)
        .into_iter()
        .flat_map(|replica| {
            replica
                .records
                .iter()
                .filter(|r| r.offset < replica.high_watermark)
                .map(|r| (replica.partition, r.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn for_each_replica(closing: &mut [Closing], partition: u32, mut change: impl FnMut(&mut Replica)) {
    for line in closing.iter_mut() {
        if let Closing::Replica(replica) = line {
            if replica.partition == partition {
                change(replica);
            }
        }
    }
}

/// Where a truncation below the truncating node's own high watermark can go: over an
/// existing truncation by a node that reported one (`replace`), or right after a
/// high-watermark event, by the node that reported it.
#[derive(Clone, Copy)]
struct TruncationTarget {
    replace: bool,
    t_ns: u64,
    node: u32,
    partition: u32,
    /// The node's own high watermark at that point, in that lifetime (at least 1).
    committed: u64,
}

fn truncation_targets(closing: &[Closing]) -> Vec<(usize, TruncationTarget)> {
    // Per (node, partition), the highest watermark the node reported in this lifetime.
    let mut reported: std::collections::BTreeMap<(u32, u32), u64> =
        std::collections::BTreeMap::new();
    let mut targets = Vec::new();
    for (line, closing) in closing.iter().enumerate() {
        let Closing::Protocol(protocol) = closing else { continue };
        let node = protocol.node;
        let target = |partition: u32, committed: u64, replace: bool| TruncationTarget {
            replace,
            t_ns: protocol.t_ns,
            node,
            partition,
            committed,
        };
        match protocol.event {
            ProtocolEvent::HighWatermark { partition, offset } => {
                let highest = reported.entry((node, partition)).or_insert(0);
                *highest = (*highest).max(offset);
                if *highest > 0 {
                    targets.push((line, target(partition, *highest, false)));
                }
            }
            ProtocolEvent::Truncate { partition, .. } => {
                let highest = reported.get(&(node, partition)).copied().unwrap_or(0);
                if highest > 0 {
                    targets.push((line, target(partition, highest, true)));
                }
            }
            ProtocolEvent::Restart => reported.retain(|&(held, _), _| held != node),
            ProtocolEvent::Leader { .. } | ProtocolEvent::Follower { .. } => {}
        }
    }
    targets
}
