//! Proptest strategies over run schedules: properties of the form "every schedule this
//! scenario allows holds", with proptest's own shrinking when one does not.
//!
//! # What is generated
//!
//! [`schedules`] draws a [`Schedule`] the scenario allows, the same shape
//! [`schedule_for`](crate::run::schedule_for) expands a seed into:
//! - a seed (any `u64`): it still drives what is not a decision of the test (network
//!   latencies, clocks, each node's own randomness);
//! - up to [`FAULT_EPISODES_MAX`] fault episodes (fewer when the menu's periods allow
//!   fewer in the chaos phase), each of a kind the scenario's fault menu enables and
//!   drawn with the menu's ranges: a crash and the restart after its down time, a pause
//!   and its resume, a partition of one of the menu's shapes and the heal after it, a
//!   clog, a clock jump, a disk fault of one of the menu's kinds, drop and duplicate
//!   probabilities. Faults strike only the scenario's fault targets (disk faults only its
//!   disk targets) and start in `[0, chaos_ns)`; a closing fault that would fall at or
//!   after `chaos_ns` is left out, as [`nemesis::expand`](crate::nemesis::expand) does,
//!   and the final `HealAll` ends what is still open. The crash budget holds as it does
//!   for the nemesis: a crash of a node already down, or one that would take more than
//!   the menu's `max_down` nodes down at once, is skipped (so is a pause of a node
//!   already paused). The menu's `every` periods are not followed one by one: they only
//!   bound how many episodes a schedule may hold; `swarm` plays no part (the number and
//!   mix of episodes already range from none to a storm);
//! - the scenario's scripted faults, verbatim and placed as `schedule_for` places them
//!   (they are the scenario's script: shrinking neither drops nor moves them);
//! - client operations, each at a time in `[0, chaos_ns)`, at a producer and a partition
//!   of the log cluster (at any node for the gossip counter). They are drawn in chunks
//!   (a uniform number of chunks of a uniform number of operations, up to 64 each) sized
//!   so that a schedule holds the scenario's rate over the chaos phase on average: from
//!   none to about four times as many, never more than [`OPS_MAX`];
//! - faults and operations sorted by time (stable: episodes keep their drawn order at
//!   equal times), the fault list closed by `HealAll` at `chaos_ns`, and the scenario's
//!   phase lengths.
//!
//! # Shrinking
//!
//! Everything is built from proptest combinators, so a failing schedule shrinks with
//! proptest's own shrinking, in this order: fault episodes are removed one by one (an
//! episode goes with its closing fault), then each remaining one is simplified (its time
//! toward zero, its target toward the first target, its durations toward the menu's
//! minimum, a partition's group toward one node); then operations are removed, a whole
//! chunk at a time first, then one by one, and the rest simplified the same way (time
//! toward zero, first producer, partition 0); the seed shrinks toward zero last. Each
//! step keeps the schedule one the scenario allows. A failing run of a few thousand
//! operations takes a few hundred shrinking runs or more: give the runner enough
//! `max_shrink_iters` (proptest's default is four times the number of cases).
//!
//! # Determinism
//!
//! The strategy only draws from the proptest runner's random generator, and a schedule
//! fully determines its run (`run_schedule` is a pure function of the scenario and the
//! schedule). A runner with a fixed algorithm and seed (`RngAlgorithm::ChaCha`,
//! `RngSeed::Fixed`) therefore tries the same schedules and gets the same verdicts on
//! every machine; a failing case fails again on every run, and the seed proptest
//! persists for it regenerates the same schedule.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::strategy::{BoxedStrategy, Union};

use crate::NodeId;
use crate::nemesis::{DiskFaultKind, PartitionKind, RangeNs, TimedFault};
use crate::run::{OPS_PER_RUN_MAX, Schedule, TimedOp};
use crate::scenario::{Scenario, System};
use crate::{CheckpointFile, DiskFault, HeaderField};
use crate::{Fault, Partition};

