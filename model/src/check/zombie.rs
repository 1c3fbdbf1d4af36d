//! zombie-write: a fenced producer's transactions never take effect.
//!
//! Once process B's `init` of transactional id X completes `ok`, every earlier holder
//! of X is fenced. A transaction of another process A under X, invoked while B held
//! the id (after B's init, before any later init of A's), must not become visible: no
//! send of it in the final read_committed view, none read at read_committed. The
//! holder is found by one sweep in event order (`Digest::txns`, `fenced_by`). One
//! anomaly per transaction.

use super::Findings;
use super::digest::Digest;
use crate::invariant::{Guarantee, Invariant};

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let mut fenced = 0;
    for txn in &digest.txns {
        let Some(init) = txn.fenced_by else { continue };
        fenced += 1;
        let seen = txn.sends.clone().find(|&value| {
            let facts = &digest.facts[value as usize];
            facts.in_view || facts.read
        });
        let Some(value) = seen else { continue };
        let send = &digest.sends[value as usize];
        let holder = digest.history.events()[init as usize].process;
        findings.found(Invariant::ZombieWrite, Guarantee::Transactional, Some(digest.partition_id(send.part)), || {
            let explanation = format!(
                "process {} invoked transaction `{}` after process {holder} took the id, yet its `{}` became visible",
                txn.process, txn.txn_id, send.value
            );
            let mut witness = vec![
                digest.witness.event(init as usize),
                digest.witness.event(txn.invoke as usize),
            ];
            if let Some((_, claim)) = digest.facts[value as usize].landed {
                witness.push(digest.claim_witness(&digest.claims[claim as usize]));
            }
            (explanation, witness)
        });
    }
    findings.examined(Invariant::ZombieWrite, fenced, "fenced transactions");
}
