//! Histories for tests and benches, from a seed.
//!
//! `generate` runs a small, correct replicated log (leaders, followers that fetch, high
//! watermarks, clean leader changes that truncate uncommitted suffixes, restarts) under
//! concurrent producers and consumers whose operations may fail or end indeterminate,
//! and records the history. A correct log keeps every promise of every configuration,
//! so whatever the header says, the checkers must find nothing: the no-false-positive
//! property. `mutate` then breaks one thing in such a history and says which invariant
//! must catch it: the no-false-negative property.
//!
//! With `GenConfig::txn_processes` (`GenConfig::transactional`), transactional
//! processes take their ids (`init`) and run transactions across partitions (committed,
//! aborted, indeterminate; one of them consume-transform-produce with `commit-offset`);
//! the log writes control markers and keeps a last stable offset, consumers read at
//! read_committed and read_uncommitted, and the final logs state `last_stable_offset`
//! and `aborted`. Such histories hold but for dirty reads (always expected);
//! `Mutation::TRANSACTIONAL` breaks their transactional state.
//!
//! Not part of the checking API; public so benches and other crates' tests can reuse
//! it. Deterministic: a `ChaCha8` stream seeded from `GenConfig::seed` drives it all.

mod generate;
mod mutate;

pub use generate::{GenConfig, generate};
pub use mutate::{Mutated, Mutation, mutate};
