//! One segment: a `.log` file of batches named by its 20-digit base offset, and its
//! sparse offset index (in memory; written to a `.index` file when the segment rolls).
//!
//! Index file layout: entries of 8 bytes, `offset - base_offset` (u32 LE) · byte
//! position (u32 LE), both strictly increasing.

use std::collections::VecDeque;

use crate::storage::{Storage, StorageError};

pub(crate) const LOG_SUFFIX: &str = ".log";
pub(crate) const INDEX_SUFFIX: &str = ".index";
/// Positions of recent batches kept in memory per segment (16 bytes each).
const RECENT_BATCHES_MAX: usize = 64;

/// `00000000000000000042` for 42.
pub(crate) fn file_stem(base_offset: u64) -> String {
    format!("{base_offset:020}")
}

/// The base offset a segment file name stands for, if it is one.
pub(crate) fn parse_name(name: &str, suffix: &str) -> Option<u64> {
    let stem = name.strip_suffix(suffix)?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) offset: u64,
    pub(crate) position: u64,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: u64,
    /// The offset after its last record.
    pub(crate) end_offset: u64,
    pub(crate) size_bytes: u64,
    pub(crate) index: Vec<IndexEntry>,
    pub(crate) bytes_since_index: u64,
    /// Where the most recent batches start, oldest first, at most `RECENT_BATCHES_MAX`:
    /// replication and tailing consumers read near the end, and find their batch at
    /// once instead of scanning from the sparse index entry before it.
    pub(crate) recent: VecDeque<IndexEntry>,
    /// Holds writes (or a truncation) not yet covered by a requested sync.
    pub(crate) dirty: bool,
    pub(crate) log_path: String,
    pub(crate) index_path: String,
}

impl Segment {
    pub(crate) fn new(dir: &str, base_offset: u64) -> Segment {
        let stem = file_stem(base_offset);
        Segment {
            base_offset,
            end_offset: base_offset,
            size_bytes: 0,
            index: Vec::new(),
            bytes_since_index: 0,
            recent: VecDeque::new(),
            dirty: false,
            log_path: crate::storage::join(dir, &format!("{stem}{LOG_SUFFIX}")),
            index_path: crate::storage::join(dir, &format!("{stem}{INDEX_SUFFIX}")),
        }
    }

    /// Notes a batch appended (or found by recovery) at `position`.
    pub(crate) fn note_batch(
        &mut self,
        base_offset: u64,
        end_offset: u64,
        position: u64,
        size_bytes: u64,
        interval_bytes: u64,
    ) {
        debug_assert_eq!(base_offset, self.end_offset, "batches are contiguous");
        debug_assert_eq!(position, self.size_bytes, "batches are back to back");
        if position > 0 && self.bytes_since_index >= interval_bytes {
            self.index.push(IndexEntry { offset: base_offset, position });
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += size_bytes;
        if self.recent.len() == RECENT_BATCHES_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(IndexEntry { offset: base_offset, position });
        self.end_offset = end_offset;
        self.size_bytes = position + size_bytes;
    }

    /// Where to start scanning to find `offset`: the last index entry at or before it,
    /// or the segment's start.
    pub(crate) fn lookup(&self, offset: u64) -> IndexEntry {
        if self.recent.front().is_some_and(|first| first.offset <= offset) {
            let n = self.recent.partition_point(|entry| entry.offset <= offset);
            return self.recent[n - 1];
        }
        match self.index.partition_point(|entry| entry.offset <= offset) {
            0 => IndexEntry { offset: self.base_offset, position: 0 },
            n => self.index[n - 1],
        }
    }

    /// Drops index entries at or after `position` (the file was cut there).
    pub(crate) fn cut_index(&mut self, position: u64) {
        let keep_recent = self.recent.partition_point(|entry| entry.position < position);
        self.recent.truncate(keep_recent);
        let keep = self.index.partition_point(|entry| entry.position < position);
        self.index.truncate(keep);
        self.bytes_since_index = position - self.index.last().map_or(0, |entry| entry.position);
    }

    pub(crate) fn encode_index(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.index.len() * 8);
        for entry in &self.index {
            bytes.extend_from_slice(&((entry.offset - self.base_offset) as u32).to_le_bytes());
            bytes.extend_from_slice(&(entry.position as u32).to_le_bytes());
        }
        bytes
    }

    /// Writes the index file anew (it is derived data: never synced, always validated).
    pub(crate) fn write_index<S: Storage + ?Sized>(
        &self,
        storage: &mut S,
    ) -> Result<(), StorageError> {
        if storage.exists(&self.index_path) {
            storage.remove(&self.index_path)?;
        }
        storage.create(&self.index_path)?;
        storage.append(&self.index_path, &self.encode_index())?;
        Ok(())
    }

    /// Loads the index file if it is sound for this segment's extent; `None` otherwise.
    pub(crate) fn load_index<S: Storage + ?Sized>(
        &self,
        storage: &mut S,
    ) -> Option<Vec<IndexEntry>> {
        let len = storage.len(&self.index_path).ok()? as usize;
        if len % 8 != 0 || len / 8 > self.size_bytes as usize / crate::batch::HEADER_BYTES {
            return None;
        }
        let mut bytes = vec![0; len];
        crate::storage::read_exact_at(storage, &self.index_path, 0, &mut bytes).ok()?;
        let mut entries = Vec::with_capacity(len / 8);
        let mut previous: Option<IndexEntry> = None;
        for chunk in bytes.chunks_exact(8) {
            let relative = u32::from_le_bytes(chunk[..4].try_into().expect("4 bytes"));
            let position = u64::from(u32::from_le_bytes(chunk[4..].try_into().expect("4 bytes")));
            let entry = IndexEntry { offset: self.base_offset + u64::from(relative), position };
            let increasing =
                previous.is_none_or(|p| entry.offset > p.offset && entry.position > p.position);
            if !increasing
                || entry.position == 0
                || entry.position >= self.size_bytes
                || entry.offset >= self.end_offset
            {
                return None;
            }
            previous = Some(entry);
            entries.push(entry);
        }
        Some(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_refused() {
        assert_eq!(file_stem(42), "00000000000000000042");
        assert_eq!(parse_name("00000000000000000042.log", LOG_SUFFIX), Some(42));
        for stranger in [
            "42.log",
            "0000000000000000004x.log",
            "00000000000000000042.index",
            "x",
            "000000000000000000042.log",
        ] {
            assert_eq!(parse_name(stranger, LOG_SUFFIX), None, "{stranger}");
        }
    }

    #[test]
    fn lookup_finds_the_last_entry_at_or_before() {
        let mut segment = Segment::new("p", 100);
        for (i, position) in [0u64, 50, 100, 150].into_iter().enumerate() {
            let base = 100 + 10 * i as u64;
            segment.note_batch(base, base + 10, position, 50, 60);
        }
        // An index entry once 60 bytes have passed: at the third batch (offset 120,
        // byte 100) only. The last batch (offset 130, byte 150) is found directly.
        assert_eq!(segment.index, [IndexEntry { offset: 120, position: 100 }]);
        let positions = [105, 120, 129, 130, 139].map(|offset| segment.lookup(offset).position);
        assert_eq!(positions, [0, 100, 100, 150, 150]);
        assert_eq!(segment.lookup(105).offset, 100);
        segment.cut_index(150);
        assert_eq!(segment.lookup(139).position, 100, "a cut forgets the last batch");
    }
}
