//! The simulated network: per-link latency, random drop and duplication, partitions and
//! clogged links. Reordering is not a separate knob: it arises from latency variance,
//! exactly as on a real network, and is counted when it happens.

use rand::{Rng, RngCore};
use xxhash_rust::xxh3::xxh3_64;

use crate::LatencyShape;
use crate::NodeId;
use crate::config::ConfigError;
use crate::rng::SimRng;

/// How long a message takes on a link: drawn from `[min_ns, max_ns]` by `shape`
/// (uniform unless asked; see `LatencyShape` for the others), plus, with
/// `tail_probability`, an extra delay uniform in `[0, tail_max_ns]` (the slow tail).
#[derive(Clone, Debug, PartialEq)]
pub struct Latency {
    /// The shortest delay, in ns.
    pub min_ns: u64,
    /// The longest delay before the tail, in ns, for the uniform shape; for the others
    /// the scale of the delay above `min_ns`, which a draw can exceed.
    pub max_ns: u64,
    /// How likely, in `[0, 1]`, a message is to take the slow tail as well.
    pub tail_probability: f64,
    /// The longest extra delay the slow tail adds, in ns.
    pub tail_max_ns: u64,
    /// How the delay is distributed from `min_ns` on.
    pub shape: LatencyShape,
}

impl Latency {
    /// Every message takes exactly `latency_ns`: no reordering on the link.
    pub fn fixed(latency_ns: u64) -> Latency {
        Latency::uniform(latency_ns, latency_ns)
    }

    /// Every message takes a delay uniform in `[min_ns, max_ns]`, with no slow tail.
    pub fn uniform(min_ns: u64, max_ns: u64) -> Latency {
        Latency {
            min_ns,
            max_ns,
            tail_probability: 0.0,
            tail_max_ns: 0,
            shape: LatencyShape::Uniform,
        }
    }

    fn validate(&self, what: &str) -> Result<(), ConfigError> {
        check_range(&format!("{what}.latency"), self.min_ns, self.max_ns)?;
        check_probability(&format!("{what}.tail_probability"), self.tail_probability)
    }
}

/// The network of a world.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// Latency of every link without an override.
    pub latency: Latency,
    /// Per-link overrides, directed: `(from, to, latency)`.
    pub link_latency: Vec<(NodeId, NodeId, Latency)>,
    /// How likely, in `[0, 1]`, the network is to drop a message as it is sent
    /// (`DropReason::Random`).
    pub drop_probability: f64,
    /// How likely, in `[0, 1]`, the network is to deliver a second copy of a message
    /// (each copy draws its own latency).
    pub duplicate_probability: f64,
    /// Messages travel on connections, as over TCP: a crash of either end or a cut of
    /// the link closes the connection, and what was in flight on it is dropped instead
    /// of reaching a later incarnation (or the far side after a heal). Off, late
    /// messages still arrive: a harsher world, which a protocol must survive too.
    pub connections: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            latency: Latency::uniform(100_000, 1_000_000),
            link_latency: Vec::new(),
            drop_probability: 0.0,
            duplicate_probability: 0.0,
            connections: false,
        }
    }
}

impl NetworkConfig {
    pub(crate) fn validate(&self, nodes: u32) -> Result<(), ConfigError> {
        self.latency.validate("network")?;
        for (from, to, latency) in &self.link_latency {
            let what = format!("network.link_latency[{from}->{to}]");
            check_node(&what, *from, nodes)?;
            check_node(&what, *to, nodes)?;
            latency.validate(&what)?;
        }
        check_probability("network.drop_probability", self.drop_probability)?;
        check_probability("network.duplicate_probability", self.duplicate_probability)
    }
}

pub(crate) fn check_probability(what: &str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Probability { what: what.to_owned(), value })
    }
}

pub(crate) fn check_range(what: &str, min: u64, max: u64) -> Result<(), ConfigError> {
    if min <= max {
        Ok(())
    } else {
        Err(ConfigError::RangeUpsideDown { what: what.to_owned(), min, max })
    }
}

pub(crate) fn check_node(what: &str, node: NodeId, nodes: u32) -> Result<(), ConfigError> {
    if node.0 < nodes {
        Ok(())
    } else {
        Err(ConfigError::UnknownNode { what: what.to_owned(), node, nodes })
    }
}

