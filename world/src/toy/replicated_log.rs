use std::rc::Rc;

use crate::{Context, NodeId, Process, TimerId};

/// The client.
pub const CLIENT: NodeId = NodeId(0);
/// The leader.
pub const LEADER: NodeId = NodeId(1);
/// The two followers.
pub const FOLLOWERS: [NodeId; 2] = [NodeId(2), NodeId(3)];
/// Bytes in every record the client appends.
pub const RECORD_BYTES: usize = 100;
/// The largest `in_flight_max` accepted (the size of the reorder windows).
pub const IN_FLIGHT_MAX_LIMIT: u64 = 1024;

/// A record's bytes, shared by every message and log that holds it: forwarding a record
/// clones a pointer, never the bytes.
pub type Record = Rc<[u8]>;

/// A toy replicated log on four nodes: node 0 a client, node 1 the leader, nodes 2 and 3
/// followers. The client appends `appends_total` records of `RECORD_BYTES` (100) with at
/// most `in_flight_max` unacknowledged at once; the leader appends each to its log,
/// forwards it to both followers, and acknowledges it to the client once both followers
/// have. Exactly six messages per append: no timers, no retries, so it needs a network
/// that does not drop.
///
/// The network reorders (every message draws its own latency), so each receiver takes
/// up what it hears in index order through a small window, as a sequence-numbered
/// protocol does. The windows assert the invariants: every index is heard exactly once
/// and never before it could have been sent; each follower's acknowledgements are taken
/// up in index order; the leader acknowledges only an index both followers have.
pub struct ReplicatedLog {
    role: Role,
}

/// What the nodes send each other.
#[derive(Clone, Debug, Hash)]
pub enum LogMsg {
    /// Client to leader: append this record at `index`.
    Append {
        /// The record's place in the log, from 0.
        index: u64,
        /// The record's bytes.
        record: Record,
    },
    /// Leader to follower: the record at `index`.
    Replicate {
        /// The record's place in the log, from 0.
        index: u64,
        /// The record's bytes.
        record: Record,
    },
    /// Follower to leader: my log holds `index` (and everything before it).
    Replicated {
        /// The newest index the follower's log holds.
        index: u64,
    },
    /// Leader to client: `index` is on all three nodes.
    Appended {
        /// The index now on the leader and both followers.
        index: u64,
    },
}

enum Role {
    Client(Client),
    Leader(Leader),
    Follower(Follower),
}

struct Client {
    appends_total: u64,
    in_flight_max: u64,
    /// The next index to append.
    next_index: u64,
    /// Acknowledgements, taken up in index order: `acks.next` appends are done.
    acks: Window<()>,
    acks_received: u64,
    /// Acknowledgements that arrived before an earlier one (held in the window).
    acks_early: u64,
}

struct Leader {
    log: Vec<Record>,
    /// Appends from the client, taken up in index order.
    appends: Window<Record>,
    /// Each follower's acknowledgements, taken up in index order: follower `f` holds
    /// the first `replicated[f].next` records.
    replicated: [Window<()>; 2],
    /// Indices acknowledged to the client: `0..committed`.
    committed: u64,
}

struct Follower {
    log: Vec<Record>,
    /// Records from the leader, taken up in index order.
    records: Window<Record>,
}

impl ReplicatedLog {
    /// The process for `node` (0 to 3). `in_flight_max` is between 1 and
    /// `IN_FLIGHT_MAX_LIMIT` (1024).
    pub fn new(node: NodeId, appends_total: u64, in_flight_max: u64) -> ReplicatedLog {
        assert!(
            (1..=IN_FLIGHT_MAX_LIMIT).contains(&in_flight_max),
            "in_flight_max {in_flight_max} is not between 1 and {IN_FLIGHT_MAX_LIMIT}"
        );
        let role = match node {
            CLIENT => Role::Client(Client {
                appends_total,
                in_flight_max,
                next_index: 0,
                acks: Window::new(in_flight_max),
                acks_received: 0,
                acks_early: 0,
            }),
            LEADER => Role::Leader(Leader {
                log: Vec::new(),
                appends: Window::new(in_flight_max),
                replicated: [Window::new(in_flight_max), Window::new(in_flight_max)],
                committed: 0,
            }),
            node if FOLLOWERS.contains(&node) => {
                Role::Follower(Follower { log: Vec::new(), records: Window::new(in_flight_max) })
            }
            node => panic!("the replicated log runs on nodes 0 to 3, not {node}"),
        };
        ReplicatedLog { role }
    }

    /// On the client: appends acknowledged, counted in index order.
    pub fn acked(&self) -> u64 {
        match &self.role {
            Role::Client(client) => client.acks.next,
            _ => 0,
        }
    }

