//! lost-write and unseen: is every acknowledged send still there?
//!
//! An acknowledged send that the final log does not hold is
//! - a lost-write if the log has provably moved past its offset: the final log is
//!   committed there (whether or not a poll once returned the send: read, then gone, is
//!   lost all the same), or some poll read across that offset without returning it;
//! - unseen if no poll returned it either: lost, or only never read (Jepsen's
//!   definition). One that a poll returned is seen, and the checks of what was read
//!   judge it.
//!
//! A poll "read across" an offset if its consumer's reading passed it: from the lowest
//! of the poll's position, its first record and one past what the same consumer read
//! before (since its last seek), to its last record. That is Jepsen's lost-write
//! reading made exact: Jepsen takes the highest offset any poll read, assuming its
//! consumers read everything; here a consumer must have passed the offset itself.
//!
//! Sends that ended `info` may or may not have happened, so they are never unseen; but
//! once one value of an `info` operation was read at read_committed (or is in the
//! final view) the operation committed, and each of its sends whose completion
//! reported an offset is held to that offset here like an acknowledged one (Jepsen's
//! atomic lost-write case). An offset below the final log's start was deleted on
//! purpose (retention): there, nothing can be proved either way.

use super::Findings;
use super::digest::{Digest, Outcome};
use super::spans::ReadSpans;
use crate::history::{Closing, ProtocolEvent};
use crate::invariant::{Guarantee, Invariant};

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let coverage = Coverage::new(digest);
    let mut acknowledged = 0;
    for (value, send) in digest.sends.iter().enumerate() {
        // An acknowledged send, or an indeterminate one proven committed at an offset.
        let believed = send.outcome == Outcome::Info && send.ack_offset.is_some();
        if send.outcome != Outcome::Ok && !believed {
            continue;
        }
        acknowledged += 1;
        let facts = &digest.facts[value];
        if facts.in_final {
            continue;
        }
        let partition = digest.partition_id(send.part);
        let acked = send.completion.expect("an ok send completed") as usize;
        let reference = digest.reference_replica(send.part);
        // Read once, then gone from a final log committed past it: still lost. (Found by
        // the flush-never power-loss scenario: every replica lost a tail that consumers
        // had read, and new records took its offsets.)
        let committed_past = |offset: u64| {
            reference.is_some_and(|(_, replica)| {
                offset >= replica.log_start_offset && offset < replica.high_watermark
            })
        };
        if facts.read && !send.ack_offset.is_some_and(committed_past) {
            continue;
        }
        let Some(offset) = send.ack_offset else {
            debug_assert!(!believed, "a believed send has an offset");
            findings.found(Invariant::Unseen, Guarantee::AckedDurable, Some(partition), || {
                let explanation =
                    format!("`{}` was acknowledged without an offset and never seen", send.value);
                (explanation, vec![digest.witness.event(acked)])
            });
            continue;
        };
        if let Some((closing, replica)) = reference {
            if offset < replica.log_start_offset {
                continue;
            }
            if offset < replica.high_watermark {
                findings.found(
                    Invariant::LostWrite,
                    Guarantee::AckedDurable,
                    Some(partition),
                    || {
                        // A late produce deduplicated into an aborted transaction: still there,
                        // but aborted (the legacy transaction protocol's loss).
                        let how = if replica.is_aborted(offset) {
                            "holds only as a record of an aborted transaction"
                        } else {
                            "has committed without it"
                        };
                        let said = if believed { "reported" } else { "acknowledged" };
                        let explanation = format!(
                            "`{}` was {said} at offset {offset}, which n{} {how}",
                            send.value, replica.node
                        );
                        // The story of the loss, in time order: the acknowledgement, the
                        // replicas that had it committed, the election and the truncation
                        // or recovery that removed it; then the log that lacks it.
                        let acked_ns = digest.history.events()[acked].t_ns;
                        let story = loss_story(digest, partition, replica.node, offset, acked_ns);
                        let told: Vec<String> = story.iter().filter_map(narrate).collect();
                        let explanation = if told.is_empty() {
                            explanation
                        } else {
                            format!("{explanation} ({})", told.join("; "))
                        };
                        let mut witness = vec![digest.witness.event(acked)];
                        witness.extend(story);
                        witness.push(digest.witness.replica_at(closing, offset));
                        (explanation, witness)
                    },
                );
                continue;
            }
        }
        if let Some(poll) = coverage.covering(send.part, offset) {
            let how = if believed { "reported" } else { "acknowledged" };
            findings.found(Invariant::LostWrite, Guarantee::AckedDurable, Some(partition), || {
                let explanation = format!(
                    "`{}` was {how} at offset {offset}, but a poll read across that offset without it",
                    send.value
                );
                (explanation, vec![digest.witness.event(acked), digest.witness.event(digest.polls[poll as usize].event as usize)])
            });
            continue;
        }
        if believed {
            continue; // never unseen: it was only ever maybe
        }
        findings.found(Invariant::Unseen, Guarantee::AckedDurable, Some(partition), || {
            let explanation =
                format!("`{}` was acknowledged at offset {offset} but never read", send.value);
            (explanation, vec![digest.witness.event(acked)])
        });
    }
    findings.examined(Invariant::LostWrite, acknowledged, "acknowledged sends");
    findings.examined(Invariant::Unseen, acknowledged, "acknowledged sends");
}

