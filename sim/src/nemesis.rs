//! The nemesis: turns a fault menu and the run seed into an explicit fault schedule.
//!
//! Swarm testing: with `swarm` on, each seed first turns a random subset of the menu's
//! fault kinds on (each with probability one half) and draws their intensities, so that
//! a sweep covers calm runs, single-fault runs and fault storms alike. Every draw comes
//! from the nemesis stream, in a fixed order.

use rand::Rng;
use serde::Serialize;

use crate::NodeId;
use crate::fault::{Fault, Partition};
use crate::rng::SimRng;

/// An inclusive range `[min, max]` of nanoseconds (or of a probability).
pub type RangeNs = [u64; 2];

/// How a partition cuts the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// One node cut off from all others.
    Isolate,
    /// Two random halves.
    Split,
    /// A random group cannot reach the rest; the rest can still reach it.
    OneWay,
}

/// Periodic faults a run may suffer, before the swarm draw.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FaultMenu {
    pub swarm: bool,
    /// A node crashes every `every` and stays down for `down_for`.
    pub crash: Option<(RangeNs, RangeNs)>,
    /// A node pauses every `every` for `duration`.
    pub pause: Option<(RangeNs, RangeNs)>,
    /// A partition of one of `kinds` every `every`, healed after `heal_after`.
    pub partition: Option<(Vec<PartitionKind>, RangeNs, RangeNs)>,
    /// A random directed link clogs every `every` for `duration`.
    pub clog: Option<(RangeNs, RangeNs)>,
    /// A random clock steps forward every `every` by `forward`.
    pub clock_jump: Option<(RangeNs, RangeNs)>,
    /// Random drop and duplicate probability ranges for the chaos phase.
    pub drop: Option<[f64; 2]>,
    pub duplicate: Option<[f64; 2]>,
}

/// A fault at a time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimedFault {
    pub at_ns: u64,
    pub fault: Fault,
}

fn draw(rng: &mut SimRng, [min, max]: RangeNs) -> u64 {
    rng.random_range(min..=max)
}

/// Times in `[0, chaos_ns)` spaced by draws from `every` (never closer than 1ns).
fn periodic(rng: &mut SimRng, every: RangeNs, chaos_ns: u64) -> Vec<u64> {
    let mut times = Vec::new();
    let mut at_ns = draw(rng, every).max(1);
    while at_ns < chaos_ns {
        times.push(at_ns);
        at_ns += draw(rng, every).max(1);
    }
    times
}

fn random_node(rng: &mut SimRng, nodes: u32) -> NodeId {
    NodeId(rng.random_range(0..nodes))
}

/// A random non-empty proper subset of the nodes, in id order (needs 2+ nodes).
fn random_group(rng: &mut SimRng, nodes: u32) -> Vec<NodeId> {
    let size = rng.random_range(1..nodes);
    let mut all: Vec<NodeId> = (0..nodes).map(NodeId).collect();
    for i in 0..size as usize {
        let j = rng.random_range(i..all.len());
        all.swap(i, j);
    }
    let mut group = all[..size as usize].to_vec();
    group.sort_unstable();
    group
}

