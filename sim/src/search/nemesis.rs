//! The nemesis: turns a fault menu and the run seed into an explicit fault schedule.
//!
//! Swarm testing: with `swarm` on, each seed first turns a random subset of the menu's
//! fault kinds on (each with probability one half) and draws their intensities, so that
//! a sweep covers calm runs, single-fault runs and fault storms alike. Every draw comes
//! from the nemesis stream, in a fixed order.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::SimRng;
use crate::{CheckpointFile, DiskFault, HeaderField};
use crate::{Fault, Partition};

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

/// The disk faults a menu may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskFaultKind {
    /// A bit of durable data flipped at rest (`DiskFault::BitRot`).
    BitRot,
    /// A sector of a file unreadable (`DiskFault::LatentSectorError`).
    LatentSectorError,
    /// The next write lands at the wrong offset (`DiskFault::MisdirectWrite`).
    MisdirectWrite,
    /// The next file sync fails and drops its dirty pages (`DiskFault::FailSync`).
    FailSync,
    /// Writes fail once the disk holds more than it does now by a drawn amount under
    /// 1 MiB (`DiskFault::OutOfSpace`).
    OutOfSpace,
    /// A log segment's last batch torn at the node's next crash.
    TornTail,
    /// A bit of a batch header field (drawn among all) flipped at rest.
    BatchHeader,
    /// A bit of a checkpoint file (drawn among all) flipped at rest.
    Checkpoint,
}

impl DiskFaultKind {
    /// A fault of this kind, with what it leaves open drawn from `rng`.
    pub fn draw(self, rng: &mut SimRng) -> DiskFault {
        match self {
            DiskFaultKind::BitRot => DiskFault::BitRot,
            DiskFaultKind::LatentSectorError => DiskFault::LatentSectorError,
            DiskFaultKind::MisdirectWrite => DiskFault::MisdirectWrite,
            DiskFaultKind::FailSync => DiskFault::FailSync,
            DiskFaultKind::OutOfSpace => {
                DiskFault::OutOfSpace { free_bytes: rng.random_range(0..1 << 20) }
            }
            DiskFaultKind::TornTail => DiskFault::TornTail,
            DiskFaultKind::BatchHeader => {
                let field = HeaderField::ALL[rng.random_range(0..HeaderField::ALL.len())];
                DiskFault::BatchHeader { field }
            }
            DiskFaultKind::Checkpoint => {
                let file = CheckpointFile::ALL[rng.random_range(0..CheckpointFile::ALL.len())];
                DiskFault::Checkpoint { file }
            }
        }
    }

    /// The kind of a disk fault (none for `Heal`, which is not a fault).
    pub fn of(fault: DiskFault) -> Option<DiskFaultKind> {
        Some(match fault {
            DiskFault::BitRot => DiskFaultKind::BitRot,
            DiskFault::LatentSectorError => DiskFaultKind::LatentSectorError,
            DiskFault::MisdirectWrite => DiskFaultKind::MisdirectWrite,
            DiskFault::FailSync => DiskFaultKind::FailSync,
            DiskFault::OutOfSpace { .. } => DiskFaultKind::OutOfSpace,
            DiskFault::TornTail => DiskFaultKind::TornTail,
            DiskFault::BatchHeader { .. } => DiskFaultKind::BatchHeader,
            DiskFault::Checkpoint { .. } => DiskFaultKind::Checkpoint,
            DiskFault::Heal => return None,
        })
    }
}

/// Periodic faults a run may suffer, before the swarm draw.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FaultMenu {
    /// Swarm testing: each seed turns a random subset of the entries on (see the
    /// module docs); off, every entry present is on.
    pub swarm: bool,
    /// A node crashes every `every` and stays down for `down_for`; at most
    /// `crash_down_max` nodes are down at once (0: no bound; scenario files always set one).
    pub crash: Option<(RangeNs, RangeNs)>,
    /// The most nodes crashed at once (0: no bound).
    pub crash_down_max: u32,
    /// A node pauses every `every` for `duration`.
    pub pause: Option<(RangeNs, RangeNs)>,
    /// A partition of one of `kinds` every `every`, healed after `heal_after`.
    pub partition: Option<(Vec<PartitionKind>, RangeNs, RangeNs)>,
    /// A random directed link clogs every `every` for `duration`.
    pub clog: Option<(RangeNs, RangeNs)>,
    /// A random clock steps forward every `every` by `forward`.
    pub clock_jump: Option<(RangeNs, RangeNs)>,
    /// A disk fault of one of `kinds` on a random node every `every`.
    pub disk: Option<(Vec<DiskFaultKind>, RangeNs)>,
    /// The range the message drop probability of the chaos phase is drawn from.
    pub drop: Option<[f64; 2]>,
    /// The range the message duplicate probability of the chaos phase is drawn from.
    pub duplicate: Option<[f64; 2]>,
    /// A random directed link loses everything sent on it every `every`, for
    /// `duration` (burst loss).
    pub burst: Option<(RangeNs, RangeNs)>,
    /// A random directed link turns lossy every `every`, for `duration`, losing each
    /// message with a probability drawn from `probability`.
    pub lossy_link: Option<(RangeNs, RangeNs, [f64; 2])>,
    /// Every `every`, an operator's command to `node`, its action drawn in
    /// `0..actions` (the log cluster: the controller moves partition `action`'s leader).
    pub operator: Option<(RangeNs, NodeId, u64)>,
}

