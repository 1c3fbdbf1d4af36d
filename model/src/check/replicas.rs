//! replica-log-order and divergence: are the replicas' final logs well formed, and do
//! their committed prefixes agree?
//!
//! Each well-formed replica is compared with its partition's reference replica (the
//! one with the highest high watermark) below both high watermarks. Agreeing with the
//! reference on a prefix is transitive, so no pair of replicas needs comparing twice.
//! A malformed log is reported once and left out of every other check.

use super::digest::Digest;
use super::{Findings, seconds};
use crate::history::{Closing, ProtocolEvent, Record};
use crate::invariant::{Guarantee, Invariant};
use crate::verdict::Witness;

/// Checks the replicas: each well formed, and none apart from its reference below both
/// high watermarks.
pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let mut well_formed = 0;
    for (index, &closing) in digest.replicas.iter().enumerate() {
        let closing = closing as usize;
        let replica = super::replica_of(digest.history, closing);
        if let Some((offset, problem)) = &digest.replica_problems[index] {
            findings.found(
                Invariant::ReplicaLogOrder,
                Guarantee::Integrity,
                Some(replica.partition),
                || {
                    let record = replica.records.iter().find(|r| r.offset == *offset).cloned();
                    let witness = Witness::Replica {
                        line: digest.history.line_of_closing(closing),
                        node: replica.node,
                        partition: replica.partition,
                        high_watermark: replica.high_watermark,
                        log_end_offset: replica.log_end_offset(),
                        offset: *offset,
                        record,
                    };
                    (format!("n{} {problem}", replica.node), vec![witness])
                },
            );
            continue;
        }
        well_formed += 1;
        let part = digest.part(replica.partition);
        let (reference_closing, reference) = digest
            .reference_replica(part)
            .expect("a partition with a well-formed replica has a reference");
        if reference_closing == closing {
            continue;
        }
        let from = replica.log_start_offset.max(reference.log_start_offset);
        let below = replica.high_watermark.min(reference.high_watermark);
        let Some(offset) = first_difference(&reference.records, &replica.records, from, below)
        else {
            continue;
        };
        findings.found(
            Invariant::Divergence,
            Guarantee::CommittedStable,
            Some(replica.partition),
            || {
                let mut explanation = format!(
                    "n{} and n{} differ at offset {offset}, below both high watermarks ({} and {})",
                    reference.node, replica.node, reference.high_watermark, replica.high_watermark
                );
                // The story: which send wrote each side, and under which leader.
                let mut witness = Vec::new();
                let mut told = Vec::new();
                for side in [reference, replica] {
                    let record = side.records.iter().find(|r| r.offset == offset);
                    let (words, lines) = side_story(digest, side.partition, side.node, record);
                    told.push(words);
                    witness.extend(lines);
                }
                explanation += &format!(": {}", told.join("; "));
                witness.push(digest.witness.replica_at(reference_closing, offset));
                witness.push(digest.witness.replica_at(closing, offset));
                (explanation, witness)
            },
        );
    }
    findings.examined(Invariant::ReplicaLogOrder, digest.replicas.len() as u64, "replica logs");
    findings.examined(Invariant::Divergence, well_formed, "replica logs");
}

/// One side of a divergence in words, with its lines: the record `node` holds at the
/// offset, the send that wrote it (its acknowledgement, or its invocation when it
/// was never acknowledged), and the leader the partition had then (the last
/// `leader` event at or before that time).
fn side_story(
    digest: &Digest<'_>,
    partition: u32,
    node: u32,
    record: Option<&Record>,
) -> (String, Vec<Witness>) {
    let Some(record) = record else { return (format!("n{node} holds nothing there"), Vec::new()) };
    let send = digest
        .sends
        .iter()
        .find(|send| digest.partition_id(send.part) == partition && send.value == record.value);
    let Some(send) = send else {
        return (format!("n{node} holds `{}`, which no send wrote", record.value), Vec::new());
    };
    let event = send.completion.unwrap_or(send.invoke) as usize;
    let at_ns = digest.history.events()[event].t_ns;
    let how = match send.outcome {
        super::digest::Outcome::Ok => "acknowledged",
        super::digest::Outcome::Info => "sent (indeterminate)",
        _ => "sent",
    };
    let mut lines = vec![digest.witness.event(event)];
    let closing = digest.history.closing();
    let leader = (0..closing.len()).rev().find_map(|index| match &closing[index] {
        Closing::Protocol(protocol) if protocol.t_ns <= at_ns => match protocol.event {
            ProtocolEvent::Leader { partition: p, epoch } if p == partition => {
                Some((index, protocol.node, epoch))
            }
            _ => None,
        },
        _ => None,
    });
    let words = match leader {
        Some((index, leader, epoch)) => {
            lines.push(digest.witness.protocol(index));
            format!(
                "n{node} holds `{}`, {how} at {}, written under leader n{leader} in epoch {epoch}",
                record.value,
                seconds(at_ns)
            )
        }
        None => format!("n{node} holds `{}`, {how} at {}", record.value, seconds(at_ns)),
    };
    (words, lines)
}

/// The first offset in `[from, below)` where two well-formed logs differ: a record in
/// one and not the other, or different records.
pub(super) fn first_difference(a: &[Record], b: &[Record], from: u64, below: u64) -> Option<u64> {
    let mut a = a[a.partition_point(|r| r.offset < from)..]
        .iter()
        .take_while(|r| r.offset < below)
        .peekable();
    let mut b = b[b.partition_point(|r| r.offset < from)..]
        .iter()
        .take_while(|r| r.offset < below)
        .peekable();
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return None,
            (Some(x), None) => return Some(x.offset),
            (None, Some(y)) => return Some(y.offset),
            (Some(x), Some(y)) if x.offset != y.offset => return Some(x.offset.min(y.offset)),
            (Some(x), Some(y)) if x != y => return Some(x.offset),
            _ => {
                a.next();
                b.next();
            }
        }
    }
}