/// A probability turned into a threshold on one `u64` draw: no floating point on the
/// delivery path, and no draw at all when the answer cannot depend on it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chance {
    threshold: u64,
    always: bool,
}

impl Chance {
    pub(crate) fn new(probability: f64) -> Chance {
        debug_assert!((0.0..=1.0).contains(&probability));
        // 2^64 as f64 is exact; the product rounds down, so p < 1 never becomes "always".
        let threshold = (probability * 18_446_744_073_709_551_616.0) as u64;
        Chance { threshold, always: probability >= 1.0 }
    }

    #[inline]
    pub(crate) fn happens(self, rng: &mut SimRng) -> bool {
        if self.always {
            true
        } else if self.threshold == 0 {
            false
        } else {
            rng.next_u64() < self.threshold
        }
    }

    pub(crate) fn parts_per_million(self) -> u32 {
        if self.always {
            1_000_000
        } else {
            ((u128::from(self.threshold) * 1_000_000 + (1 << 63)) >> 64) as u32
        }
    }
}

#[derive(Clone, Debug)]
struct Link {
    latency: Latency,
    tail: Chance,
    cut: bool,
    clogged_until_ns: u64,
    /// Id of the newest message delivered on this link, plus one (0: none yet).
    delivered_msg_id_end: u64,
    /// The link's own loss (a lossy link, a burst): until when, and how likely.
    loss_until_ns: u64,
    loss: Chance,
    /// Bumped whenever the link's connection closes (a crash of either end, a cut).
    connection: u32,
}

/// The network's live state.
pub(crate) struct Network {
    nodes: u32,
    links: Vec<Link>,
    pub(crate) drop: Chance,
    pub(crate) duplicate: Chance,
    pub(crate) connections: bool,
    pub(crate) rng: SimRng,
}

impl Network {
    pub(crate) fn new(config: &NetworkConfig, nodes: u32, rng: SimRng) -> Network {
        let link = Link {
            tail: Chance::new(config.latency.tail_probability),
            latency: config.latency.clone(),
            cut: false,
            clogged_until_ns: 0,
            delivered_msg_id_end: 0,
            loss_until_ns: 0,
            loss: Chance::new(0.0),
            connection: 0,
        };
        let mut links = vec![link; (nodes as usize) * (nodes as usize)];
        for (from, to, latency) in &config.link_latency {
            let link = &mut links[from.index() * nodes as usize + to.index()];
            link.latency = latency.clone();
            link.tail = Chance::new(latency.tail_probability);
        }
        Network {
            nodes,
            links,
            drop: Chance::new(config.drop_probability),
            duplicate: Chance::new(config.duplicate_probability),
            connections: config.connections,
            rng,
        }
    }

    #[inline]
    fn link(&self, from: NodeId, to: NodeId) -> &Link {
        &self.links[from.index() * self.nodes as usize + to.index()]
    }

    #[inline]
    fn link_mut(&mut self, from: NodeId, to: NodeId) -> &mut Link {
        &mut self.links[from.index() * self.nodes as usize + to.index()]
    }

