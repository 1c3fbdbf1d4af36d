//! Crash, restart, pause and clock faults do what they say.

mod support;

use logjam_sim::{ClockConfig, Fault, Latency, NetworkConfig, NodeId, NodeStatus, WorldConfig};
use support::{Seen, blast, probe_world, received};

const MS: u64 = 1_000_000;

fn fixed_latency(nodes: u32) -> WorldConfig {
    let network = NetworkConfig { latency: Latency::fixed(MS), ..NetworkConfig::default() };
    WorldConfig { nodes, network, ..WorldConfig::default() }
}

fn seen_by(log: &support::Log, node: u32) -> Vec<Seen> {
    log.borrow()
        .iter()
        .filter(|seen| match seen {
            Seen::Started { node: n, .. }
            | Seen::Message { node: n, .. }
            | Seen::Timer { node: n, .. } => *n == NodeId(node),
        })
        .cloned()
        .collect()
}

#[test]
fn a_paused_node_handles_nothing_and_takes_up_its_backlog_late() {
    let (mut world, log) = probe_world(&fixed_latency(2), 1, None);
    world.with_process(NodeId(1), |_, ctx| ctx.set_timer(20 * MS, 7)).unwrap();
    world.schedule(10 * MS, Fault::Pause { node: NodeId(1) }).unwrap();
    world.schedule(50 * MS, Fault::Resume { node: NodeId(1) }).unwrap();
    world.run_until(15 * MS);
    assert_eq!(world.status(NodeId(1)), NodeStatus::Paused);
    assert!(world.with_process(NodeId(1), |_, _| ()).is_none(), "a paused node took a call");
    let before = seen_by(&log, 1).len();
    blast(&mut world, 0, 1, 3);
    world.run_until(49 * MS);
    assert_eq!(seen_by(&log, 1).len(), before, "the paused node handled something");
    assert_eq!(world.in_flight(), 3, "held messages count as in flight");
    world.run_to_quiescence();
    let after: Vec<Seen> = seen_by(&log, 1).split_off(before);
    let expected = vec![
        // Sent at 15ms, due at 16ms: before the timer, due at 20ms.
        Seen::Message { node: NodeId(1), local_ns: 50 * MS, from: NodeId(0), value: 0 },
        Seen::Message { node: NodeId(1), local_ns: 50 * MS, from: NodeId(0), value: 1 },
        Seen::Message { node: NodeId(1), local_ns: 50 * MS, from: NodeId(0), value: 2 },
        Seen::Timer { node: NodeId(1), local_ns: 50 * MS, tag: 7 },
    ];
    assert_eq!(after, expected, "backlog handled at resume, in the order it came due");
    assert_eq!((world.stats().pauses, world.stats().resumes), (1, 1));
}

#[test]
fn a_crash_loses_volatile_state_timers_and_messages_but_not_the_disk() {
    let (mut world, log) = probe_world(&fixed_latency(2), 2, None);
    world
        .with_process(NodeId(1), |probe, ctx| {
            probe.volatile = 42;
            ctx.disk().put_durable("state", b"durable");
            ctx.set_timer(30 * MS, 1);
        })
        .unwrap();
    world.schedule(10 * MS, Fault::Crash { node: NodeId(1) }).unwrap();
    world.schedule(60 * MS, Fault::Restart { node: NodeId(1) }).unwrap();
    world.run_until(20 * MS);
    assert_eq!(world.status(NodeId(1)), NodeStatus::Crashed);
    assert!(world.process(NodeId(1)).is_none());
    blast(&mut world, 0, 1, 4);
    world.run_until(59 * MS);
    assert_eq!(world.stats().dropped_node_down, 4);
    world.run_to_quiescence();
    let handled: Vec<Seen> = seen_by(&log, 1);
    let expected = vec![
        Seen::Started { node: NodeId(1), local_ns: 0, disk: None },
        Seen::Started { node: NodeId(1), local_ns: 60 * MS, disk: Some(b"durable".to_vec()) },
    ];
    assert_eq!(handled, expected, "the timer set before the crash must never fire");
    assert_eq!(world.process(NodeId(1)).unwrap().volatile, 0, "volatile state survived a crash");
    blast(&mut world, 0, 1, 1);
    world.run_to_quiescence();
    assert_eq!(received(&log, 0, 1), [0], "the restarted node hears again");
}

