//! folds-agree and business-rules: the reference fold of every stream on every replica.
//!
//! Each replica's fold of a stream is compared with the longest replica's over the
//! offsets both hold; and every prefix of every stream, on every replica, must satisfy
//! the domain's invariants. A rule broken by the same event on several replicas is
//! reported once, on the first replica (the longest of its partition first).

use std::collections::BTreeSet;

use super::digest::Digest;
use super::domain::Rule;
use super::verdict::{EsGuarantee, EsInvariant, Findings};

pub(super) fn check_folds_agree(digest: &Digest<'_>, findings: &mut Findings) {
    if digest.domain.is_none() {
        findings.examined(EsInvariant::FoldsAgree, 0, "streams on replicas");
        findings.not_checked(
            EsInvariant::FoldsAgree,
            "the model has no fold of this domain and none was given",
        );
        return;
    }
    let mut compared = 0;
    for partition in digest.partitions.values() {
        let reference = partition.reference;
        let reference_end = offset_end(digest, reference);
        for &replica in partition.replicas.iter().filter(|&&r| r != reference) {
            let common_end = offset_end(digest, replica).min(reference_end);
            let streams: BTreeSet<&str> = digest.replicas[replica]
                .streams
                .keys()
                .chain(digest.replicas[reference].streams.keys())
                .copied()
                .collect();
            for stream in streams {
                compared += 1;
                let (theirs, _) = digest.fold(replica, stream, common_end);
                let (ours, _) = digest.fold(reference, stream, common_end);
                if theirs == ours {
                    continue;
                }
                findings.found(EsInvariant::FoldsAgree, EsGuarantee::AckedDurable, Some(stream), || {
                    let (a, b) = (digest.node(reference), digest.node(replica));
                    let mut explanation = format!(
                        "{stream} folds to {ours} on n{a} but {theirs} on n{b}, over offsets below {common_end}"
                    );
                    let first = first_difference(digest, reference, replica, stream, common_end);
                    let mut witness = Vec::new();
                    if let Some((version, ours, theirs)) = first {
                        explanation += &format!("; they first differ at version {version}");
                        witness.extend(ours.map(|p| digest.event_witness(reference, p)));
                        witness.extend(theirs.map(|p| digest.event_witness(replica, p)));
                    }
                    (explanation, witness)
                });
            }
        }
    }
    findings.examined(EsInvariant::FoldsAgree, compared, "streams on replicas");
}

/// One past the last offset a replica holds.
fn offset_end(digest: &Digest<'_>, replica: usize) -> u64 {
    digest.history.replicas[replica].events.iter().map(|e| e.offset + 1).max().unwrap_or(0)
}

/// The first place two replicas' streams differ below `offset_end`: the version, and
/// each side's event there (None: that side has none).
fn first_difference(
    digest: &Digest<'_>,
    a: usize,
    b: usize,
    stream: &str,
    offset_end: u64,
) -> Option<(u64, Option<u32>, Option<u32>)> {
    let below = |replica: usize| {
        digest
            .stream(replica, stream)
            .iter()
            .copied()
            .filter(move |&p| digest.event(replica, p).offset < offset_end)
    };
    let (mut xs, mut ys) = (below(a), below(b));
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return None,
            (Some(x), None) => return Some((digest.event(a, x).version, Some(x), None)),
            (None, Some(y)) => return Some((digest.event(b, y).version, None, Some(y))),
            (Some(x), Some(y)) => {
                let (ex, ey) = (digest.event(a, x), digest.event(b, y));
                let same = ex.version == ey.version
                    && ex.command_id == ey.command_id
                    && digest.replicas[a].parsed[x as usize]
                        == digest.replicas[b].parsed[y as usize];
                if !same {
                    return Some((ex.version.min(ey.version), Some(x), Some(y)));
                }
            }
        }
    }
}

pub(super) fn check_business_rules(digest: &Digest<'_>, findings: &mut Findings) {
    let Some(domain) = digest.domain else {
        findings.examined(EsInvariant::BusinessRules, 0, "events folded on replicas");
        findings.found(EsInvariant::BusinessRules, EsGuarantee::Integrity, None, || {
            let explanation = format!(
                "unknown domain `{}`: expected bank, cart or inventory; no fold was checked",
                digest.history.domain
            );
            (explanation, Vec::new())
        });
        return;
    };
    // (stream, offset, command id) of each event reported, so that one bad event
    // replicated to every node is one anomaly.
    let mut reported: BTreeSet<(&str, u64, u64)> = BTreeSet::new();
    let mut folded = 0;
    for partition in digest.partitions.values() {
        let reference_first = std::iter::once(partition.reference)
            .chain(partition.replicas.iter().copied().filter(|&r| r != partition.reference));
        for replica in reference_first {
            for (&stream, positions) in &digest.replicas[replica].streams {
                let mut state = domain.initial();
                folded += positions.len() as u64;
                for &position in positions {
                    let event = digest.event(replica, position);
                    let broken = match &digest.replicas[replica].parsed[position as usize] {
                        Ok(parsed) => {
                            state.apply(parsed, event.version).filter(|b| b.rule == Rule::Invariant)
                        }
                        Err(error) => Some(super::domain::Broken {
                            rule: Rule::Invariant,
                            what: error.clone(),
                            earlier: None,
                        }),
                    };
                    let Some(broken) = broken else { continue };
                    if !reported.insert((stream, event.offset, event.command_id)) {
                        break;
                    }
                    let guarantee = if digest.replicas[replica].parsed[position as usize].is_ok() {
                        digest.landing_guarantee(replica, position)
                    } else {
                        EsGuarantee::Integrity
                    };
                    findings.found(EsInvariant::BusinessRules, guarantee, Some(stream), || {
                        let explanation = format!(
                            "{stream} version {} on n{} (offset {}, command {}): {}",
                            event.version,
                            digest.node(replica),
                            event.offset,
                            event.command_id,
                            broken.what
                        );
                        let earlier =
                            broken.earlier.and_then(|v| digest.at_version(replica, stream, v));
                        let mut witness: Vec<_> =
                            earlier.map(|p| digest.event_witness(replica, p)).into_iter().collect();
                        witness.push(digest.event_witness(replica, position));
                        if earlier.is_none() {
                            witness.extend(
                                digest
                                    .command_of(event.command_id)
                                    .map(|c| digest.command_witness(c)),
                            );
                        }
                        (explanation, witness)
                    });
                    // The first break of a stream is its smallest witness; the rest follow from it.
                    break;
                }
            }
        }
    }
    findings.examined(EsInvariant::BusinessRules, folded, "events folded on replicas");
}
