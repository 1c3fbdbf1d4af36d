//! The transaction coordinator, sans-IO.
//!
//! It owns every transactional id's state (producer id, epoch, state, partitions) and
//! keeps it on its own partition, a `PartitionLog` of state records (key: the
//! transactional id; value: the state), read back in full when it starts. Nothing is
//! answered before the record that decided it is durable, so a coordinator that crashes
//! never forgets a transaction a producer or a partition leader was told about.
//!
//! The protocol, as Kafka runs it after KIP-890:
//! - `InitTxn` gives the producer id and a new epoch, fencing every earlier producer
//!   with the same transactional id; an ongoing transaction of theirs is aborted first
//!   (the new producer retries while the abort completes).
//! - `AddPartitionsToTxn` begins a transaction or adds partitions to it. Partition
//!   leaders ask (`VerifyTxn`) before they accept a producer's first transactional batch.
//! - `EndTxn` moves the transaction to prepare-commit (or abort), durably, answers, and
//!   writes a marker to every partition; when all are written the state is complete.
//!   Under KIP-890 the epoch is bumped at that moment and markers carry the new epoch,
//!   so a produce or marker of the ended transaction that arrives late is fenced.
//! - A transaction open longer than `txn_timeout_ns` is aborted by the coordinator.

use std::collections::{BTreeMap, BTreeSet};

use crate::batch::{self, ProducerStamp, Record};
use crate::log::{LogConfig, LogError, PartitionLog};
use crate::protocol::{ErrorCode, Msg, NodeId};
use crate::storage::{Storage, StorageError, SyncResult, SyncTicket};
use crate::txn::TxnProtocol;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorConfig {
    pub id: NodeId,
    pub controller: NodeId,
    pub protocol: TxnProtocol,
    pub partitions: u32,
    /// A transaction open longer than this is aborted.
    pub txn_timeout_ns: u64,
    /// A marker or metadata request unanswered this long is sent again.
    pub request_timeout_ns: u64,
    /// Transactional ids it keeps; a new one beyond this is refused.
    pub txn_ids_max: usize,
    /// The highest producer epoch it hands out (at most `PRODUCER_EPOCH_MAX`): a
    /// producer there is refused new transactions, and its next `InitTxn` gets a new
    /// producer id with epoch 0 (as Kafka does when an epoch is exhausted).
    pub producer_epoch_max: i16,
    pub log: LogConfig,
}

/// Where a transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    const ALL: [TxnState; 6] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
    ];

    fn code(self) -> u8 {
        self as u8
    }

    fn preparing(self) -> Option<bool> {
        match self {
            TxnState::PrepareCommit => Some(true),
            TxnState::PrepareAbort => Some(false),
            _ => None,
        }
    }
}

/// One transactional id's state: what the log records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnEntry {
    pub producer_id: i64,
    /// The epoch a producer must present now.
    pub producer_epoch: i16,
    /// The epoch the last ended (or ending) transaction ran under: a retried `EndTxn`
    /// of it still gets its answer after the bump.
    pub last_epoch: i16,
    pub state: TxnState,
    pub partitions: BTreeSet<u32>,
}

impl TxnEntry {
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(15 + 4 * self.partitions.len());
        bytes.extend_from_slice(&self.producer_id.to_le_bytes());
        bytes.extend_from_slice(&self.producer_epoch.to_le_bytes());
        bytes.extend_from_slice(&self.last_epoch.to_le_bytes());
        bytes.push(self.state.code());
        bytes.extend_from_slice(&(self.partitions.len() as u16).to_le_bytes());
        for partition in &self.partitions {
            bytes.extend_from_slice(&partition.to_le_bytes());
        }
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<TxnEntry> {
        let (head, rest) = bytes.split_at_checked(15)?;
        let producer_id = i64::from_le_bytes(head[0..8].try_into().ok()?);
        let producer_epoch = i16::from_le_bytes(head[8..10].try_into().ok()?);
        let last_epoch = i16::from_le_bytes(head[10..12].try_into().ok()?);
        let state = *TxnState::ALL.get(usize::from(head[12]))?;
        let count = usize::from(u16::from_le_bytes(head[13..15].try_into().ok()?));
        if rest.len() != 4 * count {
            return None;
        }
        let partitions =
            rest.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4"))).collect();
        Some(TxnEntry { producer_id, producer_epoch, last_epoch, state, partitions })
    }
}

