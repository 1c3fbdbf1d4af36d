//! The replicated-log cluster as processes of the world: brokers and the controller on
//! their `SimDisk`s, producers and consumers that record the model's history.
//!
//! Node layout: brokers `0..brokers`, then the controller, then the producers, then the
//! consumers, then (with transactions) the transaction coordinator. Every process ticks
//! on a timer; the sans-IO state machines of `broker` do the work and this module only
//! carries their messages, syncs and events.

pub mod es_client;
pub mod es_projection;
pub mod es_txn_projection;
pub mod log_disk;
pub mod txn_processor;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use logjam_broker::batch;
use logjam_broker::broker::{Broker, BrokerConfig, BrokerEvent, HeldFetchEnd, TruncationRule};
use logjam_broker::client::{Consumer, ConsumerConfig, Outcome, Producer, ProducerConfig};
use logjam_broker::controller::{Controller, ControllerConfig, ElectionRule};
use logjam_broker::coordinator::{
    Coordinator, CoordinatorConfig, CoordinatorEvent, PRODUCER_EPOCH_MAX,
};
use logjam_broker::log::{FlushPolicy, LogConfig};
use logjam_broker::protocol::{Acks, Isolation, Msg};
use logjam_broker::txn::TxnProtocol;
use logjam_broker::txn_producer::{TxnProducer, TxnProducerConfig, TxnRecord};
use logjam_model as model;

use crate::es_client::{EsClient, SharedEsRecorder};
use crate::es_projection::{OpenProjection, ProjectionNode};
use crate::es_txn_projection::TxnProjectionNode;
use crate::log_disk::{sync_result, sync_ticket};
use crate::txn_processor::{Processor, ProcessorConfig, Step, kind_of};
use crate::user::AnyWork;
use crate::{Context, LogDisk, NodeId, Process, TimerId};
use logjam_eventstore::log_store::{LogStore, LogStoreConfig};
use logjam_eventstore::reader::ReaderConfig;

/// Brokers and the controller tick this often on their own clocks.
pub const TICK_NS: u64 = 5_000_000;
/// How long a follower may lag before it leaves the ISR, unless the scenario says.
pub const REPLICA_LAG_MAX_NS_DEFAULT: u64 = 300_000_000;
/// How long the controller waits for a broker's heartbeat, unless the scenario says.
pub const SESSION_TIMEOUT_NS_DEFAULT: u64 = 200_000_000;
/// Clients tick less often: they act on answers as they arrive, and a tick only times
/// out requests and starts the next poll.
pub const CLIENT_TICK_NS: u64 = 20_000_000;

/// A broker's follower asks again when a fetch goes unanswered this long.
const BROKER_REQUEST_TIMEOUT_NS: u64 = 100_000_000;
/// A leader holds a follower's fetch for less than this: half the request timeout, so
/// the answer to a fetch held the longest still has time to arrive.
pub const REPLICA_FETCH_WAIT_NS_LIMIT: u64 = BROKER_REQUEST_TIMEOUT_NS / 2;

/// The cluster under test and its clients.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSpec {
    /// Broker nodes, `n0` up.
    pub brokers: u32,
    /// Partitions the producers write; the processors' and the projections' output
    /// partitions come after them (`total_partitions`).
    pub partitions: u32,
    /// Replicas of each partition, at most the brokers.
    pub replication_factor: u32,
    /// The ISR size below which a leader refuses `acks = all` writes and the high
    /// watermark stops advancing.
    pub min_insync_replicas: u32,
    /// A broker's restart validates every batch of its logs; false: it trusts the
    /// segments below its recovery point, as Kafka does (`cluster.verify_on_open`).
    pub verify_on_open: bool,
    /// A broker's log segments roll at this size, in bytes (`cluster.segment_kib`).
    pub segment_bytes_max: u64,
    /// A follower behind for this long leaves the ISR (`cluster.replica_lag_max`).
    pub replica_lag_max_ns: u64,
    /// A broker without a heartbeat for this long is dead to the controller
    /// (`cluster.session_timeout`).
    pub session_timeout_ns: u64,
    /// The network may duplicate messages, so a copy of a request may arrive after
    /// its original was answered: a producer refused on every attempt cannot say its
    /// send failed, only that it may have landed (`ProducerConfig::refusals_definite`).
    pub requests_may_repeat: bool,
    /// What a write (a producer's or an event-store client's) waits for before it is
    /// acknowledged.
    pub acks: Acks,
    /// The controller may elect any live replica when no ISR member (nor, under
    /// KIP-966, any eligible leader replica) is alive: acknowledged writes may be lost.
    pub unclean_leader_election: bool,
    /// When brokers sync their logs to disk.
    pub flush: FlushPolicy,
    /// How long a leader holds a follower's fetch that finds nothing new (long poll);
    /// 0 answers at once. Below `REPLICA_FETCH_WAIT_NS_LIMIT`.
    pub replica_fetch_wait_ns: u64,
    /// How a broker that becomes a follower finds where its log diverges from the
    /// leader's.
    pub truncation: TruncationRule,
    /// Whom the controller may elect when no ISR member is alive (KIP-966 or before).
    pub election: ElectionRule,
    /// Plain producers are idempotent: a retried or duplicated send is written once.
    pub idempotent: bool,
    /// Producer processes: plain producers, or event-store clients when `es` is set.
    pub producers: u32,
    /// Consumer processes: plain consumers, or event-store projections when `es` is set.
    pub consumers: u32,
    /// An event-store workload: the producer slots run event-store clients.
    pub es: Option<EsSpec>,
    /// Transactions: the producer slots run transactional producers, and a transaction
    /// coordinator joins the servers.
    pub txn: Option<TxnSpec>,
}

/// The transactional workload on the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnSpec {
    /// The transaction protocol of the brokers and the coordinator (KIP-890 or the
    /// legacy one).
    pub protocol: TxnProtocol,
    /// The coordinator aborts a transaction open longer than this (ns).
    pub timeout_ns: u64,
    /// Records per transaction, each to another partition (at most the partitions).
    pub partitions_per_txn: u32,
    /// The last this many consumers read uncommitted (the others read committed).
    pub read_uncommitted: u32,
    /// Consume-transform-produce processors: processor `k` reads partition
    /// `k % partitions` and writes to its own output partition, `partitions + k`.
    pub processors: u32,
    /// The last this many producer slots run plain producers (idempotent as the
    /// scenario says), writing the transactions' partitions too.
    pub plain_producers: u32,
    /// Processors commit their position in the output's transaction (false: in a
    /// transaction after it, the weak setup).
    pub offsets_in_txn: bool,
}

/// The event-store workload on the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EsSpec {
    /// The domain the clients run ("bank").
    pub domain: String,
    /// Aggregates (bank accounts) the commands pick from.
    pub accounts: u32,
    /// Appends carry the expected version (false: the weak setup, appends with `Any`).
    pub expected_versions: bool,
    /// Only deposits: contention on accounts without overdrafts or sagas.
    pub deposits_only: bool,
}

impl ClusterSpec {
    /// The controller: the node after the brokers.
    pub fn controller(&self) -> NodeId {
        NodeId(self.brokers)
    }

    /// Producer slot `index`: a plain or transactional producer, or an event-store
    /// client.
    pub fn producer(&self, index: u32) -> NodeId {
        NodeId(self.brokers + 1 + index)
    }

    /// Consumer slot `index`: a plain consumer, or an event-store projection.
    pub fn consumer(&self, index: u32) -> NodeId {
        NodeId(self.brokers + 1 + self.producers + index)
    }

