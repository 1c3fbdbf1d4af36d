//! The messages of the cluster: between brokers, the controller and clients.
//!
//! Every request that acts on a partition carries the sender's view of the partition's
//! leader epoch, so a stale leader or follower is fenced instead of obeyed. Node ids
//! are plain `u32`s: the caller maps them onto its transport (the simulator's nodes).

use crate::batch::{ProducerStamp, Record};

/// A node of the cluster: a broker, the controller or a client.
pub type NodeId = u32;

/// How many replicas must have a record before a produce is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Acks {
    /// No answer at all: fire and forget.
    None,
    /// The leader has appended it.
    Leader,
    /// Every in-sync replica has it (and the ISR is at least `min_insync_replicas`).
    All,
}

/// The controller's word on one partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionState {
    pub partition: u32,
    /// Every replica, preferred leader first.
    pub replicas: Vec<NodeId>,
    pub leader: Option<NodeId>,
    pub leader_epoch: u32,
    pub isr: Vec<NodeId>,
    /// Bumped at every change (leader or ISR), so stale ISR changes are refused.
    pub partition_epoch: u32,
}

/// A broker's word on one of its logs, in its heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogReport {
    pub partition: u32,
    /// The leader epoch of the log's last batch (0 for an empty log).
    pub latest_epoch: u32,
    pub end_offset: u64,
}

/// Why a request was refused. Each says whether the request may have taken effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The receiver does not lead the partition (it never appended).
    NotLeader,
    /// The request's leader epoch is older than the receiver's.
    FencedLeaderEpoch,
    /// The request's leader epoch is newer than the receiver knows.
    UnknownLeaderEpoch,
    /// `acks = all` and the ISR is below `min_insync_replicas` (nothing appended).
    NotEnoughReplicas,
    /// The record was appended, but the ISR shrank below `min_insync_replicas` before
    /// it was committed: it may yet be committed, or lost.
    NotEnoughReplicasAfterAppend,
    /// An idempotent producer skipped a sequence number (nothing appended).
    OutOfOrderSequence,
    /// A fetch asked for an offset the log does not hold.
    OffsetOutOfRange,
    /// The receiver's storage failed; it did not append.
    StorageError,
    /// The leader lost leadership with the request pending: it may or may not commit.
    LeadershipLost,
    /// A conditional append whose key has moved on (or whose records do not share one
    /// key): nothing appended.
    WrongExpectedVersion,
    /// The producer epoch is older than one the receiver has seen for this producer id:
    /// a newer producer (or a finished transaction) fenced it. Nothing appended.
    ProducerFenced,
    /// The request does not fit the transaction's state (a produce to a partition the
    /// coordinator does not hold in an ongoing transaction, a commit of a transaction
    /// the coordinator aborted): nothing done.
    InvalidTxnState,
    /// The coordinator is finishing the transaction or still loading: try again later.
    ConcurrentTransactions,
}

impl ErrorCode {
    /// True when the refused request certainly did not append anything.
    pub fn definitely_not_appended(self) -> bool {
        !matches!(self, ErrorCode::NotEnoughReplicasAfterAppend | ErrorCode::LeadershipLost)
    }

    /// True when the partition's leadership is not where the sender thought: its
    /// metadata is stale and must be asked for again.
    pub fn leader_moved(self) -> bool {
        matches!(
            self,
            ErrorCode::NotLeader
                | ErrorCode::FencedLeaderEpoch
                | ErrorCode::UnknownLeaderEpoch
                | ErrorCode::LeadershipLost
        )
    }
}

/// What a consumer may read (Kafka's `isolation.level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isolation {
    /// Everything below the high watermark, aborted transactions included.
    ReadUncommitted,
    /// Only below the last stable offset, without the records of aborted transactions.
    ReadCommitted,
}

/// A transaction of one producer on one partition that ended in an abort: its records
/// lie in `[first_offset, last_offset]` (the marker's offset), and a `read_committed`
/// consumer drops them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: u64,
    pub last_offset: u64,
}

impl AbortedTxn {
    /// Whether `producer_id`'s transactional batch at `base_offset` belongs to this
    /// aborted transaction.
    pub fn covers(&self, producer_id: i64, base_offset: u64) -> bool {
        self.producer_id == producer_id
            && (self.first_offset..=self.last_offset).contains(&base_offset)
    }
}

/// What a fetch returns.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FetchData {
    pub leader_epoch: u32,
    /// Encoded batches from the fetch offset (whole batches: the first may start below).
    pub batches: Vec<Vec<u8>>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
    /// The leader's log end: a follower whose log runs past it must cut back to it.
    pub log_end_offset: u64,
    /// Below it every transaction is decided (at most the high watermark).
    pub last_stable_offset: u64,
    /// For `read_committed` fetches: the aborted transactions that overlap the batches.
    /// (A boxed slice: empty allocates nothing, and every message stays smaller.)
    pub aborted: Box<[AbortedTxn]>,
}

