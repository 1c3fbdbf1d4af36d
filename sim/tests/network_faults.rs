//! Each network fault does what it says, and would be caught doing nothing.

mod support;

use logjam_sim::{Fault, Latency, NetworkConfig, NodeId, Partition, WorldConfig};
use support::{blast, probe_world, received};

fn config(nodes: u32, network: NetworkConfig) -> WorldConfig {
    WorldConfig { nodes, network, ..WorldConfig::default() }
}

const MESSAGES: u64 = 20_000;

#[test]
fn drop_loses_the_configured_fraction() {
    for drop_probability in [0.0, 0.1, 0.5, 1.0] {
        let network = NetworkConfig { drop_probability, ..NetworkConfig::default() };
        let (mut world, log) = probe_world(&config(2, network), 1, None);
        blast(&mut world, 0, 1, MESSAGES);
        world.run_to_quiescence();
        let arrived = received(&log, 0, 1).len() as u64;
        let dropped = world.stats().dropped_random;
        assert_eq!(
            arrived + dropped,
            MESSAGES,
            "p={drop_probability}: every message arrives or drops"
        );
        let expected = drop_probability * MESSAGES as f64;
        assert!(
            (dropped as f64 - expected).abs() <= 500.0,
            "p={drop_probability}: {dropped} dropped"
        );
    }
}

#[test]
fn duplicate_delivers_some_messages_twice() {
    for duplicate_probability in [0.0, 0.3] {
        let network = NetworkConfig { duplicate_probability, ..NetworkConfig::default() };
        let (mut world, log) = probe_world(&config(2, network), 2, None);
        blast(&mut world, 0, 1, MESSAGES);
        world.run_to_quiescence();
        let values = received(&log, 0, 1);
        let duplicated = world.stats().duplicated;
        assert_eq!(values.len() as u64, MESSAGES + duplicated);
        let mut counts = vec![0u32; MESSAGES as usize];
        values.iter().for_each(|&value| counts[value as usize] += 1);
        assert!(
            counts.iter().all(|&count| count == 1 || count == 2),
            "a value arrived 0 or 3+ times"
        );
        let twice = counts.iter().filter(|&&count| count == 2).count() as u64;
        assert_eq!(twice, duplicated);
        let expected = duplicate_probability * MESSAGES as f64;
        assert!(
            (twice as f64 - expected).abs() <= 500.0,
            "p={duplicate_probability}: {twice} twice"
        );
    }
}

#[test]
fn reordering_comes_from_latency_variance_only() {
    let cases = [(Latency::fixed(500_000), false), (Latency::uniform(100_000, 5_000_000), true)];
    for (latency, expect_reorder) in cases {
        let network = NetworkConfig { latency: latency.clone(), ..NetworkConfig::default() };
        let (mut world, log) = probe_world(&config(2, network), 3, None);
        for burst in 0..100 {
            world.with_process(NodeId(0), |_, ctx| {
                (0..10).for_each(|i| support::Probe::send(ctx, 1, burst * 10 + i));
            });
            let now_ns = world.now_ns();
            world.run_until(now_ns + 50_000);
        }
        world.run_to_quiescence();
        let values = received(&log, 0, 1);
        assert_eq!(values.len(), 1000);
        let overtakes = values.windows(2).filter(|pair| pair[1] < pair[0]).count();
        if expect_reorder {
            assert!(world.stats().reordered > 100, "{latency:?}: {}", world.stats().reordered);
            assert!(overtakes > 0);
        } else {
            assert_eq!((world.stats().reordered, overtakes), (0, 0), "{latency:?}");
        }
    }
}

/// Every node sends one message to every other node; returns the links that worked.
fn links_that_deliver(
    world: &mut logjam_sim::World<support::Probe>,
    log: &support::Log,
) -> Vec<(u32, u32)> {
    log.borrow_mut().clear();
    let nodes = world.nodes();
    for from in 0..nodes {
        for to in (0..nodes).filter(|&to| to != from) {
            blast(world, from, to, 1);
        }
    }
    world.run_to_quiescence();
    let mut links: Vec<(u32, u32)> = (0..nodes)
        .flat_map(|from| (0..nodes).map(move |to| (from, to)))
        .filter(|&(from, to)| from != to && !received(log, from, to).is_empty())
        .collect();
    links.sort_unstable();
    links
}

