//! The event queue: events ordered by (time, sequence number).
//!
//! The heap holds small fixed-size keys; payloads live in a slab beside it, so sifting
//! never moves a message. The sequence number breaks ties in insertion order, which makes
//! the order total and therefore reproducible.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    time_ns: u64,
    seq: u64,
    slot: u32,
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest event first.
        (other.time_ns, other.seq).cmp(&(self.time_ns, self.seq))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub(crate) struct EventQueue<E> {
    heap: BinaryHeap<Key>,
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
                let slot = u32::try_from(self.slab.len()).expect("event slab exceeds u32 slots");
                self.slab.push(Some(event));
                slot
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Key { time_ns, seq, slot });
    }

    /// The earliest event and its time.
    pub(crate) fn pop(&mut self) -> Option<(u64, E)> {
        let key = self.heap.pop()?;
        let event = self.slab[key.slot as usize].take().expect("queued slot holds an event");
        self.free_slots.push(key.slot);
        Some((key.time_ns, event))
    }

    pub(crate) fn peek_time_ns(&self) -> Option<u64> {
        self.heap.peek().map(|key| key.time_ns)
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
