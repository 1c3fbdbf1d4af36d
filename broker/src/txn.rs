//! Transactions on one partition: which producers have a transaction open here, which
//! ended in an abort, and the last stable offset that follows from both.
//!
//! Like producer state, this is derived from the log (data batches with the
//! transactional bit open a transaction, control batches close it) and rebuilt from it
//! after a restart or a truncation, never trusted from memory across either.
//!
//! A marker is a control batch of one record: key `[kind]` (0 abort, 1 commit), value
//! the coordinator epoch (4 bytes, little-endian), stamped with the producer's id and
//! the epoch the coordinator ended the transaction with.

use std::collections::BTreeMap;

use crate::batch::{
    ATTRIBUTE_CONTROL, ATTRIBUTE_TRANSACTIONAL, ProducerStamp, Record, RecordBatch,
};
use crate::protocol::AbortedTxn;

/// Which transaction protocol the cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnProtocol {
    /// KIP-890: a partition leader verifies a producer's first transactional batch with
    /// the coordinator, and every commit or abort bumps the producer epoch (markers
    /// carry the new one), so a late produce or marker cannot join the next transaction.
    Kip890,
    /// Before KIP-890: partitions join on the client's word, and the epoch stays the
    /// same from one transaction to the next. Kept to show what the harness catches.
    Legacy,
}

/// Attributes of a transaction's data batch.
pub const DATA_ATTRIBUTES: u8 = ATTRIBUTE_TRANSACTIONAL;
/// Attributes of a transaction marker.
pub const MARKER_ATTRIBUTES: u8 = ATTRIBUTE_TRANSACTIONAL | ATTRIBUTE_CONTROL;

/// How a transaction ended, as its marker says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    pub commit: bool,
    pub coordinator_epoch: u32,
}

impl Marker {
    pub fn record(self, timestamp_ns: u64) -> Record {
        Record {
            timestamp_ns,
            key: vec![u8::from(self.commit)],
            value: self.coordinator_epoch.to_le_bytes().to_vec(),
        }
    }

    /// The marker a control record states, if it is well formed.
    pub fn parse(key: &[u8], value: &[u8]) -> Option<Marker> {
        let commit = match key {
            [0] => false,
            [1] => true,
            _ => return None,
        };
        let coordinator_epoch = u32::from_le_bytes(value.try_into().ok()?);
        Some(Marker { commit, coordinator_epoch })
    }
}

/// An open transaction of one producer on this partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenTxn {
    pub producer_epoch: i16,
    pub first_offset: u64,
}

/// The transactions of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionTxns {
    open: BTreeMap<i64, OpenTxn>,
    /// Aborted transactions in offset order (by marker). Bounded by the log: one entry
    /// per abort marker it holds.
    aborted: Vec<AbortedTxn>,
    /// Transactions whose marker is written but may not be replicated yet: (first
    /// offset, marker offset). Until the high watermark passes the marker they are as
    /// undecided as open ones (a new leader may not have the marker, or may end them
    /// otherwise), as Kafka keeps its "unreplicated transactions". Pruned as the high
    /// watermark passes; bounded by the markers above it.
    ended: Vec<(u64, u64)>,
    /// A transactional batch was ever seen: only then is a rebuild worth a scan.
    seen_any: bool,
}

impl PartitionTxns {
    pub fn seen_any(&self) -> bool {
        self.seen_any
    }

    pub fn open(&self, producer_id: i64) -> Option<OpenTxn> {
        self.open.get(&producer_id).copied()
    }

    /// The first offset not yet decided given the high watermark: of an open
    /// transaction, or of one whose marker is not yet below the high watermark.
    fn first_undecided(&self, high_watermark: u64) -> Option<u64> {
        let open = self.open.values().map(|txn| txn.first_offset);
        let ended = self
            .ended
            .iter()
            .filter(|&&(_, marker)| marker >= high_watermark)
            .map(|&(first, _)| first);
        open.chain(ended).min()
    }

    /// Below it every record is decided: the high watermark, or the first record of
    /// the oldest undecided transaction if that is lower.
    pub fn last_stable_offset(&self, high_watermark: u64) -> u64 {
        self.first_undecided(high_watermark)
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// The high watermark moved: transactions whose markers it passed are decided.
    pub fn replicated_to(&mut self, high_watermark: u64) {
        self.ended.retain(|&(_, marker)| marker >= high_watermark);
    }

    /// Aborted transactions with records in `[from, to)`.
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        // Sorted by marker (last) offset: skip those that ended before `from`.
        let start = self.aborted.partition_point(|txn| txn.last_offset < from);
        self.aborted[start..].iter().filter(|txn| txn.first_offset < to).copied().collect()
    }

    /// A transactional data batch from `producer_id` at `base_offset`.
    pub fn note_data(&mut self, producer_id: i64, producer_epoch: i16, base_offset: u64) {
        self.seen_any = true;
        self.open
            .entry(producer_id)
            .or_insert(OpenTxn { producer_epoch, first_offset: base_offset });
    }

