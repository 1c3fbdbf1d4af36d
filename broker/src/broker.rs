//! A broker: the replicas it hosts, sans-IO.
//!
//! Inputs: a message (`handle`), the passing of time (`tick`), a completed sync
//! (`on_synced`). Effects: messages in the outbox (`drain_outbox`), protocol events for
//! the history (`drain_events`), and `halted()` when the broker must stop because its
//! storage can no longer be trusted (the caller crashes it; a restart recovers from
//! what the disk holds).
//!
//! Replication follows Kafka: followers fetch from the leader, the leader tracks each
//! follower's log end, the high watermark is the minimum over the ISR and does not move
//! while the ISR is below `min_insync_replicas` (KIP-966). A replica that becomes a
//! follower truncates by asking the leader where its latest epoch ends (KIP-101/279),
//! or, under the legacy rule, to its own high watermark.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::batch::{self, ProducerStamp, RecordBatch};
use crate::checkpoint::{self, CheckpointKind, CheckpointWriter};
use crate::key_versions::KeyVersions;
use crate::log::{FlushPolicy, LogConfig, LogError, PartitionLog};
use crate::protocol::{
    Acks, ErrorCode, FetchData, Isolation, LogReport, Msg, NodeId, PartitionState,
};
use crate::storage::{Storage, SyncResult, SyncTicket, join};
use crate::txn::{self, Marker, PartitionTxns, TxnProtocol};

/// How a replica that becomes a follower finds where its log diverges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TruncationRule {
    /// KIP-279: ask the leader where the replica's latest epoch ends; the answer names
    /// the largest epoch at most that one the leader has. A follower without that epoch
    /// cuts to the end of its own largest epoch below it and asks again, until both
    /// agree on an epoch: then the logs match up to the cut.
    LeaderEpoch,
    /// KIP-101 alone: one question, answered with the start of the leader's next higher
    /// epoch and no epoch; the follower cuts there once. Logs can stay apart for good
    /// when leaders change fast (what KIP-279 fixed): a weak setting.
    Kip101,
    /// Truncate to the local high watermark (the legacy rule; loses data).
    HighWatermark,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerConfig {
    pub id: NodeId,
    pub controller: NodeId,
    pub min_insync_replicas: u32,
    pub truncation: TruncationRule,
    pub log: LogConfig,
    /// A follower that has not caught up for this long leaves the ISR.
    pub replica_lag_max_ns: u64,
    pub heartbeat_every_ns: u64,
    /// A follower asks again when an answer takes longer than this.
    pub request_timeout_ns: u64,
    /// How long a leader may hold a follower's fetch that finds nothing new (Kafka's
    /// `replica.fetch.wait.max.ms`, with `replica.fetch.min.bytes` = 1): it is answered
    /// as soon as the log grows past it, or empty once this has passed. `0` answers
    /// every fetch at once. Below `request_timeout_ns` by more than a round trip, or the
    /// follower gives up on a fetch the leader is still holding.
    pub replica_fetch_wait_max_ns: u64,
    pub fetch_max_bytes: u32,
    /// Produce requests waiting for the high watermark, per partition.
    pub pending_produce_max: usize,
    /// The high watermark checkpoint is written at most this often.
    pub hw_checkpoint_every_ns: u64,
    /// The transaction coordinator, asked to verify a producer's first transactional
    /// batch on a partition (KIP-890); `None` when the cluster has none.
    pub txn_coordinator: Option<NodeId>,
    pub txn_protocol: TxnProtocol,
}

/// What a broker reports for the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerEvent {
    Leader {
        partition: u32,
        epoch: u32,
    },
    Follower {
        partition: u32,
        epoch: u32,
    },
    HighWatermark {
        partition: u32,
        offset: u64,
    },
    Truncate {
        partition: u32,
        offset: u64,
    },
    /// The controller's word changed the ISR of a partition this broker leads.
    IsrChange {
        partition: u32,
        shrank: bool,
        grew: bool,
    },
    /// A batch went into a partition's log, as leader or as follower: with its CRC, it
    /// names the batch, so a harness can keep a ledger of all a replica ever wrote and
    /// check a recovered log against it.
    Appended {
        partition: u32,
        base_offset: u64,
        end_offset: u64,
        crc: u32,
    },
    /// A partition's log was opened and recovered from the disk (at every start of the
    /// broker, once the controller names the partition).
    Opened {
        partition: u32,
    },
    /// Opening the log after a restart cut a torn or corrupt tail.
    RecoveryCut {
        partition: u32,
        bytes: u64,
    },
    /// Opening the log trusted `segments` below its recovery point without a rescan.
    RecoveryTrusted {
        partition: u32,
        segments: u64,
    },
    /// A request was refused for its stale (or future) leader epoch.
    Fenced {
        partition: u32,
    },
    /// A produce or marker was refused for its stale producer epoch (a zombie fenced).
    ProducerFenced {
        partition: u32,
    },
    /// A follower's fetch this leader held (long poll) was answered.
    HeldFetchAnswered {
        partition: u32,
        by: HeldFetchEnd,
    },
    /// A transaction marker was written (as leader).
    TxnMarker {
        partition: u32,
        commit: bool,
    },
}

/// What ended a leader's hold on a follower's fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeldFetchEnd {
    /// The log grew past it: answered with the new records.
    Data,
    /// The wait ran out: answered with nothing new.
    Wait,
    /// The leadership or its epoch changed: answered with the error a fresh fetch gets.
    Leadership,
}

/// Batches of one idempotent producer kept for duplicate detection (Kafka keeps 5).
const PRODUCER_BATCHES_KEPT: usize = 5;

#[derive(Clone, Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    /// (first sequence, last sequence, base offset), oldest first.
    batches: VecDeque<(i32, i32, u64)>,
}

#[derive(Clone, Debug)]
struct Progress {
    /// The broker epoch of the follower's latest fetch: a fetch from an earlier life
    /// (a lower epoch, delayed in the network) must not move its progress.
    broker_epoch: u64,
    log_end: u64,
    durable: u64,
    caught_up_ns: u64,
    /// The follower's fetch the leader holds (long poll): at most one, the newest.
    parked: Option<ParkedFetch>,
}

/// A follower's fetch at the leader's log end, held until the log grows, the wait
/// ends, or the leadership does.
#[derive(Clone, Debug)]
struct ParkedFetch {
    from: NodeId,
    correlation: u64,
    leader_epoch: u32,
    fetch_offset: u64,
    /// The follower's life (broker epoch) when it asked.
    broker_epoch: u64,
    max_bytes: u32,
    parked_ns: u64,
}

impl ParkedFetch {
    /// Of two fetches of one follower, the later one (its correlations only grow within
    /// a life).
    fn is_after(&self, other: &ParkedFetch) -> bool {
        (self.broker_epoch, self.correlation) > (other.broker_epoch, other.correlation)
    }
}

struct PendingProduce {
    from: NodeId,
    correlation: u64,
    base_offset: u64,
    end_offset: u64,
    /// A transaction marker (answered with `WriteTxnMarkerResponse`), not a produce.
    marker: bool,
}

impl PendingProduce {
    fn answer(&self, partition: u32, result: Result<u64, ErrorCode>) -> (NodeId, Msg) {
        let correlation = self.correlation;
        let msg = if self.marker {
            Msg::WriteTxnMarkerResponse { correlation, partition, result: result.map(|_| ()) }
        } else {
            Msg::ProduceResponse { partition, correlation, result }
        };
        (self.from, msg)
    }
}

/// A transactional produce waiting for the coordinator to verify its transaction.
struct ParkedProduce {
    from: NodeId,
    correlation: u64,
    leader_epoch: Option<u32>,
    acks: Acks,
    producer: ProducerStamp,
    records: Vec<batch::Record>,
    expected_version: Option<u64>,
    parked_ns: u64,
}

enum Role {
    Leader {
        followers: BTreeMap<NodeId, Progress>,
        /// When the last ISR change was sent and not yet answered.
        isr_change_sent_ns: Option<u64>,
        /// Every member proposed since the controller's last answer. Until it answers,
        /// the high watermark counts these with the current ISR (Kafka's "maximal
        /// ISR"): the controller may already elect from a proposal.
        proposed_isr: Vec<NodeId>,
    },
    Follower {
        leader: NodeId,
        truncated: bool,
        /// The request in flight: correlation and when it was sent.
        in_flight: Option<(u64, u64)>,
    },
    Offline,
}