    /// On the client: acknowledgements received (equal to `acked` once the run is over;
    /// an acknowledgement heard twice would have failed an assertion).
    pub fn acks_received(&self) -> u64 {
        match &self.role {
            Role::Client(client) => client.acks_received,
            _ => 0,
        }
    }

    /// On the client: acknowledgements that arrived ahead of an earlier one.
    pub fn acks_early(&self) -> u64 {
        match &self.role {
            Role::Client(client) => client.acks_early,
            _ => 0,
        }
    }

    /// The records in this node's log (empty on the client).
    pub fn log(&self) -> &[Record] {
        match &self.role {
            Role::Client(_) => &[],
            Role::Leader(leader) => &leader.log,
            Role::Follower(follower) => &follower.log,
        }
    }

    /// The record the client appends at `index`: its bytes name the index, so a record
    /// put at the wrong place in a log is seen.
    pub fn record(index: u64) -> Record {
        let mut bytes = [0u8; RECORD_BYTES];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&index.to_le_bytes()[..chunk.len()]);
        }
        Rc::from(bytes)
    }
}

/// Whether `record` holds the bytes [`ReplicatedLog::record`] makes for `index`.
fn names_index(record: &[u8], index: u64) -> bool {
    let bytes = index.to_le_bytes();
    record.len() == RECORD_BYTES && record.chunks(8).all(|chunk| *chunk == bytes[..chunk.len()])
}

impl Client {
    /// Sends appends while fewer than `in_flight_max` are unacknowledged.
    fn fill(&mut self, ctx: &mut Context<'_, ReplicatedLog>) {
        let limit = self.appends_total.min(self.acks.next + self.in_flight_max);
        while self.next_index < limit {
            let index = self.next_index;
            ctx.send(LEADER, LogMsg::Append { index, record: ReplicatedLog::record(index) });
            self.next_index += 1;
        }
    }

    fn on_appended(&mut self, ctx: &mut Context<'_, ReplicatedLog>, index: u64) {
        assert!(index < self.next_index, "append {index} acknowledged before it was sent");
        self.acks_received += 1;
        let before = self.acks.next;
        self.acks.insert(index, ());
        while self.acks.take().is_some() {}
        if self.acks.next == before {
            self.acks_early += 1;
        } else {
            self.fill(ctx);
        }
    }
}

impl Leader {
    fn on_append(&mut self, ctx: &mut Context<'_, ReplicatedLog>, index: u64, record: Record) {
        self.appends.insert(index, record);
        while let Some(record) = self.appends.take() {
            let index = self.log.len() as u64;
            debug_assert!(names_index(&record, index), "record {index} misplaced");
            for follower in FOLLOWERS {
                ctx.send(follower, LogMsg::Replicate { index, record: Rc::clone(&record) });
            }
            self.log.push(record);
        }
    }

    fn on_replicated(&mut self, ctx: &mut Context<'_, ReplicatedLog>, from: NodeId, index: u64) {
        let follower = usize::from(from == FOLLOWERS[1]);
        assert!(
            index < self.log.len() as u64,
            "{from} acknowledged record {index}; the log holds {}",
            self.log.len()
        );
        let acks = &mut self.replicated[follower];
        acks.insert(index, ());
        while acks.take().is_some() {}
        let both = self.replicated[0].next.min(self.replicated[1].next);
        while self.committed < both {
            let index = self.committed;
            assert!(
                index < self.replicated[0].next && index < self.replicated[1].next,
                "the leader acknowledges {index}, which a follower does not hold"
            );
            ctx.send(CLIENT, LogMsg::Appended { index });
            self.committed += 1;
        }
    }
}

impl Follower {
    fn on_replicate(&mut self, ctx: &mut Context<'_, ReplicatedLog>, index: u64, record: Record) {
        self.records.insert(index, record);
        while let Some(record) = self.records.take() {
            let index = self.log.len() as u64;
            debug_assert!(names_index(&record, index), "record {index} misplaced");
            self.log.push(record);
            ctx.send(LEADER, LogMsg::Replicated { index });
        }
    }
}

impl Process for ReplicatedLog {
    type Message = LogMsg;
    type Timer = ();

