//! logjam-model: the oracle.
//!
//! Owns the sequential reference implementations (an in-memory log, a fold per domain),
//! the history format, the catalogue of named invariants, and the checkers that turn a
//! history into a verdict with typed anomalies and their smallest witnesses.
//!
//! Architecture invariant: depends on no other crate of logjam. It can check the history
//! of any system, not only logjam's broker.
//!
//! Status: built. The history format (JSON Lines, version 1, documented with examples in
//! `model/HISTORY.md`), the invariant catalogue, every checker of the model issue, the
//! guarantee-aware verdict and `ModelLog`. Reference folds for the event-store domains
//! come with the event-sourcing issue.
//!
//! The public face, in the order a caller meets it:
//! - [`parse_history`] / [`parse_history_str`] read a history, or say which line is
//!   wrong and why ([`HistoryError`]); [`HistoryBuilder`] records one in memory under
//!   the same rules;
//! - [`check`] judges a [`History`] and returns a [`Verdict`]: every [`Invariant`]
//!   with counts, each [`Anomaly`] with its witness, judged against the
//!   [`Guarantee`]s the header's [`Config`] promises; `Display` prints it for people;
//! - [`ModelLog`] is the reference log for lockstep tests of the storage engine;
//! - [`testkit`] generates valid histories (and mutations of them) from a seed, for
//!   tests and benches.
//! - [`es`] checks event-store runs: [`es::check`] judges an [`es::EsHistory`] (commands,
//!   replicas' committed events, projection checkpoints) into an [`es::EsVerdict`].
//!
//! Architecture invariants of the checkers: a verdict is a pure function of the
//! history (no clock, no randomness, no hash-map iteration); every checker is linear
//! or `n log n`; an indeterminate (`info`) operation is never held against the system,
//! whichever way it went.

mod check;
mod config;
pub mod es;
mod history;
mod invariant;
mod log;
pub mod testkit;
mod verdict;

pub use check::check;
pub use config::{Acks, Config, Election, FaultBudget, Flush, Recovery, Transactions, Truncation};
pub use history::{
    Closing, EVENTS_MAX, Event, EventType, FORMAT_VERSION, Header, History, HistoryBuilder,
    HistoryError, Isolation, LINE_BYTES_MAX, MicroOp, OFFSET_MAX, Op, OpSpan, Problem,
    ProcessorGroup, Protocol, ProtocolEvent, Record, Replica, Text, event_json, parse_history,
    parse_history_str, protocol_json,
};
pub use invariant::{Guarantee, Invariant, Level, UnknownName};
pub use log::{LogError, ModelLog, PartitionLog, Slice};
pub use verdict::{
    ANOMALIES_KEPT_PER_INVARIANT, ANOMALIES_SHOWN_PER_INVARIANT, Anomaly, Check, Judgement, Status,
    Verdict, Witness,
};
