//! Bad parameters are refused when the world is built; limits end a run cleanly.

mod support;

use logjam_sim::toy::PingPong;
use logjam_sim::{
    ClockConfig, ConfigError, Context, Fault, Latency, Limit, Limits, NetworkConfig, NodeId,
    Partition, Process, TimerId, World, WorldConfig,
};

fn refused(config: &WorldConfig) -> String {
    match World::new(config, 0, |_| PingPong::new(1, None)) {
        Ok(_) => panic!("accepted {config:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn bad_world_parameters_are_refused_with_a_clear_error() {
    let base = WorldConfig::with_nodes(3);
    let network = |network: NetworkConfig| WorldConfig { network, ..base.clone() };
    let cases: Vec<(WorldConfig, &str)> = vec![
        (
            network(NetworkConfig { drop_probability: 1.5, ..NetworkConfig::default() }),
            "network.drop_probability: probability 1.5 is outside [0, 1]",
        ),
        (
            network(NetworkConfig { duplicate_probability: -0.1, ..NetworkConfig::default() }),
            "network.duplicate_probability: probability -0.1 is outside [0, 1]",
        ),
        (
            network(NetworkConfig { drop_probability: f64::NAN, ..NetworkConfig::default() }),
            "network.drop_probability: probability NaN is outside [0, 1]",
        ),
        (
            network(NetworkConfig { latency: Latency::uniform(9, 2), ..NetworkConfig::default() }),
            "network.latency: range is upside down (min 9 > max 2)",
        ),
        (
            network(NetworkConfig {
                link_latency: vec![(NodeId(0), NodeId(7), Latency::fixed(1))],
                ..NetworkConfig::default()
            }),
            "network.link_latency[n0->n7]: node n7 does not exist (the world has 3 nodes: n0..n2)",
        ),
        (WorldConfig::with_nodes(0), "nodes: 0 is not between 1 and 1024"),
        (
            WorldConfig {
                clocks: ClockConfig { skew_max_ns: 0, drift_max_ppm: 200_000 },
                ..base.clone()
            },
            "clocks.drift_max_ppm: 200000 exceeds 100000",
        ),
        (
            WorldConfig {
                limits: Limits { in_flight_max: 0, ..Limits::default() },
                ..base.clone()
            },
            "limits.in_flight_max: must be above zero",
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(refused(&config), expected);
    }
}

#[test]
fn faults_naming_missing_nodes_or_the_past_are_refused() {
    let mut world =
        World::new(&WorldConfig::with_nodes(2), 0, |_| PingPong::new(10, None)).unwrap();
    let cases = [
        (Fault::Crash { node: NodeId(2) }, "fault: node n2 does not exist"),
        (
            Fault::Partition(Partition::Isolate { node: NodeId(9) }),
            "partition: node n9 does not exist",
        ),
        (Fault::Partition(Partition::Split { left: vec![NodeId(0), NodeId(5)] }), "node n5"),
        (Fault::Clog { from: NodeId(0), to: NodeId(3), duration_ns: 1 }, "clog: node n3"),
        (
            Fault::NetworkFaults { drop_probability: 0.5, duplicate_probability: 2.0 },
            "fault.duplicate_probability: probability 2 is outside [0, 1]",
        ),
    ];
    for (fault, expected) in cases {
        let error = world.schedule(0, fault.clone()).unwrap_err().to_string();
        assert!(error.contains(expected), "{fault:?}: {error}");
    }
    world.run_until(1_000);
    let error = world.schedule(10, Fault::HealAll).unwrap_err();
    assert_eq!(error, ConfigError::FaultInPast { at_ns: 10, now_ns: 1_000 });
}

fn endless_ping_pong(limits: Limits) -> World<PingPong> {
    let config = WorldConfig { limits, ..WorldConfig::with_nodes(2) };
    World::new(&config, 1, |_| PingPong::new(u64::MAX, None)).unwrap()
}

#[test]
fn the_event_limit_ends_an_endless_run() {
    let mut world = endless_ping_pong(Limits { events_max: 1_000, ..Limits::default() });
    assert_eq!(world.run_to_quiescence(), Some(Limit::Events { max: 1_000 }));
    assert_eq!(world.stats().events, 1_000);
    assert!(!world.step(), "a stopped world moved on");
}

#[test]
fn the_time_limit_ends_an_endless_run() {
    let mut world = endless_ping_pong(Limits { time_max_ns: 50_000_000, ..Limits::default() });
    assert_eq!(world.run_to_quiescence(), Some(Limit::Time { max_ns: 50_000_000 }));
    assert!(world.now_ns() <= 50_000_000);
}

/// Sends `fan_out` messages for every message it gets, and sets a timer for each.
struct Flood {
    fan_out: u32,
}

impl Process for Flood {
    type Message = ();
    type Timer = ();
    fn start(&mut self, ctx: &mut Context<'_, Self>) {
        ctx.send(NodeId(0), ());
    }
    fn on_message(&mut self, ctx: &mut Context<'_, Self>, _: NodeId, (): ()) {
        for _ in 0..self.fan_out {
            ctx.send(NodeId(0), ());
            ctx.set_timer(1_000_000_000, ());
        }
    }
    fn on_timer(&mut self, _: &mut Context<'_, Self>, _: TimerId, (): ()) {}
}

#[test]
fn in_flight_and_timer_limits_end_a_flood() {
    let cases = [
        (Limits { in_flight_max: 500, ..Limits::default() }, Limit::InFlight { max: 500 }),
        (
            Limits { timers_per_node_max: 300, ..Limits::default() },
            Limit::Timers { node: NodeId(0), max: 300 },
        ),
    ];
    for (limits, expected) in cases {
        let config = WorldConfig { limits, ..WorldConfig::with_nodes(1) };
        let mut world = World::new(&config, 0, |_| Flood { fan_out: 2 }).unwrap();
        assert_eq!(world.run_to_quiescence(), Some(expected));
        assert!(world.in_flight() <= 500);
    }
}
