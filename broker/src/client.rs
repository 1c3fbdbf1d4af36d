//! Clients, sans-IO: a producer and a consumer. Each runs one operation at a time (a
//! Jepsen process) and reports how it ended, so a harness can record the history.
//!
//! The producer retries with backoff, refreshes metadata when a broker says it is not
//! the leader, and with idempotence stamps each record with its producer id and a
//! per-partition sequence number, so a retry is never a duplicate. It reports an
//! operation `Ok` (with its offset), `Fail` (certainly not written) or `Info` (may or
//! may not have been written: a timeout, or an error after the append).

use crate::batch::{ProducerStamp, Record};
use crate::protocol::{Acks, ErrorCode, FetchData, Isolation, Msg, NodeId, PartitionState};

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    Ok(T),
    Fail(String),
    Info(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerConfig {
    pub controller: NodeId,
    pub partitions: u32,
    pub acks: Acks,
    pub idempotent: bool,
    pub request_timeout_ns: u64,
    pub retry_backoff_ns: u64,
    /// Attempts per operation, the first included.
    pub attempts_max: u32,
    /// An operation that has not ended this long after it began ends as indeterminate
    /// (or failed, if nothing was ever sent): Kafka's `delivery.timeout.ms`.
    pub delivery_timeout_ns: u64,
    /// A refusal proves the request did not append (over TCP a request is handled
    /// once). False on a network that may duplicate requests: a copy of a refused
    /// attempt may still land, so a send refused on every attempt ends indeterminate,
    /// never failed.
    pub refusals_definite: bool,
}

struct Send {
    started_ns: u64,
    partition: u32,
    key: Vec<u8>,
    value: Vec<u8>,
    expected_version: Option<u64>,
    attempts: u32,
    /// Some attempt may have been appended (an error after append, or no answer).
    maybe_appended: bool,
    sequence: Option<i32>,
    next_attempt_ns: u64,
    /// The attempt in flight: correlation and when it was sent.
    in_flight: Option<(u64, u64)>,
}

/// A producer: one send at a time.
pub struct Producer {
    config: ProducerConfig,
    leaders: Vec<Option<(NodeId, u32)>>,
    metadata_in_flight: Option<(u64, u64)>,
    producer_id: Option<i64>,
    producer_id_in_flight: Option<(u64, u64)>,
    sequences: Vec<i32>,
    current: Option<Send>,
    next_correlation: u64,
    outbox: Vec<(NodeId, Msg)>,
    done: Vec<Outcome<u64>>,
    /// The refusal that ended the last operation as `Fail`, if one did.
    last_refusal: Option<ErrorCode>,
}

impl Producer {
    pub fn new(config: ProducerConfig) -> Producer {
        let partitions = config.partitions as usize;
        Producer {
            config,
            leaders: vec![None; partitions],
            metadata_in_flight: None,
            producer_id: None,
            producer_id_in_flight: None,
            sequences: vec![0; partitions],
            current: None,
            next_correlation: 0,
            outbox: Vec::new(),
            done: Vec::new(),
            last_refusal: None,
        }
    }

    /// Numbers its requests from `base` up. A process gives each life a range of its
    /// own, so an answer to a request of an earlier life (late, after a restart) never
    /// matches one of this life's.
    pub fn with_correlation_base(mut self, base: u64) -> Producer {
        self.next_correlation = base;
        self
    }

    /// The refusal that ended the last operation as `Fail` (e.g. `WrongExpectedVersion`
    /// for a conditional send whose key moved on), if one did.
    pub fn last_refusal(&self) -> Option<ErrorCode> {
        self.last_refusal
    }

    pub fn drain_outbox(&mut self) -> std::vec::Drain<'_, (NodeId, Msg)> {
        self.outbox.drain(..)
    }

    /// Operations that ended since the last call (at most one per call of `tick` or
    /// `handle`, since a producer runs one at a time).
    pub fn drain_done(&mut self) -> std::vec::Drain<'_, Outcome<u64>> {
        self.done.drain(..)
    }

    pub fn is_idle(&self) -> bool {
        self.current.is_none()
    }

    fn correlation(&mut self) -> u64 {
        self.next_correlation += 1;
        self.next_correlation
    }

    /// Starts sending one record. The producer must be idle.
    pub fn send(&mut self, now_ns: u64, partition: u32, key: String, value: String) {
        self.send_record(now_ns, partition, key.into_bytes(), value.into_bytes(), None);
    }

    /// Starts sending one record of any bytes, conditionally when `expected_version` is
    /// given: the key must hold exactly that many records in the partition, or the
    /// send fails (`WrongExpectedVersion`, nothing appended). The producer must be idle.
    pub fn send_record(
        &mut self,
        now_ns: u64,
        partition: u32,
        key: Vec<u8>,
        value: Vec<u8>,
        expected_version: Option<u64>,
    ) {
        assert!(self.current.is_none(), "a producer runs one operation at a time");
        assert!(partition < self.config.partitions, "partition {partition} does not exist");
        self.last_refusal = None;
        self.current = Some(Send {
            started_ns: now_ns,
            partition,
            key,
            value,
            expected_version,
            attempts: 0,
            maybe_appended: false,
            sequence: None,
            next_attempt_ns: now_ns,
            in_flight: None,
        });
        self.tick(now_ns);
    }

    fn finish(&mut self, outcome: Outcome<u64>) {
        let send = self.current.take().expect("an operation is under way");
        match (&outcome, send.sequence) {
            (_, None) => {}
            (Outcome::Ok(_), Some(sequence)) => {
                self.sequences[send.partition as usize] = sequence.wrapping_add(1)
            }
            (Outcome::Fail(_) | Outcome::Info(_), Some(_)) => {
                // The sequence may or may not have been used: start over with a new id,
                // as Kafka bumps the producer epoch for an unresolved sequence. Even
                // after refusals only: a copy of an attempt the network duplicated or
                // held back may still land, and with the sequence reused the broker
                // would answer the next send with that copy's offset (found by
                // `long-poll`: an acknowledged write lost, seed 1821).
                self.producer_id = None;
                self.sequences.iter_mut().for_each(|s| *s = 0);
            }
        }
        self.done.push(outcome);
    }

    pub fn tick(&mut self, now_ns: u64) {
        let timeout = self.config.request_timeout_ns;
        if let Some((_, sent)) = self.metadata_in_flight {
            if now_ns >= sent + timeout {
                self.metadata_in_flight = None;
            }
        }
        if let Some((_, sent)) = self.producer_id_in_flight {
            if now_ns >= sent + timeout {
                self.producer_id_in_flight = None;
            }
        }
        let Some(send) = &mut self.current else { return };
        if let Some((_, sent)) = send.in_flight {
            if now_ns < sent + timeout {
                return;
            }
            // No answer: it may have been appended.
            send.in_flight = None;
            send.maybe_appended = true;
            send.next_attempt_ns = now_ns;
            self.leaders[send.partition as usize] = None;
        }
        let send = self.current.as_mut().expect("checked");
        let expired = now_ns >= send.started_ns + self.config.delivery_timeout_ns;
        if now_ns < send.next_attempt_ns && !expired {
            return;
        }
        if send.attempts >= self.config.attempts_max || expired {
            let outcome = if send.maybe_appended {
                Outcome::Info(format!("no answer after {} attempts", send.attempts))
            } else if send.attempts > 0 && !self.config.refusals_definite {
                Outcome::Info(format!(
                    "refused {} times, but a duplicated copy of an attempt may still land",
                    send.attempts
                ))
            } else {
                Outcome::Fail(format!("refused {} times", send.attempts))
            };
            return self.finish(outcome);
        }
        if self.config.idempotent && self.producer_id.is_none() {
            if self.producer_id_in_flight.is_none() {
                let correlation = self.correlation();
                self.producer_id_in_flight = Some((correlation, now_ns));
                self.outbox.push((self.config.controller, Msg::InitProducerId { correlation }));
            }
            return;
        }
        let partition = self.current.as_ref().expect("checked").partition;
        let Some((leader, leader_epoch)) = self.leaders[partition as usize] else {
            if self.metadata_in_flight.is_none() {
                let correlation = self.correlation();
                self.metadata_in_flight = Some((correlation, now_ns));
                self.outbox.push((self.config.controller, Msg::Metadata { correlation }));
            }
            return;
        };
        let correlation = self.correlation();
        let producer = match self.producer_id {
            Some(producer_id) => {
                let sequences = &self.sequences;
                let send = self.current.as_mut().expect("checked");
                let sequence = *send.sequence.get_or_insert(sequences[partition as usize]);
                ProducerStamp { producer_id, producer_epoch: 0, base_sequence: sequence }
            }
            None => ProducerStamp::NONE,
        };
        let send = self.current.as_mut().expect("checked");
        send.attempts += 1;
        let record =
            Record { timestamp_ns: now_ns, key: send.key.clone(), value: send.value.clone() };
        let acks = self.config.acks;
        self.outbox.push((
            leader,
            Msg::Produce {
                partition,
                correlation,
                leader_epoch: Some(leader_epoch),
                acks,
                producer,
                records: vec![record],
                expected_version: send.expected_version,
                transactional: false,
            },
        ));
        if acks == Acks::None {
            // Fire and forget: nobody will ever say.
            send.maybe_appended = true;
            return self.finish(Outcome::Info("acks = 0: never answered".to_owned()));
        }
        send.in_flight = Some((correlation, now_ns));
    }

    pub fn handle(&mut self, now_ns: u64, msg: Msg) {
        match msg {
            Msg::MetadataResponse { correlation, states }
                if self.metadata_in_flight.is_some_and(|(c, _)| c == correlation) =>
            {
                self.metadata_in_flight = None;
                self.learn(&states);
            }
            Msg::InitProducerIdResponse { correlation, producer_id }
                if self.producer_id_in_flight.is_some_and(|(c, _)| c == correlation) =>
            {
                self.producer_id_in_flight = None;
                self.producer_id = Some(producer_id);
            }
            Msg::ProduceResponse { correlation, result, .. } => {
                let Some(send) = &mut self.current else { return };
                if send.in_flight.is_none_or(|(c, _)| c != correlation) {
                    return; // an answer to an attempt we gave up on
                }
                send.in_flight = None;
                match result {
                    Ok(offset) => return self.finish(Outcome::Ok(offset)),
                    Err(code) => {
                        send.maybe_appended |= !code.definitely_not_appended();
                        send.next_attempt_ns = now_ns + self.config.retry_backoff_ns;
                        if code.leader_moved() {
                            self.leaders[send.partition as usize] = None;
                        }
                        let definite = !send.maybe_appended && self.config.refusals_definite;
                        if code == ErrorCode::OutOfOrderSequence && definite {
                            self.last_refusal = Some(code);
                            return self.finish(Outcome::Fail(format!("{code:?}")));
                        }
                        if code == ErrorCode::WrongExpectedVersion {
                            // Definite for this attempt; an earlier one may have landed
                            // (and moved the version itself).
                            let outcome = if send.maybe_appended {
                                Outcome::Info(format!("{code:?} after an unanswered attempt"))
                            } else if !self.config.refusals_definite {
                                Outcome::Info(format!(
                                    "{code:?}, but a duplicated copy of an attempt may still land"
                                ))
                            } else {
                                self.last_refusal = Some(code);
                                Outcome::Fail(format!("{code:?}"))
                            };
                            return self.finish(outcome);
                        }
                    }
                }
            }
            _ => return,
        }
        self.tick(now_ns);
    }

    fn learn(&mut self, states: &[PartitionState]) {
        learn_leaders(&mut self.leaders, states);
    }
}

