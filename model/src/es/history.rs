//! What an event-store run hands the checkers: the commands clients issued with their
//! outcomes, every replica's committed events, and the read models projections
//! checkpointed. Serde's derive is the format (JSON); new fields come with
//! `#[serde(default)]` so older histories still read.

use serde::{Deserialize, Serialize};

/// One event-store run, as the checkers see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EsHistory {
    /// "bank", "cart" or "inventory".
    pub domain: String,
    /// The store checked expected versions (false: the weak setup, appends with "any").
    pub expected_versions: bool,
    pub commands: Vec<CommandRecord>,
    /// Each broker replica's committed events (below its high watermark), in offset order.
    pub replicas: Vec<ReplicaStreams>,
    /// Read models checkpointed by projections, with the offset they cover.
    #[serde(default)]
    pub projections: Vec<ProjectionCheckpoint>,
    /// The log under the store does not promise acknowledged appends durable (acks 1,
    /// unclean leader election, no flush): an `Ok` command's events missing from a
    /// replica, and what follows from deciding on events the log later lost, are then
    /// expected rather than violations. False (the default): durability is promised.
    #[serde(default)]
    pub lossy_log: bool,
    /// Bank: each transfer is one transaction, its debit and credit committed together
    /// (false, the default: a saga, whose debit may wait for its credit or refund).
    #[serde(default)]
    pub atomic_transfers: bool,
    /// The run gave its projections time to catch up once faults healed (a quiet
    /// phase): each must then end past its partition's last committed event. False (the
    /// default): projection-progress is not judged.
    #[serde(default)]
    pub projections_settled: bool,
}

/// One command: who issued it, when, on which stream, what the handler decided and how
/// it ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub process: u64,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    /// The same for every attempt of one command (a client's retries share it).
    pub command_id: u64,
    pub stream: String,
    /// The command as JSON (for witnesses).
    pub command: serde_json::Value,
    /// The stream version the handler decided on (events it folded); None if it never loaded.
    pub decided_at_version: Option<u64>,
    pub outcome: CommandOutcome,
}

/// How a command ended. Externally tagged, kebab-case: `{"ok":{"first_version":3,...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommandOutcome {
    /// Appended: its events got versions first_version.. in its stream.
    Ok { first_version: u64, events: Vec<serde_json::Value> },
    /// The domain refused it (no events), e.g. insufficient funds.
    Rejected { reason: String },
    /// Definitely nothing appended (wrong expected version after retries, not leader...).
    Fail { reason: String },
    /// May or may not have appended.
    Indeterminate { reason: String },
}

/// One replica's committed events of one partition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStreams {
    pub node: u32,
    pub partition: u32,
    /// In offset order; only events below the replica's high watermark.
    pub events: Vec<StoredEvent>,
}

/// One event as the log holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Its offset in the partition.
    pub offset: u64,
    pub stream: String,
    /// Its version in the stream: the stream's first event is version 0.
    pub version: u64,
    /// The command that appended it.
    pub command_id: u64,
    /// The domain event, serde's externally tagged JSON (`{"Deposited":{"amount":5}}`).
    pub event: serde_json::Value,
}

/// A read model a projection checkpointed together with its offset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectionCheckpoint {
    pub consumer: u32,
    pub t_ns: u64,
    pub partition: u32,
    /// The next offset to read, as Kafka commits it: the read model covers every event
    /// of the partition below this offset and none at or above it.
    pub offset: u64,
    /// Bank: `{"acct-1": 40, ...}` (balances); cart: `{"cart-1": {"7": 2, ...}, ...}`
    /// (open carts' lines, sku to quantity); inventory: `{"sku-1": 5, ...}` (available).
    /// A zero balance, zero line, empty open cart or zero availability may be left out.
    pub read_model: serde_json::Value,
    /// The projection read uncommitted (records of transactions not yet decided, and of
    /// aborted ones): it gives up `committed-reads`.
    #[serde(default)]
    pub read_uncommitted: bool,
}
