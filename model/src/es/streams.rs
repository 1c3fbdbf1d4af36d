//! stream-contiguity and duplicate-command: is each replica's log a well-formed set of
//! streams, each command's events in one place?
//!
//! A replica is read alone, in offset order. The first problem of each stream on each
//! replica is kept; one found on several replicas of a partition (a bad append
//! replicated faithfully) is reported once, naming them all.

use std::collections::BTreeMap;

use super::digest::Digest;
use super::history::CommandOutcome;
use super::verdict::{EsGuarantee, EsInvariant, Findings};

/// What is wrong with a stream on a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Problem {
    /// Offsets go backwards (or repeat): the event at `at` follows the one at `before`.
    Order,
    /// Versions `from..to` are missing before the event at `at`.
    Gap { from: u64, to: u64 },
    /// The event at `at` repeats the version of the one at `before`.
    Repeat,
}

/// A problem by what it is: partition, stream, offset of the event that shows it.
type Key<'h> = (u32, &'h str, u64, Problem);

/// A problem found on one replica, by the positions of the events that show it.
struct Found {
    replica: usize,
    problem: Problem,
    at: u32,
    before: Option<u32>,
}

pub(super) fn check_contiguity(digest: &Digest<'_>, findings: &mut Findings) {
    // Keyed by what the problem is, so the same bad append on three replicas is one.
    let mut found: BTreeMap<Key<'_>, (Found, Vec<u32>)> = BTreeMap::new();
    let mut streams_examined = 0;
    for (replica, holder) in digest.history.replicas.iter().enumerate() {
        let mut keep = |f: Found| {
            let event = digest.event(f.replica, f.at);
            let key = (holder.partition, event.stream.as_str(), event.offset, f.problem);
            found.entry(key).or_insert((f, Vec::new())).1.push(holder.node);
        };
        let backwards = holder.events.windows(2).position(|pair| pair[1].offset <= pair[0].offset);
        if let Some(before) = backwards {
            let (at, before) = (before as u32 + 1, Some(before as u32));
            keep(Found { replica, problem: Problem::Order, at, before });
        }
        for positions in digest.replicas[replica].streams.values() {
            streams_examined += 1;
            if let Some(f) = first_version_problem(digest, replica, positions) {
                keep(f);
            }
        }
    }
    findings.examined(EsInvariant::StreamContiguity, streams_examined, "streams on replicas");
    for ((partition, stream, _, problem), (f, nodes)) in found {
        let event = digest.event(f.replica, f.at);
        // Without expected versions the store does not number streams (each writer
        // stamps the version it believed): repeats and gaps are what unchecked,
        // concurrent decisions leave behind. Offsets out of order never are.
        let guarantee = match problem {
            Problem::Repeat | Problem::Gap { .. } if !digest.history.expected_versions => {
                EsGuarantee::SerialDecisions
            }
            Problem::Order | Problem::Repeat | Problem::Gap { .. } => EsGuarantee::Integrity,
        };
        findings.found(EsInvariant::StreamContiguity, guarantee, Some(stream), || {
            let on = on_nodes(&nodes);
            let before = f.before.map(|b| digest.event(f.replica, b));
            let explanation = match (problem, before) {
                (Problem::Order, Some(before)) => format!(
                    "partition {partition} {on}: offset {} ({stream} version {}) follows offset {}",
                    event.offset, event.version, before.offset
                ),
                (Problem::Gap { from, to }, Some(before)) => format!(
                    "{stream} {on}: version {} (offset {}, command {}) follows version {} (offset {}); {} missing",
                    event.version,
                    event.offset,
                    event.command_id,
                    before.version,
                    before.offset,
                    versions(from, to)
                ),
                (Problem::Gap { from, to }, None) => format!(
                    "{stream} {on} starts at version {} (offset {}, command {}); {} missing",
                    event.version,
                    event.offset,
                    event.command_id,
                    versions(from, to)
                ),
                (_, before) => {
                    let before = before.expect("a repeat names the first event of its version");
                    format!(
                        "{stream} {on}: version {} twice, at offsets {} (command {}) and {} (command {})",
                        event.version,
                        before.offset,
                        before.command_id,
                        event.offset,
                        event.command_id
                    )
                }
            };
            let mut witness: Vec<_> =
                f.before.map(|b| digest.event_witness(f.replica, b)).into_iter().collect();
            witness.push(digest.event_witness(f.replica, f.at));
            (explanation, witness)
        });
    }
    check_one_partition_per_stream(digest, findings);
}

/// The first gap or repeat in one stream's versions on one replica.
fn first_version_problem(digest: &Digest<'_>, replica: usize, positions: &[u32]) -> Option<Found> {
    let mut last = None;
    for (next, &at) in positions.iter().enumerate() {
        let next = next as u64;
        let event = digest.event(replica, at);
        if event.version > next {
            let problem = Problem::Gap { from: next, to: event.version };
            return Some(Found { replica, problem, at, before: last });
        }
        if event.version < next {
            let before = digest.at_version(replica, &event.stream, event.version);
            return Some(Found { replica, problem: Problem::Repeat, at, before });
        }
        last = Some(at);
    }
    None
}

