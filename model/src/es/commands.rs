//! lost-update and replay-equivalence: did each `Ok` command's decision stand?
//!
//! A command is judged against the log: its events must be at the versions it was told
//! (on every replica that holds its stream that far), it must have decided on the
//! version it appended at, no other `Ok` command may have decided on the same version,
//! and the state it decided on (the fold of the longest replica up to that version)
//! must allow what it appended. `Rejected`, `Fail` and `Indeterminate` commands are
//! never held against the store.

use std::collections::BTreeMap;

use super::digest::Digest;
use super::domain::State;
use super::history::{CommandOutcome, CommandRecord};
use super::verdict::{EsGuarantee, EsInvariant, EsWitness, Findings};

/// An `Ok` command that appended something.
struct Appended<'h> {
    index: usize,
    command: &'h CommandRecord,
    first_version: u64,
    events: &'h [serde_json::Value],
}

fn appended<'h>(digest: &Digest<'h>) -> Vec<Appended<'h>> {
    digest
        .history
        .commands
        .iter()
        .enumerate()
        .filter_map(|(index, command)| match &command.outcome {
            CommandOutcome::Ok { first_version, events } if !events.is_empty() => {
                Some(Appended { index, command, first_version: *first_version, events })
            }
            _ => None,
        })
        .collect()
}

pub(super) fn check_lost_updates(digest: &Digest<'_>, findings: &mut Findings) {
    let appended = appended(digest);
    let mut beyond_every_replica = 0;
    for ok in &appended {
        if !check_in_place(digest, ok, findings) {
            beyond_every_replica += 1;
        }
    }
    findings.examined(EsInvariant::LostUpdate, appended.len() as u64, "ok commands");
    findings.skipped(
        EsInvariant::LostUpdate,
        beyond_every_replica,
        "ok commands beyond every replica's committed log",
    );
    check_decisions(digest, &appended, findings);
}

/// Checks one command's events on every replica that holds its stream far enough;
/// false if none does.
fn check_in_place(digest: &Digest<'_>, ok: &Appended<'_>, findings: &mut Findings) -> bool {
    let stream = ok.command.stream.as_str();
    let mut judged = false;
    for &replica in digest.replicas_of(stream) {
        let held = digest.stream(replica, stream).len() as u64;
        for version in (ok.first_version..).take(ok.events.len()) {
            if held <= version {
                break;
            }
            judged = true;
            let found = digest.at_version(replica, stream, version);
            if found.is_some_and(|p| digest.event(replica, p).command_id == ok.command.command_id) {
                continue;
            }
            findings.found(EsInvariant::LostUpdate, EsGuarantee::AckedDurable, Some(stream), || {
                let node = digest.node(replica);
                let id = ok.command.command_id;
                let mut witness = vec![digest.command_witness(ok.index)];
                let explanation = match found {
                    Some(p) => {
                        witness.push(digest.event_witness(replica, p));
                        let there = digest.event(replica, p);
                        format!(
                            "command {id} appended {stream} version {version}, but n{node} holds command {} there (offset {})",
                            there.command_id, there.offset
                        )
                    }
                    None => format!(
                        "command {id} appended {stream} version {version}, but n{node} holds no version {version} among its {held} events of {stream}"
                    ),
                };
                (explanation, witness)
            });
            return true;
        }
    }
    judged
}

/// Two `Ok` commands that decided on one version, or one that appended at another
/// version than it decided on, missed an update (or, appending below it, built on
/// events the log lost).
fn check_decisions(digest: &Digest<'_>, appended: &[Appended<'_>], findings: &mut Findings) {
    let mut by_version: BTreeMap<(&str, u64), Vec<&Appended<'_>>> = BTreeMap::new();
    for ok in appended {
        if let Some(decided) = ok.command.decided_at_version {
            by_version.entry((ok.command.stream.as_str(), decided)).or_default().push(ok);
        }
    }
    for ((stream, decided), oks) in &by_version {
        if let [first, second, ..] = oks.as_slice() {
            // With expected versions the store admits one append per version: two that
            // both landed at one version mean the first was lost in between, which a
            // log that may lose acknowledged appends allows.
            let guarantee = if digest.history.expected_versions && digest.history.lossy_log {
                EsGuarantee::AckedDurable
            } else {
                EsGuarantee::SerialDecisions
            };
            findings.found(EsInvariant::LostUpdate, guarantee, Some(stream), || {
                let explanation = format!(
                    "commands {} and {} both decided on {stream} version {decided} and both appended (at versions {} and {})",
                    first.command.command_id,
                    second.command.command_id,
                    first.first_version,
                    second.first_version
                );
                let witness =
                    vec![digest.command_witness(first.index), digest.command_witness(second.index)];
                (explanation, witness)
            });
            continue;
        }
        let ok = oks[0];
        if ok.first_version == *decided {
            continue;
        }
        let guarantee = if ok.first_version > *decided || digest.history.expected_versions {
            EsGuarantee::SerialDecisions
        } else {
            EsGuarantee::AckedDurable
        };
        findings.found(EsInvariant::LostUpdate, guarantee, Some(stream), || {
            let id = ok.command.command_id;
            let mut witness = vec![digest.command_witness(ok.index)];
            if ok.first_version < *decided {
                let explanation = format!(
                    "command {id} decided on {stream} version {decided} but appended at version {}, below what it folded",
                    ok.first_version
                );
                return (explanation, witness);
            }
            let missed = digest
                .reference_of(stream)
                .and_then(|r| digest.at_version(r, stream, *decided).map(|p| (r, p)));
            let by = match missed {
                Some((replica, position)) => {
                    witness.push(digest.event_witness(replica, position));
                    format!(" (command {})", digest.event(replica, position).command_id)
                }
                None => String::new(),
            };
            let explanation = format!(
                "command {id} decided on {stream} version {decided} but appended at version {}: it never folded version {decided}{by}",
                ok.first_version
            );
            (explanation, witness)
        });
    }
}