struct Replica {
    state: PartitionState,
    log: PartitionLog,
    high_watermark: u64,
    hw_writer: CheckpointWriter,
    hw_written: u64,
    hw_written_ns: u64,
    role: Role,
    /// The log was cut (by recovery or by the protocol) and the cut is not yet known
    /// durable. A follower appends nothing after a cut until it is: a crash could
    /// otherwise undo the cut yet keep later appends, and bring back a stale record
    /// beneath records of a newer epoch, where the epoch handshake cannot see it.
    /// (Found by crash-restart-loop at 10,000 seeds, seed 4260.)
    cut_unsynced: bool,
    producers: BTreeMap<i64, ProducerEntry>,
    pending: Vec<PendingProduce>,
    /// Open and aborted transactions, derived from the log like `producers`.
    txns: PartitionTxns,
    /// (producer id, epoch) the coordinator confirmed in an ongoing transaction holding
    /// this partition; a producer's entry goes at its next marker, all at a role change.
    txn_verified: BTreeSet<(i64, i16)>,
    /// Verifications asked for and not yet answered, with when they were asked.
    txn_verifying: BTreeMap<(i64, i16), u64>,
    /// Produces waiting for a verification; at most `pending_produce_max`.
    parked: Vec<ParkedProduce>,
    /// A leader's records per key, for conditional appends: derived from its log (the
    /// uncommitted tail included) at the first conditional append of a leadership, kept
    /// up by its appends and markers, dropped at every role change. Never trusted
    /// across lives or roles.
    key_versions: Option<KeyVersions>,
}

/// The file a partition's high watermark is checkpointed in, in the partition's
/// directory.
pub const HIGH_WATERMARK_FILE: &str = "high-watermark.checkpoint";

fn appended_event(partition: u32, appended: &crate::log::Appended) -> BrokerEvent {
    let (base_offset, end_offset, crc) = (appended.base_offset, appended.end_offset, appended.crc);
    BrokerEvent::Appended { partition, base_offset, end_offset, crc }
}

/// One broker.
pub struct Broker {
    config: BrokerConfig,
    incarnation: u64,
    /// Given by the controller once it has registered this incarnation.
    broker_epoch: u64,
    replicas: BTreeMap<u32, Replica>,
    outbox: Vec<(NodeId, Msg)>,
    events: Vec<BrokerEvent>,
    next_correlation: u64,
    last_heartbeat_ns: Option<u64>,
    halted: Option<String>,
}