    fn start(&mut self, ctx: &mut Context<'_, Self>) {
        assert_eq!(ctx.nodes(), 4, "the replicated log needs a world of four nodes");
        if let Role::Client(client) = &mut self.role {
            client.fill(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: LogMsg) {
        match (&mut self.role, msg) {
            (Role::Leader(leader), LogMsg::Append { index, record }) if from == CLIENT => {
                leader.on_append(ctx, index, record);
            }
            (Role::Follower(follower), LogMsg::Replicate { index, record }) if from == LEADER => {
                follower.on_replicate(ctx, index, record);
            }
            (Role::Leader(leader), LogMsg::Replicated { index }) if FOLLOWERS.contains(&from) => {
                leader.on_replicated(ctx, from, index);
            }
            (Role::Client(client), LogMsg::Appended { index }) if from == LEADER => {
                client.on_appended(ctx, index);
            }
            (_, msg) => panic!("{} got {msg:?} from {from}", ctx.node()),
        }
    }

    fn on_timer(&mut self, _: &mut Context<'_, Self>, _: TimerId, (): ()) {}
}

/// Indices heard in any order, taken up in index order. Holds at most `span` indices
/// from `next` on: the sender never has more than that outstanding, so an index outside
/// is a bug (a duplicate, or one sent too early), and so is an index heard twice.
struct Window<T> {
    /// The next index to take up; everything below it was taken.
    next: u64,
    span: u64,
    /// Slot `index & mask` holds index `index` once heard.
    slots: Box<[Option<T>]>,
    mask: u64,
}

impl<T> Window<T> {
    fn new(span: u64) -> Window<T> {
        let size = span.next_power_of_two();
        Window { next: 0, span, slots: (0..size).map(|_| None).collect(), mask: size - 1 }
    }

    #[inline]
    fn insert(&mut self, index: u64, value: T) {
        assert!(index >= self.next, "index {index} heard again (already taken up)");
        assert!(
            index < self.next + self.span,
            "index {index} heard before {} was taken up (window of {})",
            self.next,
            self.span
        );
        let slot = &mut self.slots[(index & self.mask) as usize];
        assert!(slot.is_none(), "index {index} heard twice");
        *slot = Some(value);
    }

    /// The value at `next`, if it was heard; moves `next` on.
    #[inline]
    fn take(&mut self) -> Option<T> {
        let value = self.slots[(self.next & self.mask) as usize].take()?;
        self.next += 1;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Latency, NetworkConfig, World, WorldConfig};

    const APPENDS: u64 = 1_000;

    fn world(latency: Latency, in_flight_max: u64, seed: u64) -> World<ReplicatedLog> {
        let network = NetworkConfig { latency, ..NetworkConfig::default() };
        let config = WorldConfig { nodes: 4, network, ..WorldConfig::default() };
        let mut world =
            World::new(&config, seed, move |node| ReplicatedLog::new(node, APPENDS, in_flight_max))
                .expect("valid config");
        assert_eq!(world.run_to_quiescence(), None, "hit a limit");
        world
    }

    fn check(world: &World<ReplicatedLog>) {
        let client = world.process(CLIENT).unwrap();
        assert_eq!(client.acked(), APPENDS, "not every append was acknowledged");
        assert_eq!(client.acks_received(), APPENDS, "an append was acknowledged twice");
        let stats = world.stats();
        assert_eq!((stats.sent, stats.delivered), (6 * APPENDS, 6 * APPENDS));
        assert_eq!(world.in_flight(), 0);
        let expected: Vec<Record> = (0..APPENDS).map(ReplicatedLog::record).collect();
        for node in [LEADER, FOLLOWERS[0], FOLLOWERS[1]] {
            assert_eq!(world.process(node).unwrap().log(), expected, "{node}'s log");
        }
    }

    #[test]
    fn every_append_acknowledged_once_in_order_six_messages_each() {
        for in_flight_max in [1, 16] {
            // Every message draws its latency: links reorder, the windows restore order.
            let first = world(Latency::uniform(100_000, 1_000_000), in_flight_max, 7);
            check(&first);
            if in_flight_max > 1 {
                assert!(first.stats().reordered > 0, "the network never reordered");
                assert!(first.process(CLIENT).unwrap().acks_early() > 0);
            }
            let again = world(Latency::uniform(100_000, 1_000_000), in_flight_max, 7);
            check(&again);
            assert_eq!(first.trace_hash(), again.trace_hash(), "in_flight_max {in_flight_max}");
            assert_eq!(first.stats(), again.stats());

            // FIFO links (one fixed latency): every acknowledgement arrives in order.
            let fifo = world(Latency::fixed(300_000), in_flight_max, 7);
            check(&fifo);
            assert_eq!(fifo.stats().reordered, 0);
            assert_eq!(fifo.process(CLIENT).unwrap().acks_early(), 0);
        }
    }

    #[test]
    fn the_window_refuses_a_duplicate_and_an_early_index() {
        let duplicate = std::panic::catch_unwind(|| {
            let mut window = Window::new(4);
            window.insert(1, ());
            window.insert(1, ());
        });
        assert!(duplicate.is_err());
        let taken_again = std::panic::catch_unwind(|| {
            let mut window = Window::new(4);
            window.insert(0, ());
            assert_eq!(window.take(), Some(()));
            window.insert(0, ());
        });
        assert!(taken_again.is_err());
        let early = std::panic::catch_unwind(|| Window::new(4).insert(4, ()));
        assert!(early.is_err());
    }
}
