//! What a world is built from, and the errors that refuse a bad one before it runs.

use thiserror::Error;

use crate::NodeId;
use crate::clock::{ClockConfig, DRIFT_MAX_PPM_LIMIT};
use crate::disk::DiskConfig;
use crate::limits::Limits;
use crate::network::NetworkConfig;

/// The most nodes a world holds: links are a dense matrix.
pub const NODES_MAX: u32 = 1024;

/// Everything that shapes a world apart from its seed and its processes.
///
/// `WorldConfig::default()` has no nodes, which `validate` refuses: start from
/// [`WorldConfig::with_nodes`] and change what the run needs.
///
/// ```
/// use logjam_world::{ConfigError, Latency, WorldConfig};
///
/// let mut config = WorldConfig::with_nodes(3);
/// config.network.latency = Latency::uniform(200_000, 2_000_000); // 0.2 to 2 ms
/// config.network.drop_probability = 0.01;
/// assert_eq!(config.validate(), Ok(()));
///
/// config.network.drop_probability = 1.5;
/// assert!(matches!(config.validate(), Err(ConfigError::Probability { .. })));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct WorldConfig {
    /// How many nodes, between 1 and [`NODES_MAX`]: `NodeId(0)` to `NodeId(nodes - 1)`.
    pub nodes: u32,
    /// The links between the nodes: latency, random drop and duplication, connections.
    pub network: NetworkConfig,
    /// How far the nodes' clocks skew and drift from simulated time.
    pub clocks: ClockConfig,
    /// How every node's disk behaves (each node has a disk of its own).
    pub disk: DiskConfig,
    /// The bounds that end a run with a clear outcome instead of a hang.
    pub limits: Limits,
    /// A process that halts itself is started again this much later, as a supervisor
    /// would.
    pub restart_after_halt_ns: u64,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            nodes: 0,
            network: NetworkConfig::default(),
            clocks: ClockConfig::default(),
            disk: DiskConfig::default(),
            limits: Limits::default(),
            restart_after_halt_ns: 500_000_000,
        }
    }
}

impl WorldConfig {
    /// The default world with `nodes` nodes.
    pub fn with_nodes(nodes: u32) -> WorldConfig {
        WorldConfig { nodes, ..WorldConfig::default() }
    }

    /// Refuses a configuration no run may start from: a node count outside
    /// `1..=NODES_MAX`, a probability outside `[0, 1]`, an upside-down latency or sync
    /// latency range, a link override naming a node the world does not have, a clock
    /// drift above `DRIFT_MAX_PPM_LIMIT`, or a zero limit. `World::new` calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.nodes == 0 || self.nodes > NODES_MAX {
            return Err(ConfigError::NodeCount { nodes: self.nodes });
        }
        self.network.validate(self.nodes)?;
        let [min_ns, max_ns] = self.disk.sync_latency_ns;
        crate::network::check_range("disk.sync_latency", min_ns, max_ns)?;
        if self.clocks.drift_max_ppm > DRIFT_MAX_PPM_LIMIT {
            return Err(ConfigError::DriftTooLarge { drift_max_ppm: self.clocks.drift_max_ppm });
        }
        let limits = &self.limits;
        for (what, value) in [
            ("limits.events_max", limits.events_max),
            ("limits.in_flight_max", limits.in_flight_max),
            ("limits.time_max_ns", limits.time_max_ns),
            ("limits.timers_per_node_max", limits.timers_per_node_max),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroLimit { what });
            }
        }
        Ok(())
    }
}

/// Why a world (or a fault scheduled into it) was refused.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ConfigError {
    /// A probability is outside `[0, 1]`.
    #[error("{what}: probability {value} is outside [0, 1]")]
    Probability {
        /// The setting (`network.drop_probability`, `fault.drop_probability`, ...).
        what: String,
        /// The value given.
        value: f64,
    },
    /// A range's minimum is above its maximum.
    #[error("{what}: range is upside down (min {min} > max {max})")]
    RangeUpsideDown {
        /// The setting (`network.latency`, `disk.sync_latency`, ...).
        what: String,
        /// The minimum given.
        min: u64,
        /// The maximum given.
        max: u64,
    },
    /// A link override or a fault names a node the world does not have.
    #[error("{what}: node {node} does not exist (the world has {nodes} nodes: n0..n{})", nodes.saturating_sub(1))]
    UnknownNode {
        /// Where the node is named (`network.link_latency[n0->n5]`, `partition`, ...).
        what: String,
        /// The node named.
        node: NodeId,
        /// How many nodes the world has.
        nodes: u32,
    },
    /// The world has no node, or more than [`NODES_MAX`].
    #[error("nodes: {nodes} is not between 1 and {NODES_MAX}")]
    NodeCount {
        /// The node count given.
        nodes: u32,
    },
    /// `clocks.drift_max_ppm` is above [`DRIFT_MAX_PPM_LIMIT`].
    #[error("clocks.drift_max_ppm: {drift_max_ppm} exceeds {DRIFT_MAX_PPM_LIMIT}")]
    DriftTooLarge {
        /// The drift bound given, in parts per million.
        drift_max_ppm: u32,
    },
    /// A limit is zero: no run could do anything.
    #[error("{what}: must be above zero")]
    ZeroLimit {
        /// The limit (`limits.events_max`, ...).
        what: &'static str,
    },
    /// A fault is malformed: a node listed twice, or a clock jump, clog or link loss
    /// longer than `FAULT_SPAN_MAX_NS`.
    #[error("{what}: {problem}")]
    Fault {
        /// The kind of fault (`partition`, `clock jump`, `clog`, `link loss`).
        what: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A fault was scheduled at a time the world has already passed.
    #[error("fault at {at_ns}ns is in the past (the world is at {now_ns}ns)")]
    FaultInPast {
        /// When the fault was asked for, in simulated ns.
        at_ns: u64,
        /// The world's simulated time when it was asked, in ns.
        now_ns: u64,
    },
}
