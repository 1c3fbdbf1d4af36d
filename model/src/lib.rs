//! logjam-model: the oracle.
//!
//! Owns the sequential reference implementations (an in-memory log, a fold per domain),
//! the history format, the catalogue of named invariants, and the checkers that turn a
//! history into a verdict with typed anomalies and their smallest witnesses.
//!
//! Architecture invariant: depends on no other crate of logjam. It can check the history
//! of any system, not only logjam's broker.
//!
//! Status: empty until the model-and-checkers issue lands.