/// Expands the menu into faults during the chaos phase `[0, chaos_ns)`, sorted by time.
/// The caller ends chaos with `Fault::HealAll`.
pub fn expand(menu: &FaultMenu, nodes: u32, chaos_ns: u64, rng: &mut SimRng) -> Vec<TimedFault> {
    // Swarm choices first, one draw per menu entry whether present or not, so that adding
    // an entry to a menu does not shift the choices of the others.
    let mut enabled = [true; 7];
    if menu.swarm {
        for flag in &mut enabled {
            *flag = rng.random_bool(0.5);
        }
    }
    let [crash_on, pause_on, partition_on, clog_on, clock_on, drop_on, duplicate_on] = enabled;
    let mut faults = Vec::new();
    let mut push = |at_ns: u64, fault: Fault| faults.push(TimedFault { at_ns, fault });

    let draw_probability = |rng: &mut SimRng, range: Option<[f64; 2]>, on: bool| match range {
        Some([min, max]) if on && max > 0.0 => rng.random_range(min..=max),
        _ => 0.0,
    };
    let drop_probability = draw_probability(rng, menu.drop, drop_on);
    let duplicate_probability = draw_probability(rng, menu.duplicate, duplicate_on);
    if drop_probability > 0.0 || duplicate_probability > 0.0 {
        push(0, Fault::NetworkFaults { drop_probability, duplicate_probability });
    }
    // A node goes down (crash, pause) and, unless chaos ends first, comes back.
    type NodeFault = fn(NodeId) -> Fault;
    let node_faults: [(Option<(RangeNs, RangeNs)>, bool, NodeFault, NodeFault); 2] = [
        (menu.crash, crash_on, |node| Fault::Crash { node }, |node| Fault::Restart { node }),
        (menu.pause, pause_on, |node| Fault::Pause { node }, |node| Fault::Resume { node }),
    ];
    for (entry, on, down, up) in node_faults {
        let Some((every, down_for)) = entry.filter(|_| on) else { continue };
        for at_ns in periodic(rng, every, chaos_ns) {
            let node = random_node(rng, nodes);
            push(at_ns, down(node));
            let back_ns = at_ns + draw(rng, down_for);
            if back_ns < chaos_ns {
                push(back_ns, up(node));
            }
        }
    }
    if let Some((kinds, every, heal_after)) = menu.partition.as_ref().filter(|_| partition_on) {
        if nodes >= 2 && !kinds.is_empty() {
            for at_ns in periodic(rng, *every, chaos_ns) {
                let partition = match kinds[rng.random_range(0..kinds.len())] {
                    PartitionKind::Isolate => Partition::Isolate { node: random_node(rng, nodes) },
                    PartitionKind::Split => Partition::Split { left: random_group(rng, nodes) },
                    PartitionKind::OneWay => {
                        let from = random_group(rng, nodes);
                        let to = (0..nodes).map(NodeId).filter(|n| !from.contains(n)).collect();
                        Partition::OneWay { from, to }
                    }
                };
                push(at_ns, Fault::Partition(partition));
                let heal_ns = at_ns + draw(rng, *heal_after);
                if heal_ns < chaos_ns {
                    push(heal_ns, Fault::HealNetwork);
                }
            }
        }
    }
    if let Some((every, duration)) = menu.clog.filter(|_| clog_on) {
        if nodes >= 2 {
            for at_ns in periodic(rng, every, chaos_ns) {
                let from = random_node(rng, nodes);
                let to = NodeId((from.0 + rng.random_range(1..nodes)) % nodes);
                push(at_ns, Fault::Clog { from, to, duration_ns: draw(rng, duration) });
            }
        }
    }
    if let Some((every, forward)) = menu.clock_jump.filter(|_| clock_on) {
        for at_ns in periodic(rng, every, chaos_ns) {
            let node = random_node(rng, nodes);
            push(at_ns, Fault::ClockJump { node, forward_ns: draw(rng, forward) });
        }
    }
    // Stable: faults at the same time keep the order they were drawn in.
    faults.sort_by_key(|timed| timed.at_ns);
    faults
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{StreamId, stream};

    const MS: u64 = 1_000_000;

    fn full_menu(swarm: bool) -> FaultMenu {
        FaultMenu {
            swarm,
            crash: Some(([100 * MS, 500 * MS], [10 * MS, 200 * MS])),
            pause: Some(([100 * MS, 500 * MS], [10 * MS, 200 * MS])),
            partition: Some((
                vec![PartitionKind::Isolate, PartitionKind::Split, PartitionKind::OneWay],
                [100 * MS, 500 * MS],
                [10 * MS, 200 * MS],
            )),
            clog: Some(([100 * MS, 500 * MS], [10 * MS, 200 * MS])),
            clock_jump: Some(([100 * MS, 500 * MS], [1, MS])),
            drop: Some([0.01, 0.1]),
            duplicate: Some([0.01, 0.1]),
        }
    }

    fn kinds(faults: &[TimedFault]) -> Vec<u64> {
        let mut tags: Vec<u64> = faults.iter().map(|f| f.fault.tag()).collect();
        tags.sort_unstable();
        tags.dedup();
        tags
    }

    #[test]
    fn without_swarm_every_kind_appears_inside_the_chaos_phase() {
        let mut rng = stream(1, StreamId::Nemesis);
        let faults = expand(&full_menu(false), 5, 10_000 * MS, &mut rng);
        assert_eq!(kinds(&faults), (1..=9).collect::<Vec<_>>());
        assert!(faults.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
        assert!(faults.iter().all(|f| f.at_ns < 10_000 * MS));
        assert!(faults.iter().all(|f| f.fault.validate(5).is_ok()));
    }

    #[test]
    fn swarm_turns_different_subsets_on_per_seed() {
        let mut subsets: Vec<Vec<u64>> = (0..512)
            .map(|seed| {
                let mut rng = stream(seed, StreamId::Nemesis);
                kinds(&expand(&full_menu(true), 5, 10_000 * MS, &mut rng))
            })
            .collect();
        assert!(
            subsets.iter().any(Vec::is_empty),
            "no calm seed in 512 (each is calm with probability 1/128)"
        );
        subsets.sort();
        subsets.dedup();
        assert!(
            subsets.len() > 50,
            "only {} of 64 possible fault mixes in 512 seeds",
            subsets.len()
        );
    }
}
