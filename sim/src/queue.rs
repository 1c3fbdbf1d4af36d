//! The event queue: events ordered by (time, sequence number).
//!
//! The heap holds small fixed-size keys; payloads live in a slab beside it, so sifting
//! never moves a message. The sequence number breaks ties in insertion order, which makes
//! the order total and therefore reproducible.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Bits of a key that hold the slot; the sequence number takes the 40 above them.
const SLOT_BITS: u32 = 24;
const SLOTS_MAX: usize = 1 << SLOT_BITS;
const SEQ_MAX: u64 = 1 << (64 - SLOT_BITS);

/// A key packed into one integer: time in the high 64 bits, then the sequence number,
/// then the slot. Sequence numbers are unique, so the slot never decides the order:
/// integer order is (time, sequence) order, compared in one go.
fn key(time_ns: u64, seq: u64, slot: u32) -> u128 {
    (u128::from(time_ns) << 64) | u128::from((seq << SLOT_BITS) | u64::from(slot))
}

pub(crate) struct EventQueue<E> {
    /// Reversed: BinaryHeap is a max-heap and we want the earliest event first.
    heap: BinaryHeap<Reverse<u128>>,
    slab: Vec<Option<E>>,
    free_slots: Vec<u32>,
    next_seq: u64,
}

impl<E> EventQueue<E> {
    pub(crate) fn new() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            slab: Vec::new(),
            free_slots: Vec::new(),
            next_seq: 0,
        }
    }

    pub(crate) fn push(&mut self, time_ns: u64, event: E) {
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                debug_assert!(self.slab[slot as usize].is_none());
                self.slab[slot as usize] = Some(event);
                slot
            }
            None => {
                assert!(self.slab.len() < SLOTS_MAX, "more than {SLOTS_MAX} events queued");
                let slot = self.slab.len() as u32;
                self.slab.push(Some(event));
                slot
            }
        };
        let seq = self.next_seq;
        assert!(seq < SEQ_MAX, "more than {SEQ_MAX} events queued in one run");
        self.next_seq += 1;
        self.heap.push(Reverse(key(time_ns, seq, slot)));
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, E)> {
        let Reverse(key) = self.heap.pop()?;
        let slot = (key as u64 & (SLOTS_MAX as u64 - 1)) as u32;
        let event = self.slab[slot as usize].take().expect("queued slot holds an event");
        self.free_slots.push(slot);
        Some(((key >> 64) as u64, event))
    }

    pub(crate) fn peek_time_ns(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(key)| (key >> 64) as u64)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_insertion_order() {
        let mut queue = EventQueue::new();
        for (time_ns, name) in [(5, "c"), (1, "a"), (5, "d"), (3, "b"), (5, "e"), (0, "first")] {
            queue.push(time_ns, name);
        }
        let order: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(order, [(0, "first"), (1, "a"), (3, "b"), (5, "c"), (5, "d"), (5, "e")]);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn reuses_slots() {
        let mut queue = EventQueue::new();
        for round in 0..100u64 {
            queue.push(round, round);
            queue.push(round, round + 1000);
            assert_eq!(queue.pop(), Some((round, round)));
            assert_eq!(queue.pop(), Some((round, round + 1000)));
        }
        assert!(queue.slab.len() <= 2, "slots were not reused: {}", queue.slab.len());
    }
}
