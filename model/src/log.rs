//! `ModelLog`: the sequential reference log, a `Vec` of records per partition.
//!
//! It has the operations a Kafka-style log has (append in a leader epoch, read from an
//! offset, read below the high watermark, truncate, advance the high watermark, delete
//! below an offset, the end offset of an epoch) and nothing clever, so that the storage
//! engine can be run in lockstep against it and every result compared. It is generic
//! over the record type: the storage tests store bytes, the history generator values.

use thiserror::Error;

use crate::history::OFFSET_MAX;

/// Why a log refused an operation. Each names the numbers that make it wrong.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LogError {
    #[error("unknown partition {partition} (the log has {partitions})")]
    UnknownPartition { partition: u32, partitions: u32 },
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange { offset: u64, log_start_offset: u64, log_end_offset: u64 },
    #[error("epoch {epoch} is older than the latest epoch {latest}")]
    EpochBackwards { epoch: u64, latest: u64 },
    #[error("high watermark {high_watermark} is beyond the log end {log_end_offset}")]
    HighWatermarkBeyondEnd { high_watermark: u64, log_end_offset: u64 },
    #[error("high watermark {high_watermark} is below the current {current}")]
    HighWatermarkBackwards { high_watermark: u64, current: u64 },
    #[error("cannot truncate to {offset}, below the log start {log_start_offset}")]
    TruncateBelowStart { offset: u64, log_start_offset: u64 },
    #[error("cannot delete below {offset}, beyond the high watermark {high_watermark}")]
    DeleteBeyondHighWatermark { offset: u64, high_watermark: u64 },
    #[error("the log is full: offset {offset} would exceed {OFFSET_MAX}")]
    Full { offset: u64 },
}

/// A run of consecutive records read from a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice<'a, T> {
    /// The offset of `records[0]` (or where the read started, if empty).
    pub base_offset: u64,
    pub records: &'a [T],
}

impl<'a, T> Slice<'a, T> {
    /// Each record with its offset.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &'a T)> + use<'a, T> {
        let base = self.base_offset;
        self.records.iter().enumerate().map(move |(i, record)| (base + i as u64, record))
    }
}

/// One partition: records at consecutive offsets from the log start, the high
/// watermark, and the leader-epoch cache (each epoch with the offset it starts at).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLog<T> {
    log_start_offset: u64,
    records: Vec<T>,
    high_watermark: u64,
    /// (epoch, start offset), both strictly increasing.
    epochs: Vec<(u64, u64)>,
}

impl<T> Default for PartitionLog<T> {
    fn default() -> Self {
        PartitionLog {
            log_start_offset: 0,
            records: Vec::new(),
            high_watermark: 0,
            epochs: Vec::new(),
        }
    }
}

