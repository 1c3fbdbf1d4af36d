//! The event queue: events ordered by (time, sequence number).
//!
//! The queue orders small fixed-size keys; payloads live in a slab beside them, so
//! ordering never moves a message. The sequence number breaks ties in insertion order,
//! which makes the order total and therefore reproducible.

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

/// Queues up to this long are kept sorted; longer ones become a heap.
const SORTED_MAX: usize = 256;

/// The keys queued. A short queue (the usual case: a few dozen events) is a vector sorted
/// from the latest key to the earliest: a pop takes the last, a push inserts in place
/// after a binary search. Past `SORTED_MAX` keys it turns into a min-heap with four
/// children per node (an ascending array already is one), so a huge queue never pays a
/// long shift per push; it turns back once empty. Keys are unique, so either way they
/// pop in their integer order.
struct Keys {
    keys: Vec<u128>,
    heap: bool,
}

impl Keys {
    fn push(&mut self, key: u128) {
        if !self.heap {
            if self.keys.len() < SORTED_MAX {
                let at = self.keys.partition_point(|&queued| queued > key);
                self.keys.insert(at, key);
                return;
            }
            self.keys.reverse(); // ascending: a valid min-heap
            self.heap = true;
        }
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
        if self.heap { self.keys.first().copied() } else { self.keys.last().copied() }
    }

    fn pop(&mut self) -> Option<u128> {
        let last = self.keys.pop()?;
        if !self.heap {
            return Some(last);
        }
        let Some(&top) = self.keys.first() else {
            self.heap = false; // empty: sorted again
            return Some(last);
        };
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
    keys: Keys,
    slab: Vec<Option<E>>,
    free_slots: Vec<u32>,
    next_seq: u64,
}

impl<E> EventQueue<E> {
    pub(crate) fn new() -> Self {
        EventQueue {
            keys: Keys { keys: Vec::new(), heap: false },
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
        self.keys.push(key(time_ns, seq, slot));
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, E)> {
        let key = self.keys.pop()?;
        let slot = (key as u64 & (SLOTS_MAX as u64 - 1)) as u32;
        let event = self.slab[slot as usize].take().expect("queued slot holds an event");
        self.free_slots.push(slot);
        Some(((key >> 64) as u64, event))
    }

    pub(crate) fn peek_time_ns(&self) -> Option<u64> {
        self.keys.peek().map(|key| (key >> 64) as u64)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
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
    /// pops, sorted and as a heap.
    #[test]
    fn pops_in_the_order_of_a_binary_heap() {
        use rand::{Rng, SeedableRng};
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut queue = EventQueue::new();
        let mut reference = BinaryHeap::new();
        let (mut now, mut seq) = (0u64, 0u64);
        // Each phase grows the queue past `SORTED_MAX` (sorted, then a heap) and drains
        // it (sorted again).
        for _phase in 0..3 {
            let mut was_heap = false;
            for round in 0..3_000 {
                let pushes = if round < 2_000 { rng.random_range(0..4) } else { 0 };
                for _ in 0..pushes {
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
                assert_eq!(queue.len(), reference.len());
                was_heap |= queue.keys.heap;
            }
            assert!(was_heap, "the queue grew past SORTED_MAX");
            while let Some(Reverse(entry)) = reference.pop() {
                assert_eq!(queue.pop(), Some(entry));
                now = entry.0;
            }
            assert_eq!(queue.pop(), None);
            assert!(!queue.keys.heap, "drained to empty: sorted again");
        }
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
