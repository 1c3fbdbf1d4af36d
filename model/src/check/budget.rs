//! How many replicas of one partition had lost unsynced writes at once, as the history
//! shows it, against the fault budget the header states.
//!
//! The budget counts replicas crashed at once. With a flush policy that leaves writes
//! unsynced, a replica that restarted has lost its unsynced suffix and stays lossy
//! until it has caught up again: a second replica crashing before then (one crash at a
//! time, within the budget as scheduled) makes two replicas that lost what only they
//! held. Kafka loses acknowledged writes there too; the configuration does not promise
//! to keep them. This pass finds the most replicas of one partition lossy at once, so
//! that the promises are judged against what the run actually did.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Flush;
use crate::history::{Closing, History, ProtocolEvent};

/// The most replicas of one partition that were lossy at once, with the moment it
/// happened, in words; None if no restart left more than one replica lossy.
pub(super) struct Exceeded {
    pub lossy: u32,
    pub explanation: String,
}

/// Replicas lossy at once beyond `crashes_max`, if the history shows any.
pub(super) fn exceeded(history: &History) -> Option<Exceeded> {
    let config = history.header().config;
    if config.flush == Flush::EveryBatch {
        return None;
    }
    let protocol: Vec<_> = history
        .closing()
        .iter()
        .filter_map(|closing| match closing {
            Closing::Protocol(protocol) => Some(protocol),
            Closing::Replica(_) => None,
        })
        .collect();
    // Which partitions each node replicates: those it ever reported on.
    let mut holds: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for event in &protocol {
        if let Some(partition) = event.event.partition() {
            holds.entry(event.node).or_default().insert(partition);
        }
    }
    let mut high_watermark_max: BTreeMap<u32, u64> = BTreeMap::new();
    // Per partition: node -> (high watermark it must reach, whether it has taken a
    // role since its restart; a high watermark recovered from its checkpoint before
    // that says nothing of its log).
    let mut lossy: BTreeMap<u32, BTreeMap<u32, (u64, bool)>> = BTreeMap::new();
    let mut worst: Option<Exceeded> = None;
    for event in protocol {
        let node = event.node;
        match event.event {
            ProtocolEvent::Restart => {
                for &partition in holds.get(&node).into_iter().flatten() {
                    let needed = high_watermark_max.get(&partition).copied().unwrap_or(0);
                    if needed == 0 {
                        continue;
                    }
                    let lossy = lossy.entry(partition).or_default();
                    lossy.insert(node, (needed, false));
                    let count = lossy.len() as u32;
                    if count > worst.as_ref().map_or(config.fault_budget.crashes_max, |w| w.lossy) {
                        let nodes: Vec<String> = lossy.keys().map(|n| format!("n{n}")).collect();
                        let explanation = format!(
                            "{count} replicas of partition {partition} ({}) had lost unsynced \
                             writes at once at {:.3} s (n{node} restarted before the others \
                             caught up), beyond the budget of {} crashed at once",
                            nodes.join(", "),
                            event.t_ns as f64 / 1e9,
                            config.fault_budget.crashes_max
                        );
                        worst = Some(Exceeded { lossy: count, explanation });
                    }
                }
            }
            ProtocolEvent::Leader { partition, .. } | ProtocolEvent::Follower { partition, .. } => {
                if let Some((_, took_role)) =
                    lossy.get_mut(&partition).and_then(|lossy| lossy.get_mut(&node))
                {
                    *took_role = true;
                }
            }
            ProtocolEvent::HighWatermark { partition, offset } => {
                let max = high_watermark_max.entry(partition).or_insert(0);
                *max = (*max).max(offset);
                if let Some(lossy) = lossy.get_mut(&partition) {
                    if lossy.get(&node).is_some_and(|&(needed, role)| role && offset >= needed) {
                        lossy.remove(&node);
                    }
                }
            }
            ProtocolEvent::Truncate { .. } | ProtocolEvent::Recover { .. } => {}
        }
    }
    worst
}
