//! logjam-eventstore: event sourcing on the replicated log.
//!
//! An aggregate's events are a stream (`acct-3`); a stream's events are records of one
//! partition, keyed by the stream name, each value an `Envelope`. Appends carry an
//! expected version, so concurrent writers are caught by the store, and every client
//! runs the same command loop over any `StreamStore`. Snapshots, projections and a CDC
//! replica are folds over the same records.
//!
//! | module | job |
//! |---|---|
//! | `aggregate` | the `Aggregate` trait (`handle` pure, `apply`, `validate`), `fold`, `execute` |
//! | `envelope` | one record's value: stream version, command id, schema version, payload; byte table; `decode` never panics |
//! | `schema` | events to payloads (postcard) at the current schema version, `Upcaster`s for older ones, `decode_event`, `fold_stream`, `StreamFold`, `FoldError` (names stream, offset, schema; nothing skipped) |
//! | `store` | `ExpectedVersion`, the sans-IO `StreamStore` trait and its guarantees (appends across streams, all or none, among them), `StoreReply`, `InMemoryStore` |
//! | `log_store` | `LogStore`: the `StreamStore` on the replicated log, sans-IO over broker messages (conditional produce per append, one transaction of conditional records per append across streams, a committed read of the stream's partition per read); `check_versions = false` is the weak setup |
//! | `reader` | `PartitionReader`: one partition's committed records in offset order, sans-IO over broker messages (projections and CDC replicas read with it) |
//! | `command` | the command loop (`CommandLoop`: load, fold, handle, append `Exact`, retry; at most once by command id), `Decision`/`Outcome`, `run_command`; `command::multi`: one command across streams (a transfer's debit and credit), appended whole |
//! | `snapshot` | a state at a version (byte table), `load` = snapshot + tail |
//! | `projection` | read models folded by offset and checkpointed atomically with their offset on a broker `Storage`; the test-only `broken_checkpoint_order` |
//! | `cdc` | a source table's changes published as events, and the replica that applies them |
//! | `domains` | bank (`acct-N`; schema 2 with an upcaster from 1), cart (`cart-N`), inventory (`sku-N`) |
//!
//! Limits: `store::APPEND_EVENTS_MAX` events per append, `store::STREAM_EVENTS_MAX`
//! events per stream (so per read), `store::STREAM_NAME_BYTES_MAX`,
//! `envelope::PAYLOAD_BYTES_MAX`, `command::COMMAND_ATTEMPTS_MAX`,
//! `snapshot::SNAPSHOT_BYTES_MAX`, `projection::READ_MODEL_BYTES_MAX`, and per domain
//! (`CART_LINES_MAX`, `RESERVATIONS_MAX`, `TABLE_ROWS_MAX`).
//!
//! Architecture invariants: depends on `logjam-broker` (its `Storage` and checkpoint
//! writer) and on no other crate of logjam; knows nothing of the simulator or the model.
//! No clock, thread, OS randomness or hash map: everything here is a deterministic,
//! sans-IO function of its inputs.

pub mod aggregate;
pub mod cdc;
pub mod command;
pub mod domains;
pub mod envelope;
pub mod log_store;
pub mod projection;
pub mod reader;
pub mod schema;
pub mod snapshot;
pub mod store;

pub use aggregate::Aggregate;
pub use command::{CommandLoop, Decision, Outcome, Request, Step, run_command};
pub use envelope::{DecodeError, Envelope};
pub use schema::{FoldError, Schema, Upcaster, decode_event, fold_stream};
pub use store::{ExpectedVersion, InMemoryStore, StoreReply, StreamStore};
