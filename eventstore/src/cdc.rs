//! Change data capture: a source table whose every change (insert, update, delete,
//! numbered by a sequence) is published as an event on the table's stream, and a
//! replica that applies them in order. The replica, at the offset it has applied,
//! equals the source table as it was after that change.
//!
//! The sequence is the stream version: change `n` is published at version `n` with
//! `Exact(n)`, so the stream holds every change once, in order. The replica refuses a
//! gap and a change that contradicts its rows (an insert of a present key, an update
//! or delete of an absent one): either means it is no longer a copy. A change it has
//! already applied (a re-delivery) is ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::envelope::{DecodeError, Envelope, decode_ref};
use crate::schema::{decode_payload, encode_payload};

/// The schema version change events are written at.
pub const CDC_SCHEMA_VERSION: u16 = 1;
/// The most rows a table holds.
pub const TABLE_ROWS_MAX: usize = 100_000;

/// One row's change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    Insert { value: i64 },
    Update { value: i64 },
    Delete,
}

/// A change event: the `seq`-th change of the table, to the row at `key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub seq: u64,
    pub key: u64,
    pub change: Change,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TableError {
    #[error("key {key} already exists")]
    Exists { key: u64 },
    #[error("key {key} does not exist")]
    Missing { key: u64 },
    #[error("the table is full ({TABLE_ROWS_MAX} rows)")]
    Full,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CdcError {
    #[error("{stream} at offset {offset}: bad envelope: {error}")]
    Envelope { stream: String, offset: u64, error: DecodeError },
    #[error("{stream} at offset {offset}: schema version {schema_version}: {detail}")]
    Undecodable { stream: String, offset: u64, schema_version: u16, detail: String },
    #[error("{stream} at offset {offset}: change {found}, expected {expected}")]
    Gap { stream: String, offset: u64, expected: u64, found: u64 },
    #[error("{stream} at offset {offset}: change {seq} diverges: {error}")]
    Diverged { stream: String, offset: u64, seq: u64, error: TableError },
}

/// Applies `change` to `rows`, or says why it cannot be.
fn apply_change(
    rows: &mut BTreeMap<u64, i64>,
    key: u64,
    change: &Change,
) -> Result<(), TableError> {
    match (change, rows.contains_key(&key)) {
        (Change::Insert { .. }, true) => Err(TableError::Exists { key }),
        (Change::Insert { .. }, false) if rows.len() >= TABLE_ROWS_MAX => Err(TableError::Full),
        (Change::Update { .. } | Change::Delete, false) => Err(TableError::Missing { key }),
        (Change::Insert { value } | Change::Update { value }, _) => {
            rows.insert(key, *value);
            Ok(())
        }
        (Change::Delete, true) => {
            rows.remove(&key);
            Ok(())
        }
    }
}

/// The source table: its rows and the changes made so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceTable {
    rows: BTreeMap<u64, i64>,
    seq: u64,
}

impl SourceTable {
    pub fn rows(&self) -> &BTreeMap<u64, i64> {
        &self.rows
    }

    /// The number of changes made; the next change's sequence.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn insert(&mut self, key: u64, value: i64) -> Result<Envelope, TableError> {
        self.change(key, Change::Insert { value })
    }

    pub fn update(&mut self, key: u64, value: i64) -> Result<Envelope, TableError> {
        self.change(key, Change::Update { value })
    }

    pub fn delete(&mut self, key: u64) -> Result<Envelope, TableError> {
        self.change(key, Change::Delete)
    }

    /// Makes the change and returns the event to publish at stream version `seq`.
    fn change(&mut self, key: u64, change: Change) -> Result<Envelope, TableError> {
        apply_change(&mut self.rows, key, &change)?;
        let event = ChangeEvent { seq: self.seq, key, change };
        self.seq += 1;
        Ok(Envelope {
            stream_version: event.seq,
            command_id: event.seq,
            schema_version: CDC_SCHEMA_VERSION,
            payload: encode_payload(&event),
        })
    }
}

/// A replica of one source table, fed its stream's records in offset order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    stream: String,
    rows: BTreeMap<u64, i64>,
    next_seq: u64,
    applied_offset: Option<u64>,
}

impl Replica {
    /// A replica of the table published on `stream`.
    pub fn new(stream: &str) -> Replica {
        Replica {
            stream: stream.to_owned(),
            rows: BTreeMap::new(),
            next_seq: 0,
            applied_offset: None,
        }
    }

    pub fn rows(&self) -> &BTreeMap<u64, i64> {
        &self.rows
    }

    /// The changes applied; the next one expected.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The offset of the last change applied.
    pub fn applied_offset(&self) -> Option<u64> {
        self.applied_offset
    }