    /// The plain producers and consumers (not event-store clients, transactional
    /// producers or processors): what `faults.clients` adds to the fault targets.
    pub fn plain_clients(&self) -> Vec<NodeId> {
        let producers = if self.es.is_none() && self.txn.is_none() { self.producers } else { 0 };
        let consumers = if self.es.is_none() { self.consumers } else { 0 };
        (0..producers)
            .map(|i| self.producer(i))
            .chain((0..consumers).map(|i| self.consumer(i)))
            .collect()
    }

    /// The transaction coordinator, after every client (so that a cluster without
    /// transactions keeps its node numbers).
    pub fn coordinator(&self) -> Option<NodeId> {
        self.txn.as_ref().map(|_| NodeId(self.brokers + 1 + self.producers + self.consumers))
    }

    /// Consume-transform-produce processor `index`, after the coordinator.
    pub fn processor(&self, index: u32) -> NodeId {
        NodeId(self.brokers + 2 + self.producers + self.consumers + index)
    }

    /// Each processor's consumer group and input partition, for the history's header.
    pub fn processor_groups(&self) -> Vec<model::ProcessorGroup> {
        (0..self.processors())
            .map(|index| model::ProcessorGroup {
                group: crate::txn_processor::group_name(index),
                partition: index % self.partitions,
            })
            .collect()
    }

    fn processors(&self) -> u32 {
        self.txn.as_ref().map_or(0, |txn| txn.processors)
    }

    /// Projections with exactly-once processing (an event store with transactions):
    /// projection `k` writes its state to its own output partition, `partitions + k`.
    fn txn_projections(&self) -> u32 {
        if self.txn.is_some() && self.es.is_some() { self.consumers } else { 0 }
    }

    /// Every partition: those producers write, then the processors' or the
    /// projections' outputs.
    pub fn total_partitions(&self) -> u32 {
        self.partitions + self.processors() + self.txn_projections()
    }

    /// How many nodes the world has: brokers, the controller, the producer and
    /// consumer slots, and with transactions the coordinator and the processors.
    pub fn nodes(&self) -> u32 {
        self.brokers
            + 1
            + self.producers
            + self.consumers
            + u32::from(self.txn.is_some())
            + self.processors()
    }

    /// Which nodes play which role, in words (`brokers n0-n2, controller n3, producers
    /// n4-n7, consumers n8`): what a scripted fault's `target` and a report's lanes mean.
    pub fn node_map(&self) -> String {
        let (producers, consumers) = if self.es.is_some() {
            ("event-store clients", "projections")
        } else if self.txn.is_some() {
            ("transactional producers", "consumers")
        } else {
            ("producers", "consumers")
        };
        let plain = self.plain_producers();
        let mut roles = vec![
            role("brokers", 0, self.brokers),
            role("controller", self.controller().0, 1),
            role(producers, self.producer(0).0, self.producers - plain),
            role("plain producers", self.producer(self.producers - plain).0, plain),
            role(consumers, self.consumer(0).0, self.consumers),
        ];
        if let Some(coordinator) = self.coordinator() {
            roles.push(role("transaction coordinator", coordinator.0, 1));
            roles.push(role("processors", self.processor(0).0, self.processors()));
        }
        roles.into_iter().flatten().collect::<Vec<_>>().join(", ")
    }

    /// Plain producers among the producer slots of a transactional cluster (the last
    /// ones); 0 without transactions, where every producer is plain anyway.
    pub fn plain_producers(&self) -> u32 {
        match (&self.txn, &self.es) {
            (Some(txn), None) => txn.plain_producers,
            _ => 0,
        }
    }

    /// Whether `node` is a producer slot that runs a plain producer beside
    /// transactional ones (`transactions.plain_producers`).
    pub fn is_plain_producer(&self, node: NodeId) -> bool {
        let plain = self.plain_producers();
        plain > 0
            && (self.producer(self.producers - plain).0..self.producer(self.producers).0)
                .contains(&node.0)
    }

    /// The nodes that run the system (brokers, the controller, the transaction
    /// coordinator): the ones process, clock and disk faults strike.
    pub fn servers(&self) -> Vec<NodeId> {
        (0..=self.brokers).map(NodeId).chain(self.coordinator()).collect()
    }

    /// How consumer `index` reads.
    pub fn isolation(&self, index: u32) -> Isolation {
        let uncommitted = self.txn.as_ref().map_or(0, |txn| txn.read_uncommitted);
        if index + uncommitted >= self.consumers {
            Isolation::ReadUncommitted
        } else {
            Isolation::ReadCommitted
        }
    }

    /// The configuration as the model's history header states it.
    pub fn model_config(&self, crashes_max: u32, disk_faults_max: u32) -> model::Config {
        model::Config {
            acks: match self.acks {
                Acks::None => model::Acks::None,
                Acks::Leader => model::Acks::Leader,
                Acks::All => model::Acks::All,
            },
            min_insync_replicas: self.min_insync_replicas,
            unclean_leader_election: self.unclean_leader_election,
            flush: match self.flush {
                FlushPolicy::EveryAppend => model::Flush::EveryBatch,
                FlushPolicy::Interval { every_ns } => model::Flush::EveryMs(every_ns / 1_000_000),
                FlushPolicy::Never => model::Flush::Never,
            },
            truncation: match self.truncation {
                TruncationRule::LeaderEpoch => model::Truncation::LeaderEpoch,
                TruncationRule::Kip101 => model::Truncation::Kip101,
                TruncationRule::HighWatermark => model::Truncation::HighWatermark,
            },
            election: match self.election {
                ElectionRule::Kip966 => model::Election::Kip966,
                ElectionRule::PreKip966 => model::Election::PreKip966,
            },
            idempotent: self.idempotent,
            fault_budget: model::FaultBudget { crashes_max, disk_faults_max },
            transactions: match self.txn.as_ref().map(|txn| txn.protocol) {
                None | Some(TxnProtocol::Kip890) => model::Transactions::Kip890,
                Some(TxnProtocol::Legacy) => model::Transactions::PreKip890,
            },
            recovery: if self.verify_on_open {
                model::Recovery::VerifyAll
            } else {
                model::Recovery::TrustRecoveryPoint
            },
        }
    }

    fn broker_config(&self, id: u32) -> BrokerConfig {
        BrokerConfig {
            id,
            controller: self.brokers,
            min_insync_replicas: self.min_insync_replicas,
            truncation: self.truncation,
            log: LogConfig {
                segment_bytes_max: self.segment_bytes_max,
                index_interval_bytes: 4096,
                flush: self.flush,
                // By default a restart validates everything: corruption at rest is cut at
                // open and fetched again from the leader instead of failing reads.
                verify_on_open: self.verify_on_open,
            },
            replica_lag_max_ns: self.replica_lag_max_ns,
            heartbeat_every_ns: 50_000_000,
            request_timeout_ns: BROKER_REQUEST_TIMEOUT_NS,
            // Off unless the scenario asks (`cluster.replica_fetch_wait`): followers poll
            // every tick. Long polls replicate within a network latency instead of a
            // tick, and the catalogue's scenarios then seldom reach the states they exist
            // to reach: a leader crashing ahead of its followers (follower-truncation
            // coverage of leader-failover fell from 69 to 4 of 200 seeds) or an acks=1
            // write lost (acks-1-leader-crash: median seeds to the anomaly 1.5 -> 15).
            replica_fetch_wait_max_ns: self.replica_fetch_wait_ns,
            fetch_max_bytes: 256 * 1024,
            pending_produce_max: 10_000,
            hw_checkpoint_every_ns: 500_000_000,
            txn_coordinator: self.coordinator().map(|node| node.0),
            txn_protocol: self.txn.as_ref().map_or(TxnProtocol::Kip890, |txn| txn.protocol),
        }
    }