    #[inline]
    pub(crate) fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.link(from, to).cut
    }

    pub(crate) fn clogged_until_ns(&self, from: NodeId, to: NodeId) -> u64 {
        self.link(from, to).clogged_until_ns
    }

    /// Draws the latency of one message on the link.
    #[inline]
    pub(crate) fn sample_latency_ns(&mut self, from: NodeId, to: NodeId) -> u64 {
        let index = from.index() * self.nodes as usize + to.index();
        let link = &self.links[index];
        let (min_ns, max_ns, tail, tail_max_ns) =
            (link.latency.min_ns, link.latency.max_ns, link.tail, link.latency.tail_max_ns);
        let mut latency_ns = match link.latency.shape {
            _ if min_ns == max_ns => min_ns,
            LatencyShape::Uniform => self.rng.random_range(min_ns..=max_ns),
            shape => min_ns + shape.delay_ns(max_ns - min_ns, self.rng.random::<u32>()),
        };
        if tail.happens(&mut self.rng) {
            latency_ns += self.rng.random_range(0..=tail_max_ns);
        }
        latency_ns
    }

    /// Notes a delivery; true when it overtook a message sent earlier on the same link.
    #[inline]
    pub(crate) fn note_delivery(&mut self, from: NodeId, to: NodeId, msg_id: u64) -> bool {
        let link = self.link_mut(from, to);
        if msg_id < link.delivered_msg_id_end.saturating_sub(1) {
            true
        } else {
            link.delivered_msg_id_end = msg_id + 1;
            false
        }
    }

    pub(crate) fn set_cut(&mut self, from: NodeId, to: NodeId, cut: bool) {
        if from != to {
            let link = self.link_mut(from, to);
            if cut && !link.cut {
                link.connection = link.connection.wrapping_add(1);
            }
            link.cut = cut;
        }
    }

    pub(crate) fn heal(&mut self) {
        for link in &mut self.links {
            link.cut = false;
            link.clogged_until_ns = 0;
            link.loss_until_ns = 0;
        }
    }

    /// The link loses each message sent on it with `loss` until `until_ns`.
    pub(crate) fn set_loss(&mut self, from: NodeId, to: NodeId, loss: Chance, until_ns: u64) {
        let link = self.link_mut(from, to);
        link.loss = loss;
        link.loss_until_ns = until_ns;
    }

    /// Whether the link's own loss takes a message sent now (a draw only while the
    /// link is lossy and the loss is not certain).
    #[inline]
    pub(crate) fn link_loses(&mut self, from: NodeId, to: NodeId, now_ns: u64) -> bool {
        let index = from.index() * self.nodes as usize + to.index();
        let link = &self.links[index];
        link.loss_until_ns > now_ns && link.loss.happens(&mut self.rng)
    }

    /// Closes the connections of every link to and from `node` (it crashed).
    pub(crate) fn close_connections(&mut self, node: NodeId) {
        for other in 0..self.nodes {
            for (from, to) in [(node, NodeId(other)), (NodeId(other), node)] {
                let link = self.link_mut(from, to);
                link.connection = link.connection.wrapping_add(1);
            }
        }
    }

    /// The link's connection now (compare at delivery with the one at send).
    #[inline]
    pub(crate) fn connection(&self, from: NodeId, to: NodeId) -> u32 {
        self.link(from, to).connection
    }

    pub(crate) fn clog(&mut self, from: NodeId, to: NodeId, until_ns: u64) {
        let link = self.link_mut(from, to);
        link.clogged_until_ns = link.clogged_until_ns.max(until_ns);
    }

    pub(crate) fn links_cut(&self) -> u32 {
        self.links.iter().filter(|link| link.cut).count() as u32
    }

    /// A hash of exactly which links are cut, for the trace.
    pub(crate) fn links_digest(&self) -> u64 {
        let bits: Vec<u8> = self.links.iter().map(|link| u8::from(link.cut)).collect();
        xxh3_64(&bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{StreamId, stream};

    #[test]
    fn chance_matches_its_probability() {
        let mut rng = stream(1, StreamId::Network);
        for probability in [0.0, 0.01, 0.3, 0.5, 0.99, 1.0] {
            let chance = Chance::new(probability);
            let hits = (0..100_000).filter(|_| chance.happens(&mut rng)).count();
            let expected = probability * 100_000.0;
            assert!((hits as f64 - expected).abs() <= 1_000.0, "p={probability}: {hits} hits");
            assert_eq!(chance.parts_per_million(), (probability * 1e6).round() as u32);
        }
    }

    #[test]
    fn latency_stays_in_its_range() {
        let config = NetworkConfig {
            latency: Latency {
                min_ns: 10,
                max_ns: 20,
                tail_probability: 0.1,
                tail_max_ns: 1000,
                shape: LatencyShape::Uniform,
            },
            ..NetworkConfig::default()
        };
        let mut network = Network::new(&config, 2, stream(3, StreamId::Network));
        let samples: Vec<u64> =
            (0..10_000).map(|_| network.sample_latency_ns(NodeId(0), NodeId(1))).collect();
        assert!(samples.iter().all(|&ns| (10..=1020).contains(&ns)));
        let in_tail = samples.iter().filter(|&&ns| ns > 20).count();
        assert!((700..1300).contains(&in_tail), "tail taken {in_tail} times of 10000");
        assert!(samples.contains(&10) && samples.contains(&20));
    }
}
