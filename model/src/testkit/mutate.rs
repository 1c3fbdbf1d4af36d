//! One targeted break in a valid history, and the invariant that must catch it.
//!
//! Each mutation edits the closing lines (the replicas' final logs or the protocol
//! events) the way a buggy log would have left them, and works out from the history
//! itself which anomaly kind is the right diagnosis: a dropped record that someone
//! read is a committed read that changed, one only acknowledged is a lost write.
//! Records are chosen among those the history can vouch for (acknowledged or read at
//! that offset): an unread `info` send that vanished is not a bug anyone could see.
//!
//! The transactional mutations (`Mutation::TRANSACTIONAL`) need a history with
//! transactions and final logs (`GenConfig::transactional`); some of them edit the
//! operations too (a range committed twice, an `init` that fences a producer).

use std::collections::BTreeSet;

use crate::history::{
    Closing, Event, EventType, History, MicroOp, Op, Protocol, ProtocolEvent, Record, Replica, Text,
};
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
    /// Every replica of one partition holds the record a committed transaction wrote
    /// there as aborted, while its records on other partitions stay committed:
    /// atomic-visibility (and, the send being acknowledged, lost-write).
    AbortCommittedTxnRecord,
    /// Every replica holds every record of a failed transaction as committed (dropped
    /// from `aborted`): txn-aborted-read (and poll-skip, where a read_committed reader
    /// stepped over one of them; atomic-visibility, if a record of it was lost with a
    /// leader change: one with all its records held is chosen when there is one).
    UnabortFailedTxn,
    /// Every replica of one partition ends with its last stable offset below its high
    /// watermark (past its last record where a marker ends the log, so no read is
    /// above it): hanging-transaction (and read-past-lso, if a read is above it).
    HangTransaction,
    /// A committed consume-transform-produce transaction (ok, or `info` with a record
    /// in the final view) also commits the input just before its range, which an
    /// earlier committed transaction committed: exactly-once.
    OverlapCommittedRange,
    /// Another process takes the transactional id (`init`, ok) just before a committed
    /// transaction is invoked, whose records then become visible: zombie-write.
    FenceCommittedTxn,
    /// An ok poll returns its last record a second time: int-nonmonotonic-poll.
    RepeatLastRecordOfPoll,
    /// An ok poll of three or more records leaves out a middle one that the final log
    /// holds: int-poll-skip.
    DropRecordFromPoll,
    /// A committed transaction also polls the partition of one of its acknowledged
    /// sends, from that send's offset, and returns it: precommitted-read.
    ReadOwnSend,
}