#[test]
fn partitions_block_exactly_the_links_they_name() {
    let all: Vec<(u32, u32)> =
        (0..4).flat_map(|f| (0..4).map(move |t| (f, t))).filter(|(f, t)| f != t).collect();
    let without = |cut: &[(u32, u32)]| -> Vec<(u32, u32)> {
        all.iter().copied().filter(|link| !cut.contains(link)).collect()
    };
    let ids = |list: &[u32]| list.iter().map(|&n| NodeId(n)).collect::<Vec<_>>();
    let cases = [
        (
            Partition::Symmetric { a: ids(&[0, 1]), b: ids(&[2]) },
            without(&[(0, 2), (2, 0), (1, 2), (2, 1)]),
        ),
        (Partition::OneWay { from: ids(&[0]), to: ids(&[1, 3]) }, without(&[(0, 1), (0, 3)])),
        (
            Partition::Isolate { node: NodeId(2) },
            without(&[(0, 2), (2, 0), (1, 2), (2, 1), (3, 2), (2, 3)]),
        ),
        (Partition::Split { left: ids(&[0, 3]) }, vec![(0, 3), (1, 2), (2, 1), (3, 0)]),
    ];
    for (partition, expected) in cases {
        let (mut world, log) = probe_world(&config(4, NetworkConfig::default()), 4, None);
        assert_eq!(links_that_deliver(&mut world, &log), all, "before {partition:?}");
        let now_ns = world.now_ns();
        world.schedule(now_ns, Fault::Partition(partition.clone())).unwrap();
        world.run_to_quiescence();
        assert_eq!(links_that_deliver(&mut world, &log), expected, "{partition:?}");
        assert!(world.stats().dropped_partitioned > 0);
        let now_ns = world.now_ns();
        world.schedule(now_ns, Fault::HealNetwork).unwrap();
        world.run_to_quiescence();
        assert_eq!(links_that_deliver(&mut world, &log), all, "after healing {partition:?}");
    }
}

#[test]
fn a_partition_drops_messages_already_in_flight() {
    let network = NetworkConfig { latency: Latency::fixed(10_000_000), ..NetworkConfig::default() };
    let (mut world, log) = probe_world(&config(2, network), 5, None);
    blast(&mut world, 0, 1, 5);
    world.schedule(1_000_000, Fault::Partition(Partition::Isolate { node: NodeId(1) })).unwrap();
    world.run_to_quiescence();
    assert!(received(&log, 0, 1).is_empty());
    assert_eq!(world.stats().dropped_partitioned, 5);
}

#[test]
fn a_clogged_link_delivers_nothing_then_everything_late() {
    let network = NetworkConfig { latency: Latency::fixed(1_000_000), ..NetworkConfig::default() };
    let (mut world, log) = probe_world(&config(2, network), 6, None);
    world
        .schedule(0, Fault::Clog { from: NodeId(0), to: NodeId(1), duration_ns: 100_000_000 })
        .unwrap();
    world.run_until(0);
    for _ in 0..10 {
        blast(&mut world, 0, 1, 1);
        blast(&mut world, 1, 0, 1);
        let now_ns = world.now_ns();
        world.run_until(now_ns + 5_000_000);
    }
    assert!(world.now_ns() < 100_000_000);
    assert!(received(&log, 0, 1).is_empty(), "the clogged link delivered early");
    assert_eq!(received(&log, 1, 0).len(), 10, "the other direction is not clogged");
    world.run_to_quiescence();
    assert_eq!(received(&log, 0, 1).len(), 10, "the clogged link lost messages");
    assert_eq!(world.now_ns(), 100_000_000, "held messages arrive when the clog ends");
    assert_eq!(world.stats().clog_delayed, 10);
}