/// Replicas the story names as having held a lost record, at most.
const STORY_HOLDERS_MAX: usize = 3;

/// The protocol events that tell how the record at `offset` of `partition`,
/// acknowledged at `acked_ns`, was lost from `node`'s log (the final log that lacks
/// it): the first report of each replica (at most `STORY_HOLDERS_MAX`) whose high
/// watermark passed it (it held the record, committed); the first event after the
/// acknowledgement that removed it from `node` (a truncation to or below it, or a
/// recovery whose log ends at or below it), and before that one, the first that
/// removed it from another replica; and the last election of the partition between
/// the acknowledgement and the removal from `node` (whose leader's log lacked it).
/// A holder's report counts only before the election. In time order; empty when the
/// history reports no protocol events.
fn loss_story(
    digest: &Digest<'_>,
    partition: u32,
    node: u32,
    offset: u64,
    acked_ns: u64,
) -> Vec<crate::check::Witness> {
    let closing = digest.history.closing();
    let protocol = |index: usize| match &closing[index] {
        Closing::Protocol(protocol) if protocol.event.partition() == Some(partition) => {
            Some(protocol)
        }
        _ => None,
    };
    let removes = |index: usize| {
        protocol(index).is_some_and(|p| {
            p.t_ns >= acked_ns
                && match p.event {
                    ProtocolEvent::Truncate { offset: to, .. } => to <= offset,
                    ProtocolEvent::Recover { log_end_offset, .. } => log_end_offset <= offset,
                    _ => false,
                }
        })
    };
    let on_node = |index: usize| protocol(index).is_some_and(|p| p.node == node);
    let removal = (0..closing.len()).find(|&index| removes(index) && on_node(index));
    let end = removal.unwrap_or(closing.len());
    let upstream = (0..end).find(|&index| removes(index) && !on_node(index));
    let election = (0..end).rev().find(|&index| {
        protocol(index)
            .is_some_and(|p| p.t_ns >= acked_ns && matches!(p.event, ProtocolEvent::Leader { .. }))
    });
    // A replica held the record committed if its high watermark passed it before
    // anything removed it from that replica, and before the election (after it, a
    // high watermark may count the record that took its offset).
    let held_end = election.unwrap_or(end);
    let mut holders: Vec<(u32, usize)> = Vec::new();
    let mut removed_from: Vec<u32> = Vec::new();
    for index in 0..held_end {
        let Some(p) = protocol(index) else { continue };
        if removes(index) {
            removed_from.push(p.node);
        }
        let ProtocolEvent::HighWatermark { offset: hw, .. } = p.event else { continue };
        let new_node = holders.iter().all(|&(n, _)| n != p.node) && !removed_from.contains(&p.node);
        if hw > offset && new_node && holders.len() < STORY_HOLDERS_MAX {
            holders.push((p.node, index));
        }
    }
    let mut story: Vec<usize> = holders.into_iter().map(|(_, index)| index).collect();
    story.extend(upstream);
    story.extend(election);
    story.extend(removal);
    story.sort_by_key(|&index| (protocol(index).map_or(0, |p| p.t_ns), index));
    story.into_iter().map(|index| digest.witness.protocol(index)).collect()
}

/// A protocol event of a loss's story in words.
fn narrate(witness: &crate::check::Witness) -> Option<String> {
    let crate::check::Witness::Protocol { protocol, .. } = witness else { return None };
    let node = protocol.node;
    Some(match protocol.event {
        ProtocolEvent::HighWatermark { offset, .. } => {
            format!("n{node} had it committed, high watermark {offset}")
        }
        ProtocolEvent::Truncate { offset, .. } => format!("n{node} truncated to {offset}"),
        ProtocolEvent::Recover { log_end_offset, .. } => {
            format!("n{node} recovered a log ending at {log_end_offset}")
        }
        ProtocolEvent::Leader { epoch, .. } => format!("n{node} became leader in epoch {epoch}"),
        ProtocolEvent::Follower { .. } | ProtocolEvent::Restart => return None,
    })
}

/// Which offsets ok polls read across, per partition.
struct Coverage {
    /// Per dense partition.
    spans: Vec<ReadSpans>,
}

impl Coverage {
    fn new(digest: &Digest<'_>) -> Coverage {
        let mut spans = vec![Vec::new(); digest.partitions.len()];
        for (index, poll) in digest.polls.iter().enumerate() {
            if let Some(last) = poll.records.last() {
                let start = digest.reach_start[index];
                spans[poll.part as usize].push((start, last.offset, index as u32));
            }
        }
        Coverage { spans: spans.into_iter().map(ReadSpans::new).collect() }
    }

    /// A poll whose span contains `offset`, if any.
    fn covering(&self, part: u32, offset: u64) -> Option<u32> {
        let (end, poll) = self.spans[part as usize].reach_at(offset)?;
        (end >= offset).then_some(poll)
    }
}
