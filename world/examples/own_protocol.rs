//! Running your own protocol in the world.
//!
//! A protocol written as sans-IO state machines (it never touches a socket, a clock or
//! a thread: it reacts to inputs and acts through a `Context`) runs unchanged in
//! `logjam_world::World`, which plays the network, the clocks and the faults, all from
//! one seed. This example defines a tiny protocol of its own: node 0 asks node 1 to add
//! numbers, one request at a time, and re-sends a request whose answer does not come
//! back within a retry period. The network drops and duplicates messages.
//!
//! Run: `cargo run --release -p logjam-world --example own_protocol`

use logjam_world::{Context, Latency, NetworkConfig, NodeId, Process, TimerId, World, WorldConfig};

const CLIENT: NodeId = NodeId(0);
const SERVER: NodeId = NodeId(1);
const REQUESTS: u64 = 1_000;
const RETRY_AFTER_NS: u64 = 5_000_000; // 5 ms, well above the network's 1 ms worst case

/// What the two nodes say to each other. The world hashes every message into the
/// run's trace, hence `Hash`; it may duplicate a message, hence `Clone`.
#[derive(Clone, Debug, Hash)]
enum Msg {
    Add { id: u64, a: u64, b: u64 },
    Sum { id: u64, sum: u64 },
}

/// One process type runs on every node; here it picks its role from its node id.
enum Adder {
    Client { next_id: u64, retry: Option<TimerId>, retries: u64, answers: u64 },
    Server { requests_seen: u64 },
}

impl Adder {
    fn new(node: NodeId) -> Adder {
        match node {
            CLIENT => Adder::Client { next_id: 0, retry: None, retries: 0, answers: 0 },
            _ => Adder::Server { requests_seen: 0 },
        }
    }

    /// Request `id` asks for `id + id²`: easy to check when the answer comes back.
    fn request(id: u64) -> Msg {
        Msg::Add { id, a: id, b: id * id }
    }
}

impl Process for Adder {
    type Message = Msg;
    /// A timer carries the id of the request it would re-send.
    type Timer = u64;

    /// Called at boot (and after a crash, to recover from the node's disk; this
    /// protocol keeps nothing on disk).
    fn start(&mut self, ctx: &mut Context<'_, Self>) {
        if let Adder::Client { next_id, retry, .. } = self {
            ctx.send(SERVER, Adder::request(*next_id));
            *retry = Some(ctx.set_timer(RETRY_AFTER_NS, *next_id));
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match (self, msg) {
            // The server answers every request it hears, duplicates included: adding is
            // idempotent, so a re-sent request is harmless.
            (Adder::Server { requests_seen }, Msg::Add { id, a, b }) => {
                *requests_seen += 1;
                ctx.send(from, Msg::Sum { id, sum: a + b });
            }
            (Adder::Client { next_id, retry, answers, .. }, Msg::Sum { id, sum }) => {
                if id != *next_id {
                    return; // a late or duplicated answer to a request already done
                }
                assert_eq!(sum, id + id * id, "wrong sum for request {id}");
                *answers += 1;
                // The answer came: the retry timer must not fire for this request.
                if let Some(timer) = retry.take() {
                    ctx.cancel_timer(timer);
                }
                *next_id += 1;
                if *next_id < REQUESTS {
                    ctx.send(SERVER, Adder::request(*next_id));
                    *retry = Some(ctx.set_timer(RETRY_AFTER_NS, *next_id));
                }
            }
            (_, msg) => panic!("{} did not expect {msg:?}", ctx.node()),
        }
    }

    /// A timer fired: the request went unanswered for a whole period (the request or its
    /// answer was dropped, or is very late). Send it again and wait another period.
    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _: TimerId, id: u64) {
        if let Adder::Client { next_id, retry, retries, .. } = self {
            debug_assert_eq!(id, *next_id, "a cancelled timer never fires");
            *retries += 1;
            ctx.send(SERVER, Adder::request(id));
            *retry = Some(ctx.set_timer(RETRY_AFTER_NS, id));
        }
    }
}

/// Builds a world for `seed`, runs it for 10 simulated seconds and returns it.
fn run(seed: u64) -> World<Adder> {
    let config = WorldConfig {
        nodes: 2,
        network: NetworkConfig {
            latency: Latency::uniform(100_000, 1_000_000), // 0.1 to 1 ms per message
            drop_probability: 0.1,
            duplicate_probability: 0.02,
            ..NetworkConfig::default()
        },
        ..WorldConfig::default()
    };
    // The factory builds a node's process at boot, and again when a crashed node restarts.
    let mut world = World::new(&config, seed, Adder::new).expect("a valid configuration");
    // Runs every event up to 10 s of simulated time (far less wall time). `None`: no
    // limit (events, messages in flight, timers) stopped the run.
    let stopped = world.run_until(10_000_000_000);
    assert_eq!(stopped, None, "the run hit a limit");
    world
}

fn main() {
    let seed = 42;
    let world = run(seed);

    let Some(Adder::Client { answers, retries, .. }) = world.process(CLIENT) else {
        unreachable!("node 0 is the client and never crashes here")
    };
    let Some(Adder::Server { requests_seen }) = world.process(SERVER) else { unreachable!() };
    println!("seed {seed}: {answers} of {REQUESTS} requests answered, {retries} retries");
    println!("the server heard {requests_seen} requests (duplicates and re-sends included)");
    let stats = world.stats();
    println!(
        "stats: {} events, {} sent, {} delivered, {} dropped, {} duplicated, {} reordered, \
         {} timers fired",
        stats.events,
        stats.sent,
        stats.delivered,
        stats.dropped_random,
        stats.duplicated,
        stats.reordered,
        stats.timers_fired
    );
    assert_eq!(*answers, REQUESTS, "the retries carry every request through the drops");

    // The trace hash folds in every event of the run: it is the run's fingerprint.
    let hash = world.trace_hash();
    println!("trace hash {hash:016x}");

    // A run is a pure function of (configuration, seed): the same seed replays exactly,
    // drops, duplicates and latencies included.
    let again = run(seed).trace_hash();
    println!("same seed again: trace hash {again:016x}");
    assert_eq!(hash, again, "the same seed must give the same run");

    // Another seed is another run: other drops, other latencies, another fingerprint.
    let other = run(seed + 1).trace_hash();
    println!("seed {}: trace hash {other:016x}", seed + 1);
    assert_ne!(hash, other);
}
