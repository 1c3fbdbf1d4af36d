//! txn-aborted-read, dirty-read and read-past-lso: what reads saw of transactions.
//!
//! A record of a transaction that ended `fail` must never be seen at read_committed,
//! by a poll or in the final read_committed view (txn-aborted-read, Jepsen's G1a for
//! transactions). A read_committed poll must stop at the last stable offset and return
//! only decided transactions: a record at or above the reference replica's final last
//! stable offset (below its high watermark; above it is committed-read-changed), or of
//! an `info` (or pending) transaction none of whose sends made it into the final view,
//! was read too early (read-past-lso). A read_uncommitted poll may see records of
//! aborted or undecided transactions: that is dirty-read, always expected (its
//! guarantee, `read-committed-only`, is never promised). One anomaly per value each.

use super::digest::{Claim, Digest, Outcome, Source};
use super::{Findings, seconds};
use crate::history::Isolation;
use crate::invariant::{Guarantee, Invariant};
use crate::verdict::Witness;

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let mut aborted_reported = vec![false; digest.sends.len()];
    let mut dirty_reported = vec![false; digest.sends.len()];
    let mut early_reported = vec![false; digest.sends.len()];
    let (mut committed_reads, mut uncommitted_reads, mut committed_observations) = (0, 0, 0);
    // Whether any send of each transaction is in the final view; and whether that can
    // be known at all: only if the history has a final log of every partition it wrote.
    let txn_visible: Vec<bool> = digest
        .txns
        .iter()
        .map(|txn| txn.sends.clone().any(|value| digest.facts[value as usize].in_view))
        .collect();
    let txn_judgeable: Vec<bool> = digest
        .txns
        .iter()
        .map(|txn| {
            txn.sends
                .clone()
                .all(|value| digest.reference_replica(digest.sends[value as usize].part).is_some())
        })
        .collect();
    for claim in digest.claims.iter().filter(|claim| claim.observed()) {
        let isolation = match claim.source {
            Source::Read { poll, .. } => Some(digest.polls[poll as usize].isolation),
            _ => None,
        };
        match isolation {
            Some(Isolation::ReadUncommitted) => uncommitted_reads += 1,
            Some(Isolation::ReadCommitted) => {
                committed_reads += 1;
                committed_observations += 1;
            }
            None => committed_observations += 1,
        }
        let value = claim.value as usize;
        // Values never sent are phantoms, judged elsewhere.
        let Some(send) = digest.sends.get(value) else { continue };
        let partition = digest.partition_id(claim.part);
        let in_view = claim.offset < digest.view_end(claim.part);
        let failed_txn = send.txn.is_some() && send.outcome == Outcome::Fail;
        let aborted_seen = match isolation {
            None if failed_txn && in_view => Some("is in the final read_committed view"),
            Some(Isolation::ReadCommitted) if failed_txn => Some("was read at read_committed"),
            _ => None,
        };
        if let Some(how) = aborted_seen {
            if !std::mem::replace(&mut aborted_reported[value], true) {
                report_aborted(digest, findings, claim, partition, how);
            }
            continue;
        }
        match isolation {
            None => {}
            Some(Isolation::ReadCommitted) => {
                let past_lso = digest.reference_replica(claim.part).filter(|(_, replica)| {
                    claim.offset >= replica.last_stable() && claim.offset < replica.high_watermark
                });
                let undecided = send.txn.filter(|&txn| {
                    matches!(send.outcome, Outcome::Info | Outcome::Pending)
                        && txn_judgeable[txn as usize]
                        && !txn_visible[txn as usize]
                });
                if (past_lso.is_some() || undecided.is_some())
                    && !std::mem::replace(&mut early_reported[value], true)
                {
                    findings.found(Invariant::ReadPastLso, Guarantee::Transactional, Some(partition), || {
                        let mut witness = vec![digest.claim_witness(claim)];
                        let explanation = match past_lso {
                            Some((closing, replica)) => {
                                witness.push(digest.witness.replica_at(closing, claim.offset));
                                format!(
                                    "`{}` was read at read_committed at offset {}, at or above n{}'s final last stable offset {}",
                                    send.value, claim.offset, replica.node, replica.last_stable()
                                )
                            }
                            None => {
                                witness.push(digest.witness.event(send.completion.unwrap_or(send.invoke) as usize));
                                format!(
                                    "`{}` was read at read_committed at offset {}, but its transaction ended undecided and none of its sends is in the final read_committed view",
                                    send.value, claim.offset
                                )
                            }
                        };
                        (explanation, witness)
                    });
                }
            }
            Some(Isolation::ReadUncommitted) => {
                let dirty = send.txn.is_some()
                    && (send.outcome == Outcome::Fail || !digest.facts[value].in_view);
                if dirty && !std::mem::replace(&mut dirty_reported[value], true) {
                    findings.found(
                        Invariant::DirtyRead,
                        Guarantee::ReadCommittedOnly,
                        Some(partition),
                        || {
                            let why = if send.outcome == Outcome::Fail {
                                "its transaction failed"
                            } else {
                                "it is not in the final read_committed view"
                            };
                            let explanation = format!(
                                "`{}` was read at read_uncommitted at offset {}, and {why}",
                                send.value, claim.offset
                            );
                            let txn_event = send.completion.unwrap_or(send.invoke) as usize;
                            (
                                explanation,
                                vec![digest.witness.event(txn_event), digest.claim_witness(claim)],
                            )
                        },
                    );
                }
            }
        }
    }
    findings.examined(Invariant::TxnAbortedRead, committed_observations, "records read");
    findings.examined(Invariant::DirtyRead, uncommitted_reads, "records read uncommitted");
    findings.examined(Invariant::ReadPastLso, committed_reads, "records read");
}

