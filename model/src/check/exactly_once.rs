//! exactly-once: consume-transform-produce processes each input once.
//!
//! A transaction that commits consumer group G's position on input partition P, having
//! processed `[from, to)`, commits those inputs with its outputs. Per (G, P), the
//! ranges of committed transactions (ok ones, and `info` or pending ones any of whose
//! sends is in the final read_committed view or was read at read_committed) must not
//! overlap (an input processed
//! twice) and must tile from the lowest `from` to the highest `to` (no input skipped).
//! Ranges sorted by start and swept with the furthest end so far: `n log n`.
//!
//! processing-progress (when the header says processors had time to finish): every
//! group the header declares or a transaction names has committed past the input's last record
//! in the final read_committed view (a processor stuck behind is a liveness failure,
//! however exactly it processed what it did).

use std::collections::BTreeMap;

use super::Findings;
use super::digest::{Digest, Outcome};
use crate::history::{MicroOp, Op};
use crate::invariant::{Guarantee, Invariant};

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    // (group, input partition, from, to, transaction)
    let mut ranges: Vec<(&str, u32, u64, u64, u32)> = Vec::new();
    for (index, txn) in digest.txns.iter().enumerate() {
        let committed = match txn.outcome {
            Outcome::Ok => true,
            // Committed if the final view holds any of its sends, or a read_committed
            // poll returned one (what there is to go on in a history without final
            // logs; a read too early is read-past-lso's business).
            Outcome::Info | Outcome::Pending => txn.sends.clone().any(|value| {
                let facts = &digest.facts[value as usize];
                facts.in_view || facts.read
            }),
            Outcome::Fail => false,
        };
        if !committed {
            continue;
        }
        let Op::Txn { ops, .. } = &digest.history.events()[txn.invoke as usize].op else {
            unreachable!("a transaction's invocation is a txn")
        };
        for micro in ops {
            if let MicroOp::CommitOffset { group, partition, from, to } = micro {
                if from < to {
                    ranges.push((group, *partition, *from, *to, index as u32));
                }
            }
        }
    }
    ranges.sort_unstable();
    let mut reach: Option<(&str, u32, u64, u32)> = None;
    for &(group, partition, from, to, txn) in &ranges {
        let Some((_, _, end, holder)) = reach.filter(|&(g, p, _, _)| (g, p) == (group, partition))
        else {
            reach = Some((group, partition, to, txn));
            continue;
        };
        if from != end {
            let (what, first, second) = if from < end {
                (format!("inputs [{from}, {}) committed twice", end.min(to)), holder, txn)
            } else {
                (format!("inputs [{end}, {from}) never committed"), holder, txn)
            };
            findings.found(Invariant::ExactlyOnce, Guarantee::Transactional, Some(partition), || {
                let explanation = format!(
                    "group `{group}` on input partition {partition}: {what} by committed transactions"
                );
                let witness = vec![
                    digest.witness.event(digest.txns[first as usize].last_event() as usize),
                    digest.witness.event(digest.txns[second as usize].last_event() as usize),
                ];
                (explanation, witness)
            });
        }
        if to > end {
            reach = Some((group, partition, to, txn));
        }
    }
    findings.examined(Invariant::ExactlyOnce, ranges.len() as u64, "committed offset ranges");
    check_progress(digest, &ranges, findings);
}

/// Each group's furthest committed end on each input, against the input's last record
/// in the final read_committed view.
fn check_progress(
    digest: &Digest<'_>,
    ranges: &[(&str, u32, u64, u64, u32)],
    findings: &mut Findings<'_>,
) {
    if !digest.history.header().processors_settled {
        findings.examined(Invariant::ProcessingProgress, 0, "groups' inputs");
        return;
    }
    // Every (group, input) the header declares or a transaction named, committed or
    // not, with how far it got and the transaction to show (none: it never ran one).
    let mut reached: BTreeMap<(&str, u32), (u64, Option<u32>)> = BTreeMap::new();
    for declared in &digest.history.header().processors {
        reached.insert((declared.group.as_str(), declared.partition), (0, None));
    }
    for (index, txn) in digest.txns.iter().enumerate() {
        let Op::Txn { ops, .. } = &digest.history.events()[txn.invoke as usize].op else {
            unreachable!("a transaction's invocation is a txn")
        };
        for micro in ops {
            if let MicroOp::CommitOffset { group, partition, .. } = micro {
                let entry = reached.entry((group.as_str(), *partition)).or_insert((0, None));
                entry.1.get_or_insert(index as u32);
            }
        }
    }
    for &(group, partition, _, to, txn) in ranges {
        let entry = reached.entry((group, partition)).or_insert((0, Some(txn)));
        if to >= entry.0 {
            *entry = (to, Some(txn));
        }
    }
    let mut judged = 0;
    for (&(group, partition), &(to, txn)) in &reached {
        let Ok(part) = digest.partitions.binary_search(&partition) else { continue };
        let Some((closing, replica)) = digest.reference_replica(part as u32) else { continue };
        let view_end = replica.last_stable();
        let last = replica
            .records
            .iter()
            .rev()
            .find(|record| record.offset < view_end && !replica.is_aborted(record.offset));
        let Some(last) = last else { continue };
        judged += 1;
        if to > last.offset {
            continue;
        }
        findings.found(Invariant::ProcessingProgress, Guarantee::Liveness, Some(partition), || {
            let Some(txn) = txn else {
                let explanation = format!(
                    "group `{group}` on input partition {partition} never committed any of its input, but the input's last record in the final read_committed view is at offset {}",
                    last.offset
                );
                return (explanation, vec![digest.witness.replica_at(closing, last.offset)]);
            };
            let explanation = format!(
                "group `{group}` on input partition {partition} committed its input up to (not including) offset {to}, but the input's last record in the final read_committed view is at offset {}, still unprocessed",
                last.offset
            );
            let shown = digest.txns[txn as usize].last_event() as usize;
            (explanation, vec![digest.witness.event(shown)])
        });
    }
    findings.examined(Invariant::ProcessingProgress, judged, "groups' inputs");
}
