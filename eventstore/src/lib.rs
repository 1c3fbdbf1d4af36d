//! logjam-eventstore: event sourcing on the replicated log.
//!
//! Owns aggregates (`handle` a command into events, `apply` an event), streams with
//! expected versions, snapshots, projections (read models) and a CDC materializer, plus
//! example domains with business invariants.
//!
//! Architecture invariant: depends on `logjam-broker` (for its client types) and on no
//! other crate of logjam. It knows nothing of the simulator or the model.
//!
//! Status: empty until the event-sourcing issue lands.
