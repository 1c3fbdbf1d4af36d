//! A probe process for the world's tests: it does what the test tells it through
//! `World::with_process`, and logs everything it handles to a log the test keeps, so
//! that the log outlives crashes.

#![allow(dead_code)] // each test file uses a different part

use std::cell::RefCell;
use std::rc::Rc;

use logjam_sim::{Context, NodeId, Process, TimerId, World, WorldConfig};
use rand::RngCore;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Started { node: NodeId, local_ns: u64, disk: Option<Vec<u8>> },
    Message { node: NodeId, local_ns: u64, from: NodeId, value: u64 },
    Timer { node: NodeId, local_ns: u64, tag: u64 },
}

pub type Log = Rc<RefCell<Vec<Seen>>>;

pub struct Probe {
    log: Log,
    /// When set, every timer draws from the node's stream, records the draw, and sets
    /// the next timer this far ahead.
    pub tick_every_ns: Option<u64>,
    pub draws: Vec<u64>,
    pub volatile: u64,
}

impl Probe {
    pub fn send(ctx: &mut Context<'_, Probe>, to: u32, value: u64) {
        ctx.send(NodeId(to), value);
    }
}

impl Process for Probe {
    type Message = u64;
    type Timer = u64;

    fn start(&mut self, ctx: &mut Context<'_, Self>) {
        let disk = ctx.disk().contents("state").map(<[u8]>::to_vec);
        let (node, local_ns) = (ctx.node(), ctx.now_ns());
        self.log.borrow_mut().push(Seen::Started { node, local_ns, disk });
        if let Some(every_ns) = self.tick_every_ns {
            ctx.set_timer(every_ns, 0);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, value: u64) {
        let (node, local_ns) = (ctx.node(), ctx.now_ns());
        self.log.borrow_mut().push(Seen::Message { node, local_ns, from, value });
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _: TimerId, tag: u64) {
        let node = ctx.node();
        let local_ns = ctx.now_ns();
        self.log.borrow_mut().push(Seen::Timer { node, local_ns, tag });
        if let Some(every_ns) = self.tick_every_ns {
            self.draws.push(ctx.rng().next_u64());
            let peer = NodeId((node.0 + 1) % ctx.nodes());
            ctx.send(peer, tag);
            ctx.set_timer(every_ns, tag + 1);
        }
    }
}

/// A world of probes and the log they share.
pub fn probe_world(
    config: &WorldConfig,
    seed: u64,
    tick_every_ns: Option<u64>,
) -> (World<Probe>, Log) {
    let log: Log = Rc::default();
    let shared = log.clone();
    let factory =
        move |_| Probe { log: shared.clone(), tick_every_ns, draws: Vec::new(), volatile: 0 };
    (World::new(config, seed, factory).expect("valid config"), log)
}

/// Values node `to` received from `from`, in arrival order.
pub fn received(log: &Log, from: u32, to: u32) -> Vec<u64> {
    log.borrow()
        .iter()
        .filter_map(|seen| match seen {
            Seen::Message { node, from: f, value, .. }
                if *node == NodeId(to) && *f == NodeId(from) =>
            {
                Some(*value)
            }
            _ => None,
        })
        .collect()
}

/// Makes node `from` send `count` messages numbered from 0 to node `to`, right now.
pub fn blast(world: &mut World<Probe>, from: u32, to: u32, count: u64) {
    world
        .with_process(NodeId(from), |_, ctx| {
            (0..count).for_each(|value| Probe::send(ctx, to, value))
        })
        .expect("sender is up");
}

/// Sends `count` messages from `from` to `to` one at a time, each once the one before
/// arrived, and returns how long each took (clocks must not be skewed).
pub fn delays(world: &mut World<Probe>, from: u32, to: u32, count: u64) -> Vec<u64> {
    let mut delays = Vec::new();
    for value in 0..count {
        let sent_ns = world.now_ns();
        world
            .with_process(NodeId(from), |_, ctx| Probe::send(ctx, to, value))
            .expect("sender is up");
        world.run_to_quiescence();
        let arrived_ns = world.now_ns();
        delays.push(arrived_ns - sent_ns);
    }
    delays
}