    /// Applies the record at `offset` if it is a change of this replica's table and not
    /// already applied; returns whether it changed the replica.
    pub fn apply(&mut self, offset: u64, stream: &str, value: &[u8]) -> Result<bool, CdcError> {
        if stream != self.stream {
            return Ok(false);
        }
        let stream = || self.stream.clone();
        let envelope = decode_ref(value).map_err(|error| CdcError::Envelope {
            stream: stream(),
            offset,
            error,
        })?;
        let schema_version = envelope.schema_version;
        let decoded = match schema_version {
            CDC_SCHEMA_VERSION => decode_payload::<ChangeEvent>(envelope.payload),
            _ => Err("unknown schema version".to_owned()),
        };
        let event = decoded.map_err(|detail| CdcError::Undecodable {
            stream: stream(),
            offset,
            schema_version,
            detail,
        })?;
        if event.seq < self.next_seq {
            return Ok(false);
        }
        if event.seq != self.next_seq || envelope.stream_version != event.seq {
            let (expected, found) = (self.next_seq, event.seq.max(envelope.stream_version));
            return Err(CdcError::Gap { stream: stream(), offset, expected, found });
        }
        apply_change(&mut self.rows, event.key, &event.change).map_err(|error| {
            CdcError::Diverged { stream: stream(), offset, seq: event.seq, error }
        })?;
        self.next_seq += 1;
        self.applied_offset = Some(offset);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ExpectedVersion, InMemoryStore, StoreReply, StreamStore};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, RngSeed};

    const TABLE: &str = "table-orders";

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64, i64),
        Update(u64, i64),
        Delete(u64),
        /// An unrelated record on the same partition.
        Noise,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..8u64, any::<i64>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0..8u64, any::<i64>()).prop_map(|(k, v)| Op::Update(k, v)),
            (0..8u64).prop_map(Op::Delete),
            Just(Op::Noise),
        ]
    }

    fn publish(
        store: &mut InMemoryStore,
        stream: &str,
        expected: ExpectedVersion,
        event: Envelope,
    ) {
        store.append(0, 0, stream, expected, vec![event]);
        let replies = store.drain_completed();
        assert!(matches!(replies[..], [(0, StoreReply::Appended { .. })]), "{replies:?}");
    }

    fn records(store: &InMemoryStore) -> Vec<(u64, String, Vec<u8>)> {
        let log = store.log().iter().enumerate();
        log.map(|(o, r)| (o as u64, r.stream.clone(), r.envelope.encode())).collect()
    }

    fn config() -> Config {
        Config {
            cases: 300,
            rng_algorithm: RngAlgorithm::ChaCha,
            rng_seed: RngSeed::Fixed(51),
            failure_persistence: None,
            ..Config::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        /// After applying the change at each offset, the replica equals the source
        /// table as it was after that change; re-delivered changes change nothing.
        #[test]
        fn the_replica_equals_the_source_at_every_applied_offset(ops in proptest::collection::vec(op(), 0..60)) {
            let mut source = SourceTable::default();
            let mut store = InMemoryStore::new();
            let mut history = vec![source.rows().clone()];
            for op in ops {
                let event = match op {
                    Op::Insert(key, value) => source.insert(key, value),
                    Op::Update(key, value) => source.update(key, value),
                    Op::Delete(key) => source.delete(key),
                    Op::Noise => {
                        let noise = Envelope { stream_version: 0, command_id: 0, schema_version: 1, payload: vec![] };
                        publish(&mut store, "acct-1", ExpectedVersion::Any, noise);
                        continue;
                    }
                };
                let Ok(event) = event else { continue };
                publish(&mut store, TABLE, ExpectedVersion::Exact(event.stream_version), event);
                history.push(source.rows().clone());
            }
            let mut replica = Replica::new(TABLE);
            let records = records(&store);
            for (offset, stream, value) in &records {
                let changed = replica.apply(*offset, stream, value).unwrap();
                prop_assert_eq!(changed, stream == TABLE);
                if changed {
                    prop_assert_eq!(replica.applied_offset(), Some(*offset));
                }
                prop_assert_eq!(replica.rows(), &history[replica.next_seq() as usize]);
                // A re-delivery of anything up to here changes nothing.
                let (replayed_offset, replayed_stream, replayed) = &records[*offset as usize / 2];
                prop_assert!(!replica.apply(*replayed_offset, replayed_stream, replayed).unwrap());
            }
            prop_assert_eq!(replica.rows(), source.rows());
            prop_assert_eq!(replica.next_seq(), source.seq());
        }
    }

    #[test]
    fn the_source_refuses_impossible_changes() {
        let mut source = SourceTable::default();
        source.insert(1, 10).unwrap();
        assert_eq!(source.insert(1, 11).unwrap_err(), TableError::Exists { key: 1 });
        assert_eq!(source.update(2, 1).unwrap_err(), TableError::Missing { key: 2 });
        assert_eq!(source.delete(2).unwrap_err(), TableError::Missing { key: 2 });
        assert_eq!(source.seq(), 1, "refused changes are not published");
    }

    #[test]
    fn a_gap_or_a_divergence_stops_the_replica() {
        let mut source = SourceTable::default();
        let first = source.insert(1, 10).unwrap().encode();
        let second = source.update(1, 20).unwrap().encode();
        let mut replica = Replica::new(TABLE);
        let error = replica.apply(4, TABLE, &second).unwrap_err();
        assert_eq!(error.to_string(), "table-orders at offset 4: change 1, expected 0");
        assert!(replica.apply(5, TABLE, &first).unwrap());
        let mut other = SourceTable::default();
        other.insert(2, 0).unwrap();
        let stray = other.delete(2).unwrap().encode();
        let error = replica.apply(6, TABLE, &stray).unwrap_err();
        assert_eq!(
            error.to_string(),
            "table-orders at offset 6: change 1 diverges: key 2 does not exist"
        );
        assert_eq!(replica.rows(), &[(1, 10)].into_iter().collect(), "nothing half-applied");
    }
}