    /// A transactional producer of the cluster (a producer slot's, or a processor's).
    fn txn_producer_config(&self, txn_id: String) -> TxnProducerConfig {
        TxnProducerConfig {
            controller: self.brokers,
            coordinator: self.coordinator().expect("transactions have a coordinator").0,
            partitions: self.total_partitions(),
            txn_id,
            request_timeout_ns: 200_000_000,
            retry_backoff_ns: 20_000_000,
            attempts_max: 5,
            delivery_timeout_ns: 2_000_000_000,
        }
    }

    fn coordinator_config(&self, txn: &TxnSpec, id: u32) -> CoordinatorConfig {
        CoordinatorConfig {
            id,
            controller: self.brokers,
            protocol: txn.protocol,
            partitions: self.total_partitions(),
            txn_timeout_ns: txn.timeout_ns,
            request_timeout_ns: 100_000_000,
            txn_ids_max: (self.producers + txn.processors + self.txn_projections()) as usize,
            producer_epoch_max: PRODUCER_EPOCH_MAX,
            log: LogConfig {
                segment_bytes_max: 8 << 20,
                index_interval_bytes: 4096,
                // Its state is answered only once durable.
                flush: FlushPolicy::EveryAppend,
                verify_on_open: true,
            },
        }
    }

    fn controller_config(&self) -> ControllerConfig {
        ControllerConfig {
            brokers: (0..self.brokers).collect(),
            partitions: self.total_partitions(),
            replication_factor: self.replication_factor,
            unclean_leader_election: self.unclean_leader_election,
            min_insync_replicas: self.min_insync_replicas,
            election: self.election,
            session_timeout_ns: self.session_timeout_ns,
        }
    }
}

/// What the clients did and saw, and what the brokers reported: the history being
/// recorded. Shared by the client processes of one world (single-threaded).
pub struct Recorder {
    builder: model::HistoryBuilder,
    protocol: Vec<model::Protocol>,
    /// Protocol events outside the history, counted for coverage (`coverage::ITEMS`).
    pub counted: BTreeMap<&'static str, u64>,
    /// A recording that broke the history's rules: a bug in the harness, reported.
    pub problems: Vec<String>,
    /// The operation each client node has under way: a crash ends it as indeterminate
    /// when the node starts again.
    under_way: BTreeMap<u32, model::Op>,
    /// The history's process for a node whose later life is a new process (a plain
    /// producer or consumer that crashed): absent, the node's own id.
    processes: BTreeMap<u32, u64>,
    /// Every batch each broker ever wrote, by (node, partition) and base offset: what a
    /// log recovered at a restart is checked against (`recovery-prefix`).
    written: BTreeMap<(u32, u32), BTreeMap<u64, Vec<WrittenBatch>>>,
    written_batches: u64,
}

/// A batch a broker wrote: where it ends and its CRC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WrittenBatch {
    end_offset: u64,
    crc: u32,
}

/// The most batches the ledger of written batches keeps (about 40 MB); past it the
/// recovery check is skipped for the rest of the run, and counted.
const WRITTEN_BATCHES_MAX: u64 = 1 << 20;

/// The recorder as the processes of one world share it (single-threaded).
pub type SharedRecorder = Rc<RefCell<Recorder>>;

impl Recorder {
    /// An empty recording of a history under `header`, to be shared.
    pub fn new(header: model::Header) -> SharedRecorder {
        Rc::new(RefCell::new(Recorder {
            builder: model::HistoryBuilder::new(header),
            protocol: Vec::new(),
            counted: BTreeMap::new(),
            problems: Vec::new(),
            under_way: BTreeMap::new(),
            processes: BTreeMap::new(),
            written: BTreeMap::new(),
            written_batches: 0,
        }))
    }

    fn count(&mut self, item: &'static str) {
        *self.counted.entry(item).or_insert(0) += 1;
    }

    /// A transactional producer begins an operation.
    fn invoke(&mut self, t_ns: u64, process: u32, op: model::Op) {
        self.event(t_ns, process, model::EventType::Invoke, op, None);
    }

    /// A transactional producer's operation ended; `op` carries its results.
    fn complete<T>(&mut self, t_ns: u64, process: u32, outcome: &Outcome<T>, op: model::Op) {
        let (kind, error) = kind_of(outcome);
        self.finish_op(t_ns, process, kind, op, error);
    }

    fn finish_op(
        &mut self,
        t_ns: u64,
        process: u32,
        kind: model::EventType,
        op: model::Op,
        error: Option<String>,
    ) {
        self.event(t_ns, process, kind, op, error);
    }

    /// A processor's or projection's steps, in order.
    fn steps(&mut self, t_ns: u64, process: u32, steps: impl Iterator<Item = Step>) {
        for step in steps {
            match step {
                Step::Invoke(op) => self.invoke(t_ns, process, op),
                Step::Complete(kind, op, error) => self.finish_op(t_ns, process, kind, op, error),
            }
        }
    }

    /// A producer that crashed starts again: what it had under way is indeterminate.
    fn restarted(&mut self, t_ns: u64, process: u32) {
        if let Some(op) = self.under_way.remove(&process) {
            let error = Some("the client crashed".to_owned());
            self.event(t_ns, process, model::EventType::Info, op, error);
        }
    }

    /// A plain producer or consumer starts its life `life`: what its earlier life had
    /// under way ends indeterminate, and from its second life on it is a new process
    /// of the history (Jepsen's rule: a crashed client's process never comes back), so
    /// that its fresh start (a position read again, a sequence begun anew) is not held
    /// against the system.
    fn client_started(&mut self, t_ns: u64, node: u32, life: u64) {
        self.restarted(t_ns, node);
        if life > 1 {
            self.count("client-restart");
            let process = u64::from(node) + (life - 1) * u64::from(crate::NODES_MAX);
            self.processes.insert(node, process);
        }
    }

    fn event(
        &mut self,
        t_ns: u64,
        node: u32,
        kind: model::EventType,
        op: model::Op,
        error: Option<String>,
    ) {
        if kind == model::EventType::Invoke {
            self.under_way.insert(node, op.clone());
        } else {
            self.under_way.remove(&node);
        }
        let process = self.processes.get(&node).copied().unwrap_or(u64::from(node));
        if let Err(problem) = self.builder.event(t_ns, process, kind, op, error) {
            self.problems.push(problem.to_string());
        }
    }

    fn protocol(&mut self, t_ns: u64, node: u32, event: model::ProtocolEvent) {
        self.protocol.push(model::Protocol { t_ns, node, event });
    }

