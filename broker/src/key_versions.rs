//! A leader's record count per key, for conditional appends ("append if this key holds
//! exactly n records"), aware of transactions.
//!
//! A record of a plain batch counts at once. A record of a transaction counts only once
//! the transaction commits, and never if it aborts: until its marker, the key is held
//! by that transaction, and a conditional append by anyone else to it is refused with
//! `ConcurrentTransactions` (retriable), because its version depends on an outcome not
//! yet known. The transaction's own later appends to the key see its earlier records.
//! So of two transactions that expect the same version of a key, at most one commits
//! a record at it.
//!
//! Derived from the log, like producer state: built from the leader's log at its first
//! conditional append, kept up by its appends and markers, dropped at every role change.
//! Bounded by the log (one entry per distinct key, one per record of open transactions).

use std::collections::BTreeMap;

use crate::batch::{ATTRIBUTE_CONTROL, ATTRIBUTE_TRANSACTIONAL, RecordBatch};
use crate::log::{LogError, PartitionLog};
use crate::protocol::ErrorCode;
use crate::storage::Storage;
use crate::txn::Marker;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyVersions {
    /// Records per key of plain batches and committed transactions.
    settled: BTreeMap<Vec<u8>, u64>,
    /// Each producer's open transaction: the keys of its records, one entry per record.
    open: BTreeMap<i64, Vec<Vec<u8>>>,
}

impl KeyVersions {
    /// Counts every record of `log` (markers excluded, aborted transactions dropped).
    pub fn from_log<S: Storage + ?Sized>(
        storage: &mut S,
        log: &PartitionLog,
    ) -> Result<KeyVersions, LogError> {
        let mut versions = KeyVersions::default();
        let mut offset = log.start_offset();
        while offset < log.end_offset() {
            let batches: Vec<RecordBatch> = log.read(storage, offset, 1 << 20)?;
            let Some(last) = batches.last() else { break };
            offset = last.end_offset();
            for batch in &batches {
                versions.note_batch(batch);
            }
        }
        Ok(versions)
    }

    fn note_batch(&mut self, batch: &RecordBatch) {
        let producer_id = batch.producer.producer_id;
        let transactional = batch.attributes & ATTRIBUTE_TRANSACTIONAL != 0;
        if batch.attributes & ATTRIBUTE_CONTROL != 0 {
            if let Some(marker) =
                batch.records.first().and_then(|r| Marker::parse(&r.key, &r.value))
            {
                self.note_marker(producer_id, marker.commit);
            }
            return;
        }
        self.note_append(producer_id, transactional, batch.records.iter().map(|r| &r.key[..]));
    }

    /// What `producer_id`'s conditional append of a record to `key` meets: `Ok` if the
    /// key holds exactly `expected` records (its own open transaction's included).
    pub fn check(&self, producer_id: i64, key: &[u8], expected: u64) -> Result<(), ErrorCode> {
        let held_by_other = self
            .open
            .iter()
            .any(|(&holder, keys)| holder != producer_id && keys.iter().any(|k| k == key));
        if held_by_other {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        let own = self
            .open
            .get(&producer_id)
            .map_or(0, |keys| keys.iter().filter(|k| *k == key).count() as u64);
        let current = self.settled.get(key).copied().unwrap_or(0) + own;
        if current == expected { Ok(()) } else { Err(ErrorCode::WrongExpectedVersion) }
    }

    /// Records appended in one batch, in order.
    pub fn note_append<'a>(
        &mut self,
        producer_id: i64,
        transactional: bool,
        keys: impl Iterator<Item = &'a [u8]>,
    ) {
        if transactional {
            self.open.entry(producer_id).or_default().extend(keys.map(<[u8]>::to_vec));
        } else {
            for key in keys {
                *self.settled.entry(key.to_vec()).or_insert(0) += 1;
            }
        }
    }

    /// A marker ends the producer's open transaction: its records count, or vanish.
    pub fn note_marker(&mut self, producer_id: i64, commit: bool) {
        let Some(keys) = self.open.remove(&producer_id) else { return };
        if commit {
            for key in keys {
                *self.settled.entry(key).or_insert(0) += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_count_when_committed_and_hold_their_keys_until_then() {
        let mut versions = KeyVersions::default();
        versions.note_append(-1, false, [&b"a"[..], b"a"].into_iter());
        assert_eq!(versions.check(-1, b"a", 2), Ok(()));
        // Producer 7's transaction writes a and b.
        versions.note_append(7, true, [&b"a"[..], b"b"].into_iter());
        type Case<'a> = (i64, &'a [u8], u64, Result<(), ErrorCode>);
        let cases: [Case; 6] = [
            (7, b"a", 3, Ok(())),                               // sees its own record
            (7, b"a", 2, Err(ErrorCode::WrongExpectedVersion)), // not its own past
            (7, b"b", 1, Ok(())),
            (8, b"a", 2, Err(ErrorCode::ConcurrentTransactions)), // held by 7
            (-1, b"b", 0, Err(ErrorCode::ConcurrentTransactions)), // plain ones too
            (8, b"c", 0, Ok(())),                                 // a free key
        ];
        for (producer, key, expected, result) in cases {
            assert_eq!(versions.check(producer, key, expected), result, "{producer} {key:?}");
        }
        let mut aborted = versions.clone();
        aborted.note_marker(7, false);
        assert_eq!(aborted.check(8, b"a", 2), Ok(()), "an aborted record never counts");
        assert_eq!(aborted.check(8, b"b", 0), Ok(()));
        versions.note_marker(7, true);
        assert_eq!(versions.check(8, b"a", 3), Ok(()), "a committed one does");
        assert_eq!(versions.check(8, b"b", 1), Ok(()));
        versions.note_marker(9, true); // a marker with nothing open here changes nothing
        assert_eq!(versions.check(8, b"b", 1), Ok(()));
    }
}