impl Broker {
    /// A broker starting (or restarting): it knows nothing until the controller answers
    /// its first heartbeat. `incarnation` must differ at every start: its low 32 bits
    /// also number this life's requests (from `incarnation << 32`), so that a late
    /// answer to a request of an earlier life is never taken for one of this life's
    /// (as a restart closes a real broker's connections).
    pub fn new(config: BrokerConfig, incarnation: u64) -> Broker {
        assert!(
            config.replica_fetch_wait_max_ns < config.request_timeout_ns,
            "a follower would give up on the fetches its leader holds"
        );
        Broker {
            config,
            incarnation,
            broker_epoch: 0,
            replicas: BTreeMap::new(),
            outbox: Vec::new(),
            events: Vec::new(),
            next_correlation: (incarnation & 0xFFFF_FFFF) << 32,
            last_heartbeat_ns: None,
            halted: None,
        }
    }

    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// Messages to send, in order.
    pub fn drain_outbox(&mut self) -> std::vec::Drain<'_, (NodeId, Msg)> {
        self.outbox.drain(..)
    }

    pub fn drain_events(&mut self) -> std::vec::Drain<'_, BrokerEvent> {
        self.events.drain(..)
    }

    /// True if there are messages or events to drain: a caller that looks first spares
    /// itself draining nothing after most inputs.
    pub fn has_output(&self) -> bool {
        !self.outbox.is_empty() || !self.events.is_empty()
    }

    /// Why the broker stopped, if it did: its storage failed in a way that only a
    /// restart (recovery from disk) can answer.
    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    /// Partitions this broker holds a replica of.
    pub fn partitions(&self) -> impl Iterator<Item = u32> + '_ {
        self.replicas.keys().copied()
    }

    pub fn high_watermark(&self, partition: u32) -> Option<u64> {
        self.replicas.get(&partition).map(|replica| replica.high_watermark)
    }

    /// Below it every transaction of the partition is decided (at most the high
    /// watermark).
    pub fn last_stable_offset(&self, partition: u32) -> Option<u64> {
        self.replicas
            .get(&partition)
            .map(|replica| replica.txns.last_stable_offset(replica.high_watermark))
    }

    /// The partition's aborted transactions, in log order.
    pub fn aborted_txns(&self, partition: u32) -> Vec<crate::protocol::AbortedTxn> {
        self.replicas
            .get(&partition)
            .map(|replica| replica.txns.aborted_between(0, u64::MAX))
            .unwrap_or_default()
    }

    pub fn log(&self, partition: u32) -> Option<&PartitionLog> {
        self.replicas.get(&partition).map(|replica| &replica.log)
    }

    pub fn is_leader(&self, partition: u32) -> bool {
        self.replicas
            .get(&partition)
            .is_some_and(|replica| matches!(replica.role, Role::Leader { .. }))
    }

    /// A halted broker answers nothing more: the fetches it holds are dropped (their
    /// followers time out and ask whoever leads next).
    fn halt(&mut self, why: String) {
        self.halted.get_or_insert(why);
        for replica in self.replicas.values_mut() {
            if let Role::Leader { followers, .. } = &mut replica.role {
                followers.values_mut().for_each(|progress| progress.parked = None);
            }
        }
    }

    /// The passing of time: heartbeats, flushes, ISR upkeep, follower requests.
    pub fn tick<S: Storage + ?Sized>(&mut self, storage: &mut S, now_ns: u64) {
        if self.halted.is_some() {
            return;
        }
        if self.last_heartbeat_ns.is_none_or(|last| now_ns >= last + self.config.heartbeat_every_ns)
        {
            self.last_heartbeat_ns = Some(now_ns);
            let logs = self
                .replicas
                .iter()
                .map(|(&partition, replica)| LogReport {
                    partition,
                    latest_epoch: replica.log.latest_epoch().unwrap_or(0),
                    end_offset: replica.log.end_offset(),
                })
                .collect();
            let heartbeat =
                Msg::Heartbeat { broker: self.config.id, incarnation: self.incarnation, logs };
            self.outbox.push((self.config.controller, heartbeat));
        }
        // Ticking a replica never adds or removes one: walk the keys in order without
        // collecting them.
        let mut next = self.replicas.keys().next().copied();
        while let Some(partition) = next {
            if let Err(error) = self.tick_replica(storage, now_ns, partition) {
                self.halt(format!("partition {partition}: {error}"));
                return;
            }
            next = self.replicas.range(partition + 1..).next().map(|(&p, _)| p);
        }
    }

    fn tick_replica<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        partition: u32,
    ) -> Result<(), LogError> {
        self.tick_parked_fetches(storage, now_ns, partition)?;
        let config = &self.config;
        let broker_epoch = self.broker_epoch;
        let durable_acks = config.log.flush == FlushPolicy::EveryAppend;
        let fetches_after_sync = self.fetches_after_sync();
        let correlation = self.next_correlation + 1;
        let replica = self.replicas.get_mut(&partition).expect("ticked partitions exist");
        replica.log.poll(storage, now_ns)?;
        // A verification never answered is asked again by the produce's retry; a parked
        // produce that old has been given up on by its producer.
        let timeout = config.request_timeout_ns;
        replica.txn_verifying.retain(|_, sent| now_ns < *sent + timeout);
        replica.parked.retain(|parked| now_ns < parked.parked_ns + timeout);
        // The high watermark checkpoint only saves work at a restart (a lower one is
        // safe), so it is written at most every `hw_checkpoint_every_ns`, as Kafka does.
        if replica.high_watermark > replica.hw_written
            && now_ns >= replica.hw_written_ns.saturating_add(config.hw_checkpoint_every_ns)
        {
            replica.hw_written = replica.high_watermark;
            replica.hw_written_ns = now_ns;
            replica.hw_writer.write(storage, checkpoint::u64_payload(replica.high_watermark))?;
        }
        match &mut replica.role {
            Role::Leader { followers, isr_change_sent_ns, proposed_isr } => {
                if isr_change_sent_ns.is_some_and(|sent| now_ns < sent + config.request_timeout_ns)
                {
                    return Ok(());
                }
                // Shrink: a member that has not caught up for too long. Grow: a replica
                // that caught up to the high watermark.
                let state = &replica.state;
                // Whether the ISR changes at all, without building it: each follower's
                // membership is decided on the current ISR alone (a shrink or grow only
                // moves that follower), so a change is a shrink or a grow of one.
                let changes = followers.iter().any(|(follower, progress)| {
                    if state.isr.contains(follower) {
                        now_ns.saturating_sub(progress.caught_up_ns) > config.replica_lag_max_ns
                    } else {
                        progress.log_end >= replica.high_watermark
                            && progress.log_end >= replica.log.end_offset()
                            && (!durable_acks || progress.durable >= replica.high_watermark)
                    }
                });
                if !changes && isr_change_sent_ns.is_none() {
                    return Ok(());
                }
                let mut isr = state.isr.clone();
                for (&follower, progress) in followers.iter() {
                    let in_isr = isr.contains(&follower);
                    if in_isr
                        && now_ns.saturating_sub(progress.caught_up_ns) > config.replica_lag_max_ns
                    {
                        isr.retain(|&member| member != follower);
                    } else if !in_isr
                        && progress.log_end >= replica.high_watermark
                        && progress.log_end >= replica.log.end_offset()
                        && (!durable_acks || progress.durable >= replica.high_watermark)
                    {
                        // With durable acknowledgements a member must hold the committed
                        // records on disk, not only in memory: it may be elected. (Found by
                        // the power-loss scenario: a follower joined, crashed before its
                        // sync, was elected, and the committed tail was gone.)
                        isr.push(follower);
                    }
                }
                isr.sort_unstable();
                let mut current = state.isr.clone();
                current.sort_unstable();
                if isr != current || isr_change_sent_ns.is_some() {
                    *isr_change_sent_ns = Some(now_ns);
                    // Every member ever proposed since the last answer stays in the maximal
                    // ISR: the controller may have accepted an earlier proposal whose
                    // answer was lost. (Found by crash-restart-loop at 10,000 seeds.)
                    for member in &isr {
                        if !proposed_isr.contains(member) {
                            proposed_isr.push(*member);
                        }
                    }
                    let broker_epochs = isr
                        .iter()
                        .filter_map(|member| {
                            followers.get(member).map(|p| (*member, p.broker_epoch))
                        })
                        .collect();
                    let msg = Msg::AlterIsr {
                        partition,
                        leader_epoch: state.leader_epoch,
                        partition_epoch: state.partition_epoch,
                        isr,
                        broker_epochs,
                    };
                    self.outbox.push((config.controller, msg));
                }
            }
            Role::Follower { .. } if replica.cut_unsynced && replica.log.sync_pending() => {}
            // `fetches_after_sync`: the sync's completion sends the fetch.
            Role::Follower { .. } if fetches_after_sync && replica.log.sync_pending() => {}
            Role::Follower { leader, truncated, in_flight } => {
                replica.cut_unsynced = false;
                if in_flight.is_some_and(|(_, sent)| now_ns < sent + config.request_timeout_ns) {
                    return Ok(());
                }
                let leader_epoch = replica.state.leader_epoch;
                if !*truncated && config.truncation == TruncationRule::HighWatermark {
                    // The legacy rule: whatever is above the local high watermark goes.
                    *truncated = true;
                    let hw = replica.high_watermark;
                    if hw < replica.log.end_offset() {
                        let new_end = replica.log.truncate_to(storage, hw)?;
                        forget_from(storage, replica, new_end)?;
                        replica.cut_unsynced = true;
                        replica.log.flush(storage, now_ns)?;
                        self.events.push(BrokerEvent::Truncate { partition, offset: new_end });
                        return Ok(()); // fetch once the cut is durable
                    }
                }
                if !*truncated && replica.log.latest_epoch().is_none() {
                    *truncated = true; // an empty log has nothing to cut
                }
                let msg = match replica.log.latest_epoch().filter(|_| !*truncated) {
                    Some(requested_epoch) => Msg::OffsetForLeaderEpoch {
                        partition,
                        correlation,
                        leader_epoch,
                        requested_epoch,
                    },
                    None => fetch(
                        &replica.log,
                        partition,
                        correlation,
                        leader_epoch,
                        (config.id, broker_epoch),
                        config.fetch_max_bytes,
                    ),
                };
                *in_flight = Some((correlation, now_ns));
                self.next_correlation = correlation;
                self.outbox.push((*leader, msg));
            }
            Role::Offline => {}
        }
        Ok(())
    }

    /// A completed sync: routed to the log or checkpoint that asked for it.
    pub fn on_synced<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        ticket: SyncTicket,
        result: SyncResult,
    ) {
        let mut failure = None;
        let mut touched = None;
        for (&partition, replica) in &mut self.replicas {
            if replica.log.owns(ticket) {
                if let Err(error) = replica.log.on_synced(storage, ticket, result.clone()) {
                    failure = Some(format!("partition {partition}: {error}"));
                }
                touched = Some(partition);
                break;
            }
            if replica.hw_writer.owns(ticket) {
                if let Err(error) = replica.hw_writer.on_synced(storage, ticket, result.clone()) {
                    failure =
                        Some(format!("partition {partition}: high watermark checkpoint: {error}"));
                }
                break;
            }
        }
        if let Some(why) = failure {
            return self.halt(why);
        }
        if let Some(partition) = touched {
            // With durable acknowledgements the leader's own durable offset counts.
            self.maybe_advance_high_watermark(partition);
            if let Err(error) = self.fetch_when_durable(storage, now_ns, partition) {
                self.halt(format!("partition {partition}: {error}"));
            }
        }
    }

    /// A follower that waited for its appends to be durable fetches now (see
    /// `tick_replica`): its fetch reports them, and the high watermark counts them.
    fn fetch_when_durable<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        partition: u32,
    ) -> Result<(), LogError> {
        if !self.fetches_after_sync() {
            return Ok(());
        }
        let replica = &self.replicas[&partition];
        let waiting = matches!(replica.role, Role::Follower { in_flight: None, .. });
        if !waiting || replica.log.sync_pending() {
            return Ok(());
        }
        self.tick_replica(storage, now_ns, partition)
    }

    /// With durable acknowledgements the leader counts what a follower's fetch reports
    /// durable, and with long polls it may hold that fetch until the log grows: a fetch
    /// sent before the follower's appends are durable would leave the high watermark
    /// waiting. So the follower fetches once they are.
    fn fetches_after_sync(&self) -> bool {
        self.config.log.flush == FlushPolicy::EveryAppend
            && self.config.replica_fetch_wait_max_ns > 0
    }

    /// A message arrived.
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
        let result = match msg {
            Msg::HeartbeatAck { states, registration: Some((incarnation, broker_epoch)) }
                if incarnation == self.incarnation =>
            {
                self.broker_epoch = broker_epoch;
                self.on_states(storage, now_ns, states)
            }
            Msg::Produce {
                partition,
                correlation,
                leader_epoch,
                acks,
                producer,
                records,
                expected_version,
                transactional,
            } => self.on_produce(
                storage,
                now_ns,
                from,
                partition,
                correlation,
                leader_epoch,
                (acks, producer, expected_version, transactional),
                records,
            ),
            Msg::WriteTxnMarker {
                correlation,
                partition,
                producer_id,
                producer_epoch,
                commit,
                coordinator_epoch,
            } => self.on_txn_marker(
                storage,
                now_ns,
                (from, correlation, partition),
                ProducerStamp { producer_id, producer_epoch, base_sequence: -1 },
                Marker { commit, coordinator_epoch },
            ),
            Msg::VerifyTxnResponse { partition, producer_id, producer_epoch, verified, .. } => self
                .on_txn_verified(
                    storage,
                    now_ns,
                    partition,
                    (producer_id, producer_epoch),
                    verified,
                ),
            Msg::Fetch {
                partition,
                correlation,
                leader_epoch,
                fetch_offset,
                replica,
                durable_offset,
                max_bytes,
                isolation,
            } => {
                let answer = self.on_fetch(
                    storage,
                    now_ns,
                    (from, partition, correlation),
                    leader_epoch,
                    fetch_offset,
                    replica,
                    durable_offset,
                    (max_bytes, isolation),
                );
                if let Some(result) = answer {
                    self.outbox.push((from, Msg::FetchResponse { partition, correlation, result }));
                }
                Ok(())
            }
            Msg::FetchResponse { partition, correlation, result } => {
                self.on_fetch_response(storage, now_ns, partition, correlation, result)
            }
            Msg::OffsetForLeaderEpoch { partition, correlation, leader_epoch, requested_epoch } => {
                let result = self
                    .leader_check(partition, Some(leader_epoch))
                    .map(|replica| replica.log.epoch_end_answer(requested_epoch));
                if let Err(code) = result {
                    self.note_refusal(partition, code);
                }
                self.outbox.push((
                    from,
                    Msg::OffsetForLeaderEpochResponse { partition, correlation, result },
                ));
                Ok(())
            }
            Msg::OffsetForLeaderEpochResponse { partition, correlation, result } => {
                self.on_epoch_end(storage, now_ns, partition, correlation, result)
            }
            // Requests for the controller, or answers for clients: not ours.
            _ => Ok(()),
        };
        if let Err(error) = result {
            self.halt(error.to_string());
        }
    }

    /// A refusal for a stale or future epoch is fencing at work: reported for coverage.
    fn note_refusal(&mut self, partition: u32, code: ErrorCode) {
        if matches!(code, ErrorCode::FencedLeaderEpoch | ErrorCode::UnknownLeaderEpoch) {
            self.events.push(BrokerEvent::Fenced { partition });
        }
    }

    fn leader_check(
        &self,
        partition: u32,
        leader_epoch: Option<u32>,
    ) -> Result<&Replica, ErrorCode> {
        let replica = self.replicas.get(&partition).ok_or(ErrorCode::NotLeader)?;
        if !matches!(replica.role, Role::Leader { .. }) {
            return Err(ErrorCode::NotLeader);
        }
        match leader_epoch {
            Some(epoch) if epoch < replica.state.leader_epoch => Err(ErrorCode::FencedLeaderEpoch),
            Some(epoch) if epoch > replica.state.leader_epoch => Err(ErrorCode::UnknownLeaderEpoch),
            _ => Ok(replica),
        }
    }

    fn on_states<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        states: Vec<PartitionState>,
    ) -> Result<(), LogError> {
        for state in states {
            if !state.replicas.contains(&self.config.id) {
                continue;
            }
            let partition = state.partition;
            if !self.replicas.contains_key(&partition) {
                let replica = self.open_replica(storage, state.clone())?;
                self.replicas.insert(partition, replica);
                self.become_(now_ns, partition, state);
                continue;
            }
            let current = &self.replicas[&partition].state;
            if state.leader_epoch > current.leader_epoch {
                self.become_(now_ns, partition, state);
            } else if state.leader_epoch == current.leader_epoch
                && state.partition_epoch > current.partition_epoch
            {
                let replica = self.replicas.get_mut(&partition).expect("present");
                if let Role::Leader { isr_change_sent_ns, proposed_isr, .. } = &mut replica.role {
                    *isr_change_sent_ns = None;
                    proposed_isr.clear();
                    let shrank = replica.state.isr.iter().any(|m| !state.isr.contains(m));
                    let grew = state.isr.iter().any(|m| !replica.state.isr.contains(m));
                    if shrank || grew {
                        self.events.push(BrokerEvent::IsrChange { partition, shrank, grew });
                    }
                }
                replica.state = state;
                self.maybe_advance_high_watermark(partition);
            }
        }
        Ok(())
    }

    fn open_replica<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        state: PartitionState,
    ) -> Result<Replica, LogError> {
        let dir = format!("p{}", state.partition);
        let (mut log, report) = PartitionLog::open(storage, &dir, self.config.log.clone())?;
        if report.truncated_bytes > 0 {
            let (partition, bytes) = (state.partition, report.truncated_bytes);
            self.events.push(BrokerEvent::RecoveryCut { partition, bytes });
        }
        if report.trusted_segments > 0 {
            let (partition, segments) = (state.partition, report.trusted_segments);
            self.events.push(BrokerEvent::RecoveryTrusted { partition, segments });
        }
        self.events.push(BrokerEvent::Opened { partition: state.partition });
        // Make what recovery kept durable, so the recovery point (and, with durable
        // acknowledgements, the high watermark) can reach the log end.
        log.flush(storage, 0)?;
        let hw_path = join(&dir, HIGH_WATERMARK_FILE);
        let saved = checkpoint::read(storage, &hw_path, CheckpointKind::HighWatermark)
            .ok()
            .flatten()
            .and_then(|payload| checkpoint::payload_u64(&payload))
            .unwrap_or(0);
        let high_watermark = saved.min(log.end_offset()).max(log.start_offset());
        let mut replica = Replica {
            state: PartitionState { leader_epoch: 0, partition_epoch: 0, leader: None, ..state },
            log,
            high_watermark,
            hw_writer: CheckpointWriter::new(hw_path, CheckpointKind::HighWatermark),
            hw_written: high_watermark,
            hw_written_ns: 0,
            role: Role::Offline,
            cut_unsynced: true, // recovery may have cut, and the open flush is under way
            producers: BTreeMap::new(),
            pending: Vec::new(),
            txns: PartitionTxns::default(),
            txn_verified: BTreeSet::new(),
            txn_verifying: BTreeMap::new(),
            parked: Vec::new(),
            key_versions: None,
        };
        rebuild_producers(storage, &mut replica)?;
        replica.txns.replicated_to(replica.high_watermark);
        Ok(replica)
    }

    /// Takes on the role the controller's new state gives this broker.
    fn become_(&mut self, now_ns: u64, partition: u32, state: PartitionState) {
        let id = self.config.id;
        let replica = self.replicas.get_mut(&partition).expect("opened");
        assert!(
            state.leader_epoch > replica.state.leader_epoch || replica.state.leader_epoch == 0,
            "p{partition}: leader epoch {} after {}: epochs never go back",
            state.leader_epoch,
            replica.state.leader_epoch
        );
        replica.key_versions = None;
        for pending in replica.pending.drain(..) {
            self.outbox.push(pending.answer(partition, Err(ErrorCode::LeadershipLost)));
        }
        for parked in replica.parked.drain(..) {
            let result = Err(ErrorCode::NotLeader); // never appended
            let msg = Msg::ProduceResponse { partition, correlation: parked.correlation, result };
            self.outbox.push((parked.from, msg));
        }
        replica.txn_verified.clear();
        replica.txn_verifying.clear();
        // The fetches it held as leader get what a fresh fetch would get now (answered
        // below, once the new state is in place).
        let parked: Vec<ParkedFetch> = match &mut replica.role {
            Role::Leader { followers, .. } => {
                followers.values_mut().filter_map(|progress| progress.parked.take()).collect()
            }
            _ => Vec::new(),
        };
        let epoch = state.leader_epoch;
        replica.role = match state.leader {
            Some(leader) if leader == id => {
                let followers = state
                    .replicas
                    .iter()
                    .filter(|&&r| r != id)
                    .map(|&r| {
                        (
                            r,
                            Progress {
                                broker_epoch: 0,
                                log_end: 0,
                                durable: 0,
                                caught_up_ns: now_ns,
                                parked: None,
                            },
                        )
                    })
                    .collect();
                self.events.push(BrokerEvent::Leader { partition, epoch });
                Role::Leader { followers, isr_change_sent_ns: None, proposed_isr: Vec::new() }
            }
            Some(leader) => {
                self.events.push(BrokerEvent::Follower { partition, epoch });
                Role::Follower { leader, truncated: false, in_flight: None }
            }
            None => Role::Offline,
        };
        replica.state = state;
        for fetch in parked {
            let Err(code) = self.leader_check(partition, Some(fetch.leader_epoch)) else {
                unreachable!("p{partition}: a held fetch's epoch ends with the leadership")
            };
            self.note_refusal(partition, code);
            let msg =
                Msg::FetchResponse { partition, correlation: fetch.correlation, result: Err(code) };
            self.outbox.push((fetch.from, msg));
            let by = HeldFetchEnd::Leadership;
            self.events.push(BrokerEvent::HeldFetchAnswered { partition, by });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_produce<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        from: NodeId,
        partition: u32,
        correlation: u64,
        leader_epoch: Option<u32>,
        (acks, producer, expected_version, transactional): (Acks, ProducerStamp, Option<u64>, bool),
        records: Vec<batch::Record>,
    ) -> Result<(), LogError> {
        let protocol = self.config.txn_protocol;
        let coordinator = self.config.txn_coordinator;
        let min_isr = self.config.min_insync_replicas as usize;
        let pending_max = self.config.pending_produce_max;
        let respond = |outbox: &mut Vec<(NodeId, Msg)>, result| {
            if acks != Acks::None {
                outbox.push((from, Msg::ProduceResponse { partition, correlation, result }));
            }
        };
        if let Err(code) = self.leader_check(partition, leader_epoch) {
            self.note_refusal(partition, code);
            respond(&mut self.outbox, Err(code));
            return Ok(());
        }
        let replica = self.replicas.get_mut(&partition).expect("checked");
        // Idempotence: the batch this replica already holds, if this produce is a copy of
        // it (a retry, or the network's duplicate). A copy gets that batch's fate, never a
        // refusal that says nothing was appended: its producer would take it as final.
        let count = records.len() as i32;
        let last_seq = producer.base_sequence.wrapping_add(count - 1);
        let entry =
            (producer.producer_id >= 0).then(|| replica.producers.get(&producer.producer_id));
        let same_epoch = entry.flatten().filter(|entry| entry.epoch == producer.producer_epoch);
        let held = same_epoch.and_then(|entry| {
            let copy = |&&(first, last, _): &&(i32, i32, u64)| {
                first == producer.base_sequence && last == last_seq
            };
            entry.batches.iter().find(copy).map(|&(_, _, base)| base)
        });
        if held.is_none() && acks == Acks::All && replica.state.isr.len() < min_isr {
            respond(&mut self.outbox, Err(ErrorCode::NotEnoughReplicas));
            return Ok(());
        }
        if replica.pending.len() >= pending_max {
            // A held batch is appended: its fate is open, not refused.
            let code = if held.is_some() {
                ErrorCode::NotEnoughReplicasAfterAppend
            } else {
                ErrorCode::NotEnoughReplicas
            };
            respond(&mut self.outbox, Err(code));
            return Ok(());
        }
        // A producer epoch older than one this partition has seen: a newer producer with
        // the same transactional id, or a transaction already ended, fenced it.
        if entry.flatten().is_some_and(|entry| producer.producer_epoch < entry.epoch) {
            self.events.push(BrokerEvent::ProducerFenced { partition });
            respond(&mut self.outbox, Err(ErrorCode::ProducerFenced));
            return Ok(());
        }
        if let Some(base) = held {
            // Its first answer back: now if it is committed, else when it is.
            let end = base + u64::from(count as u32);
            if acks != Acks::All || end <= replica.high_watermark {
                respond(&mut self.outbox, Ok(base));
            } else {
                replica.pending.push(PendingProduce {
                    from,
                    correlation,
                    base_offset: base,
                    end_offset: end,
                    marker: false,
                });
            }
            return Ok(());
        }
        if let Some(entry) = same_epoch {
            let expected = entry.batches.back().map_or(0, |&(_, last, _)| last.wrapping_add(1));
            if producer.base_sequence != expected {
                respond(&mut self.outbox, Err(ErrorCode::OutOfOrderSequence));
                return Ok(());
            }
        }
        let open = replica.txns.open(producer.producer_id);
        if transactional {
            if producer.producer_id < 0 {
                respond(&mut self.outbox, Err(ErrorCode::InvalidTxnState));
                return Ok(());
            }
            if open.is_some_and(|txn| txn.producer_epoch != producer.producer_epoch) {
                // The older transaction's marker has not landed yet.
                respond(&mut self.outbox, Err(ErrorCode::ConcurrentTransactions));
                return Ok(());
            }
            let key = (producer.producer_id, producer.producer_epoch);
            if protocol == TxnProtocol::Kip890
                && open.is_none()
                && !replica.txn_verified.contains(&key)
            {
                // KIP-890: the first batch of a transaction here waits until the
                // coordinator confirms the transaction holds this partition; the
                // client's word is not enough (a late produce of an ended transaction
                // would otherwise open a new one).
                let Some(coordinator) = coordinator else {
                    respond(&mut self.outbox, Err(ErrorCode::InvalidTxnState));
                    return Ok(());
                };
                if replica.parked.len() >= pending_max {
                    respond(&mut self.outbox, Err(ErrorCode::ConcurrentTransactions));
                    return Ok(());
                }
                replica.parked.push(ParkedProduce {
                    from,
                    correlation,
                    leader_epoch,
                    acks,
                    producer,
                    records,
                    expected_version,
                    parked_ns: now_ns,
                });
                if let std::collections::btree_map::Entry::Vacant(entry) =
                    replica.txn_verifying.entry(key)
                {
                    entry.insert(now_ns);
                    self.next_correlation += 1;
                    let msg = Msg::VerifyTxn {
                        correlation: self.next_correlation,
                        partition,
                        producer_id: key.0,
                        producer_epoch: key.1,
                    };
                    self.outbox.push((coordinator, msg));
                }
                return Ok(());
            }
        } else if open.is_some() {
            // Kafka refuses a plain batch from a producer with a transaction open here.
            respond(&mut self.outbox, Err(ErrorCode::InvalidTxnState));
            return Ok(());
        }
        if let Some(expected) = expected_version {
            let Some(key) = records.first().map(|record| record.key.clone()) else {
                respond(&mut self.outbox, Err(ErrorCode::WrongExpectedVersion));
                return Ok(());
            };
            if records.iter().any(|record| record.key != key) {
                respond(&mut self.outbox, Err(ErrorCode::WrongExpectedVersion));
                return Ok(());
            }
            if replica.key_versions.is_none() {
                match KeyVersions::from_log(storage, &replica.log) {
                    Ok(versions) => replica.key_versions = Some(versions),
                    // A batch it cannot read: this append cannot be checked, and is
                    // refused; reads will report the damage.
                    Err(LogError::Corrupt { .. }) => {
                        respond(&mut self.outbox, Err(ErrorCode::StorageError));
                        return Ok(());
                    }
                    Err(error) => return Err(error),
                }
            }
            let versions = replica.key_versions.as_ref().expect("just built");
            if let Err(code) = versions.check(producer.producer_id, &key, expected) {
                respond(&mut self.outbox, Err(code));
                return Ok(());
            }
        }
        let epoch = replica.state.leader_epoch;
        let keys: Vec<Vec<u8>> = match &replica.key_versions {
            Some(_) => records.iter().map(|record| record.key.clone()).collect(),
            None => Vec::new(),
        };
        let attributes = if transactional { txn::DATA_ATTRIBUTES } else { 0 };
        let appended =
            match replica.log.append_with(storage, now_ns, epoch, attributes, producer, records) {
                Ok(appended) => appended,
                Err(LogError::Storage(_)) | Err(LogError::Batch(_)) => {
                    respond(&mut self.outbox, Err(ErrorCode::StorageError));
                    return Ok(());
                }
                Err(error) => return Err(error),
            };
        self.events.push(appended_event(partition, &appended));
        note_producer(replica, producer, count, appended.base_offset, false);
        if transactional {
            replica.txns.note_data(
                producer.producer_id,
                producer.producer_epoch,
                appended.base_offset,
            );
        }
        if let Some(versions) = &mut replica.key_versions {
            versions.note_append(
                producer.producer_id,
                transactional,
                keys.iter().map(Vec::as_slice),
            );
        }
        match acks {
            Acks::None => {}
            Acks::Leader => respond(&mut self.outbox, Ok(appended.base_offset)),
            Acks::All => replica.pending.push(PendingProduce {
                from,
                correlation,
                base_offset: appended.base_offset,
                end_offset: appended.end_offset,
                marker: false,
            }),
        }
        self.maybe_advance_high_watermark(partition);
        let end = appended.end_offset;
        self.answer_parked_fetches(storage, now_ns, partition, |parked| parked.fetch_offset < end)
    }

    /// The coordinator ends a producer's transaction on this partition: a control batch,
    /// answered once it is committed.
    fn on_txn_marker<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        (from, correlation, partition): (NodeId, u64, u32),
        producer: ProducerStamp,
        marker: Marker,
    ) -> Result<(), LogError> {
        let protocol = self.config.txn_protocol;
        let pending_max = self.config.pending_produce_max;
        let respond = |outbox: &mut Vec<(NodeId, Msg)>, result| {
            outbox.push((from, Msg::WriteTxnMarkerResponse { correlation, partition, result }));
        };
        if let Err(code) = self.leader_check(partition, None) {
            self.note_refusal(partition, code);
            respond(&mut self.outbox, Err(code));
            return Ok(());
        }
        let replica = self.replicas.get_mut(&partition).expect("checked");
        let pid = producer.producer_id;
        if replica.producers.get(&pid).is_some_and(|entry| producer.producer_epoch < entry.epoch) {
            self.events.push(BrokerEvent::ProducerFenced { partition });
            respond(&mut self.outbox, Err(ErrorCode::ProducerFenced));
            return Ok(());
        }
        // KIP-890: a transaction is ended by a marker of a higher epoch than its data.
        // One that is not higher belongs to an earlier transaction, already ended here
        // (its partitions were all marked before this one could begin): a late copy.
        if protocol == TxnProtocol::Kip890
            && replica
                .txns
                .open(pid)
                .is_some_and(|txn| producer.producer_epoch <= txn.producer_epoch)
        {
            respond(&mut self.outbox, Ok(()));
            return Ok(());
        }
        if replica.pending.len() >= pending_max {
            respond(&mut self.outbox, Err(ErrorCode::ConcurrentTransactions));
            return Ok(());
        }
        let seen_epoch = replica.producers.get(&pid).map(|entry| entry.epoch);
        if replica.txns.open(pid).is_none() && seen_epoch >= Some(producer.producer_epoch) {
            // A retry of a marker this partition has (no transaction of the producer is
            // open, and its epoch is already here): answered once what the log holds is
            // committed, without writing another. Already committed: answered now, since
            // a pending answer goes out only when the high watermark moves, and nothing
            // may move it again (found by the review of bank-transactions seed 1, where
            // a projection's own output partition then stalled for the rest of the run).
            let end = replica.log.end_offset();
            if end <= replica.high_watermark {
                respond(&mut self.outbox, Ok(()));
                return Ok(());
            }
            replica.pending.push(PendingProduce {
                from,
                correlation,
                base_offset: end,
                end_offset: end,
                marker: true,
            });
            self.maybe_advance_high_watermark(partition);
            return Ok(());
        }
        let epoch = replica.state.leader_epoch;
        let record = marker.record(now_ns);
        let appended = match replica.log.append_with(
            storage,
            now_ns,
            epoch,
            txn::MARKER_ATTRIBUTES,
            producer,
            vec![record],
        ) {
            Ok(appended) => appended,
            Err(LogError::Storage(_)) | Err(LogError::Batch(_)) => {
                respond(&mut self.outbox, Err(ErrorCode::StorageError));
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        self.events.push(appended_event(partition, &appended));
        note_producer(replica, producer, 1, appended.base_offset, true);
        replica.txns.note_marker(pid, marker, appended.base_offset);
        if let Some(versions) = &mut replica.key_versions {
            versions.note_marker(pid, marker.commit);
        }
        replica.txn_verified.retain(|&(verified, _)| verified != pid);
        replica.pending.push(PendingProduce {
            from,
            correlation,
            base_offset: appended.base_offset,
            end_offset: appended.end_offset,
            marker: true,
        });
        self.events.push(BrokerEvent::TxnMarker { partition, commit: marker.commit });
        self.maybe_advance_high_watermark(partition);
        let end = appended.end_offset;
        self.answer_parked_fetches(storage, now_ns, partition, |parked| parked.fetch_offset < end)
    }

    /// The coordinator's word on a producer's transaction: the produces waiting for it
    /// go ahead (checked again from the start) or are refused.
    fn on_txn_verified<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        partition: u32,
        key: (i64, i16),
        verified: bool,
    ) -> Result<(), LogError> {
        let Some(replica) = self.replicas.get_mut(&partition) else { return Ok(()) };
        if !matches!(replica.role, Role::Leader { .. }) {
            return Ok(());
        }
        if replica.txn_verifying.remove(&key).is_none() {
            return Ok(()); // not asked (or given up on): its produces are gone too
        }
        let mut waiting = Vec::new();
        let mut index = 0;
        while index < replica.parked.len() {
            let parked = &replica.parked[index];
            if (parked.producer.producer_id, parked.producer.producer_epoch) == key {
                waiting.push(replica.parked.remove(index));
            } else {
                index += 1;
            }
        }
        if verified {
            replica.txn_verified.insert(key);
        }
        for parked in waiting {
            if verified {
                self.on_produce(
                    storage,
                    now_ns,
                    parked.from,
                    partition,
                    parked.correlation,
                    parked.leader_epoch,
                    (parked.acks, parked.producer, parked.expected_version, true),
                    parked.records,
                )?;
            } else if parked.acks != Acks::None {
                let result = Err(ErrorCode::InvalidTxnState);
                let msg =
                    Msg::ProduceResponse { partition, correlation: parked.correlation, result };
                self.outbox.push((parked.from, msg));
            }
        }
        Ok(())
    }

    /// A fetch: answered now, or (a follower's that finds nothing new) held by the
    /// leader (`None`) until there is something to send. Either way a follower's progress
    /// counts from the moment it arrives.
    #[allow(clippy::too_many_arguments)]
    fn on_fetch<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        (from, partition, correlation): (NodeId, u32, u64),
        leader_epoch: u32,
        fetch_offset: u64,
        follower: Option<(NodeId, u64)>,
        durable_offset: u64,
        (max_bytes, isolation): (u32, Isolation),
    ) -> Option<Result<FetchData, ErrorCode>> {
        if let Err(code) = self.leader_check(partition, Some(leader_epoch)) {
            self.note_refusal(partition, code);
            return Some(Err(code));
        }
        let wait_ns = self.config.replica_fetch_wait_max_ns;
        let replica = self.replicas.get_mut(&partition).expect("checked");
        let (start, end) = (replica.log.start_offset(), replica.log.end_offset());
        // A follower ahead of the leader is told where the leader's log ends (as Kafka
        // answers an out-of-range fetch), so it can cut back; a consumer just fails.
        let follower_ahead = follower.is_some() && fetch_offset > end;
        if fetch_offset < start || (fetch_offset > end && !follower_ahead) {
            return Some(Err(ErrorCode::OffsetOutOfRange));
        }
        let mut parked = false;
        if let (Some((follower, broker_epoch)), Role::Leader { followers, .. }) =
            (follower, &mut replica.role)
        {
            if let Some(progress) =
                followers.get_mut(&follower).filter(|p| broker_epoch >= p.broker_epoch)
            {
                progress.broker_epoch = broker_epoch;
                progress.log_end = fetch_offset;
                progress.durable = durable_offset.min(fetch_offset);
                if fetch_offset >= end {
                    progress.caught_up_ns = now_ns;
                }
                // Nothing to send: held until there is (Kafka's long poll).
                if wait_ns > 0 && fetch_offset == end {
                    let fetch = ParkedFetch {
                        from,
                        correlation,
                        leader_epoch,
                        fetch_offset,
                        broker_epoch,
                        max_bytes,
                        parked_ns: now_ns,
                    };
                    // The newer of the two waits; the other is answered at once (a copy
                    // delayed in the network: its follower no longer waits for it).
                    parked = progress.parked.as_ref().is_none_or(|held| fetch.is_after(held));
                    if parked {
                        progress.parked = Some(fetch);
                    }
                }
            }
        }
        let answer = if parked {
            None
        } else {
            let read = fetch_data(
                storage,
                replica,
                fetch_offset,
                follower.is_some(),
                (max_bytes, isolation),
            );
            match read {
                Ok(data) => Some(Ok(data)),
                Err(error) => {
                    // The log cannot serve what it holds (corruption, a failed read):
                    // like Kafka taking a log directory offline, the broker stops, and
                    // a restart's recovery cuts the damage; others take over meanwhile.
                    self.halt(format!("partition {partition}: {error}"));
                    return Some(Err(ErrorCode::StorageError));
                }
            }
        };
        if follower.is_some() {
            self.maybe_advance_high_watermark(partition);
        }
        answer
    }

    /// The passing of time for the fetches this leader holds: a follower waiting at the
    /// log end is caught up (as Kafka counts it), and a fetch held for
    /// `replica_fetch_wait_max_ns` is answered with what there is (nothing new).
    fn tick_parked_fetches<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        partition: u32,
    ) -> Result<(), LogError> {
        let wait_ns = self.config.replica_fetch_wait_max_ns;
        if wait_ns == 0 {
            return Ok(()); // nothing is ever held
        }
        let replica = self.replicas.get_mut(&partition).expect("ticked partitions exist");
        let end = replica.log.end_offset();
        let Role::Leader { followers, .. } = &mut replica.role else { return Ok(()) };
        let mut due = false;
        for progress in followers.values_mut() {
            let Some(parked) = &progress.parked else { continue };
            if parked.broker_epoch == progress.broker_epoch && parked.fetch_offset >= end {
                progress.caught_up_ns = now_ns;
            }
            due |= now_ns >= parked.parked_ns.saturating_add(wait_ns);
        }
        if !due {
            return Ok(());
        }
        self.answer_parked_fetches(storage, now_ns, partition, |parked| {
            now_ns >= parked.parked_ns.saturating_add(wait_ns)
        })
    }

    /// Answers the fetches this leader holds that `due` picks, with what the log has for
    /// them now. Each waited at the log end until now: its follower was caught up.
    fn answer_parked_fetches<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        partition: u32,
        due: impl Fn(&ParkedFetch) -> bool,
    ) -> Result<(), LogError> {
        let Some(replica) = self.replicas.get_mut(&partition) else { return Ok(()) };
        let Role::Leader { followers, .. } = &mut replica.role else { return Ok(()) };
        let mut answering = Vec::new();
        for progress in followers.values_mut() {
            if progress.parked.as_ref().is_some_and(&due) {
                let parked = progress.parked.take().expect("just seen");
                if parked.broker_epoch == progress.broker_epoch {
                    progress.caught_up_ns = now_ns;
                }
                answering.push(parked);
            }
        }
        for parked in answering {
            let options = (parked.max_bytes, Isolation::ReadUncommitted);
            let data = fetch_data(storage, replica, parked.fetch_offset, true, options)?;
            let by = if data.batches.is_empty() { HeldFetchEnd::Wait } else { HeldFetchEnd::Data };
            self.events.push(BrokerEvent::HeldFetchAnswered { partition, by });
            let correlation = parked.correlation;
            let msg = Msg::FetchResponse { partition, correlation, result: Ok(data) };
            self.outbox.push((parked.from, msg));
        }
        Ok(())
    }

    fn on_fetch_response<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        partition: u32,
        correlation: u64,
        result: Result<FetchData, ErrorCode>,
    ) -> Result<(), LogError> {
        let Some(replica) = self.replicas.get_mut(&partition) else { return Ok(()) };
        let Role::Follower { in_flight, truncated, .. } = &mut replica.role else { return Ok(()) };
        if in_flight.is_none_or(|(expected, _)| expected != correlation) {
            return Ok(()); // a late or duplicated answer
        }
        *in_flight = None;
        let data = match result {
            Ok(data) if data.leader_epoch == replica.state.leader_epoch => data,
            Err(ErrorCode::OffsetOutOfRange) => {
                *truncated = false; // find the divergence again
                return Ok(());
            }
            _ => return Ok(()),
        };
        if data.log_end_offset < replica.log.end_offset() {
            // Our log runs past the leader's: what is beyond was never committed by it.
            let new_end = replica.log.truncate_to(storage, data.log_end_offset)?;
            forget_from(storage, replica, new_end)?;
            replica.cut_unsynced = true;
            replica.log.flush(storage, now_ns)?;
            replica.high_watermark = replica.high_watermark.min(new_end);
            self.events.push(BrokerEvent::Truncate { partition, offset: new_end });
            return Ok(());
        }
        for bytes in &data.batches {
            // The claimed offsets decide whether the batch is wanted; the append
            // validates it (CRC and framing) before anything is written.
            let Ok((base_offset, end_offset)) = batch::peek_offsets(bytes) else { return Ok(()) };
            let end = replica.log.end_offset();
            if end_offset <= end {
                continue;
            }
            if base_offset != end {
                return Ok(()); // not contiguous with our log: ask again
            }
            let appended = match replica.log.append_encoded(storage, now_ns, bytes) {
                Ok(appended) => appended,
                // Damaged in flight or at the leader: nothing written; ask again.
                Err(LogError::Batch(_)) => return Ok(()),
                Err(error) => return Err(error),
            };
            self.events.push(appended_event(partition, &appended));
            let count = (appended.end_offset - appended.base_offset) as i32;
            let control = appended.attributes & batch::ATTRIBUTE_CONTROL != 0;
            note_producer(replica, appended.producer, count, appended.base_offset, control);
            let (producer, attributes) = (appended.producer, appended.attributes);
            replica.txns.note_stored(producer, attributes, appended.base_offset, bytes);
        }
        let hw = data.high_watermark.min(replica.log.end_offset());
        debug_assert!(
            replica.high_watermark <= replica.log.end_offset()
                || replica.log.end_offset() < data.log_start_offset
        );
        if hw > replica.high_watermark {
            replica.high_watermark = hw;
            replica.txns.replicated_to(hw);
            self.events.push(BrokerEvent::HighWatermark { partition, offset: hw });
        }
        // More may be waiting: fetch again at once. An empty answer waits for the next
        // tick instead (Kafka's leader holds such a fetch for `fetch.max.wait.ms`).
        if data.batches.is_empty() { Ok(()) } else { self.tick_replica(storage, now_ns, partition) }
    }

    fn on_epoch_end<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        partition: u32,
        correlation: u64,
        result: Result<(u32, u64), ErrorCode>,
    ) -> Result<(), LogError> {
        let rule = self.config.truncation;
        let Some(replica) = self.replicas.get_mut(&partition) else { return Ok(()) };
        let Role::Follower { in_flight, truncated, .. } = &mut replica.role else { return Ok(()) };
        if in_flight.is_none_or(|(expected, _)| expected != correlation) {
            return Ok(());
        }
        *in_flight = None;
        let Ok((leader_epoch, leader_end)) = result else { return Ok(()) };
        let (cut, agreed) = match rule {
            // KIP-101: the answer's offset is the cut; its epoch is not looked at.
            TruncationRule::Kip101 | TruncationRule::HighWatermark => (leader_end, true),
            TruncationRule::LeaderEpoch => epoch_cut(&replica.log, leader_epoch, leader_end),
        };
        let cut = cut.min(replica.log.end_offset()).max(replica.log.start_offset());
        // Not agreed yet: the cut removed every epoch above the one it kept, and the next
        // question asks about that one (each round asks about a lower epoch, so it ends).
        *truncated = agreed;
        if cut < replica.log.end_offset() {
            let new_end = replica.log.truncate_to(storage, cut)?;
            forget_from(storage, replica, new_end)?;
            replica.cut_unsynced = true;
            replica.log.flush(storage, now_ns)?;
            if replica.high_watermark > new_end {
                replica.high_watermark = new_end;
            }
            self.events.push(BrokerEvent::Truncate { partition, offset: new_end });
        }
        self.tick_replica(storage, now_ns, partition)
    }

    /// The leader's high watermark: the minimum log end (or durable end, when every
    /// append is flushed) over the ISR, never while the ISR is below the minimum.
    fn maybe_advance_high_watermark(&mut self, partition: u32) {
        let id = self.config.id;
        let durable_acks = self.config.log.flush == FlushPolicy::EveryAppend;
        let min_isr = self.config.min_insync_replicas as usize;
        let Some(replica) = self.replicas.get_mut(&partition) else { return };
        let Role::Leader { followers, proposed_isr, .. } = &replica.role else { return };
        if replica.state.isr.len() < min_isr {
            return;
        }
        let own =
            if durable_acks { replica.log.recovery_point() } else { replica.log.end_offset() };
        let mut hw = own;
        for member in replica
            .state
            .isr
            .iter()
            .chain(proposed_isr.iter().filter(|m| !replica.state.isr.contains(m)))
        {
            if *member == id {
                continue;
            }
            let Some(progress) = followers.get(member) else { return };
            hw = hw.min(if durable_acks { progress.durable } else { progress.log_end });
        }
        if hw <= replica.high_watermark {
            return;
        }
        // The leader never commits what it does not hold, nor (with durable
        // acknowledgements) what is not on its own disk.
        assert!(
            hw <= replica.log.end_offset(),
            "p{partition}: high watermark {hw} past the log end"
        );
        debug_assert!(!durable_acks || hw <= replica.log.recovery_point());
        replica.high_watermark = hw;
        replica.txns.replicated_to(hw);
        self.events.push(BrokerEvent::HighWatermark { partition, offset: hw });
        // Answer the produces now committed, in arrival order; the rest keep waiting.
        let outbox = &mut self.outbox;
        replica.pending.retain(|pending| {
            if pending.end_offset > hw {
                return true;
            }
            outbox.push(pending.answer(partition, Ok(pending.base_offset)));
            false
        });
    }
}

