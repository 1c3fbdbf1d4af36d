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
use super::verdict::{EsGuarantee, EsInvariant, EsWitness, Findings};

/// A domain's fold, for a domain the model has no reference fold of.
pub trait UserFold {
    /// The state of a stream before its first event.
    fn initial(&self) -> Box<dyn UserState>;
    /// The read model the domain's projections keep, fresh (before any event); `None`
    /// when the domain has none, and projection-equivalence is not checked.
    fn read_model(&self) -> Option<Box<dyn UserReadModel>> {
        None
    }
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

/// A read model of a user's domain, as the model folds it to judge projections: the
/// same fold the projection runs (the caller's own), from scratch over the longest
/// replica's committed events, compared with every checkpoint the projection took.
pub trait UserReadModel {
    /// Folds in one event of `stream` at `offset` (its JSON, as the history holds it).
    /// An event the read model refuses is reported by the caller and passed over.
    fn apply(&mut self, stream: &str, offset: u64, event: &Value) -> Result<(), String>;
    /// The read model as a checkpoint records it (`ProjectionCheckpoint::read_model`).
    fn json(&self) -> Value;
}

/// projection-equivalence with the user's read model: each checkpoint's read model
/// equals the user's fold, from scratch, of its partition's events below the
/// checkpoint's offset on the longest replica. One forward pass per partition, the
/// checkpoints in offset order. A difference is named by its first differing key, and
/// by the event whose effect it is when folding one more event past the checkpoint
/// (counted though at or past its offset) or one event fewer (counted twice, or
/// skipped) makes the two agree.
pub(super) fn check_projections(
    digest: &Digest<'_>,
    user: &dyn UserFold,
    findings: &mut Findings,
) -> bool {
    if user.read_model().is_none() {
        return false;
    }
    let checkpoints = &digest.history.projections;
    let skipped = super::projections::in_offset_order(
        digest,
        |_| user.read_model().expect("the same fold"),
        |model, reference, position| {
            let event = digest.event(reference, position as u32);
            let _ = model.apply(&event.stream, event.offset, &event.event);
        },
        |model, reference, index| {
            let checkpoint = &checkpoints[index];
            let folded = model.json();
            if folded == checkpoint.read_model {
                return;
            }
            let guarantee = super::projections::equivalence_guarantee(digest, checkpoint);
            let path = first_difference(&checkpoint.read_model, &folded);
            findings.found(EsInvariant::ProjectionEquivalence, guarantee, None, || {
                let mut explanation = format!(
                    "checkpoint #{index} (consumer {}) of partition {} below offset {} disagrees with the read model folded from scratch on n{}: {} is {} in the checkpoint but {} in the fold",
                    checkpoint.consumer,
                    checkpoint.partition,
                    checkpoint.offset,
                    digest.node(reference),
                    if path.is_empty() { "the read model" } else { &path },
                    quoted(value_at(&checkpoint.read_model, &path)),
                    quoted(value_at(&folded, &path)),
                );
                let mut witness =
                    vec![EsWitness::Projection { index: index as u64, checkpoint: checkpoint.clone() }];
                // The user's fold is opaque: say which single-event change makes the
                // two agree, not why it happened.
                if let Some((how, position)) = user_cause(digest, user, reference, checkpoint) {
                    let event = digest.event(reference, position);
                    explanation += &format!(
                        " (the checkpoint equals the fold {how} {} version {} at offset {}, command {})",
                        event.stream, event.version, event.offset, event.command_id
                    );
                    witness.push(digest.event_witness(reference, position));
                }
                (explanation, witness)
            });
        },
    );
    let examined = checkpoints.len() as u64 - skipped;
    findings.examined(
        EsInvariant::ProjectionEquivalence,
        examined,
        "checkpoints (the user's read model)",
    );
    findings.skipped(
        EsInvariant::ProjectionEquivalence,
        skipped,
        "checkpoints of partitions no replica holds",
    );
    true
}

/// The first place two read models differ: the dotted path of object keys down to
/// it (empty: the whole model).
fn first_difference(theirs: &Value, ours: &Value) -> String {
    let (mut path, mut theirs, mut ours) = (Vec::new(), theirs, ours);
    while let (Value::Object(a), Value::Object(b)) = (theirs, ours) {
        let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        let differing = keys.into_iter().find(|&key| a.get(key) != b.get(key));
        let Some(key) = differing else { break };
        path.push(key.as_str());
        theirs = a.get(key).unwrap_or(&Value::Null);
        ours = b.get(key).unwrap_or(&Value::Null);
    }
    path.join(".")
}

/// The value at a path `first_difference` gave (null where it is absent).
fn value_at<'v>(model: &'v Value, path: &str) -> &'v Value {
    let parts = path.split('.').filter(|part| !part.is_empty());
    parts.fold(model, |value, part| value.get(part).unwrap_or(&Value::Null))
}

/// A value for a witness line, cut to a readable length.
fn quoted(value: &Value) -> String {
    const SHOWN_CHARS_MAX: usize = 200;
    let text = value.to_string();
    match text.char_indices().nth(SHOWN_CHARS_MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The one event whose effect the checkpoint's difference is: the fold with it
/// counted twice, without it, or with the first event at or past the offset, equals
/// the checkpoint. Tried over the events nearest the checkpoint (a double count or a
/// skip is most often at a restart).
fn user_cause(
    digest: &Digest<'_>,
    user: &dyn UserFold,
    reference: usize,
    checkpoint: &super::history::ProjectionCheckpoint,
) -> Option<(&'static str, u32)> {
    const CANDIDATES_MAX: usize = 8;
    let events = &digest.history.replicas[reference].events;
    let below: Vec<u32> = (0..events.len() as u32)
        .filter(|&p| events[p as usize].offset < checkpoint.offset)
        .collect();
    let fold_with = |twice: Option<u32>, without: Option<u32>, past: Option<u32>| {
        let mut model = user.read_model()?;
        for &position in below.iter().chain(past.iter()) {
            if Some(position) == without {
                continue;
            }
            let event = &events[position as usize];
            let _ = model.apply(&event.stream, event.offset, &event.event);
            if Some(position) == twice {
                let _ = model.apply(&event.stream, event.offset, &event.event);
            }
        }
        Some(model.json() == checkpoint.read_model)
    };
    let past = (0..events.len() as u32).find(|&p| events[p as usize].offset >= checkpoint.offset);
    if let Some(past) = past
        && fold_with(None, None, Some(past)) == Some(true)
    {
        return Some(("with the first event at or past its offset,", past));
    }
    for &position in below.iter().rev().take(CANDIDATES_MAX) {
        if fold_with(Some(position), None, None) == Some(true) {
            return Some(("with, counted twice,", position));
        }
        if fold_with(None, Some(position), None) == Some(true) {
            return Some(("without", position));
        }
    }
    None
}