/// What a metadata answer says of each partition's leader (and its epoch), for a
/// client that keeps one slot per partition.
pub(crate) fn learn_leaders(leaders: &mut [Option<(NodeId, u32)>], states: &[PartitionState]) {
    for state in states {
        if let Some(slot) = leaders.get_mut(state.partition as usize) {
            *slot = state.leader.map(|leader| (leader, state.leader_epoch));
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub controller: NodeId,
    pub partitions: Vec<u32>,
    pub request_timeout_ns: u64,
    pub max_bytes: u32,
    pub isolation: Isolation,
}

/// A record as a consumer saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Polled {
    pub offset: u64,
    pub key: String,
    pub value: String,
}

/// What a poll saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollResult {
    pub partition: u32,
    pub from: u64,
    pub outcome: Outcome<Vec<Polled>>,
    /// The position had to be reset (the log no longer holds it): a seek.
    pub reset_to: Option<u64>,
    /// The poll reached the leader's log end, and everything in the log was committed
    /// and decided (last stable offset = high watermark = log end): nothing more to
    /// read for now, and nothing undecided that could still become readable.
    pub caught_up: bool,
}

/// A consumer: polls its partitions in turn, from its position, up to the high
/// watermark.
pub struct Consumer {
    config: ConsumerConfig,
    positions: Vec<u64>,
    leaders: Vec<Option<(NodeId, u32)>>,
    turn: usize,
    in_flight: Option<(u64, u64, usize)>,
    metadata_in_flight: Option<(u64, u64)>,
    next_correlation: u64,
    outbox: Vec<(NodeId, Msg)>,
    done: Vec<PollResult>,
}

