//! `ValueIndex`: from (partition, value) to the send that sent it, in O(1).
//!
//! Every record read must be traced to its send, millions of times for a large
//! history, so this is the checkers' hottest lookup. It is a small open-addressing
//! table hashed with xxh3. It is only ever probed, never iterated, so no hash order can
//! leak into a verdict (the reason std's hash maps are banned), and it is a pure
//! function of the sends it was built from.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Maps (partition, value) to a position in a list of sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ValueIndex {
    /// Per slot: `position + 1` (0 is empty) and the hash's high half, which settles
    /// most probes without touching the string.
    slots: Vec<(u32, u32)>,
    mask: usize,
}

fn hash(partition: u32, value: &str) -> u64 {
    xxh3_64_with_seed(value.as_bytes(), u64::from(partition))
}

impl ValueIndex {
    /// An index with room for `count` entries at a load of at most one half.
    pub(crate) fn with_capacity(count: usize) -> ValueIndex {
        let slots = (count.max(1) * 2).next_power_of_two();
        ValueIndex { slots: vec![(0, 0); slots], mask: slots - 1 }
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
        let (mut slot, tag) = self.start(partition, value);
        loop {
            match self.slots[slot] {
                (0, _) => {
                    self.slots[slot] = (position + 1, tag);
                    return Ok(());
                }
                (held, held_tag) if held_tag == tag && key_of(held - 1) == (partition, value) => {
                    return Err(held - 1);
                }
                _ => slot = (slot + 1) & self.mask,
            }
        }
    }

    /// The position stored under (partition, value), if any.
    pub(crate) fn get<'a>(
        &self,
        partition: u32,
        value: &str,
        key_of: impl Fn(u32) -> (u32, &'a str),
    ) -> Option<u32> {
        let (mut slot, tag) = self.start(partition, value);
        loop {
            match self.slots[slot] {
                (0, _) => return None,
                (held, held_tag) if held_tag == tag && key_of(held - 1) == (partition, value) => {
                    return Some(held - 1);
                }
                _ => slot = (slot + 1) & self.mask,
            }
        }
    }

    fn start(&self, partition: u32, value: &str) -> (usize, u32) {
        let hash = hash(partition, value);
        ((hash as usize) & self.mask, (hash >> 32) as u32)
    }

    /// Grows to keep the load at most one half; `key_of` reads back every position.
    pub(crate) fn reserve_for<'a>(&mut self, count: usize, key_of: impl Fn(u32) -> (u32, &'a str)) {
        if count * 2 <= self.slots.len() {
            return;
        }
        let mut grown = ValueIndex::with_capacity(count * 2);
        for &(held, _) in self.slots.iter().filter(|(held, _)| *held != 0) {
            let (partition, value) = key_of(held - 1);
            let inserted = grown.insert(partition, value, held - 1, &key_of);
            debug_assert!(inserted.is_ok(), "pairs in an index are distinct");
        }
        *self = grown;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_inserted_and_refuses_a_second_copy() {
        let keys: Vec<(u32, String)> =
            (0..1000u32).map(|n| (n % 3, format!("v{}", n / 3))).collect();
        let key_of = |position: u32| {
            let (partition, value) = &keys[position as usize];
            (*partition, value.as_str())
        };
        let mut index = ValueIndex::with_capacity(4);
        for (position, (partition, value)) in keys.iter().enumerate() {
            index.reserve_for(position + 1, key_of);
            assert_eq!(index.insert(*partition, value, position as u32, key_of), Ok(()));
        }
        for (position, (partition, value)) in keys.iter().enumerate() {
            assert_eq!(index.get(*partition, value, key_of), Some(position as u32));
            assert_eq!(index.insert(*partition, value, 9999, key_of), Err(position as u32));
        }
        assert_eq!(index.get(3, "v0", key_of), None);
        assert_eq!(index.get(0, "v999", key_of), None);
    }
}