impl Mutation {
    pub const ALL: &'static [Mutation] = &[
        Mutation::DropRecord,
        Mutation::DropRecordOnOneReplica,
        Mutation::SwapRecords,
        Mutation::DuplicateRecord,
        Mutation::ChangeValue,
        Mutation::TruncateBelowHighWatermark,
        Mutation::RepeatLastRecordOfPoll,
        Mutation::DropRecordFromPoll,
    ];

    /// The mutations of transactional state; each needs a history with transactions
    /// and final logs, and returns `None` without them.
    pub const TRANSACTIONAL: &'static [Mutation] = &[
        Mutation::AbortCommittedTxnRecord,
        Mutation::UnabortFailedTxn,
        Mutation::HangTransaction,
        Mutation::OverlapCommittedRange,
        Mutation::FenceCommittedTxn,
        Mutation::ReadOwnSend,
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
    let txns = txns(history);
    let (header, mut events, mut closing) = history.clone().into_parts();
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
                    held.value = mutant.as_str().into();
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
        Mutation::AbortCommittedTxnRecord => {
            // (partition, record) of each send of a committed transaction that wrote to
            // more than one partition, as the first replica line holds it, not aborted.
            let firsts = first_replicas(&closing);
            let candidates: Vec<(u32, Record, String)> = txns
                .iter()
                .filter(|txn| txn.kind == Some(EventType::Ok) && txn.partitions() >= 2)
                .flat_map(|txn| txn.sends.iter().map(move |send| (txn, send)))
                .filter_map(|(txn, &(partition, ref value, offset))| {
                    let replica = firsts.iter().find(|r| r.partition == partition)?;
                    let record = held(replica, value)?;
                    (Some(record.offset) == offset && !replica.is_aborted(record.offset))
                        .then(|| (partition, record.clone(), txn.txn_id.clone()))
                })
                .collect();
            drop(firsts);
            let (partition, record, txn_id) = pick(&candidates, choice)?;
            for_each_replica(&mut closing, partition, |replica| {
                if held(replica, &record.value).is_some_and(|r| r.offset == record.offset) {
                    replica.aborted.push(record.offset);
                    replica.aborted.sort_unstable();
                }
            });
            let description = format!(
                "aborted offset {} of partition {partition} ({}), of transaction `{txn_id}` that committed",
                record.offset, record.value
            );
            (Invariant::AtomicVisibility, description)
        }
        Mutation::UnabortFailedTxn => {
            // Failed transactions every record of which the final logs hold aborted;
            // failing any, those with some (the others were lost with a leader change).
            let firsts = first_replicas(&closing);
            let held_aborted = |(partition, value, _): &(u32, String, Option<u64>)| {
                firsts.iter().find(|r| r.partition == *partition).is_some_and(|replica| {
                    held(replica, value).is_some_and(|record| {
                        replica.is_aborted(record.offset) && record.offset < replica.last_stable()
                    })
                })
            };
            let failed = || txns.iter().filter(|txn| txn.kind == Some(EventType::Fail));
            let whole: Vec<&Txn> = failed()
                .filter(|txn| !txn.sends.is_empty() && txn.sends.iter().all(held_aborted))
                .collect();
            let partial: Vec<&Txn> =
                failed().filter(|txn| txn.sends.iter().any(held_aborted)).collect();
            drop(firsts);
            let txn = pick(&whole, choice).or_else(|| pick(&partial, choice))?;
            for (partition, value, _) in &txn.sends {
                for_each_replica(&mut closing, *partition, |replica| {
                    if let Some(offset) = held(replica, value).map(|record| record.offset) {
                        replica.aborted.retain(|&aborted| aborted != offset);
                    }
                });
            }
            let values: Vec<&str> = txn.sends.iter().map(|(_, value, _)| value.as_str()).collect();
            let description = format!(
                "the records of failed transaction `{}` ({}) are no longer aborted",
                txn.txn_id,
                values.join(", ")
            );
            (Invariant::TxnAbortedRead, description)
        }
        Mutation::HangTransaction => {
            // Where the log ends with a marker, the last stable offset goes right after
            // the last record; elsewhere, one below the high watermark.
            let firsts = first_replicas(&closing);
            let with_markers = firsts.iter().any(|r| r.last_stable_offset.is_some());
            let ends: Vec<(u32, u64, u64)> = firsts
                .iter()
                .filter(|r| r.high_watermark > r.log_start_offset && with_markers)
                .map(|r| (r.partition, r.log_end_offset(), r.high_watermark))
                .collect();
            drop(firsts);
            let trailing: Vec<(u32, u64)> = ends
                .iter()
                .filter(|&&(_, end, hw)| end < hw)
                .map(|&(partition, end, _)| (partition, end))
                .collect();
            let (partition, lso) = match pick(&trailing, choice) {
                Some(target) => target,
                None => {
                    let below: Vec<(u32, u64)> =
                        ends.iter().map(|&(partition, _, hw)| (partition, hw - 1)).collect();
                    pick(&below, choice)?
                }
            };
            for_each_replica(&mut closing, partition, |replica| {
                replica.last_stable_offset = Some(lso.min(replica.high_watermark));
            });
            let description = format!(
                "partition {partition} ends with last stable offset {lso}, below its high watermark"
            );
            (Invariant::HangingTransaction, description)
        }
        Mutation::OverlapCommittedRange => {
            // Committed: ok, or indeterminate with a record in the final logs.
            let firsts = first_replicas(&closing);
            let committed: Vec<&Txn> = txns
                .iter()
                .filter(|txn| match txn.kind {
                    Some(EventType::Ok) => true,
                    Some(EventType::Fail) => false,
                    _ => txn.sends.iter().any(|(partition, value, _)| {
                        firsts.iter().find(|r| r.partition == *partition).is_some_and(|replica| {
                            held(replica, value).is_some_and(|record| {
                                !replica.is_aborted(record.offset)
                                    && record.offset < replica.last_stable()
                            })
                        })
                    }),
                })
                .collect();
            drop(firsts);
            // Per (group, input partition), the lowest `from` of a committed range.
            let mut lowest: std::collections::BTreeMap<(String, u32), u64> =
                std::collections::BTreeMap::new();
            for txn in &committed {
                for (group, partition, from, _) in &txn.ranges {
                    let low = lowest.entry((group.clone(), *partition)).or_insert(*from);
                    *low = (*low).min(*from);
                }
            }
            let candidates: Vec<(&Txn, usize)> = committed
                .iter()
                .flat_map(|&txn| (0..txn.ranges.len()).map(move |range| (txn, range)))
                .filter(|&(txn, range)| {
                    let (group, partition, from, _) = &txn.ranges[range];
                    *from > lowest[&(group.clone(), *partition)]
                })
                .collect();
            let (txn, range) = pick(&candidates, choice)?;
            let (group, partition, from, to) = txn.ranges[range].clone();
            for event in [Some(txn.invoke), txn.completion].into_iter().flatten() {
                let Op::Txn { ops, .. } = &mut events[event].op else {
                    unreachable!("a transaction's events are txns")
                };
                let Some(MicroOp::CommitOffset { from, .. }) = ops
                    .iter_mut()
                    .filter(|micro| matches!(micro, MicroOp::CommitOffset { .. }))
                    .nth(range)
                else {
                    unreachable!("the range was found there")
                };
                *from -= 1;
            }
            let description = format!(
                "transaction `{}` (line {}) commits group `{group}`'s input [{}, {to}) of partition {partition}, one more than its [{from}, {to})",
                txn.txn_id,
                txn.invoke + 2,
                from - 1
            );
            (Invariant::ExactlyOnce, description)
        }
        Mutation::FenceCommittedTxn => {
            let candidates: Vec<&Txn> = txns
                .iter()
                .filter(|txn| txn.kind == Some(EventType::Ok) && !txn.sends.is_empty())
                .collect();
            let txn = pick(&candidates, choice)?;
            let fencer = events.iter().map(|event| event.process).max().unwrap_or(0) + 1;
            let t_ns = events[txn.invoke].t_ns;
            let init = |kind| Event {
                i: 0,
                t_ns,
                process: fencer,
                kind,
                op: Op::Init { txn_id: txn.txn_id.clone() },
                error: None,
            };
            events.splice(txn.invoke..txn.invoke, [init(EventType::Invoke), init(EventType::Ok)]);
            for (i, event) in events.iter_mut().enumerate() {
                event.i = i as u64;
            }
            let description = format!(
                "process {fencer} takes transactional id `{}` just before the committed transaction on line {}",
                txn.txn_id,
                txn.invoke + 2
            );
            (Invariant::ZombieWrite, description)
        }
        Mutation::RepeatLastRecordOfPoll => {
            let candidates: Vec<usize> = (0..events.len())
                .filter(|&at| {
                    events[at].kind == EventType::Ok
                        && matches!(&events[at].op, Op::Poll { records, .. } if !records.is_empty())
                })
                .collect();
            let at = pick(&candidates, choice)?;
            let Op::Poll { records, .. } = &mut events[at].op else { unreachable!("a poll") };
            let last = records.last().expect("not empty").clone();
            records.push(last.clone());
            let description =
                format!("the poll on line {} returns offset {} twice", at + 2, last.offset);
            (Invariant::IntNonmonotonicPoll, description)
        }
        Mutation::DropRecordFromPoll => {
            let finals = committed_records(&closing);
            let held_finally = |partition: u32, record: &Record| {
                finals.iter().any(|(p, held)| *p == partition && held == record)
            };
            let candidates: Vec<(usize, usize)> = (0..events.len())
                .filter(|&at| events[at].kind == EventType::Ok)
                .flat_map(|at| match &events[at].op {
                    Op::Poll { partition, records, .. } if records.len() >= 3 => (1..records.len()
                        - 1)
                        .filter(|&index| held_finally(*partition, &records[index]))
                        .map(|index| (at, index))
                        .collect(),
                    _ => Vec::new(),
                })
                .collect();
            let (at, index) = pick(&candidates, choice)?;
            let Op::Poll { records, .. } = &mut events[at].op else { unreachable!("a poll") };
            let dropped = records.remove(index);
            let description = format!(
                "the poll on line {} leaves out offset {} ({})",
                at + 2,
                dropped.offset,
                dropped.value
            );
            (Invariant::IntPollSkip, description)
        }
        Mutation::ReadOwnSend => {
            // A transaction of a process that polls nothing, so its new read moves no
            // consumer it had.
            let polling: BTreeSet<u64> = events
                .iter()
                .filter(|event| event.op.polls().next().is_some())
                .map(|event| event.process)
                .collect();
            let candidates: Vec<(&Txn, usize)> = txns
                .iter()
                .filter(|txn| txn.kind == Some(EventType::Ok))
                .filter(|txn| !polling.contains(&events[txn.invoke].process))
                .flat_map(|txn| {
                    (0..txn.sends.len())
                        .filter(|&send| txn.sends[send].2.is_some())
                        .map(move |send| (txn, send))
                })
                .collect();
            let (txn, send) = pick(&candidates, choice)?;
            let (partition, value, offset) = txn.sends[send].clone();
            let offset = offset.expect("acknowledged");
            let completion = txn.completion.expect("committed");
            let key = match &events[completion].op {
                Op::Txn { ops, .. } => ops.iter().find_map(|micro| match micro {
                    MicroOp::Send { value: sent, key, .. } if *sent == value => Some(key.clone()),
                    _ => None,
                }),
                _ => None,
            }
            .expect("the send is there");
            for (event, records) in [
                (txn.invoke, Vec::new()),
                (
                    completion,
                    vec![Record { offset, key: key.map(Text::from), value: value.as_str().into() }],
                ),
            ] {
                let Op::Txn { ops, .. } = &mut events[event].op else { unreachable!("a txn") };
                ops.push(MicroOp::Poll { partition, from: offset, records });
            }
            let description = format!(
                "transaction `{}` (line {}) reads back its own `{value}` at offset {offset} of partition {partition}",
                txn.txn_id,
                txn.invoke + 2
            );
            (Invariant::PrecommittedRead, description)
        }
    };
    let history = History::new(header, events, closing)
        .unwrap_or_else(|e| panic!("a mutation broke a format rule: {e}"));
    Some(Mutated { history, expected, description })
}