    /// A broker's event: into the history if the history has it, else counted.
    fn broker_event(&mut self, t_ns: u64, node: u32, event: BrokerEvent) {
        let mut count = |item: &'static str| *self.counted.entry(item).or_insert(0) += 1;
        let event = match event {
            BrokerEvent::Leader { partition, epoch } => {
                model::ProtocolEvent::Leader { partition, epoch: u64::from(epoch) }
            }
            BrokerEvent::Follower { partition, epoch } => {
                model::ProtocolEvent::Follower { partition, epoch: u64::from(epoch) }
            }
            BrokerEvent::HighWatermark { partition, offset } => {
                model::ProtocolEvent::HighWatermark { partition, offset }
            }
            BrokerEvent::Truncate { partition, offset } => {
                model::ProtocolEvent::Truncate { partition, offset }
            }
            BrokerEvent::IsrChange { shrank, grew, .. } => {
                if shrank {
                    count("isr-shrink");
                }
                if grew {
                    count("isr-grow");
                }
                return;
            }
            BrokerEvent::RecoveryCut { .. } => return count("recovery-truncation"),
            BrokerEvent::RecoveryTrusted { .. } => return count("recovery-trusted"),
            BrokerEvent::Appended { partition, base_offset, end_offset, crc } => {
                if self.written_batches >= WRITTEN_BATCHES_MAX {
                    return count("ledger-full");
                }
                let at = self.written.entry((node, partition)).or_default();
                let batches = at.entry(base_offset).or_default();
                let batch = WrittenBatch { end_offset, crc };
                if !batches.contains(&batch) {
                    batches.push(batch);
                    self.written_batches += 1;
                }
                return;
            }
            // Checked where the log can be read: `recovered`.
            BrokerEvent::Opened { .. } => return,
            BrokerEvent::Fenced { .. } => return count("fencing-refusal"),
            BrokerEvent::ProducerFenced { .. } => return count("producer-fenced"),
            BrokerEvent::TxnMarker { .. } => return count("txn-marker"),
            BrokerEvent::HeldFetchAnswered { by, .. } => {
                return count(match by {
                    HeldFetchEnd::Data => "long-poll-data",
                    HeldFetchEnd::Wait => "long-poll-wait",
                    HeldFetchEnd::Leadership => "long-poll-leadership",
                });
            }
        };
        self.protocol(t_ns, node, event);
    }

    /// A broker opened a partition's log at a start: how far it holds only batches the
    /// node itself wrote there, as a `recover` protocol event. `served` is what reads
    /// of the recovered log return, in order (each validated, up to the first a read
    /// refuses); the log itself says it runs from `log_start_offset` to
    /// `log_end_offset`. A batch the ledger does not know, or a part of the log no read
    /// serves, is held without proof.
    fn recovered(
        &mut self,
        t_ns: u64,
        node: u32,
        partition: u32,
        served: &[ServedBatch],
        (log_start_offset, log_end_offset): (u64, u64),
    ) {
        if self.written_batches >= WRITTEN_BATCHES_MAX {
            return; // the ledger stopped keeping: no verdict either way
        }
        let written = self.written.get(&(node, partition));
        if written.is_none() && log_end_offset == log_start_offset {
            return; // a first start: nothing written, nothing recovered
        }
        let batches = served;
        let served_end = batches.last().map_or(log_start_offset, |batch| batch.end_offset);
        let offset = batches
            .iter()
            .find(|served| {
                let batch = WrittenBatch { end_offset: served.end_offset, crc: served.crc };
                let known = written.and_then(|at| at.get(&served.base_offset));
                !known.is_some_and(|known| known.contains(&batch))
            })
            .map_or(served_end, |served| served.base_offset);
        self.protocol(
            t_ns,
            node,
            model::ProtocolEvent::Recover { partition, offset, log_end_offset },
        );
    }

    /// Closes the history with the protocol events and the replicas' final logs.
    pub fn finish(self, replicas: Vec<model::Replica>) -> Result<model::History, String> {
        let Recorder { mut builder, protocol, problems, .. } = self;
        if let Some(problem) = problems.first() {
            return Err(problem.clone());
        }
        for replica in replicas {
            builder.closing(model::Closing::Replica(replica)).map_err(|e| e.to_string())?;
        }
        for event in protocol {
            builder.closing(model::Closing::Protocol(event)).map_err(|e| e.to_string())?;
        }
        builder.finish().map_err(|e| e.to_string())
    }
}

/// A producer process: one send at a time, recorded.
pub struct ProducerNode {
    producer: Producer,
    sending: Option<(u32, String, String)>,
    /// An idle producer has nothing to time out: it ticks only while a send is on.
    ticking: bool,
}

/// A transactional producer process: one operation (init or transaction) at a time.
pub struct TxnProducerNode {
    producer: TxnProducer,
    /// The transaction under way, as invoked (its completion adds the offsets).
    txn: Option<Vec<model::MicroOp>>,
    ticking: bool,
}

/// One process of the cluster world.
pub enum ClusterNode {
    /// Built at `start` (a broker's incarnation is drawn then).
    Booting,
    /// A broker.
    Broker(Broker),
    /// The controller; `None` once its storage failed (at open, or later): it halts,
    /// and stays down until restarted.
    Controller(Option<Controller>),
    /// A plain producer (a producer slot without an event store or transactions).
    Producer(ProducerNode),
    /// A transactional producer (a producer slot with transactions, no event store).
    TxnProducer(Box<TxnProducerNode>),
    /// The transaction coordinator; `None` when its storage failed to open: it halts,
    /// and stays down until restarted.
    Coordinator(Option<Box<Coordinator>>),
    /// A consume-transform-produce processor.
    Processor(Box<Processor>),
    /// A plain consumer (a consumer slot without an event store).
    Consumer(Consumer),
    /// An event-store client (a producer slot of an event-store workload).
    EsClient(Box<EsClient>),
    /// An event-store projection (in the consumer slots of an event-store workload
    /// without transactions). One whose disk cannot be read stays `Booting`, idle; a
    /// halted one is crashed and restarted.
    EsProjection(Box<ProjectionNode>),
    /// A bank projection with exactly-once processing (an event store with
    /// transactions): its state and position live in its own output partition.
    EsTxnProjection(Box<TxnProjectionNode>),
}

/// Builds the processes of a cluster world.
pub fn factory(
    spec: ClusterSpec,
    recorder: SharedRecorder,
    es_recorder: SharedEsRecorder,
    projection: Option<OpenProjection>,
) -> impl FnMut(NodeId) -> ClusterProcess + 'static {
    // How many times each node has started: a process's life, which numbers its
    // requests apart from every earlier life's.
    let mut lives: BTreeMap<u32, u64> = BTreeMap::new();
    move |node| {
        let life = lives.entry(node.0).or_insert(0);
        *life += 1;
        ClusterProcess {
            spec: spec.clone(),
            recorder: recorder.clone(),
            es_recorder: es_recorder.clone(),
            projection,
            node: ClusterNode::Booting,
            polling: true,
            life: *life,
        }
    }
}

/// The correlation ids of a client's life `life` start here: a late answer to a request
/// of an earlier life (a restart closes a real client's connections) never matches one
/// of this life's. Each life has 2^32 ids.
fn client_correlation_base(life: u64) -> u64 {
    (life & 0xFFFF) << 32
}

/// One node of a cluster world, as the world runs it: the role its node id gives it
/// (see the module's node layout), built at each start.
pub struct ClusterProcess {
    spec: ClusterSpec,
    recorder: SharedRecorder,
    /// Commands recorded by event-store clients (empty without an event-store workload).
    es_recorder: SharedEsRecorder,
    /// How the event store's projections open (the domain's read model), if it has any.
    projection: Option<OpenProjection>,
    node: ClusterNode,
    /// Cleared at the end of a run so that in-flight polls can finish.
    polling: bool,
    /// How many times this node has started, this start included (from 1).
    life: u64,
}

impl ClusterProcess {
    /// The broker this node runs, if it is a broker.
    pub fn broker(&self) -> Option<&Broker> {
        match &self.node {
            ClusterNode::Broker(broker) => Some(broker),
            _ => None,
        }
    }

