use crate::{Context, NodeId, Process, TimerId};

/// Node 0 pings node 1 `rounds` times; node 1 answers each ping. With a retransmit
/// period, node 0 re-sends a ping that got no answer within one period, so the pair
/// makes progress over a network that drops and duplicates.
pub struct PingPong {
    rounds: u64,
    retransmit_every_ns: Option<u64>,
    next_round: u64,
    progressed: bool,
}

/// What the pair sends each other.
#[derive(Clone, Debug, Hash)]
pub enum PingPongMsg {
    /// Node 0 to node 1: round `.0`'s ping.
    Ping(u64),
    /// Node 1 to node 0: the answer to round `.0`'s ping.
    Pong(u64),
}

impl PingPong {
    /// The process of either node (both run the same). Node 0 sends `rounds` pings;
    /// with `Some(period_ns)` it re-sends a ping that got no answer within one period of
    /// its local time, and with `None` it needs a network that does not drop.
    pub fn new(rounds: u64, retransmit_every_ns: Option<u64>) -> PingPong {
        PingPong { rounds, retransmit_every_ns, next_round: 0, progressed: false }
    }

    /// Rounds node 0 has completed.
    pub fn rounds_done(&self) -> u64 {
        self.next_round
    }
}

impl Process for PingPong {
    type Message = PingPongMsg;
    type Timer = ();

    fn start(&mut self, ctx: &mut Context<'_, Self>) {
        if ctx.node() == NodeId(0) && self.rounds > 0 {
            ctx.send(NodeId(1), PingPongMsg::Ping(0));
            if let Some(every_ns) = self.retransmit_every_ns {
                ctx.set_timer(every_ns, ());
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: PingPongMsg) {
        match msg {
            PingPongMsg::Ping(round) => ctx.send(from, PingPongMsg::Pong(round)),
            PingPongMsg::Pong(round) if round == self.next_round => {
                self.next_round += 1;
                self.progressed = true;
                if self.next_round < self.rounds {
                    ctx.send(from, PingPongMsg::Ping(self.next_round));
                }
            }
            PingPongMsg::Pong(_) => {} // a duplicate or a late answer to a re-sent ping
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _: TimerId, (): ()) {
        if self.next_round >= self.rounds {
            return;
        }
        if !self.progressed {
            ctx.send(NodeId(1), PingPongMsg::Ping(self.next_round));
        }
        self.progressed = false;
        ctx.set_timer(self.retransmit_every_ns.expect("timer set only with a period"), ());
    }
}
