//! A consume-transform-produce processor: exactly-once processing on transactions.
//!
//! It reads an input partition (`read_committed`) and, for each batch of records it
//! polled, runs one transaction that writes a record per input to its output partition
//! and commits its position with them: an offsets record (key `offsets/<group>`, value
//! `<from>-<to>~<attempt>`) in the same output partition, Kafka's
//! `sendOffsetsToTransaction` with the offsets kept next to the output. A restart (or
//! an outcome it cannot know) takes the transactional id again, which fences its
//! earlier life and aborts what that life left open, then reads its output back to the
//! last committed offsets record and resumes from there. If the protocol is right,
//! every input record's output is committed exactly once, however often it crashes.
//!
//! Each step is one history operation of the processor's process: `init`, the polls of
//! its recovery and of its input, an `assign` whenever it seeks, and the transactions,
//! whose `commit-offset` micro-op names the input range they processed.

use logjam_broker::client::{Consumer, ConsumerConfig, Outcome, PollResult};
use logjam_broker::protocol::{Isolation, Msg, NodeId};
use logjam_broker::txn_producer::{TxnProducer, TxnProducerConfig, TxnRecord};
use logjam_model as model;

/// Input records per transaction, at most.
pub const BATCH_RECORDS_MAX: usize = 8;
/// The recovery reader numbers its requests apart from the input consumer's.
const RECOVERY_CORRELATION_BASE: u64 = 1 << 40;
/// The input consumer numbers its requests apart from the producer's.
const INPUT_CORRELATION_BASE: u64 = 1 << 36;

/// Each life's correlation ids sit above 2^44 (the life's low 16 bits), so a late
/// answer to a request of an earlier life is never taken for one of this life's.
fn life_base(life: u64) -> u64 {
    (life & 0xFFFF) << LIFE_SHIFT
}

/// Bits 44 and up number the life; the readers' bases sit below them.
const LIFE_SHIFT: u32 = 44;

/// A fetch answer for the recovery reader (whatever life's base it carries), not the
/// input consumer.
fn for_recovery(correlation: u64) -> bool {
    correlation & ((1 << LIFE_SHIFT) - 1) >= RECOVERY_CORRELATION_BASE
}

/// The consumer group of processor `index` (`g0`), as its `commit-offset`s name it.
pub fn group_name(index: u32) -> String {
    format!("g{index}")
}

/// What the processor did, for the history, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// An operation began.
    Invoke(model::Op),
    /// An operation ended: how (ok, fail or info), the operation with its results, and
    /// the error, if any.
    Complete(model::EventType, model::Op, Option<String>),
}

#[derive(Clone, Debug)]
enum Phase {
    /// Taking the transactional id (again).
    Init,
    /// Reading the output back to its last offsets record.
    Recover { committed_to: u64 },
    /// Polling the input.
    Poll,
    /// A transaction over input `[from, to)`; or, with the position committed after the
    /// output (`offsets_in_txn` off), the transaction that commits it alone.
    Transact { from: u64, to: u64, ops: Vec<model::MicroOp>, offsets_only: bool },
}

/// A consume-transform-produce processor's state machine (sans-IO: the cluster
/// process carries its messages).
pub struct Processor {
    group: String,
    input: u32,
    output: u32,
    producer: TxnProducer,
    recovery: Consumer,
    consumer: Consumer,
    phase: Phase,
    /// The operation under way (its completion repeats it).
    current: Option<model::Op>,
    /// The next input offset to process.
    position: u64,
    /// Makes output values unique across attempts and lives: drawn at start.
    life: u64,
    attempts: u64,
    running: bool,
    /// The position is committed in the output's transaction (exactly once); off: in a
    /// transaction of its own after it (the weak setup: a crash between the two makes
    /// the input processed again).
    offsets_in_txn: bool,
    steps: Vec<Step>,
}

/// How the processor reaches the cluster.
pub struct ProcessorConfig {
    /// The processor's number: its consumer group is `g<index>` (`group_name`).
    pub index: u32,
    /// The partition it reads.
    pub input: u32,
    /// The partition it writes its output and its offsets records to.
    pub output: u32,
    /// Its transactional producer (the cluster's, under the processor's own id).
    pub producer: TxnProducerConfig,
    /// It commits its position in the output's transaction (false: in a transaction
    /// of its own after it, the weak setup).
    pub offsets_in_txn: bool,
}

