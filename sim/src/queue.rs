//! The event queue: events ordered by (time, sequence number).
//!
//! The heap holds small fixed-size keys; payloads live in a slab beside it, so sifting
//! never moves a message. The sequence number breaks ties in insertion order, which makes
//! the order total and therefore reproducible.

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

/// A min-heap of keys with four children per node: half the depth of a binary heap, and
/// a node's children side by side in one cache line. Keys are unique, so the order it
/// pops them in is their integer order, as any heap's.
struct QuaternaryHeap {
    keys: Vec<u128>,
}

impl QuaternaryHeap {
    fn push(&mut self, key: u128) {
        let mut at = self.keys.len();
        self.keys.push(key);
        while at > 0 {
            let parent = (at - 1) / 4;
            if self.keys[parent] <= key {
                break;
            }
            self.keys[at] = self.keys[parent];
            at = parent;
        }
        self.keys[at] = key;
    }

    fn peek(&self) -> Option<u128> {
        self.keys.first().copied()
    }

    fn pop(&mut self) -> Option<u128> {
        let last = self.keys.pop()?;
        let Some(&top) = self.keys.first() else { return Some(last) };
        // Sift the last key down from the root's hole.
        let len = self.keys.len();
        let mut at = 0;
        loop {
            let first = 4 * at + 1;
            if first >= len {
                break;
            }
            let end = (first + 4).min(len);
            let mut least = first;
            for child in first + 1..end {
                if self.keys[child] < self.keys[least] {
                    least = child;
                }
            }
            if self.keys[least] >= last {
                break;
            }
            self.keys[at] = self.keys[least];
            at = least;
        }
        self.keys[at] = last;
        Some(top)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
    }
}

pub(crate) struct EventQueue<E> {
    heap: QuaternaryHeap,
    slab: Vec<Option<E>>,
    free_slots: Vec<u32>,
    next_seq: u64,
}

impl<E> EventQueue<E> {
    pub(crate) fn new() -> Self {
        EventQueue {
            heap: QuaternaryHeap { keys: Vec::new() },
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
        self.heap.push(key(time_ns, seq, slot));
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, E)> {
        let key = self.heap.pop()?;
        let slot = (key as u64 & (SLOTS_MAX as u64 - 1)) as u32;
        let event = self.slab[slot as usize].take().expect("queued slot holds an event");
        self.free_slots.push(slot);
        Some(((key >> 64) as u64, event))
    }

    pub(crate) fn peek_time_ns(&self) -> Option<u64> {
        self.heap.peek().map(|key| (key >> 64) as u64)
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

    /// The same order as std's binary heap of (time, sequence) under random pushes and
    /// pops.
    #[test]
    fn pops_in_the_order_of_a_binary_heap() {
        use rand::{Rng, SeedableRng};
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut queue = EventQueue::new();
        let mut reference = BinaryHeap::new();
        let (mut now, mut seq) = (0u64, 0u64);
        for _ in 0..20_000 {
            for _ in 0..rng.random_range(0..4) {
                let at = now
                    + [0, 1, rng.random_range(0..1_000), rng.random_range(0..1 << 40)]
                        [rng.random_range(0..4)];
                queue.push(at, seq);
                reference.push(Reverse((at, seq)));
                seq += 1;
            }
            assert_eq!(queue.peek_time_ns(), reference.peek().map(|Reverse((at, _))| *at));
            let popped = queue.pop();
            assert_eq!(popped, reference.pop().map(|Reverse(entry)| entry));
            if let Some((at, _)) = popped {
                now = at;
            }
        }
        assert_eq!(queue.len(), reference.len());
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