impl<T> PartitionLog<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn log_start_offset(&self) -> u64 {
        self.log_start_offset
    }

    /// One past the last record.
    pub fn log_end_offset(&self) -> u64 {
        self.log_start_offset + self.records.len() as u64
    }

    pub fn high_watermark(&self) -> u64 {
        self.high_watermark
    }

    /// The latest leader epoch anything was appended in.
    pub fn latest_epoch(&self) -> Option<u64> {
        self.epochs.last().map(|&(epoch, _)| epoch)
    }

    /// The record at `offset`, if the log holds it.
    pub fn get(&self, offset: u64) -> Option<&T> {
        let index = offset.checked_sub(self.log_start_offset)?;
        self.records.get(usize::try_from(index).ok()?)
    }

    /// The epoch the record at `offset` was written in.
    pub fn epoch_of(&self, offset: u64) -> Option<u64> {
        self.get(offset)?;
        let after = self.epochs.partition_point(|&(_, start)| start <= offset);
        after.checked_sub(1).map(|i| self.epochs[i].0)
    }

    /// Appends in `epoch` (a leader's epoch: never older than the latest); returns the
    /// record's offset.
    pub fn append(&mut self, epoch: u64, record: T) -> Result<u64, LogError> {
        let offset = self.log_end_offset();
        if offset > OFFSET_MAX {
            return Err(LogError::Full { offset });
        }
        match self.latest_epoch() {
            Some(latest) if epoch < latest => {
                return Err(LogError::EpochBackwards { epoch, latest });
            }
            Some(latest) if epoch == latest => {}
            _ => self.epochs.push((epoch, offset)),
        }
        self.records.push(record);
        debug_assert_eq!(self.epoch_of(offset), Some(epoch));
        Ok(offset)
    }

    /// Up to `records_max` records from `from`, to the log end. `from` may equal the
    /// log end (nothing to read yet); beyond it or below the start is out of range.
    pub fn read(&self, from: u64, records_max: usize) -> Result<Slice<'_, T>, LogError> {
        self.read_below(from, records_max, self.log_end_offset())
    }

    /// Like `read`, but only what is committed: below the high watermark, as a
    /// consumer sees it.
    pub fn read_committed(&self, from: u64, records_max: usize) -> Result<Slice<'_, T>, LogError> {
        self.read_below(from, records_max, self.high_watermark)
    }

    fn read_below(
        &self,
        from: u64,
        records_max: usize,
        end: u64,
    ) -> Result<Slice<'_, T>, LogError> {
        let (start, log_end) = (self.log_start_offset, self.log_end_offset());
        if from < start || from > log_end {
            return Err(LogError::OffsetOutOfRange {
                offset: from,
                log_start_offset: start,
                log_end_offset: log_end,
            });
        }
        let first = (from - start) as usize;
        let last = (end.max(from) - start) as usize;
        let last = last.min(first.saturating_add(records_max));
        Ok(Slice { base_offset: from, records: &self.records[first..last] })
    }

    /// Removes every record at `offset` and above (nothing if `offset` is at or past
    /// the end); the high watermark and the epoch cache follow.
    pub fn truncate(&mut self, offset: u64) -> Result<(), LogError> {
        if offset < self.log_start_offset {
            return Err(LogError::TruncateBelowStart {
                offset,
                log_start_offset: self.log_start_offset,
            });
        }
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        self.records.truncate((offset - self.log_start_offset) as usize);
        self.high_watermark = self.high_watermark.min(offset);
        self.epochs.retain(|&(_, start)| start < offset);
        Ok(())
    }

    /// Moves the high watermark forward, never past the log end.
    pub fn advance_high_watermark(&mut self, high_watermark: u64) -> Result<(), LogError> {
        let log_end_offset = self.log_end_offset();
        if high_watermark > log_end_offset {
            return Err(LogError::HighWatermarkBeyondEnd { high_watermark, log_end_offset });
        }
        if high_watermark < self.high_watermark {
            return Err(LogError::HighWatermarkBackwards {
                high_watermark,
                current: self.high_watermark,
            });
        }
        self.high_watermark = high_watermark;
        Ok(())
    }

    /// Deletes every record below `offset` (retention); only committed records go.
    pub fn delete_before(&mut self, offset: u64) -> Result<(), LogError> {
        if offset > self.high_watermark {
            return Err(LogError::DeleteBeyondHighWatermark {
                offset,
                high_watermark: self.high_watermark,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(());
        }
        self.records.drain(..(offset - self.log_start_offset) as usize);
        self.log_start_offset = offset;
        // The epoch that covers the new start keeps its entry, moved up to the start.
        let keep_from =
            self.epochs.partition_point(|&(_, start)| start <= offset).saturating_sub(1);
        self.epochs.drain(..keep_from);
        if let Some(first) = self.epochs.first_mut() {
            first.1 = first.1.max(offset);
        }
        Ok(())
    }

    /// The KIP-279 answer to a follower asking where `epoch` ends: the largest epoch at
    /// most `epoch` that this log has, and the offset where the next epoch starts (the
    /// log end for the latest). `None` if the log has no epoch that old.
    pub fn end_offset_for_epoch(&self, epoch: u64) -> Option<(u64, u64)> {
        let after = self.epochs.partition_point(|&(e, _)| e <= epoch);
        let index = after.checked_sub(1)?;
        let end = self.epochs.get(index + 1).map_or(self.log_end_offset(), |&(_, start)| start);
        Some((self.epochs[index].0, end))
    }
}

/// A log of `partitions` partitions, each a `PartitionLog`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelLog<T> {
    partitions: Vec<PartitionLog<T>>,
}

impl<T> ModelLog<T> {
    pub fn new(partitions: u32) -> Self {
        ModelLog { partitions: (0..partitions).map(|_| PartitionLog::new()).collect() }
    }

    pub fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    pub fn partition(&self, partition: u32) -> Result<&PartitionLog<T>, LogError> {
        let partitions = self.partition_count();
        self.partitions
            .get(partition as usize)
            .ok_or(LogError::UnknownPartition { partition, partitions })
    }

    pub fn partition_mut(&mut self, partition: u32) -> Result<&mut PartitionLog<T>, LogError> {
        let partitions = self.partition_count();
        self.partitions
            .get_mut(partition as usize)
            .ok_or(LogError::UnknownPartition { partition, partitions })
    }

    pub fn append(&mut self, partition: u32, epoch: u64, record: T) -> Result<u64, LogError> {
        self.partition_mut(partition)?.append(epoch, record)
    }

