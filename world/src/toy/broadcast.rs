use crate::{Context, NodeId, Process, TimerId};

/// All-to-all broadcast in rounds: every node sends round `r` to every other node, and
/// moves to round `r + 1` once it has heard round `r` from all of them. Needs a network
/// that does not drop.
pub struct Broadcast {
    rounds: u64,
    round: u64,
    /// Messages heard for the current round and the next (a peer can be one ahead).
    heard: [u32; 2],
}

/// A node's broadcast of the round it is in.
#[derive(Clone, Debug, Hash)]
pub struct RoundMsg(pub u64);

impl Broadcast {
    /// A node that takes part in `rounds` rounds (give every node the same number).
    pub fn new(rounds: u64) -> Broadcast {
        Broadcast { rounds, round: 0, heard: [0; 2] }
    }

    /// Rounds this node has completed.
    pub fn rounds_done(&self) -> u64 {
        self.round
    }

    fn broadcast(&self, ctx: &mut Context<'_, Self>) {
        for peer in 0..ctx.nodes() {
            if NodeId(peer) != ctx.node() {
                ctx.send(NodeId(peer), RoundMsg(self.round));
            }
        }
    }
}

impl Process for Broadcast {
    type Message = RoundMsg;
    type Timer = ();

    fn start(&mut self, ctx: &mut Context<'_, Self>) {
        if self.rounds > 0 {
            self.broadcast(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, _: NodeId, RoundMsg(round): RoundMsg) {
        assert!(
            round == self.round || round == self.round + 1,
            "round {round} heard at round {}: a peer ran ahead",
            self.round
        );
        self.heard[(round % 2) as usize] += 1;
        let peers = ctx.nodes() - 1;
        if self.heard[(self.round % 2) as usize] == peers {
            self.heard[(self.round % 2) as usize] = 0;
            self.round += 1;
            if self.round < self.rounds {
                self.broadcast(ctx);
            }
        }
    }

    fn on_timer(&mut self, _: &mut Context<'_, Self>, _: TimerId, (): ()) {}
}