/// KIP-279, the follower's side: the leader's log has `leader_epoch` (the largest epoch
/// at most the one asked about) ending at `leader_end`. Returns the cut, and whether the
/// two logs now agree up to it. A follower that has that epoch too cuts where the
/// earlier of the two ends; one that lacks it cuts to the end of its own largest epoch
/// below it (records of epochs the leader never had are not the leader's) and asks again
/// about that epoch; one with no epoch that old keeps nothing past the leader's answer.
fn epoch_cut(log: &PartitionLog, leader_epoch: u32, leader_end: u64) -> (u64, bool) {
    match log.end_offset_for_epoch(leader_epoch) {
        Some((epoch, end)) if epoch == leader_epoch => (end.min(leader_end), true),
        Some((_, end)) => (end, false),
        None => (leader_end, true),
    }
}

/// What a fetch at `fetch_offset` gets from a leader's replica now: the batches the
/// asker may see (a follower everything, a consumer what is committed, or decided under
/// `read_committed`, with the aborted transactions that covers), and the watermarks.
/// Every batch is validated before it is served; a log that cannot serve what it holds
/// is an error.
fn fetch_data<S: Storage + ?Sized>(
    storage: &mut S,
    replica: &Replica,
    fetch_offset: u64,
    follower: bool,
    (max_bytes, isolation): (u32, Isolation),
) -> Result<FetchData, LogError> {
    let (start, end) = (replica.log.start_offset(), replica.log.end_offset());
    let follower_ahead = follower && fetch_offset > end;
    let last_stable = replica.txns.last_stable_offset(replica.high_watermark);
    let limit = match (follower, isolation) {
        (true, _) => end,
        (false, Isolation::ReadUncommitted) => replica.high_watermark,
        (false, Isolation::ReadCommitted) => last_stable,
    };
    let mut batches = Vec::new();
    if fetch_offset < limit && !follower_ahead {
        let read = replica.log.read_encoded(storage, fetch_offset, max_bytes as usize)?;
        batches.extend(
            read.into_iter()
                .take_while(|(header, _)| header.base_offset < limit)
                .map(|(_, bytes)| bytes),
        );
    }
    let aborted = match (follower, isolation) {
        (false, Isolation::ReadCommitted) if fetch_offset < limit => {
            replica.txns.aborted_between(fetch_offset, limit).into_boxed_slice()
        }
        _ => Box::default(),
    };
    Ok(FetchData {
        leader_epoch: replica.state.leader_epoch,
        batches,
        high_watermark: replica.high_watermark,
        log_start_offset: start,
        log_end_offset: end,
        last_stable_offset: last_stable,
        aborted,
    })
}

