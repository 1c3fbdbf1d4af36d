//! projection-equivalence: each checkpointed read model equals the reference fold of
//! its partition's events below the checkpoint's offset, on the longest replica; and
//! projection-progress: by the end, each projection's last checkpoint is past its
//! partition's last committed event (a projection stuck behind is a liveness failure,
//! however right its read model is).
//!
//! Read models are compared as the fold shows each stream (bank: balance; cart: an open
//! cart's lines; inventory: available), zeros and checked-out carts left out on both
//! sides. A stream that differs by exactly one event's effect is named with that
//! event's offset: counted twice, skipped, or counted though at or past the offset.
//!
//! Checkpoints of a partition are judged in offset order in one forward pass over its
//! log, so the check is linear in the log plus the read models.

use std::collections::BTreeMap;

use super::digest::Digest;
use super::domain::{Domain, Projected, State, difference, negated};
use super::history::ProjectionCheckpoint;
use super::verdict::{EsGuarantee, EsInvariant, EsWitness, Findings};

/// How many events past a checkpoint's offset are tried as the cause of a difference.
const BEYOND_EVENTS_MAX: usize = 8;

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings) {
    let checkpoints = &digest.history.projections;
    let Some(domain) = digest.domain else {
        findings.examined(EsInvariant::ProjectionEquivalence, 0, "checkpoints");
        findings.skipped(
            EsInvariant::ProjectionEquivalence,
            checkpoints.len() as u64,
            "checkpoints of an unknown domain",
        );
        findings.not_checked(
            EsInvariant::ProjectionEquivalence,
            "the model has no fold of this domain (projections of a user's domain are not checked yet)",
        );
        return;
    };
    let skipped = in_offset_order(
        digest,
        |_| BTreeMap::<&str, State>::new(),
        |states, reference, position| {
            let event = digest.event(reference, position as u32);
            let state = states.entry(event.stream.as_str()).or_insert_with(|| domain.initial());
            if let Ok(parsed) = &digest.replicas[reference].parsed[position] {
                state.apply(parsed, event.version);
            }
        },
        |states, reference, index| judge(digest, domain, reference, index, states, findings),
    );
    let examined = checkpoints.len() as u64 - skipped;
    findings.examined(EsInvariant::ProjectionEquivalence, examined, "checkpoints");
    findings.skipped(
        EsInvariant::ProjectionEquivalence,
        skipped,
        "checkpoints of partitions no replica holds",
    );
}

/// Walks each partition's checkpoints in offset order, in one forward pass over its
/// longest replica's events: `start(reference)` makes a partition's fold, `fold(fold,
/// reference, position)` takes each event below the next checkpoint's offset, and
/// `judge(fold, reference, index)` judges the checkpoint. Returns how many checkpoints
/// were skipped (of partitions no replica holds). Linear in the log plus the
/// checkpoints.
pub(super) fn in_offset_order<F>(
    digest: &Digest<'_>,
    mut start: impl FnMut(usize) -> F,
    mut fold: impl FnMut(&mut F, usize, usize),
    mut judge: impl FnMut(&F, usize, usize),
) -> u64 {
    let checkpoints = &digest.history.projections;
    let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (index, checkpoint) in checkpoints.iter().enumerate() {
        by_partition.entry(checkpoint.partition).or_default().push(index);
    }
    let mut skipped = 0;
    for (partition, mut indices) in by_partition {
        let Some(reference) = digest.partitions.get(&partition).map(|p| p.reference) else {
            skipped += indices.len() as u64;
            continue;
        };
        indices.sort_by_key(|&index| (checkpoints[index].offset, index));
        let events = &digest.history.replicas[reference].events;
        let mut folded = start(reference);
        let mut next = 0;
        for index in indices {
            while next < events.len() && events[next].offset < checkpoints[index].offset {
                fold(&mut folded, reference, next);
                next += 1;
            }
            judge(&folded, reference, index);
        }
    }
    skipped
}

/// What a checkpoint that disagrees with the fold breaks: committed reads when its
/// projection read uncommitted, durability on a log that may lose acknowledged
/// appends, integrity otherwise.
pub(super) fn equivalence_guarantee(
    digest: &Digest<'_>,
    checkpoint: &ProjectionCheckpoint,
) -> EsGuarantee {
    match (checkpoint.read_uncommitted, digest.history.lossy_log) {
        (true, _) => EsGuarantee::CommittedReads,
        (false, true) => EsGuarantee::AckedDurable,
        (false, false) => EsGuarantee::Integrity,
    }
}

