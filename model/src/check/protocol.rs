//! multiple-leaders, epoch-regression, hw-regression, truncation-below-hw,
//! recovery-prefix: did the replication protocol keep its own rules, as the nodes
//! reported them?
//!
//! Protocol events are read in order. A `restart` starts a new lifetime of its node:
//! epochs and high watermarks are in-memory state and may start lower after it. No
//! lifetime may truncate below the high watermark it itself reported (a node may cut
//! below another node's, see `Truncate` below). Each regression is reported once: the
//! lower value becomes the one later events are compared with.

use std::collections::BTreeMap;

use super::Findings;
use super::digest::Digest;
use crate::history::{Closing, ProtocolEvent};
use crate::invariant::{Guarantee, Invariant};

/// A reported value and the closing line that reported it.
type Seen = (u64, usize);

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let witness = digest.witness;
    let mut leaders: BTreeMap<(u32, u64), (u32, usize)> = BTreeMap::new();
    let mut epochs: BTreeMap<(u32, u32), Seen> = BTreeMap::new();
    let mut high_watermarks: BTreeMap<(u32, u32), Seen> = BTreeMap::new();
    let (mut elections, mut epoch_changes, mut hw_updates, mut truncations) = (0, 0, 0, 0);
    let mut recoveries = 0;
    for (closing, line) in digest.history.closing().iter().enumerate() {
        let Closing::Protocol(protocol) = line else { continue };
        let node = protocol.node;
        match protocol.event {
            ProtocolEvent::Restart => {
                forget_node(&mut epochs, node);
                forget_node(&mut high_watermarks, node);
            }
            ProtocolEvent::Leader { partition, epoch }
            | ProtocolEvent::Follower { partition, epoch } => {
                if let ProtocolEvent::Leader { .. } = protocol.event {
                    elections += 1;
                    match leaders.get(&(partition, epoch)) {
                        Some(&(other, first)) if other != node => {
                            findings.found(
                                Invariant::MultipleLeaders,
                                Guarantee::Integrity,
                                Some(partition),
                                || {
                                    let explanation =
                                        format!("n{other} and n{node} both lead epoch {epoch}");
                                    (
                                        explanation,
                                        vec![witness.protocol(first), witness.protocol(closing)],
                                    )
                                },
                            );
                        }
                        Some(_) => {}
                        None => {
                            leaders.insert((partition, epoch), (node, closing));
                        }
                    }
                }
                epoch_changes += 1;
                if let Some((before, first)) = epochs.insert((node, partition), (epoch, closing)) {
                    if epoch < before {
                        findings.found(
                            Invariant::EpochRegression,
                            Guarantee::Integrity,
                            Some(partition),
                            || {
                                let explanation =
                                    format!("n{node} went from epoch {before} back to {epoch}");
                                (
                                    explanation,
                                    vec![witness.protocol(first), witness.protocol(closing)],
                                )
                            },
                        );
                    }
                }
            }
            ProtocolEvent::HighWatermark { partition, offset } => {
                hw_updates += 1;
                if let Some((before, first)) =
                    high_watermarks.insert((node, partition), (offset, closing))
                {
                    if offset < before {
                        findings.found(
                            Invariant::HwRegression,
                            Guarantee::CommittedStable,
                            Some(partition),
                            || {
                                let explanation = format!(
                                    "n{node}'s high watermark went from {before} back to {offset}"
                                );
                                (
                                    explanation,
                                    vec![witness.protocol(first), witness.protocol(closing)],
                                )
                            },
                        );
                    }
                }
            }
            ProtocolEvent::Recover { partition, offset, log_end_offset } => {
                recoveries += 1;
                if offset < log_end_offset {
                    findings.found(
                        Invariant::RecoveryPrefix,
                        Guarantee::RecoveredPrefix,
                        Some(partition),
                        || {
                            let explanation = format!(
                                "n{node} recovered its log to offset {log_end_offset}, but from offset {offset} on it holds batches it never wrote there"
                            );
                            (explanation, vec![witness.protocol(closing)])
                        },
                    );
                }
            }
            ProtocolEvent::Truncate { partition, offset } => {
                truncations += 1;
                // Below what this node itself knew to be committed. A node may cut
                // below a higher watermark another node reported since: the records
                // it cuts there are its own divergent, never-committed tail (an old
                // leader rejoining, KIP-101), and the leader's committed ones come back
                // by fetching. Losing committed data that way shows as lost-write.
                // (Found by the broker's cluster runs: the first version compared with
                // the highest watermark any node reported, and flagged KIP-101.)
                if let Some(&(high_watermark, reported)) =
                    high_watermarks.get(&(node, partition)).filter(|hw| offset < hw.0)
                {
                    findings.found(Invariant::TruncationBelowHw, Guarantee::CommittedStable, Some(partition), || {
                        let explanation = format!(
                            "n{node} truncated to offset {offset}, below its own committed high watermark {high_watermark}"
                        );
                        (explanation, vec![witness.protocol(reported), witness.protocol(closing)])
                    });
                }
            }
        }
    }
    findings.examined(Invariant::MultipleLeaders, elections, "leader elections");
    findings.examined(Invariant::EpochRegression, epoch_changes, "epoch changes");
    findings.examined(Invariant::HwRegression, hw_updates, "high watermark updates");
    findings.examined(Invariant::TruncationBelowHw, truncations, "truncations");
    findings.examined(Invariant::RecoveryPrefix, recoveries, "log recoveries");
}

/// Drops what a node's previous lifetime reported, for every partition.
fn forget_node(seen: &mut BTreeMap<(u32, u32), Seen>, node: u32) {
    let stale: Vec<(u32, u32)> =
        seen.range((node, 0)..=(node, u32::MAX)).map(|(key, _)| *key).collect();
    for key in stale {
        seen.remove(&key);
    }
}