fn fetch(
    log: &PartitionLog,
    partition: u32,
    correlation: u64,
    leader_epoch: u32,
    (id, broker_epoch): (NodeId, u64),
    max_bytes: u32,
) -> Msg {
    Msg::Fetch {
        partition,
        correlation,
        leader_epoch,
        fetch_offset: log.end_offset(),
        replica: Some((id, broker_epoch)),
        durable_offset: log.recovery_point(),
        max_bytes,
        isolation: Isolation::ReadUncommitted,
    }
}

/// A batch of `producer` at `base_offset`. A marker (`control`) carries the epoch the
/// transaction ended with, which fences anything older, but no sequence numbers.
fn note_producer(
    replica: &mut Replica,
    producer: ProducerStamp,
    count: i32,
    base_offset: u64,
    control: bool,
) {
    if producer.producer_id < 0 {
        return;
    }
    let entry = replica.producers.entry(producer.producer_id).or_default();
    if entry.epoch != producer.producer_epoch {
        *entry = ProducerEntry { epoch: producer.producer_epoch, batches: VecDeque::new() };
    }
    if control {
        return;
    }
    entry.batches.push_back((
        producer.base_sequence,
        producer.base_sequence.wrapping_add(count - 1),
        base_offset,
    ));
    while entry.batches.len() > PRODUCER_BATCHES_KEPT {
        entry.batches.pop_front();
    }
}

