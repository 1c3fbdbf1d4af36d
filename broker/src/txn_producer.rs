//! A transactional producer, sans-IO: one operation at a time, `init` (take the
//! transactional id, fencing earlier holders) or a transaction (records to several
//! partitions, committed or aborted as one).
//!
//! A transaction adds its partitions at the coordinator, sends one batch per partition
//! (idempotent: retries keep their sequence numbers), and commits once every batch is
//! acknowledged; if a batch is refused or stays unanswered it aborts instead. A record
//! with an expected version (a conditional append: its key must hold exactly that many
//! records) travels in a batch of its own, and a partition's batches go one at a time,
//! in order; a refusal for the version aborts the transaction (`last_refusal` says
//! which record). It ends:
//! - `Ok(offsets)`: committed, with each record's offset;
//! - `Fail`: certainly not committed (aborted, by us or by the coordinator);
//! - `Info`: the commit was asked for and its answer never came.
//!
//! After a commit or abort the coordinator's answer gives the epoch of the next
//! transaction: a new one (KIP-890) starts every partition's sequence over; the same
//! one (the legacy protocol) continues from the last acknowledged batch, so an
//! unanswered batch's sequence is used again. That reuse is what lets a late batch of
//! an aborted transaction pass for the next one's under the legacy protocol.

use std::collections::{BTreeMap, BTreeSet};