    /// Hands a unit of work to an event-store client; false if it is not one, or busy.
    pub fn es_submit(&mut self, ctx: &mut Context<'_, Self>, work: AnyWork) -> bool {
        let ClusterNode::EsClient(client) = &mut self.node else { return false };
        let taken = client.submit(ctx.now_ns(), work);
        self.flush(ctx);
        taken
    }

    /// An event-store client drops the work it has not started (the quiet phase).
    pub fn es_drop_waiting_work(&mut self) {
        if let ClusterNode::EsClient(client) = &mut self.node {
            client.drop_waiting_work();
        }
    }

    /// A consumer starts no new polls from now on (nor a processor new work).
    pub fn stop_polling(&mut self) {
        self.polling = false;
        match &mut self.node {
            ClusterNode::Processor(processor) => processor.stop(),
            ClusterNode::EsTxnProjection(node) => node.stop(),
            _ => {}
        }
    }

    /// Starts a send if the producer is idle; false if busy.
    pub fn send(&mut self, ctx: &mut Context<'_, Self>, partition: u32, value: String) -> bool {
        let ClusterNode::Producer(node) = &mut self.node else { return false };
        if node.sending.is_some() || !node.producer.is_idle() {
            return false;
        }
        let key = crate::numbered("k", u64::from(partition));
        let op = model::Op::Send {
            partition,
            key: Some(key.clone()),
            value: value.clone(),
            offset: None,
        };
        self.recorder.borrow_mut().event(
            ctx.global_now_ns(),
            ctx.node().0,
            model::EventType::Invoke,
            op,
            None,
        );
        node.sending = Some((partition, key.clone(), value.clone()));
        node.producer.send(ctx.now_ns(), partition, key, value);
        if !node.ticking && !node.producer.is_idle() {
            node.ticking = true;
            ctx.set_timer(CLIENT_TICK_NS, ());
        }
        self.flush(ctx);
        true
    }

    /// Starts a transaction writing `value` to each of `partitions`, if the producer is
    /// idle and holds its transactional id; an idle one without it takes it instead.
    /// False if no transaction started.
    pub fn transact(
        &mut self,
        ctx: &mut Context<'_, Self>,
        partitions: &[u32],
        value: String,
    ) -> bool {
        let ClusterNode::TxnProducer(node) = &mut self.node else { return false };
        if !node.producer.is_idle() {
            return false;
        }
        let (t_ns, me, now_ns) = (ctx.global_now_ns(), ctx.node().0, ctx.now_ns());
        let txn_id = node.producer.txn_id().to_owned();
        let started = if node.producer.ids().is_none() {
            self.recorder.borrow_mut().invoke(t_ns, me, model::Op::Init { txn_id });
            node.producer.init(now_ns);
            false
        } else {
            let ops: Vec<model::MicroOp> = partitions
                .iter()
                .map(|&p| model::MicroOp::send(p, Some(&format!("k{p}")), value.clone()))
                .collect();
            let records = partitions
                .iter()
                .map(|&partition| TxnRecord {
                    partition,
                    key: format!("k{partition}").into_bytes(),
                    value: value.clone().into_bytes(),
                    expected_version: None,
                })
                .collect();
            let op = model::Op::Txn { txn_id, ops: ops.clone() };
            self.recorder.borrow_mut().invoke(t_ns, me, op);
            node.txn = Some(ops);
            node.producer.transact(now_ns, records);
            true
        };
        if !node.ticking && !node.producer.is_idle() {
            node.ticking = true;
            ctx.set_timer(CLIENT_TICK_NS, ());
        }
        self.flush(ctx);
        started
    }

    /// Sends what the state machine produced and records what it reported.
    fn flush(&mut self, ctx: &mut Context<'_, Self>) {
        let t_ns = ctx.global_now_ns();
        let me = ctx.node().0;
        let mut recorder = self.recorder.borrow_mut();
        let mut halted = false;
        match &mut self.node {
            ClusterNode::Booting => {}
            ClusterNode::EsClient(client) => send_all(ctx, client.drain_outbox().into_iter()),
            ClusterNode::EsProjection(node) => {
                halted = node.halted().is_some();
                send_all(ctx, node.drain_outbox().into_iter());
            }
            ClusterNode::EsTxnProjection(node) => {
                recorder.steps(t_ns, me, node.drain_steps());
                halted = node.halted().is_some();
                send_all(ctx, node.drain_outbox().into_iter());
            }
            ClusterNode::Broker(broker) => {
                if broker.has_output() {
                    let mut opened = Vec::new();
                    for event in broker.drain_events() {
                        if let BrokerEvent::Opened { partition } = event {
                            opened.push(partition);
                        }
                        recorder.broker_event(t_ns, me, event);
                    }
                    for partition in opened {
                        let (served, bounds) = served_batches(broker, ctx, partition);
                        recorder.recovered(t_ns, me, partition, &served, bounds);
                    }
                    send_all(ctx, broker.drain_outbox());
                }
                halted = broker.halted().is_some();
            }
            ClusterNode::Controller(controller) => match controller {
                Some(controller) => send_all(ctx, controller.drain_outbox()),
                None => halted = true,
            },
            ClusterNode::Coordinator(coordinator) => match coordinator {
                Some(coordinator) => {
                    for event in coordinator.drain_events() {
                        recorder.count(match event {
                            CoordinatorEvent::TimedOut => "txn-timeout",
                            CoordinatorEvent::Fenced => "producer-fenced",
                            CoordinatorEvent::Completed { commit: true } => "txn-commit",
                            CoordinatorEvent::Completed { commit: false } => "txn-abort",
                        });
                    }
                    halted = coordinator.halted().is_some();
                    send_all(ctx, coordinator.drain_outbox());
                }
                None => halted = true,
            },
            ClusterNode::Processor(processor) => {
                recorder.steps(t_ns, me, processor.drain_steps());
                send_all(ctx, processor.drain_outbox().into_iter());
            }
            ClusterNode::TxnProducer(node) => {
                let txn_id = node.producer.txn_id().to_owned();
                for outcome in node.producer.drain_init() {
                    let op = model::Op::Init { txn_id: txn_id.clone() };
                    recorder.complete(t_ns, me, &outcome, op);
                }
                for ended in node.producer.drain_txn_ended() {
                    let outcome = ended.outcome;
                    let mut ops = node.txn.take().expect("a transaction was under way");
                    // The offsets a committed transaction's sends landed at; and those an
                    // indeterminate one's were acknowledged at (its commit went
                    // unanswered after every batch was): the history's results of an
                    // info operation, which the checker believes once any of its values
                    // is read (Jepsen's must-have-committed).
                    let offsets: Vec<Option<u64>> = match &outcome {
                        Outcome::Ok(offsets) => offsets.iter().copied().map(Some).collect(),
                        Outcome::Info(_) => ended.acknowledged,
                        Outcome::Fail(_) => Vec::new(),
                    };
                    for (op, at) in ops.iter_mut().zip(offsets) {
                        if let model::MicroOp::Send { offset, .. } = op {
                            *offset = at;
                        }
                    }
                    let op = model::Op::Txn { txn_id: txn_id.clone(), ops };
                    recorder.complete(t_ns, me, &outcome, op);
                }
                send_all(ctx, node.producer.drain_outbox());
            }
            ClusterNode::Producer(node) => {
                for outcome in node.producer.drain_done() {
                    let (partition, key, value) =
                        node.sending.take().expect("a send was under way");
                    let (kind, offset, error) = match outcome {
                        Outcome::Ok(offset) => (model::EventType::Ok, Some(offset), None),
                        Outcome::Fail(why) => (model::EventType::Fail, None, Some(why)),
                        Outcome::Info(why) => (model::EventType::Info, None, Some(why)),
                    };
                    let op = model::Op::Send { partition, key: Some(key), value, offset };
                    recorder.event(t_ns, me, kind, op, error);
                }
                send_all(ctx, node.producer.drain_outbox());
            }
            ClusterNode::Consumer(consumer) => {
                let isolation = model_isolation(consumer.isolation());
                for poll in consumer.drain_done() {
                    let (kind, records, error) = match poll.outcome {
                        Outcome::Ok(records) => {
                            let records = records
                                .into_iter()
                                .map(|r| model::Record {
                                    offset: r.offset,
                                    key: Some(r.key.into()),
                                    value: r.value.into(),
                                })
                                .collect();
                            (model::EventType::Ok, records, None)
                        }
                        Outcome::Fail(why) => (model::EventType::Fail, Vec::new(), Some(why)),
                        Outcome::Info(why) => (model::EventType::Info, Vec::new(), Some(why)),
                    };
                    let op = model::Op::Poll {
                        partition: poll.partition,
                        from: poll.from,
                        records,
                        isolation,
                        assignment: None,
                    };
                    recorder.event(t_ns, me, kind, op, error);
                    if poll.reset_to.is_some() {
                        // The consumer seeks back: an assign in the history's terms.
                        let partitions = (0..self.spec.total_partitions()).collect::<Vec<_>>();
                        let op = model::Op::Assign { partitions, seek: true };
                        recorder.event(t_ns, me, model::EventType::Invoke, op.clone(), None);
                        recorder.event(t_ns, me, model::EventType::Ok, op, None);
                    }
                }
                send_all(ctx, consumer.drain_outbox());
            }
        }
        drop(recorder);
        if halted {
            ctx.halt();
        }
    }
}

