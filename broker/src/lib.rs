//! logjam-broker: the real log under test.
//!
//! Owns record batches (with CRC32C), segments and their index on a `Storage` trait, the
//! replica state machine (leader/follower, ISR, high watermark, leader epochs), the
//! controller, and the producer/consumer clients. Everything here is a sans-IO state
//! machine: it takes `(now, input)` and returns effects, so the same code runs on real
//! files and inside the simulator.
//!
//! Architecture invariant: this crate depends on no other crate of logjam. It knows
//! nothing of the simulator, the model or the event store. Only `storage::FsStorage`
//! touches the operating system.
//!
//! Status: storage engine built (batches, segmented log, recovery, checkpoints); the
//! replica, controller and clients arrive with the cluster issue.

pub mod batch;
pub mod broker;
pub mod checkpoint;
pub mod client;
pub mod controller;
pub mod coordinator;
pub mod key_versions;
pub mod log;
pub mod protocol;
pub mod storage;
pub mod txn;
pub mod txn_producer;