/// A transaction as its events show it.
struct Txn {
    txn_id: String,
    /// Its invocation and completion, as positions in the events.
    invoke: usize,
    completion: Option<usize>,
    kind: Option<EventType>,
    /// (partition, value, offset if acknowledged) of each send micro-op.
    sends: Vec<(u32, String, Option<u64>)>,
    /// (group, input partition, from, to) of each commit-offset micro-op.
    ranges: Vec<(String, u32, u64, u64)>,
}

impl Txn {
    /// How many partitions it sends to.
    fn partitions(&self) -> usize {
        self.sends.iter().map(|(partition, _, _)| partition).collect::<BTreeSet<_>>().len()
    }
}

fn txns(history: &History) -> Vec<Txn> {
    let mut txns = Vec::new();
    for (op, span) in history.ops().iter().enumerate() {
        let Op::Txn { txn_id, ops } = &history.invoke_of(op).op else { continue };
        let completion = history.completion_of(op);
        let ops = match completion.map(|event| &event.op) {
            Some(Op::Txn { ops, .. }) => ops,
            _ => ops,
        };
        let mut txn = Txn {
            txn_id: txn_id.clone(),
            invoke: span.invoke as usize,
            completion: span.completion.map(|event| event as usize),
            kind: completion.map(|event| event.kind),
            sends: Vec::new(),
            ranges: Vec::new(),
        };
        for micro in ops {
            match micro {
                MicroOp::Send { partition, value, offset, .. } => {
                    txn.sends.push((*partition, value.clone(), *offset));
                }
                MicroOp::CommitOffset { group, partition, from, to } => {
                    txn.ranges.push((group.clone(), *partition, *from, *to));
                }
                MicroOp::Poll { .. } => {}
            }
        }
        txns.push(txn);
    }
    txns
}

/// The record of `value` a replica holds, if any.
fn held<'r>(replica: &'r Replica, value: &str) -> Option<&'r Record> {
    replica.records.iter().find(|record| record.value == value)
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
                        vouched.read.insert((*partition, record.offset, record.value.to_string()));
                    }
                }
                _ => {}
            }
        }
        vouched
    }

    fn read_at(&self, partition: u32, record: &Record) -> bool {
        self.read.contains(&(partition, record.offset, record.value.to_string()))
    }

    fn vouches(&self, partition: u32, record: &Record) -> bool {
        let place = (partition, record.offset, record.value.to_string());
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
            ProtocolEvent::Leader { .. }
            | ProtocolEvent::Follower { .. }
            | ProtocolEvent::Recover { .. } => {}
        }
    }
    targets
}