/// The most fault episodes a generated schedule holds (an episode is one fault and,
/// for crashes, pauses and partitions, the fault that ends it).
pub const FAULT_EPISODES_MAX: usize = 32;

/// The most client operations a generated schedule holds.
pub const OPS_MAX: usize = 5_000;

/// Operations are drawn in chunks of at most this many.
const OPS_CHUNK_MAX: usize = 64;

// A generated schedule stays within what a run accepts.
const _: () = assert!(OPS_MAX as u64 <= OPS_PER_RUN_MAX);

/// A fault as drawn: its opening fault and, for faults that last, the delay until the
/// fault that ends it.
#[derive(Clone, Debug)]
struct Episode {
    at_ns: u64,
    opening: Fault,
    closing: Option<(u64, Fault)>,
}

/// Schedules `scenario` allows: see the module documentation.
pub fn schedules(scenario: &Scenario) -> impl Strategy<Value = Schedule> + use<> {
    let chaos_ns = scenario.chaos_ns;
    let quiet_ns = scenario.quiet_ns;
    let crash_down_max = match scenario.menu.crash_down_max {
        0 => usize::MAX,
        max => max as usize,
    };
    let scripted = scenario.scripted.clone();
    // A scenario with menus: the configuration it was loaded with.
    let config = scenario.drawn.clone();
    (episodes(scenario), ops(scenario), any::<u64>()).prop_map(move |(episodes, ops, seed)| {
        let mut faults = open_and_close(episodes, crash_down_max, chaos_ns);
        faults.extend(scripted.iter().cloned());
        faults.sort_by_key(|timed| timed.at_ns);
        faults.push(TimedFault { at_ns: chaos_ns, fault: Fault::HealAll });
        let mut ops = ops;
        ops.sort_by_key(|op| op.at_ns);
        Schedule { seed, chaos_ns, quiet_ns, faults, ops, config: config.clone() }
    })
}

/// The episodes in time order, each opening fault followed by its closing one unless
/// chaos ends first; crashes and pauses over the budget are skipped.
fn open_and_close(
    mut episodes: Vec<Episode>,
    crash_down_max: usize,
    chaos_ns: u64,
) -> Vec<TimedFault> {
    episodes.sort_by_key(|episode| episode.at_ns);
    // The nodes down (crashed, paused) and when they come back.
    let mut crashed: Vec<(NodeId, u64)> = Vec::new();
    let mut paused: Vec<(NodeId, u64)> = Vec::new();
    let mut faults = Vec::new();
    for Episode { at_ns, opening, closing } in episodes {
        let down = match opening {
            Fault::Crash { node } => Some((&mut crashed, node, crash_down_max)),
            Fault::Pause { node } => Some((&mut paused, node, usize::MAX)),
            _ => None,
        };
        if let Some((down, node, at_once_max)) = down {
            let back_ns = at_ns.saturating_add(closing.as_ref().map_or(0, |(after, _)| *after));
            down.retain(|&(_, back)| back > at_ns);
            if down.len() >= at_once_max || down.iter().any(|&(n, _)| n == node) {
                continue;
            }
            down.push((node, back_ns));
        }
        faults.push(TimedFault { at_ns, fault: opening });
        if let Some((after_ns, fault)) = closing {
            let close_ns = at_ns.saturating_add(after_ns);
            if close_ns < chaos_ns {
                faults.push(TimedFault { at_ns: close_ns, fault });
            }
        }
    }
    faults
}

fn within([min, max]: RangeNs) -> BoxedStrategy<u64> {
    (min..=max).boxed()
}

fn probability(range: Option<[f64; 2]>) -> BoxedStrategy<f64> {
    match range {
        Some([min, max]) if max > min => (min..=max).boxed(),
        Some([min, _]) => Just(min).boxed(),
        None => Just(0.0).boxed(),
    }
}

/// How many episodes of a periodic fault fit in the chaos phase at most.
fn fitting(chaos_ns: u64, [every_min, _]: RangeNs) -> usize {
    usize::try_from(chaos_ns / every_min.max(1)).unwrap_or(usize::MAX)
}