/// Compares one checkpoint's read model with the fold of what it covers.
fn judge(
    digest: &Digest<'_>,
    domain: Domain,
    reference: usize,
    index: usize,
    states: &BTreeMap<&str, State>,
    findings: &mut Findings,
) {
    let checkpoint = &digest.history.projections[index];
    let guarantee = equivalence_guarantee(digest, checkpoint);
    let witness = EsWitness::Projection { index: index as u64, checkpoint: checkpoint.clone() };
    let shown = match read_model(domain, &checkpoint.read_model) {
        Ok(shown) => shown,
        Err(error) => {
            findings.found(
                EsInvariant::ProjectionEquivalence,
                EsGuarantee::Integrity,
                None,
                || (format!("checkpoint #{index}: {error}"), vec![witness]),
            );
            return;
        }
    };
    let folded: BTreeMap<&str, Projected> = states
        .iter()
        .map(|(&stream, state)| (stream, state.projected()))
        .filter(|(_, projected)| !projected.is_empty())
        .collect();
    let empty = Projected::new();
    let mut streams: Vec<&str> = folded.keys().copied().collect();
    streams.extend(shown.keys().map(String::as_str).filter(|s| !folded.contains_key(s)));
    streams.sort_unstable();
    let differing: Vec<&str> = streams
        .into_iter()
        .filter(|s| folded.get(s).unwrap_or(&empty) != shown.get(*s).unwrap_or(&empty))
        .collect();
    let Some(&stream) = differing.first() else { return };
    findings.found(EsInvariant::ProjectionEquivalence, guarantee, Some(stream), || {
        let ours = folded.get(stream).unwrap_or(&empty);
        let theirs = shown.get(stream).unwrap_or(&empty);
        let cause = cause(digest, domain, reference, checkpoint, stream, &difference(theirs, ours));
        let mut explanation = format!(
            "checkpoint #{index} (consumer {}) of partition {} below offset {}",
            checkpoint.consumer, checkpoint.partition, checkpoint.offset
        );
        let mut witnesses = vec![witness];
        match cause {
            Some((how, position)) => {
                let event = digest.event(reference, position);
                explanation += &format!(
                    " {how} {stream} version {} at offset {} (command {})",
                    event.version, event.offset, event.command_id
                );
                witnesses.push(digest.event_witness(reference, position));
            }
            None => explanation += " disagrees with the fold",
        }
        explanation += &format!(
            ": {stream} is {} in the read model but {} in the fold on n{}",
            show(domain, theirs),
            show(domain, ours),
            digest.node(reference)
        );
        if differing.len() > 1 {
            explanation += &format!(" ({} streams differ)", differing.len());
        }
        (explanation, witnesses)
    });
}

/// The one event of `stream` whose effect, counted twice, skipped, or counted though
/// past the checkpoint, is exactly `extra` (read model minus fold).
fn cause(
    digest: &Digest<'_>,
    domain: Domain,
    reference: usize,
    checkpoint: &ProjectionCheckpoint,
    stream: &str,
    extra: &Projected,
) -> Option<(&'static str, u32)> {
    let mut state = domain.initial();
    let mut before = state.projected();
    let mut below = Vec::new();
    let mut beyond = Vec::new();
    for &position in digest.stream(reference, stream) {
        let event = digest.event(reference, position);
        if let Ok(parsed) = &digest.replicas[reference].parsed[position as usize] {
            state.apply(parsed, event.version);
        }
        let after = state.projected();
        let change = difference(&after, &before);
        before = after;
        if event.offset < checkpoint.offset {
            below.push((position, change));
        } else if beyond.len() < BEYOND_EVENTS_MAX {
            beyond.push((position, change));
        }
    }
    let missing = negated(extra);
    // The newest first: a double count or a skip is most often at a restart, near the
    // checkpoint.
    for (position, change) in below.iter().rev() {
        if change.is_empty() {
            continue;
        }
        if change == extra {
            return Some(("counts twice", *position));
        }
        if *change == missing {
            return Some(("skips", *position));
        }
    }
    let (first, change) = beyond.first()?;
    (change == extra).then_some(("counts, though at or past its offset,", *first))
}