/// Truncation removed batches: their producer entries go too, or a retry of a batch
/// that is no longer in the log would be answered with the offset it used to have.
/// (Found by the crash-restart-loop scenario: a duplicate and a lost write.)
fn forget_producers_from(producers: &mut BTreeMap<i64, ProducerEntry>, offset: u64) {
    for entry in producers.values_mut() {
        entry.batches.retain(|&(_, _, base)| base < offset);
    }
}

/// After a cut at `offset`: producer entries forget the removed batches, and the
/// transactions are read again from what the log still holds (a cut may reopen a
/// transaction whose marker it removed).
fn forget_from<S: Storage + ?Sized>(
    storage: &mut S,
    replica: &mut Replica,
    offset: u64,
) -> Result<(), LogError> {
    forget_producers_from(&mut replica.producers, offset);
    replica.txn_verified.clear();
    if !replica.txns.seen_any() {
        return Ok(());
    }
    replica.txns.clear();
    let (log, txns) = (&replica.log, &mut replica.txns);
    let read = log.read_each(storage, log.start_offset(), usize::MAX, |bytes, header| {
        txns.note_stored(header.producer, header.attributes, header.base_offset, bytes);
    });
    match read {
        Ok(()) | Err(LogError::Corrupt { .. }) => {} // reads will report the damage
        Err(error) => return Err(error),
    }
    replica.txns.replicated_to(replica.high_watermark.min(offset));
    Ok(())
}

/// Producer state is derived from the log, never trusted from memory alone.
fn rebuild_producers<S: Storage + ?Sized>(
    storage: &mut S,
    replica: &mut Replica,
) -> Result<(), LogError> {
    replica.producers.clear();
    let mut offset = replica.log.start_offset();
    while offset < replica.log.end_offset() {
        let batches: Vec<RecordBatch> = match replica.log.read(storage, offset, 1 << 20) {
            Ok(batches) => batches,
            Err(LogError::Corrupt { .. }) => return Ok(()), // reads will report it
            Err(error) => return Err(error),
        };
        let Some(last) = batches.last() else { break };
        offset = last.end_offset();
        for decoded in batches {
            let control = decoded.attributes & batch::ATTRIBUTE_CONTROL != 0;
            let count = decoded.records.len() as i32;
            note_producer(replica, decoded.producer, count, decoded.base_offset, control);
            replica.txns.note_batch(&decoded);
        }
    }
    Ok(())
}