/// The episodes: a vector of draws, each of one kind the menu enables.
fn episodes(scenario: &Scenario) -> BoxedStrategy<Vec<Episode>> {
    let menu = &scenario.menu;
    let chaos_ns = scenario.chaos_ns;
    let targets = scenario.fault_targets.clone();
    let disk_targets = scenario.disk_targets.clone();
    let nodes = scenario.world.nodes;
    if chaos_ns == 0 || targets.is_empty() {
        return Just(Vec::new()).boxed();
    }
    let time = 0..chaos_ns;
    let mut kinds: Vec<BoxedStrategy<Episode>> = Vec::new();
    let mut fit = 0usize;

    // A node goes down (crash, pause) and comes back (restart, resume) after a while.
    type NodeFault = fn(NodeId) -> Fault;
    type DownUp = (Option<(RangeNs, RangeNs)>, NodeFault, NodeFault);
    let down_up: [DownUp; 2] = [
        (menu.crash, |node| Fault::Crash { node }, |node| Fault::Restart { node }),
        (menu.pause, |node| Fault::Pause { node }, |node| Fault::Resume { node }),
    ];
    for (entry, down, up) in down_up {
        let Some((every, down_for)) = entry else { continue };
        fit = fit.saturating_add(fitting(chaos_ns, every));
        kinds.push(
            (time.clone(), select(targets.clone()), within(down_for))
                .prop_map(move |(at_ns, node, for_ns)| Episode {
                    at_ns,
                    opening: down(node),
                    closing: Some((for_ns, up(node))),
                })
                .boxed(),
        );
    }
    if let Some((shapes, every, heal_after)) = &menu.partition {
        if targets.len() >= 2 && !shapes.is_empty() {
            fit = fit.saturating_add(fitting(chaos_ns, *every));
            let mut shapes = shapes.clone();
            shapes.sort_by_key(|kind| *kind as u8);
            shapes.dedup();
            let partitions: Vec<BoxedStrategy<Partition>> = shapes
                .into_iter()
                .map(|kind| match kind {
                    PartitionKind::Isolate => {
                        select(targets.clone()).prop_map(|node| Partition::Isolate { node }).boxed()
                    }
                    PartitionKind::Split => subsequence(targets.clone(), 1..targets.len())
                        .prop_map(|left| Partition::Split { left })
                        .boxed(),
                    PartitionKind::OneWay => subsequence(targets.clone(), 1..targets.len())
                        .prop_map(move |from| {
                            // As the nemesis draws it: the group cannot reach anyone else.
                            let to = (0..nodes).map(NodeId).filter(|n| !from.contains(n)).collect();
                            Partition::OneWay { from, to }
                        })
                        .boxed(),
                })
                .collect();
            kinds.push(
                (time.clone(), Union::new(partitions), within(*heal_after))
                    .prop_map(|(at_ns, partition, heal_ns)| Episode {
                        at_ns,
                        opening: Fault::Partition(partition),
                        closing: Some((heal_ns, Fault::HealNetwork)),
                    })
                    .boxed(),
            );
        }
    }
    if let Some((every, duration)) = menu.clog {
        if targets.len() >= 2 {
            fit = fit.saturating_add(fitting(chaos_ns, every));
            let clog_targets = targets.clone();
            let n = targets.len();
            kinds.push(
                (time.clone(), 0..n, 0..n - 1, within(duration))
                    .prop_map(move |(at_ns, from, to, duration_ns)| {
                        // `to` indexes the targets other than `from`.
                        let to = if to >= from { to + 1 } else { to };
                        let (from, to) = (clog_targets[from], clog_targets[to]);
                        Episode {
                            at_ns,
                            opening: Fault::Clog { from, to, duration_ns },
                            closing: None,
                        }
                    })
                    .boxed(),
            );
        }
    }
    for (every, duration, [low, high]) in menu.link_losses() {
        if targets.len() >= 2 {
            fit = fit.saturating_add(fitting(chaos_ns, every));
            let link_targets = targets.clone();
            let n = targets.len();
            kinds.push(
                (time.clone(), 0..n, 0..n - 1, within(duration), 0..=1_000u32)
                    .prop_map(move |(at_ns, from, to, duration_ns, share)| {
                        // `to` indexes the targets other than `from`.
                        let to = if to >= from { to + 1 } else { to };
                        let (from, to) = (link_targets[from], link_targets[to]);
                        let drop_probability = low + (high - low) * f64::from(share) / 1_000.0;
                        Episode {
                            at_ns,
                            opening: Fault::LinkLoss { from, to, drop_probability, duration_ns },
                            closing: None,
                        }
                    })
                    .boxed(),
            );
        }
    }
    if let Some((every, node, actions)) = menu.operator {
        if actions > 0 {
            fit = fit.saturating_add(fitting(chaos_ns, every));
            kinds.push(
                (time.clone(), 0..actions)
                    .prop_map(move |(at_ns, action)| Episode {
                        at_ns,
                        opening: Fault::Operator { node, action },
                        closing: None,
                    })
                    .boxed(),
            );
        }
    }
    if let Some((every, forward)) = menu.clock_jump {
        fit = fit.saturating_add(fitting(chaos_ns, every));
        kinds.push(
            (time.clone(), select(targets.clone()), within(forward))
                .prop_map(|(at_ns, node, forward_ns)| Episode {
                    at_ns,
                    opening: Fault::ClockJump { node, forward_ns },
                    closing: None,
                })
                .boxed(),
        );
    }
    if let Some((disk_kinds, every)) = &menu.disk {
        if !disk_kinds.is_empty() && !disk_targets.is_empty() {
            fit = fit.saturating_add(fitting(chaos_ns, *every));
            let mut disk_kinds = disk_kinds.clone();
            disk_kinds.sort_by_key(|kind| *kind as u8);
            disk_kinds.dedup();
            let disk_faults: Vec<BoxedStrategy<DiskFault>> = disk_kinds
                .into_iter()
                .map(|kind| match kind {
                    DiskFaultKind::BitRot => Just(DiskFault::BitRot).boxed(),
                    DiskFaultKind::LatentSectorError => Just(DiskFault::LatentSectorError).boxed(),
                    DiskFaultKind::MisdirectWrite => Just(DiskFault::MisdirectWrite).boxed(),
                    DiskFaultKind::FailSync => Just(DiskFault::FailSync).boxed(),
                    DiskFaultKind::OutOfSpace => (0..1u64 << 20)
                        .prop_map(|free_bytes| DiskFault::OutOfSpace { free_bytes })
                        .boxed(),
                    DiskFaultKind::TornTail => Just(DiskFault::TornTail).boxed(),
                    DiskFaultKind::BatchHeader => proptest::sample::select(&HeaderField::ALL[..])
                        .prop_map(|field| DiskFault::BatchHeader { field })
                        .boxed(),
                    DiskFaultKind::Checkpoint => proptest::sample::select(&CheckpointFile::ALL[..])
                        .prop_map(|file| DiskFault::Checkpoint { file })
                        .boxed(),
                })
                .collect();
            kinds.push(
                (time.clone(), select(disk_targets), Union::new(disk_faults))
                    .prop_map(|(at_ns, node, disk_fault)| Episode {
                        at_ns,
                        opening: Fault::Disk { node, disk_fault },
                        closing: None,
                    })
                    .boxed(),
            );
        }
    }
    let lossy = |range: Option<[f64; 2]>| range.is_some_and(|[_, max]| max > 0.0);
    if lossy(menu.drop) || lossy(menu.duplicate) {
        fit = fit.saturating_add(1);
        kinds.push(
            (time, probability(menu.drop), probability(menu.duplicate))
                .prop_map(|(at_ns, drop_probability, duplicate_probability)| Episode {
                    at_ns,
                    opening: Fault::NetworkFaults { drop_probability, duplicate_probability },
                    closing: None,
                })
                .boxed(),
        );
    }
    if kinds.is_empty() {
        return Just(Vec::new()).boxed();
    }
    vec(Union::new(kinds), 0..=fit.min(FAULT_EPISODES_MAX)).boxed()
}

