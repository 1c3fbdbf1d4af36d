//! The world: nodes running processes, a network between them, faults, and one event
//! queue that orders everything by (time, sequence number). Single-threaded and a pure
//! function of its configuration, its seed and the faults scheduled into it.

use std::hash::{Hash, Hasher};

use rand::Rng;
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::NodeId;
use crate::clock::Clock;
use crate::config::{ConfigError, WorldConfig};
use crate::disk::SyncTicket;

use crate::disk::{DiskFault, SimDisk};
use crate::fault::Fault;
use crate::limits::{Limit, Limits};
use crate::network::{Chance, Network};
use crate::process::{Context, Process, TimerId, TimerSlab};
use crate::queue::EventQueue;
use crate::rng::{SimRng, StreamId, stream};
use crate::trace::{DropReason, Trace, TraceEvent};

/// Whether a node is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeStatus {
    /// Running: handles messages, timers and sync completions as they come.
    Up,
    /// Handles nothing; its messages and timers wait for it.
    Paused,
    /// No process; messages to it are lost.
    Crashed,
}

/// What happened in a run, by kind. Every count is also visible in the trace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Events the world processed: everything taken off the queue (deliveries, also
    /// those dropped or held back on arrival, timers, sync completions, faults).
    pub events: u64,
    /// Messages processes sent (a duplicate is not a second send).
    pub sent: u64,
    /// Messages handed to their receiver's process (each copy counts).
    pub delivered: u64,
    /// Messages the network's random drop took (`NetworkConfig::drop_probability`).
    pub dropped_random: u64,
    /// Messages lost to a cut link, at send or on arrival.
    pub dropped_partitioned: u64,
    /// Messages that arrived at a crashed node, or were waiting for a paused node when
    /// it crashed.
    pub dropped_node_down: u64,
    /// Messages refused because they would have passed `Limits::in_flight_max`.
    pub dropped_limit: u64,
    /// Messages a link's own loss took (a lossy link, a burst).
    pub dropped_link_loss: u64,
    /// Messages whose connection closed while they were in flight.
    pub dropped_connection_closed: u64,
    /// Second copies the network made.
    pub duplicated: u64,
    /// Deliveries that overtook an earlier message on the same link.
    pub reordered: u64,
    /// Deliveries held back by a clogged link.
    pub clog_delayed: u64,
    /// Timers that fired into their process (not the cancelled or stale ones).
    pub timers_fired: u64,
    /// Processes built and started: one per node at boot, one per restart.
    pub starts: u64,
    /// Crashes, by a fault or by a process halting itself.
    pub crashes: u64,
    /// Up nodes paused.
    pub pauses: u64,
    /// Paused nodes resumed (by `Fault::Resume` or `Fault::HealAll`).
    pub resumes: u64,
    /// Partitions applied (`Fault::Partition`).
    pub partitions: u64,
    /// Network heals (`Fault::HealNetwork`, `Fault::HealAll`).
    pub heals: u64,
    /// Links clogged (`Fault::Clog`).
    pub clogs: u64,
    /// Operator commands a process took (`Fault::Operator`).
    pub operator_actions: u64,
    /// Links made lossy (a burst is a link that loses everything for a while).
    pub link_losses: u64,
    /// Clock jumps (`Fault::ClockJump`).
    pub clock_jumps: u64,
    /// Faults that had nothing to act on (a restart of a node that is up, ...).
    pub faults_ignored: u64,
    /// Syncs that completed and succeeded, as their process was told.
    pub syncs_completed: u64,
    /// Syncs that completed and failed, as their process was told.
    pub syncs_failed: u64,
    /// Unsynced writes crashes lost, over every crash (`CrashDamage::writes_lost`).
    pub disk_writes_lost: u64,
    /// Unsynced writes crashes tore, over every crash (`CrashDamage::writes_torn`).
    pub disk_writes_torn: u64,
    /// Disk faults injected (`Fault::Disk`), whether or not they found a target.
    pub disk_faults: u64,
    /// Crashes that tore a log segment's last batch (an armed `TornTail`).
    pub disk_tails_torn: u64,
    /// Batch header fields struck by a flipped bit.
    pub disk_header_flips: u64,
    /// Checkpoint files struck by a flipped bit.
    pub disk_checkpoint_flips: u64,
    /// Processes that stopped themselves (`Context::halt`).
    pub halts: u64,
}

