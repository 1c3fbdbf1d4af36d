//! The checks that need a fold, run with a fold the caller brings: a domain the model
//! has no reference fold of (a user's own aggregate).
//!
//! The model's reference folds (`domain`) are written from the example domains' rules,
//! independently of the event store's code. For any other domain there is no such
//! reference: the caller hands a [`UserFold`] (the simulator wraps the user's own
//! `Aggregate::apply` and `validate`, and the user's invariants over a state), and
//! replay-equivalence, folds-agree and business-rules run with it. That is replay
//! equivalence against the user's own fold, not against an independent reference: a
//! bug that the handler and the fold share is not seen; an event the fold refuses, a
//! state that breaks a stated invariant, or replicas whose folds differ, are.
//!
//! Events reach the fold as the JSON the history holds. A fold is lenient as the
//! reference folds are: an event its `validate` refuses is reported and not applied
//! (an aggregate's `apply` may panic on it), and the fold goes on.

use std::collections::BTreeSet;

use serde_json::Value;

use super::digest::Digest;
use super::history::CommandOutcome;
use super::verdict::{EsGuarantee, EsInvariant, Findings};

/// A domain's fold, for a domain the model has no reference fold of.
pub trait UserFold {
    /// The state of a stream before its first event.
    fn initial(&self) -> Box<dyn UserState>;
}

