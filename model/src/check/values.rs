//! phantom and aborted-read: was every record read ever (successfully) written?
//!
//! A record read, or held committed by the final log, must come from a send of that
//! value, with that key, invoked before the read completed (phantom), and that send
//! must not have definitely failed (aborted-read, Jepsen's G1a). One anomaly per value.
//! A record of a failed *transaction* is judged by `txn_reads` instead: what counts
//! there depends on the isolation of the read.

use super::Findings;
use super::digest::{Digest, Outcome, Source};
use crate::invariant::{Guarantee, Invariant};

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let observed = digest.claims.iter().filter(|claim| claim.observed()).count() as u64;
    findings.examined(Invariant::Phantom, observed, "records read");
    findings.examined(Invariant::AbortedRead, observed, "records read");
    let mut phantom_reported = vec![false; digest.facts.len()];
    let mut aborted_reported = vec![false; digest.sends.len()];
    for claim in digest.claims.iter().filter(|claim| claim.observed()) {
        let record = digest.record(claim).expect("an observation holds a record");
        let partition = digest.partition_id(claim.part);
        let value = claim.value as usize;
        let Some(send) = digest.sends.get(value) else {
            if !std::mem::replace(&mut phantom_reported[value], true) {
                findings.found(Invariant::Phantom, Guarantee::Integrity, Some(partition), || {
                    let explanation = format!(
                        "`{}` at offset {} was never sent to partition {partition}",
                        record.value, claim.offset
                    );
                    (explanation, vec![digest.claim_witness(claim)])
                });
            }
            continue;
        };
        let read_done = match claim.source {
            Source::Read { .. } => Some(digest.observed_by(claim)),
            _ => None,
        };
        let phantom = if record.key.as_deref() != send.key {
            Some(format!(
                "`{}` at offset {} has key {}, but it was sent with key {}",
                record.value,
                claim.offset,
                key_text(record.key.as_deref()),
                key_text(send.key)
            ))
        } else if read_done.is_some_and(|done| done < send.invoke as u64) {
            Some(format!(
                "`{}` was read at offset {} before its send was invoked",
                record.value, claim.offset
            ))
        } else {
            None
        };
        if let Some(explanation) = phantom {
            if !std::mem::replace(&mut phantom_reported[value], true) {
                findings.found(Invariant::Phantom, Guarantee::Integrity, Some(partition), || {
                    let witness = vec![
                        digest.claim_witness(claim),
                        digest.witness.event(send.invoke as usize),
                    ];
                    (explanation, witness)
                });
            }
        }
        if send.outcome == Outcome::Fail
            && send.txn.is_none()
            && !std::mem::replace(&mut aborted_reported[value], true)
        {
            findings.found(Invariant::AbortedRead, Guarantee::Integrity, Some(partition), || {
                let failed = send.completion.expect("a failed send completed") as usize;
                let explanation =
                    format!("`{}` is at offset {} but its send failed", record.value, claim.offset);
                (explanation, vec![digest.witness.event(failed), digest.claim_witness(claim)])
            });
        }
    }
}

fn key_text(key: Option<&str>) -> String {
    match key {
        Some(key) => format!("`{key}`"),
        None => "null".to_string(),
    }
}