impl Stats {
    /// Messages dropped, for every reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_random
            + self.dropped_partitioned
            + self.dropped_node_down
            + self.dropped_limit
            + self.dropped_link_loss
            + self.dropped_connection_closed
    }
}

pub(crate) struct Delivery<M> {
    from: NodeId,
    to: NodeId,
    msg_id: u64,
    digest: u64,
    /// The link's connection when it was sent (see `NetworkConfig::connections`).
    connection: u32,
    msg: M,
}

pub(crate) enum Event<M> {
    Deliver(Delivery<M>),
    Timer { node: NodeId, id: TimerId },
    SyncDone { node: NodeId, ticket: SyncTicket },
    Fault(Fault),
}

/// The parts of the world a process's context reaches: everything but the nodes.
pub(crate) struct Core<P: Process> {
    pub(crate) nodes: u32,
    now_ns: u64,
    queue: EventQueue<Event<P::Message>>,
    network: Network,
    trace: Trace,
    stats: Stats,
    limits: Limits,
    next_msg_id: u64,
    in_flight: u64,
    stopped: Option<Limit>,
    /// Set by `Context::halt`: crash the node once its handler returns.
    pub(crate) halt_requested: bool,
    restart_after_halt_ns: u64,
    digest_scratch: Vec<u8>,
}

/// A message's digest for the trace: xxh3 over its `Hash` encoding. The encoding is
/// gathered in `scratch` and hashed in one pass: the same value as streaming it into
/// xxh3, without the streaming state's cost for every small field.
fn digest_of<M: Hash>(scratch: &mut Vec<u8>, msg: &M) -> u64 {
    scratch.clear();
    msg.hash(&mut Gather(scratch));
    xxh3_64(scratch)
}

/// A `Hasher` that only gathers the bytes written to it.
struct Gather<'a>(&'a mut Vec<u8>);

impl Hasher for Gather<'_> {
    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("digest_of hashes the gathered bytes itself")
    }
}

impl<P: Process> Core<P> {
    fn stop(&mut self, limit: Limit) {
        if self.stopped.is_none() {
            self.stopped = Some(limit);
            self.trace.record(self.now_ns, TraceEvent::LimitReached { limit });
        }
    }

    pub(crate) fn send(&mut self, now_ns: u64, from: NodeId, to: NodeId, msg: P::Message) {
        let msg_id = self.next_msg_id;
        self.next_msg_id += 1;
        let digest = digest_of(&mut self.digest_scratch, &msg);
        self.stats.sent += 1;
        let label = self.trace.keeping().then(|| P::describe(&msg).into_boxed_str());
        self.trace.record_labeled(now_ns, TraceEvent::Send { from, to, msg_id, digest }, label);
        let drop = |core: &mut Self, reason| {
            core.trace.record(now_ns, TraceEvent::Drop { from, to, msg_id, reason });
        };
        if self.network.is_cut(from, to) {
            self.stats.dropped_partitioned += 1;
            return drop(self, DropReason::Partitioned);
        }
        if self.network.link_loses(from, to, now_ns) {
            self.stats.dropped_link_loss += 1;
            return drop(self, DropReason::LinkLoss);
        }
        if self.network.drop.happens(&mut self.network.rng) {
            self.stats.dropped_random += 1;
            return drop(self, DropReason::Random);
        }
        let connection = self.network.connection(from, to);
        let duplicate = self.network.duplicate.happens(&mut self.network.rng);
        let copies = 1 + u64::from(duplicate);
        if self.in_flight + copies > self.limits.in_flight_max {
            self.stats.dropped_limit += 1;
            drop(self, DropReason::LimitReached);
            return self.stop(Limit::InFlight { max: self.limits.in_flight_max });
        }
        self.in_flight += copies;
        if duplicate {
            let latency_ns = self.network.sample_latency_ns(from, to);
            let copy = Delivery { from, to, msg_id, digest, connection, msg: msg.clone() };
            self.queue.push(now_ns + latency_ns, Event::Deliver(copy));
            self.stats.duplicated += 1;
            self.trace.record(now_ns, TraceEvent::Duplicate { from, to, msg_id });
        }
        let latency_ns = self.network.sample_latency_ns(from, to);
        self.queue.push(
            now_ns + latency_ns,
            Event::Deliver(Delivery { from, to, msg_id, digest, connection, msg }),
        );
    }

