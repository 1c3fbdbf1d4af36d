//! A correct replicated log under random concurrent clients, recorded as a history.
//!
//! Each partition has replicas, one of them the leader in the current epoch. Every
//! replica is in sync (clean elections only), so the leader's high watermark is the
//! lowest log end among them and any replica may take over without losing a committed
//! record. A step of the loop does one thing, chosen at random: a producer invokes,
//! appends, waits for its record to commit, or gives up; a consumer polls committed
//! records or seeks; a follower fetches; a client that gave up has its request land
//! late (or never); rarely, a leader changes or a node restarts.
//!
//! With transactional processes, a transaction appends one record per partition at
//! the leaders, waits for them to commit (aborting if a leader change truncated one),
//! decides, and appends a marker to each partition; it completes once every marker has
//! committed (a truncated marker is written again). A partition's last stable offset is
//! its first record whose transaction's marker has not committed there (else the high
//! watermark): read_committed polls stop there and skip aborted records.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::history::{
    Closing, EventType, Header, History, HistoryBuilder, Isolation, MicroOp, Op, Protocol,
    ProtocolEvent, Record, Replica, Text,
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
    /// Transactional processes (0: none, and the history is what it always was). Each
    /// takes its own transactional id with `init`, then runs transactions that send one
    /// record to each of one or more partitions; the first of them is a
    /// consume-transform-produce process whose transactions also commit an input range
    /// (`commit-offset`). With any, every other consumer polls at read_uncommitted and
    /// the final logs state `last_stable_offset` and `aborted`.
    pub txn_processes: u32,
    /// The chance that a transaction whose records all committed is aborted anyway.
    pub txn_abort_probability: f64,
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
            txn_processes: 0,
            txn_abort_probability: 0.0,
        }
    }

    /// `new` with transactions: 3 transactional processes (one of them
    /// consume-transform-produce) and a fifth of the transactions aborted.
    pub fn transactional(seed: u64, ops: usize) -> GenConfig {
        GenConfig { txn_processes: 3, txn_abort_probability: 0.2, ..GenConfig::new(seed, ops) }
    }
}

/// Generates the history `config` describes.
pub fn generate(config: &GenConfig) -> History {
    assert!(
        config.partitions >= 1 && config.replicas >= 1,
        "a log needs a partition and a replica"
    );
    assert!(
        config.producers + config.consumers + config.txn_processes >= 1,
        "someone must do something"
    );
    let mut generator = Generator::new(config);
    generator.start();
    while generator.invoked < config.ops {
        generator.step();
    }
    generator.quiet();
    generator.finish()
}

/// What a log holds at an offset: a record, or a transaction's control marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    /// A record of value number `n` (`v{n}`).
    Value(u64),
    /// The commit or abort marker of a transaction (its index in `Generator::txns`).
    Marker(usize),
}

struct ReplicaState {
    /// Records (value numbers) and markers, each in the epoch it was written.
    log: PartitionLog<Entry>,
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

/// A transactional process.
#[derive(Clone, Copy)]
enum TxnClient {
    /// Must take its transactional id first (again after it gave up on a transaction).
    Uninit,
    /// Its `init` is in flight.
    Initing,
    Idle,
    /// Its transaction (an index into `Generator::txns`) is in flight.
    Running(usize),
    /// It gave up (`info`) on this transaction, which goes on without it: it waits for
    /// the outcome (as a consume-transform-produce process must, to know its input
    /// position), then takes its id again.
    Orphaned(usize),
}

/// Where a transaction is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TxnStage {
    /// Invoked, nothing at the leaders yet.
    Unsent,
    /// Its records are at the leaders (`offsets`), waiting to commit.
    Appended,
    /// Decided (commit or abort): its markers go to every partition it wrote.
    Deciding { commit: bool },
    /// Every marker committed (or, for an abandoned transaction, nothing was written).
    Done,
}