/// One stream's state in a [`UserFold`].
pub trait UserState {
    /// `Ok` if `event` may follow this state (the aggregate's `validate`), else why not
    /// (an event that does not decode as one of the domain's is refused too).
    fn validate(&self, event: &Value) -> Result<(), String>;
    /// Folds an event `validate` accepted.
    fn apply(&mut self, event: &Value);
    /// The first invariant this state breaks: (its name, why).
    fn broken_invariant(&self) -> Option<(String, String)>;
    /// The state in words (its `Debug`), for witnesses.
    fn describe(&self) -> String;
    /// Whether two states of the same fold are equal.
    fn same(&self, other: &dyn UserState) -> bool;
    /// A copy of the state.
    fn clone_box(&self) -> Box<dyn UserState>;
    /// For `same`: the state as `Any`, to downcast the other side.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// Folds `event` into `state` if `validate` accepts it; the refusal otherwise.
fn step(state: &mut dyn UserState, event: &Value) -> Result<(), String> {
    state.validate(event)?;
    state.apply(event);
    Ok(())
}

/// A stream's fold on a replica below `offset_end`.
fn fold(
    digest: &Digest<'_>,
    user: &dyn UserFold,
    replica: usize,
    stream: &str,
    offset_end: u64,
) -> Box<dyn UserState> {
    let mut state = user.initial();
    for &position in digest.stream(replica, stream) {
        let event = digest.event(replica, position);
        if event.offset < offset_end {
            let _ = step(state.as_mut(), &event.event);
        }
    }
    state
}

/// replay-equivalence with the user's fold: each `Ok` command's events are accepted by
/// the fold of the longest replica's stream up to the version it decided on, and are
/// the events the log holds at its versions.
pub(super) fn check_replay(digest: &Digest<'_>, user: &dyn UserFold, findings: &mut Findings) {
    let guarantee =
        if digest.history.lossy_log { EsGuarantee::AckedDurable } else { EsGuarantee::Integrity };
    let (mut examined, mut skipped) = (0, 0);
    for (index, command) in digest.history.commands.iter().enumerate() {
        let CommandOutcome::Ok { first_version, events } = &command.outcome else { continue };
        if events.is_empty() {
            continue;
        }
        let stream = command.stream.as_str();
        let (Some(decided), Some(reference)) =
            (command.decided_at_version, digest.reference_of(stream))
        else {
            skipped += 1;
            continue;
        };
        let mut state = user.initial();
        let mut folded = 0;
        while folded < decided {
            let Some(position) = digest.at_version(reference, stream, folded) else { break };
            let _ = step(state.as_mut(), &digest.event(reference, position).event);
            folded += 1;
        }
        if folded < decided {
            skipped += 1;
            continue;
        }
        examined += 1;
        let before = state.describe();
        for event in events {
            let Err(why) = step(state.as_mut(), event) else { continue };
            findings.found(EsInvariant::ReplayEquivalence, guarantee, Some(stream), || {
                let explanation = format!(
                    "command {} appended {event} on {stream} at version {decided}, which the aggregate's validate refuses on the state it decided on ({before}): {why}",
                    command.command_id
                );
                let mut witness = vec![digest.command_witness(index)];
                let last = decided.checked_sub(1).and_then(|v| digest.at_version(reference, stream, v));
                witness.extend(last.map(|p| digest.event_witness(reference, p)));
                (explanation, witness)
            });
            break;
        }
        for (version, appended) in (*first_version..).zip(events) {
            let Some(position) = digest.at_version(reference, stream, version) else { continue };
            let held = digest.event(reference, position);
            if held.command_id != command.command_id || *appended == held.event {
                continue;
            }
            findings.found(
                EsInvariant::ReplayEquivalence,
                EsGuarantee::Integrity,
                Some(stream),
                || {
                    let explanation = format!(
                        "{stream} version {version} on n{} holds {} from command {}, which appended {appended}",
                        digest.node(reference),
                        held.event,
                        command.command_id
                    );
                    let witness =
                        vec![digest.command_witness(index), digest.event_witness(reference, position)];
                    (explanation, witness)
                },
            );
            break;
        }
    }
    findings.examined(EsInvariant::ReplayEquivalence, examined, "ok commands (the user's fold)");
    findings.skipped(
        EsInvariant::ReplayEquivalence,
        skipped,
        "ok commands never loaded or decided beyond the longest replica",
    );
}

/// folds-agree with the user's fold: every replica's fold of a stream equals the
/// longest replica's over the offsets both hold.
pub(super) fn check_folds_agree(digest: &Digest<'_>, user: &dyn UserFold, findings: &mut Findings) {
    let mut compared = 0;
    let offset_end = |replica: usize| {
        digest.history.replicas[replica].events.iter().map(|e| e.offset + 1).max().unwrap_or(0)
    };
    for partition in digest.partitions.values() {
        let reference = partition.reference;
        for &replica in partition.replicas.iter().filter(|&&r| r != reference) {
            let common_end = offset_end(replica).min(offset_end(reference));
            let streams: BTreeSet<&str> = digest.replicas[replica]
                .streams
                .keys()
                .chain(digest.replicas[reference].streams.keys())
                .copied()
                .collect();
            for stream in streams {
                compared += 1;
                let theirs = fold(digest, user, replica, stream, common_end);
                let ours = fold(digest, user, reference, stream, common_end);
                if theirs.same(ours.as_ref()) {
                    continue;
                }
                findings.found(EsInvariant::FoldsAgree, EsGuarantee::AckedDurable, Some(stream), || {
                    let (a, b) = (digest.node(reference), digest.node(replica));
                    let explanation = format!(
                        "{stream} folds to {} on n{a} but {} on n{b}, over offsets below {common_end}",
                        ours.describe(),
                        theirs.describe()
                    );
                    let last = |r: usize| {
                        let below = digest.stream(r, stream).iter().copied();
                        below.rev().find(|&p| digest.event(r, p).offset < common_end)
                    };
                    let witness = [
                        last(reference).map(|p| digest.event_witness(reference, p)),
                        last(replica).map(|p| digest.event_witness(replica, p)),
                    ];
                    let witness = witness.into_iter().flatten().collect();
                    (explanation, witness)
                });
            }
        }
    }
    findings.examined(EsInvariant::FoldsAgree, compared, "streams on replicas (the user's fold)");
}

/// business-rules with the user's fold: `validate` accepts every stored event on every
/// replica, and no state after an event breaks one of the user's invariants. The first
/// break of a stream is reported (once, however many replicas hold it), naming the
/// stream, version, offset, command, the invariant and the state.
pub(super) fn check_business_rules(
    digest: &Digest<'_>,
    user: &dyn UserFold,
    findings: &mut Findings,
) {
    let mut reported: BTreeSet<(&str, u64, u64)> = BTreeSet::new();
    let mut folded = 0;
    for partition in digest.partitions.values() {
        let reference_first = std::iter::once(partition.reference)
            .chain(partition.replicas.iter().copied().filter(|&r| r != partition.reference));
        for replica in reference_first {
            for (&stream, positions) in &digest.replicas[replica].streams {
                let mut state = user.initial();
                folded += positions.len() as u64;
                for &position in positions {
                    let event = digest.event(replica, position);
                    let before = state.describe();
                    let broken = match step(state.as_mut(), &event.event) {
                        Err(why) => {
                            Some(format!("the aggregate's validate refuses it on {before}: {why}"))
                        }
                        Ok(()) => state.broken_invariant().map(|(name, why)| {
                            format!("invariant `{name}` broken: {why}; state {}", state.describe())
                        }),
                    };
                    let Some(what) = broken else { continue };
                    if !reported.insert((stream, event.offset, event.command_id)) {
                        break;
                    }
                    let guarantee = digest.landing_guarantee(replica, position);
                    findings.found(EsInvariant::BusinessRules, guarantee, Some(stream), || {
                        let explanation = format!(
                            "{stream} version {} on n{} (offset {}, command {}): {what}",
                            event.version,
                            digest.node(replica),
                            event.offset,
                            event.command_id,
                        );
                        let mut witness = vec![digest.event_witness(replica, position)];
                        witness.extend(
                            digest.command_of(event.command_id).map(|c| digest.command_witness(c)),
                        );
                        (explanation, witness)
                    });
                    break;
                }
            }
        }
    }
    findings.examined(
        EsInvariant::BusinessRules,
        folded,
        "events folded on replicas (the user's fold and invariants)",
    );
}
