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
#[derive(Clone, Debug, PartialEq)]
pub struct WorldConfig {
    pub nodes: u32,
    pub network: NetworkConfig,
    pub clocks: ClockConfig,
    pub disk: DiskConfig,
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
    pub fn with_nodes(nodes: u32) -> WorldConfig {
        WorldConfig { nodes, ..WorldConfig::default() }
    }

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
    #[error("{what}: probability {value} is outside [0, 1]")]
    Probability { what: String, value: f64 },
    #[error("{what}: range is upside down (min {min} > max {max})")]
    RangeUpsideDown { what: String, min: u64, max: u64 },
    #[error("{what}: node {node} does not exist (the world has {nodes} nodes: n0..n{})", nodes.saturating_sub(1))]
    UnknownNode { what: String, node: NodeId, nodes: u32 },
    #[error("nodes: {nodes} is not between 1 and {NODES_MAX}")]
    NodeCount { nodes: u32 },
    #[error("clocks.drift_max_ppm: {drift_max_ppm} exceeds {DRIFT_MAX_PPM_LIMIT}")]
    DriftTooLarge { drift_max_ppm: u32 },
    #[error("{what}: must be above zero")]
    ZeroLimit { what: &'static str },
    #[error("{what}: {problem}")]
    Fault { what: String, problem: String },
    #[error("fault at {at_ns}ns is in the past (the world is at {now_ns}ns)")]
    FaultInPast { at_ns: u64, now_ns: u64 },
}