struct Txn {
    /// The process index among transactional processes.
    client: usize,
    /// One record per partition: (partition, value number).
    sends: Vec<(u32, u64)>,
    /// For a consume-transform-produce transaction: (input partition, from, to).
    commit_offset: Option<(u32, u64, u64)>,
    stage: TxnStage,
    /// Where each send landed at its leader.
    offsets: Vec<Option<u64>>,
    /// Where each partition's marker landed at its leader.
    markers: Vec<Option<u64>>,
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
    txn_clients: Vec<TxnClient>,
    /// Every transaction, in invocation order.
    txns: Vec<Txn>,
    /// Transactions not yet `Done`.
    txns_open: Vec<usize>,
    /// Value numbers of records of aborted transactions.
    aborted: BTreeSet<u64>,
    /// The consume-transform-produce process's committed input position.
    input_position: u64,
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

/// The consume-transform-produce process's consumer group, and its input partition.
const CTP_GROUP: &str = "etl";
const CTP_INPUT: u32 = 0;

fn txn_id(client: usize) -> String {
    format!("t{client}")
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
            txn_clients: vec![TxnClient::Uninit; config.txn_processes as usize],
            txns: Vec::new(),
            txns_open: Vec::new(),
            aborted: BTreeSet::new(),
            input_position: 0,
        }
    }

    fn transactional(&self) -> bool {
        self.config.txn_processes > 0
    }

    /// How consumer `consumer` reads: with transactions, every other one at
    /// read_uncommitted.
    fn isolation(&self, consumer: usize) -> Isolation {
        if self.transactional() && consumer % 2 == 1 {
            Isolation::ReadUncommitted
        } else {
            Isolation::ReadCommitted
        }
    }

    /// The process number of transactional process `client`: after the producers,
    /// the consumers and the final readers.
    fn txn_process(&self, client: usize) -> u64 {
        (self.config.producers + self.config.consumers + self.config.partitions) as u64
            + client as u64
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
        let clients = self.config.producers + self.config.consumers + self.config.txn_processes;
        if roll < 700 {
            // Clients in proportion to their numbers.
            let client = self.rng.random_range(0..clients);
            if client < self.config.producers {
                self.producer_step(client as usize);
            } else if client < self.config.producers + self.config.consumers {
                self.consumer_step((client - self.config.producers) as usize);
            } else {
                self.txn_step((client - self.config.producers - self.config.consumers) as usize);
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
                if leader.get(offset) != Some(&Entry::Value(value)) {
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
                        Op::Assign { partitions: partitions.clone(), seek: true },
                        None,
                    );
                    self.consumers[consumer].0 = Consumer::Assigning { partitions, positions };
                } else {
                    let part = self.rng.random_range(0..self.config.partitions);
                    let from = self.consumers[consumer].1[part as usize];
                    let isolation = self.isolation(consumer);
                    let poll = Op::Poll {
                        partition: part,
                        from,
                        records: Vec::new(),
                        isolation,
                        assignment: None,
                    };
                    self.event(EventType::Invoke, process, poll, None);
                    self.consumers[consumer].0 = Consumer::Polling { part, from };
                }
            }
            Consumer::Polling { part, from } => {
                let roll: f64 = self.rng.random();
                let isolation = self.isolation(consumer);
                let empty = Op::Poll {
                    partition: part,
                    from,
                    records: Vec::new(),
                    isolation,
                    assignment: None,
                };
                if roll < fail {
                    self.event(EventType::Fail, process, empty, Some("not leader"));
                } else if roll < fail + info {
                    self.event(EventType::Info, process, empty, Some("timeout"));
                } else {
                    let records_max = self.rng.random_range(1..=self.config.poll_records_max);
                    let (records, next) = self.read(part as usize, from, records_max, isolation);
                    if let Some(next) = next {
                        self.consumers[consumer].1[part as usize] = next;
                    }
                    self.event(
                        EventType::Ok,
                        process,
                        Op::Poll { partition: part, from, records, isolation, assignment: None },
                        None,
                    );
                }
            }
            Consumer::Assigning { partitions, positions } => {
                for (&part, &position) in partitions.iter().zip(&positions) {
                    self.consumers[consumer].1[part as usize] = position;
                }
                self.event(EventType::Ok, process, Op::Assign { partitions, seek: true }, None);
            }
        }
    }

    /// Records from the leader, as a consumer sees them: at read_committed, below the
    /// last stable offset and none of an aborted transaction; at read_uncommitted,
    /// everything below the high watermark. Markers are never records. Returns the
    /// records and the position after the last offset passed (`None`: nothing passed).
    fn read(
        &self,
        part: usize,
        from: u64,
        records_max: usize,
        isolation: Isolation,
    ) -> (Vec<Record>, Option<u64>) {
        let state = &self.parts[part];
        let log = &state.replicas[state.leader].log;
        let end = match isolation {
            Isolation::ReadCommitted => self.last_stable(part),
            Isolation::ReadUncommitted => log.high_watermark(),
        };
        // A position past the leader's log (possible right after a leader change, when
        // the new leader's watermark lags) reads nothing yet.
        let Ok(slice) = log.read(from.min(log.log_end_offset()), records_max) else {
            unreachable!("positions are never below the log start")
        };
        let mut next = None;
        let mut records = Vec::new();
        for (offset, entry) in slice.iter().filter(|&(offset, _)| offset >= from && offset < end) {
            next = Some(offset + 1);
            match *entry {
                Entry::Value(value)
                    if isolation == Isolation::ReadUncommitted
                        || !self.aborted.contains(&value) =>
                {
                    records.push(record(offset, value));
                }
                _ => {}
            }
        }
        (records, next)
    }

    /// The leader's last stable offset: its high watermark, or the first record of a
    /// transaction whose marker has not committed there, if lower.
    fn last_stable(&self, part: usize) -> u64 {
        let state = &self.parts[part];
        let log = &state.replicas[state.leader].log;
        let mut lso = log.high_watermark();
        for &index in &self.txns_open {
            let txn = &self.txns[index];
            for (send, &(partition, value)) in txn.sends.iter().enumerate() {
                if partition as usize != part {
                    continue;
                }
                let Some(offset) = txn.offsets[send] else { continue };
                if log.get(offset) != Some(&Entry::Value(value)) {
                    continue;
                }
                let decided = txn.markers[send].is_some_and(|marker| {
                    log.get(marker) == Some(&Entry::Marker(index)) && log.high_watermark() > marker
                });
                if !decided {
                    lso = lso.min(offset);
                }
            }
        }
        lso
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

    /// Appends a record at the leader; returns the offset.
    fn append(&mut self, part: usize, value: u64) -> u64 {
        self.append_entry(part, Entry::Value(value))
    }

    /// Appends a record or marker at the leader; returns the offset.
    fn append_entry(&mut self, part: usize, entry: Entry) -> u64 {
        let state = &mut self.parts[part];
        let epoch = state.epoch;
        let offset = state.replicas[state.leader]
            .log
            .append(epoch, entry)
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
        let batch: Vec<(u64, Entry)> = leader
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
        if self.transactional() {
            self.quiet_txns_append();
        }
        self.converge();
        if self.transactional() {
            // Every record committed: every transaction can be decided, its markers
            // written and committed.
            self.quiet_txns_decide();
            self.converge();
        }
        self.tick();
        if self.transactional() {
            self.quiet_txns_complete();
        }
        for producer in 0..self.producers.len() {
            let Producer::Sending { value, part, stage } = self.producers[producer] else {
                continue;
            };
            let state = &self.parts[part as usize];
            let leader = &state.replicas[state.leader].log;
            let process = producer as u64;
            match stage {
                Stage::Appended(offset) if leader.get(offset) == Some(&Entry::Value(value)) => {
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

    /// Every follower copies everything from its leader, and learns the final watermark.
    fn converge(&mut self) {
        for part in 0..self.parts.len() {
            // Twice: once to copy everything, once to learn the final watermark.
            for _ in 0..2 {
                for follower in 0..self.parts[part].replicas.len() {
                    self.fetch(part, follower, usize::MAX);
                }
            }
        }
    }

    /// The transactions in flight (run or abandoned by their clients).
    fn txns_in_flight(&self) -> Vec<usize> {
        self.txn_clients
            .iter()
            .filter_map(|client| match *client {
                TxnClient::Running(index) | TxnClient::Orphaned(index) => Some(index),
                _ => None,
            })
            .collect()
    }

    /// Quiet phase: transactions not yet at their leaders get there (an abandoned one
    /// may vanish instead).
    fn quiet_txns_append(&mut self) {
        for index in self.txns_in_flight() {
            if self.txns[index].stage != TxnStage::Unsent {
                continue;
            }
            let client = self.txns[index].client;
            if matches!(self.txn_clients[client], TxnClient::Orphaned(_)) && self.chance(0.5) {
                self.close_txn(index);
                self.txn_clients[client] = TxnClient::Uninit;
            } else {
                self.append_txn(index);
            }
        }
    }

    /// Quiet phase: every record committed, so every transaction is decided and its
    /// markers written.
    fn quiet_txns_decide(&mut self) {
        for index in self.txns_in_flight() {
            match self.txns[index].stage {
                TxnStage::Appended => {
                    let commit = self.decision(index).expect("every record is committed");
                    self.decide(index, commit);
                }
                TxnStage::Deciding { .. } => self.write_markers(index),
                TxnStage::Unsent | TxnStage::Done => {}
            }
        }
    }

    /// Quiet phase: every marker committed; clients learn how their transactions ended.
    fn quiet_txns_complete(&mut self) {
        for client in 0..self.txn_clients.len() {
            let process = self.txn_process(client);
            match self.txn_clients[client] {
                TxnClient::Initing => {
                    self.event(EventType::Ok, process, Op::Init { txn_id: txn_id(client) }, None);
                    self.txn_clients[client] = TxnClient::Idle;
                }
                TxnClient::Running(index) | TxnClient::Orphaned(index) => {
                    assert!(
                        self.markers_committed(index),
                        "every marker commits in the quiet phase"
                    );
                    self.finish_txn(index);
                }
                TxnClient::Uninit | TxnClient::Idle => {}
            }
        }
    }

    /// A transactional process's step: take its id, begin a transaction, or move its
    /// transaction on.
    fn txn_step(&mut self, client: usize) {
        let process = self.txn_process(client);
        match self.txn_clients[client] {
            TxnClient::Uninit => {
                if self.invoked >= self.config.ops {
                    return;
                }
                self.invoked += 1;
                self.event(EventType::Invoke, process, Op::Init { txn_id: txn_id(client) }, None);
                self.txn_clients[client] = TxnClient::Initing;
            }
            TxnClient::Initing => {
                self.event(EventType::Ok, process, Op::Init { txn_id: txn_id(client) }, None);
                self.txn_clients[client] = TxnClient::Idle;
            }
            TxnClient::Idle => {
                if self.invoked >= self.config.ops {
                    return;
                }
                self.invoked += 1;
                self.begin_txn(client);
            }
            TxnClient::Running(index) => self.advance_txn(index, false),
            TxnClient::Orphaned(index) => self.advance_txn(index, true),
        }
    }

    /// Invokes a transaction: one record to each of some partitions, and for the
    /// consume-transform-produce process the next input range.
    fn begin_txn(&mut self, client: usize) {
        let count = self.rng.random_range(1..=self.config.partitions) as usize;
        let mut partitions: Vec<u32> = (0..self.config.partitions).collect();
        partitions.shuffle(&mut self.rng);
        partitions.truncate(count);
        let sends: Vec<(u32, u64)> = partitions
            .into_iter()
            .map(|part| {
                self.next_value += 1;
                (part, self.next_value - 1)
            })
            .collect();
        let commit_offset = (client == 0).then(|| {
            let from = self.input_position;
            (CTP_INPUT, from, from + self.rng.random_range(1..=3))
        });
        let index = self.txns.len();
        self.txns.push(Txn {
            client,
            offsets: vec![None; sends.len()],
            markers: vec![None; sends.len()],
            sends,
            commit_offset,
            stage: TxnStage::Unsent,
        });
        self.txns_open.push(index);
        let op = self.txn_op(index, false);
        self.event(EventType::Invoke, self.txn_process(client), op, None);
        self.txn_clients[client] = TxnClient::Running(index);
    }

    /// The transaction as an operation, with its offsets if `ok`.
    fn txn_op(&self, index: usize, ok: bool) -> Op {
        let txn = &self.txns[index];
        let mut ops: Vec<MicroOp> = txn
            .sends
            .iter()
            .zip(&txn.offsets)
            .map(|(&(partition, value), &offset)| MicroOp::Send {
                partition,
                key: key(value),
                value: value_text(value),
                offset: if ok { offset } else { None },
            })
            .collect();
        if let Some((partition, from, to)) = txn.commit_offset {
            ops.push(MicroOp::commit_offset(CTP_GROUP, partition, from, to));
        }
        Op::txn(txn_id(txn.client), ops)
    }

    /// Moves a transaction on by one step. An `orphan` (its client gave up) goes on
    /// without telling anyone.
    fn advance_txn(&mut self, index: usize, orphan: bool) {
        let client = self.txns[index].client;
        let process = self.txn_process(client);
        // A transaction waits many steps, each a chance to give up: a quarter of a
        // send's chance once its records are at the leaders.
        // Without final logs a client never gives up on a transaction: the checkers
        // judge an `info` transaction by the final read_committed view (read-past-lso,
        // exactly-once), which only the final logs give.
        let info = if self.config.final_logs { self.config.info_probability } else { 0.0 };
        let fail = self.config.fail_probability;
        match self.txns[index].stage {
            TxnStage::Unsent => {
                let roll: f64 = self.rng.random();
                if orphan {
                    if roll < 0.5 {
                        // It never reached a leader.
                        self.close_txn(index);
                        self.txn_clients[client] = TxnClient::Uninit;
                    } else {
                        self.append_txn(index);
                    }
                } else if roll < fail {
                    let op = self.txn_op(index, false);
                    self.event(EventType::Fail, process, op, Some("not enough replicas"));
                    self.close_txn(index);
                    self.txn_clients[client] = TxnClient::Idle;
                } else if roll < fail + info {
                    self.give_up(index);
                } else {
                    self.append_txn(index);
                }
            }
            TxnStage::Appended => {
                if let Some(commit) = self.decision(index) {
                    self.decide(index, commit);
                } else if !orphan && self.chance(info / 4.0) {
                    self.give_up(index);
                }
            }
            TxnStage::Deciding { .. } => {
                if self.markers_committed(index) {
                    self.finish_txn(index);
                } else {
                    // A marker truncated by a leader change is written again.
                    self.write_markers(index);
                    if !orphan && self.chance(info / 4.0) {
                        self.give_up(index);
                    }
                }
            }
            TxnStage::Done => unreachable!("a client holds only transactions in flight"),
        }
    }

    /// The client gives up on its transaction (`info`); the transaction goes on.
    fn give_up(&mut self, index: usize) {
        let client = self.txns[index].client;
        let op = self.txn_op(index, false);
        self.event(EventType::Info, self.txn_process(client), op, Some("timeout"));
        self.txn_clients[client] = TxnClient::Orphaned(index);
    }

    /// Every marker committed: the transaction is over; its client, if still waiting,
    /// learns the outcome (an abandoned one's client takes its id again).
    fn finish_txn(&mut self, index: usize) {
        let TxnStage::Deciding { commit } = self.txns[index].stage else {
            unreachable!("only a decided transaction finishes")
        };
        let client = self.txns[index].client;
        let process = self.txn_process(client);
        self.close_txn(index);
        if let TxnClient::Orphaned(_) = self.txn_clients[client] {
            self.txn_clients[client] = TxnClient::Uninit;
            return;
        }
        if commit {
            self.event(EventType::Ok, process, self.txn_op(index, true), None);
        } else {
            self.event(EventType::Fail, process, self.txn_op(index, false), Some("aborted"));
        }
        self.txn_clients[client] = TxnClient::Idle;
    }

    fn close_txn(&mut self, index: usize) {
        self.txns[index].stage = TxnStage::Done;
        self.txns_open.retain(|&open| open != index);
    }

    /// Appends each record of a transaction at its partition's leader.
    fn append_txn(&mut self, index: usize) {
        for send in 0..self.txns[index].sends.len() {
            let (part, value) = self.txns[index].sends[send];
            let offset = self.append(part as usize, value);
            self.txns[index].offsets[send] = Some(offset);
        }
        self.txns[index].stage = TxnStage::Appended;
    }

    /// Whether an appended transaction can be decided now, and how: aborted if a
    /// leader change truncated one of its records; else, once every record has
    /// committed, committed (or aborted, at `txn_abort_probability`).
    fn decision(&mut self, index: usize) -> Option<bool> {
        let txn = &self.txns[index];
        let mut committed = true;
        for (&(part, value), &offset) in txn.sends.iter().zip(&txn.offsets) {
            let offset = offset.expect("appended");
            let state = &self.parts[part as usize];
            let leader = &state.replicas[state.leader].log;
            if leader.get(offset) != Some(&Entry::Value(value)) {
                return Some(false);
            }
            committed &= leader.high_watermark() > offset;
        }
        committed.then(|| !self.chance(self.config.txn_abort_probability))
    }

    /// Decides a transaction and writes its markers. Its records are aborted from now
    /// on (they stay above the last stable offset until the markers commit).
    fn decide(&mut self, index: usize, commit: bool) {
        let txn = &self.txns[index];
        if commit {
            if let Some((_, _, to)) = txn.commit_offset {
                self.input_position = to;
            }
        } else {
            self.aborted.extend(txn.sends.iter().map(|&(_, value)| value));
        }
        self.txns[index].stage = TxnStage::Deciding { commit };
        self.write_markers(index);
    }

    /// Appends each partition's marker that its leader does not hold.
    fn write_markers(&mut self, index: usize) {
        for send in 0..self.txns[index].sends.len() {
            let part = self.txns[index].sends[send].0 as usize;
            let state = &self.parts[part];
            let leader = &state.replicas[state.leader].log;
            let held = self.txns[index].markers[send]
                .is_some_and(|marker| leader.get(marker) == Some(&Entry::Marker(index)));
            if !held {
                let marker = self.append_entry(part, Entry::Marker(index));
                self.txns[index].markers[send] = Some(marker);
            }
        }
    }

    /// Whether every marker of a transaction has committed at its leader.
    fn markers_committed(&self, index: usize) -> bool {
        let txn = &self.txns[index];
        txn.sends.iter().zip(&txn.markers).all(|(&(part, _), &marker)| {
            let state = &self.parts[part as usize];
            let leader = &state.replicas[state.leader].log;
            marker.is_some_and(|marker| {
                leader.get(marker) == Some(&Entry::Marker(index))
                    && leader.high_watermark() > marker
            })
        })
    }

    /// A fresh reader per partition: assign, then poll from 0 to the high watermark.
    fn read_everything(&mut self) {
        for part in 0..self.parts.len() {
            let process = (self.config.producers + self.config.consumers) as u64 + part as u64;
            let assign = Op::Assign { partitions: vec![part as u32], seek: true };
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
                let (records, next) =
                    self.read(part, from, self.config.poll_records_max, Isolation::ReadCommitted);
                let next = next.unwrap_or(from);
                self.event(
                    EventType::Ok,
                    process,
                    Op::Poll {
                        partition,
                        from,
                        records,
                        isolation: Isolation::ReadCommitted,
                        assignment: None,
                    },
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
                    let mut records = Vec::new();
                    let mut aborted = Vec::new();
                    for (offset, entry) in
                        log.read(log.log_start_offset(), usize::MAX).expect("from the start").iter()
                    {
                        if let Entry::Value(value) = *entry {
                            records.push(record(offset, value));
                            if self.aborted.contains(&value) {
                                aborted.push(offset);
                            }
                        }
                    }
                    // Every transaction is decided after the quiet phase.
                    let transactional = self.config.txn_processes > 0;
                    let replica = Replica {
                        node: node as u32,
                        partition: part as u32,
                        log_start_offset: log.log_start_offset(),
                        high_watermark: log.high_watermark(),
                        last_stable_offset: transactional.then(|| log.high_watermark()),
                        aborted,
                        log_end_offset: None,
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
    Record { offset, key: key(value).map(Text::from), value: Text::from(value_text(value)) }
}
