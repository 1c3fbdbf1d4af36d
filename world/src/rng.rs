//! Named random streams, all derived from the run seed.
//!
//! Each part of the world draws from its own ChaCha stream (same key, different stream
//! number), so that changing how one part draws numbers never reshuffles another: a new
//! network parameter does not change what any node or the nemesis draws.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::NodeId;

/// The generator every stream uses. ChaCha8 is plenty for simulation and fast.
pub type SimRng = ChaCha8Rng;

/// The independent streams of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StreamId {
    /// Latency, drop and duplicate draws.
    Network,
    /// Which faults happen, when and where.
    Nemesis,
    /// What the clients ask for and when.
    Workload,
    /// One per node: the node's disk (crash damage, fault placement, sync latency).
    Disk(NodeId),
    /// Clock skew and drift of the nodes.
    Clocks,
    /// One per node: what the node's own code draws through its context.
    Node(NodeId),
    /// The configuration a scenario's menus draw (`min_insync_replicas = [1, 2, 3]`).
    Config,
}

impl StreamId {
    /// The ChaCha stream number. Fixed forever: changing one changes every trace hash.
    fn number(self) -> u64 {
        match self {
            StreamId::Network => 1,
            StreamId::Nemesis => 2,
            StreamId::Workload => 3,
            StreamId::Disk(node) => (2 << 32) | u64::from(node.0),
            StreamId::Clocks => 5,
            StreamId::Config => 6,
            StreamId::Node(node) => (1 << 32) | u64::from(node.0),
        }
    }
}

/// The generator of `stream` in the run with `seed`.
pub fn stream(seed: u64, id: StreamId) -> SimRng {
    let mut rng = SimRng::seed_from_u64(seed);
    rng.set_stream(id.number());
    rng
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn streams_differ_and_repeat() {
        let draw = |id| stream(7, id).next_u64();
        assert_eq!(draw(StreamId::Network), draw(StreamId::Network));
        let ids = [
            StreamId::Network,
            StreamId::Nemesis,
            StreamId::Workload,
            StreamId::Disk(NodeId(0)),
            StreamId::Clocks,
            StreamId::Config,
            StreamId::Node(NodeId(0)),
            StreamId::Node(NodeId(1)),
        ];
        let mut firsts: Vec<u64> = ids.iter().map(|&id| draw(id)).collect();
        firsts.sort_unstable();
        firsts.dedup();
        assert_eq!(firsts.len(), ids.len(), "two streams drew the same first number");
        assert_ne!(
            stream(7, StreamId::Network).next_u64(),
            stream(8, StreamId::Network).next_u64()
        );
    }
}