impl Consumer {
    pub fn new(config: ConsumerConfig) -> Consumer {
        let count = config.partitions.len();
        Consumer {
            config,
            positions: vec![0; count],
            leaders: vec![None; count],
            turn: 0,
            in_flight: None,
            metadata_in_flight: None,
            next_correlation: 0,
            outbox: Vec::new(),
            done: Vec::new(),
        }
    }

    pub fn drain_outbox(&mut self) -> std::vec::Drain<'_, (NodeId, Msg)> {
        self.outbox.drain(..)
    }

    pub fn isolation(&self) -> Isolation {
        self.config.isolation
    }

    /// Numbers its requests from `base` on: a process that runs more than one client
    /// keeps their answers apart.
    pub fn with_correlation_base(mut self, base: u64) -> Consumer {
        self.next_correlation = base;
        self
    }

    /// Moves the position on `partition` (one of its own) to `offset`.
    pub fn seek(&mut self, partition: u32, offset: u64) {
        if let Some(index) = self.config.partitions.iter().position(|&p| p == partition) {
            self.positions[index] = offset;
        }
    }

    pub fn drain_done(&mut self) -> std::vec::Drain<'_, PollResult> {
        self.done.drain(..)
    }

    /// The partition and position the next poll will read, if the consumer is idle.
    pub fn next_poll(&self) -> Option<(u32, u64)> {
        if self.in_flight.is_some() {
            return None;
        }
        Some((self.config.partitions[self.turn], self.positions[self.turn]))
    }

    /// Polls the next partition, if idle and its leader is known.
    pub fn poll(&mut self, now_ns: u64) -> bool {
        if self.in_flight.is_some() {
            return false;
        }
        let index = self.turn;
        let Some((leader, leader_epoch)) = self.leaders[index] else {
            self.refresh(now_ns);
            return false;
        };
        self.next_correlation += 1;
        let correlation = self.next_correlation;
        self.in_flight = Some((correlation, now_ns, index));
        let msg = Msg::Fetch {
            partition: self.config.partitions[index],
            correlation,
            leader_epoch,
            fetch_offset: self.positions[index],
            replica: None,
            durable_offset: 0,
            max_bytes: self.config.max_bytes,
            isolation: self.config.isolation,
        };
        self.outbox.push((leader, msg));
        true
    }

    fn refresh(&mut self, now_ns: u64) {
        if self
            .metadata_in_flight
            .is_none_or(|(_, sent)| now_ns >= sent + self.config.request_timeout_ns)
        {
            self.next_correlation += 1;
            self.metadata_in_flight = Some((self.next_correlation, now_ns));
            self.outbox.push((
                self.config.controller,
                Msg::Metadata { correlation: self.next_correlation },
            ));
        }
    }

    /// Ends the poll of partition `index`; `next` is where the next poll starts (past
    /// what this one read, markers and aborted records included).
    fn finish(
        &mut self,
        index: usize,
        outcome: Outcome<Vec<Polled>>,
        next: Option<u64>,
        reset_to: Option<u64>,
        caught_up: bool,
    ) {
        let partition = self.config.partitions[index];
        let from = self.positions[index];
        if let Some(next) = next {
            debug_assert!(next >= from, "a poll never moves a consumer back");
            self.positions[index] = next;
        }
        if let Some(position) = reset_to {
            self.positions[index] = position;
        }
        self.turn = (self.turn + 1) % self.positions.len();
        self.done.push(PollResult { partition, from, outcome, reset_to, caught_up });
    }

    pub fn tick(&mut self, now_ns: u64) {
        if let Some((_, sent, index)) = self.in_flight {
            if now_ns >= sent + self.config.request_timeout_ns {
                self.in_flight = None;
                self.leaders[index] = None;
                // A read changes nothing: a poll without an answer simply failed.
                self.finish(index, Outcome::Fail("no answer".to_owned()), None, None, false);
            }
        }
    }

    pub fn handle(&mut self, _now_ns: u64, msg: Msg) {
        match msg {
            Msg::MetadataResponse { correlation, states }
                if self.metadata_in_flight.is_some_and(|(c, _)| c == correlation) =>
            {
                self.metadata_in_flight = None;
                for state in states {
                    if let Some(index) =
                        self.config.partitions.iter().position(|&p| p == state.partition)
                    {
                        self.leaders[index] =
                            state.leader.map(|leader| (leader, state.leader_epoch));
                    }
                }
            }
            Msg::FetchResponse { correlation, result, .. } => {
                let Some((expected, _, index)) = self.in_flight else { return };
                if expected != correlation {
                    return;
                }
                self.in_flight = None;
                match result {
                    Ok(data) => {
                        let from = self.positions[index];
                        let (records, next) = visible_records(&data, from, self.config.isolation);
                        let caught_up = data.last_stable_offset == data.high_watermark
                            && data.high_watermark == data.log_end_offset
                            && next >= data.log_end_offset;
                        self.finish(index, Outcome::Ok(records), Some(next), None, caught_up);
                    }
                    Err(ErrorCode::OffsetOutOfRange) => {
                        // What we read is gone (truncated) or was never there: seek to
                        // the beginning and say so.
                        self.leaders[index] = None;
                        self.finish(
                            index,
                            Outcome::Fail("offset out of range".to_owned()),
                            None,
                            Some(0),
                            false,
                        );
                    }
                    Err(code) => {
                        self.leaders[index] = None;
                        self.finish(index, Outcome::Fail(format!("{code:?}")), None, None, false);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The records a consumer at `from` may see in a fetch's answer, and where its next
/// poll starts. `read_uncommitted`: everything below the high watermark. `read_committed`:
/// below the last stable offset, without the records of aborted transactions (each
/// aborted transaction of the answer covers its producer's transactional batches from
/// its first offset up to its marker). Markers are never records.
pub fn visible_records(data: &FetchData, from: u64, isolation: Isolation) -> (Vec<Polled>, u64) {
    let limit = visible_limit(data, isolation);
    let mut records = Vec::new();
    let mut next = from;
    for bytes in &data.batches {
        let Ok(header) = crate::batch::validate(bytes) else { break };
        if header.base_offset >= limit {
            break;
        }
        let hidden = is_hidden(data, &header, isolation);
        for (i, record) in crate::batch::record_views(bytes, &header).enumerate() {
            let offset = header.base_offset + i as u64;
            if offset < from || offset >= limit {
                continue;
            }
            next = offset + 1;
            if !hidden {
                records.push(Polled {
                    offset,
                    key: String::from_utf8_lossy(record.key).into_owned(),
                    value: String::from_utf8_lossy(record.value).into_owned(),
                });
            }
        }
    }
    (records, next)
}

/// Where a consumer's view of a fetch ends: the high watermark, or for
/// `read_committed` the last stable offset.
pub fn visible_limit(data: &FetchData, isolation: Isolation) -> u64 {
    match isolation {
        Isolation::ReadUncommitted => data.high_watermark,
        Isolation::ReadCommitted => data.last_stable_offset.min(data.high_watermark),
    }
}

/// Whether a batch of a fetch is not for the consumer: a marker, or (`read_committed`)
/// a batch of an aborted transaction, one its producer wrote from the transaction's
/// first offset up to its marker.
pub fn is_hidden(
    data: &FetchData,
    header: &crate::batch::BatchHeader,
    isolation: Isolation,
) -> bool {
    let aborted = isolation == Isolation::ReadCommitted
        && header.is_transactional()
        && data
            .aborted
            .iter()
            .any(|txn| txn.covers(header.producer.producer_id, header.base_offset));
    header.is_control() || aborted
}