/// Everything nodes say to each other.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Msg {
    /// Broker to controller, periodically. A new `incarnation` means the broker
    /// restarted and may have lost what it never synced. `logs` reports, for each
    /// partition it holds, its log's latest leader epoch and end offset: what the
    /// controller compares when no replica is known to hold every committed record.
    Heartbeat {
        broker: NodeId,
        incarnation: u64,
        logs: Vec<LogReport>,
    },
    /// Controller to broker: the state of every partition, with the broker's durable
    /// registration: its incarnation and the broker epoch the controller gave it (a
    /// counter that grows at every restart). A broker ignores states meant for an
    /// earlier incarnation of itself: they may name it leader of an epoch its previous
    /// life held, with a log it no longer has.
    HeartbeatAck {
        states: Vec<PartitionState>,
        registration: Option<(u64, u64)>,
    },
    /// A leader asks the controller to change a partition's ISR. Each follower comes
    /// with the broker epoch its fetches showed, so one whose progress dates from before
    /// a restart is refused (Kafka's KIP-903).
    AlterIsr {
        partition: u32,
        leader_epoch: u32,
        partition_epoch: u32,
        isr: Vec<NodeId>,
        broker_epochs: Vec<(NodeId, u64)>,
    },
    /// A client asks the controller (or anyone) for the partitions' leaders.
    Metadata {
        correlation: u64,
    },
    MetadataResponse {
        correlation: u64,
        states: Vec<PartitionState>,
    },
    /// A producer asks the controller for a producer id (idempotence).
    InitProducerId {
        correlation: u64,
    },
    InitProducerIdResponse {
        correlation: u64,
        producer_id: i64,
    },
    Produce {
        partition: u32,
        correlation: u64,
        leader_epoch: Option<u32>,
        acks: Acks,
        producer: ProducerStamp,
        records: Vec<Record>,
        /// Conditional append: the records' key (all records share it) must have
        /// exactly this many records in the leader's log, or nothing is appended.
        expected_version: Option<u64>,
        /// Part of the producer's ongoing transaction.
        transactional: bool,
    },
    ProduceResponse {
        partition: u32,
        correlation: u64,
        result: Result<u64, ErrorCode>,
    },
    /// A follower (`replica` set, with its broker epoch) or a consumer fetches from the
    /// leader. Followers also say how far their log is durable.
    Fetch {
        partition: u32,
        correlation: u64,
        leader_epoch: u32,
        fetch_offset: u64,
        replica: Option<(NodeId, u64)>,
        durable_offset: u64,
        max_bytes: u32,
        isolation: Isolation,
    },
    FetchResponse {
        partition: u32,
        correlation: u64,
        result: Result<FetchData, ErrorCode>,
    },
    /// KIP-101/279: where does epoch `requested_epoch` end in the leader's log?
    OffsetForLeaderEpoch {
        partition: u32,
        correlation: u64,
        leader_epoch: u32,
        requested_epoch: u32,
    },
    /// The largest epoch at most the requested one that the leader has, and where it ends.
    OffsetForLeaderEpochResponse {
        partition: u32,
        correlation: u64,
        result: Result<(u32, u64), ErrorCode>,
    },
    /// A transactional producer asks the transaction coordinator for its producer id
    /// and epoch. A new epoch fences every earlier producer with the same id; an
    /// ongoing transaction of theirs is aborted first.
    InitTxn {
        correlation: u64,
        txn_id: String,
    },
    InitTxnResponse {
        correlation: u64,
        result: Result<(i64, i16), ErrorCode>,
    },
    /// The producer will write to these partitions in its ongoing transaction (the
    /// first add begins one).
    AddPartitionsToTxn {
        correlation: u64,
        txn_id: String,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<u32>,
    },
    AddPartitionsToTxnResponse {
        correlation: u64,
        result: Result<(), ErrorCode>,
    },
    /// Commit (or abort) the ongoing transaction. The answer carries the producer epoch
    /// for the next transaction: one higher under KIP-890, the same under the legacy
    /// protocol.
    EndTxn {
        correlation: u64,
        txn_id: String,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    },
    EndTxnResponse {
        correlation: u64,
        result: Result<i16, ErrorCode>,
    },
    /// A partition leader asks the coordinator whether the producer has an ongoing
    /// transaction in this epoch that holds the partition, before it accepts the
    /// first transactional batch (KIP-890 part 1: the client is not trusted).
    VerifyTxn {
        correlation: u64,
        partition: u32,
        producer_id: i64,
        producer_epoch: i16,
    },
    VerifyTxnResponse {
        correlation: u64,
        partition: u32,
        producer_id: i64,
        producer_epoch: i16,
        verified: bool,
    },
    /// The coordinator ends a transaction on a partition: the leader appends a control
    /// batch (commit or abort) stamped with `producer_epoch`, and answers once it is
    /// committed.
    WriteTxnMarker {
        correlation: u64,
        partition: u32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: u32,
    },
    WriteTxnMarkerResponse {
        correlation: u64,
        partition: u32,
        result: Result<(), ErrorCode>,
    },
}

