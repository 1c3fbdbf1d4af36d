//! `LogStore`: the `StreamStore` on the replicated log, sans-IO over the broker's
//! messages. A stream lives in one partition chosen by its name; its events are records
//! whose key is the stream name and whose value is the envelope.
//!
//! - An append is one conditional produce (`Exact(n)` and `NoStream` become the
//!   broker's expected version; the leader refuses it if the key moved on). The
//!   producer is idempotent, retries and times out like any producer; its `Fail` is
//!   `Failed`, its `Info` is `Indeterminate`. A refusal for the version is followed by a
//!   read, so the reply can say how many events the stream holds (`current`).
//! - A read fetches the stream's partition from offset 0 up to the high watermark (only
//!   committed records, as a consumer) and keeps the stream's records.
//! - `Any` appends go out unconditionally with the caller's `stream_version`: that is
//!   the weak setup the harness must catch (versions repeat under contention), and it
//!   breaks guarantee 3 of `store` on purpose.
//!
//! - An append across streams (`append_all`) is one transaction: each part's record
//!   conditional on its stream's version, all committed or all aborted, through a
//!   transactional producer under the store's transactional id. A refusal for a
//!   version is followed by a read of that part's stream, as for a single append.
//! - Reads see only what is decided: records of aborted transactions never, and a read
//!   goes up to the last stable offset of its first answer.
//!
//! One request runs at a time; later ones wait in a bounded queue.

use std::collections::VecDeque;

use logjam_broker::client::{Outcome, Producer, ProducerConfig};
use logjam_broker::protocol::{Acks, ErrorCode, Isolation, Msg, NodeId};
use logjam_broker::txn_producer::{TxnProducer, TxnProducerConfig, TxnRecord};

use crate::envelope::{self, Envelope};
use crate::reader::{PartitionReader, ReaderConfig};
use crate::store::{
    AppendPart, ExpectedVersion, StoreReply, StreamStore, base_stream, check_parts,
    check_stream_name, snapshot_stream,
};

/// Requests waiting behind the one under way.
pub const QUEUED_REQUESTS_MAX: usize = 64;
/// Answers one read may take (each up to `read_max_bytes`).
pub const READ_FETCHES_MAX: u32 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogStoreConfig {
    pub controller: NodeId,
    pub partitions: u32,
    pub acks: Acks,
    pub request_timeout_ns: u64,
    pub retry_backoff_ns: u64,
    pub attempts_max: u32,
    pub delivery_timeout_ns: u64,
    pub read_max_bytes: u32,
    /// Appends carry their expected version to the broker. `false` is the weak setup:
    /// every append goes out unconditionally, stamped with the version the caller
    /// believed, so concurrent writers overwrite each other's decisions.
    pub check_versions: bool,
    /// The transaction coordinator and this store's transactional id, for appends
    /// across streams (without, they fail).
    pub transactions: Option<(NodeId, String)>,
    /// Which life of its process this store is (any number; its low 8 bits count):
    /// each life numbers its requests in a range of its own, so a late answer to a
    /// request of an earlier life is never taken for one of this life's.
    pub life: u64,
    /// A refused append certainly did not land (`ProducerConfig::refusals_definite`):
    /// false on a network that may duplicate requests.
    pub refusals_definite: bool,
}

/// Where a life's correlation ids sit: bits 24..32, below the reads' counter (bits
/// 32..61) and the transactional producer's (bit 61); each client's own counter stays
/// below 2^24 requests per life.
fn life_base(life: u64) -> u64 {
    (life & 0xFF) << 24
}

/// The transactional producer numbers its requests from here: above the producer's
/// (from 1) and below the reads' (from 2^62).
const TXN_CORRELATION_BASE: u64 = 1 << 61;