#[test]
fn a_link_loss_takes_its_share_on_its_link_only_and_only_while_it_lasts() {
    // (drop probability, share of the lossy link's messages expected lost)
    for (drop_probability, expected) in [(1.0, 1.0), (0.3, 0.3), (0.0, 0.0)] {
        let network = NetworkConfig { latency: Latency::fixed(1_000), ..NetworkConfig::default() };
        let (mut world, log) = probe_world(&config(3, network), 7, None);
        let duration_ns = 1_000_000_000;
        let loss =
            Fault::LinkLoss { from: NodeId(0), to: NodeId(1), drop_probability, duration_ns };
        world.schedule(0, loss).unwrap();
        world.run_until(0);
        blast(&mut world, 0, 1, MESSAGES);
        blast(&mut world, 0, 2, 100);
        blast(&mut world, 1, 0, 100);
        world.run_to_quiescence();
        let lost = MESSAGES - received(&log, 0, 1).len() as u64;
        assert_eq!(lost, world.stats().dropped_link_loss, "p={drop_probability}");
        let share = lost as f64 / MESSAGES as f64;
        assert!((share - expected).abs() < 0.02, "p={drop_probability}: lost {share}");
        assert_eq!(received(&log, 0, 2).len(), 100, "another link lost messages");
        assert_eq!(received(&log, 1, 0).len(), 100, "the other direction lost messages");
        // Once the loss is over, the link delivers again.
        world.run_until(duration_ns);
        log.borrow_mut().clear();
        blast(&mut world, 0, 1, 100);
        world.run_to_quiescence();
        assert_eq!(received(&log, 0, 1).len(), 100, "p={drop_probability}: still lossy");
    }
}

#[test]
fn connections_drop_what_a_crash_or_a_cut_left_in_flight_and_off_it_arrives_late() {
    // (connections, what strikes while 5 messages are in flight, how many arrive)
    let crash_and_restart = [
        (1_000_000, Fault::Crash { node: NodeId(1) }),
        (2_000_000, Fault::Restart { node: NodeId(1) }),
    ];
    let cut_and_heal = [
        (1_000_000, Fault::Partition(Partition::Isolate { node: NodeId(1) })),
        (2_000_000, Fault::HealNetwork),
    ];
    let cases = [
        (true, &crash_and_restart, 0),
        (false, &crash_and_restart, 5),
        (true, &cut_and_heal, 0),
        // A cut that heals before the messages arrive: without connections they pass.
        (false, &cut_and_heal, 5),
    ];
    for (connections, faults, arrived) in cases {
        let network = NetworkConfig {
            latency: Latency::fixed(10_000_000),
            connections,
            ..NetworkConfig::default()
        };
        let (mut world, log) = probe_world(&config(2, network), 8, None);
        blast(&mut world, 0, 1, 5);
        for (at_ns, fault) in faults.iter().cloned() {
            world.schedule(at_ns, fault).unwrap();
        }
        world.run_to_quiescence();
        let what = format!("connections {connections}, {:?}", faults[0].1);
        assert_eq!(received(&log, 0, 1).len(), arrived, "{what}");
        assert_eq!(world.stats().dropped_connection_closed, 5 - arrived as u64, "{what}");
        // What is sent on the new connection arrives.
        log.borrow_mut().clear();
        blast(&mut world, 0, 1, 3);
        world.run_to_quiescence();
        assert_eq!(received(&log, 0, 1).len(), 3, "{what}: the new connection");
    }
}

#[test]
fn latency_shapes_spread_delays_as_they_say() {
    use logjam_sim::LatencyShape;
    // (shape, the most a delay of min 1 ms + scale 1 ms may take)
    let cases = [
        (LatencyShape::Uniform, 2_000_000),
        (LatencyShape::Exponential, 1_000_000 + 6_300_000),
        (LatencyShape::Pareto, 1_000_000 + 63_000_000),
    ];
    let mut p99s = Vec::new();
    for (shape, max_ns) in cases {
        let latency = Latency { shape, ..Latency::uniform(1_000_000, 2_000_000) };
        let network = NetworkConfig { latency, ..NetworkConfig::default() };
        let (mut world, _) = probe_world(&config(2, network), 9, None);
        let mut delays = support::delays(&mut world, 0, 1, 2_000);
        delays.sort_unstable();
        assert!(delays[0] >= 1_000_000, "{shape:?}: faster than the minimum");
        assert!(*delays.last().unwrap() <= max_ns, "{shape:?}: slower than its bound");
        p99s.push(delays[delays.len() * 99 / 100]);
    }
    // The tails grow: uniform < exponential < Pareto at the 99th percentile.
    assert!(p99s.windows(2).all(|pair| pair[0] < pair[1]), "{p99s:?}");
}
