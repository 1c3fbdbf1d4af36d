//! logjam-world: the deterministic world.
//!
//! Everything a run is made of apart from the code under test: seeded random streams,
//! virtual time, the event queue, the network (latency shapes, loss, duplication,
//! partitions, clogs, connections), node lifecycles (crash, restart, pause), clocks
//! with skew and drift, disks that lose, tear and corrupt what was never synced,
//! faults, limits, and the trace whose hash is the run's fingerprint. A run is a pure
//! function of its configuration, its processes and one `u64` seed.
//!
//! It depends on no crate of logjam's: a protocol of your own runs on it alone. Write
//! a [`Process`] (a sans-IO state machine that reacts to messages, timers and sync
//! completions through its [`Context`]), give the world a [`Factory`] that builds a
//! node's process (at boot and after every crash), and run:
//!
//! ```
//! use logjam_world::{Context, NodeId, Process, TimerId, World, WorldConfig};
//!
//! /// Node 0 pings node 1 every millisecond; node 1 counts the pings it gets.
//! #[derive(Default)]
//! struct Pinger {
//!     pings: u64,
//! }
//!
//! impl Process for Pinger {
//!     type Message = &'static str;
//!     type Timer = ();
//!
//!     fn start(&mut self, ctx: &mut Context<'_, Self>) {
//!         if ctx.node() == NodeId(0) {
//!             ctx.set_timer(1_000_000, ());
//!         }
//!     }
//!
//!     fn on_message(&mut self, _: &mut Context<'_, Self>, _from: NodeId, _msg: &'static str) {
//!         self.pings += 1;
//!     }
//!
//!     fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _: TimerId, (): ()) {
//!         ctx.send(NodeId(1), "ping");
//!         ctx.set_timer(1_000_000, ());
//!     }
//! }
//!
//! let config = WorldConfig::with_nodes(2);
//! let mut world = World::new(&config, 7, |_node| Pinger::default()).expect("a valid config");
//! world.run_until(100_000_000); // 100 simulated milliseconds
//! let pings = world.process(NodeId(1)).map_or(0, |node| node.pings);
//! assert!(pings > 90, "{pings} pings");
//! println!("trace hash {:016x}", world.trace_hash());
//! ```
//!
//! Architecture invariants:
//! - Inside a run: no wall clock, no OS thread, no OS randomness, no iteration over a
//!   std hash map (the workspace's clippy.toml enforces it). Parallelism lives across
//!   seeds, outside.
//! - Every event that happens in the world is folded into the trace hash.
//! - Every draw comes from a named stream ([`StreamId`]), so a change to how one part
//!   draws does not reshuffle the others.

#![warn(missing_docs)]

mod clock;
mod config;
mod disk;
mod fault;
mod latency_shape;
mod limits;
mod network;
mod process;
mod queue;
mod rng;
pub mod time;
pub mod toy;
mod trace;
mod world;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use clock::{ClockConfig, DRIFT_MAX_PPM_LIMIT};
pub use config::{ConfigError, NODES_MAX, WorldConfig};
pub use disk::{
    CheckpointFile, CrashDamage, DiskConfig, DiskError, DiskFault, DiskLayout, HeaderField,
    SECTOR_BYTES, SimDisk, SyncResult, SyncTicket,
};
pub use fault::{FAULT_SPAN_MAX_NS, Fault, Partition};
pub use latency_shape::LatencyShape;
pub use limits::{Limit, Limits};
pub use network::{Latency, NetworkConfig};
pub use process::{Context, DESCRIBED_CHARS_MAX, Process, TimerId};
pub use rng::{SimRng, StreamId, stream};
pub use trace::{DropReason, Trace, TraceEntry, TraceEvent};
pub use world::{Factory, NodeStatus, RunEnd, Stats, World};

/// A node of the world, `0..nodes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The node's index, for tables of nodes.
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
