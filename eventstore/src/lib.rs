//! logjam-eventstore: event sourcing on the replicated log.
//!
//! Architecture invariant: depends on `logjam-broker` (for its client types) and on no
//! other crate of logjam. It knows nothing of the simulator or the model.

pub mod aggregate;
pub mod cdc;
pub mod command;
pub mod domains;
pub mod envelope;
pub mod log_store;
pub mod projection;
pub mod schema;
pub mod snapshot;
pub mod store;