impl Msg {
    /// The message in words for a trace: its type and key fields
    /// (`Fetch{p0 offset 37 epoch 2}`), never its records.
    pub fn summary(&self) -> String {
        fn result<T>(result: &Result<T, ErrorCode>, ok: impl Fn(&T) -> String) -> String {
            match result {
                Ok(value) => ok(value),
                Err(code) => format!("error {code:?}"),
            }
        }
        match self {
            Msg::Heartbeat { incarnation, logs, .. } => {
                format!("Heartbeat{{incarnation {incarnation}, {} logs}}", logs.len())
            }
            Msg::HeartbeatAck { states, registration } => format!(
                "HeartbeatAck{{{} partitions{}}}",
                states.len(),
                if registration.is_some() { ", registered" } else { "" }
            ),
            Msg::AlterIsr { partition, leader_epoch, isr, .. } => {
                format!("AlterIsr{{p{partition} epoch {leader_epoch} isr {isr:?}}}")
            }
            Msg::Metadata { correlation } => format!("Metadata{{#{correlation}}}"),
            Msg::MetadataResponse { correlation, states } => {
                format!("MetadataResponse{{#{correlation}, {} partitions}}", states.len())
            }
            Msg::InitProducerId { correlation } => format!("InitProducerId{{#{correlation}}}"),
            Msg::InitProducerIdResponse { correlation, producer_id } => {
                format!("InitProducerIdResponse{{#{correlation} id {producer_id}}}")
            }
            Msg::Produce {
                partition, correlation, leader_epoch, records, transactional, ..
            } => {
                let epoch = leader_epoch.map_or(String::new(), |e| format!(" epoch {e}"));
                let txn = if *transactional { " txn" } else { "" };
                format!(
                    "Produce{{p{partition} #{correlation}{epoch}, {} records{txn}}}",
                    records.len()
                )
            }
            Msg::ProduceResponse { partition, correlation, result: r } => format!(
                "ProduceResponse{{p{partition} #{correlation} {}}}",
                result(r, |offset| format!("offset {offset}"))
            ),
            Msg::Fetch { partition, leader_epoch, fetch_offset, replica, .. } => {
                let who = if replica.is_some() { "replica" } else { "consumer" };
                format!("Fetch{{p{partition} offset {fetch_offset} epoch {leader_epoch}, {who}}}")
            }
            Msg::FetchResponse { partition, result: r, .. } => format!(
                "FetchResponse{{p{partition} {}}}",
                result(r, |data| format!(
                    "epoch {} hw {} end {}, {} batches",
                    data.leader_epoch,
                    data.high_watermark,
                    data.log_end_offset,
                    data.batches.len()
                ))
            ),
            Msg::OffsetForLeaderEpoch { partition, requested_epoch, .. } => {
                format!("OffsetForLeaderEpoch{{p{partition} epoch {requested_epoch}}}")
            }
            Msg::OffsetForLeaderEpochResponse { partition, result: r, .. } => format!(
                "OffsetForLeaderEpochResponse{{p{partition} {}}}",
                result(r, |(epoch, end)| format!("epoch {epoch} ends at {end}"))
            ),
            Msg::InitTxn { txn_id, .. } => format!("InitTxn{{{txn_id}}}"),
            Msg::InitTxnResponse { result: r, .. } => format!(
                "InitTxnResponse{{{}}}",
                result(r, |(id, epoch)| format!("id {id} epoch {epoch}"))
            ),
            Msg::AddPartitionsToTxn { txn_id, partitions, .. } => {
                format!("AddPartitionsToTxn{{{txn_id} {partitions:?}}}")
            }
            Msg::AddPartitionsToTxnResponse { result: r, .. } => {
                format!("AddPartitionsToTxnResponse{{{}}}", result(r, |()| "ok".to_owned()))
            }
            Msg::EndTxn { txn_id, commit, .. } => {
                format!("EndTxn{{{txn_id} {}}}", if *commit { "commit" } else { "abort" })
            }
            Msg::EndTxnResponse { result: r, .. } => {
                format!("EndTxnResponse{{{}}}", result(r, |epoch| format!("epoch {epoch}")))
            }
            Msg::VerifyTxn { partition, producer_id, .. } => {
                format!("VerifyTxn{{p{partition} id {producer_id}}}")
            }
            Msg::VerifyTxnResponse { partition, verified, .. } => {
                format!("VerifyTxnResponse{{p{partition} verified {verified}}}")
            }
            Msg::WriteTxnMarker { partition, producer_id, commit, .. } => format!(
                "WriteTxnMarker{{p{partition} id {producer_id} {}}}",
                if *commit { "commit" } else { "abort" }
            ),
            Msg::WriteTxnMarkerResponse { partition, result: r, .. } => format!(
                "WriteTxnMarkerResponse{{p{partition} {}}}",
                result(r, |()| "ok".to_owned())
            ),
        }
    }
}
