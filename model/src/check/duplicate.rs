//! duplicate: every value sits at one offset.
//!
//! Across acknowledgements, reads and the final log, a value claimed at two different
//! offsets was written twice (a retry without idempotence, a replay) or moved. One
//! anomaly per value, witnessed by its lowest claim and the first claim elsewhere.

use super::Findings;
use super::digest::Digest;
use crate::invariant::{Guarantee, Invariant};

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    const NONE: u32 = u32::MAX;
    // Claims are sorted by offset within a partition, so a value's first claim is its
    // lowest offset.
    let mut first_claim = vec![NONE; digest.facts.len()];
    let mut reported = vec![false; digest.facts.len()];
    for (index, claim) in digest.claims.iter().enumerate() {
        let value = claim.value as usize;
        if first_claim[value] == NONE {
            first_claim[value] = index as u32;
            continue;
        }
        let first = &digest.claims[first_claim[value] as usize];
        if first.offset == claim.offset || std::mem::replace(&mut reported[value], true) {
            continue;
        }
        let partition = digest.partition_id(claim.part);
        findings.found(Invariant::Duplicate, Guarantee::NoDuplicates, Some(partition), || {
            let explanation = format!(
                "`{}` is at offsets {} and {}",
                digest.value_text(first),
                first.offset,
                claim.offset
            );
            (explanation, vec![digest.claim_witness(first), digest.claim_witness(claim)])
        });
    }
    let values = first_claim.iter().filter(|&&claim| claim != NONE).count() as u64;
    findings.examined(Invariant::Duplicate, values, "values");
}