    pub(crate) fn schedule_timer(
        &mut self,
        deadline_ns: u64,
        node: NodeId,
        id: TimerId,
        live: u64,
    ) {
        if live > self.limits.timers_per_node_max {
            self.stop(Limit::Timers { node, max: self.limits.timers_per_node_max });
        }
        self.queue.push(deadline_ns, Event::Timer { node, id });
    }
}

struct Node<P: Process> {
    process: Option<P>,
    status: NodeStatus,
    clock: Clock,
    rng: SimRng,
    disk: SimDisk,
    disk_rng: SimRng,
    timers: TimerSlab<P::Timer>,
    /// Events that came due while the node was paused, in the order they came due.
    backlog: Vec<Event<P::Message>>,
}

/// Why `World::run_until_condition` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The condition held.
    Condition,
    /// The next event lies past the deadline.
    Deadline,
    /// No event is left: the condition will never hold by itself.
    Quiescent,
    /// A limit stopped the run.
    Limit(Limit),
}

/// Builds a node's process: at boot, and again at every restart after a crash.
pub type Factory<P> = Box<dyn FnMut(NodeId) -> P>;

/// A simulated world of nodes running `P`.
///
/// Faults are scheduled at simulated times, and a run goes event by event until a
/// deadline, a condition, quiescence or a limit:
///
/// ```
/// use logjam_world::toy::PingPong;
/// use logjam_world::{Fault, NodeId, RunEnd, World, WorldConfig};
///
/// // 100 rounds; node 0 re-sends an unanswered ping every 5 ms of its own time.
/// let config = WorldConfig::with_nodes(2);
/// let mut world = World::new(&config, 42, |_| PingPong::new(100, Some(5_000_000)))
///     .expect("a valid config");
/// world.schedule(10_000_000, Fault::Crash { node: NodeId(1) }).expect("a valid fault");
/// world.schedule(30_000_000, Fault::Restart { node: NodeId(1) }).expect("a valid fault");
///
/// let all_rounds = |world: &World<PingPong>| {
///     world.process(NodeId(0)).is_some_and(|node| node.rounds_done() == 100)
/// };
/// assert_eq!(world.run_until_condition(1_000_000_000, all_rounds), RunEnd::Condition);
/// assert_eq!((world.stats().crashes, world.stats().starts), (1, 3));
/// ```
pub struct World<P: Process> {
    core: Core<P>,
    nodes: Vec<Node<P>>,
    factory: Factory<P>,
}

impl<P: Process> World<P> {
    /// Builds and boots a world: every node's process is built and started at time 0,
    /// in node order. A bad configuration is refused here, never discovered mid-run.
    pub fn new(
        config: &WorldConfig,
        seed: u64,
        factory: impl FnMut(NodeId) -> P + 'static,
    ) -> Result<World<P>, ConfigError> {
        config.validate()?;
        let mut clock_rng = stream(seed, StreamId::Clocks);
        let nodes = (0..config.nodes)
            .map(|index| Node {
                process: None,
                status: NodeStatus::Crashed,
                clock: Clock::draw(&config.clocks, &mut clock_rng),
                rng: stream(seed, StreamId::Node(NodeId(index))),
                disk: SimDisk::new(config.disk.clone()),
                disk_rng: stream(seed, StreamId::Disk(NodeId(index))),
                timers: TimerSlab::new(),
                backlog: Vec::new(),
            })
            .collect();
        let core = Core {
            nodes: config.nodes,
            now_ns: 0,
            queue: EventQueue::new(),
            network: Network::new(&config.network, config.nodes, stream(seed, StreamId::Network)),
            trace: Trace::new(config.limits.trace_kept_max),
            stats: Stats::default(),
            limits: config.limits.clone(),
            next_msg_id: 0,
            in_flight: 0,
            stopped: None,
            halt_requested: false,
            restart_after_halt_ns: config.restart_after_halt_ns,
            digest_scratch: Vec::new(),
        };
        let mut world = World { core, nodes, factory: Box::new(factory) };
        for index in 0..config.nodes {
            world.boot(NodeId(index));
        }
        Ok(world)
    }

