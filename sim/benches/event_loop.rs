//! The event loop's speed in delivered messages per second: ping-pong between two
//! processes (faults off, then drop/duplicate/latency tail on), an all-to-all
//! broadcast among five, and a replicated log (client, leader, two followers; 100-byte
//! records, 1 or 16 appends in flight). Run: `cargo bench -p logjam-sim --bench
//! event_loop` (add `-- replicated_log` for one group).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use logjam_sim::toy::{Broadcast, PingPong, ReplicatedLog};
use logjam_sim::{Latency, LatencyShape, NetworkConfig, Process, World, WorldConfig};

const PING_PONG_ROUNDS: u64 = 100_000;
const BROADCAST_ROUNDS: u64 = 10_000;
const LOG_APPENDS: u64 = 100_000;

fn quiet_network() -> NetworkConfig {
    NetworkConfig { latency: Latency::uniform(100_000, 1_000_000), ..NetworkConfig::default() }
}

fn faulty_network() -> NetworkConfig {
    NetworkConfig {
        latency: Latency {
            min_ns: 100_000,
            max_ns: 1_000_000,
            tail_probability: 0.01,
            tail_max_ns: 20_000_000,
            shape: LatencyShape::Uniform,
        },
        drop_probability: 0.05,
        duplicate_probability: 0.05,
        ..NetworkConfig::default()
    }
}

/// Runs a world to the end and returns how many messages it delivered.
fn run<P: Process>(
    config: &WorldConfig,
    factory: impl FnMut(logjam_sim::NodeId) -> P + 'static,
) -> u64 {
    let mut world = World::new(config, 42, factory).expect("valid bench config");
    assert!(world.run_to_quiescence().is_none(), "a bench hit a limit");
    world.stats().delivered
}

fn event_loop(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_loop");
    group.sample_size(10);

    let cases: [(&str, NetworkConfig, Option<u64>); 2] = [
        ("ping_pong/faults_off", quiet_network(), None),
        ("ping_pong/faults_on", faulty_network(), Some(5_000_000)),
    ];
    for (name, network, retransmit_every_ns) in cases {
        let config = WorldConfig { nodes: 2, network, ..WorldConfig::default() };
        let factory = move |_| PingPong::new(PING_PONG_ROUNDS, retransmit_every_ns);
        let delivered = run(&config, factory);
        group.throughput(Throughput::Elements(delivered));
        group.bench_function(name, |b| b.iter(|| run(&config, factory)));
    }

    let config = WorldConfig { nodes: 5, network: quiet_network(), ..WorldConfig::default() };
    let factory = |_| Broadcast::new(BROADCAST_ROUNDS);
    let delivered = run(&config, factory);
    assert_eq!(delivered, 5 * 4 * BROADCAST_ROUNDS);
    group.throughput(Throughput::Elements(delivered));
    group.bench_function("broadcast_5", |b| b.iter(|| run(&config, factory)));
    group.finish();
}

/// The toy replicated log on a quiet network: six messages per append (append,
/// replicate to two followers, their two acknowledgements, the acknowledgement).
fn replicated_log(c: &mut Criterion) {
    let mut group = c.benchmark_group("replicated_log");
    group.sample_size(10);
    let config = WorldConfig { nodes: 4, network: quiet_network(), ..WorldConfig::default() };
    for (name, in_flight_max) in [("in_flight_1", 1), ("in_flight_16", 16)] {
        let factory = move |node| ReplicatedLog::new(node, LOG_APPENDS, in_flight_max);
        let delivered = run(&config, factory);
        assert_eq!(delivered, 6 * LOG_APPENDS);
        group.throughput(Throughput::Elements(delivered));
        group.bench_function(name, |b| b.iter(|| run(&config, factory)));
    }
    group.finish();
}

criterion_group!(benches, event_loop, replicated_log);
criterion_main!(benches);
