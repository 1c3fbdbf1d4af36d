//! still-pending, not-converged and hanging-transaction: is everything finished and
//! equal at the end?
//!
//! A history is judged after its quiet phase (faults healed), so every operation must
//! have completed and every replica of a partition must hold the same log and high
//! watermark as the reference replica. That holds under every configuration: a weak
//! one may lose records, or let logs part for a while, but never leave them apart, so
//! a divergence that lasts to the end (allowed or not) is also not-converged. Every transaction must be decided: a reference replica whose
//! last stable offset is below its high watermark has one left hanging.

use super::Findings;
use super::digest::Digest;
use super::replicas::first_difference;
use crate::history::Op;
use crate::invariant::{Guarantee, Invariant};

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let history = digest.history;
    for (op, span) in history.ops().iter().enumerate() {
        if span.completion.is_some() {
            continue;
        }
        let invoke = history.invoke_of(op);
        let partition = match &invoke.op {
            Op::Assign { .. } | Op::Subscribe { .. } | Op::Init { .. } => None,
            op => op.partitions().next(),
        };
        findings.found(Invariant::StillPending, Guarantee::Liveness, partition, || {
            let explanation =
                format!("process {}'s {} never completed", invoke.process, invoke.op.name());
            (explanation, vec![digest.witness.event(span.invoke as usize)])
        });
    }
    findings.examined(Invariant::StillPending, history.ops().len() as u64, "operations");

    let mut compared = 0;
    for (index, &closing) in digest.replicas.iter().enumerate() {
        if digest.replica_problems[index].is_some() {
            continue;
        }
        compared += 1;
        let closing = closing as usize;
        let replica = super::replica_of(history, closing);
        let (reference_closing, reference) = digest
            .reference_replica(digest.part(replica.partition))
            .expect("a well-formed replica has a reference");
        if reference_closing == closing {
            continue;
        }
        let from = replica.log_start_offset.max(reference.log_start_offset);
        let difference = first_difference(&reference.records, &replica.records, from, u64::MAX);
        let same_end = replica.log_end_offset() == reference.log_end_offset();
        if difference.is_none() && same_end && replica.high_watermark == reference.high_watermark {
            continue;
        }
        let offset = difference.unwrap_or(replica.high_watermark.min(reference.high_watermark));
        findings.found(
            Invariant::NotConverged,
            Guarantee::Liveness,
            Some(replica.partition),
            || {
                let ends = format!(
                    "high watermark {} and log end {} against {} and {}",
                    replica.high_watermark,
                    replica.log_end_offset(),
                    reference.high_watermark,
                    reference.log_end_offset()
                );
                let explanation = match difference {
                    Some(offset) => format!(
                        "n{} still differs from n{} at offset {offset} ({ends})",
                        replica.node, reference.node
                    ),
                    None => format!(
                        "n{} has not caught up with n{} ({ends})",
                        replica.node, reference.node
                    ),
                };
                let witness = vec![
                    digest.witness.replica_at(reference_closing, offset),
                    digest.witness.replica_at(closing, offset),
                ];
                (explanation, witness)
            },
        );
    }
    findings.examined(Invariant::NotConverged, compared, "replica logs");
}

/// hanging-transaction: a partition's reference replica ends with an undecided
/// transaction (its last stable offset below its high watermark).
pub(super) fn check_hanging(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let mut judged = 0;
    for part in 0..digest.partitions.len() as u32 {
        let Some((closing, replica)) = digest.reference_replica(part) else { continue };
        judged += 1;
        let lso = replica.last_stable();
        if lso >= replica.high_watermark {
            continue;
        }
        findings.found(Invariant::HangingTransaction, Guarantee::Transactional, Some(replica.partition), || {
            let explanation = format!(
                "n{} ends with last stable offset {lso} below its high watermark {}: a transaction left undecided",
                replica.node, replica.high_watermark
            );
            let mut witness = vec![digest.witness.replica_at(closing, lso)];
            // The undecided transaction's own line: the one whose record holds the last
            // stable offset (its invocation while pending, or how it ended unknown).
            let undecided = replica
                .records
                .binary_search_by_key(&lso, |record| record.offset)
                .ok()
                .and_then(|at| digest.history.send_position(replica.partition, &replica.records[at].value))
                .and_then(|send| digest.sends[send as usize].txn);
            if let Some(txn) = undecided {
                witness.push(digest.witness.event(digest.txns[txn as usize].last_event() as usize));
            }
            (explanation, witness)
        });
    }
    findings.examined(Invariant::HangingTransaction, judged, "partitions");
}
