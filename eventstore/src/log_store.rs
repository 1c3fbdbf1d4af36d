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
//! One request runs at a time; later ones wait in a bounded queue.

use std::collections::VecDeque;

use logjam_broker::batch;
use logjam_broker::client::{Outcome, Producer, ProducerConfig};
use logjam_broker::protocol::{Acks, ErrorCode, Msg, NodeId, PartitionState};

use crate::envelope::{self, Envelope};
use crate::store::{ExpectedVersion, StoreReply, StreamStore, check_stream_name};

/// Requests waiting behind the one under way.
pub const QUEUED_REQUESTS_MAX: usize = 64;
/// Fetches one read may make (each up to `read_max_bytes`).
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
}

/// The partition a stream lives in: 64-bit FNV-1a of its name, so every client, every
/// run and every machine agree.
pub fn partition_of(stream: &str, partitions: u32) -> u32 {
    (fnv1a(stream.as_bytes()) % u64::from(partitions.max(1))) as u32
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

enum Request {
    Append { request: u64, stream: String, expected: ExpectedVersion, events: Vec<Envelope> },
    Read { request: u64, stream: String },
}

/// A read under way: fetching the partition from the start.
struct Reading {
    request: u64,
    stream: String,
    partition: u32,
    /// Set when the read only finds `current` for a refused append.
    for_refusal: bool,
    /// The version a refused append expected.
    refused_at: Option<u64>,
    next_offset: u64,
    high_watermark: Option<u64>,
    events: Vec<(u64, Envelope)>,
    fetches: u32,
    in_flight: Option<(u64, u64)>,
    retry_at_ns: u64,
}

enum Current {
    Idle,
    Appending { request: u64, stream: String, expected: ExpectedVersion },
    Reading(Reading),
}

pub struct LogStore {
    config: LogStoreConfig,
    producer: Producer,
    queue: VecDeque<Request>,
    current: Current,
    leaders: Vec<Option<(NodeId, u32)>>,
    metadata_in_flight: Option<(u64, u64)>,
    next_correlation: u64,
    outbox: Vec<(NodeId, Msg)>,
    completed: Vec<(u64, StoreReply)>,
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
        });
        LogStore {
            leaders: vec![None; config.partitions as usize],
            config,
            producer,
            queue: VecDeque::new(),
            current: Current::Idle,
            metadata_in_flight: None,
            // The producer numbers its own requests from 1; reads use the upper half so
            // a response is never taken for the other's.
            next_correlation: 1 << 62,
            outbox: Vec::new(),
            completed: Vec::new(),
        }
    }

    /// Messages to send: the producer's and the reader's.
    pub fn drain_outbox(&mut self) -> Vec<(NodeId, Msg)> {
        let mut out: Vec<(NodeId, Msg)> = self.producer.drain_outbox().collect();
        out.append(&mut self.outbox);
        out
    }

    /// True when no request is under way or waiting.
    pub fn is_idle(&self) -> bool {
        matches!(self.current, Current::Idle) && self.queue.is_empty()
    }

    fn enqueue(&mut self, now_ns: u64, request: Request) {
        if self.queue.len() >= QUEUED_REQUESTS_MAX {
            let id = match &request {
                Request::Append { request, .. } | Request::Read { request, .. } => *request,
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
                    self.collect_producer();
                }
                Request::Read { request, stream } => {
                    self.begin_read(now_ns, request, stream, false);
                }
            }
        }
    }

    fn begin_read(&mut self, now_ns: u64, request: u64, stream: String, for_refusal: bool) {
        let partition = partition_of(&stream, self.config.partitions);
        self.current = Current::Reading(Reading {
            request,
            stream,
            partition,
            for_refusal,
            refused_at: None,
            next_offset: 0,
            high_watermark: None,
            events: Vec::new(),
            fetches: 0,
            in_flight: None,
            retry_at_ns: now_ns,
        });
        self.step_read(now_ns);
    }

    /// The producer's outcome, if the append under way ended.
    fn collect_producer(&mut self) {
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
                self.current = Current::Reading(Reading {
                    request,
                    partition: partition_of(&stream, self.config.partitions),
                    stream,
                    for_refusal: true,
                    refused_at: match expected {
                        ExpectedVersion::Exact(n) => Some(n),
                        ExpectedVersion::NoStream | ExpectedVersion::Any => Some(0),
                    },
                    next_offset: 0,
                    high_watermark: None,
                    events: Vec::new(),
                    fetches: 0,
                    in_flight: None,
                    retry_at_ns: 0,
                });
                return;
            }
            Outcome::Fail(reason) => StoreReply::Failed { reason },
            Outcome::Info(reason) => StoreReply::Indeterminate { reason },
        };
        self.completed.push((request, reply));
    }

    fn correlation(&mut self) -> u64 {
        self.next_correlation += 1;
        self.next_correlation
    }

    fn step_read(&mut self, now_ns: u64) {
        let timeout_ns = self.config.request_timeout_ns;
        let Current::Reading(reading) = &mut self.current else { return };
        if let Some((_, sent_ns)) = reading.in_flight {
            if now_ns < sent_ns + timeout_ns {
                return;
            }
            reading.in_flight = None;
            self.leaders[reading.partition as usize] = None;
        }
        if now_ns < reading.retry_at_ns {
            return;
        }
        if reading.fetches >= READ_FETCHES_MAX {
            let reason = format!("no whole read in {READ_FETCHES_MAX} fetches");
            return self.finish_read(Err(reason));
        }
        let partition = reading.partition;
        let Some((leader, leader_epoch)) = self.leaders[partition as usize] else {
            if self.metadata_in_flight.is_none_or(|(_, sent)| now_ns >= sent + timeout_ns) {
                let correlation = self.correlation();
                self.metadata_in_flight = Some((correlation, now_ns));
                self.outbox.push((self.config.controller, Msg::Metadata { correlation }));
            }
            return;
        };
        let correlation = self.correlation();
        let Current::Reading(reading) = &mut self.current else { unreachable!() };
        reading.fetches += 1;
        reading.in_flight = Some((correlation, now_ns));
        let msg = Msg::Fetch {
            partition,
            correlation,
            leader_epoch,
            fetch_offset: reading.next_offset,
            replica: None,
            durable_offset: 0,
            max_bytes: self.config.read_max_bytes,
        };
        self.outbox.push((leader, msg));
    }

    fn finish_read(&mut self, result: Result<(), String>) {
        let Current::Reading(reading) = std::mem::replace(&mut self.current, Current::Idle) else {
            unreachable!("finishing a read");
        };
        let reply = match (result, reading.for_refusal) {
            (Ok(()), false) => StoreReply::Read { events: reading.events },
            (Ok(()), true) => {
                // A read sees committed events only; the leader refused because its log
                // (uncommitted tail included) holds more than expected. So the stream
                // holds at least `expected + 1`, whatever the committed read says.
                let read = reading.events.len() as u64;
                let expected = reading.refused_at.unwrap_or(0);
                StoreReply::WrongExpectedVersion { current: read.max(expected + 1) }
            }
            // The append was refused for sure; only its `current` is unknown.
            (Err(reason), true) => {
                StoreReply::Failed { reason: format!("wrong expected version (then: {reason})") }
            }
            (Err(reason), false) => StoreReply::Failed { reason },
        };
        self.completed.push((reading.request, reply));
    }

    /// The passing of time: retries and timeouts.
    pub fn tick(&mut self, now_ns: u64) {
        self.producer.tick(now_ns);
        self.collect_producer();
        self.step_read(now_ns);
        self.start_next(now_ns);
    }

    /// A message for this client.
    pub fn handle(&mut self, now_ns: u64, msg: Msg) {
        match msg {
            Msg::MetadataResponse { correlation, states }
                if self.metadata_in_flight.is_some_and(|(c, _)| c == correlation) =>
            {
                self.metadata_in_flight = None;
                self.learn(&states);
                self.step_read(now_ns);
            }
            Msg::FetchResponse { correlation, result, .. } => {
                let Current::Reading(reading) = &mut self.current else { return };
                if reading.in_flight.is_none_or(|(c, _)| c != correlation) {
                    return; // late or duplicated
                }
                reading.in_flight = None;
                match result {
                    Ok(data) => {
                        let hw = *reading.high_watermark.get_or_insert(data.high_watermark);
                        for bytes in &data.batches {
                            let Ok(batch) = batch::decode(bytes) else {
                                return self.finish_read(Err("a batch failed to decode".into()));
                            };
                            for (index, record) in batch.records.iter().enumerate() {
                                let offset = batch.base_offset + index as u64;
                                if offset < reading.next_offset || offset >= hw {
                                    continue;
                                }
                                if record.key == reading.stream.as_bytes() {
                                    match envelope::decode(&record.value) {
                                        Ok(envelope) => reading.events.push((offset, envelope)),
                                        Err(error) => {
                                            let reason = format!(
                                                "{} offset {offset}: {error}",
                                                reading.stream
                                            );
                                            return self.finish_read(Err(reason));
                                        }
                                    }
                                }
                            }
                            reading.next_offset = reading.next_offset.max(batch.end_offset());
                        }
                        if reading.next_offset >= hw {
                            self.finish_read(Ok(()));
                            self.start_next(now_ns);
                            return;
                        }
                        if data.batches.is_empty() {
                            // Nothing more yet below what we saw as committed: wait a bit.
                            reading.retry_at_ns = now_ns + self.config.retry_backoff_ns;
                        }
                    }
                    Err(_) => {
                        let partition = reading.partition;
                        reading.retry_at_ns = now_ns + self.config.retry_backoff_ns;
                        self.leaders[partition as usize] = None;
                    }
                }
                self.step_read(now_ns);
            }
            other => {
                self.producer.handle(now_ns, other);
                self.collect_producer();
                self.start_next(now_ns);
                self.step_read(now_ns);
            }
        }
    }

    fn learn(&mut self, states: &[PartitionState]) {
        for state in states {
            if let Some(slot) = self.leaders.get_mut(state.partition as usize) {
                *slot = state.leader.map(|leader| (leader, state.leader_epoch));
            }
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
