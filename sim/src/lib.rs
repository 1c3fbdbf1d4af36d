//! logjam-sim: the harness on the world.
//!
//! The world itself (seeded random streams, virtual time, the event queue, the network,
//! node lifecycles, clocks, disks, faults, limits and the trace) is the `logjam-world`
//! crate, re-exported here. On it this crate builds the simulated cluster (the real log,
//! the event store, the clients that record the model's history) and the search
//! (scenario files, configuration and fault menus, runs, sweeps, shrinking, proptest
//! strategies). A run is a pure function of its scenario and one `u64` seed.
//!
//! Architecture invariants:
//! - Depends on `world`, `broker`, `eventstore` and `model` (it drives them) and never
//!   on `reports` or `cli`.
//! - Inside a run: no wall clock, no OS thread, no OS randomness, no iteration over a
//!   std hash map (clippy.toml enforces it). Parallelism lives across seeds, outside.
//! - Every event that happens in the world is folded into the trace hash.

#![warn(missing_docs)]

pub mod cluster;
pub mod search;
pub mod user;

/// The event store your aggregate implements (`Aggregate`, `schema::Schema`,
/// `snapshot::Snapshotted`), re-exported so a test of your own code depends on this
/// crate alone (and serde).
pub use logjam_eventstore as eventstore;

// The modules by their old, flat names (`logjam_sim::run`, `logjam_sim::scenario`, ...).
pub use cluster::{es_client, es_projection, es_txn_projection, log_disk, txn_processor};
pub use search::scenario;
pub use search::{config_menu, coverage, nemesis, run, schedule_file, shrink, strategy};

// The world, re-exported: the harness's code and its users name its types from here.
pub use log_disk::{BROKER_LAYOUT, LogDisk, broker_disk_config};
pub use logjam_world::{
    CheckpointFile, ClockConfig, ConfigError, Context, CrashDamage, DRIFT_MAX_PPM_LIMIT,
    DiskConfig, DiskError, DiskFault, DiskLayout, DropReason, FAULT_SPAN_MAX_NS, Factory, Fault,
    HeaderField, Latency, LatencyShape, Limit, Limits, NODES_MAX, NetworkConfig, NodeId,
    NodeStatus, Partition, Process, SECTOR_BYTES, SimDisk, SimRng, Stats, StreamId, SyncResult,
    SyncTicket, TimerId, Trace, TraceEntry, TraceEvent, World, WorldConfig, stream, time, toy,
};

/// `prefix` followed by `n` in decimal: what `format!("{prefix}{n}")` gives, without the
/// formatting machinery (workload values and keys are made at every operation).
pub(crate) fn numbered(prefix: &str, n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut text = String::with_capacity(prefix.len() + digits.len() - at);
    text.push_str(prefix);
    text.extend(digits[at..].iter().map(|&digit| char::from(digit)));
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbered_is_format() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(super::numbered("v", n), format!("v{n}"));
            assert_eq!(super::numbered("", n), n.to_string());
        }
    }
}