/// A stream lives in one partition: its versions are counted in one log.
fn check_one_partition_per_stream(digest: &Digest<'_>, findings: &mut Findings) {
    let mut reported = BTreeMap::new();
    for (replica, holder) in digest.history.replicas.iter().enumerate() {
        for (&stream, positions) in &digest.replicas[replica].streams {
            let home = digest.stream_partition[stream];
            if home == holder.partition || reported.insert(stream, ()).is_some() {
                continue;
            }
            findings.found(
                EsInvariant::StreamContiguity,
                EsGuarantee::Integrity,
                Some(stream),
                || {
                    let explanation = format!(
                        "{stream} is in partitions {home} and {} (n{} offset {})",
                        holder.partition,
                        holder.node,
                        digest.event(replica, positions[0]).offset
                    );
                    (explanation, vec![digest.event_witness(replica, positions[0])])
                },
            );
        }
    }
}

fn on_nodes(nodes: &[u32]) -> String {
    let names: Vec<String> = nodes.iter().map(|node| format!("n{node}")).collect();
    format!("on {}", names.join(", "))
}

fn versions(from: u64, to: u64) -> String {
    if to == from + 1 {
        format!("version {from} is")
    } else {
        format!("versions {from}..{} are", to - 1)
    }
}

/// Where a command's events sit on one replica: one run of consecutive versions of one
/// stream, each following the previous in that stream.
struct Block {
    stream_position: usize,
    first: u32,
    events: u64,
}

pub(super) fn check_duplicates(digest: &Digest<'_>, findings: &mut Findings) {
    // The number of events each command id's Ok attempt appended, if one did.
    let appended: BTreeMap<u64, u64> = digest
        .history
        .commands
        .iter()
        .filter_map(|command| match &command.outcome {
            CommandOutcome::Ok { events, .. } => Some((command.command_id, events.len() as u64)),
            _ => None,
        })
        .collect();
    // The ok command each (stream, version) was acknowledged to.
    let mut acknowledged: BTreeMap<(&str, u64), u64> = BTreeMap::new();
    for command in &digest.history.commands {
        if let CommandOutcome::Ok { first_version, events } = &command.outcome {
            for version in *first_version..first_version + events.len() as u64 {
                acknowledged.insert((command.stream.as_str(), version), command.command_id);
            }
        }
    }
    let mut reported: BTreeMap<u64, ()> = BTreeMap::new();
    let mut command_ids: BTreeMap<u64, ()> = BTreeMap::new();
    for (replica, holder) in digest.history.replicas.iter().enumerate() {
        let mut blocks: BTreeMap<u64, Block> = BTreeMap::new();
        let mut stream_events: BTreeMap<&str, usize> = BTreeMap::new();
        for (at, event) in holder.events.iter().enumerate() {
            let at = at as u32;
            let stream = event.stream.as_str();
            let counted = stream_events.entry(stream).or_default();
            let index = *counted;
            *counted += 1;
            command_ids.insert(event.command_id, ());
            let Some(block) = blocks.get_mut(&event.command_id) else {
                let block = Block { stream_position: index, first: at, events: 1 };
                blocks.insert(event.command_id, block);
                continue;
            };
            let first = digest.event(replica, block.first);
            let extends = first.stream == stream
                && block.stream_position + block.events as usize == index
                && appended.get(&event.command_id).is_none_or(|&n| block.events < n);
            if extends {
                block.events += 1;
                continue;
            }
            if reported.insert(event.command_id, ()).is_some() {
                continue;
            }
            // A retry lands twice only if its reload saw a history without its first
            // attempt, with other events where that attempt sits here. If an ok
            // command was acknowledged one of those versions and this replica holds
            // another there, the log lost that acknowledged event: histories branched,
            // and the loss explains the duplicate (config-swarm-es seed 2072). Without
            // such a loss nothing excuses it.
            let lost_between = (first.version..event.version)
                .filter(|_| first.stream == stream)
                .find_map(|version| {
                    let acked = *acknowledged.get(&(stream, version))?;
                    let here = digest.at_version(replica, stream, version)?;
                    let here = digest.event(replica, here).command_id;
                    (here != acked).then_some((version, acked))
                });
            let guarantee = match lost_between {
                Some(_) => EsGuarantee::AckedDurable,
                None => EsGuarantee::Integrity,
            };
            findings.found(
                    EsInvariant::DuplicateCommand,
                    guarantee,
                    Some(stream),
                    || {
                        let explanation = format!(
                            "command {}'s events are twice on n{}: {} version {} (offset {}) and {} version {} (offset {})",
                            event.command_id,
                            holder.node,
                            first.stream,
                            first.version,
                            first.offset,
                            event.stream,
                            event.version,
                            event.offset
                        );
                        let explanation = match lost_between {
                            Some((version, acked)) => format!(
                                "{explanation}; the log lost command {acked}'s acknowledged event at {stream} version {version}, so the retry's reload saw another history"
                            ),
                            None => explanation,
                        };
                        // The lost acknowledgement is lost-update's witness.
                        let witness = vec![
                            digest.event_witness(replica, block.first),
                            digest.event_witness(replica, at),
                        ];
                        (explanation, witness)
                    },
                );
        }
    }
    findings.examined(
        EsInvariant::DuplicateCommand,
        command_ids.len() as u64,
        "command ids in logs",
    );
}
