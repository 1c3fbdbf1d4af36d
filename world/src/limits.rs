//! Limits on everything a run can grow. Reaching one ends the run with a clear outcome
//! instead of a hang or an out-of-memory kill.

use std::fmt;

use serde::Serialize;

use crate::NodeId;

/// The bounds of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Events the world may process (deliveries, timers, faults, drops).
    pub events_max: u64,
    /// Messages on the wire at once, including those held for a paused node.
    pub in_flight_max: u64,
    /// Simulated time a run may reach, in ns.
    pub time_max_ns: u64,
    /// Pending timers one node may hold.
    pub timers_per_node_max: u64,
    /// Trace events kept for dumping when a trace is asked for (the hash covers all).
    pub trace_kept_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            events_max: 100_000_000,
            in_flight_max: 1_000_000,
            time_max_ns: 24 * 3600 * crate::time::NS_PER_S,
            timers_per_node_max: 100_000,
            trace_kept_max: 0,
        }
    }
}

/// Which limit ended a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "limit", rename_all = "kebab-case")]
pub enum Limit {
    /// The world processed `events_max` events and had more to do.
    Events {
        /// The limit, `Limits::events_max`.
        max: u64,
    },
    /// A send would have put more than `in_flight_max` messages on the wire (it was
    /// dropped).
    InFlight {
        /// The limit, `Limits::in_flight_max`.
        max: u64,
    },
    /// The next event, or the time a run was asked to reach, lies past `time_max_ns`.
    Time {
        /// The limit, `Limits::time_max_ns`, in simulated ns.
        max_ns: u64,
    },
    /// A node set a timer that made it hold more than `timers_per_node_max` pending
    /// ones.
    Timers {
        /// The node that set it.
        node: NodeId,
        /// The limit, `Limits::timers_per_node_max`.
        max: u64,
    },
}

impl Limit {
    pub(crate) fn tag(self) -> u64 {
        match self {
            Limit::Events { .. } => 1,
            Limit::InFlight { .. } => 2,
            Limit::Time { .. } => 3,
            Limit::Timers { .. } => 4,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Events { max } => write!(f, "events_max ({max} events processed)"),
            Limit::InFlight { max } => write!(f, "in_flight_max ({max} messages on the wire)"),
            Limit::Time { max_ns } => {
                write!(f, "time_max ({} simulated)", crate::time::format_ns(*max_ns))
            }
            Limit::Timers { node, max } => {
                write!(f, "timers_per_node_max ({node} holds {max} pending timers)")
            }
        }
    }
}
