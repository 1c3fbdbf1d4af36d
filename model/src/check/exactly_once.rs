//! exactly-once: consume-transform-produce processes each input once.
//!
//! A transaction that commits consumer group G's position on input partition P, having
//! processed `[from, to)`, commits those inputs with its outputs. Per (G, P), the
//! ranges of committed transactions (ok ones, and `info` or pending ones any of whose
//! sends is in the final read_committed view or was read at read_committed) must not
//! overlap (an input processed
//! twice) and must tile from the lowest `from` to the highest `to` (no input skipped).
//! Ranges sorted by start and swept with the furthest end so far: `n log n`.

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
}
