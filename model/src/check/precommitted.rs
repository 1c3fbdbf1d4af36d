//! precommitted-read: a transaction read its own sends.
//!
//! In Kafka a transaction's records are invisible at read_committed until it commits,
//! and a transaction's reads are at read_committed: a poll micro-op that returns a
//! record the same transaction sent saw it before the commit (Jepsen's
//! `precommitted-read`; legal in most databases, not in Kafka's model, where
//! consumers need not take part in transaction control). One anomaly per value.

use super::Findings;
use super::digest::{Digest, Source};
use crate::invariant::{Guarantee, Invariant};

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let mut reads_in_txns = 0;
    let mut reported = vec![false; digest.sends.len()];
    for claim in &digest.claims {
        let Source::Read { poll, .. } = claim.source else { continue };
        let view = &digest.polls[poll as usize];
        let Some(send) = digest.sends.get(claim.value as usize) else { continue };
        // A poll micro-op shares its transaction's completion event.
        let Some(txn) = send.txn.map(|txn| &digest.txns[txn as usize]) else { continue };
        reads_in_txns += 1;
        if txn.completion != Some(view.event) {
            continue;
        }
        if std::mem::replace(&mut reported[claim.value as usize], true) {
            continue;
        }
        let partition = digest.partition_id(claim.part);
        findings.found(Invariant::PrecommittedRead, Guarantee::Transactional, Some(partition), || {
            let explanation = format!(
                "transaction `{}` of process {} read its own `{}` at offset {} before it committed",
                txn.txn_id, txn.process, send.value, claim.offset
            );
            (explanation, vec![digest.witness.event(view.event as usize)])
        });
    }
    findings.examined(Invariant::PrecommittedRead, reads_in_txns, "reads of transactional records");
}
