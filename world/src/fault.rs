//! Faults the world can inject, each at a simulated time.

use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::config::ConfigError;
use crate::disk::DiskFault;
use crate::network::{check_node, check_probability};

/// A way to cut the network. Applying one replaces the current partition.
///
/// Unknown keys of a fault (here, in `Fault` and in `DiskFault`) are refused by the
/// schedule file's parser, with their place: serde reads a fault whole before it knows
/// its variant, so its own refusal could only point past the fault, and it lets any key
/// through for a variant without fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "kebab-case")]
pub enum Partition {
    /// No message crosses between `a` and `b`, either way.
    Symmetric {
        /// One side.
        a: Vec<NodeId>,
        /// The other side.
        b: Vec<NodeId>,
    },
    /// Messages from `from` to `to` are lost; the other direction works.
    OneWay {
        /// The senders cut off from `to`.
        from: Vec<NodeId>,
        /// The receivers that hear nothing from `from`.
        to: Vec<NodeId>,
    },
    /// The node can neither send to nor hear from anyone.
    Isolate {
        /// The node cut off.
        node: NodeId,
    },
    /// Two halves: `left` and everyone else.
    Split {
        /// One half; the other is every node not listed.
        left: Vec<NodeId>,
    },
}

/// The longest clock jump or clog a fault may ask for (a day): far beyond any run,
/// and far from overflowing a clock.
pub const FAULT_SPAN_MAX_NS: u64 = 24 * 3600 * 1_000_000_000;

/// One fault (unknown keys: see `Partition`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// The process dies: its volatile state is gone, its pending timers void, messages
    /// reaching it lost. Its disk stays.
    Crash {
        /// The node that crashes.
        node: NodeId,
    },
    /// A crashed node boots again and recovers from its disk.
    Restart {
        /// The crashed node to boot.
        node: NodeId,
    },
    /// The process stops handling anything; messages and timers wait for it.
    Pause {
        /// The node that pauses.
        node: NodeId,
    },
    /// A paused process takes up its backlog: late timers fire, held messages arrive.
    Resume {
        /// The paused node to resume.
        node: NodeId,
    },
    /// Cuts the links the partition names and heals every other cut link: it replaces
    /// the current partition. Clogs and link losses stay.
    Partition(Partition),
    /// A link delivers nothing for `duration_ns`, then everything it held, late.
    Clog {
        /// The sending end of the link.
        from: NodeId,
        /// The receiving end of the link.
        to: NodeId,
        /// How long the link holds what it carries, in simulated ns (at most
        /// `FAULT_SPAN_MAX_NS`).
        duration_ns: u64,
    },
    /// A link loses each message sent on it with `drop_probability` for
    /// `duration_ns`: a lossy link, or at probability 1 a burst that loses everything.
    LinkLoss {
        /// The sending end of the link.
        from: NodeId,
        /// The receiving end of the link.
        to: NodeId,
        /// How likely, in `[0, 1]`, each message sent on the link is to be lost.
        drop_probability: f64,
        /// How long the loss lasts, in simulated ns (at most `FAULT_SPAN_MAX_NS`).
        duration_ns: u64,
    },
    /// An operator's command to the node's process (`Process::on_operator`): for the
    /// log cluster's controller, move the leadership of partition `action` off its live
    /// leader (a preferred-leader election, a controlled shutdown's first step).
    Operator {
        /// The node whose process takes the command (ignored unless it is up).
        node: NodeId,
        /// The command; what it means is the process's to say.
        action: u64,
    },
    /// A node's clock steps forward.
    ClockJump {
        /// The node whose clock jumps.
        node: NodeId,
        /// How far the clock steps forward, in ns (at most `FAULT_SPAN_MAX_NS`).
        forward_ns: u64,
    },
    /// Sets the network's random drop and duplicate probabilities.
    NetworkFaults {
        /// The new `NetworkConfig::drop_probability`, in `[0, 1]`.
        drop_probability: f64,
        /// The new `NetworkConfig::duplicate_probability`, in `[0, 1]`.
        duplicate_probability: f64,
    },
    /// Heals partitions, clogs and link losses only.
    HealNetwork,
    /// A fault of a node's disk.
    Disk {
        /// The node whose disk is struck.
        node: NodeId,
        /// What strikes it.
        disk_fault: DiskFault,
    },
    /// The quiet phase begins: the network heals and stops dropping and duplicating,
    /// crashed nodes restart, paused ones resume, disks get their space back and
    /// disarm (rot and bad sectors stay: they are damage, not weather).
    HealAll,
}

impl Fault {
    /// The one node a fault strikes, if it strikes one (a crash, a restart, a pause, a
    /// resume, a clock jump, a disk fault, an isolation).
    pub fn node(&self) -> Option<NodeId> {
        match self {
            Fault::Crash { node }
            | Fault::Restart { node }
            | Fault::Pause { node }
            | Fault::Resume { node }
            | Fault::ClockJump { node, .. }
            | Fault::Disk { node, .. }
            | Fault::Operator { node, .. }
            | Fault::Partition(Partition::Isolate { node }) => Some(*node),
            _ => None,
        }
    }

