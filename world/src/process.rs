//! The sans-IO process: what runs on a node. The world hands it inputs (boot, a
//! message, a timer) with a context, and the process acts only through that context:
//! the local clock, sending, timers, its own random stream and its disk.

use std::fmt;
use std::hash::Hash;

use crate::disk::{SyncResult, SyncTicket};

use crate::NodeId;
use crate::clock::Clock;
use crate::disk::SimDisk;
use crate::rng::SimRng;
use crate::world::Core;

/// A state machine run on a node of the world.
///
/// A crash drops the value; a restart builds a new one through the world's factory and
/// calls [`Process::start`], which must recover from what the node's disk holds.
pub trait Process: Sized {
    /// What nodes send each other. Hashed into the trace (with a fixed hasher), so a
    /// process whose messages differ between two runs of one seed is caught.
    type Message: Clone + Hash + fmt::Debug;
    /// What a timer carries back to its process when it fires.
    type Timer: fmt::Debug;

    /// Boot, or recover after a crash from what the disk durably holds.
    fn start(&mut self, ctx: &mut Context<'_, Self>);
    /// A message from `from` arrived. Every copy the network delivers arrives: a
    /// process on a network that duplicates sees some messages twice.
    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Self::Message);
    /// A timer set through `ctx.set_timer` fired (never one cancelled, or set before a
    /// crash); `payload` is what it was set with.
    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: TimerId, payload: Self::Timer);
    /// A sync asked for earlier (through `ctx.disk()`) completed, or failed: then the
    /// dirty data it covered is gone and a later sync proves nothing about it.
    fn on_synced(&mut self, ctx: &mut Context<'_, Self>, ticket: SyncTicket, result: SyncResult) {
        let _ = (ctx, ticket, result);
    }
    /// An operator's command (`Fault::Operator`): the process says what `action` means
    /// (the log cluster's controller moves the leadership of partition `action`); by
    /// default none.
    fn on_operator(&mut self, ctx: &mut Context<'_, Self>, action: u64) {
        let _ = (ctx, action);
    }
    /// A message in words, for the kept trace (`replay --trace`, the timeline): its
    /// type and key fields. Asked only while the trace is kept, and never hashed (the
    /// digest is the message's identity). By default its `Debug`, cut to
    /// `DESCRIBED_CHARS_MAX` characters.
    fn describe(message: &Self::Message) -> String {
        let mut text = format!("{message:?}");
        if let Some((cut, _)) = text.char_indices().nth(DESCRIBED_CHARS_MAX) {
            text.truncate(cut);
            text.push('…');
        }
        text
    }
}

/// How long the default `Process::describe` lets a message's `Debug` run, in chars.
pub const DESCRIBED_CHARS_MAX: usize = 120;

/// Names a pending timer. Stale once it fired, was cancelled, or its node crashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

impl TimerId {
    pub(crate) fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }
}

impl fmt::Display for TimerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}.{}", self.index, self.generation)
    }
}

/// A node's pending timers. Slots are reused; a generation per slot makes old ids stale.
pub(crate) struct TimerSlab<T> {
    slots: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
    live: u64,
}

impl<T> TimerSlab<T> {
    pub(crate) fn new() -> Self {
        TimerSlab { slots: Vec::new(), free: Vec::new(), live: 0 }
    }

    pub(crate) fn live(&self) -> u64 {
        self.live
    }

    pub(crate) fn insert(&mut self, payload: T) -> TimerId {
        self.live += 1;
        match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                debug_assert!(slot.1.is_none());
                slot.1 = Some(payload);
                TimerId { index, generation: slot.0 }
            }
            None => {
                let index = u32::try_from(self.slots.len()).expect("timer slots fit u32");
                self.slots.push((0, Some(payload)));
                TimerId { index, generation: 0 }
            }
        }
    }

    /// Takes the payload of a pending timer (to fire or cancel it); `None` if stale.
    pub(crate) fn take(&mut self, id: TimerId) -> Option<T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.0 != id.generation {
            return None;
        }
        let payload = slot.1.take()?;
        slot.0 = slot.0.wrapping_add(1);
        self.free.push(id.index);
        self.live -= 1;
        Some(payload)
    }

    /// Voids every pending timer (the process crashed).
    pub(crate) fn clear(&mut self) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if slot.1.take().is_some() {
                slot.0 = slot.0.wrapping_add(1);
                self.free.push(index as u32);
            }
        }
        self.live = 0;
    }
}

/// What a process may touch while it handles one input.
pub struct Context<'a, P: Process> {
    pub(crate) node: NodeId,
    pub(crate) now_ns: u64,
    pub(crate) clock: &'a Clock,
    pub(crate) rng: &'a mut SimRng,
    pub(crate) disk: &'a mut SimDisk,
    pub(crate) timers: &'a mut TimerSlab<P::Timer>,
    pub(crate) core: &'a mut Core<P>,
}

impl<P: Process> Context<'_, P> {
    /// The node this process runs on.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// How many nodes the world has (ids `0..nodes`).
    pub fn nodes(&self) -> u32 {
        self.core.nodes
    }

    /// The node's local clock: skewed and drifting, never going backwards.
    pub fn now_ns(&self) -> u64 {
        self.clock.local_ns(self.now_ns)
    }

    /// Puts a message on the wire. The network decides whether, when and how often it
    /// arrives.
    pub fn send(&mut self, to: NodeId, msg: P::Message) {
        assert!(to.0 < self.core.nodes, "{} sent to {to}, which does not exist", self.node);
        self.core.send(self.now_ns, self.node, to, msg);
    }

    /// Sets a timer that fires after `after_ns` of the node's local time.
    pub fn set_timer(&mut self, after_ns: u64, payload: P::Timer) -> TimerId {
        let id = self.timers.insert(payload);
        let deadline_ns = self.clock.deadline_ns(self.now_ns, after_ns);
        self.core.schedule_timer(deadline_ns, self.node, id, self.timers.live());
        id
    }

    /// Cancels a pending timer; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.take(id).is_some()
    }

    /// Stops this process as if it exited: the world crashes the node once the handler
    /// returns (its disk keeps what was synced), and a supervisor starts it again after
    /// `WorldConfig::restart_after_halt_ns`. A node that cannot trust its storage any
    /// more does this.
    pub fn halt(&mut self) {
        self.core.halt_requested = true;
    }

    /// Simulated time, the same for every node. Only for harness code that records what
    /// happened (histories); the system under test reads `now_ns`, its own clock.
    pub fn global_now_ns(&self) -> u64 {
        self.now_ns
    }

    /// This node's random stream.
    pub fn rng(&mut self) -> &mut SimRng {
        self.rng
    }

    /// This node's disk (a `Storage`): what is synced here survives a crash.
    pub fn disk(&mut self) -> &mut SimDisk {
        self.disk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_ids_go_stale() {
        let mut slab = TimerSlab::new();
        let first = slab.insert("a");
        assert_eq!(slab.take(first), Some("a"));
        assert_eq!(slab.take(first), None, "fired twice");
        let reused = slab.insert("b");
        assert_eq!(slab.take(first), None, "old id took the reused slot");
        let other = slab.insert("c");
        slab.clear();
        assert_eq!((slab.take(reused), slab.take(other), slab.live()), (None, None, 0));
    }
}
