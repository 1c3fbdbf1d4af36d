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
//! Not part of the checking API; public so benches and other crates' tests can reuse
//! it. Deterministic: a `ChaCha8` stream seeded from `GenConfig::seed` drives it all.

mod generate;
mod mutate;

pub use generate::{GenConfig, generate};
pub use mutate::{Mutated, Mutation, mutate};