/// A read model as the fold shows it: stream to its named quantities, zeros left out.
/// Bank and inventory: stream to a number; cart: stream to {sku: quantity}; table (a
/// CDC replica): stream to {key: value}.
fn read_model(
    domain: Domain,
    model: &serde_json::Value,
) -> Result<BTreeMap<String, Projected>, String> {
    let Some(streams) = model.as_object() else {
        return Err(format!("the read model is not an object of {} streams", domain.name()));
    };
    let mut shown = BTreeMap::new();
    for (stream, value) in streams {
        let mut projected = Projected::new();
        match domain {
            Domain::Bank | Domain::Inventory => {
                let name = if domain == Domain::Bank { "balance" } else { "available" };
                projected.insert(name.to_string(), quantity(stream, value)?);
            }
            Domain::Cart | Domain::Table => {
                let Some(lines) = value.as_object() else {
                    return Err(format!("{stream} is {value}, not an object of key to quantity"));
                };
                for (sku, qty) in lines {
                    projected.insert(sku.clone(), quantity(stream, qty)?);
                }
            }
        }
        projected.retain(|_, quantity| *quantity != 0);
        if !projected.is_empty() {
            shown.insert(stream.clone(), projected);
        }
    }
    Ok(shown)
}

fn quantity(stream: &str, value: &serde_json::Value) -> Result<i128, String> {
    value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from))
        .ok_or_else(|| format!("{stream} holds {value}, not an integer"))
}

/// A stream's projection as its read model would show it.
fn show(domain: Domain, projected: &Projected) -> String {
    match domain {
        Domain::Bank | Domain::Inventory => {
            projected.values().next().copied().unwrap_or(0).to_string()
        }
        Domain::Cart if projected.is_empty() => "absent (empty or checked out)".to_string(),
        Domain::Table if projected.is_empty() => "absent (no rows)".to_string(),
        Domain::Cart | Domain::Table => {
            let lines: Vec<String> =
                projected.iter().map(|(sku, qty)| format!("\"{sku}\": {qty}")).collect();
            format!("{{{}}}", lines.join(", "))
        }
    }
}

/// projection-progress: each consumer's last checkpoint (by time) against the last
/// committed event of its partition.
pub(super) fn check_progress(digest: &Digest<'_>, findings: &mut Findings) {
    let checkpoints = &digest.history.projections;
    if !digest.history.projections_settled {
        findings.examined(EsInvariant::ProjectionProgress, 0, "projections");
        let why = "checkpoints (the history does not say projections had time to catch up)";
        findings.skipped(EsInvariant::ProjectionProgress, checkpoints.len() as u64, why);
        return;
    }
    let mut last: BTreeMap<u32, usize> = BTreeMap::new();
    for (index, checkpoint) in checkpoints.iter().enumerate() {
        let newer = last
            .get(&checkpoint.consumer)
            .is_none_or(|&seen| (checkpoints[seen].t_ns, seen) <= (checkpoint.t_ns, index));
        if newer {
            last.insert(checkpoint.consumer, index);
        }
    }
    for &index in last.values() {
        let checkpoint = &checkpoints[index];
        let Some(partition) = digest.partitions.get(&checkpoint.partition) else { continue };
        let events = &digest.history.replicas[partition.reference].events;
        let Some(end) = events.last() else { continue };
        if checkpoint.offset > end.offset {
            continue;
        }
        // A projection reading uncommitted may be stopped by what it read (an aborted
        // debit leaves a balance it cannot take the next event on): it gave that up. So
        // may one on a log that may lose acknowledged appends: what it folded can vanish
        // and be overwritten, and the events after no longer fold on its state (found
        // by config-swarm-es, 8 of 10,000 seeds, every one beyond the crash budget with
        // flush never: a table projection stopped at a delete of a row it never saw
        // inserted).
        let guarantee = match (checkpoint.read_uncommitted, digest.history.lossy_log) {
            (true, _) => EsGuarantee::CommittedReads,
            (false, true) => EsGuarantee::AckedDurable,
            (false, false) => EsGuarantee::Liveness,
        };
        findings.found(EsInvariant::ProjectionProgress, guarantee, None, || {
            let behind = events.iter().filter(|e| e.offset >= checkpoint.offset).count();
            let explanation = format!(
                "projection {} of partition {} ends below offset {}, {behind} committed events behind the partition's last at offset {}",
                checkpoint.consumer, checkpoint.partition, checkpoint.offset, end.offset
            );
            let witness = EsWitness::Projection { index: index as u64, checkpoint: checkpoint.clone() };
            (explanation, vec![witness])
        });
    }
    findings.examined(EsInvariant::ProjectionProgress, last.len() as u64, "projections");
}