pub(super) fn check_replay(digest: &Digest<'_>, findings: &mut Findings) {
    let appended = appended(digest);
    let mut skipped = 0;
    let Some(domain) = digest.domain else {
        findings.examined(EsInvariant::ReplayEquivalence, 0, "ok commands");
        findings.skipped(
            EsInvariant::ReplayEquivalence,
            appended.len() as u64,
            "ok commands of an unknown domain",
        );
        findings.not_checked(
            EsInvariant::ReplayEquivalence,
            "the model has no fold of this domain and none was given",
        );
        return;
    };
    let guarantee =
        if digest.history.lossy_log { EsGuarantee::AckedDurable } else { EsGuarantee::Integrity };
    // Each stream is folded once, forward, stopping at each command's decided version.
    let mut by_stream: BTreeMap<(&str, u64, usize), &Appended<'_>> = BTreeMap::new();
    for ok in &appended {
        match ok.command.decided_at_version {
            Some(decided) => {
                by_stream.insert((ok.command.stream.as_str(), decided, ok.index), ok);
            }
            None => skipped += 1,
        }
    }
    let mut fold: Option<(&str, usize, State, u64)> = None;
    for ((stream, decided, _), ok) in by_stream {
        let Some(reference) = digest.reference_of(stream) else {
            skipped += 1;
            continue;
        };
        if fold.as_ref().is_none_or(|(folding, ..)| *folding != stream) {
            fold = Some((stream, reference, domain.initial(), 0));
        }
        let (_, _, state, folded) = fold.as_mut().expect("set above");
        // Versions are folded by number, so a replica with a gap cannot be replayed past it.
        while *folded < decided {
            let Some(position) = digest.at_version(reference, stream, *folded) else { break };
            if let Ok(event) = &digest.replicas[reference].parsed[position as usize] {
                state.apply(event, *folded);
            }
            *folded += 1;
        }
        if *folded < decided {
            skipped += 1;
            continue;
        }
        check_decided(digest, ok, reference, state, guarantee, findings);
        check_recorded(digest, ok, reference, findings);
    }
    findings.examined(
        EsInvariant::ReplayEquivalence,
        appended.len() as u64 - skipped,
        "ok commands",
    );
    findings.skipped(
        EsInvariant::ReplayEquivalence,
        skipped,
        "ok commands never loaded or decided beyond the longest replica",
    );
}

/// The command's events, applied to the state it decided on, break no rule.
fn check_decided(
    digest: &Digest<'_>,
    ok: &Appended<'_>,
    reference: usize,
    decided_on: &State,
    guarantee: EsGuarantee,
    findings: &mut Findings,
) {
    let domain = digest.domain.expect("replay runs only for a known domain");
    let stream = ok.command.stream.as_str();
    let decided = ok.command.decided_at_version.expect("replay judges decided commands");
    // Cloned only for a command of several events: most append one.
    let mut applied: Option<State> = None;
    for (i, (version, event)) in (ok.first_version..).zip(ok.events).enumerate() {
        let event = match domain.parse(event) {
            Ok(event) => event,
            Err(error) => {
                findings.found(
                    EsInvariant::ReplayEquivalence,
                    EsGuarantee::Integrity,
                    Some(stream),
                    || {
                        let explanation =
                            format!("command {} appended {error}", ok.command.command_id);
                        (explanation, vec![digest.command_witness(ok.index)])
                    },
                );
                return;
            }
        };
        let Some(broken) = applied.as_ref().unwrap_or(decided_on).judge(&event) else {
            if i + 1 < ok.events.len() {
                applied.get_or_insert_with(|| decided_on.clone()).apply(&event, version);
            }
            continue;
        };
        findings.found(EsInvariant::ReplayEquivalence, guarantee, Some(stream), || {
            let explanation = format!(
                "command {} decided {event} on {stream} at version {decided} ({decided_on}): {}",
                ok.command.command_id, broken.what
            );
            let mut witness = vec![digest.command_witness(ok.index)];
            let last_folded =
                decided.checked_sub(1).and_then(|v| digest.at_version(reference, stream, v));
            witness.extend(last_folded.map(|p| digest.event_witness(reference, p)));
            (explanation, witness)
        });
        return;
    }
}

/// The events the longest replica holds at the command's versions, where they are the
/// command's, are the events it appended.
fn check_recorded(
    digest: &Digest<'_>,
    ok: &Appended<'_>,
    reference: usize,
    findings: &mut Findings,
) {
    let domain = digest.domain.expect("replay runs only for a known domain");
    let stream = ok.command.stream.as_str();
    for (version, appended) in (ok.first_version..).zip(ok.events) {
        let Some(position) = digest.at_version(reference, stream, version) else { continue };
        let held = digest.event(reference, position);
        if held.command_id != ok.command.command_id {
            continue; // Not its event: lost-update's to report.
        }
        let same =
            match (domain.parse(appended), &digest.replicas[reference].parsed[position as usize]) {
                (Ok(appended), Ok(held)) => appended == *held,
                _ => *appended == held.event,
            };
        if same {
            continue;
        }
        findings.found(EsInvariant::ReplayEquivalence, EsGuarantee::Integrity, Some(stream), || {
            let explanation = format!(
                "{stream} version {version} on n{} holds {} from command {}, which appended {appended}",
                digest.node(reference),
                held.event,
                ok.command.command_id
            );
            let witness: Vec<EsWitness> =
                vec![digest.command_witness(ok.index), digest.event_witness(reference, position)];
            (explanation, witness)
        });
        return;
    }
}