use crate::batch::{ProducerStamp, Record};
use crate::client::{Outcome, learn_leaders};
use crate::protocol::{Acks, ErrorCode, Msg, NodeId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnProducerConfig {
    pub controller: NodeId,
    pub coordinator: NodeId,
    pub partitions: u32,
    pub txn_id: String,
    pub request_timeout_ns: u64,
    pub retry_backoff_ns: u64,
    /// Attempts per request, the first included.
    pub attempts_max: u32,
    /// A batch unacknowledged this long after the transaction began is given up on
    /// (and the transaction aborted).
    pub delivery_timeout_ns: u64,
}

/// One record of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnRecord {
    pub partition: u32,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Append only if the key holds exactly this many records (of plain batches and
    /// committed transactions; this transaction's own earlier ones included).
    pub expected_version: Option<u64>,
}

/// A request to the coordinator, retried until answered.
#[derive(Clone, Debug)]
struct Request {
    attempts: u32,
    in_flight: Option<(u64, u64)>,
    next_attempt_ns: u64,
    /// Some attempt went unanswered: it may have taken effect.
    maybe_applied: bool,
}

impl Request {
    fn new(now_ns: u64) -> Request {
        Request { attempts: 0, in_flight: None, next_attempt_ns: now_ns, maybe_applied: false }
    }

    /// Counts an attempt sent now under the next correlation (taken from the
    /// producer's counter), and returns that correlation.
    fn attempt(&mut self, next_correlation: &mut u64, now_ns: u64) -> u64 {
        *next_correlation += 1;
        self.attempts += 1;
        self.in_flight = Some((*next_correlation, now_ns));
        *next_correlation
    }
}

/// One batch of a transaction: a partition's records, or one conditional record.
#[derive(Clone, Debug)]
struct Batch {
    partition: u32,
    /// Indexes of the transaction's records in this batch, in order.
    records: Vec<usize>,
    expected_version: Option<u64>,
    sequence: i32,
    request: Request,
    base_offset: Option<u64>,
}

#[derive(Clone, Debug)]
enum Phase {
    Adding(Request),
    Producing,
    Ending { commit: bool, request: Request, why: Option<String> },
}

#[derive(Clone, Debug)]
struct Txn {
    started_ns: u64,
    records: Vec<TxnRecord>,
    batches: Vec<Batch>,
    phase: Phase,
}

enum Operation {
    Init(Request),
    Txn(Txn),
}

pub struct TxnProducer {
    config: TxnProducerConfig,
    ids: Option<(i64, i16)>,
    leaders: Vec<Option<(NodeId, u32)>>,
    metadata_in_flight: Option<(u64, u64)>,
    /// The next sequence number per partition in the current epoch.
    sequences: Vec<i32>,
    operation: Option<Operation>,
    next_correlation: u64,
    outbox: Vec<(NodeId, Msg)>,
    done_init: Vec<Outcome<()>>,
    done_txn: Vec<TxnEnded>,
    /// Why the last transaction aborted, if a batch was refused: the code and the
    /// index of the batch's first record.
    last_refusal: Option<(ErrorCode, usize)>,
}

impl TxnProducer {
    pub fn new(config: TxnProducerConfig) -> TxnProducer {
        let partitions = config.partitions as usize;
        TxnProducer {
            config,
            ids: None,
            leaders: vec![None; partitions],
            metadata_in_flight: None,
            sequences: vec![0; partitions],
            operation: None,
            next_correlation: 0,
            outbox: Vec::new(),
            done_init: Vec::new(),
            done_txn: Vec::new(),
            last_refusal: None,
        }
    }

    /// Numbers its requests from `base` up: a process that runs other clients as well
    /// gives each a range of its own, so no answer is taken for another's.
    pub fn with_correlation_base(mut self, base: u64) -> TxnProducer {
        self.next_correlation = base;
        self
    }

    pub fn txn_id(&self) -> &str {
        &self.config.txn_id
    }

    /// The producer id and epoch, once `init` succeeded (and until it is fenced).
    pub fn ids(&self) -> Option<(i64, i16)> {
        self.ids
    }

    pub fn is_idle(&self) -> bool {
        self.operation.is_none()
    }

    pub fn drain_outbox(&mut self) -> std::vec::Drain<'_, (NodeId, Msg)> {
        self.outbox.drain(..)
    }

    pub fn drain_init(&mut self) -> std::vec::Drain<'_, Outcome<()>> {
        self.done_init.drain(..)
    }

    pub fn drain_txn(&mut self) -> impl Iterator<Item = Outcome<Vec<u64>>> + '_ {
        self.done_txn.drain(..).map(|ended| ended.outcome)
    }

    /// Like `drain_txn`, with the offsets each record was acknowledged at: what a
    /// history records on an `info` end (the commit's answer never came, but every
    /// batch had been acknowledged, at these offsets).
    pub fn drain_txn_ended(&mut self) -> std::vec::Drain<'_, TxnEnded> {
        self.done_txn.drain(..)
    }

    fn end_txn(&mut self, outcome: Outcome<Vec<u64>>, txn: Option<&Txn>) {
        let acknowledged = txn.map_or_else(Vec::new, acknowledged);
        self.done_txn.push(TxnEnded { outcome, acknowledged });
    }

    /// The refusal that made the last transaction abort, with the index of the record
    /// it was for (for a conditional record, the one whose version did not match).
    pub fn last_refusal(&self) -> Option<(ErrorCode, usize)> {
        self.last_refusal
    }

    fn correlation(&mut self) -> u64 {
        self.next_correlation += 1;
        self.next_correlation
    }

    /// Takes the transactional id (the producer must be idle).
    pub fn init(&mut self, now_ns: u64) {
        assert!(self.operation.is_none(), "one operation at a time");
        self.operation = Some(Operation::Init(Request::new(now_ns)));
        self.tick(now_ns);
    }

    /// Runs one transaction (the producer must be idle and initialized).
    pub fn transact(&mut self, now_ns: u64, records: Vec<TxnRecord>) {
        assert!(self.operation.is_none(), "one operation at a time");
        assert!(self.ids.is_some(), "init first");
        assert!(!records.is_empty(), "a transaction writes something");
        // Each partition's batches: record indexes, and the expected version if any.
        type Batches = Vec<(Vec<usize>, Option<u64>)>;
        let mut by_partition: BTreeMap<u32, Batches> = BTreeMap::new();
        for (index, record) in records.iter().enumerate() {
            assert!(record.partition < self.config.partitions, "no such partition");
            let batches = by_partition.entry(record.partition).or_default();
            match (record.expected_version, batches.last_mut()) {
                (None, Some((plain, None))) => plain.push(index),
                (expected, _) => batches.push((vec![index], expected)),
            }
        }
        let batches = by_partition
            .into_iter()
            .flat_map(|(partition, batches)| {
                batches.into_iter().map(move |(records, expected_version)| Batch {
                    partition,
                    records,
                    expected_version,
                    sequence: 0, // assigned when the partition is added
                    request: Request::new(now_ns),
                    base_offset: None,
                })
            })
            .collect();
        self.last_refusal = None;
        self.operation = Some(Operation::Txn(Txn {
            started_ns: now_ns,
            records,
            batches,
            phase: Phase::Adding(Request::new(now_ns)),
        }));
        self.tick(now_ns);
    }

    /// Whether a request is due now: not in flight (or timed out), backoff passed.
    fn due(request: &mut Request, now_ns: u64, timeout_ns: u64) -> bool {
        if let Some((_, sent)) = request.in_flight {
            if now_ns < sent + timeout_ns {
                return false;
            }
            request.in_flight = None;
            request.maybe_applied = true;
        }
        now_ns >= request.next_attempt_ns
    }

    pub fn tick(&mut self, now_ns: u64) {
        let timeout = self.config.request_timeout_ns;
        let attempts_max = self.config.attempts_max;
        if self.metadata_in_flight.is_some_and(|(_, sent)| now_ns >= sent + timeout) {
            self.metadata_in_flight = None;
        }
        match self.operation.take() {
            None => {}
            Some(Operation::Init(mut request)) => {
                if !Self::due(&mut request, now_ns, timeout) {
                    self.operation = Some(Operation::Init(request));
                } else if request.attempts >= attempts_max {
                    self.done_init.push(if request.maybe_applied {
                        Outcome::Info(format!("no answer after {} attempts", request.attempts))
                    } else {
                        Outcome::Fail(format!("refused {} times", request.attempts))
                    });
                } else {
                    let correlation = request.attempt(&mut self.next_correlation, now_ns);
                    let txn_id = self.config.txn_id.clone();
                    self.outbox
                        .push((self.config.coordinator, Msg::InitTxn { correlation, txn_id }));
                    self.operation = Some(Operation::Init(request));
                }
            }
            Some(Operation::Txn(txn)) => self.tick_txn(now_ns, txn),
        }
    }

    fn tick_txn(&mut self, now_ns: u64, mut txn: Txn) {
        let timeout = self.config.request_timeout_ns;
        let attempts_max = self.config.attempts_max;
        let (producer_id, producer_epoch) = self.ids.expect("initialized");
        match &mut txn.phase {
            Phase::Adding(request) => {
                if !Self::due(request, now_ns, timeout) {
                } else if request.attempts >= attempts_max {
                    // Nothing was produced: whatever the coordinator holds times out.
                    let outcome = Outcome::Fail("could not add the partitions".to_owned());
                    self.end_txn(outcome, Some(&txn));
                    return;
                } else {
                    let correlation = request.attempt(&mut self.next_correlation, now_ns);
                    let msg = Msg::AddPartitionsToTxn {
                        correlation,
                        txn_id: self.config.txn_id.clone(),
                        producer_id,
                        producer_epoch,
                        partitions: txn.batches.iter().map(|b| b.partition).collect(),
                    };
                    self.outbox.push((self.config.coordinator, msg));
                }
            }
            Phase::Producing => {
                let expired = now_ns >= txn.started_ns + self.config.delivery_timeout_ns;
                let mut give_up = None;
                let mut need_metadata = false;
                let mut sending = BTreeSet::new();
                for batch in txn.batches.iter_mut().filter(|b| b.base_offset.is_none()) {
                    // A partition's batches go one at a time, in sequence order.
                    if !sending.insert(batch.partition) {
                        continue;
                    }
                    if !Self::due(&mut batch.request, now_ns, timeout) {
                        continue;
                    }
                    if batch.request.attempts >= attempts_max || expired {
                        give_up = Some(format!("p{}: no acknowledgement", batch.partition));
                        break;
                    }
                    let Some((leader, leader_epoch)) = self.leaders[batch.partition as usize]
                    else {
                        need_metadata = true;
                        continue;
                    };
                    let correlation = batch.request.attempt(&mut self.next_correlation, now_ns);
                    let records = batch
                        .records
                        .iter()
                        .map(|&i| Record {
                            timestamp_ns: now_ns,
                            key: txn.records[i].key.clone(),
                            value: txn.records[i].value.clone(),
                        })
                        .collect();
                    let msg = Msg::Produce {
                        partition: batch.partition,
                        correlation,
                        leader_epoch: Some(leader_epoch),
                        acks: Acks::All,
                        producer: ProducerStamp {
                            producer_id,
                            producer_epoch,
                            base_sequence: batch.sequence,
                        },
                        records,
                        expected_version: batch.expected_version,
                        transactional: true,
                    };
                    self.outbox.push((leader, msg));
                }
                if need_metadata && self.metadata_in_flight.is_none() {
                    let correlation = self.correlation();
                    self.metadata_in_flight = Some((correlation, now_ns));
                    self.outbox.push((self.config.controller, Msg::Metadata { correlation }));
                }
                if let Some(why) = give_up {
                    txn.phase = Phase::Ending {
                        commit: false,
                        request: Request::new(now_ns),
                        why: Some(why),
                    };
                    return self.tick_txn(now_ns, txn);
                }
                if txn.batches.iter().all(|b| b.base_offset.is_some()) {
                    txn.phase =
                        Phase::Ending { commit: true, request: Request::new(now_ns), why: None };
                    return self.tick_txn(now_ns, txn);
                }
            }
            Phase::Ending { commit, request, why } => {
                if !Self::due(request, now_ns, timeout) {
                } else if request.attempts >= attempts_max {
                    // Unanswered: an abort happens anyway (the coordinator times the
                    // transaction out); a commit may or may not have been decided.
                    let outcome = if *commit {
                        Outcome::Info(format!(
                            "commit unanswered after {} attempts",
                            request.attempts
                        ))
                    } else {
                        Outcome::Fail(format!("aborted: {}", why.as_deref().unwrap_or("asked")))
                    };
                    self.ids = None; // take the id again: a new epoch fences what is left
                    self.end_txn(outcome, Some(&txn));
                    return;
                } else {
                    let correlation = request.attempt(&mut self.next_correlation, now_ns);
                    let msg = Msg::EndTxn {
                        correlation,
                        txn_id: self.config.txn_id.clone(),
                        producer_id,
                        producer_epoch,
                        commit: *commit,
                    };
                    self.outbox.push((self.config.coordinator, msg));
                }
            }
        }
        self.operation = Some(Operation::Txn(txn));
    }

    pub fn handle(&mut self, now_ns: u64, msg: Msg) {
        match msg {
            Msg::MetadataResponse { correlation, states }
                if self.metadata_in_flight.is_some_and(|(c, _)| c == correlation) =>
            {
                self.metadata_in_flight = None;
                learn_leaders(&mut self.leaders, &states);
            }
            Msg::InitTxnResponse { correlation, result } => {
                let Some(Operation::Init(request)) = &mut self.operation else { return };
                if request.in_flight.is_none_or(|(c, _)| c != correlation) {
                    return;
                }
                request.in_flight = None;
                match result {
                    Ok(ids) => {
                        self.ids = Some(ids);
                        self.sequences.iter_mut().for_each(|s| *s = 0);
                        self.operation = None;
                        self.done_init.push(Outcome::Ok(()));
                        return;
                    }
                    Err(_) => request.next_attempt_ns = now_ns + self.config.retry_backoff_ns,
                }
            }
            Msg::AddPartitionsToTxnResponse { correlation, result } => {
                let Some(Operation::Txn(txn)) = &mut self.operation else { return };
                let Phase::Adding(request) = &mut txn.phase else { return };
                if request.in_flight.is_none_or(|(c, _)| c != correlation) {
                    return;
                }
                request.in_flight = None;
                match result {
                    Ok(()) => {
                        let mut next = self.sequences.clone();
                        for batch in &mut txn.batches {
                            let sequence = &mut next[batch.partition as usize];
                            batch.sequence = *sequence;
                            *sequence = sequence.wrapping_add(batch.records.len() as i32);
                        }
                        txn.phase = Phase::Producing;
                    }
                    Err(ErrorCode::ConcurrentTransactions) => {
                        request.next_attempt_ns = now_ns + self.config.retry_backoff_ns;
                    }
                    Err(code) => {
                        // Fenced, or refused: nothing was produced.
                        self.ids = None;
                        let ended = self.operation.take();
                        let txn = match &ended {
                            Some(Operation::Txn(txn)) => Some(txn),
                            _ => None,
                        };
                        self.end_txn(Outcome::Fail(format!("add refused: {code:?}")), txn);
                        return;
                    }
                }
            }
            Msg::ProduceResponse { correlation, result, .. } => {
                let Some(Operation::Txn(txn)) = &mut self.operation else { return };
                if !matches!(txn.phase, Phase::Producing) {
                    return;
                }
                let Some(batch) = txn
                    .batches
                    .iter_mut()
                    .find(|b| b.request.in_flight.is_some_and(|(c, _)| c == correlation))
                else {
                    return;
                };
                batch.request.in_flight = None;
                match result {
                    Ok(base_offset) => batch.base_offset = Some(base_offset),
                    Err(code) => {
                        batch.request.maybe_applied |= !code.definitely_not_appended();
                        batch.request.next_attempt_ns = now_ns + self.config.retry_backoff_ns;
                        if code.leader_moved() {
                            self.leaders[batch.partition as usize] = None;
                        }
                        if matches!(
                            code,
                            ErrorCode::ProducerFenced
                                | ErrorCode::InvalidTxnState
                                | ErrorCode::OutOfOrderSequence
                                | ErrorCode::WrongExpectedVersion
                        ) {
                            self.last_refusal = Some((code, batch.records[0]));
                            let why = Some(format!("p{}: {code:?}", batch.partition));
                            txn.phase =
                                Phase::Ending { commit: false, request: Request::new(now_ns), why };
                        }
                    }
                }
            }
            Msg::EndTxnResponse { correlation, result } => {
                let Some(Operation::Txn(txn)) = &mut self.operation else { return };
                let Phase::Ending { commit, request, why } = &mut txn.phase else { return };
                if request.in_flight.is_none_or(|(c, _)| c != correlation) {
                    return;
                }
                request.in_flight = None;
                let (commit, maybe_applied) = (*commit, request.maybe_applied);
                let outcome = match result {
                    Ok(next_epoch) => {
                        let outcome = if commit {
                            Outcome::Ok(offsets(txn))
                        } else {
                            Outcome::Fail(format!("aborted: {}", why.as_deref().unwrap_or("asked")))
                        };
                        let epoch_before = self.ids.map(|(_, epoch)| epoch);
                        self.next_epoch(next_epoch);
                        // An out-of-order refusal means this producer's sequence and the
                        // partition's parted: continuing in the same epoch (the legacy
                        // protocol) would be refused forever. Take the id again for a new
                        // epoch, as Kafka's producer bumps it (KIP-360).
                        let sequence_lost =
                            matches!(self.last_refusal, Some((ErrorCode::OutOfOrderSequence, _)));
                        if sequence_lost && epoch_before == Some(next_epoch) {
                            self.ids = None;
                        }
                        outcome
                    }
                    Err(ErrorCode::ConcurrentTransactions) => {
                        request.next_attempt_ns = now_ns + self.config.retry_backoff_ns;
                        return self.tick(now_ns);
                    }
                    Err(code) => {
                        self.ids = None;
                        if commit && maybe_applied {
                            Outcome::Info(format!("{code:?} after an unanswered commit"))
                        } else {
                            // Fenced or timed out by the coordinator: it aborted.
                            Outcome::Fail(format!("{code:?}"))
                        }
                    }
                };
                let ended = self.operation.take();
                let txn = match &ended {
                    Some(Operation::Txn(txn)) => Some(txn),
                    _ => None,
                };
                self.end_txn(outcome, txn);
                return;
            }
            _ => return,
        }
        self.tick(now_ns);
    }

    /// After an end: sequences start over in a new epoch; in the same epoch (legacy)
    /// each partition continues after its last acknowledged batch.
    fn next_epoch(&mut self, next_epoch: i16) {
        let Some((producer_id, epoch)) = self.ids else { return };
        if next_epoch != epoch {
            self.sequences.iter_mut().for_each(|s| *s = 0);
        } else if let Some(Operation::Txn(txn)) = &self.operation {
            for batch in txn.batches.iter().filter(|b| b.base_offset.is_some()) {
                self.sequences[batch.partition as usize] =
                    batch.sequence.wrapping_add(batch.records.len() as i32);
            }
        }
        self.ids = Some((producer_id, next_epoch));
    }
}

/// How a transaction ended (`TxnProducer::drain_txn_ended`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnEnded {
    pub outcome: Outcome<Vec<u64>>,
    /// Each record's offset if its batch was acknowledged, in the transaction's order
    /// (every one when a commit was asked); empty if the transaction produced nothing.
    pub acknowledged: Vec<Option<u64>>,
}

/// Each record's offset where its batch was acknowledged, in the transaction's order.
fn acknowledged(txn: &Txn) -> Vec<Option<u64>> {
    let mut offsets = vec![None; txn.records.len()];
    for batch in &txn.batches {
        let Some(base) = batch.base_offset else { continue };
        for (i, &record) in batch.records.iter().enumerate() {
            offsets[record] = Some(base + i as u64);
        }
    }
    offsets
}

/// Each record's offset, in the transaction's order.
fn offsets(txn: &Txn) -> Vec<u64> {
    let mut offsets = vec![0; txn.records.len()];
    for batch in &txn.batches {
        let base = batch.base_offset.expect("committed only when every batch is acknowledged");
        for (i, &record) in batch.records.iter().enumerate() {
            offsets[record] = base + i as u64;
        }
    }
    offsets
}