#[test]
fn a_crash_while_paused_drops_the_backlog() {
    let (mut world, _log) = probe_world(&fixed_latency(2), 3, None);
    world.schedule(0, Fault::Pause { node: NodeId(1) }).unwrap();
    world.run_until(0);
    blast(&mut world, 0, 1, 5);
    world.schedule(10 * MS, Fault::Crash { node: NodeId(1) }).unwrap();
    world.run_to_quiescence();
    assert_eq!((world.in_flight(), world.stats().dropped_node_down), (0, 5));
}

#[test]
fn faults_with_nothing_to_act_on_are_traced_as_ignored() {
    let (mut world, _log) = probe_world(&fixed_latency(2), 4, None);
    for fault in [Fault::Restart { node: NodeId(0) }, Fault::Resume { node: NodeId(0) }] {
        world.schedule(0, fault).unwrap();
    }
    world.schedule(1, Fault::Crash { node: NodeId(1) }).unwrap();
    world.schedule(2, Fault::Crash { node: NodeId(1) }).unwrap();
    world.schedule(3, Fault::Pause { node: NodeId(1) }).unwrap();
    world.run_to_quiescence();
    assert_eq!(world.stats().faults_ignored, 4);
    assert_eq!(world.stats().crashes, 1);
}

#[test]
fn clocks_skew_and_drift_within_bounds_and_timers_follow_local_time() {
    let clocks = ClockConfig { skew_max_ns: 500 * MS, drift_max_ppm: 50_000 };
    let config = WorldConfig { nodes: 8, clocks, ..fixed_latency(8) };
    let (mut world, log) = probe_world(&config, 5, None);
    for node in 0..8 {
        world
            .with_process(NodeId(node), |_, ctx| ctx.set_timer(1_000 * MS, u64::from(node)))
            .unwrap();
    }
    let mut readings = Vec::new();
    for _ in 0..8 {
        let now_ns = world.now_ns() + 300 * MS;
        world.run_until(now_ns);
        for node in 0..8 {
            let local_ns = world.local_now_ns(NodeId(node));
            let drift_ns = now_ns / 20;
            assert!(local_ns + drift_ns >= now_ns, "n{node} is behind by more than drift");
            assert!(local_ns <= now_ns + 500 * MS + drift_ns, "n{node} ahead by more than skew");
            readings.push(local_ns);
        }
    }
    readings.sort_unstable();
    readings.dedup();
    assert_eq!(readings.len(), 64, "the clocks do not disagree at all");
    for seen in log.borrow().iter() {
        if let Seen::Timer { node, local_ns, .. } = seen {
            let start = world_local_at_zero(&config, 5, *node);
            assert!(*local_ns >= start + 1_000 * MS, "{node} fired early by its own clock");
        }
    }
}

fn world_local_at_zero(config: &WorldConfig, seed: u64, node: NodeId) -> u64 {
    let (world, _) = probe_world(config, seed, None);
    world.local_now_ns(node)
}

#[test]
fn a_clock_jump_moves_only_that_clock_forward() {
    let (mut world, _log) = probe_world(&fixed_latency(2), 6, None);
    world.schedule(MS, Fault::ClockJump { node: NodeId(1), forward_ns: 5_000 * MS }).unwrap();
    world.run_until(2 * MS);
    assert_eq!(world.local_now_ns(NodeId(0)), 2 * MS);
    assert_eq!(world.local_now_ns(NodeId(1)), 5_002 * MS);
}