impl FaultMenu {
    /// The menu's link losses as (every, duration, drop probability range): bursts
    /// (which lose everything) first, then lossy links.
    pub fn link_losses(&self) -> impl Iterator<Item = (RangeNs, RangeNs, [f64; 2])> {
        let burst = self.burst.map(|(every, duration)| (every, duration, [1.0, 1.0]));
        [burst, self.lossy_link].into_iter().flatten()
    }
}

/// A fault at a time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedFault {
    /// When it strikes: simulated time from the start of the run (ns).
    pub at_ns: u64,
    /// What strikes.
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

fn pick(rng: &mut SimRng, targets: &[NodeId]) -> NodeId {
    targets[rng.random_range(0..targets.len())]
}

/// A random non-empty proper subset of the targets, in id order (needs 2+ targets).
fn random_group(rng: &mut SimRng, targets: &[NodeId]) -> Vec<NodeId> {
    let size = rng.random_range(1..targets.len());
    let mut all = targets.to_vec();
    for i in 0..size {
        let j = rng.random_range(i..all.len());
        all.swap(i, j);
    }
    let mut group = all[..size].to_vec();
    group.sort_unstable();
    group
}

/// Expands the menu into faults during the chaos phase `[0, chaos_ns)`, sorted by time.
/// Faults strike only `targets` (the nodes that run the system, not its clients), disk
/// faults only `disk_targets`; `nodes` is the world's size. The caller ends chaos with `Fault::HealAll`.
pub fn expand(
    menu: &FaultMenu,
    targets: &[NodeId],
    disk_targets: &[NodeId],
    nodes: u32,
    chaos_ns: u64,
    rng: &mut SimRng,
) -> Vec<TimedFault> {
    // Swarm choices first, one draw per menu entry whether present or not, so that adding
    // an entry to a menu does not shift the choices of the others.
    let mut enabled = [true; 8];
    if menu.swarm {
        for flag in &mut enabled {
            *flag = rng.random_bool(0.5);
        }
    }
    let [crash_on, pause_on, partition_on, clog_on, clock_on, drop_on, duplicate_on, disk_on] =
        enabled;
    let mut faults = Vec::new();
    if targets.is_empty() {
        return faults;
    }
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
    // A node goes down (crash, pause) and, unless chaos ends first, comes back. At most
    // `crash_down_max` nodes are crashed at once: the fault budget the checker is told.
    type NodeFault = fn(NodeId) -> Fault;
    type DownUp = (Option<(RangeNs, RangeNs)>, bool, NodeFault, NodeFault, u32);
    let down_max = if menu.crash_down_max == 0 { u32::MAX } else { menu.crash_down_max };
    let node_faults: [DownUp; 2] = [
        (
            menu.crash,
            crash_on,
            |node| Fault::Crash { node },
            |node| Fault::Restart { node },
            down_max,
        ),
        (
            menu.pause,
            pause_on,
            |node| Fault::Pause { node },
            |node| Fault::Resume { node },
            u32::MAX,
        ),
    ];
    for (entry, on, down, up, at_once_max) in node_faults {
        let Some((every, down_for)) = entry.filter(|_| on) else { continue };
        let mut back_at_ns: Vec<(NodeId, u64)> = Vec::new();
        for at_ns in periodic(rng, every, chaos_ns) {
            let node = pick(rng, targets);
            let back_ns = at_ns + draw(rng, down_for);
            back_at_ns.retain(|&(_, back)| back > at_ns);
            if back_at_ns.len() as u32 >= at_once_max || back_at_ns.iter().any(|&(n, _)| n == node)
            {
                continue;
            }
            back_at_ns.push((node, back_ns));
            push(at_ns, down(node));
            if back_ns < chaos_ns {
                push(back_ns, up(node));
            }
        }
    }
    if let Some((kinds, every, heal_after)) = menu.partition.as_ref().filter(|_| partition_on) {
        if targets.len() >= 2 && !kinds.is_empty() {
            for at_ns in periodic(rng, *every, chaos_ns) {
                let partition = match kinds[rng.random_range(0..kinds.len())] {
                    PartitionKind::Isolate => Partition::Isolate { node: pick(rng, targets) },
                    PartitionKind::Split => Partition::Split { left: random_group(rng, targets) },
                    PartitionKind::OneWay => {
                        let from = random_group(rng, targets);
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
        if targets.len() >= 2 {
            for at_ns in periodic(rng, every, chaos_ns) {
                let from = pick(rng, targets);
                let others: Vec<NodeId> = targets.iter().copied().filter(|&n| n != from).collect();
                let to = pick(rng, &others);
                push(at_ns, Fault::Clog { from, to, duration_ns: draw(rng, duration) });
            }
        }
    }
    if let Some((every, forward)) = menu.clock_jump.filter(|_| clock_on) {
        for at_ns in periodic(rng, every, chaos_ns) {
            let node = pick(rng, targets);
            push(at_ns, Fault::ClockJump { node, forward_ns: draw(rng, forward) });
        }
    }
    if let Some((kinds, every)) = menu.disk.as_ref().filter(|_| disk_on) {
        if !kinds.is_empty() && !disk_targets.is_empty() {
            for at_ns in periodic(rng, *every, chaos_ns) {
                let node = pick(rng, disk_targets);
                let disk_fault = kinds[rng.random_range(0..kinds.len())].draw(rng);
                push(at_ns, Fault::Disk { node, disk_fault });
            }
        }
    }
    // The entries added later draw their swarm switch only when present, after every
    // draw of the others: a scenario without them draws exactly what it drew before.
    for (every, duration, [low, high]) in menu.link_losses() {
        let on = !menu.swarm || rng.random_bool(0.5);
        if !on || targets.len() < 2 {
            continue;
        }
        for at_ns in periodic(rng, every, chaos_ns) {
            let from = pick(rng, targets);
            let others: Vec<NodeId> = targets.iter().copied().filter(|&n| n != from).collect();
            let to = pick(rng, &others);
            let drop_probability = if low < high { rng.random_range(low..=high) } else { low };
            let duration_ns = draw(rng, duration);
            push(at_ns, Fault::LinkLoss { from, to, drop_probability, duration_ns });
        }
    }
    if let Some((every, node, actions)) = menu.operator {
        let on = !menu.swarm || rng.random_bool(0.5);
        if on && actions > 0 {
            for at_ns in periodic(rng, every, chaos_ns) {
                push(at_ns, Fault::Operator { node, action: rng.random_range(0..actions) });
            }
        }
    }
    // Stable: faults at the same time keep the order they were drawn in.
    faults.sort_by_key(|timed| timed.at_ns);
    faults
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StreamId, stream};

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
            disk: Some((
                vec![DiskFaultKind::BitRot, DiskFaultKind::FailSync],
                [100 * MS, 500 * MS],
            )),
            crash_down_max: 2,
            drop: Some([0.01, 0.1]),
            duplicate: Some([0.01, 0.1]),
            burst: Some(([100 * MS, 500 * MS], [10 * MS, 200 * MS])),
            lossy_link: Some(([100 * MS, 500 * MS], [10 * MS, 200 * MS], [0.1, 0.5])),
            operator: Some(([100 * MS, 500 * MS], NodeId(4), 3)),
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
        let targets: Vec<NodeId> = (0..5).map(NodeId).collect();
        let faults = expand(&full_menu(false), &targets, &targets, 5, 10_000 * MS, &mut rng);
        assert_eq!(kinds(&faults), [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13]);
        let losses: Vec<f64> = faults
            .iter()
            .filter_map(|timed| match timed.fault {
                Fault::LinkLoss { drop_probability, .. } => Some(drop_probability),
                _ => None,
            })
            .collect();
        assert!(losses.contains(&1.0), "no burst among {losses:?}");
        assert!(losses.iter().any(|&p| (0.1..=0.5).contains(&p)), "no lossy link");
        assert!(faults.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
        assert!(faults.iter().all(|f| f.at_ns < 10_000 * MS));
        assert!(faults.iter().all(|f| f.fault.validate(5).is_ok()));
    }

    #[test]
    fn swarm_turns_different_subsets_on_per_seed() {
        let mut subsets: Vec<Vec<u64>> = (0..512)
            .map(|seed| {
                let mut rng = stream(seed, StreamId::Nemesis);
                let targets: Vec<NodeId> = (0..5).map(NodeId).collect();
                kinds(&expand(&full_menu(true), &targets, &targets, 5, 10_000 * MS, &mut rng))
            })
            .collect();
        let sizes: Vec<usize> = subsets.iter().map(Vec::len).collect();
        assert!(sizes.iter().any(|&n| n <= 2), "no nearly calm seed in 512");
        assert!(sizes.contains(&12), "no seed with every fault kind in 512");
        subsets.sort();
        subsets.dedup();
        // Drop and duplicate share a trace tag, and so do bursts and lossy links: 9
        // independent switches, 512 mixes.
        assert!(
            subsets.len() > 200,
            "only {} of 512 possible fault mixes in 512 seeds",
            subsets.len()
        );
    }
}