impl Processor {
    /// A processor in life `life` (its node's starts, this one included), which
    /// takes its transactional id at once; `now_ns` is the node's clock.
    pub fn new(config: ProcessorConfig, life: u64, now_ns: u64) -> Processor {
        let (controller, request_timeout_ns) =
            (config.producer.controller, config.producer.request_timeout_ns);
        let consumer = |partition: u32| ConsumerConfig {
            controller,
            partitions: vec![partition],
            request_timeout_ns,
            max_bytes: 64 * 1024,
            isolation: Isolation::ReadCommitted,
        };
        let producer = TxnProducer::new(config.producer).with_correlation_base(life_base(life));
        let mut processor = Processor {
            group: group_name(config.index),
            input: config.input,
            output: config.output,
            producer,
            recovery: Consumer::new(consumer(config.output))
                .with_correlation_base(RECOVERY_CORRELATION_BASE + life_base(life)),
            consumer: Consumer::new(consumer(config.input))
                .with_correlation_base(INPUT_CORRELATION_BASE + life_base(life)),
            phase: Phase::Init,
            current: None,
            position: 0,
            life,
            attempts: 0,
            running: true,
            offsets_in_txn: config.offsets_in_txn,
            steps: Vec::new(),
        };
        processor.begin_init(now_ns);
        processor
    }

    /// It starts nothing new from now on (the end of the run); what is under way ends.
    pub fn stop(&mut self) {
        self.running = false;
    }

