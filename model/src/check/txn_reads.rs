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

use super::Findings;
use super::digest::{Claim, Digest, Outcome, Source};
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
        let explanation = format!(
            "`{}` at offset {} {how}, but its transaction failed",
            send.value, claim.offset
        );
        let witness: Vec<Witness> = vec![digest.witness.event(failed), digest.claim_witness(claim)];
        (explanation, witness)
    });
}
