//! The event-store checkers: an [`EsHistory`] (commands with their outcomes, every
//! replica's committed events, projections' checkpoints) in, an [`EsVerdict`] out.
//!
//! They fold the domain events (bank, cart, inventory) with reference folds of their
//! own over the events' JSON, independent of the event store's domain code, so a bug
//! there is not mirrored here.
//!
//! One module per concern, each reporting through `Findings`:
//! - `streams`: stream-contiguity and duplicate-command, each replica's log alone;
//! - `commands`: lost-update and replay-equivalence, each `Ok` command against the log;
//! - `folds`: folds-agree and business-rules, the reference fold of every stream;
//! - `money`: money-conservation and transfer-completion, bank transfers end to end;
//! - `money_cuts`: money-conservation at every cut of the projections' checkpoints;
//! - `projections`: projection-equivalence, each checkpointed read model, and
//!   projection-progress, each projection's last one.
//!
//! `digest` indexes the history once for all of them; `domain` holds the reference
//! folds. For a domain without one (a user's aggregate), `check_with` takes the
//! caller's fold ([`UserFold`], module `user`) for replay-equivalence, folds-agree and
//! business-rules, and its read model ([`UserReadModel`]) for projection-equivalence:
//! judged against the caller's own fold, not an independent reference.
//! A check that cannot run at all says `not checked` ([`EsCheck::not_checked`]). Whether an anomaly is a violation depends on what the setup promises
//! ([`EsGuarantee`]): without expected versions, commands deciding on stale state (and
//! what follows from it) are expected; on a lossy log, so are lost appends. Like the
//! log checkers, a verdict is a pure function of the history, and nothing iterates a
//! hash map.
//!
//! How a rule broken by an event in the log is judged: if the command that wrote it
//! decided on an older version than it landed at, it missed updates (serial decisions,
//! expected when appends use "any"); on a newer one, it folded events the log lost
//! since (durability); on the same one, the store or the handler is wrong (integrity).
//!
//! What the checkers assume of a history: a command id names one command and its
//! retries, and its events go to one stream (its record's); a stream lives in one
//! partition; a checkpoint's offset is the next one to read.

mod commands;
mod digest;
mod domain;
mod folds;
mod history;
mod money;
mod money_cuts;
mod projections;
mod streams;
mod user;
mod verdict;

pub use history::{
    CommandOutcome, CommandRecord, EsHistory, ProjectionCheckpoint, ReplicaStreams, StoredEvent,
};
pub use user::{UserFold, UserReadModel, UserState};
pub use verdict::{
    EsAnomaly, EsCheck, EsGuarantee, EsInvariant, EsVerdict, EsWitness, MoneyTotals,
};

use verdict::Findings;

/// Checks every event-store invariant against a history, with the model's reference
/// fold of its domain. A domain the model has no fold of gets its fold-free checks;
/// replay-equivalence, folds-agree and projection-equivalence say they were not
/// checked, and business-rules is violated (nothing was folded).
pub fn check(history: &EsHistory) -> EsVerdict {
    check_with(history, None)
}

/// `check`, with `user`'s fold in place of a reference fold when given (a domain of
/// the caller's own, see `user`): replay-equivalence, folds-agree and business-rules
/// then run with it, against the caller's own fold rather than an independent one.
/// Projection-equivalence runs with the caller's read model when its fold has one
/// (`UserFold::read_model`), and is not checked otherwise.
pub fn check_with(history: &EsHistory, user: Option<&dyn UserFold>) -> EsVerdict {
    let mut findings = Findings::new(promises(history));
    let mut digest = digest::Digest::new(history);
    if user.is_some() {
        digest.domain = None;
    }
    streams::check_contiguity(&digest, &mut findings);
    streams::check_duplicates(&digest, &mut findings);
    commands::check_lost_updates(&digest, &mut findings);
    match user {
        Some(user) => {
            user::check_replay(&digest, user, &mut findings);
            user::check_folds_agree(&digest, user, &mut findings);
            user::check_business_rules(&digest, user, &mut findings);
        }
        None => {
            commands::check_replay(&digest, &mut findings);
            folds::check_folds_agree(&digest, &mut findings);
            folds::check_business_rules(&digest, &mut findings);
        }
    }
    let money = money::check(&digest, &mut findings);
    let user_projections =
        user.is_some_and(|user| user::check_projections(&digest, user, &mut findings));
    if !user_projections {
        projections::check(&digest, &mut findings);
    }
    projections::check_progress(&digest, &mut findings);
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
        money,
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
    if !history.projections.iter().any(|checkpoint| checkpoint.read_uncommitted) {
        promises.push(EsGuarantee::CommittedReads);
    }
    promises
}
