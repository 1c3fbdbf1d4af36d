//! logjam-sim: the deterministic world.
//!
//! Owns everything a run is made of apart from the code under test: seeded random
//! streams, virtual time, the event queue, the network, node lifecycles (crash, restart,
//! pause), clocks with skew and drift, faults, limits, and the trace whose hash is the
//! run's fingerprint. A run is a pure function of its configuration and one `u64` seed.
//!
//! Architecture invariants:
//! - Depends on `broker`, `eventstore` and `model` (it drives them) and never on
//!   `reports` or `cli`.
//! - Inside a run: no wall clock, no OS thread, no OS randomness, no iteration over a
//!   std hash map (clippy.toml enforces it). Parallelism lives across seeds, outside.
//! - Every event that happens in the world is folded into the trace hash.

mod clock;
pub mod cluster;
mod config;
pub mod config_menu;
pub mod coverage;
mod disk;
pub mod es_client;
pub mod es_projection;
pub mod es_txn_projection;
mod fault;
mod latency_shape;
mod limits;
pub mod nemesis;
mod network;
mod process;
mod queue;
mod rng;
pub mod run;
pub mod scenario;
pub mod schedule_file;
pub mod shrink;
pub mod strategy;
pub mod time;
pub mod toy;
mod trace;
pub mod txn_processor;
pub mod user;
mod world;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use clock::{ClockConfig, DRIFT_MAX_PPM_LIMIT};
pub use config::{ConfigError, NODES_MAX, WorldConfig};
pub use disk::{
    CheckpointFile, CrashDamage, DiskConfig, DiskFault, HeaderField, SECTOR_BYTES, SimDisk,
};
pub use fault::{Fault, Partition};
pub use latency_shape::LatencyShape;
pub use limits::{Limit, Limits};
pub use network::{Latency, NetworkConfig};
pub use process::{Context, Process, TimerId};
pub use rng::{SimRng, StreamId, stream};
pub use trace::{DropReason, Trace, TraceEntry, TraceEvent};
pub use world::{Factory, NodeStatus, Stats, World};

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

/// A node of the world, `0..nodes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u32);

impl NodeId {
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
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
