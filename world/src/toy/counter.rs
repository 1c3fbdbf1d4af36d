use rand::Rng;

use crate::{Context, NodeId, Process, TimerId};

/// A grow-only counter replicated by gossip (a G-counter CRDT). Each node counts its
/// own increments, writes its whole view to disk (synchronously, `O_SYNC`-style) before
/// acknowledging, and every gossip
/// period sends its view to one random peer, which keeps the element-wise maximum.
///
/// What it promises, under any network and process fault: an acknowledged increment is
/// never lost, no node believes in an increment that was never made, and once faults
/// heal every node converges to the same view.
pub struct GossipCounter {
    gossip_every_ns: u64,
    view: Vec<u64>,
    durable: bool,
}

/// What the counters send each other.
#[derive(Clone, Debug, Hash)]
pub enum CounterMsg {
    /// The sender's whole view: the increments made at each node, by node index.
    Gossip(Vec<u64>),
}

const VIEW_FILE: &str = "counter.view";

impl GossipCounter {
    /// `durable: false` skips the disk (a deliberately broken configuration: a crash
    /// then loses acknowledged increments, and the checker must say so).
    pub fn new(gossip_every_ns: u64, durable: bool) -> GossipCounter {
        assert!(gossip_every_ns > 0, "gossip period must be above zero");
        GossipCounter { gossip_every_ns, view: Vec::new(), durable }
    }

    /// This node's view: increments made at each node, as far as it knows.
    pub fn view(&self) -> &[u64] {
        &self.view
    }

    /// A client's increment at this node. Returns the node's new own count once durable.
    pub fn increment(&mut self, ctx: &mut Context<'_, Self>) -> u64 {
        let me = ctx.node().index();
        self.view[me] += 1;
        self.persist(ctx);
        self.view[me]
    }

    fn persist(&self, ctx: &mut Context<'_, Self>) {
        if self.durable {
            let bytes: Vec<u8> = self.view.iter().flat_map(|count| count.to_le_bytes()).collect();
            ctx.disk().put_durable(VIEW_FILE, &bytes);
        }
    }

    fn jittered_period_ns(&self, ctx: &mut Context<'_, Self>) -> u64 {
        // Jitter keeps the nodes from gossiping in lockstep.
        let half = self.gossip_every_ns / 2;
        half + ctx.rng().random_range(0..=self.gossip_every_ns)
    }
}

impl Process for GossipCounter {
    type Message = CounterMsg;
    type Timer = ();

    fn start(&mut self, ctx: &mut Context<'_, Self>) {
        let nodes = ctx.nodes() as usize;
        self.view = match ctx.disk().contents(VIEW_FILE) {
            Some(bytes) => {
                assert_eq!(bytes.len(), nodes * 8, "counter file has the wrong size");
                bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
            }
            None => vec![0; nodes],
        };
        let period_ns = self.jittered_period_ns(ctx);
        ctx.set_timer(period_ns, ());
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, _: NodeId, msg: CounterMsg) {
        let CounterMsg::Gossip(theirs) = msg;
        assert_eq!(theirs.len(), self.view.len(), "gossip from a world of another size");
        let mut changed = false;
        for (mine, theirs) in self.view.iter_mut().zip(theirs) {
            if theirs > *mine {
                *mine = theirs;
                changed = true;
            }
        }
        if changed {
            self.persist(ctx);
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _: TimerId, (): ()) {
        let nodes = ctx.nodes();
        if nodes > 1 {
            let offset = ctx.rng().random_range(1..nodes);
            let peer = NodeId((ctx.node().0 + offset) % nodes);
            ctx.send(peer, CounterMsg::Gossip(self.view.clone()));
        }
        let period_ns = self.jittered_period_ns(ctx);
        ctx.set_timer(period_ns, ());
    }
}