/// Producer ids the coordinator hands out start here, apart from the controller's.
pub const PRODUCER_ID_BASE: i64 = 1 << 40;
const STATE_DIR: &str = "txn-state";
/// States per batch when the state log is compacted.
const COMPACT_BATCH_RECORDS: usize = 256;
/// Answers waiting for the state to be durable, at most.
const WAITING_MAX: usize = 4096;

/// A marker on its way to one partition.
#[derive(Clone, Copy, Debug)]
struct MarkerSend {
    /// Correlation and when it was sent, while it is in flight.
    in_flight: Option<(u64, u64)>,
}

/// The markers of one ending transaction.
#[derive(Clone, Debug)]
struct MarkerSet {
    /// No marker goes out before the log is durable to here (the end of the record
    /// that decided the transaction): a crash must not lose a decision some partition
    /// already acted on, or the transaction could end the other way elsewhere.
    decided_at: u64,
    partitions: BTreeMap<u32, MarkerSend>,
}

impl MarkerSet {
    fn new(decided_at: u64, partitions: &BTreeSet<u32>) -> MarkerSet {
        let partitions = partitions.iter().map(|&p| (p, MarkerSend { in_flight: None })).collect();
        MarkerSet { decided_at, partitions }
    }
}

/// Epochs stop one short of the largest: a transaction begun below the limit can always
/// end one higher.
pub const PRODUCER_EPOCH_MAX: i16 = i16::MAX - 1;
/// The record a coordinator writes when it starts, before it sends anything: it makes
/// the life's epoch (the batch's leader epoch) durable, so no later life reuses it (or
/// its correlation numbers). Not a transactional id (ids are never empty).
const LIFE_KEY: &[u8] = b"";

/// What a coordinator reports for the history and coverage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordinatorEvent {
    /// A transaction timed out and is being aborted.
    TimedOut,
    /// A producer was fenced by a newer one with the same transactional id.
    Fenced,
    /// A transaction completed (every marker written).
    Completed { commit: bool },
}

pub struct Coordinator {
    config: CoordinatorConfig,
    /// Bumped at every start: stamped into markers, as Kafka's coordinator epoch.
    coordinator_epoch: u32,
    log: PartitionLog,
    txns: BTreeMap<String, TxnEntry>,
    by_producer: BTreeMap<i64, String>,
    /// When each ongoing transaction began (since this start: a restart gives every
    /// open one a full timeout again).
    started_ns: BTreeMap<String, u64>,
    markers: BTreeMap<String, MarkerSet>,
    /// Marker requests sent, by correlation: the transactional id, the partition and
    /// the epoch the marker carried. An answer counts only for the transaction that
    /// epoch ended (a late answer to an earlier transaction's marker must not complete
    /// the next one's). Entries go when their transaction completes.
    markers_in_flight: BTreeMap<u64, (String, u32, i16)>,
    leaders: BTreeMap<u32, NodeId>,
    metadata_in_flight: Option<(u64, u64)>,
    next_producer_id: i64,
    next_correlation: u64,
    /// The latest time it was told (a sync completion carries none).
    now_ns: Option<u64>,
    /// A compaction under way: where the copy of every state starts and ends.
    compacting: Option<(u64, u64)>,
    /// Answers held until the log is durable to this offset.
    waiting: Vec<(u64, NodeId, Msg)>,
    outbox: Vec<(NodeId, Msg)>,
    events: Vec<CoordinatorEvent>,
    halted: Option<String>,
}