fn report_aborted(
    digest: &Digest<'_>,
    findings: &mut Findings<'_>,
    claim: &Claim<'_>,
    partition: u32,
    how: &str,
) {
    let send = &digest.sends[claim.value as usize];
    findings.found(Invariant::TxnAbortedRead, Guarantee::Transactional, Some(partition), || {
        let failed = send.completion.expect("a failed transaction completed") as usize;
        let mut explanation = format!(
            "`{}` at offset {} {how}, but its transaction failed",
            send.value, claim.offset
        );
        let mut witness: Vec<Witness> =
            vec![digest.witness.event(failed), digest.claim_witness(claim)];
        if let Some(story) = committed_with(digest, claim, failed) {
            explanation.push_str(&story.words);
            witness.extend(story.witness);
        }
        (explanation, witness)
    });
}

/// How far from an aborted record, in records of the final log, a committed
/// transaction of the same producer is looked for.
const NEIGHBOURS_MAX: usize = 16;

/// Why an aborted record is visible, as the final log tells it.
struct Story {
    words: String,
    witness: Vec<Witness>,
}

/// The story of an aborted transaction's record that reads saw as committed: where it
/// sits in the partition's final log, and the transaction of the same producer that
/// decided it: one that committed, began after the abort and before the read that saw
/// the record (if a read saw it), with a record on the partition near it (the nearest
/// within `NEIGHBOURS_MAX` records), or, better, one acknowledged a send at the very
/// offset the aborted record holds (the late write passed for that send's batch). This
/// is the shape of a late produce that joins the producer's next transaction (KIP-890).
/// `None` without a final log of the partition, or when it marks the record aborted.
fn committed_with(digest: &Digest<'_>, claim: &Claim<'_>, failed: usize) -> Option<Story> {
    let send = &digest.sends[claim.value as usize];
    let aborted_txn = &digest.txns[send.txn? as usize];
    let (closing, replica) = digest.reference_replica(claim.part)?;
    let at = replica.records.binary_search_by_key(&claim.offset, |r| r.offset).ok()?;
    // The read that saw it, if a poll did (the final view has no time).
    let read_at = match claim.source {
        Source::Read { poll, .. } => Some(digest.polls[poll as usize].event as usize),
        _ => None,
    };
    let decider = |txn: Option<u32>| {
        let view = &digest.txns[txn? as usize];
        let began = view.invoke as usize;
        (view.outcome == Outcome::Ok
            && view.process == aborted_txn.process
            && began > failed
            && read_at.is_none_or(|read| began < read))
        .then_some(view)
    };
    let history_events = digest.history.events();
    let aborted_ns = history_events[failed].t_ns;
    let replaced = digest
        .sends
        .iter()
        .filter(|other| other.part == claim.part && other.ack_offset == Some(claim.offset))
        .find_map(|other| decider(other.txn).map(|view| (other, view)));
    if let Some((other, txn)) = replaced {
        let committed = txn.completion? as usize;
        let words = format!(
            "; it failed at {}, and the same producer's later transaction `{}` (committed at {}, line {}) was acknowledged `{}` at offset {}, where n{}'s final log holds `{}`: the late write passed for that send and was committed with it",
            seconds(aborted_ns),
            txn.txn_id,
            seconds(history_events[committed].t_ns),
            committed + 2,
            other.value,
            claim.offset,
            replica.node,
            send.value,
        );
        let witness =
            vec![digest.witness.replica_at(closing, claim.offset), digest.witness.event(committed)];
        return Some(Story { words, witness });
    }
    let committed_txn_of = |index: usize| {
        let record = &replica.records[index];
        let value = digest.sent_value(claim.part, &record.value)?;
        decider(digest.sends[value as usize].txn).map(|view| (record, view))
    };
    let nearest = (1..=NEIGHBOURS_MAX).find_map(|distance| {
        let after = at.checked_add(distance).filter(|&i| i < replica.records.len());
        let before = at.checked_sub(distance);
        after.and_then(committed_txn_of).or_else(|| before.and_then(committed_txn_of))
    });
    let Some((record, txn)) = nearest else {
        // Without a decider, the final log alone: only if it holds the record decided
        // and not aborted (a log that marks it aborted has nothing to add).
        let committed_there = claim.offset < replica.last_stable()
            && replica.aborted.binary_search(&claim.offset).is_err();
        if !committed_there {
            return None;
        }
        return Some(Story {
            words: format!(
                "; n{} holds it committed at offset {} of its final log",
                replica.node, claim.offset
            ),
            witness: vec![digest.witness.replica_at(closing, claim.offset)],
        });
    };
    let committed = txn.completion? as usize;
    let committed_ns = history_events[committed].t_ns;
    let words = format!(
        "; it failed at {}, and in n{}'s final log it sits beside `{}` (offset {}) of the same producer's later transaction `{}`, which committed at {} (line {}): the aborted write was decided with that one",
        seconds(aborted_ns),
        replica.node,
        record.value,
        record.offset,
        txn.txn_id,
        seconds(committed_ns),
        committed + 2,
    );
    let witness =
        vec![digest.witness.replica_at(closing, claim.offset), digest.witness.event(committed)];
    Some(Story { words, witness })
}