    /// Schedules a fault at simulated time `at_ns` (not in the past).
    pub fn schedule(&mut self, at_ns: u64, fault: Fault) -> Result<(), ConfigError> {
        fault.validate(self.core.nodes)?;
        if at_ns < self.core.now_ns {
            return Err(ConfigError::FaultInPast { at_ns, now_ns: self.core.now_ns });
        }
        self.core.queue.push(at_ns, Event::Fault(fault));
        Ok(())
    }

    /// Processes the next event. False when there is none or a limit stopped the run.
    pub fn step(&mut self) -> bool {
        if self.core.stopped.is_some() {
            return false;
        }
        let Some(at_ns) = self.core.queue.peek_time_ns() else { return false };
        if at_ns > self.core.limits.time_max_ns {
            self.core.stop(Limit::Time { max_ns: self.core.limits.time_max_ns });
            return false;
        }
        if self.core.stats.events >= self.core.limits.events_max {
            self.core.stop(Limit::Events { max: self.core.limits.events_max });
            return false;
        }
        let (at_ns, event) = self.core.queue.pop().expect("peeked");
        debug_assert!(at_ns >= self.core.now_ns, "time went backwards");
        self.core.now_ns = at_ns;
        self.core.stats.events += 1;
        match event {
            Event::Deliver(delivery) => self.deliver(delivery),
            Event::Timer { node, id } => self.fire(node, id),
            Event::SyncDone { node, ticket } => self.synced(node, ticket),
            Event::Fault(fault) => self.apply(fault),
        }
        true
    }

    /// Runs every event up to and including `deadline_ns`, then moves time there.
    /// Returns the limit that stopped the run, if one did.
    pub fn run_until(&mut self, deadline_ns: u64) -> Option<Limit> {
        while self.core.queue.peek_time_ns().is_some_and(|at_ns| at_ns <= deadline_ns) {
            if !self.step() {
                break;
            }
        }
        if self.core.stopped.is_none() {
            if deadline_ns > self.core.limits.time_max_ns {
                self.core.stop(Limit::Time { max_ns: self.core.limits.time_max_ns });
            } else {
                self.core.now_ns = self.core.now_ns.max(deadline_ns);
            }
        }
        self.core.stopped
    }

    /// Runs event by event until `done` holds of the world (asked before the first
    /// event and after each one), time would pass `deadline_ns`, or a limit stops the
    /// run: a test waits for a condition ("every node agrees") instead of guessing a
    /// duration. Time does not move past the last event run.
    pub fn run_until_condition(
        &mut self,
        deadline_ns: u64,
        mut done: impl FnMut(&World<P>) -> bool,
    ) -> RunEnd {
        loop {
            if done(self) {
                return RunEnd::Condition;
            }
            if let Some(limit) = self.core.stopped {
                return RunEnd::Limit(limit);
            }
            match self.core.queue.peek_time_ns() {
                Some(at_ns) if at_ns <= deadline_ns => {
                    if !self.step() {
                        // A limit stopped it (asked at the top of the loop).
                        continue;
                    }
                }
                Some(_) => return RunEnd::Deadline,
                None => return RunEnd::Quiescent,
            }
        }
    }

    /// Runs until no event is left or a limit stops the run.
    pub fn run_to_quiescence(&mut self) -> Option<Limit> {
        while self.step() {}
        self.core.stopped
    }

