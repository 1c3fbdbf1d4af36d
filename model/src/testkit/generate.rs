//! A correct replicated log under random concurrent clients, recorded as a history.
//!
//! Each partition has replicas, one of them the leader in the current epoch. Every
//! replica is in sync (clean elections only), so the leader's high watermark is the
//! lowest log end among them and any replica may take over without losing a committed
//! record. A step of the loop does one thing, chosen at random: a producer invokes,
//! appends, waits for its record to commit, or gives up; a consumer polls committed
//! records or seeks; a follower fetches; a client that gave up has its request land
//! late (or never); rarely, a leader changes or a node restarts.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::history::{
    Closing, EventType, Header, History, HistoryBuilder, Isolation, Op, Protocol, ProtocolEvent,
    Record, Replica,
};
use crate::log::PartitionLog;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    pub seed: u64,
    /// Client operations invoked before the quiet phase (final reads come on top).
    pub ops: usize,
    pub partitions: u32,
    /// Replicas per partition, on nodes `0..replicas`.
    pub replicas: u32,
    pub producers: u32,
    pub consumers: u32,
    /// The chance, at each chance it gets, that a client gives up (`info`).
    pub info_probability: f64,
    /// The chance that a send or poll is refused outright (`fail`).
    pub fail_probability: f64,
    /// Leader changes and node restarts.
    pub faults: bool,
    /// Closing lines with every replica's final log.
    pub final_logs: bool,
    /// Closing lines with protocol events.
    pub protocol_events: bool,
    /// Whether a reader polls every partition from 0 to the end in the quiet phase
    /// (always done without final logs, or acknowledged sends would go unseen).
    pub final_reads: bool,
    pub poll_records_max: usize,
    /// The header's configuration. A correct log keeps every promise, so any will do.
    pub config: Config,
}

impl GenConfig {
    /// A mix of everything: 2 partitions of 3 replicas, 4 producers, 3 consumers, 5%
    /// indeterminate and 2% failed operations, faults on, closing lines on.
    pub fn new(seed: u64, ops: usize) -> GenConfig {
        GenConfig {
            seed,
            ops,
            partitions: 2,
            replicas: 3,
            producers: 4,
            consumers: 3,
            info_probability: 0.05,
            fail_probability: 0.02,
            faults: true,
            final_logs: true,
            protocol_events: true,
            final_reads: false,
            poll_records_max: 8,
            config: Config::default(),
        }
    }
}

/// Generates the history `config` describes.
pub fn generate(config: &GenConfig) -> History {
    assert!(
        config.partitions >= 1 && config.replicas >= 1,
        "a log needs a partition and a replica"
    );
    assert!(config.producers + config.consumers >= 1, "someone must do something");
    let mut generator = Generator::new(config);
    generator.start();
    while generator.invoked < config.ops {
        generator.step();
    }
    generator.quiet();
    generator.finish()
}

struct ReplicaState {
    /// Value numbers (`v{n}`), each in the epoch it was written.
    log: PartitionLog<u64>,
    /// The high watermark last reported (it starts lower after a restart).
    hw_reported: u64,
}

struct PartitionState {
    replicas: Vec<ReplicaState>,
    leader: usize,
    epoch: u64,
}

#[derive(Clone, Copy)]
enum Stage {
    /// Not yet at the leader.
    Unsent,
    /// In the leader's log at this offset, waiting to commit.
    Appended(u64),
    /// Truncated away by a leader change.
    Lost,
}

#[derive(Clone, Copy)]
enum Producer {
    Idle,
    Sending { value: u64, part: u32, stage: Stage },
}

enum Consumer {
    Idle,
    Polling { part: u32, from: u64 },
    Assigning { partitions: Vec<u32>, positions: Vec<u64> },
}

struct Generator<'c> {
    config: &'c GenConfig,
    rng: ChaCha8Rng,
    t_ns: u64,
    builder: HistoryBuilder,
    protocol: Vec<Protocol>,
    parts: Vec<PartitionState>,
    producers: Vec<Producer>,
    consumers: Vec<(Consumer, Vec<u64>)>,
    /// Requests of clients that gave up, still on their way: (partition, value).
    zombies: Vec<(u32, u64)>,
    next_value: u64,
    invoked: usize,
}

fn key(value: u64) -> Option<String> {
    // Some records have no key, as Kafka allows.
    (value % 7 != 0).then(|| format!("k{}", value % 5))
}

fn value_text(value: u64) -> String {
    format!("v{value}")
}

fn send_op(part: u32, value: u64, offset: Option<u64>) -> Op {
    Op::Send { partition: part, key: key(value), value: value_text(value), offset }
}