    pub fn read(
        &self,
        partition: u32,
        from: u64,
        records_max: usize,
    ) -> Result<Slice<'_, T>, LogError> {
        self.partition(partition)?.read(from, records_max)
    }

    pub fn read_committed(
        &self,
        partition: u32,
        from: u64,
        records_max: usize,
    ) -> Result<Slice<'_, T>, LogError> {
        self.partition(partition)?.read_committed(from, records_max)
    }

    pub fn truncate(&mut self, partition: u32, offset: u64) -> Result<(), LogError> {
        self.partition_mut(partition)?.truncate(offset)
    }

    pub fn advance_high_watermark(
        &mut self,
        partition: u32,
        high_watermark: u64,
    ) -> Result<(), LogError> {
        self.partition_mut(partition)?.advance_high_watermark(high_watermark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(epochs_and_values: &[(u64, &'static str)]) -> PartitionLog<&'static str> {
        let mut log = PartitionLog::new();
        for (expected_offset, &(epoch, value)) in epochs_and_values.iter().enumerate() {
            assert_eq!(log.append(epoch, value), Ok(expected_offset as u64));
        }
        log
    }

    #[test]
    fn append_and_read_from_any_offset() {
        let log = log_of(&[(1, "a"), (1, "b"), (2, "c")]);
        assert_eq!(log.log_end_offset(), 3);
        let read = log.read(1, 10).unwrap();
        assert_eq!(read.iter().collect::<Vec<_>>(), vec![(1, &"b"), (2, &"c")]);
        assert_eq!(log.read(0, 2).unwrap().records, &["a", "b"]);
        assert_eq!(log.read(3, 10).unwrap().records, &[] as &[&str]);
        assert_eq!(
            log.read(4, 10),
            Err(LogError::OffsetOutOfRange { offset: 4, log_start_offset: 0, log_end_offset: 3 })
        );
        assert_eq!(log.epoch_of(1), Some(1));
        assert_eq!(log.epoch_of(2), Some(2));
        assert_eq!(log.epoch_of(3), None);
    }

    #[test]
    fn consumers_see_only_below_the_high_watermark() {
        let mut log = log_of(&[(1, "a"), (1, "b"), (1, "c")]);
        assert!(log.read_committed(0, 10).unwrap().records.is_empty());
        log.advance_high_watermark(2).unwrap();
        assert_eq!(log.read_committed(0, 10).unwrap().records, &["a", "b"]);
        assert!(log.read_committed(2, 10).unwrap().records.is_empty());
        assert_eq!(
            log.advance_high_watermark(1),
            Err(LogError::HighWatermarkBackwards { high_watermark: 1, current: 2 })
        );
        assert_eq!(
            log.advance_high_watermark(4),
            Err(LogError::HighWatermarkBeyondEnd { high_watermark: 4, log_end_offset: 3 })
        );
    }

    #[test]
    fn truncate_drops_the_suffix_and_its_epochs() {
        let mut log = log_of(&[(1, "a"), (2, "b"), (3, "c")]);
        log.advance_high_watermark(3).unwrap();
        log.truncate(1).unwrap();
        assert_eq!(log.log_end_offset(), 1);
        assert_eq!(log.high_watermark(), 1);
        assert_eq!(log.latest_epoch(), Some(1));
        log.truncate(5).unwrap();
        assert_eq!(log.log_end_offset(), 1);
        assert_eq!(log.append(0, "x"), Err(LogError::EpochBackwards { epoch: 0, latest: 1 }));
        assert_eq!(log.append(4, "d"), Ok(1));
    }

    #[test]
    fn end_offset_for_epoch_follows_kip_279() {
        let log = log_of(&[(1, "a"), (1, "b"), (3, "c"), (5, "d")]);
        assert_eq!(log.end_offset_for_epoch(0), None);
        assert_eq!(log.end_offset_for_epoch(1), Some((1, 2)));
        // Epoch 2 never had a leader here: answer with the largest epoch below it.
        assert_eq!(log.end_offset_for_epoch(2), Some((1, 2)));
        assert_eq!(log.end_offset_for_epoch(3), Some((3, 3)));
        assert_eq!(log.end_offset_for_epoch(9), Some((5, 4)));
    }

    #[test]
    fn delete_before_moves_the_start_and_keeps_offsets() {
        let mut log = log_of(&[(1, "a"), (1, "b"), (2, "c"), (2, "d")]);
        assert_eq!(
            log.delete_before(1),
            Err(LogError::DeleteBeyondHighWatermark { offset: 1, high_watermark: 0 })
        );
        log.advance_high_watermark(3).unwrap();
        log.delete_before(3).unwrap();
        assert_eq!(log.log_start_offset(), 3);
        assert_eq!(log.get(2), None);
        assert_eq!(log.get(3), Some(&"d"));
        assert_eq!(log.epoch_of(3), Some(2));
        assert_eq!(log.end_offset_for_epoch(2), Some((2, 4)));
        assert_eq!(log.end_offset_for_epoch(1), None);
        assert_eq!(
            log.read(2, 1),
            Err(LogError::OffsetOutOfRange { offset: 2, log_start_offset: 3, log_end_offset: 4 })
        );
        assert_eq!(
            log.truncate(2),
            Err(LogError::TruncateBelowStart { offset: 2, log_start_offset: 3 })
        );
    }

    #[test]
    fn partitions_are_independent() {
        let mut log = ModelLog::new(2);
        assert_eq!(log.append(0, 1, "a"), Ok(0));
        assert_eq!(log.append(1, 1, "b"), Ok(0));
        assert_eq!(log.append(0, 1, "c"), Ok(1));
        assert_eq!(log.read(1, 0, 10).unwrap().records, &["b"]);
        assert_eq!(
            log.append(2, 1, "x"),
            Err(LogError::UnknownPartition { partition: 2, partitions: 2 })
        );
        log.advance_high_watermark(0, 1).unwrap();
        assert_eq!(log.read_committed(0, 0, 10).unwrap().records, &["a"]);
        log.truncate(0, 0).unwrap();
        assert_eq!(log.partition(0).unwrap().log_end_offset(), 0);
    }
}