/// The partition a stream lives in: 64-bit FNV-1a of its name, so every client, every
/// run and every machine agree.
pub fn partition_of(stream: &str, partitions: u32) -> u32 {
    // A stream's snapshots live next to it: one read finds both.
    (fnv1a(base_stream(stream).as_bytes()) % u64::from(partitions.max(1))) as u32
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

enum Request {
    Append { request: u64, stream: String, expected: ExpectedVersion, events: Vec<Envelope> },
    AppendAll { request: u64, parts: Vec<AppendPart> },
    Read { request: u64, stream: String },
}

/// A read under way: the stream's partition read from offset 0 up to the last stable
/// offset its first answer reported.
struct Reading {
    request: u64,
    stream: String,
    /// Set when the read only finds `current` for a refused append: the version the
    /// refused append expected.
    refused_at: Option<u64>,
    reader: PartitionReader,
    /// Read up to here: the last stable offset of the first answer.
    until: Option<u64>,
    events: Vec<(u64, Envelope)>,
    /// The newest snapshot of the stream seen so far (its payload).
    snapshot: Option<Vec<u8>>,
    /// Answers taken, bounded by `READ_FETCHES_MAX`.
    answers: u32,
}

enum Current {
    Idle,
    Appending {
        request: u64,
        stream: String,
        expected: ExpectedVersion,
    },
    /// An append across streams: each part's stream and the version it expected, and
    /// the transaction's records, sent once the transactional id is taken.
    Transacting {
        request: u64,
        parts: Vec<(String, u64)>,
        records: Option<Vec<TxnRecord>>,
    },
    Reading(Box<Reading>),
}

pub struct LogStore {
    config: LogStoreConfig,
    producer: Producer,
    txn: Option<TxnProducer>,
    queue: VecDeque<Request>,
    current: Current,
    completed: Vec<(u64, StoreReply)>,
    /// Reads started: each read's correlation ids start at its own base, so a late
    /// answer to an earlier read is never taken for the current one's.
    reads_started: u64,
}

impl LogStore {
    pub fn new(config: LogStoreConfig) -> LogStore {
        let producer = Producer::new(ProducerConfig {
            controller: config.controller,
            partitions: config.partitions,
            acks: config.acks,
            idempotent: true,
            request_timeout_ns: config.request_timeout_ns,
            retry_backoff_ns: config.retry_backoff_ns,
            attempts_max: config.attempts_max,
            delivery_timeout_ns: config.delivery_timeout_ns,
            refusals_definite: config.refusals_definite,
        })
        .with_correlation_base(life_base(config.life));
        let txn = config.transactions.as_ref().map(|(coordinator, txn_id)| {
            TxnProducer::new(TxnProducerConfig {
                controller: config.controller,
                coordinator: *coordinator,
                partitions: config.partitions,
                txn_id: txn_id.clone(),
                request_timeout_ns: config.request_timeout_ns,
                retry_backoff_ns: config.retry_backoff_ns,
                attempts_max: config.attempts_max,
                delivery_timeout_ns: config.delivery_timeout_ns,
            })
            .with_correlation_base(TXN_CORRELATION_BASE + life_base(config.life))
        });
        LogStore {
            config,
            producer,
            txn,
            queue: VecDeque::new(),
            current: Current::Idle,
            completed: Vec::new(),
            reads_started: 0,
        }
    }

    /// Messages to send: the producer's and the reader's.
    pub fn drain_outbox(&mut self) -> Vec<(NodeId, Msg)> {
        let mut out: Vec<(NodeId, Msg)> = self.producer.drain_outbox().collect();
        if let Some(txn) = &mut self.txn {
            out.extend(txn.drain_outbox());
        }
        if let Current::Reading(reading) = &mut self.current {
            out.extend(reading.reader.drain_outbox());
        }
        out
    }

    /// True when no request is under way or waiting.
    pub fn is_idle(&self) -> bool {
        matches!(self.current, Current::Idle) && self.queue.is_empty()
    }

    fn enqueue(&mut self, now_ns: u64, request: Request) {
        if self.queue.len() >= QUEUED_REQUESTS_MAX {
            let id = match &request {
                Request::Append { request, .. }
                | Request::AppendAll { request, .. }
                | Request::Read { request, .. } => *request,
            };
            let reason = format!("more than {QUEUED_REQUESTS_MAX} requests waiting");
            self.completed.push((id, StoreReply::Failed { reason }));
            return;
        }
        self.queue.push_back(request);
        self.start_next(now_ns);
    }

    fn start_next(&mut self, now_ns: u64) {
        while matches!(self.current, Current::Idle) {
            let Some(request) = self.queue.pop_front() else { return };
            match request {
                Request::Append { request, stream, expected, mut events } => {
                    if let Err(reason) = check_stream_name(&stream) {
                        self.completed.push((request, StoreReply::Failed { reason }));
                        continue;
                    }
                    // One record per produce: a multi-event append would not be atomic.
                    if events.len() != 1 {
                        let reason = format!(
                            "the log store appends one event at a time, not {}",
                            events.len()
                        );
                        self.completed.push((request, StoreReply::Failed { reason }));
                        continue;
                    }
                    let version = match expected {
                        ExpectedVersion::Any => None,
                        ExpectedVersion::NoStream => Some(0),
                        ExpectedVersion::Exact(n) => Some(n),
                    };
                    let mut event = events.pop().expect("one event");
                    if let Some(version) = version {
                        event.stream_version = version;
                    }
                    let version = version.filter(|_| self.config.check_versions);
                    let partition = partition_of(&stream, self.config.partitions);
                    self.producer.send_record(
                        now_ns,
                        partition,
                        stream.clone().into_bytes(),
                        event.encode(),
                        version,
                    );
                    self.current = Current::Appending { request, stream, expected };
                    self.collect_producer(now_ns);
                }
                Request::AppendAll { request, parts } => self.begin_txn(now_ns, request, parts),
                Request::Read { request, stream } => {
                    self.begin_read(now_ns, request, stream, None);
                }
            }
        }
    }

    /// Starts an append across streams: takes the transactional id first if the
    /// producer does not hold it (at the start, or after it was fenced).
    fn begin_txn(&mut self, now_ns: u64, request: u64, parts: Vec<AppendPart>) {
        let Some(txn) = &mut self.txn else {
            let reason = "appends across streams need transactions".to_owned();
            return self.completed.push((request, StoreReply::Failed { reason }));
        };
        let checked = check_parts(&parts).and_then(|()| {
            parts.iter().try_for_each(|part| match (part.events.len(), part.expected) {
                (1, ExpectedVersion::Exact(_) | ExpectedVersion::NoStream) => {
                    check_stream_name(&part.stream)
                }
                (1, ExpectedVersion::Any) => {
                    Err(format!("{}: a part of an append across streams expects", part.stream))
                }
                (n, _) => Err(format!("{}: one event per part, not {n}", part.stream)),
            })
        });
        if let Err(reason) = checked {
            return self.completed.push((request, StoreReply::Failed { reason }));
        }
        let mut streams_expecting = Vec::new();
        let mut records = Vec::new();
        for mut part in parts {
            let version = match part.expected {
                ExpectedVersion::Exact(n) => n,
                ExpectedVersion::NoStream | ExpectedVersion::Any => 0,
            };
            let mut event = part.events.pop().expect("one event");
            event.stream_version = version;
            records.push(TxnRecord {
                partition: partition_of(&part.stream, self.config.partitions),
                key: part.stream.clone().into_bytes(),
                value: event.encode(),
                expected_version: Some(version).filter(|_| self.config.check_versions),
            });
            streams_expecting.push((part.stream, version));
        }
        if txn.ids().is_some() {
            txn.transact(now_ns, records);
            self.current =
                Current::Transacting { request, parts: streams_expecting, records: None };
        } else {
            txn.init(now_ns);
            self.current =
                Current::Transacting { request, parts: streams_expecting, records: Some(records) };
        }
        self.collect_txn(now_ns);
    }

    /// The transactional producer's outcome, if the append across streams ended (or
    /// the id it waited for was taken).
    fn collect_txn(&mut self, now_ns: u64) {
        let (Some(txn), Current::Transacting { records, .. }) = (&mut self.txn, &mut self.current)
        else {
            return;
        };
        if records.is_some() {
            let init = txn.drain_init().next();
            match init {
                None => return,
                Some(Outcome::Ok(())) => {
                    txn.transact(now_ns, records.take().expect("waiting to send"));
                    return self.collect_txn(now_ns);
                }
                // Nothing was sent yet.
                Some(Outcome::Fail(reason) | Outcome::Info(reason)) => {
                    let Current::Transacting { request, .. } =
                        std::mem::replace(&mut self.current, Current::Idle)
                    else {
                        unreachable!("transacting")
                    };
                    let reason = format!("could not take the transactional id: {reason}");
                    return self.completed.push((request, StoreReply::Failed { reason }));
                }
            }
        }
        let Some(outcome) = txn.drain_txn().next() else { return };
        let refusal = txn.last_refusal();
        let Current::Transacting { request, parts, .. } =
            std::mem::replace(&mut self.current, Current::Idle)
        else {
            unreachable!("transacting")
        };
        let reply = match outcome {
            Outcome::Ok(_) => StoreReply::Appended { first_version: parts[0].1 },
            Outcome::Fail(_) if matches!(refusal, Some((ErrorCode::WrongExpectedVersion, part)) if part < parts.len()) =>
            {
                let (_, part) = refusal.expect("matched");
                let (stream, version) = parts.into_iter().nth(part).expect("in range");
                return self.begin_read(now_ns, request, stream, Some(version));
            }
            Outcome::Fail(reason) => StoreReply::Failed { reason },
            Outcome::Info(reason) => StoreReply::Indeterminate { reason },
        };
        self.completed.push((request, reply));
    }

    fn begin_read(&mut self, now_ns: u64, request: u64, stream: String, refused_at: Option<u64>) {
        let config = ReaderConfig {
            controller: self.config.controller,
            partition: partition_of(&stream, self.config.partitions),
            max_bytes: self.config.read_max_bytes,
            request_timeout_ns: self.config.request_timeout_ns,
            poll_every_ns: self.config.retry_backoff_ns,
            // The producer numbers its own requests from 1; each read gets 2^32 ids of
            // its own above 2^62, so neither the producer's nor an earlier read's
            // answers are taken for this read's.
            correlation_base: (1 << 62) + (self.reads_started << 32) + life_base(self.config.life),
            isolation: Isolation::ReadCommitted,
        };
        self.reads_started += 1;
        let mut reader = PartitionReader::new(config, 0);
        reader.tick(now_ns);
        self.current = Current::Reading(Box::new(Reading {
            request,
            stream,
            refused_at,
            reader,
            until: None,
            events: Vec::new(),
            snapshot: None,
            answers: 0,
        }));
    }

    /// The producer's outcome, if the append under way ended.
    fn collect_producer(&mut self, now_ns: u64) {
        let outcome = self.producer.drain_done().next();
        let Some(outcome) = outcome else { return };
        let Current::Appending { request, stream, expected } =
            std::mem::replace(&mut self.current, Current::Idle)
        else {
            unreachable!("the producer only runs appends");
        };
        let reply = match outcome {
            Outcome::Ok(_) => {
                // Without a check (`Any`, or the weak setup) this is the caller's belief.
                let first_version = match expected {
                    ExpectedVersion::Exact(n) => n,
                    ExpectedVersion::NoStream | ExpectedVersion::Any => 0,
                };
                StoreReply::Appended { first_version }
            }
            Outcome::Fail(_)
                if self.producer.last_refusal() == Some(ErrorCode::WrongExpectedVersion) =>
            {
                // Read the stream to say how many events it holds.
                let refused_at = match expected {
                    ExpectedVersion::Exact(n) => n,
                    ExpectedVersion::NoStream | ExpectedVersion::Any => 0,
                };
                self.begin_read(now_ns, request, stream, Some(refused_at));
                return;
            }
            Outcome::Fail(reason) => StoreReply::Failed { reason },
            Outcome::Info(reason) => StoreReply::Indeterminate { reason },
        };
        self.completed.push((request, reply));
    }

    fn finish_read(&mut self, result: Result<(), String>) {
        let Current::Reading(reading) = std::mem::replace(&mut self.current, Current::Idle) else {
            unreachable!("finishing a read");
        };
        let reply = match (result, reading.refused_at) {
            (Ok(()), None) => {
                StoreReply::Read { events: reading.events, snapshot: reading.snapshot }
            }
            (Ok(()), Some(expected)) => {
                // A read sees committed events only; the leader refused because its log
                // (uncommitted tail included) holds more than expected. So the stream
                // holds at least `expected + 1`, whatever the committed read says.
                let read = reading.events.len() as u64;
                StoreReply::WrongExpectedVersion { current: read.max(expected + 1) }
            }
            // The append was refused for sure; only its `current` is unknown.
            (Err(reason), Some(_)) => {
                StoreReply::Failed { reason: format!("wrong expected version (then: {reason})") }
            }
            (Err(reason), None) => StoreReply::Failed { reason },
        };
        self.completed.push((reading.request, reply));
    }

    /// The passing of time: retries and timeouts.
    pub fn tick(&mut self, now_ns: u64) {
        self.producer.tick(now_ns);
        self.collect_producer(now_ns);
        if let Some(txn) = &mut self.txn {
            txn.tick(now_ns);
            self.collect_txn(now_ns);
        }
        if let Current::Reading(reading) = &mut self.current {
            reading.reader.tick(now_ns);
        }
        self.start_next(now_ns);
    }

    /// A message for this client.
    pub fn handle(&mut self, now_ns: u64, msg: Msg) {
        if let Current::Reading(reading) = &mut self.current {
            if reading.reader.handle(now_ns, &msg) {
                self.on_read_progress(now_ns);
                return;
            }
        }
        if let Some(txn) = &mut self.txn {
            match &msg {
                // The coordinator's answers are the transactional producer's alone.
                Msg::InitTxnResponse { .. }
                | Msg::AddPartitionsToTxnResponse { .. }
                | Msg::EndTxnResponse { .. } => {
                    txn.handle(now_ns, msg);
                    self.collect_txn(now_ns);
                    return self.start_next(now_ns);
                }
                // Each producer takes only answers to its own correlations.
                Msg::ProduceResponse { .. } | Msg::MetadataResponse { .. } => {
                    txn.handle(now_ns, msg.clone());
                    self.collect_txn(now_ns);
                }
                _ => {}
            }
        }
        self.producer.handle(now_ns, msg);
        self.collect_producer(now_ns);
        self.start_next(now_ns);
    }

    /// Takes what the reader read; finishes the read once it reached the high
    /// watermark of its first answer.
    fn on_read_progress(&mut self, now_ns: u64) {
        let Current::Reading(reading) = &mut self.current else { return };
        reading.answers += 1;
        let snapshots = snapshot_stream(&reading.stream);
        for (offset, key, value) in reading.reader.drain_records() {
            let of_stream = key == reading.stream.as_bytes();
            if !of_stream && key != snapshots.as_bytes() {
                continue;
            }
            match envelope::decode(&value) {
                Ok(envelope) if of_stream => reading.events.push((offset, envelope)),
                Ok(envelope) => reading.snapshot = Some(envelope.payload),
                // A snapshot that does not decode is only not used: the stream folds whole.
                Err(_) if !of_stream => {}
                Err(error) => {
                    let reason = format!("{} offset {offset}: {error}", reading.stream);
                    return self.finish_read(Err(reason));
                }
            }
        }
        if reading.until.is_none() {
            reading.until = reading.reader.visible_end();
        }
        if reading.until.is_some_and(|until| reading.reader.position() >= until) {
            self.finish_read(Ok(()));
            return self.start_next(now_ns);
        }
        if reading.answers >= READ_FETCHES_MAX {
            let reason = format!("no whole read in {READ_FETCHES_MAX} answers");
            self.finish_read(Err(reason));
            self.start_next(now_ns);
        }
    }
}

impl StreamStore for LogStore {
    fn append(
        &mut self,
        now_ns: u64,
        request: u64,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<Envelope>,
    ) {
        self.enqueue(
            now_ns,
            Request::Append { request, stream: stream.to_owned(), expected, events },
        );
    }

    fn append_all(&mut self, now_ns: u64, request: u64, parts: Vec<AppendPart>) {
        self.enqueue(now_ns, Request::AppendAll { request, parts });
    }

    fn read(&mut self, now_ns: u64, request: u64, stream: &str) {
        self.enqueue(now_ns, Request::Read { request, stream: stream.to_owned() });
    }

    fn drain_completed(&mut self) -> Vec<(u64, StoreReply)> {
        std::mem::take(&mut self.completed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_placed_by_fnv1a_of_their_name() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(partition_of("a", 1_000), (0xaf63_dc4c_8601_ec8cu64 % 1_000) as u32);
        let spread: Vec<u32> = (0..12).map(|n| partition_of(&format!("acct-{n}"), 3)).collect();
        assert!((0..3).all(|p| spread.contains(&p)), "{spread:?}");
    }
}