    /// Takes what it did since the last call, for the history, in order.
    pub fn drain_steps(&mut self) -> std::vec::Drain<'_, Step> {
        self.steps.drain(..)
    }

    /// Takes the messages to send, as (node, message).
    pub fn drain_outbox(&mut self) -> Vec<(NodeId, Msg)> {
        let mut out: Vec<(NodeId, Msg)> = self.producer.drain_outbox().collect();
        out.extend(self.recovery.drain_outbox());
        out.extend(self.consumer.drain_outbox());
        out
    }

    fn offsets_key(&self) -> String {
        format!("offsets/{}", self.group)
    }

    fn invoke(&mut self, op: model::Op) {
        debug_assert!(self.current.is_none(), "one operation at a time");
        self.current = Some(op.clone());
        self.steps.push(Step::Invoke(op));
    }

    fn complete(&mut self, kind: model::EventType, op: model::Op, error: Option<String>) {
        self.current = None;
        self.steps.push(Step::Complete(kind, op, error));
    }

    fn begin_init(&mut self, now_ns: u64) {
        self.phase = Phase::Init;
        if !self.running || !self.producer.is_idle() {
            return;
        }
        let txn_id = self.producer.txn_id().to_owned();
        self.invoke(model::Op::Init { txn_id });
        self.producer.init(now_ns);
    }

    /// A seek, in the history's terms: an assign of the input, then its position moves.
    fn seek(&mut self, offset: u64) {
        self.position = offset;
        self.consumer.seek(self.input, offset);
        self.record_assign(self.input);
    }

    /// A consumer of the processor moved its position: the history says so with an
    /// assign, after which a poll may start anywhere.
    fn record_assign(&mut self, partition: u32) {
        let op = model::Op::Assign { partitions: vec![partition], seek: true };
        self.steps.push(Step::Invoke(op.clone()));
        self.steps.push(Step::Complete(model::EventType::Ok, op, None));
    }

    /// The passing of time on the node's clock: its clients' timeouts and retries, then
    /// whatever ended moves it on.
    pub fn tick(&mut self, now_ns: u64) {
        self.producer.tick(now_ns);
        self.recovery.tick(now_ns);
        self.consumer.tick(now_ns);
        self.settle(now_ns);
        self.advance(now_ns);
    }

    /// A message from the cluster, handed to the client it answers (metadata to all).
    pub fn handle(&mut self, now_ns: u64, msg: Msg) {
        match &msg {
            Msg::FetchResponse { correlation, .. } if for_recovery(*correlation) => {
                self.recovery.handle(now_ns, msg)
            }
            Msg::FetchResponse { .. } => self.consumer.handle(now_ns, msg),
            Msg::MetadataResponse { .. } => {
                self.recovery.handle(now_ns, msg.clone());
                self.consumer.handle(now_ns, msg.clone());
                self.producer.handle(now_ns, msg);
            }
            _ => self.producer.handle(now_ns, msg),
        }
        self.settle(now_ns);
    }

    /// Takes in whatever ended.
    fn settle(&mut self, now_ns: u64) {
        let inits: Vec<Outcome<()>> = self.producer.drain_init().collect();
        for outcome in inits {
            let op = self.current.clone().expect("an init was under way");
            match outcome {
                Outcome::Ok(()) => {
                    self.complete(model::EventType::Ok, op, None);
                    // Read the output back from its start: a seek, in the history.
                    self.phase = Phase::Recover { committed_to: 0 };
                    self.recovery.seek(self.output, 0);
                    self.record_assign(self.output);
                }
                Outcome::Fail(why) => self.complete(model::EventType::Fail, op, Some(why)),
                Outcome::Info(why) => self.complete(model::EventType::Info, op, Some(why)),
            }
        }
        let polls: Vec<PollResult> =
            self.recovery.drain_done().chain(self.consumer.drain_done()).collect();
        for poll in polls {
            self.on_poll(now_ns, poll);
        }
        let txns: Vec<Outcome<Vec<u64>>> = self.producer.drain_txn().collect();
        for outcome in txns {
            self.on_txn(now_ns, outcome);
        }
    }

    fn on_poll(&mut self, now_ns: u64, poll: PollResult) {
        let op = self.current.clone().expect("a poll was under way");
        if poll.reset_to.is_some() {
            // The log no longer holds the position: only the output can say where to
            // resume. Take the id again and read it back.
            let why = Some("position out of range".to_owned());
            self.complete(model::EventType::Fail, op, why);
            return self.begin_init(now_ns);
        }
        let caught_up = poll.caught_up;
        let records = match poll.outcome {
            Outcome::Ok(records) => records,
            Outcome::Fail(why) => return self.complete(model::EventType::Fail, op, Some(why)),
            Outcome::Info(why) => return self.complete(model::EventType::Info, op, Some(why)),
        };
        let seen =
            records.iter().map(|r| model::Record::new(r.offset, Some(&r.key), &r.value)).collect();
        let model::Op::Poll { partition, from, isolation, .. } = op else {
            unreachable!("the operation under way is this poll")
        };
        let done = model::Op::Poll { partition, from, records: seen, isolation, assignment: None };
        self.complete(model::EventType::Ok, done, None);
        match &mut self.phase {
            Phase::Recover { committed_to } => {
                let key = format!("offsets/{}", self.group);
                for record in records.iter().filter(|r| r.key == key) {
                    if let Some(to) = parse_offsets(&record.value) {
                        *committed_to = to;
                    }
                }
                if records.is_empty() && caught_up {
                    // At the log end, with everything in it committed and decided: the
                    // earlier life's transactions were all ended when the id was taken
                    // again, and a new leader whose high watermark lags (its last stable
                    // offset held below a marker it has) is waited for, not believed.
                    let resume = *committed_to;
                    self.phase = Phase::Poll;
                    self.seek(resume);
                }
            }
            Phase::Poll if !records.is_empty() => {
                let taken: Vec<_> = records.into_iter().take(BATCH_RECORDS_MAX).collect();
                let last = taken.last().expect("not empty").offset;
                let (from, to) = (self.position, last + 1);
                if self.consumer.next_poll().is_some_and(|(_, at)| at != to) {
                    // The rest waits for the next batch: a seek back, in the history.
                    self.consumer.seek(self.input, to);
                    self.record_assign(self.input);
                }
                self.transact(now_ns, from, to, &taken);
            }
            _ => {}
        }
    }

    fn transact(
        &mut self,
        now_ns: u64,
        from: u64,
        to: u64,
        inputs: &[logjam_broker::client::Polled],
    ) {
        self.attempts += 1;
        let attempt = format!("{:x}.{}", self.life, self.attempts);
        let out_key = format!("k{}", self.output);
        let mut ops: Vec<model::MicroOp> = inputs
            .iter()
            .map(|r| {
                let value = format!("{}@{}.{}~{attempt}", r.value, self.input, r.offset);
                model::MicroOp::send(self.output, Some(&out_key), value)
            })
            .collect();
        if self.offsets_in_txn {
            ops.push(self.offsets_record(from, to, &attempt));
        }
        let records = txn_records(&ops);
        // The input range this transaction's output stands for (and, in the same
        // transaction, the position it commits).
        ops.push(model::MicroOp::commit_offset(self.group.clone(), self.input, from, to));
        self.run_txn(now_ns, from, to, ops, records, false);
    }

    fn offsets_record(&self, from: u64, to: u64, attempt: &str) -> model::MicroOp {
        let value = format!("{from}-{to}~{attempt}");
        model::MicroOp::send(self.output, Some(&self.offsets_key()), value)
    }

    fn run_txn(
        &mut self,
        now_ns: u64,
        from: u64,
        to: u64,
        ops: Vec<model::MicroOp>,
        records: Vec<TxnRecord>,
        offsets_only: bool,
    ) {
        let txn_id = self.producer.txn_id().to_owned();
        self.invoke(model::Op::Txn { txn_id, ops: ops.clone() });
        self.phase = Phase::Transact { from, to, ops, offsets_only };
        self.producer.transact(now_ns, records);
    }

    /// The weak setup's second step: the position alone, in a transaction of its own.
    fn commit_position(&mut self, now_ns: u64, from: u64, to: u64) {
        self.attempts += 1;
        let attempt = format!("{:x}.{}", self.life, self.attempts);
        let op = self.offsets_record(from, to, &attempt);
        let model::MicroOp::Send { key, value, .. } = &op else { unreachable!("a send") };
        let record = TxnRecord {
            partition: self.output,
            key: key.clone().unwrap_or_default().into_bytes(),
            value: value.clone().into_bytes(),
            expected_version: None,
        };
        self.run_txn(now_ns, from, to, vec![op], vec![record], true);
    }

    fn on_txn(&mut self, now_ns: u64, outcome: Outcome<Vec<u64>>) {
        let Phase::Transact { from, to, mut ops, offsets_only } =
            std::mem::replace(&mut self.phase, Phase::Poll)
        else {
            unreachable!("a transaction was under way")
        };
        let txn_id = self.producer.txn_id().to_owned();
        match outcome {
            Outcome::Ok(offsets) => {
                let sends = ops.iter_mut().filter_map(|op| match op {
                    model::MicroOp::Send { offset, .. } => Some(offset),
                    _ => None,
                });
                for (slot, at) in sends.zip(offsets) {
                    *slot = Some(at);
                }
                self.complete(model::EventType::Ok, model::Op::Txn { txn_id, ops }, None);
                self.position = to;
                if !self.offsets_in_txn && !offsets_only {
                    self.commit_position(now_ns, from, to);
                }
            }
            Outcome::Fail(why) if offsets_only => {
                // The position stays uncommitted until the next batch commits a later one.
                self.complete(model::EventType::Fail, model::Op::Txn { txn_id, ops }, Some(why));
                if self.producer.ids().is_none() {
                    self.begin_init(now_ns);
                }
            }
            Outcome::Fail(why) => {
                self.complete(model::EventType::Fail, model::Op::Txn { txn_id, ops }, Some(why));
                self.seek(from); // aborted: process the same input again
                if self.producer.ids().is_none() {
                    self.begin_init(now_ns);
                }
            }
            Outcome::Info(why) => {
                // It may have committed: only the output can say. Take the id again
                // (aborting it if it is still open) and read back.
                self.complete(model::EventType::Info, model::Op::Txn { txn_id, ops }, Some(why));
                self.begin_init(now_ns);
            }
        }
    }

    /// Starts the next step if nothing is under way.
    fn advance(&mut self, now_ns: u64) {
        if self.current.is_some() || !self.running {
            return;
        }
        match &self.phase {
            Phase::Init => self.begin_init(now_ns),
            Phase::Recover { .. } => {
                if let Some((partition, from)) = self.recovery.next_poll() {
                    if self.recovery.poll(now_ns) {
                        self.invoke(model::Op::poll(partition, from));
                    }
                }
            }
            Phase::Poll => {
                if let Some((partition, from)) = self.consumer.next_poll() {
                    // Empty polls may have moved the consumer past markers and aborted
                    // records; the next transaction's range starts at the last one's end
                    // all the same, so the ranges tile the input.
                    debug_assert!(from >= self.position);
                    if self.consumer.poll(now_ns) {
                        self.invoke(model::Op::poll(partition, from));
                    }
                }
            }
            Phase::Transact { .. } => {}
        }
    }
}

