//! int-nonmonotonic-send and int-send-skip: the order and the gaps of the sends inside
//! one transaction.
//!
//! A transaction's sends to one partition, taken in the order of its micro-ops, must
//! land at increasing offsets (int-nonmonotonic-send: a producer's sends keep their
//! order, so it breaks `acked-durable` as nonmonotonic-send does). Between two
//! successive ones, no record of anyone else may land (int-send-skip): Kafka does not
//! promise that, since other producers write between a transaction's records, so it
//! breaks `write-isolation`, which only a header can promise. Where a send landed is
//! its acknowledged offset (or the one an `info` completion reported, once its
//! transaction is proven committed), else the lowest offset it was observed at. A
//! failed transaction's sends never happened and are not judged. One anomaly of each
//! kind per (transaction, partition) at most.

use super::Findings;
use super::digest::{Claim, Digest, Outcome};
use crate::invariant::{Guarantee, Invariant};
use crate::verdict::Witness;

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let mut judged = 0;
    // (partition, micro-op order, value) of one transaction's sends that landed.
    let mut landed: Vec<(u32, u32, u32, u64)> = Vec::new();
    for txn in &digest.txns {
        if txn.outcome == Outcome::Fail || txn.sends.len() < 2 {
            continue;
        }
        landed.clear();
        for (order, value) in txn.sends.clone().enumerate() {
            if let Some((offset, _)) = digest.landing(value) {
                landed.push((digest.sends[value as usize].part, order as u32, value, offset));
            }
        }
        landed.sort_unstable();
        for pair in landed.windows(2) {
            let ((part, _, earlier, at), (next_part, _, later, next_at)) = (pair[0], pair[1]);
            if part != next_part {
                continue;
            }
            judged += 1;
            let partition = digest.partition_id(part);
            let witness = |digest: &Digest<'_>| -> Vec<Witness> {
                let mut witness = vec![digest.witness.event(txn.last_event() as usize)];
                for value in [earlier, later] {
                    if let Some((_, Some(claim))) = digest.landing(value) {
                        witness.push(digest.claim_witness(&digest.claims[claim as usize]));
                    }
                }
                witness
            };
            if next_at <= at {
                findings.found(Invariant::IntNonmonotonicSend, Guarantee::AckedDurable, Some(partition), || {
                    let explanation = format!(
                        "transaction `{}` of process {} sent `{}` before `{}`, but they landed at offsets {at} and {next_at}",
                        txn.txn_id,
                        txn.process,
                        digest.sends[earlier as usize].value,
                        digest.sends[later as usize].value
                    );
                    (explanation, witness(digest))
                });
            } else if let Some(between) = other_between(digest, part, at, next_at, &txn.sends) {
                findings.found(Invariant::IntSendSkip, Guarantee::WriteIsolation, Some(partition), || {
                    let explanation = format!(
                        "transaction `{}` of process {} sent `{}` and then `{}` at offsets {at} and {next_at}, but `{}` landed between them at offset {}",
                        txn.txn_id,
                        txn.process,
                        digest.sends[earlier as usize].value,
                        digest.sends[later as usize].value,
                        digest.value_text(between),
                        between.offset
                    );
                    let mut witness = witness(digest);
                    witness.push(digest.claim_witness(between));
                    (explanation, witness)
                });
            }
        }
    }
    findings.examined(Invariant::IntNonmonotonicSend, judged, "pairs of sends in a transaction");
    findings.examined(Invariant::IntSendSkip, judged, "pairs of sends in a transaction");
}

/// A claim of a value not sent by this transaction at an offset strictly between
/// `low` and `high` of the partition (an acknowledgement, a read or the final log).
fn other_between<'d, 'h>(
    digest: &'d Digest<'h>,
    part: u32,
    low: u64,
    high: u64,
    own: &std::ops::Range<u32>,
) -> Option<&'d Claim<'h>> {
    let start = digest.claims.partition_point(|claim| (claim.part, claim.offset) <= (part, low));
    digest.claims[start..]
        .iter()
        .take_while(|claim| claim.part == part && claim.offset < high)
        .find(|claim| !own.contains(&claim.value))
}
