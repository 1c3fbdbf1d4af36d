//! A bank projection with exactly-once processing: it reads its input partition (read
//! committed) and, for each batch of events, runs one transaction that writes the new
//! balance of every account the batch changed to its own output partition (a
//! changelog) together with its position (an `offsets` record holding the next input
//! offset). It keeps nothing on a disk of its own: a restart takes its transactional
//! id again, which fences its earlier life and aborts what that life left open, then
//! reads its output back (read committed, to a caught-up log end) and resumes with the
//! balances and the position of its last committed transaction. So every event's
//! effect is in the read model exactly once, however often it crashes, if the
//! transactions are right.
//!
//! Every committed transaction and every recovery is recorded as a projection
//! checkpoint (next input offset, balances) for `model::es`, which judges it against
//! the reference fold of the input below that offset. Its `init`s and transactions
//! (their sends, and the input range each commits) go into the log's history too, like
//! a consume-transform-produce processor's, where `exactly-once` judges the ranges.
//! Output values carry `~<life>.<attempt>` (and a balance its account), so every send
//! is unique.

use logjam_broker::client::Outcome;
use logjam_broker::protocol::{Isolation, Msg, NodeId};
use logjam_broker::txn_producer::{TxnProducer, TxnProducerConfig};
use logjam_eventstore::envelope::decode_ref;
use logjam_eventstore::projection::{BankBalances, ReadModel};
use logjam_eventstore::reader::{PartitionReader, PartitionRecord, ReaderConfig};
use logjam_eventstore::store::base_stream;
use logjam_model as model;
use logjam_model::es::ProjectionCheckpoint;

use crate::es_client::SharedEsRecorder;
use crate::txn_processor::{Step, kind_of, txn_records};

/// Input events per transaction, at most.
pub const BATCH_EVENTS_MAX: usize = 8;
/// Input records read ahead of the transaction under way, at most.
const PENDING_RECORDS_MAX: usize = 256;
/// The key of the position records in the output: `offsets/<transactional id>`.
const OFFSETS_KEY_PREFIX: &str = "offsets/";
/// Correlation ids: the producer's from `life << 44`; every reader's (input, or the
/// output's read-back) from `READERS_CORRELATION_BASE`, 2^24 each, numbered by the life
/// and the readers it made, so an answer still in flight to an earlier reader (of this
/// life or of one before a crash) is never taken for a later one's.
const READERS_CORRELATION_BASE: u64 = 1 << 62;

enum Phase {
    /// Taking the transactional id (again).
    Init,
    /// Reading the output back: the balances and the position it last committed.
    Recover { reader: Box<PartitionReader>, balances: BankBalances, committed_to: u64 },
    /// Reading input; a transaction starts once there is some.
    Poll,
    /// A transaction over the input below `to`: what it commits, the balances it would
    /// commit, and its operation for the history.
    Transact { to: u64, commits: Commits, balances: BankBalances, ops: Vec<model::MicroOp> },
}

/// What one of the projection's transactions commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Commits {
    /// A batch's output and the position after it (exactly once; also the weak setup's
    /// transaction for a batch that changed nothing).
    OutputAndPosition,
    /// A batch's output alone: its position follows in a transaction of its own (the
    /// weak setup).
    Output,
    /// The position alone, after its output's transaction (the weak setup).
    Position,
}

/// A bank projection with exactly-once processing, as a state machine (sans-IO: the
/// cluster process carries its messages).
pub struct TxnProjectionNode {
    node: u32,
    input: ReaderConfig,
    output: u32,
    producer: TxnProducer,
    reader: PartitionReader,
    phase: Phase,
    /// The balances of the last committed transaction, and the input offset it covers.
    committed: BankBalances,
    position: u64,
    /// Input records read and not yet in a committed transaction, in offset order.
    pending: Vec<PartitionRecord>,
    /// Readers made in this life (input and recovery), for their correlation ranges.
    readers_made: u64,
    running: bool,
    recorder: SharedEsRecorder,
    /// Why it stopped: an event its read model cannot take.
    halted: Option<String>,
    /// Makes output values unique across lives: drawn at start.
    life: u64,
    /// The position commits in the output's transaction (exactly once); off: in a
    /// transaction of its own after it (the weak setup: a crash between the two makes
    /// a batch count twice).
    offsets_in_txn: bool,
    attempts: u64,
    /// What it did, for the log's history, in order.
    steps: Vec<Step>,
}