/// An outcome as the history's event type, with why if it is not ok.
pub(crate) fn kind_of<T>(outcome: &Outcome<T>) -> (model::EventType, Option<String>) {
    match outcome {
        Outcome::Ok(_) => (model::EventType::Ok, None),
        Outcome::Fail(why) => (model::EventType::Fail, Some(why.clone())),
        Outcome::Info(why) => (model::EventType::Info, Some(why.clone())),
    }
}

/// The records a transaction's send micro-ops write, in order.
pub(crate) fn txn_records(ops: &[model::MicroOp]) -> Vec<TxnRecord> {
    ops.iter()
        .filter_map(|op| match op {
            model::MicroOp::Send { partition, key, value, .. } => Some(TxnRecord {
                partition: *partition,
                key: key.clone().unwrap_or_default().into_bytes(),
                value: value.clone().into_bytes(),
                expected_version: None,
            }),
            _ => None,
        })
        .collect()
}

/// `<from>-<to>~<attempt>` to `to`.
fn parse_offsets(value: &str) -> Option<u64> {
    let range = value.split('~').next()?;
    let (_, to) = range.split_once('-')?;
    to.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_records_parse() {
        assert_eq!(parse_offsets("3-9~ab.2"), Some(9));
        assert_eq!(parse_offsets("3-x~ab.2"), None);
        assert_eq!(parse_offsets("nonsense"), None);
    }

    #[test]
    fn each_reader_gets_its_own_answers_in_every_life() {
        for life in [0, 1, 2, 0xFFFF] {
            let input = INPUT_CORRELATION_BASE + life_base(life) + 7;
            let recovery = RECOVERY_CORRELATION_BASE + life_base(life) + 7;
            assert!(!for_recovery(input), "life {life}: the input consumer's answer");
            assert!(for_recovery(recovery), "life {life}: the recovery reader's answer");
        }
    }
}