/// The client operations, unsorted: chunks of up to [`OPS_CHUNK_MAX`] operations, so
/// that shrinking first drops whole chunks, then single operations.
fn ops(scenario: &Scenario) -> BoxedStrategy<Vec<TimedOp>> {
    let chaos_ns = scenario.chaos_ns;
    let expected = u128::from(scenario.ops_per_s) * u128::from(chaos_ns) / 1_000_000_000;
    let expected = usize::try_from(expected).unwrap_or(usize::MAX).min(OPS_MAX);
    if chaos_ns == 0 || expected == 0 {
        return Just(Vec::new()).boxed();
    }
    // Uniform chunk counts and sizes: `chunks / 2` chunks of `chunk / 2` operations on
    // average, the scenario's rate.
    let chunk = expected.saturating_mul(2).min(OPS_CHUNK_MAX);
    let chunks = expected.saturating_mul(4).div_ceil(chunk).min(OPS_MAX / chunk);
    let time = 0..chaos_ns;
    let op = match &scenario.system {
        System::GossipCounter { .. } => (time, 0..scenario.world.nodes)
            .prop_map(|(at_ns, node)| TimedOp { at_ns, node: NodeId(node), partition: 0 })
            .boxed(),
        System::LogCluster(spec) => {
            let spec = spec.clone();
            // An event-store operation names the account it starts at.
            let targets = spec.es.as_ref().map_or(spec.partitions, |es| es.accounts);
            (time, 0..spec.producers, 0..targets)
                .prop_map(move |(at_ns, producer, partition)| TimedOp {
                    at_ns,
                    node: spec.producer(producer),
                    partition,
                })
                .boxed()
        }
    };
    vec(vec(op, 0..=chunk), 0..=chunks).prop_map(|chunks| chunks.concat()).boxed()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestRunner};

    use super::*;
    use crate::nemesis::FaultMenu;

    fn load(name: &str) -> Scenario {
        let path = format!("{}/../scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        Scenario::load(Path::new(&path)).unwrap_or_else(|error| panic!("{error}"))
    }

    /// A fixed, deterministic runner.
    fn runner(cases: u32) -> TestRunner {
        TestRunner::new(Config {
            cases,
            rng_algorithm: RngAlgorithm::ChaCha,
            rng_seed: RngSeed::Fixed(0x5eed),
            failure_persistence: None,
            max_shrink_iters: 100_000,
            ..Config::default()
        })
    }

    fn in_range(what: &str, value: u64, [min, max]: RangeNs) -> Result<(), String> {
        if (min..=max).contains(&value) {
            Ok(())
        } else {
            Err(format!("{what} {value} outside [{min}, {max}]"))
        }
    }

    fn probability_in(what: &str, p: f64, range: Option<[f64; 2]>) -> Result<(), String> {
        match range {
            Some([min, max]) if (min..=max).contains(&p) => Ok(()),
            None if p == 0.0 => Ok(()),
            _ => Err(format!("{what} probability {p} outside {range:?}")),
        }
    }

    /// Whether `fault` is one `menu` allows against these targets.
    fn check_fault(
        scenario: &Scenario,
        fault: &Fault,
        target: &dyn Fn(NodeId) -> Result<(), String>,
    ) -> Result<(), String> {
        let menu: &FaultMenu = &scenario.menu;
        let nodes = scenario.world.nodes;
        let disabled = || Err(format!("{fault:?}: not on the menu"));
        match fault {
            Fault::Crash { node } | Fault::Restart { node } => {
                if menu.crash.is_none() {
                    return disabled();
                }
                target(*node)
            }
            Fault::Pause { node } | Fault::Resume { node } => {
                if menu.pause.is_none() {
                    return disabled();
                }
                target(*node)
            }
            Fault::Partition(partition) => {
                let Some((kinds, _, _)) = &menu.partition else { return disabled() };
                let (kind, group) = match partition {
                    Partition::Isolate { node } => (PartitionKind::Isolate, vec![*node]),
                    Partition::Split { left } => (PartitionKind::Split, left.clone()),
                    Partition::OneWay { from, to } => {
                        let rest: Vec<NodeId> =
                            (0..nodes).map(NodeId).filter(|n| !from.contains(n)).collect();
                        if *to != rest {
                            return Err(format!("{fault:?}: `to` is not the rest of the world"));
                        }
                        (PartitionKind::OneWay, from.clone())
                    }
                    Partition::Symmetric { .. } => return disabled(),
                };
                if !kinds.contains(&kind) {
                    return disabled();
                }
                if group.is_empty() || group.len() >= scenario.fault_targets.len() {
                    return Err(format!("{fault:?}: not a proper group of the targets"));
                }
                group.into_iter().try_for_each(target)
            }
            Fault::HealNetwork => match menu.partition {
                Some(_) => Ok(()),
                None => disabled(),
            },
            Fault::Clog { from, to, duration_ns } => {
                let Some((_, duration)) = menu.clog else { return disabled() };
                if from == to {
                    return Err(format!("{fault:?}: a clog from a node to itself"));
                }
                target(*from)?;
                target(*to)?;
                in_range("clog duration", *duration_ns, duration)
            }
            Fault::LinkLoss { from, to, drop_probability, duration_ns } => {
                if from == to {
                    return Err(format!("{fault:?}: a link from a node to itself"));
                }
                target(*from)?;
                target(*to)?;
                let fits = menu.link_losses().any(|(_, duration, [low, high])| {
                    (duration[0]..=duration[1]).contains(duration_ns)
                        && (low..=high).contains(drop_probability)
                });
                if fits { Ok(()) } else { disabled() }
            }
            Fault::Operator { node, action } => match menu.operator {
                Some((_, operated, actions)) if *node == operated && *action < actions => Ok(()),
                Some(_) => Err(format!("{fault:?}: not a command the menu gives")),
                None => disabled(),
            },
            Fault::ClockJump { node, forward_ns } => {
                let Some((_, forward)) = menu.clock_jump else { return disabled() };
                target(*node)?;
                in_range("clock jump", *forward_ns, forward)
            }
            Fault::Disk { node, disk_fault } => {
                let Some((kinds, _)) = &menu.disk else { return disabled() };
                if !scenario.disk_targets.contains(node) {
                    return Err(format!("{fault:?}: n{} is not a disk target", node.0));
                }
                let Some(kind) = DiskFaultKind::of(*disk_fault) else { return disabled() };
                if kinds.contains(&kind) { Ok(()) } else { disabled() }
            }
            Fault::NetworkFaults { drop_probability, duplicate_probability } => {
                if menu.drop.is_none() && menu.duplicate.is_none() {
                    return disabled();
                }
                probability_in("drop", *drop_probability, menu.drop)?;
                probability_in("duplicate", *duplicate_probability, menu.duplicate)
            }
            Fault::HealAll => Err("HealAll before the end of chaos".into()),
        }
    }

    /// Whether `schedule` is one `scenario` allows (for scenarios without scripted
    /// faults).
    fn validate(scenario: &Scenario, schedule: &Schedule) -> Result<(), String> {
        assert!(scenario.scripted.is_empty(), "validate covers generated faults only");
        let chaos_ns = scenario.chaos_ns;
        if (schedule.chaos_ns, schedule.quiet_ns) != (chaos_ns, scenario.quiet_ns) {
            return Err("phase lengths differ from the scenario's".into());
        }
        let Some((last, faults)) = schedule.faults.split_last() else {
            return Err("no faults: the closing HealAll is missing".into());
        };
        if *last != (TimedFault { at_ns: chaos_ns, fault: Fault::HealAll }) {
            return Err(format!("the last fault is {last:?}, not HealAll at chaos_ns"));
        }
        if !faults.windows(2).all(|w| w[0].at_ns <= w[1].at_ns) {
            return Err("faults are not sorted by time".into());
        }
        let target = |node: NodeId| {
            if scenario.fault_targets.contains(&node) {
                Ok(())
            } else {
                Err(format!("n{} is not a fault target", node.0))
            }
        };
        let down_max = match scenario.menu.crash_down_max {
            0 => usize::MAX,
            max => max as usize,
        };
        // Crashed and paused nodes, with when they went down.
        let mut crashed: Vec<(NodeId, u64)> = Vec::new();
        let mut paused: Vec<(NodeId, u64)> = Vec::new();
        for timed in faults {
            if timed.at_ns >= chaos_ns {
                return Err(format!("{timed:?} at or after chaos_ns"));
            }
            check_fault(scenario, &timed.fault, &target)
                .map_err(|why| format!("at {}: {why}", timed.at_ns))?;
            let ranges = |entry: Option<(RangeNs, RangeNs)>| entry.map(|(_, range)| range);
            match timed.fault {
                Fault::Crash { node } | Fault::Pause { node } => {
                    let down = if matches!(timed.fault, Fault::Crash { .. }) {
                        &mut crashed
                    } else {
                        &mut paused
                    };
                    if down.iter().any(|&(n, _)| n == node) {
                        return Err(format!("at {}: n{} is already down", timed.at_ns, node.0));
                    }
                    down.push((node, timed.at_ns));
                    if crashed.len() > down_max {
                        return Err(format!("at {}: more than {down_max} down", timed.at_ns));
                    }
                }
                Fault::Restart { node } | Fault::Resume { node } => {
                    let (down, range) = if matches!(timed.fault, Fault::Restart { .. }) {
                        (&mut crashed, ranges(scenario.menu.crash))
                    } else {
                        (&mut paused, ranges(scenario.menu.pause))
                    };
                    let Some(i) = down.iter().position(|&(n, _)| n == node) else {
                        return Err(format!("at {}: n{} was not down", timed.at_ns, node.0));
                    };
                    let (_, since) = down.remove(i);
                    in_range("down time", timed.at_ns - since, range.expect("on the menu"))?;
                }
                _ => {}
            }
        }
        if !schedule.ops.windows(2).all(|w| w[0].at_ns <= w[1].at_ns) {
            return Err("operations are not sorted by time".into());
        }
        if schedule.ops.len() > OPS_MAX {
            return Err(format!("{} operations", schedule.ops.len()));
        }
        for op in &schedule.ops {
            if op.at_ns >= chaos_ns {
                return Err(format!("{op:?} at or after chaos_ns"));
            }
            match &scenario.system {
                System::LogCluster(spec) => {
                    if !(0..spec.producers).any(|i| spec.producer(i) == op.node) {
                        return Err(format!("{op:?}: n{} is not a producer", op.node.0));
                    }
                    let targets = spec.es.as_ref().map_or(spec.partitions, |es| es.accounts);
                    if op.partition >= targets {
                        return Err(format!("{op:?}: no such partition or account"));
                    }
                }
                System::GossipCounter { .. } => {
                    if op.node.0 >= scenario.world.nodes || op.partition != 0 {
                        return Err(format!("{op:?}: not a counter node"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Draws 200 schedules of the scenario and validates each; returns them.
    fn generated(name: &str) -> (Scenario, Vec<Schedule>) {
        let scenario = load(name);
        let strategy = schedules(&scenario);
        let mut runner = runner(200);
        let drawn: Vec<Schedule> = (0..200)
            .map(|_| strategy.new_tree(&mut runner).expect("no rejections").current())
            .collect();
        for schedule in &drawn {
            if let Err(why) = validate(&scenario, schedule) {
                panic!("{name}: {why}\nschedule: {schedule:?}");
            }
        }
        (scenario, drawn)
    }

    fn count(schedules: &[Schedule], kind: fn(&Fault) -> bool) -> usize {
        schedules.iter().flat_map(|s| &s.faults).filter(|t| kind(&t.fault)).count()
    }

    #[test]
    fn smoke_schedules_hold_no_faults_and_ops_at_its_rate() {
        let (_, drawn) = generated("smoke");
        assert!(drawn.iter().all(|s| s.faults.len() == 1), "smoke has no fault menu");
        // 200 ops/s over 3 s: 600 on average, up to 38 chunks of 64.
        let total: usize = drawn.iter().map(|s| s.ops.len()).sum();
        let mean = total / drawn.len();
        assert!((450..=750).contains(&mean), "mean {mean} ops per schedule");
        assert!(drawn.iter().all(|s| s.ops.len() <= 38 * 64));
        assert!(
            drawn.iter().any(|s| s.ops.len() < 100) && drawn.iter().any(|s| s.ops.len() > 1200)
        );
    }

    #[test]
    fn crash_restart_loop_schedules_are_allowed() {
        let (_, drawn) = generated("crash-restart-loop");
        assert!(count(&drawn, |f| matches!(f, Fault::Crash { .. })) > 0);
        assert!(count(&drawn, |f| matches!(f, Fault::Restart { .. })) > 0);
        assert!(count(&drawn, |f| matches!(f, Fault::Pause { .. })) > 0);
        assert!(count(&drawn, |f| matches!(f, Fault::Clog { .. })) > 0);
        assert!(count(&drawn, |f| matches!(f, Fault::NetworkFaults { .. })) > 0);
    }

    #[test]
    fn partitions_schedules_are_allowed() {
        let (_, drawn) = generated("partitions");
        for shape in [
            |f: &Fault| matches!(f, Fault::Partition(Partition::Isolate { .. })),
            |f: &Fault| matches!(f, Fault::Partition(Partition::Split { .. })),
            |f: &Fault| matches!(f, Fault::Partition(Partition::OneWay { .. })),
            |f: &Fault| matches!(f, Fault::HealNetwork),
        ] {
            assert!(count(&drawn, shape) > 0);
        }
        assert_eq!(count(&drawn, |f| matches!(f, Fault::Crash { .. })), 0);
    }

    #[test]
    fn disk_faults_schedules_are_allowed() {
        let (_, drawn) = generated("disk-faults");
        assert!(count(&drawn, |f| matches!(f, Fault::Disk { .. })) > 0);
        assert!(count(&drawn, |f| matches!(f, Fault::Crash { .. })) > 0);
    }

    #[test]
    fn the_same_runner_seed_draws_the_same_schedules() {
        let scenario = load("crash-restart-loop");
        let strategy = schedules(&scenario);
        let draw = || {
            let mut runner = runner(1);
            (0..20).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect::<Vec<_>>()
        };
        assert_eq!(draw(), draw());
    }

    #[test]
    fn a_property_broken_by_any_crash_shrinks_to_exactly_one_crash() {
        let scenario = load("crash-restart-loop");
        let mut runner = runner(256);
        let result = runner.run(&schedules(&scenario), |schedule| {
            let crashes =
                schedule.faults.iter().filter(|t| matches!(t.fault, Fault::Crash { .. })).count();
            if crashes > 0 {
                Err(TestCaseError::fail(format!("{crashes} crashes")))
            } else {
                Ok(())
            }
        });
        let Err(proptest::test_runner::TestError::Fail(_, minimal)) = result else {
            panic!("no schedule with a crash in 256: {result:?}");
        };
        validate(&scenario, &minimal).expect("the shrunk schedule is allowed");
        // Exactly one crash, at time zero, of the first target; nothing else is left but
        // its restart after the shortest down time and the closing heal.
        let crash = TimedFault { at_ns: 0, fault: Fault::Crash { node: NodeId(0) } };
        let (_, [down_min, _]) = scenario.menu.crash.unwrap();
        let restart = TimedFault { at_ns: down_min, fault: Fault::Restart { node: NodeId(0) } };
        let heal = TimedFault { at_ns: scenario.chaos_ns, fault: Fault::HealAll };
        assert_eq!(minimal.faults, [crash, restart, heal], "{minimal:?}");
        assert!(minimal.ops.is_empty(), "{minimal:?}");
        assert_eq!(minimal.seed, 0);
    }
}