    /// A stable number per kind, for the trace.
    pub fn tag(&self) -> u64 {
        match self {
            Fault::Crash { .. } => 1,
            Fault::Restart { .. } => 2,
            Fault::Pause { .. } => 3,
            Fault::Resume { .. } => 4,
            Fault::Partition(_) => 5,
            Fault::Clog { .. } => 6,
            Fault::ClockJump { .. } => 7,
            Fault::NetworkFaults { .. } => 8,
            Fault::HealNetwork => 9,
            Fault::HealAll => 10,
            Fault::Disk { .. } => 11,
            Fault::LinkLoss { .. } => 12,
            Fault::Operator { .. } => 13,
        }
    }

    /// Refuses a fault that names a node the world does not have, a node twice in one
    /// list, a bad probability, or a clock jump or clog longer than `FAULT_SPAN_MAX_NS`.
    pub fn validate(&self, nodes: u32) -> Result<(), ConfigError> {
        let all = |what: &str, list: &[NodeId]| -> Result<(), ConfigError> {
            list.iter().try_for_each(|&node| check_node(what, node, nodes))?;
            let mut sorted = list.to_vec();
            sorted.sort_unstable();
            match sorted.windows(2).find(|pair| pair[0] == pair[1]) {
                Some(pair) => Err(ConfigError::Fault {
                    what: what.to_owned(),
                    problem: format!("node {} is listed twice", pair[0].0),
                }),
                None => Ok(()),
            }
        };
        let span = |what: &str, span_ns: u64| -> Result<(), ConfigError> {
            if span_ns > FAULT_SPAN_MAX_NS {
                let problem = format!("{span_ns} ns exceeds the {FAULT_SPAN_MAX_NS} ns limit");
                return Err(ConfigError::Fault { what: what.to_owned(), problem });
            }
            Ok(())
        };
        match self {
            Fault::ClockJump { forward_ns, .. } => span("clock jump", *forward_ns)?,
            Fault::Clog { duration_ns, .. } => span("clog", *duration_ns)?,
            Fault::LinkLoss { duration_ns, .. } => span("link loss", *duration_ns)?,
            _ => {}
        }
        match self {
            Fault::Crash { node }
            | Fault::Restart { node }
            | Fault::Pause { node }
            | Fault::Resume { node }
            | Fault::ClockJump { node, .. }
            | Fault::Operator { node, .. }
            | Fault::Disk { node, .. } => check_node("fault", *node, nodes),
            Fault::Partition(Partition::Isolate { node }) => check_node("partition", *node, nodes),
            Fault::Partition(Partition::Symmetric { a, b }) => {
                all("partition", a)?;
                all("partition", b)
            }
            Fault::Partition(Partition::OneWay { from, to }) => {
                all("partition", from)?;
                all("partition", to)
            }
            Fault::Partition(Partition::Split { left }) => all("partition", left),
            Fault::Clog { from, to, .. } => {
                check_node("clog", *from, nodes)?;
                check_node("clog", *to, nodes)
            }
            Fault::LinkLoss { from, to, drop_probability, .. } => {
                check_node("link loss", *from, nodes)?;
                check_node("link loss", *to, nodes)?;
                check_probability("fault.drop_probability", *drop_probability)
            }
            Fault::NetworkFaults { drop_probability, duplicate_probability } => {
                check_probability("fault.drop_probability", *drop_probability)?;
                check_probability("fault.duplicate_probability", *duplicate_probability)
            }
            Fault::HealNetwork | Fault::HealAll => Ok(()),
        }
    }

    /// The directed links this partition cuts, in a fixed order.
    pub(crate) fn partition_cuts(partition: &Partition, nodes: u32) -> Vec<(NodeId, NodeId)> {
        let mut cuts = Vec::new();
        let both_ways = |a: &[NodeId], b: &[NodeId], cuts: &mut Vec<_>| {
            for &x in a {
                for &y in b {
                    cuts.push((x, y));
                    cuts.push((y, x));
                }
            }
        };
        match partition {
            Partition::Symmetric { a, b } => both_ways(a, b, &mut cuts),
            Partition::OneWay { from, to } => {
                for &x in from {
                    for &y in to {
                        cuts.push((x, y));
                    }
                }
            }
            Partition::Isolate { node } => {
                let others: Vec<NodeId> = (0..nodes).map(NodeId).filter(|n| n != node).collect();
                both_ways(&[*node], &others, &mut cuts);
            }
            Partition::Split { left } => {
                let right: Vec<NodeId> =
                    (0..nodes).map(NodeId).filter(|n| !left.contains(n)).collect();
                both_ways(left, &right, &mut cuts);
            }
        }
        cuts
    }
}
