//! inconsistent-offsets and committed-read-changed: one value per offset, for good.
//!
//! Claims about one offset of one partition are judged together, and each offset gets
//! at most one anomaly, the sharpest that fits:
//! - committed-read-changed: a poll read a value, and a later observation (a poll that
//!   began after it ended, or the final log) shows something else there, or nothing
//!   where the final log is committed, or the final high watermark fell below it;
//! - inconsistent-offsets: otherwise, two claims disagree (Jepsen's definition). It
//!   breaks `committed-stable` if two observations disagree, and `acked-durable` if the
//!   disagreement needs an acknowledgement (an acknowledged offset reused).

use super::Findings;
use super::digest::{Claim, Digest, Source};
use crate::invariant::{Guarantee, Invariant};

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let claims = &digest.claims;
    let mut above_hw_reported = vec![false; digest.partitions.len()];
    let (mut offsets, mut reads) = (0u64, 0u64);
    let mut start = 0;
    while start < claims.len() {
        let place = (claims[start].part, claims[start].offset);
        let len = claims[start..]
            .iter()
            .position(|c| (c.part, c.offset) != place)
            .unwrap_or(claims.len() - start);
        let group = &claims[start..start + len];
        offsets += 1;
        reads += group.iter().filter(|c| matches!(c.source, Source::Read { .. })).count() as u64;
        judge_offset(digest, findings, group, &mut above_hw_reported);
        start += len;
    }
    findings.examined(Invariant::InconsistentOffsets, offsets, "offsets");
    findings.examined(Invariant::CommittedReadChanged, reads, "records read");
}

/// All claims about one offset, sorted by value then source.
fn judge_offset<'h>(
    digest: &Digest<'h>,
    findings: &mut Findings<'_>,
    group: &[Claim<'h>],
    above_hw_reported: &mut [bool],
) {
    let (part, offset) = (group[0].part, group[0].offset);
    let partition = digest.partition_id(part);
    let first_read = group.iter().find(|c| matches!(c.source, Source::Read { .. }));
    let has_final = group.iter().any(|c| matches!(c.source, Source::Final { .. }));
    if let (Some(read), Some((closing, replica))) = (first_read, digest.reference_replica(part)) {
        let read_value = digest.value_text(read);
        if offset >= replica.high_watermark {
            // Once per partition: every later read is above the final watermark too.
            if !std::mem::replace(&mut above_hw_reported[part as usize], true) {
                findings.found(Invariant::CommittedReadChanged, Guarantee::CommittedStable, Some(partition), || {
                    let explanation = format!(
                        "`{read_value}` was read at offset {offset}, but the final high watermark of n{} is {}",
                        replica.node, replica.high_watermark
                    );
                    (explanation, vec![digest.claim_witness(read), digest.witness.replica_at(closing, offset)])
                });
            }
        } else if offset >= replica.log_start_offset
            && !has_final
            && !holds_aborted(replica, offset, read_value)
        {
            findings.found(Invariant::CommittedReadChanged, Guarantee::CommittedStable, Some(partition), || {
                let explanation = format!(
                    "`{read_value}` was read at offset {offset}, where the final log of n{} holds nothing",
                    replica.node
                );
                (explanation, vec![digest.claim_witness(read), digest.witness.replica_at(closing, offset)])
            });
            return;
        }
    }
    if group[0].value == group[group.len() - 1].value {
        return;
    }
    if let Some((read, later)) = changed_after_read(digest, group) {
        findings.found(
            Invariant::CommittedReadChanged,
            Guarantee::CommittedStable,
            Some(partition),
            || {
                let explanation = format!(
                    "`{}` was read at offset {offset}, and later `{}` is there",
                    digest.value_text(read),
                    digest.value_text(later)
                );
                (explanation, vec![digest.claim_witness(read), digest.claim_witness(later)])
            },
        );
        return;
    }
    let observed = group.iter().find(|c| c.observed());
    let observed_other =
        observed.and_then(|a| group.iter().find(|c| c.observed() && c.value != a.value));
    let (a, b, guarantee) = match (observed, observed_other) {
        (Some(a), Some(b)) => (a, b, Guarantee::CommittedStable),
        _ => {
            let a = &group[0];
            let b = group.iter().find(|c| c.value != a.value).expect("the group holds two values");
            (a, b, Guarantee::AckedDurable)
        }
    };
    findings.found(Invariant::InconsistentOffsets, guarantee, Some(partition), || {
        let explanation = format!(
            "offset {offset} holds `{}` and `{}`",
            digest.value_text(a),
            digest.value_text(b)
        );
        (explanation, vec![digest.claim_witness(a), digest.claim_witness(b)])
    });
}

/// A read, and an observation of another value that began after the read ended.
fn changed_after_read<'g, 'h>(
    digest: &Digest<'h>,
    group: &'g [Claim<'h>],
) -> Option<(&'g Claim<'h>, &'g Claim<'h>)> {
    // The latest-starting observation, and the latest-starting one of another value:
    // whatever a read saw, one of the two is the latest observation that disagrees.
    let mut latest: Option<(u64, &Claim<'h>)> = None;
    let mut latest_other: Option<(u64, &Claim<'h>)> = None;
    for claim in group.iter().filter(|c| c.observed()) {
        let from = digest.observed_from(claim);
        match latest {
            Some((latest_from, latest_claim)) if latest_claim.value == claim.value => {
                if from > latest_from {
                    latest = Some((from, claim));
                }
            }
            Some((latest_from, _)) if from <= latest_from => {
                if latest_other.is_none_or(|(other_from, _)| from > other_from) {
                    latest_other = Some((from, claim));
                }
            }
            _ => {
                latest_other = latest;
                latest = Some((from, claim));
            }
        }
    }
    group.iter().filter(|c| matches!(c.source, Source::Read { .. })).find_map(|read| {
        let done = digest.observed_by(read);
        let candidate = match latest {
            Some((_, claim)) if claim.value != read.value => latest,
            _ => latest_other,
        };
        candidate.filter(|&(from, _)| from > done).map(|(_, later)| (read, later))
    })
}

/// Whether the replica still holds `value` at `offset`, as a record of an aborted
/// transaction: the read saw it before the abort (or at read_uncommitted), and the
/// transactional checks judge that, not this one.
fn holds_aborted(replica: &crate::history::Replica, offset: u64, value: &str) -> bool {
    replica.is_aborted(offset)
        && replica
            .records
            .binary_search_by_key(&offset, |record| record.offset)
            .is_ok_and(|at| replica.records[at].value == value)
}