    /// Calls into the process of an up node at the current time, as if an outside input
    /// arrived (a client's command). `None` if the node is crashed or paused.
    pub fn with_process<R>(
        &mut self,
        node: NodeId,
        f: impl FnOnce(&mut P, &mut Context<'_, P>) -> R,
    ) -> Option<R> {
        (self.nodes.get(node.index())?.status == NodeStatus::Up).then(|| self.call(node, f))
    }

    fn call<R>(&mut self, node: NodeId, f: impl FnOnce(&mut P, &mut Context<'_, P>) -> R) -> R {
        let Node { process, clock, rng, disk, timers, .. } = &mut self.nodes[node.index()];
        let process = process.as_mut().expect("an up node has a process");
        let mut ctx = Context {
            node,
            now_ns: self.core.now_ns,
            clock,
            rng,
            disk,
            timers,
            core: &mut self.core,
        };
        let result = f(process, &mut ctx);
        if std::mem::take(&mut self.core.halt_requested) {
            self.core.stats.halts += 1;
            self.crash(node);
            // A supervisor (systemd, Kubernetes) starts the process again.
            let at_ns = self.core.now_ns + self.core.restart_after_halt_ns;
            self.core.queue.push(at_ns, Event::Fault(Fault::Restart { node }));
        } else {
            self.schedule_syncs(node);
        }
        result
    }

    /// Syncs the process asked for complete after the disk's latency.
    fn schedule_syncs(&mut self, node: NodeId) {
        let state = &mut self.nodes[node.index()];
        if !state.disk.has_requested() {
            return;
        }
        let [min_ns, max_ns] = state.disk.config().sync_latency_ns;
        for ticket in state.disk.take_requested() {
            let latency_ns = state.disk_rng.random_range(min_ns..=max_ns);
            self.core.queue.push(self.core.now_ns + latency_ns, Event::SyncDone { node, ticket });
        }
    }

    fn synced(&mut self, node: NodeId, ticket: SyncTicket) {
        let state = &mut self.nodes[node.index()];
        match state.status {
            NodeStatus::Paused => return state.backlog.push(Event::SyncDone { node, ticket }),
            NodeStatus::Crashed => return,
            NodeStatus::Up => {}
        }
        // Unknown: asked for before a crash; that incarnation is gone.
        let Some(result) = state.disk.complete_sync(ticket) else { return };
        let ok = result.is_ok();
        if ok {
            self.core.stats.syncs_completed += 1;
        } else {
            self.core.stats.syncs_failed += 1;
        }
        self.core
            .trace
            .record(self.core.now_ns, TraceEvent::SyncDone { node, ticket: ticket.0, ok });
        self.call(node, |process, ctx| process.on_synced(ctx, ticket, result));
    }

    fn boot(&mut self, node: NodeId) {
        let state = &mut self.nodes[node.index()];
        debug_assert!(state.process.is_none() && state.timers.live() == 0);
        state.process = Some((self.factory)(node));
        state.status = NodeStatus::Up;
        self.core.stats.starts += 1;
        self.core.trace.record(self.core.now_ns, TraceEvent::Start { node });
        self.call(node, |process, ctx| process.start(ctx));
    }

    fn deliver(&mut self, delivery: Delivery<P::Message>) {
        let Delivery { from, to, msg_id, digest, connection, .. } = delivery;
        let now_ns = self.core.now_ns;
        let node = &mut self.nodes[to.index()];
        let network = &self.core.network;
        let reason = match node.status {
            NodeStatus::Paused => return node.backlog.push(Event::Deliver(delivery)),
            NodeStatus::Crashed => Some(DropReason::NodeDown),
            NodeStatus::Up if network.is_cut(from, to) => Some(DropReason::Partitioned),
            NodeStatus::Up if network.connections && network.connection(from, to) != connection => {
                Some(DropReason::ConnectionClosed)
            }
            NodeStatus::Up => None,
        };
        if let Some(reason) = reason {
            self.core.in_flight -= 1;
            match reason {
                DropReason::NodeDown => self.core.stats.dropped_node_down += 1,
                DropReason::ConnectionClosed => self.core.stats.dropped_connection_closed += 1,
                _ => self.core.stats.dropped_partitioned += 1,
            }
            return self.core.trace.record(now_ns, TraceEvent::Drop { from, to, msg_id, reason });
        }
        let clogged_until_ns = self.core.network.clogged_until_ns(from, to);
        if clogged_until_ns > now_ns {
            self.core.stats.clog_delayed += 1;
            return self.core.queue.push(clogged_until_ns, Event::Deliver(delivery));
        }
        self.core.in_flight -= 1;
        if self.core.network.note_delivery(from, to, msg_id) {
            self.core.stats.reordered += 1;
        }
        self.core.stats.delivered += 1;
        let label = self.core.trace.keeping().then(|| P::describe(&delivery.msg).into_boxed_str());
        let deliver = TraceEvent::Deliver { from, to, msg_id, digest };
        self.core.trace.record_labeled(now_ns, deliver, label);
        self.call(to, |process, ctx| process.on_message(ctx, from, delivery.msg));
    }

    fn fire(&mut self, node: NodeId, id: TimerId) {
        let state = &mut self.nodes[node.index()];
        match state.status {
            NodeStatus::Paused => return state.backlog.push(Event::Timer { node, id }),
            NodeStatus::Crashed => return debug_assert!(state.timers.take(id).is_none()),
            NodeStatus::Up => {}
        }
        // A cancelled timer, or one set before a crash, is stale: nothing happens.
        let Some(payload) = state.timers.take(id) else { return };
        self.core.stats.timers_fired += 1;
        self.core.trace.record(self.core.now_ns, TraceEvent::TimerFired { node, timer: id });
        self.call(node, |process, ctx| process.on_timer(ctx, id, payload));
    }

    fn apply(&mut self, fault: Fault) {
        let now_ns = self.core.now_ns;
        let tag = fault.tag();
        let ignored = |world: &mut Self, node: NodeId| {
            world.core.stats.faults_ignored += 1;
            world.core.trace.record(now_ns, TraceEvent::Ignored { node, fault_tag: tag });
        };
        match fault {
            Fault::Crash { node } => match self.nodes[node.index()].status {
                NodeStatus::Crashed => ignored(self, node),
                _ => self.crash(node),
            },
            Fault::Restart { node } => match self.nodes[node.index()].status {
                NodeStatus::Crashed => self.boot(node),
                _ => ignored(self, node),
            },
            Fault::Pause { node } => match self.nodes[node.index()].status {
                NodeStatus::Up => {
                    self.nodes[node.index()].status = NodeStatus::Paused;
                    self.core.stats.pauses += 1;
                    self.core.trace.record(now_ns, TraceEvent::Pause { node });
                }
                _ => ignored(self, node),
            },
            Fault::Resume { node } => match self.nodes[node.index()].status {
                NodeStatus::Paused => self.resume(node),
                _ => ignored(self, node),
            },
            Fault::Partition(partition) => {
                let network = &mut self.core.network;
                for from in 0..self.core.nodes {
                    for to in 0..self.core.nodes {
                        network.set_cut(NodeId(from), NodeId(to), false);
                    }
                }
                for (from, to) in Fault::partition_cuts(&partition, self.core.nodes) {
                    network.set_cut(from, to, true);
                }
                self.core.stats.partitions += 1;
                self.record_partition();
            }
            Fault::LinkLoss { from, to, drop_probability, duration_ns } => {
                let until_ns = now_ns.saturating_add(duration_ns);
                let loss = Chance::new(drop_probability);
                self.core.network.set_loss(from, to, loss, until_ns);
                self.core.stats.link_losses += 1;
                let loss_ppm = loss.parts_per_million();
                self.core
                    .trace
                    .record(now_ns, TraceEvent::LinkLoss { from, to, until_ns, loss_ppm });
            }
            Fault::Operator { node, action } => match self.nodes[node.index()].status {
                NodeStatus::Up => {
                    self.core.stats.operator_actions += 1;
                    self.core.trace.record(now_ns, TraceEvent::Operator { node, action });
                    self.call(node, |process, ctx| process.on_operator(ctx, action));
                }
                _ => ignored(self, node),
            },
            Fault::Clog { from, to, duration_ns } => {
                let until_ns = now_ns.saturating_add(duration_ns);
                self.core.network.clog(from, to, until_ns);
                self.core.stats.clogs += 1;
                self.core.trace.record(now_ns, TraceEvent::Clog { from, to, until_ns });
            }
            Fault::ClockJump { node, forward_ns } => {
                self.nodes[node.index()].clock.jump_forward(forward_ns);
                self.core.stats.clock_jumps += 1;
                self.core.trace.record(now_ns, TraceEvent::ClockJump { node, forward_ns });
            }
            Fault::NetworkFaults { drop_probability, duplicate_probability } => {
                self.set_network_faults(
                    Chance::new(drop_probability),
                    Chance::new(duplicate_probability),
                );
            }
            Fault::HealNetwork => self.heal_network(),
            Fault::Disk { node, disk_fault } => {
                let state = &mut self.nodes[node.index()];
                let detail = state.disk.inject(disk_fault, &mut state.disk_rng);
                self.core.stats.disk_faults += 1;
                let struck = detail != u64::MAX;
                match disk_fault {
                    DiskFault::BatchHeader { .. } => {
                        self.core.stats.disk_header_flips += u64::from(struck);
                    }
                    DiskFault::Checkpoint { .. } => {
                        self.core.stats.disk_checkpoint_flips += u64::from(struck);
                    }
                    _ => {}
                }
                self.core.trace.record(
                    now_ns,
                    TraceEvent::DiskFault { node, fault_tag: disk_fault.tag(), detail },
                );
            }
            Fault::HealAll => {
                self.heal_network();
                self.set_network_faults(Chance::new(0.0), Chance::new(0.0));
                for index in 0..self.core.nodes {
                    let node = NodeId(index);
                    let state = &mut self.nodes[node.index()];
                    state.disk.inject(crate::disk::DiskFault::Heal, &mut state.disk_rng);
                    match self.nodes[node.index()].status {
                        NodeStatus::Crashed => self.boot(node),
                        NodeStatus::Paused => self.resume(node),
                        NodeStatus::Up => {}
                    }
                }
            }
        }
    }

    fn crash(&mut self, node: NodeId) {
        let now_ns = self.core.now_ns;
        let state = &mut self.nodes[node.index()];
        state.process = None;
        state.status = NodeStatus::Crashed;
        state.timers.clear();
        self.core.network.close_connections(node);
        let damage = state.disk.crash(&mut state.disk_rng);
        self.core.stats.crashes += 1;
        self.core.stats.disk_writes_lost += damage.writes_lost;
        self.core.stats.disk_writes_torn += damage.writes_torn;
        self.core.stats.disk_tails_torn += u64::from(damage.tail_torn);
        self.core.trace.record(now_ns, TraceEvent::Crash { node });
        self.core.trace.record(now_ns, TraceEvent::DiskCrash { node, damage });
        for event in std::mem::take(&mut state.backlog) {
            if let Event::Deliver(Delivery { from, to, msg_id, .. }) = event {
                self.core.in_flight -= 1;
                self.core.stats.dropped_node_down += 1;
                let reason = DropReason::NodeDown;
                self.core.trace.record(now_ns, TraceEvent::Drop { from, to, msg_id, reason });
            }
        }
    }

    fn resume(&mut self, node: NodeId) {
        let state = &mut self.nodes[node.index()];
        state.status = NodeStatus::Up;
        self.core.stats.resumes += 1;
        self.core.trace.record(self.core.now_ns, TraceEvent::Resume { node });
        // The backlog is taken up now, in the order it came due.
        for event in std::mem::take(&mut state.backlog) {
            self.core.queue.push(self.core.now_ns, event);
        }
    }

    fn heal_network(&mut self) {
        self.core.network.heal();
        self.core.stats.heals += 1;
        self.record_partition();
    }

    fn record_partition(&mut self) {
        let links_cut = self.core.network.links_cut();
        let links_digest = self.core.network.links_digest();
        self.core.trace.record(self.core.now_ns, TraceEvent::Partition { links_cut, links_digest });
    }

    fn set_network_faults(&mut self, drop: Chance, duplicate: Chance) {
        self.core.network.drop = drop;
        self.core.network.duplicate = duplicate;
        let (drop_ppm, duplicate_ppm) = (drop.parts_per_million(), duplicate.parts_per_million());
        self.core
            .trace
            .record(self.core.now_ns, TraceEvent::NetworkFaults { drop_ppm, duplicate_ppm });
    }

    /// Simulated time now.
    pub fn now_ns(&self) -> u64 {
        self.core.now_ns
    }

    /// The node's local clock reading now.
    pub fn local_now_ns(&self, node: NodeId) -> u64 {
        self.nodes[node.index()].clock.local_ns(self.core.now_ns)
    }

    /// How many nodes the world has (ids `0..nodes`).
    pub fn nodes(&self) -> u32 {
        self.core.nodes
    }

    /// Whether the node is up, paused or crashed.
    pub fn status(&self, node: NodeId) -> NodeStatus {
        self.nodes[node.index()].status
    }

    /// The node's process, if it is not crashed.
    pub fn process(&self, node: NodeId) -> Option<&P> {
        self.nodes[node.index()].process.as_ref()
    }

    /// The node's disk, which outlives its process's crashes.
    pub fn disk(&self, node: NodeId) -> &SimDisk {
        &self.nodes[node.index()].disk
    }

    /// What happened so far, by kind.
    pub fn stats(&self) -> &Stats {
        &self.core.stats
    }

    /// Messages on the wire now, including those held for paused nodes.
    pub fn in_flight(&self) -> u64 {
        self.core.in_flight
    }

    /// The limit that stopped the run, if one did.
    pub fn stopped(&self) -> Option<Limit> {
        self.core.stopped
    }

    /// The trace: its hash, its event count, and the window of events it keeps when
    /// `Limits::trace_kept_max` asks for one.
    pub fn trace(&self) -> &Trace {
        &self.core.trace
    }

    /// The run's fingerprint so far.
    pub fn trace_hash(&self) -> u64 {
        self.core.trace.hash()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest is xxh3 of exactly the bytes `Hash` streams (the trace hashes of every
    /// recorded run depend on it): the same as xxh3's own streaming `Hasher`.
    #[test]
    fn digest_is_xxh3_of_the_hash_stream() {
        #[derive(Hash)]
        enum Sample {
            Small { a: u8, b: u16, c: u32, d: u64, e: usize, f: bool, g: char },
            Signed(i8, i16, i32, i64, isize, i128, u128),
            Bytes(Vec<Vec<u8>>, String, Option<u32>, Box<[u64]>),
        }
        let samples = [
            Sample::Small { a: 1, b: 2, c: 3, d: 4, e: 5, f: true, g: 'x' },
            Sample::Signed(-1, -2, -3, -4, -5, -6, 7),
            Sample::Bytes(vec![vec![1, 2, 3], vec![]], "text".to_owned(), Some(9), Box::new([8])),
        ];
        let mut scratch = Vec::new();
        for sample in &samples {
            let mut streaming = xxhash_rust::xxh3::Xxh3::new();
            sample.hash(&mut streaming);
            assert_eq!(digest_of(&mut scratch, sample), streaming.finish());
        }
    }

    #[test]
    fn run_until_condition_says_why_it_stopped() {
        use crate::toy::PingPong;
        let config = WorldConfig::with_nodes(2);
        let rounds_done =
            |world: &World<PingPong>| world.process(NodeId(0)).map_or(0, |node| node.rounds_done());
        let cases: [(u64, u64, RunEnd); 3] = [
            // (rounds, wanted, deadline) -> why it stopped
            (10, 3, RunEnd::Condition),
            (10, 11, RunEnd::Quiescent),
            (u64::MAX, u64::MAX, RunEnd::Deadline),
        ];
        for (rounds, wanted, expected) in cases {
            let mut world = World::new(&config, 1, move |_| PingPong::new(rounds, None)).unwrap();
            let end = world.run_until_condition(50_000_000, |world| rounds_done(world) >= wanted);
            assert_eq!(end, expected, "{rounds} rounds, waiting for {wanted}");
            if end == RunEnd::Condition {
                // Stopped at the first event that made it hold, not later.
                assert_eq!(rounds_done(&world), wanted);
            }
            assert!(world.now_ns() <= 50_000_000);
        }
        let limits = Limits { events_max: 5, ..Limits::default() };
        let config = WorldConfig { limits, ..WorldConfig::with_nodes(2) };
        let mut world = World::new(&config, 1, |_| PingPong::new(u64::MAX, None)).unwrap();
        let end = world.run_until_condition(u64::MAX, |_| false);
        assert_eq!(end, RunEnd::Limit(Limit::Events { max: 5 }));
    }
}
