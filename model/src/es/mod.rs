//! The event-store checkers: an [`EsHistory`] (commands with their outcomes, every
//! replica's committed events, projections' checkpoints) in, an [`EsVerdict`] out.
//!
//! They fold the domain events (bank, cart, inventory) with reference folds of their
//! own over the events' JSON, independent of the event store's domain code, so a bug
//! there is not mirrored here.
//!
//! Status: the input and verdict types; the checkers follow.

mod history;
mod verdict;

pub use history::{
    CommandOutcome, CommandRecord, EsHistory, ProjectionCheckpoint, ReplicaStreams, StoredEvent,
};
pub use verdict::{
    EsAnomaly, EsCheck, EsGuarantee, EsInvariant, EsVerdict, EsWitness, MoneyTotals,
};

use verdict::Findings;

/// Checks every event-store invariant against a history.
pub fn check(history: &EsHistory) -> EsVerdict {
    let findings = Findings::new(promises(history));
    let (promises, checks, anomalies) = findings.into_parts();
    EsVerdict {
        domain: history.domain.clone(),
        expected_versions: history.expected_versions,
        lossy_log: history.lossy_log,
        promises,
        commands: history.commands.len() as u64,
        replica_logs: history.replicas.len() as u64,
        projections: history.projections.len() as u64,
        checks,
        anomalies,
        money: None,
    }
}

/// The guarantees a setup promises.
fn promises(history: &EsHistory) -> Vec<EsGuarantee> {
    let mut promises = Vec::new();
    if history.expected_versions {
        promises.push(EsGuarantee::SerialDecisions);
    }
    if !history.lossy_log {
        promises.push(EsGuarantee::AckedDurable);
    }
    promises.extend([EsGuarantee::Integrity, EsGuarantee::Liveness]);
    promises
}