/// A batch a read of a log served (validated): where it sits and its CRC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ServedBatch {
    base_offset: u64,
    end_offset: u64,
    crc: u32,
}

/// The batches of a partition's log as its reads serve them (each validated), up to
/// the first the read path refuses, and the log's own start and end offsets.
fn served_batches(
    broker: &Broker,
    ctx: &mut Context<'_, ClusterProcess>,
    partition: u32,
) -> (Vec<ServedBatch>, (u64, u64)) {
    let Some(log) = broker.log(partition) else { return (Vec::new(), (0, 0)) };
    let mut batches = Vec::new();
    // A read that fails part way leaves what it served so far: the rest is never served.
    let _ =
        log.read_each(&mut LogDisk(ctx.disk()), log.start_offset(), usize::MAX, |bytes, header| {
            let (base_offset, end_offset) = (header.base_offset, header.end_offset());
            batches.push(ServedBatch { base_offset, end_offset, crc: batch::stored_crc(bytes) });
        });
    (batches, (log.start_offset(), log.end_offset()))
}

fn model_isolation(isolation: Isolation) -> model::Isolation {
    match isolation {
        Isolation::ReadCommitted => model::Isolation::ReadCommitted,
        Isolation::ReadUncommitted => model::Isolation::ReadUncommitted,
    }
}

fn send_all(ctx: &mut Context<'_, ClusterProcess>, outbox: impl Iterator<Item = (u32, Msg)>) {
    for (to, msg) in outbox {
        ctx.send(NodeId(to), msg);
    }
}

impl ClusterProcess {
    /// Servers tick often; clients only time out requests and start polls.
    fn tick_ns(&self, node: NodeId) -> u64 {
        if node.0 <= self.spec.brokers || Some(node) == self.spec.coordinator() {
            TICK_NS
        } else {
            CLIENT_TICK_NS
        }
    }
}

impl Process for ClusterProcess {
    type Message = Msg;
    type Timer = ();

    /// A message in the trace: the broker's own short form, never its records.
    fn describe(message: &Msg) -> String {
        message.summary()
    }