    /// A marker at `offset` ends the producer's open transaction here, if it has one.
    pub fn note_marker(&mut self, producer_id: i64, marker: Marker, offset: u64) {
        self.seen_any = true;
        let Some(txn) = self.open.remove(&producer_id) else { return };
        self.ended.push((txn.first_offset, offset));
        if !marker.commit {
            debug_assert!(self.aborted.last().is_none_or(|last| last.last_offset < offset));
            self.aborted.push(AbortedTxn {
                producer_id,
                first_offset: txn.first_offset,
                last_offset: offset,
            });
        }
    }

    /// A decoded batch, in log order.
    pub fn note_batch(&mut self, batch: &RecordBatch) {
        if batch.attributes & ATTRIBUTE_TRANSACTIONAL == 0 {
            return;
        }
        let producer_id = batch.producer.producer_id;
        if batch.attributes & ATTRIBUTE_CONTROL != 0 {
            if let Some(marker) =
                batch.records.first().and_then(|r| Marker::parse(&r.key, &r.value))
            {
                self.note_marker(producer_id, marker, batch.base_offset);
            }
        } else {
            self.note_data(producer_id, batch.producer.producer_epoch, batch.base_offset);
        }
    }

    /// A batch as stored, by its header's fields: only a marker's bytes are read (for
    /// its kind), so following a leader costs no decode of transactional data.
    pub fn note_stored(
        &mut self,
        producer: ProducerStamp,
        attributes: u8,
        base_offset: u64,
        bytes: &[u8],
    ) {
        if attributes & ATTRIBUTE_TRANSACTIONAL == 0 {
            return;
        }
        if attributes & ATTRIBUTE_CONTROL == 0 {
            return self.note_data(producer.producer_id, producer.producer_epoch, base_offset);
        }
        // Stored batches were validated when written: a marker that does not decode
        // cannot be here, and would end nothing.
        if let Ok(batch) = crate::batch::decode(bytes) {
            self.note_batch(&batch);
        }
    }

    pub fn clear(&mut self) {
        self.open.clear();
        self.aborted.clear();
        self.ended.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(producer_id: i64, base_offset: u64) -> RecordBatch {
        RecordBatch {
            base_offset,
            leader_epoch: 1,
            attributes: DATA_ATTRIBUTES,
            producer: ProducerStamp { producer_id, producer_epoch: 0, base_sequence: 0 },
            records: vec![Record { timestamp_ns: 0, key: b"k".to_vec(), value: b"v".to_vec() }],
        }
    }

    fn marker(producer_id: i64, offset: u64, commit: bool) -> RecordBatch {
        RecordBatch {
            base_offset: offset,
            leader_epoch: 1,
            attributes: MARKER_ATTRIBUTES,
            producer: ProducerStamp { producer_id, producer_epoch: 1, base_sequence: -1 },
            records: vec![Marker { commit, coordinator_epoch: 3 }.record(0)],
        }
    }

    #[test]
    fn the_stable_offset_waits_for_the_oldest_open_transaction() {
        let mut txns = PartitionTxns::default();
        assert_eq!(txns.last_stable_offset(10), 10);
        txns.note_batch(&data(7, 2));
        txns.note_batch(&data(8, 4));
        txns.note_batch(&data(7, 5)); // the same transaction: it still starts at 2
        assert_eq!(txns.last_stable_offset(10), 2);
        assert_eq!(txns.last_stable_offset(1), 1, "never past the high watermark");
        txns.note_batch(&marker(7, 6, true));
        assert_eq!(txns.last_stable_offset(6), 2, "its marker is not yet replicated");
        assert_eq!(txns.last_stable_offset(10), 4);
        txns.note_batch(&marker(8, 7, false));
        assert_eq!(txns.last_stable_offset(10), 10);
        txns.replicated_to(8);
        assert_eq!(txns.last_stable_offset(7), 7, "pruned: never again undecided");
        assert_eq!(
            txns.aborted_between(0, 10),
            vec![AbortedTxn { producer_id: 8, first_offset: 4, last_offset: 7 }]
        );
        assert_eq!(txns.aborted_between(8, 10), vec![], "ended before the range");
        assert_eq!(txns.aborted_between(0, 4), vec![], "begins after the range");
    }

    #[test]
    fn markers_round_trip_and_bad_ones_are_refused() {
        for commit in [false, true] {
            let marker = Marker { commit, coordinator_epoch: 9 };
            let record = marker.record(5);
            assert_eq!(Marker::parse(&record.key, &record.value), Some(marker));
        }
        assert_eq!(Marker::parse(&[2], &[0; 4]), None);
        assert_eq!(Marker::parse(&[1], &[0; 3]), None);
    }
}