impl<'c> Generator<'c> {
    fn new(config: &'c GenConfig) -> Generator<'c> {
        let parts = (0..config.partitions)
            .map(|part| PartitionState {
                replicas: (0..config.replicas)
                    .map(|_| ReplicaState { log: PartitionLog::new(), hw_reported: 0 })
                    .collect(),
                leader: (part % config.replicas) as usize,
                epoch: 1,
            })
            .collect();
        Generator {
            config,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            t_ns: 0,
            builder: HistoryBuilder::new(Header::new("logjam-model testkit", config.config)),
            protocol: Vec::new(),
            parts,
            producers: vec![Producer::Idle; config.producers as usize],
            consumers: (0..config.consumers)
                .map(|_| (Consumer::Idle, vec![0; config.partitions as usize]))
                .collect(),
            zombies: Vec::new(),
            next_value: 0,
            invoked: 0,
        }
    }

    fn tick(&mut self) {
        self.t_ns += self.rng.random_range(1..=1_000);
    }

    fn event(&mut self, kind: EventType, process: u64, op: Op, error: Option<&str>) {
        self.builder
            .event(self.t_ns, process, kind, op, error.map(str::to_string))
            .unwrap_or_else(|e| panic!("the generator broke a format rule: {e}"));
    }

    fn protocol_event(&mut self, node: usize, event: ProtocolEvent) {
        if self.config.protocol_events {
            self.protocol.push(Protocol { t_ns: self.t_ns, node: node as u32, event });
        }
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.rng.random_bool(probability)
    }

    fn start(&mut self) {
        for part in 0..self.parts.len() {
            self.announce_epoch(part);
        }
    }

    /// The current leader and followers of a partition say so.
    fn announce_epoch(&mut self, part: usize) {
        let (leader, epoch) = (self.parts[part].leader, self.parts[part].epoch);
        let partition = part as u32;
        self.protocol_event(leader, ProtocolEvent::Leader { partition, epoch });
        for node in (0..self.parts[part].replicas.len()).filter(|&node| node != leader) {
            self.protocol_event(node, ProtocolEvent::Follower { partition, epoch });
        }
    }

    fn step(&mut self) {
        self.tick();
        let roll = self.rng.random_range(0..1_000);
        let clients = self.config.producers + self.config.consumers;
        if roll < 700 {
            // Clients in proportion to their numbers.
            let client = self.rng.random_range(0..clients);
            if client < self.config.producers {
                self.producer_step(client as usize);
            } else {
                self.consumer_step((client - self.config.producers) as usize);
            }
        } else if roll < 950 {
            let part = self.rng.random_range(0..self.parts.len());
            let follower = self.rng.random_range(0..self.parts[part].replicas.len());
            let records_max = self.rng.random_range(1..=8);
            self.fetch(part, follower, records_max);
        } else if roll < 995 {
            self.zombie_step();
        } else if self.config.faults && self.config.replicas > 1 {
            if self.chance(0.5) {
                let part = self.rng.random_range(0..self.parts.len());
                self.change_leader(part);
            } else {
                let node = self.rng.random_range(0..self.config.replicas as usize);
                self.restart(node);
            }
        }
    }

    fn producer_step(&mut self, producer: usize) {
        let process = producer as u64;
        let (info, fail) = (self.config.info_probability, self.config.fail_probability);
        match self.producers[producer] {
            Producer::Idle => {
                if self.invoked >= self.config.ops {
                    return;
                }
                self.invoked += 1;
                let value = self.next_value;
                self.next_value += 1;
                let part = self.rng.random_range(0..self.config.partitions);
                self.event(EventType::Invoke, process, send_op(part, value, None), None);
                self.producers[producer] = Producer::Sending { value, part, stage: Stage::Unsent };
            }
            Producer::Sending { value, part, stage: Stage::Unsent } => {
                let roll: f64 = self.rng.random();
                if roll < fail {
                    self.event(
                        EventType::Fail,
                        process,
                        send_op(part, value, None),
                        Some("not enough replicas"),
                    );
                    self.producers[producer] = Producer::Idle;
                } else if roll < fail + info {
                    // The request may still arrive: an indeterminate send that may land.
                    if self.chance(0.5) {
                        self.zombies.push((part, value));
                    }
                    self.event(
                        EventType::Info,
                        process,
                        send_op(part, value, None),
                        Some("timeout"),
                    );
                    self.producers[producer] = Producer::Idle;
                } else {
                    let offset = self.append(part as usize, value);
                    self.producers[producer] =
                        Producer::Sending { value, part, stage: Stage::Appended(offset) };
                }
            }
            Producer::Sending { value, part, stage: Stage::Appended(offset) } => {
                let leader =
                    &self.parts[part as usize].replicas[self.parts[part as usize].leader].log;
                if leader.get(offset) != Some(&value) {
                    self.producers[producer] =
                        Producer::Sending { value, part, stage: Stage::Lost };
                } else if leader.high_watermark() > offset {
                    self.event(EventType::Ok, process, send_op(part, value, Some(offset)), None);
                    self.producers[producer] = Producer::Idle;
                } else if self.chance(info) {
                    // Gave up on a record that may yet commit, or be truncated.
                    self.event(
                        EventType::Info,
                        process,
                        send_op(part, value, None),
                        Some("timeout"),
                    );
                    self.producers[producer] = Producer::Idle;
                }
            }
            Producer::Sending { value, part, stage: Stage::Lost } => {
                if self.chance(0.5) {
                    // An idempotent retry: the record is nowhere, so it is appended again.
                    let offset = self.append(part as usize, value);
                    self.producers[producer] =
                        Producer::Sending { value, part, stage: Stage::Appended(offset) };
                } else {
                    self.event(
                        EventType::Info,
                        process,
                        send_op(part, value, None),
                        Some("not leader"),
                    );
                    self.producers[producer] = Producer::Idle;
                }
            }
        }
    }

    fn consumer_step(&mut self, consumer: usize) {
        let process = (self.config.producers as usize + consumer) as u64;
        let (info, fail) = (self.config.info_probability, self.config.fail_probability);
        match std::mem::replace(&mut self.consumers[consumer].0, Consumer::Idle) {
            Consumer::Idle => {
                if self.invoked >= self.config.ops {
                    return;
                }
                self.invoked += 1;
                if self.chance(0.05) {
                    // Seek: assign one partition or all, each to a committed position.
                    let partitions: Vec<u32> = if self.chance(0.5) {
                        vec![self.rng.random_range(0..self.config.partitions)]
                    } else {
                        (0..self.config.partitions).collect()
                    };
                    let positions = partitions
                        .iter()
                        .map(|&part| {
                            let state = &self.parts[part as usize];
                            let hw = state.replicas[state.leader].log.high_watermark();
                            self.rng.random_range(0..=hw)
                        })
                        .collect();
                    self.event(
                        EventType::Invoke,
                        process,
                        Op::Assign { partitions: partitions.clone() },
                        None,
                    );
                    self.consumers[consumer].0 = Consumer::Assigning { partitions, positions };
                } else {
                    let part = self.rng.random_range(0..self.config.partitions);
                    let from = self.consumers[consumer].1[part as usize];
                    self.event(EventType::Invoke, process, Op::poll(part, from), None);
                    self.consumers[consumer].0 = Consumer::Polling { part, from };
                }
            }
            Consumer::Polling { part, from } => {
                let roll: f64 = self.rng.random();
                let empty = Op::poll(part, from);
                if roll < fail {
                    self.event(EventType::Fail, process, empty, Some("not leader"));
                } else if roll < fail + info {
                    self.event(EventType::Info, process, empty, Some("timeout"));
                } else {
                    let records_max = self.rng.random_range(1..=self.config.poll_records_max);
                    let records = self.read_committed(part as usize, from, records_max);
                    if let Some(last) = records.last() {
                        self.consumers[consumer].1[part as usize] = last.offset + 1;
                    }
                    self.event(
                        EventType::Ok,
                        process,
                        Op::Poll {
                            partition: part,
                            from,
                            records,
                            isolation: Isolation::ReadCommitted,
                        },
                        None,
                    );
                }
            }
            Consumer::Assigning { partitions, positions } => {
                for (&part, &position) in partitions.iter().zip(&positions) {
                    self.consumers[consumer].1[part as usize] = position;
                }
                self.event(EventType::Ok, process, Op::Assign { partitions }, None);
            }
        }
    }

    /// Committed records from the leader, as a consumer sees them.
    fn read_committed(&self, part: usize, from: u64, records_max: usize) -> Vec<Record> {
        let state = &self.parts[part];
        let log = &state.replicas[state.leader].log;
        // A position past the leader's log (possible right after a leader change, when
        // the new leader's watermark lags) reads nothing yet.
        let Ok(slice) = log.read_committed(from.min(log.log_end_offset()), records_max) else {
            unreachable!("positions are never below the log start")
        };
        slice
            .iter()
            .filter(|&(offset, _)| offset >= from)
            .map(|(offset, &value)| record(offset, value))
            .collect()
    }

    fn zombie_step(&mut self) {
        if self.zombies.is_empty() {
            return;
        }
        let (part, value) = self.zombies.swap_remove(self.rng.random_range(0..self.zombies.len()));
        if self.chance(0.5) {
            self.append(part as usize, value);
        }
    }

    /// Appends at the leader; returns the offset.
    fn append(&mut self, part: usize, value: u64) -> u64 {
        let state = &mut self.parts[part];
        let epoch = state.epoch;
        let offset = state.replicas[state.leader]
            .log
            .append(epoch, value)
            .expect("the leader's epoch is its latest");
        self.advance_leader_hw(part);
        offset
    }

    /// Every replica is in sync, so the leader commits up to the lowest log end.
    fn advance_leader_hw(&mut self, part: usize) {
        let state = &mut self.parts[part];
        let lowest_end =
            state.replicas.iter().map(|r| r.log.log_end_offset()).min().expect("replicas");
        let leader = state.leader;
        let log = &mut state.replicas[leader].log;
        if lowest_end > log.high_watermark() {
            log.advance_high_watermark(lowest_end)
                .expect("the lowest end is within the leader's log");
        }
        self.report_hw(part, leader);
    }

    fn report_hw(&mut self, part: usize, node: usize) {
        let replica = &mut self.parts[part].replicas[node];
        let hw = replica.log.high_watermark();
        if hw > replica.hw_reported {
            replica.hw_reported = hw;
            self.protocol_event(
                node,
                ProtocolEvent::HighWatermark { partition: part as u32, offset: hw },
            );
        }
    }

    /// A follower copies up to `records_max` records from the leader and learns its
    /// high watermark; the leader learns the follower's log end.
    fn fetch(&mut self, part: usize, follower: usize, records_max: usize) {
        let state = &mut self.parts[part];
        if follower == state.leader {
            return;
        }
        let leader = &state.replicas[state.leader].log;
        let from = state.replicas[follower].log.log_end_offset();
        debug_assert!(
            from == 0 || leader.get(from - 1) == state.replicas[follower].log.get(from - 1),
            "a follower's log is a prefix of its leader's"
        );
        let batch: Vec<(u64, u64)> = leader
            .read(from, records_max)
            .expect("a follower's log end is within its leader's log")
            .iter()
            .map(|(offset, &value)| (leader.epoch_of(offset).expect("held"), value))
            .collect();
        let leader_hw = leader.high_watermark();
        let log = &mut state.replicas[follower].log;
        for (epoch, value) in batch {
            log.append(epoch, value).expect("epochs never go back along the leader's log");
        }
        let hw = leader_hw.min(log.log_end_offset());
        if hw > log.high_watermark() {
            log.advance_high_watermark(hw).expect("within the follower's log");
        }
        self.report_hw(part, follower);
        self.advance_leader_hw(part);
    }

    /// A clean election: another replica leads in a new epoch, and every replica whose
    /// log runs past the new leader's truncates to it (never below the high watermark,
    /// since every replica's log end is at least that).
    fn change_leader(&mut self, part: usize) {
        let replicas = self.parts[part].replicas.len();
        if replicas < 2 {
            return;
        }
        let shift = self.rng.random_range(1..replicas);
        let state = &mut self.parts[part];
        state.leader = (state.leader + shift) % replicas;
        state.epoch += 1;
        self.announce_epoch(part);
        let state = &mut self.parts[part];
        let end = state.replicas[state.leader].log.log_end_offset();
        let mut truncated = Vec::new();
        for (node, replica) in state.replicas.iter_mut().enumerate() {
            if replica.log.log_end_offset() > end {
                assert!(
                    end >= replica.log.high_watermark(),
                    "a clean election never truncates committed records"
                );
                replica.log.truncate(end).expect("above the log start");
                truncated.push(node);
            }
        }
        for node in truncated {
            self.protocol_event(
                node,
                ProtocolEvent::Truncate { partition: part as u32, offset: end },
            );
        }
        self.advance_leader_hw(part);
    }

    /// A node restarts: leadership moves away first; its log survives (every batch is
    /// synced) and its high watermark restarts from an older checkpoint.
    fn restart(&mut self, node: usize) {
        for part in 0..self.parts.len() {
            if self.parts[part].leader == node {
                self.change_leader(part);
            }
        }
        self.protocol_event(node, ProtocolEvent::Restart);
        for part in 0..self.parts.len() {
            let hw = self.parts[part].replicas[node].log.high_watermark();
            let checkpoint = self.rng.random_range(0..=hw);
            self.parts[part].replicas[node].hw_reported = checkpoint;
            let (partition, epoch) = (part as u32, self.parts[part].epoch);
            self.protocol_event(node, ProtocolEvent::Follower { partition, epoch });
            self.protocol_event(
                node,
                ProtocolEvent::HighWatermark { partition, offset: checkpoint },
            );
            self.report_hw(part, node);
        }
    }

    /// Faults healed: late requests land or vanish, replicas converge, every client
    /// finishes what it started; then, if asked, a reader reads everything.
    fn quiet(&mut self) {
        self.tick();
        for producer in 0..self.producers.len() {
            if let Producer::Sending { value, part, stage: Stage::Unsent } =
                self.producers[producer]
            {
                let offset = self.append(part as usize, value);
                self.producers[producer] =
                    Producer::Sending { value, part, stage: Stage::Appended(offset) };
            }
        }
        for (part, value) in std::mem::take(&mut self.zombies) {
            if self.chance(0.5) {
                self.append(part as usize, value);
            }
        }
        for part in 0..self.parts.len() {
            // Twice: once to copy everything, once to learn the final watermark.
            for _ in 0..2 {
                for follower in 0..self.parts[part].replicas.len() {
                    self.fetch(part, follower, usize::MAX);
                }
            }
        }
        self.tick();
        for producer in 0..self.producers.len() {
            let Producer::Sending { value, part, stage } = self.producers[producer] else {
                continue;
            };
            let state = &self.parts[part as usize];
            let leader = &state.replicas[state.leader].log;
            let process = producer as u64;
            match stage {
                Stage::Appended(offset) if leader.get(offset) == Some(&value) => {
                    assert!(
                        leader.high_watermark() > offset,
                        "everything is committed after the quiet phase"
                    );
                    self.event(EventType::Ok, process, send_op(part, value, Some(offset)), None);
                }
                // Truncated by a leader change, and no time left to retry.
                _ => self.event(
                    EventType::Info,
                    process,
                    send_op(part, value, None),
                    Some("not leader"),
                ),
            }
            self.producers[producer] = Producer::Idle;
        }
        for consumer in 0..self.consumers.len() {
            if !matches!(self.consumers[consumer].0, Consumer::Idle) {
                self.consumer_step(consumer);
            }
        }
        if self.config.final_reads || !self.config.final_logs {
            self.read_everything();
        }
    }

    /// A fresh reader per partition: assign, then poll from 0 to the high watermark.
    fn read_everything(&mut self) {
        for part in 0..self.parts.len() {
            let process = (self.config.producers + self.config.consumers) as u64 + part as u64;
            let assign = Op::Assign { partitions: vec![part as u32] };
            self.tick();
            self.event(EventType::Invoke, process, assign.clone(), None);
            self.event(EventType::Ok, process, assign, None);
            let state = &self.parts[part];
            let hw = state.replicas[state.leader].log.high_watermark();
            let mut from = 0;
            loop {
                self.tick();
                let partition = part as u32;
                self.event(EventType::Invoke, process, Op::poll(partition, from), None);
                let records = self.read_committed(part, from, self.config.poll_records_max);
                let next = records.last().map_or(from, |last| last.offset + 1);
                self.event(
                    EventType::Ok,
                    process,
                    Op::Poll { partition, from, records, isolation: Isolation::ReadCommitted },
                    None,
                );
                if next >= hw {
                    break;
                }
                from = next;
            }
        }
    }

    fn finish(mut self) -> History {
        for protocol in std::mem::take(&mut self.protocol) {
            self.builder
                .closing(Closing::Protocol(protocol))
                .expect("protocol events are in time order");
        }
        if self.config.final_logs {
            for (part, state) in self.parts.iter().enumerate() {
                for (node, replica) in state.replicas.iter().enumerate() {
                    let log = &replica.log;
                    let records = log
                        .read(log.log_start_offset(), usize::MAX)
                        .expect("from the start")
                        .iter()
                        .map(|(offset, &value)| record(offset, value))
                        .collect();
                    let replica = Replica {
                        node: node as u32,
                        partition: part as u32,
                        log_start_offset: log.log_start_offset(),
                        high_watermark: log.high_watermark(),
                        last_stable_offset: None,
                        aborted: Vec::new(),
                        records,
                    };
                    self.builder.closing(Closing::Replica(replica)).expect("one log per replica");
                }
            }
        }
        self.builder.finish().unwrap_or_else(|e| panic!("the generator broke a format rule: {e}"))
    }
}

fn record(offset: u64, value: u64) -> Record {
    Record { offset, key: key(value), value: value_text(value) }
}