    fn start(&mut self, ctx: &mut Context<'_, Self>) {
        let spec = &self.spec;
        let id = ctx.node().0;
        self.node = if id < spec.brokers {
            let t_ns = ctx.global_now_ns();
            self.recorder.borrow_mut().protocol(t_ns, id, model::ProtocolEvent::Restart);
            ClusterNode::Broker(Broker::new(spec.broker_config(id), self.life))
        } else if id == spec.brokers {
            // A controller whose disk fails to open stays down (halts) until restarted.
            ClusterNode::Controller(
                Controller::open(&mut LogDisk(ctx.disk()), spec.controller_config()).ok(),
            )
        } else if let (Some(txn), true) = (&spec.txn, Some(NodeId(id)) == spec.coordinator()) {
            let config = spec.coordinator_config(txn, id);
            let now_ns = ctx.now_ns();
            ClusterNode::Coordinator(
                Coordinator::open(&mut LogDisk(ctx.disk()), config, now_ns).ok().map(Box::new),
            )
        } else if let (Some(_), true) = (&spec.txn, id >= spec.processor(0).0) {
            let index = id - spec.processor(0).0;
            let t_ns = ctx.global_now_ns();
            self.recorder.borrow_mut().restarted(t_ns, id);
            let config = ProcessorConfig {
                index,
                input: index % spec.partitions,
                output: spec.partitions + index,
                producer: spec.txn_producer_config(format!("p{index}")),
                offsets_in_txn: spec.txn.as_ref().is_none_or(|txn| txn.offsets_in_txn),
            };
            ClusterNode::Processor(Box::new(Processor::new(config, self.life, ctx.now_ns())))
        } else if let (Some(_), None, true) = (
            &spec.txn,
            &spec.es,
            id < spec.brokers + 1 + spec.producers && !spec.is_plain_producer(NodeId(id)),
        ) {
            let index = id - (spec.brokers + 1);
            let t_ns = ctx.global_now_ns();
            self.recorder.borrow_mut().restarted(t_ns, id);
            ClusterNode::TxnProducer(Box::new(TxnProducerNode {
                producer: TxnProducer::new(spec.txn_producer_config(format!("t{index}")))
                    .with_correlation_base(client_correlation_base(self.life)),
                txn: None,
                ticking: false,
            }))
        } else if let (Some(es), true) = (&spec.es, id < spec.brokers + 1 + spec.producers) {
            let config = LogStoreConfig {
                controller: spec.brokers,
                partitions: spec.partitions,
                acks: spec.acks,
                request_timeout_ns: 200_000_000,
                retry_backoff_ns: 20_000_000,
                attempts_max: 5,
                delivery_timeout_ns: 2_000_000_000,
                read_max_bytes: 256 * 1024,
                check_versions: es.expected_versions,
                transactions: spec.coordinator().map(|node| (node.0, format!("es{id}"))),
                life: self.life,
                refusals_definite: !spec.requests_may_repeat,
            };
            let store = LogStore::new(config);
            let recorder = self.es_recorder.clone();
            let mut client = EsClient::new(id, store, recorder, es.expected_versions);
            if spec.txn.is_some() {
                client = client.with_transfers_in_transactions();
            }
            ClusterNode::EsClient(Box::new(client))
        } else if spec.es.is_some() && id >= spec.brokers + 1 + spec.producers {
            let index = id - (spec.brokers + 1 + spec.producers);
            let reader = ReaderConfig {
                controller: spec.brokers,
                partition: index % spec.partitions,
                max_bytes: 64 * 1024,
                request_timeout_ns: 200_000_000,
                poll_every_ns: 20_000_000,
                correlation_base: client_correlation_base(self.life),
                // The last `read_uncommitted` projections read uncommitted (the weak
                // setup: they apply aborted transfers).
                isolation: match &spec.txn {
                    Some(txn) if index + txn.read_uncommitted >= spec.consumers => {
                        Isolation::ReadUncommitted
                    }
                    _ => Isolation::ReadCommitted,
                },
            };
            let t_ns = ctx.global_now_ns();
            let recorder = self.es_recorder.clone();
            if spec.txn.is_some() {
                // Exactly-once processing: state and position in its output partition.
                let output = spec.partitions + index;
                let producer = spec.txn_producer_config(format!("projection{index}"));
                let (life, now_ns) = (self.life, ctx.now_ns());
                self.recorder.borrow_mut().restarted(t_ns, id);
                let node = TxnProjectionNode::new(
                    id,
                    (reader, output),
                    producer,
                    recorder,
                    (life, now_ns),
                    spec.txn.as_ref().is_none_or(|txn| txn.offsets_in_txn),
                );
                ClusterNode::EsTxnProjection(Box::new(node))
            } else {
                let open = self
                    .projection
                    .expect("a scenario with projections names a domain that has one");
                match ProjectionNode::open(
                    &mut LogDisk(ctx.disk()),
                    id,
                    open,
                    reader,
                    recorder,
                    t_ns,
                ) {
                    Ok(node) => ClusterNode::EsProjection(Box::new(node)),
                    Err(_) => ClusterNode::Booting, // its disk cannot be read: it stays idle
                }
            }
        } else if id < spec.brokers + 1 + spec.producers {
            let config = ProducerConfig {
                controller: spec.brokers,
                partitions: spec.partitions,
                acks: spec.acks,
                idempotent: spec.idempotent,
                request_timeout_ns: 200_000_000,
                retry_backoff_ns: 20_000_000,
                attempts_max: 5,
                delivery_timeout_ns: 2_000_000_000,
                refusals_definite: !spec.requests_may_repeat,
            };
            let t_ns = ctx.global_now_ns();
            self.recorder.borrow_mut().client_started(t_ns, id, self.life);
            ClusterNode::Producer(ProducerNode {
                producer: Producer::new(config)
                    .with_correlation_base(client_correlation_base(self.life)),
                sending: None,
                ticking: false,
            })
        } else {
            let index = id - (spec.brokers + 1 + spec.producers);
            let config = ConsumerConfig {
                controller: spec.brokers,
                partitions: (0..spec.total_partitions()).collect(),
                request_timeout_ns: 200_000_000,
                max_bytes: 64 * 1024,
                isolation: spec.isolation(index),
            };
            let t_ns = ctx.global_now_ns();
            self.recorder.borrow_mut().client_started(t_ns, id, self.life);
            ClusterNode::Consumer(
                Consumer::new(config).with_correlation_base(client_correlation_base(self.life)),
            )
        };
        if !matches!(self.node, ClusterNode::Producer(_) | ClusterNode::TxnProducer(_)) {
            ctx.set_timer(self.tick_ns(ctx.node()), ());
        }
        self.flush(ctx);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        let now_ns = ctx.now_ns();
        match &mut self.node {
            ClusterNode::Booting => {}
            ClusterNode::Broker(broker) => {
                broker.handle(&mut LogDisk(ctx.disk()), now_ns, from.0, msg)
            }
            ClusterNode::Controller(Some(controller)) => {
                if controller.handle(&mut LogDisk(ctx.disk()), now_ns, from.0, msg).is_err() {
                    self.node = ClusterNode::Controller(None);
                }
            }
            ClusterNode::Controller(None) => {}
            ClusterNode::Producer(node) => node.producer.handle(now_ns, msg),
            ClusterNode::TxnProducer(node) => node.producer.handle(now_ns, msg),
            ClusterNode::Processor(processor) => processor.handle(now_ns, msg),
            ClusterNode::Coordinator(Some(coordinator)) => {
                coordinator.handle(&mut LogDisk(ctx.disk()), now_ns, from.0, msg)
            }
            ClusterNode::Coordinator(None) => {}
            ClusterNode::Consumer(consumer) => consumer.handle(now_ns, msg),
            ClusterNode::EsClient(client) => client.handle(now_ns, msg),
            ClusterNode::EsProjection(node) => {
                let t_ns = ctx.global_now_ns();
                node.handle(&mut LogDisk(ctx.disk()), now_ns, t_ns, &msg)
            }
            ClusterNode::EsTxnProjection(node) => node.handle(now_ns, ctx.global_now_ns(), msg),
        }
        self.flush(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _: TimerId, (): ()) {
        let now_ns = ctx.now_ns();
        match &mut self.node {
            ClusterNode::Booting => {}
            ClusterNode::Broker(broker) => broker.tick(&mut LogDisk(ctx.disk()), now_ns),
            ClusterNode::Controller(Some(controller)) => {
                if controller.tick(&mut LogDisk(ctx.disk()), now_ns).is_err() {
                    self.node = ClusterNode::Controller(None);
                }
            }
            ClusterNode::Controller(None) => {}
            ClusterNode::Producer(node) => {
                node.producer.tick(now_ns);
                node.ticking = !node.producer.is_idle();
            }
            ClusterNode::TxnProducer(node) => {
                node.producer.tick(now_ns);
                node.ticking = !node.producer.is_idle();
            }
            ClusterNode::Processor(processor) => processor.tick(now_ns),
            ClusterNode::Coordinator(Some(coordinator)) => {
                coordinator.tick(&mut LogDisk(ctx.disk()), now_ns)
            }
            ClusterNode::Coordinator(None) => {}
            ClusterNode::EsClient(client) => client.tick(now_ns),
            ClusterNode::EsProjection(node) => node.tick(now_ns),
            ClusterNode::EsTxnProjection(node) => node.tick(now_ns, ctx.global_now_ns()),
            ClusterNode::Consumer(consumer) => {
                consumer.tick(now_ns);
                // A poll that timed out is recorded before the next one starts.
                self.flush(ctx);
                let ClusterNode::Consumer(consumer) = &mut self.node else { unreachable!() };
                if let Some((partition, from)) = consumer.next_poll().filter(|_| self.polling) {
                    if consumer.poll(now_ns) {
                        let isolation = model_isolation(consumer.isolation());
                        let op = model::Op::Poll {
                            partition,
                            from,
                            records: Vec::new(),
                            isolation,
                            assignment: None,
                        };
                        let (t_ns, me) = (ctx.global_now_ns(), ctx.node().0);
                        self.recorder.borrow_mut().event(
                            t_ns,
                            me,
                            model::EventType::Invoke,
                            op,
                            None,
                        );
                    }
                }
            }
        }
        let rearm = match &self.node {
            ClusterNode::Producer(node) => node.ticking,
            ClusterNode::TxnProducer(node) => node.ticking,
            _ => true,
        };
        if rearm {
            ctx.set_timer(self.tick_ns(ctx.node()), ());
        }
        self.flush(ctx);
    }

    fn on_operator(&mut self, ctx: &mut Context<'_, Self>, action: u64) {
        if let ClusterNode::Controller(Some(controller)) = &mut self.node {
            let partition = (action % u64::from(self.spec.total_partitions())) as u32;
            if controller.move_leader(partition, ctx.now_ns()) {
                self.recorder.borrow_mut().count("leader-move");
            }
            self.flush(ctx);
        }
    }

    fn on_synced(
        &mut self,
        ctx: &mut Context<'_, Self>,
        ticket: crate::SyncTicket,
        result: crate::SyncResult,
    ) {
        let (ticket, result) = (sync_ticket(ticket), sync_result(result));
        match &mut self.node {
            ClusterNode::Broker(broker) => {
                let now_ns = ctx.now_ns();
                broker.on_synced(&mut LogDisk(ctx.disk()), now_ns, ticket, result)
            }
            ClusterNode::Controller(Some(controller)) => {
                let failed = controller.owns(ticket)
                    && controller.on_synced(&mut LogDisk(ctx.disk()), ticket, result).is_err();
                if failed {
                    self.node = ClusterNode::Controller(None);
                }
            }
            ClusterNode::EsProjection(node) => {
                node.on_synced(&mut LogDisk(ctx.disk()), ticket, result)
            }
            ClusterNode::Coordinator(Some(coordinator)) if coordinator.owns(ticket) => {
                coordinator.on_synced(&mut LogDisk(ctx.disk()), ticket, result)
            }
            _ => {}
        }
        self.flush(ctx);
    }
}

/// Bytes as the history's text: valid UTF-8 (what clients write) copied as it is, anything
/// else as `String::from_utf8_lossy` makes it.
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Every up broker's replicas, as the history's closing lines: records as bytes read
/// back, the log start and the high watermark.
pub fn final_replicas(
    world: &mut crate::World<ClusterProcess>,
    spec: &ClusterSpec,
) -> Vec<model::Replica> {
    let mut replicas = Vec::new();
    for id in 0..spec.brokers {
        let node = NodeId(id);
        let Some(process) = world.process(node) else { continue };
        let Some(broker) = process.broker() else { continue };
        let partitions: Vec<u32> = broker.partitions().collect();
        for partition in partitions {
            let records = world
                .with_process(node, |process, ctx| {
                    let broker = process.broker().expect("a broker");
                    let log = broker.log(partition).expect("hosted");
                    let aborted_txns = broker.aborted_txns(partition);
                    // Room for one record per offset (fewer with markers or a cut log).
                    let held = log.end_offset().saturating_sub(log.start_offset());
                    let mut records = Vec::with_capacity(usize::try_from(held).unwrap_or(0));
                    let mut aborted = Vec::new();
                    // Each batch is validated as it is read; its records are turned into
                    // the history's text straight from the bytes. Markers are not
                    // records: their offsets stay empty.
                    log.read_each(
                        &mut LogDisk(ctx.disk()),
                        log.start_offset(),
                        usize::MAX,
                        |bytes, header| {
                            if header.is_control() {
                                return;
                            }
                            let base = header.base_offset;
                            let of_aborted = header.is_transactional()
                                && aborted_txns
                                    .iter()
                                    .any(|txn| txn.covers(header.producer.producer_id, base));
                            if of_aborted {
                                aborted.extend(base..base + u64::from(header.record_count));
                            }
                            records.extend(batch::record_views(bytes, header).enumerate().map(
                                |(i, r)| {
                                    let (key, value) = (text(r.key), text(r.value));
                                    model::Record {
                                        offset: base + i as u64,
                                        key: Some(key.into()),
                                        value: value.into(),
                                    }
                                },
                            ));
                        },
                    )
                    .ok()?;
                    Some((records, aborted))
                })
                .flatten();
            let Some((records, aborted)) = records else { continue };
            let broker = world.process(node).and_then(ClusterProcess::broker).expect("still up");
            let log = broker.log(partition).expect("hosted");
            let high_watermark = broker.high_watermark(partition).unwrap_or(0);
            let last_stable_offset = broker.last_stable_offset(partition).unwrap_or(0);
            replicas.push(model::Replica {
                node: id,
                partition,
                log_start_offset: log.start_offset(),
                high_watermark,
                // Stated only when it says something (a history without transactions
                // reads as it always did).
                last_stable_offset: (last_stable_offset < high_watermark)
                    .then_some(last_stable_offset),
                aborted,
                // Stated when markers follow the last record.
                log_end_offset: Some(log.end_offset()).filter(|&end| {
                    end != records.last().map_or(log.start_offset(), |r| r.offset + 1)
                }),
                records,
            });
        }
    }
    replicas
}

/// `count` nodes from `first`, under `name` (`brokers n0-n2`, `controller n3`); none for
/// none.
fn role(name: &str, first: u32, count: u32) -> Option<String> {
    match count {
        0 => None,
        1 => Some(format!("{name} n{first}")),
        _ => Some(format!("{name} n{first}-n{}", first + count - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base_offset: u64, end_offset: u64, crc: u32) -> ServedBatch {
        ServedBatch { base_offset, end_offset, crc }
    }

    /// What a recovery of partition 0 on n1 reports, after n1 wrote `written`, when reads
    /// of the recovered log serve `served` and the log says it spans `bounds`.
    fn recover_event(
        written: &[ServedBatch],
        served: &[ServedBatch],
        bounds: (u64, u64),
    ) -> Option<model::ProtocolEvent> {
        let header = model::Header::new("test", model::Config::default());
        let recorder = Recorder::new(header);
        let mut recorder = recorder.borrow_mut();
        for written in written {
            let ServedBatch { base_offset, end_offset, crc } = *written;
            let event = BrokerEvent::Appended { partition: 0, base_offset, end_offset, crc };
            recorder.broker_event(1, 1, event);
        }
        recorder.recovered(2, 1, 0, served, bounds);
        recorder.protocol.last().map(|protocol| protocol.event)
    }

    #[test]
    fn a_recovered_log_is_proven_only_as_far_as_the_ledger_and_the_reads_go() {
        let written = [batch(0, 3, 11), batch(3, 5, 12), batch(5, 9, 13)];
        // A batch at offset 3 from an earlier life, later truncated and written anew.
        let rewritten = [batch(0, 3, 11), batch(3, 5, 12), batch(3, 4, 21), batch(4, 6, 22)];
        // (what, written, served, the log's bounds, proven up to: None for no event)
        type Case<'a> = (&'a str, &'a [ServedBatch], &'a [ServedBatch], (u64, u64), Option<u64>);
        let cases: &[Case<'_>] = &[
            ("everything it wrote", &written, &written, (0, 9), Some(9)),
            ("a prefix: the unsynced tail lost", &written, &written[..2], (0, 5), Some(5)),
            ("nothing written, nothing held: no event", &[], &[], (0, 0), None),
            ("all lost: an empty log is a prefix", &written, &[], (0, 0), Some(0)),
            // Recovery kept a torn batch: its header survived, reads refuse its body.
            ("a torn tail kept", &written, &written[..2], (0, 9), Some(5)),
            (
                "a batch it never wrote",
                &written,
                &[batch(0, 3, 11), batch(3, 5, 99)],
                (0, 5),
                Some(3),
            ),
            ("a batch of an earlier life", &rewritten, &rewritten[..2], (0, 5), Some(5)),
            (
                "an old batch where a new one ended",
                &rewritten,
                &[rewritten[0], batch(3, 5, 21)],
                (0, 5),
                Some(3),
            ),
        ];
        for &(what, written, served, bounds, proven) in cases {
            let event = recover_event(written, served, bounds);
            let expected = proven.map(|offset| model::ProtocolEvent::Recover {
                partition: 0,
                offset,
                log_end_offset: bounds.1,
            });
            assert_eq!(event, expected, "{what}");
        }
    }
}
