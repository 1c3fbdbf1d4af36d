//! `ValueIndex`: from (partition, value) to the send that sent it, in O(1).
//!
//! Every record read must be traced to its send, millions of times for a large
//! history, so this is the checkers' hottest lookup, and at that size its cost is cache
//! misses. It is a small open-addressing table hashed with xxh3 whose slots carry the
//! partition and, for values of up to `INLINE_BYTES_MAX` bytes (the usual case), the
//! value itself: a probe then compares in the slot, without chasing the send's event
//! and string across memory. Longer values are compared through `key_of`.
//!
//! It is only ever probed, never iterated, so no hash order can leak into a verdict
//! (the reason std's hash maps are banned), and it is a pure function of its inserts.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Values this long or shorter are kept in the slot.
const INLINE_BYTES_MAX: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    /// `position + 1`; 0 marks an empty slot.
    position: u32,
    partition: u32,
    /// The value's length in bytes, if it is inline.
    inline_len: Option<u8>,
    inline: [u8; INLINE_BYTES_MAX],
}

const EMPTY: Slot =
    Slot { position: 0, partition: 0, inline_len: None, inline: [0; INLINE_BYTES_MAX] };

/// Maps (partition, value) to a position in a list of sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ValueIndex {
    slots: Vec<Slot>,
    mask: usize,
    len: usize,
}

fn hash(partition: u32, value: &str) -> u64 {
    xxh3_64_with_seed(value.as_bytes(), u64::from(partition))
}

impl Slot {
    fn holds<'a>(
        &self,
        partition: u32,
        value: &str,
        key_of: &impl Fn(u32) -> (u32, &'a str),
    ) -> bool {
        if self.partition != partition {
            return false;
        }
        match self.inline_len {
            Some(len) => &self.inline[..len as usize] == value.as_bytes(),
            None => value.len() > INLINE_BYTES_MAX && key_of(self.position - 1).1 == value,
        }
    }
}

impl ValueIndex {
    /// An index with room for `count` entries at a load of at most one half.
    pub(crate) fn with_capacity(count: usize) -> ValueIndex {
        let slots = (count.max(1) * 2).next_power_of_two();
        ValueIndex { slots: vec![EMPTY; slots], mask: slots - 1, len: 0 }
    }

    /// Adds `position` under (partition, value), unless the pair is already there:
    /// then returns the position that holds it. `key_of` reads back a position's pair.
    pub(crate) fn insert<'a>(
        &mut self,
        partition: u32,
        value: &str,
        position: u32,
        key_of: impl Fn(u32) -> (u32, &'a str),
    ) -> Result<(), u32> {
        debug_assert!(position < u32::MAX, "positions fit below the empty marker");
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow(&key_of);
        }
        match self.get(partition, value, &key_of) {
            Some(held) => Err(held),
            None => {
                self.place(partition, value, position);
                Ok(())
            }
        }
    }

    /// Writes an entry known to be absent into the first free slot of its probe run.
    fn place(&mut self, partition: u32, value: &str, position: u32) {
        let mut slot = self.start(partition, value);
        while self.slots[slot].position != 0 {
            slot = (slot + 1) & self.mask;
        }
        let mut inline = [0; INLINE_BYTES_MAX];
        let inline_len = (value.len() <= INLINE_BYTES_MAX).then(|| {
            inline[..value.len()].copy_from_slice(value.as_bytes());
            value.len() as u8
        });
        self.slots[slot] = Slot { position: position + 1, partition, inline_len, inline };
        self.len += 1;
    }

    /// The position stored under (partition, value), if any.
    pub(crate) fn get<'a>(
        &self,
        partition: u32,
        value: &str,
        key_of: &impl Fn(u32) -> (u32, &'a str),
    ) -> Option<u32> {
        let mut slot = self.start(partition, value);
        loop {
            let held = &self.slots[slot];
            if held.position == 0 {
                return None;
            }
            if held.holds(partition, value, key_of) {
                return Some(held.position - 1);
            }
            slot = (slot + 1) & self.mask;
        }
    }

    fn start(&self, partition: u32, value: &str) -> usize {
        (hash(partition, value) as usize) & self.mask
    }

    /// Doubles the table, keeping the load at most one half.
    fn grow<'a>(&mut self, key_of: &impl Fn(u32) -> (u32, &'a str)) {
        let mut grown = ValueIndex::with_capacity(self.slots.len());
        for held in self.slots.iter().filter(|slot| slot.position != 0) {
            let (partition, value) = key_of(held.position - 1);
            debug_assert_eq!(partition, held.partition);
            grown.place(partition, value, held.position - 1);
        }
        *self = grown;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_inserted_and_refuses_a_second_copy() {
        // Short values sit in the slot, long ones are compared through `key_of`.
        let keys: Vec<(u32, String)> = (0..1000u32)
            .map(|n| {
                (
                    n % 3,
                    if n % 2 == 0 {
                        format!("v{}", n / 3)
                    } else {
                        format!("a-long-value-{:08}", n / 3)
                    },
                )
            })
            .collect();
        let key_of = |position: u32| {
            let (partition, value) = &keys[position as usize];
            (*partition, value.as_str())
        };
        let mut index = ValueIndex::with_capacity(0);
        for (position, (partition, value)) in keys.iter().enumerate() {
            assert_eq!(index.insert(*partition, value, position as u32, key_of), Ok(()));
        }
        for (position, (partition, value)) in keys.iter().enumerate() {
            assert_eq!(index.get(*partition, value, &key_of), Some(position as u32));
            assert_eq!(index.insert(*partition, value, 9999, key_of), Err(position as u32));
        }
        assert_eq!(index.get(3, "v0", &key_of), None);
        assert_eq!(index.get(0, "v999", &key_of), None);
        assert_eq!(index.get(0, "a-long-value-99999999", &key_of), None);
        assert!(index.slots.len() <= 4096, "the load stays at most one half");
    }
}
