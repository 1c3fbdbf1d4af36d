//! atomic-visibility: a transaction is seen all together or not at all.
//!
//! In the final state: each send of a transaction is *visible* (in the final
//! read_committed view), *undecided* (held above the last stable offset: a hanging
//! transaction, reported as such) or *invisible* (aborted, or not held, in a partition
//! with a reference replica). Visible and invisible sends in one transaction break
//! atomicity, whatever the transaction's outcome.
//!
//! In what readers saw: a process that read one of transaction T's records at
//! read_committed on one partition, and (before or after) read another partition
//! across T's offset there without ever returning T's record, saw part of T. T's
//! offset is its acknowledged one or where it was observed. One anomaly per (process,
//! transaction).
//!
//! On a log that may lose committed records (`committed-stable` not promised), a
//! transaction's commit marker, or its records, can be lost on one partition and not
//! another: a transaction seen in part there follows from the loss the configuration
//! allows, and is judged as that (an expected anomaly), not as a broken transaction.

use std::collections::BTreeMap;

use super::Findings;
use super::digest::{Digest, Source};
use super::spans::{ReadSpans, Span};
use crate::history::Isolation;
use crate::invariant::{Guarantee, Invariant};

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    check_final(digest, findings);
    check_readers(digest, findings);
    findings.examined(Invariant::AtomicVisibility, digest.txns.len() as u64, "transactions");
}

/// The guarantee a partly visible transaction breaks: `transactional`, unless the log
/// may lose committed records (a lost marker or record explains it).
fn guarantee(findings: &Findings<'_>) -> Guarantee {
    if findings.promised(Guarantee::CommittedStable) {
        Guarantee::Transactional
    } else {
        Guarantee::CommittedStable
    }
}

fn check_final(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let guarantee = guarantee(findings);
    for txn in &digest.txns {
        let mut visible = None;
        let mut invisible = None;
        for value in txn.sends.clone() {
            let send = &digest.sends[value as usize];
            let facts = &digest.facts[value as usize];
            if facts.in_view {
                visible.get_or_insert(value);
            } else if !facts.in_final && digest.reference[send.part as usize].is_some() {
                invisible.get_or_insert(value);
            }
        }
        let (Some(visible), Some(invisible)) = (visible, invisible) else { continue };
        let (shown, hidden) = (&digest.sends[visible as usize], &digest.sends[invisible as usize]);
        let partition = digest.partition_id(hidden.part);
        findings.found(Invariant::AtomicVisibility, guarantee, Some(partition), || {
            let explanation = format!(
                "transaction `{}` of process {} is partly visible: `{}` (partition {}) is in the final read_committed view, `{}` (partition {partition}) is not",
                txn.txn_id,
                txn.process,
                shown.value,
                digest.partition_id(shown.part),
                hidden.value
            );
            let mut witness = vec![digest.witness.event(txn.last_event() as usize)];
            if let Some((_, claim)) = digest.facts[visible as usize].landed {
                witness.push(digest.claim_witness(&digest.claims[claim as usize]));
            }
            if let (Some(offset), Some((closing, _))) =
                (hidden.ack_offset, digest.reference_replica(hidden.part))
            {
                witness.push(digest.witness.replica_at(closing, offset));
            }
            (explanation, witness)
        });
    }
}

fn check_readers(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let guarantee = guarantee(findings);
    // (process, transaction, partition read, the poll) for each read_committed read of
    // a transactional record, and (process, value) for each read_committed read.
    let mut txn_reads: Vec<(u64, u32, u32, u32)> = Vec::new();
    let mut values_read: Vec<(u64, u32)> = Vec::new();
    // Per (process, partition): what its read_committed polls read across.
    let mut spans: BTreeMap<(u64, u32), Vec<Span>> = BTreeMap::new();
    for (index, poll) in digest.polls.iter().enumerate() {
        if poll.isolation != Isolation::ReadCommitted {
            continue;
        }
        if let Some((start, end)) = ReadSpans::of(poll) {
            spans.entry((poll.process, poll.part)).or_default().push((start, end, index as u32));
        }
    }
    let spans: BTreeMap<(u64, u32), ReadSpans> =
        spans.into_iter().map(|(key, spans)| (key, ReadSpans::new(spans))).collect();
    for claim in &digest.claims {
        let Source::Read { poll, .. } = claim.source else { continue };
        let view = &digest.polls[poll as usize];
        if view.isolation != Isolation::ReadCommitted {
            continue;
        }
        values_read.push((view.process, claim.value));
        if let Some(txn) = digest.sends.get(claim.value as usize).and_then(|send| send.txn) {
            txn_reads.push((view.process, txn, claim.part, poll));
        }
    }
    if txn_reads.is_empty() {
        return; // no transactional record read committed: nothing to look across
    }
    values_read.sort_unstable();
    values_read.dedup();
    txn_reads.sort_unstable();
    txn_reads.dedup_by_key(|&mut (process, txn, _, _)| (process, txn));
    for (process, txn_index, part_read, read_poll) in txn_reads {
        let txn = &digest.txns[txn_index as usize];
        for value in txn.sends.clone() {
            let send = &digest.sends[value as usize];
            if send.part == part_read || values_read.binary_search(&(process, value)).is_ok() {
                continue;
            }
            let offset = send.ack_offset.or(digest.facts[value as usize].landed.map(|(o, _)| o));
            let Some(offset) = offset else { continue };
            let Some(across) = spans
                .get(&(process, send.part))
                .and_then(|spans| spans.reach_at(offset))
                .and_then(|(end, poll)| (end > offset).then_some(poll))
            else {
                continue;
            };
            let partition = digest.partition_id(send.part);
            findings.found(Invariant::AtomicVisibility, guarantee, Some(partition), || {
                let explanation = format!(
                    "process {process} read transaction `{}`'s record on partition {} but read partition {partition} across its offset {offset} without `{}`",
                    txn.txn_id,
                    digest.partition_id(part_read),
                    send.value
                );
                let witness = vec![
                    digest.witness.event(txn.last_event() as usize),
                    digest.witness.event(digest.polls[read_poll as usize].event as usize),
                    digest.witness.event(digest.polls[across as usize].event as usize),
                ];
                (explanation, witness)
            });
            break;
        }
    }
}