impl Coordinator {
    /// Starts, reading every transaction's state back from its log. A prepared
    /// transaction goes on writing its markers; an ongoing one gets a new timeout.
    pub fn open<S: Storage + ?Sized>(
        storage: &mut S,
        config: CoordinatorConfig,
        now_ns: u64,
    ) -> Result<Coordinator, LogError> {
        assert!(
            (2..=PRODUCER_EPOCH_MAX).contains(&config.producer_epoch_max),
            "producer_epoch_max must leave room to end a transaction"
        );
        let (log, _report) = PartitionLog::open(storage, STATE_DIR, config.log.clone())?;
        let coordinator_epoch = log.latest_epoch().map_or(1, |epoch| epoch + 1);
        let mut txns = BTreeMap::new();
        // A batch passed its CRC: a record in it that does not decode was written wrong,
        // and the coordinator refuses to start on state it cannot read rather than
        // forget transactions.
        let mut refused = None;
        log.read_each(storage, log.start_offset(), usize::MAX, |bytes, header| {
            if refused.is_some() {
                return;
            }
            for record in batch::record_views(bytes, header).filter(|r| r.key != LIFE_KEY) {
                let decoded = std::str::from_utf8(record.key)
                    .map_err(|_| "a transactional id is not UTF-8")
                    .and_then(|txn_id| {
                        let entry = TxnEntry::decode(record.value)
                            .ok_or("a transaction state does not decode")?;
                        Ok((txn_id.to_owned(), entry))
                    });
                match decoded {
                    Ok((txn_id, entry)) => {
                        txns.insert(txn_id, entry);
                    }
                    Err(problem) => {
                        refused =
                            Some(format!("the batch at offset {}: {problem}", header.base_offset));
                        return;
                    }
                }
            }
        })?;
        if let Some(detail) = refused {
            let path = STATE_DIR.to_owned();
            return Err(LogError::Storage(StorageError::Invalid { path, detail }));
        }
        let mut coordinator = Coordinator {
            coordinator_epoch,
            log,
            by_producer: txns.iter().map(|(id, e)| (e.producer_id, id.clone())).collect(),
            next_producer_id: txns
                .values()
                .map(|e| e.producer_id + 1)
                .max()
                .unwrap_or(PRODUCER_ID_BASE),
            started_ns: BTreeMap::new(),
            markers: BTreeMap::new(),
            markers_in_flight: BTreeMap::new(),
            leaders: BTreeMap::new(),
            metadata_in_flight: None,
            // Each life numbers its requests apart from the last one's, whose answers
            // may still arrive.
            next_correlation: u64::from(coordinator_epoch) << 32,
            now_ns: Some(now_ns),
            compacting: None,
            waiting: Vec::new(),
            outbox: Vec::new(),
            events: Vec::new(),
            halted: None,
            txns,
            config,
        };
        // This life's epoch, durable before anything is sent (markers wait for it).
        let life = Record { timestamp_ns: now_ns, key: LIFE_KEY.to_vec(), value: Vec::new() };
        coordinator.log.append(
            storage,
            now_ns,
            coordinator_epoch,
            ProducerStamp::NONE,
            vec![life],
        )?;
        coordinator.log.flush(storage, now_ns)?;
        let started_at = coordinator.log.end_offset();
        let ids: Vec<String> = coordinator.txns.keys().cloned().collect();
        for txn_id in ids {
            let entry = &coordinator.txns[&txn_id];
            match entry.state {
                TxnState::Ongoing => {
                    coordinator.started_ns.insert(txn_id, now_ns);
                }
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    let set = MarkerSet::new(started_at, &entry.partitions);
                    coordinator.markers.insert(txn_id, set);
                }
                _ => {}
            }
        }
        Ok(coordinator)
    }

    pub fn drain_outbox(&mut self) -> std::vec::Drain<'_, (NodeId, Msg)> {
        self.outbox.drain(..)
    }

    pub fn drain_events(&mut self) -> std::vec::Drain<'_, CoordinatorEvent> {
        self.events.drain(..)
    }

    /// Why it stopped, if its storage failed (the caller crashes it).
    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    pub fn owns(&self, ticket: SyncTicket) -> bool {
        self.log.owns(ticket)
    }

    pub fn on_synced<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        ticket: SyncTicket,
        result: SyncResult,
    ) {
        if let Err(error) = self.log.on_synced(storage, ticket, result) {
            self.halted.get_or_insert(error.to_string());
            return;
        }
        let durable = self.log.recovery_point();
        if let Some((start, end)) = self.compacting.filter(|&(_, end)| end <= durable) {
            self.compacting = None;
            if let Err(error) = self.log.delete_segments_before(storage, start) {
                self.halted.get_or_insert(error.to_string());
                return;
            }
            debug_assert!(self.log.start_offset() <= start && end <= self.log.end_offset());
        }
        let outbox = &mut self.outbox;
        self.waiting.retain(|(end, to, msg)| {
            if *end > durable {
                return true;
            }
            outbox.push((*to, msg.clone()));
            false
        });
        if let Some(now_ns) = self.now_ns {
            self.send_markers(now_ns);
        }
    }

    fn correlation(&mut self) -> u64 {
        self.next_correlation += 1;
        self.next_correlation
    }

    /// Writes a transaction's new state to the log; answers given after this wait for it.
    fn persist<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        txn_id: &str,
        entry: TxnEntry,
    ) -> Result<(), LogError> {
        let record =
            Record { timestamp_ns: now_ns, key: txn_id.as_bytes().to_vec(), value: entry.encode() };
        let epoch = self.coordinator_epoch;
        self.log.append(storage, now_ns, epoch, ProducerStamp::NONE, vec![record])?;
        self.log.flush(storage, now_ns)?;
        self.by_producer.insert(entry.producer_id, txn_id.to_owned());
        self.txns.insert(txn_id.to_owned(), entry);
        self.maybe_compact(storage, now_ns)
    }

    /// Keeps the state log bounded: once it holds many more records than there are
    /// transactional ids, every id's state is written again at the head of a fresh
    /// segment, and the segments before it go once that copy is durable
    /// (`on_synced`). A crash in between only replays older states first: the last
    /// record of each id still wins.
    fn maybe_compact<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
    ) -> Result<(), LogError> {
        let held = self.log.end_offset() - self.log.start_offset();
        if self.compacting.is_some() || held < self.compact_after_records() {
            return Ok(());
        }
        self.log.roll(storage)?;
        let start = self.log.end_offset();
        let epoch = self.coordinator_epoch;
        let records: Vec<Record> = self
            .txns
            .iter()
            .map(|(txn_id, entry)| Record {
                timestamp_ns: now_ns,
                key: txn_id.as_bytes().to_vec(),
                value: entry.encode(),
            })
            .collect();
        for chunk in records.chunks(COMPACT_BATCH_RECORDS) {
            self.log.append(storage, now_ns, epoch, ProducerStamp::NONE, chunk.to_vec())?;
        }
        self.log.flush(storage, now_ns)?;
        self.compacting = Some((start, self.log.end_offset()));
        Ok(())
    }

    /// Records the state log may hold before it is compacted: a few per id, so a
    /// compaction rewrites a small share of what it frees.
    fn compact_after_records(&self) -> u64 {
        4 * (self.config.txn_ids_max as u64 + 16)
    }

    /// The state log's offsets, first and end: bounded by compaction.
    pub fn state_log_span(&self) -> (u64, u64) {
        (self.log.start_offset(), self.log.end_offset())
    }

    /// Answers once everything written so far is durable.
    fn answer(&mut self, to: NodeId, msg: Msg) {
        let end = self.log.end_offset();
        if end <= self.log.recovery_point() {
            self.outbox.push((to, msg));
        } else if self.waiting.len() < WAITING_MAX {
            self.waiting.push((end, to, msg));
        } // else: dropped; the asker retries
    }

    /// Ends the ongoing transaction of `txn_id`: prepare, durably, then markers.
    fn end<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        txn_id: &str,
        commit: bool,
        fence: bool,
    ) -> Result<(), LogError> {
        let mut entry = self.txns[txn_id].clone();
        debug_assert_eq!(entry.state, TxnState::Ongoing);
        // A retried `EndTxn` of the producer gets the same answer, unless this end
        // fences it (a timeout, a new producer): then it is told it was fenced, and
        // never handed the new epoch.
        entry.last_epoch = if fence { -1 } else { entry.producer_epoch };
        // KIP-890 bumps the epoch at every end; a fencing end bumps it under either
        // protocol. A transaction only begins below the limit, so this never passes it.
        if fence || self.config.protocol == TxnProtocol::Kip890 {
            debug_assert!(entry.producer_epoch < i16::MAX);
            entry.producer_epoch = entry.producer_epoch.saturating_add(1);
        }
        self.started_ns.remove(txn_id);
        if entry.partitions.is_empty() {
            // Nothing was written anywhere: decided and done at once.
            entry.state = if commit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
            return self.persist(storage, now_ns, txn_id, entry);
        }
        entry.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        let set = MarkerSet::new(0, &entry.partitions);
        self.persist(storage, now_ns, txn_id, entry)?;
        let decided_at = self.log.end_offset();
        self.markers.insert(txn_id.to_owned(), MarkerSet { decided_at, ..set });
        self.send_markers(now_ns);
        Ok(())
    }

    /// The passing of time: timeouts, marker retries.
    pub fn tick<S: Storage + ?Sized>(&mut self, storage: &mut S, now_ns: u64) {
        if self.halted.is_some() {
            return;
        }
        if let Err(error) = self.tick_inner(storage, now_ns) {
            self.halted.get_or_insert(error.to_string());
        }
    }

    fn tick_inner<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
    ) -> Result<(), LogError> {
        self.now_ns = Some(now_ns);
        self.log.poll(storage, now_ns)?;
        let timeout = self.config.txn_timeout_ns;
        let expired: Vec<String> = self
            .started_ns
            .iter()
            .filter(|&(_, &started)| now_ns >= started + timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for txn_id in expired {
            self.events.push(CoordinatorEvent::TimedOut);
            self.end(storage, now_ns, &txn_id, false, true)?;
        }
        self.send_markers(now_ns);
        Ok(())
    }

    /// Sends every marker that is due and whose partition leader is known.
    fn send_markers(&mut self, now_ns: u64) {
        let timeout = self.config.request_timeout_ns;
        let durable = self.log.recovery_point();
        let mut need_metadata = false;
        let mut sends = Vec::new();
        for (txn_id, set) in &mut self.markers {
            if set.decided_at > durable {
                continue; // the decision is not durable yet
            }
            let entry = &self.txns[txn_id];
            let commit = entry.state.preparing().expect("markers only while preparing");
            for (&partition, send) in set.partitions.iter_mut() {
                if send.in_flight.is_some_and(|(_, sent)| now_ns < sent + timeout) {
                    continue;
                }
                let Some(&leader) = self.leaders.get(&partition) else {
                    need_metadata = true;
                    continue;
                };
                // Only the latest attempt's answer is awaited: the map stays bounded.
                if let Some((correlation, _)) = send.in_flight.take() {
                    self.markers_in_flight.remove(&correlation);
                }
                sends.push((txn_id.clone(), partition, leader, entry.producer_id, commit));
            }
        }
        for (txn_id, partition, leader, producer_id, commit) in sends {
            let correlation = self.correlation();
            let producer_epoch = self.txns[&txn_id].producer_epoch;
            if let Some(send) =
                self.markers.get_mut(&txn_id).and_then(|m| m.partitions.get_mut(&partition))
            {
                send.in_flight = Some((correlation, now_ns));
            }
            self.markers_in_flight.insert(correlation, (txn_id, partition, producer_epoch));
            let msg = Msg::WriteTxnMarker {
                correlation,
                partition,
                producer_id,
                producer_epoch,
                commit,
                coordinator_epoch: self.coordinator_epoch,
            };
            self.outbox.push((leader, msg));
        }
        if need_metadata && self.metadata_in_flight.is_none_or(|(_, sent)| now_ns >= sent + timeout)
        {
            let correlation = self.correlation();
            self.metadata_in_flight = Some((correlation, now_ns));
            self.outbox.push((self.config.controller, Msg::Metadata { correlation }));
        }
    }

    pub fn handle<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        from: NodeId,
        msg: Msg,
    ) {
        if self.halted.is_some() {
            return;
        }
        if let Err(error) = self.handle_inner(storage, now_ns, from, msg) {
            self.halted.get_or_insert(error.to_string());
        }
    }

    fn handle_inner<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        from: NodeId,
        msg: Msg,
    ) -> Result<(), LogError> {
        self.now_ns = Some(now_ns);
        match msg {
            Msg::InitTxn { correlation, txn_id } => {
                let result = self.on_init(storage, now_ns, &txn_id)?;
                self.answer(from, Msg::InitTxnResponse { correlation, result });
            }
            Msg::AddPartitionsToTxn {
                correlation,
                txn_id,
                producer_id,
                producer_epoch,
                partitions,
            } => {
                let result = self.on_add(
                    storage,
                    now_ns,
                    &txn_id,
                    (producer_id, producer_epoch),
                    &partitions,
                )?;
                self.answer(from, Msg::AddPartitionsToTxnResponse { correlation, result });
            }
            Msg::EndTxn { correlation, txn_id, producer_id, producer_epoch, commit } => {
                let result =
                    self.on_end(storage, now_ns, &txn_id, (producer_id, producer_epoch), commit)?;
                self.answer(from, Msg::EndTxnResponse { correlation, result });
            }
            Msg::VerifyTxn { correlation, partition, producer_id, producer_epoch } => {
                let verified = self
                    .by_producer
                    .get(&producer_id)
                    .and_then(|txn_id| self.txns.get(txn_id))
                    .is_some_and(|entry| {
                        entry.producer_id == producer_id
                            && entry.producer_epoch == producer_epoch
                            && entry.state == TxnState::Ongoing
                            && entry.partitions.contains(&partition)
                    });
                let msg = Msg::VerifyTxnResponse {
                    correlation,
                    partition,
                    producer_id,
                    producer_epoch,
                    verified,
                };
                self.answer(from, msg);
            }
            Msg::MetadataResponse { correlation, states }
                if self.metadata_in_flight.is_some_and(|(c, _)| c == correlation) =>
            {
                self.metadata_in_flight = None;
                for state in states {
                    match state.leader {
                        Some(leader) => self.leaders.insert(state.partition, leader),
                        None => self.leaders.remove(&state.partition),
                    };
                }
                self.send_markers(now_ns);
            }
            Msg::WriteTxnMarkerResponse { correlation, partition, result } => {
                // An answer to an earlier life of the coordinator can carry a correlation
                // this life uses too: it must name the same partition to count; and an
                // answer to an earlier transaction's marker counts for nothing.
                let Some((txn_id, sent_to, epoch)) = self.markers_in_flight.remove(&correlation)
                else {
                    return Ok(());
                };
                let current = self.txns.get(&txn_id).is_some_and(|entry| {
                    entry.producer_epoch == epoch && entry.state.preparing().is_some()
                });
                if sent_to != partition || !current {
                    return Ok(());
                }
                let Some(set) = self.markers.get_mut(&txn_id) else { return Ok(()) };
                let partitions = &mut set.partitions;
                match result {
                    // Fenced: the partition already holds a later epoch's marker.
                    Ok(()) | Err(ErrorCode::ProducerFenced) => {
                        partitions.remove(&partition);
                    }
                    Err(_) => {
                        self.leaders.remove(&partition);
                        if let Some(send) = partitions.get_mut(&partition) {
                            send.in_flight = None;
                        }
                    }
                }
                if partitions.is_empty() {
                    self.markers.remove(&txn_id);
                    self.markers_in_flight.retain(|_, (id, _, _)| *id != txn_id);
                    let mut entry = self.txns[&txn_id].clone();
                    let commit = entry.state.preparing().expect("markers only while preparing");
                    entry.state =
                        if commit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
                    entry.partitions.clear();
                    self.events.push(CoordinatorEvent::Completed { commit });
                    self.persist(storage, now_ns, &txn_id, entry)?;
                } else {
                    self.send_markers(now_ns);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn on_init<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        txn_id: &str,
    ) -> Result<Result<(i64, i16), ErrorCode>, LogError> {
        let Some(entry) = self.txns.get(txn_id).cloned() else {
            if self.txns.len() >= self.config.txn_ids_max {
                return Ok(Err(ErrorCode::ConcurrentTransactions));
            }
            let producer_id = self.next_producer_id;
            self.next_producer_id += 1;
            let entry = TxnEntry {
                producer_id,
                producer_epoch: 0,
                last_epoch: -1,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
            };
            self.persist(storage, now_ns, txn_id, entry)?;
            return Ok(Ok((producer_id, 0)));
        };
        match entry.state {
            TxnState::Ongoing => {
                // Fence the old producer: abort its transaction with a bumped epoch; the
                // new one asks again once the markers are written.
                self.events.push(CoordinatorEvent::Fenced);
                self.end(storage, now_ns, txn_id, false, true)?;
                Ok(Err(ErrorCode::ConcurrentTransactions))
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Ok(Err(ErrorCode::ConcurrentTransactions))
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                // The old epoch is fenced: no `EndTxn` retry of it gets an answer now.
                let limit = self.config.producer_epoch_max;
                let (producer_id, producer_epoch) = if entry.producer_epoch >= limit - 1 {
                    // Epochs exhausted: a new producer id, which fences the old one too.
                    self.by_producer.remove(&entry.producer_id);
                    self.next_producer_id += 1;
                    (self.next_producer_id - 1, 0)
                } else {
                    (entry.producer_id, entry.producer_epoch + 1)
                };
                let next = TxnEntry {
                    producer_id,
                    producer_epoch,
                    last_epoch: -1,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                };
                self.persist(storage, now_ns, txn_id, next)?;
                Ok(Ok((producer_id, producer_epoch)))
            }
        }
    }

    /// The producer's id and epoch against the entry's: fenced if older.
    fn check_producer(entry: Option<&TxnEntry>, (id, epoch): (i64, i16)) -> Result<(), ErrorCode> {
        let entry = entry.ok_or(ErrorCode::InvalidTxnState)?;
        if entry.producer_id != id || epoch < entry.producer_epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        if epoch > entry.producer_epoch {
            return Err(ErrorCode::InvalidTxnState);
        }
        Ok(())
    }

    fn on_add<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        txn_id: &str,
        producer: (i64, i16),
        partitions: &[u32],
    ) -> Result<Result<(), ErrorCode>, LogError> {
        let entry = self.txns.get(txn_id);
        if let Err(code) = Self::check_producer(entry, producer) {
            return Ok(Err(code));
        }
        if partitions.is_empty() || partitions.iter().any(|&p| p >= self.config.partitions) {
            return Ok(Err(ErrorCode::InvalidTxnState));
        }
        if entry.is_some_and(|entry| entry.producer_epoch >= self.config.producer_epoch_max) {
            // No room to end another transaction: the producer must take a new id.
            return Ok(Err(ErrorCode::ProducerFenced));
        }
        let mut entry = entry.expect("checked").clone();
        match entry.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return Ok(Err(ErrorCode::ConcurrentTransactions));
            }
            TxnState::Ongoing if partitions.iter().all(|p| entry.partitions.contains(p)) => {
                return Ok(Ok(())); // a retry: answered once its record is durable
            }
            TxnState::Ongoing => {}
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                entry.state = TxnState::Ongoing;
                entry.partitions.clear();
                self.started_ns.insert(txn_id.to_owned(), now_ns);
            }
        }
        entry.partitions.extend(partitions.iter().copied());
        self.persist(storage, now_ns, txn_id, entry)?;
        Ok(Ok(()))
    }

    fn on_end<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        txn_id: &str,
        producer: (i64, i16),
        commit: bool,
    ) -> Result<Result<i16, ErrorCode>, LogError> {
        let Some(entry) = self.txns.get(txn_id) else { return Ok(Err(ErrorCode::InvalidTxnState)) };
        let ending = match entry.state {
            TxnState::PrepareCommit | TxnState::CompleteCommit => Some(true),
            TxnState::PrepareAbort | TxnState::CompleteAbort => Some(false),
            _ => None,
        };
        // A retry of the end that was already decided: the same answer.
        if entry.producer_id == producer.0 && entry.last_epoch == producer.1 {
            if let Some(decided) = ending {
                return Ok(if decided == commit {
                    Ok(entry.producer_epoch)
                } else {
                    Err(ErrorCode::InvalidTxnState)
                });
            }
        }
        if let Err(code) = Self::check_producer(Some(entry), producer) {
            return Ok(Err(code));
        }
        match entry.state {
            TxnState::Ongoing => {
                self.end(storage, now_ns, txn_id, commit, false)?;
                Ok(Ok(self.txns[txn_id].producer_epoch))
            }
            // Nothing was added: nothing to end.
            TxnState::Empty => Ok(Ok(entry.producer_epoch)),
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Ok(Err(ErrorCode::ConcurrentTransactions))
            }
            TxnState::CompleteCommit | TxnState::CompleteAbort => {
                Ok(Err(ErrorCode::InvalidTxnState))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_refused() {
        let entry = TxnEntry {
            producer_id: PRODUCER_ID_BASE + 3,
            producer_epoch: 7,
            last_epoch: 6,
            state: TxnState::PrepareAbort,
            partitions: [0, 2, 5].into_iter().collect(),
        };
        let bytes = entry.encode();
        assert_eq!(TxnEntry::decode(&bytes), Some(entry));
        assert_eq!(TxnEntry::decode(&bytes[..bytes.len() - 1]), None);
        let mut bad_state = bytes.clone();
        bad_state[12] = 9;
        assert_eq!(TxnEntry::decode(&bad_state), None);
    }
}