impl TxnProjectionNode {
    /// A projection of `input.partition` into `output`, under the transactional id of
    /// `producer`.
    pub fn new(
        node: u32,
        (input, output): (ReaderConfig, u32),
        producer: TxnProducerConfig,
        recorder: SharedEsRecorder,
        (life, now_ns): (u64, u64),
        offsets_in_txn: bool,
    ) -> TxnProjectionNode {
        *recorder.borrow_mut().projection_opens.entry(node).or_insert(0) += 1;
        let mut projection = TxnProjectionNode {
            node,
            reader: PartitionReader::new(input.clone(), 0), // replaced once recovered
            input,
            output,
            producer: TxnProducer::new(producer).with_correlation_base((life & 0xFFFF) << 44),
            phase: Phase::Init,
            committed: BankBalances::default(),
            position: 0,
            pending: Vec::new(),
            readers_made: 0,
            running: true,
            recorder,
            halted: None,
            life,
            offsets_in_txn,
            attempts: 0,
            steps: Vec::new(),
        };
        projection.init(now_ns);
        projection
    }

    /// Takes what it did since the last call, for the log's history, in order.
    pub fn drain_steps(&mut self) -> std::vec::Drain<'_, Step> {
        self.steps.drain(..)
    }

    fn init_op(&self) -> model::Op {
        model::Op::Init { txn_id: self.producer.txn_id().to_owned() }
    }

    fn init(&mut self, now_ns: u64) {
        self.phase = Phase::Init;
        if self.running {
            self.steps.push(Step::Invoke(self.init_op()));
            self.producer.init(now_ns);
        }
    }

    /// Why it stopped, if it did: an event its read model cannot take.
    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    /// It starts nothing new from now on (the end of the run); what is under way ends.
    pub fn stop(&mut self) {
        self.running = false;
    }

    /// Takes the messages to send, as (node, message).
    pub fn drain_outbox(&mut self) -> Vec<(NodeId, Msg)> {
        let mut out: Vec<(NodeId, Msg)> = self.producer.drain_outbox().collect();
        if let Phase::Recover { reader, .. } = &mut self.phase {
            out.extend(reader.drain_outbox());
        }
        out.extend(self.reader.drain_outbox());
        out
    }

    /// The passing of time: `now_ns` on the node's clock (timeouts, retries, polls),
    /// `t_ns` the world's time for what it records.
    pub fn tick(&mut self, now_ns: u64, t_ns: u64) {
        self.producer.tick(now_ns);
        if let Phase::Recover { reader, .. } = &mut self.phase {
            reader.tick(now_ns);
        }
        if matches!(self.phase, Phase::Poll | Phase::Transact { .. }) && self.running {
            self.reader.tick(now_ns);
        }
        self.settle(now_ns, t_ns);
    }

    /// A message from the cluster, for its readers or its producer; `now_ns` is the
    /// node's clock, `t_ns` the world's time for what it records.
    pub fn handle(&mut self, now_ns: u64, t_ns: u64, msg: Msg) {
        let taken = match &mut self.phase {
            Phase::Recover { reader, .. } => reader.handle(now_ns, &msg),
            _ => false,
        };
        if !taken && !self.reader.handle(now_ns, &msg) {
            self.producer.handle(now_ns, msg);
        }
        self.settle(now_ns, t_ns);
    }

    fn record(&self, t_ns: u64) {
        self.recorder.borrow_mut().projections.push(ProjectionCheckpoint {
            consumer: self.node,
            t_ns,
            partition: self.input.partition,
            offset: self.position,
            read_model: serde_json::to_value(&self.committed.balances).expect("serializes"),
            read_uncommitted: self.input.isolation == Isolation::ReadUncommitted,
        });
    }

    /// Takes in whatever ended, and starts what comes next.
    fn settle(&mut self, now_ns: u64, t_ns: u64) {
        if self.halted.is_some() {
            return;
        }
        let init = self.producer.drain_init().next();
        if let Some(outcome) = init {
            let (kind, why) = kind_of(&outcome);
            self.steps.push(Step::Complete(kind, self.init_op(), why));
            if kind == model::EventType::Ok {
                self.begin_recovery(now_ns);
            } else {
                self.init(now_ns); // the coordinator may be down: again
            }
        }
        if let Phase::Recover { reader, balances, committed_to } = &mut self.phase {
            for (_, key, value) in reader.drain_records() {
                let value = String::from_utf8_lossy(&value);
                // `<value>~<life>.<attempt>`
                let value = value.split('~').next().unwrap_or_default();
                if key.starts_with(OFFSETS_KEY_PREFIX.as_bytes()) {
                    let to = value.split_once('-').and_then(|(_, to)| to.parse().ok());
                    *committed_to = to.unwrap_or(*committed_to);
                } else if let (Ok(stream), Ok(balance)) = (String::from_utf8(key), value.parse()) {
                    balances.balances.insert(stream, balance);
                }
            }
            if reader.caught_up() {
                let Phase::Recover { balances, committed_to, .. } =
                    std::mem::replace(&mut self.phase, Phase::Poll)
                else {
                    unreachable!("recovering")
                };
                self.committed = balances;
                self.position = committed_to;
                self.pending.clear();
                self.reader =
                    self.new_reader(self.input.partition, self.input.isolation, committed_to);
                self.record(t_ns);
            }
        }
        if matches!(self.phase, Phase::Poll | Phase::Transact { .. })
            && self.pending.len() < PENDING_RECORDS_MAX
        {
            self.pending.extend(self.reader.drain_records());
        }
        let txn = self.producer.drain_txn().next();
        if let Some(outcome) = txn {
            let Phase::Transact { to, commits, balances, mut ops } =
                std::mem::replace(&mut self.phase, Phase::Poll)
            else {
                unreachable!("a transaction was under way")
            };
            let (kind, why) = kind_of(&outcome);
            if let Outcome::Ok(offsets) = &outcome {
                let sends = ops.iter_mut().filter_map(|op| match op {
                    model::MicroOp::Send { offset, .. } => Some(offset),
                    _ => None,
                });
                for (slot, &at) in sends.zip(offsets) {
                    *slot = Some(at);
                }
            }
            let txn_id = self.producer.txn_id().to_owned();
            self.steps.push(Step::Complete(kind, model::Op::Txn { txn_id, ops }, why));
            match outcome {
                // The weak setup's second step: nothing more to do.
                Outcome::Ok(_) if commits == Commits::Position => {}
                Outcome::Ok(_) => {
                    let from = self.position;
                    self.committed = balances;
                    self.position = to;
                    self.pending.retain(|(offset, _, _)| *offset >= to);
                    self.record(t_ns);
                    if commits == Commits::Output {
                        self.commit_position(now_ns, from, to);
                    }
                }
                // The position stays uncommitted until a later batch commits one.
                Outcome::Fail(_)
                    if commits == Commits::Position && self.producer.ids().is_some() => {}
                // Aborted: the same input again, from the last committed position.
                Outcome::Fail(_) if self.producer.ids().is_some() => {
                    self.pending.clear();
                    let (partition, isolation) = (self.input.partition, self.input.isolation);
                    self.reader = self.new_reader(partition, isolation, self.position);
                }
                // Fenced, or it may have committed: only the output can say.
                _ => self.init(now_ns),
            }
        }
        if matches!(self.phase, Phase::Poll) && self.running && !self.pending.is_empty() {
            self.transact(now_ns);
        }
    }

    fn begin_recovery(&mut self, now_ns: u64) {
        let output = self.output;
        let mut reader = Box::new(self.new_reader(output, Isolation::ReadCommitted, 0));
        reader.tick(now_ns);
        self.phase = Phase::Recover { reader, balances: BankBalances::default(), committed_to: 0 };
    }

    /// A reader of `partition` from `from`, with a correlation range of its own.
    fn new_reader(&mut self, partition: u32, isolation: Isolation, from: u64) -> PartitionReader {
        let range = ((self.life & 0xFFFF) << 20) | (self.readers_made & 0xF_FFFF);
        self.readers_made += 1;
        let config = ReaderConfig {
            partition,
            isolation,
            correlation_base: READERS_CORRELATION_BASE + (range << 24),
            ..self.input.clone()
        };
        PartitionReader::new(config, from)
    }

    /// One transaction: the next events' effects and the position after them.
    fn transact(&mut self, now_ns: u64) {
        let mut balances = self.committed.clone();
        let mut changed: Vec<String> = Vec::new();
        let mut to = self.position;
        for (offset, key, value) in self.pending.iter().take(BATCH_EVENTS_MAX) {
            to = offset + 1;
            let Ok(stream) = std::str::from_utf8(key) else { continue };
            // Snapshots sit next to their streams, under their own names: not events.
            if !BankBalances::wants(stream) || base_stream(stream) != stream {
                continue;
            }
            let applied =
                decode_ref(value).map_err(|error| error.to_string()).and_then(|envelope| {
                    balances.apply(stream, *offset, envelope).map_err(|error| error.to_string())
                });
            if let Err(error) = applied {
                self.halted = Some(format!("offset {offset}: {error}"));
                return;
            }
            if !changed.iter().any(|s| s == stream) {
                changed.push(stream.to_owned());
            }
        }
        let from = self.position;
        let attempt = self.next_attempt();
        let mut ops: Vec<model::MicroOp> = changed
            .iter()
            .map(|stream| {
                // Unique per send: two accounts of a batch may hold the same balance.
                let value = format!("{}~{attempt}/{stream}", balances.balances[stream]);
                model::MicroOp::send(self.output, Some(stream), value)
            })
            .collect();
        // The weak setup commits the position after the output, unless there is no
        // output: then the position's transaction stands for the range alone.
        let commits = if self.offsets_in_txn || ops.is_empty() {
            ops.push(self.offsets_send(from, to, &attempt));
            Commits::OutputAndPosition
        } else {
            Commits::Output
        };
        // The input range this transaction's output stands for (and, with the position
        // in it, commits).
        ops.push(model::MicroOp::commit_offset(self.group(), self.input.partition, from, to));
        self.run_txn(now_ns, Phase::Transact { to, commits, balances, ops });
    }

    /// The weak setup's second transaction: the position alone, after the output's.
    fn commit_position(&mut self, now_ns: u64, from: u64, to: u64) {
        let attempt = self.next_attempt();
        let ops = vec![self.offsets_send(from, to, &attempt)];
        let balances = self.committed.clone();
        self.run_txn(now_ns, Phase::Transact { to, commits: Commits::Position, balances, ops });
    }

    fn next_attempt(&mut self) -> String {
        self.attempts += 1;
        format!("{:x}.{}", self.life, self.attempts)
    }

    fn group(&self) -> String {
        self.producer.txn_id().to_owned()
    }

    fn offsets_send(&self, from: u64, to: u64, attempt: &str) -> model::MicroOp {
        let key = format!("{OFFSETS_KEY_PREFIX}{}", self.group());
        model::MicroOp::send(self.output, Some(&key), format!("{from}-{to}~{attempt}"))
    }

    fn run_txn(&mut self, now_ns: u64, phase: Phase) {
        let Phase::Transact { ops, .. } = &phase else { unreachable!("a transaction") };
        let records = txn_records(ops);
        let op = model::Op::Txn { txn_id: self.group(), ops: ops.clone() };
        self.steps.push(Step::Invoke(op));
        self.phase = phase;
        self.producer.transact(now_ns, records);
    }
}
