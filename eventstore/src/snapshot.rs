//! Snapshots: an aggregate's state at a version, so a load folds only the tail.
//!
//! Layout (all integers little-endian):
//!
//! | byte | size | field          | notes                                              |
//! |-----:|-----:|----------------|----------------------------------------------------|
//! |    0 |    4 | magic          | `LJSS`                                             |
//! |    4 |    2 | schema_version | the state's schema (`Snapshotted::STATE_SCHEMA_VERSION`) |
//! |    6 |    8 | stream_version | events the state folds: the tail starts here       |
//! |   14 |    8 | lineage        | `Lineage` of the events it folds                   |
//! |   22 |    4 | state_len      | at most `SNAPSHOT_BYTES_MAX - 26`                  |
//! |   26 |    … | state          | the state, postcard                                |
//!
//! A snapshot is a cache, never the record: one at an old state schema, one that does
//! not decode, or one of another history is dropped and the stream folded from the
//! start (`load` says which it did). Snapshot + tail equals the full fold (a property
//! test checks it at every version of generated bank streams).
//!
//! **Why a lineage.** On a log that may lose acknowledged records (acks 1, min ISR 1,
//! an unclean election), a stream can lose events a snapshot folded, and later events
//! can take their versions. A snapshot of the old history then sits at a version the
//! new stream also reaches, and snapshot + tail would be neither history. The lineage,
//! a digest of every folded event's command id, schema and payload in order, tells the
//! two apart: a load uses a snapshot only when the stream's own events up to its
//! version have the same lineage.

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::envelope::EnvelopeRef;
use crate::schema::{FoldError, Schema, StreamFold, decode_payload, encode_payload};

// `LJS2`: the second layout, with the lineage (a first-layout snapshot is dropped as
// an unknown magic and the stream folded whole).
const MAGIC: &[u8; 4] = b"LJS2";
const HEADER_BYTES: usize = 26;
/// The largest snapshot, encoded.
pub const SNAPSHOT_BYTES_MAX: usize = 1 << 20;

/// An aggregate whose state can be snapshotted.
pub trait Snapshotted: Schema + Serialize + DeserializeOwned {
    /// The version of the state's shape; bump it when the state type changes.
    const STATE_SCHEMA_VERSION: u16;
}

/// A digest of a stream's events in order, so a snapshot names the history it folds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lineage(pub u64);

impl Lineage {
    /// The lineage of no events.
    pub const EMPTY: Lineage = Lineage(0x6c6a_7373_6c69_6e65);

    /// The lineage after one more event.
    pub fn then(self, envelope: EnvelopeRef<'_>) -> Lineage {
        let mut digest = xxhash_rust::xxh3::Xxh3::with_seed(self.0);
        digest.update(&envelope.stream_version.to_le_bytes());
        digest.update(&envelope.command_id.to_le_bytes());
        digest.update(&envelope.schema_version.to_le_bytes());
        digest.update(envelope.payload);
        Lineage(digest.digest())
    }
}

/// A state at a version, encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub stream_version: u64,
    /// The lineage of the `stream_version` events the state folds.
    pub lineage: Lineage,
    pub schema_version: u16,
    pub state: Vec<u8>,
}

/// Why a snapshot cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SnapshotError {
    #[error("snapshot of {available} bytes is shorter than its {HEADER_BYTES}-byte header")]
    Truncated { available: usize },
    #[error("bad snapshot magic")]
    BadMagic,
    #[error("snapshot of {size_bytes} bytes exceeds the {SNAPSHOT_BYTES_MAX}-byte limit")]
    TooLarge { size_bytes: usize },
    #[error("state length {state_len} does not match the {available} bytes after the header")]
    LengthMismatch { state_len: usize, available: usize },
    #[error("snapshot at state schema {found}, current is {current}")]
    StaleSchema { found: u16, current: u16 },
    #[error("snapshot state does not decode: {detail}")]
    Undecodable { detail: String },
}

/// Why a stream could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LoadError {
    #[error(transparent)]
    Fold(#[from] FoldError),
    #[error("{stream}: snapshot at version {snapshot_version}, the stream ends at {stream_end}")]
    SnapshotAhead { stream: String, snapshot_version: u64, stream_end: u64 },
}

impl Snapshot {
    /// A snapshot of `state`, which folds `stream_version` events of lineage `lineage`.
    pub fn take<A: Snapshotted>(
        state: &A,
        stream_version: u64,
        lineage: Lineage,
    ) -> Result<Snapshot, SnapshotError> {
        let state = encode_payload(state);
        if HEADER_BYTES + state.len() > SNAPSHOT_BYTES_MAX {
            return Err(SnapshotError::TooLarge { size_bytes: HEADER_BYTES + state.len() });
        }
        Ok(Snapshot { stream_version, lineage, schema_version: A::STATE_SCHEMA_VERSION, state })
    }

    /// The state, its version and its lineage, if the snapshot is at the current state
    /// schema.
    pub fn restore<A: Snapshotted>(&self) -> Result<(A, u64, Lineage), SnapshotError> {
        if self.schema_version != A::STATE_SCHEMA_VERSION {
            let current = A::STATE_SCHEMA_VERSION;
            return Err(SnapshotError::StaleSchema { found: self.schema_version, current });
        }
        let state =
            decode_payload(&self.state).map_err(|detail| SnapshotError::Undecodable { detail })?;
        Ok((state, self.stream_version, self.lineage))
    }

    pub fn encode(&self) -> Vec<u8> {
        assert!(HEADER_BYTES + self.state.len() <= SNAPSHOT_BYTES_MAX, "snapshot too large");
        let mut out = Vec::with_capacity(HEADER_BYTES + self.state.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.schema_version.to_le_bytes());
        out.extend_from_slice(&self.stream_version.to_le_bytes());
        out.extend_from_slice(&self.lineage.0.to_le_bytes());
        out.extend_from_slice(&(self.state.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.state);
        out
    }

    /// Decodes a snapshot; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let Some((header, state)) = bytes.split_first_chunk::<HEADER_BYTES>() else {
            return Err(SnapshotError::Truncated { available: bytes.len() });
        };
        if &header[..4] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        if bytes.len() > SNAPSHOT_BYTES_MAX {
            return Err(SnapshotError::TooLarge { size_bytes: bytes.len() });
        }
        let u64_at = |at: usize| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(bytes)
        };
        let state_len =
            u32::from_le_bytes([header[22], header[23], header[24], header[25]]) as usize;
        if state_len != state.len() {
            return Err(SnapshotError::LengthMismatch { state_len, available: state.len() });
        }
        Ok(Snapshot {
            stream_version: u64_at(6),
            lineage: Lineage(u64_at(14)),
            schema_version: u16::from_le_bytes([header[4], header[5]]),
            state: state.to_vec(),
        })
    }
}

/// A loaded stream: its state and version, and whether a snapshot was used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded<A> {
    pub state: A,
    pub version: u64,
    pub from_snapshot: bool,
}

/// Loads `stream` from `snapshot` (if it restores) and the `(offset, envelope bytes)`
/// records after it; records the snapshot covers may be passed too and are skipped.
/// Without a usable snapshot, folds every record from the start. When the records
/// start at version 0 and reach the snapshot's version, the snapshot is used only if
/// their lineage is its own (a snapshot of another history is dropped); a tail alone
/// cannot show that, and is trusted. Records that end before the snapshot's version are
/// an error (the snapshot is of another stream, or the stream lost events).
pub fn load<'a, A: Snapshotted>(
    stream: &str,
    snapshot: Option<&Snapshot>,
    records: impl IntoIterator<Item = (u64, &'a [u8])>,
) -> Result<Loaded<A>, LoadError> {
    let records: Vec<(u64, &[u8])> = records.into_iter().collect();
    let restored = snapshot
        .and_then(|snapshot| snapshot.restore::<A>().ok())
        .filter(|(_, version, lineage)| !of_another_history(&records, *version, *lineage));
    let from_snapshot = restored.is_some();
    let mut fold = match restored {
        Some((state, version, _)) => StreamFold::from_state(stream, state, version),
        None => StreamFold::new(stream),
    };
    let snapshot_version = fold.version();
    for (offset, bytes) in records {
        fold.push_bytes(offset, bytes)?;
    }
    // Only records can show the stream is short of the snapshot: an empty tail cannot.
    if fold.records_end() > 0 && fold.records_end() < snapshot_version {
        let stream_end = fold.records_end();
        return Err(LoadError::SnapshotAhead {
            stream: stream.to_owned(),
            snapshot_version,
            stream_end,
        });
    }
    let (state, version) = fold.finish();
    Ok(Loaded { state, version, from_snapshot })
}

/// Whether `records`, read from version 0, show a history other than the one of
/// `lineage` below `version`. A tail that starts later, or records that stop short of
/// `version`, show nothing.
fn of_another_history(records: &[(u64, &[u8])], version: u64, lineage: Lineage) -> bool {
    let mut folded = Lineage::EMPTY;
    for (i, (_, bytes)) in records.iter().enumerate().take(version as usize) {
        match crate::envelope::decode_ref(bytes) {
            Ok(envelope) if envelope.stream_version == i as u64 => folded = folded.then(envelope),
            // Not a stream read from 0 (or a record the fold will refuse).
            _ => return false,
        }
    }
    records.len() as u64 >= version && folded != lineage
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{Aggregate, execute};
    use crate::domains::bank::{Account, BankCommand};
    use crate::schema::{envelope_for, fold_stream};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, RngSeed};

    const STREAM: &str = "acct-1";

    fn command() -> impl Strategy<Value = BankCommand> {
        prop_oneof![
            (1..100u64).prop_map(|amount| BankCommand::Deposit { amount }),
            (1..100u64).prop_map(|amount| BankCommand::Withdraw { amount }),
            (0..8u64, 1..100u64).prop_map(|(transfer, amount)| BankCommand::Debit {
                transfer,
                to: "acct-2".to_owned(),
                amount
            }),
            (0..8u64, 1..100u64).prop_map(|(transfer, amount)| BankCommand::Credit {
                transfer,
                from: "acct-3".to_owned(),
                amount
            }),
            (0..8u64, 1..100u64)
                .prop_map(|(transfer, amount)| BankCommand::Refund { transfer, amount }),
        ]
    }

    /// The encoded stream the accepted commands make, and the state after each event.
    fn stream(commands: &[BankCommand]) -> (Vec<Vec<u8>>, Vec<Account>) {
        let mut states = vec![Account::default()];
        let mut records = Vec::new();
        for (id, command) in commands.iter().enumerate() {
            let state = states.last().expect("a state").clone();
            let Ok((_, events)) = execute(&state, command) else { continue };
            let mut state = state;
            for event in events {
                records.push(
                    envelope_for::<Account>(records.len() as u64, id as u64, &event).encode(),
                );
                state.apply(&event);
                states.push(state.clone());
            }
        }
        (records, states)
    }

    fn with_offsets(records: &[Vec<u8>], first: usize) -> impl Iterator<Item = (u64, &[u8])> {
        records.iter().enumerate().skip(first).map(|(o, b)| (100 + o as u64 * 3, b.as_slice()))
    }

    fn config() -> Config {
        Config {
            cases: 200,
            rng_algorithm: RngAlgorithm::ChaCha,
            rng_seed: RngSeed::Fixed(41),
            failure_persistence: None,
            ..Config::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        /// Snapshot + tail equals the full fold, for a snapshot at every version, with
        /// the whole stream passed or only the tail.
        #[test]
        fn snapshot_plus_tail_is_the_full_fold(commands in proptest::collection::vec(command(), 0..40)) {
            let (records, states) = stream(&commands);
            let (full, version) = fold_stream::<Account>(STREAM, with_offsets(&records, 0)).unwrap();
            prop_assert_eq!(&full, states.last().unwrap());
            for (at, state) in states.iter().enumerate() {
                let snapshot = Snapshot::take(state, at as u64, lineage(&records[..at])).unwrap();
                let snapshot = Snapshot::decode(&snapshot.encode()).unwrap();
                for first in [0, at] {
                    let loaded = load::<Account>(STREAM, Some(&snapshot), with_offsets(&records, first)).unwrap();
                    prop_assert_eq!(&loaded, &Loaded { state: full.clone(), version, from_snapshot: true });
                }
            }
        }

        #[test]
        fn snapshot_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(snapshot) = Snapshot::decode(&bytes) {
                let _ = snapshot.restore::<Account>();
            }
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&bytes);
            if let Ok(snapshot) = Snapshot::decode(&framed) {
                let _ = snapshot.restore::<Account>();
            }
        }
    }

    /// The lineage of encoded envelopes.
    fn lineage(records: &[Vec<u8>]) -> Lineage {
        records.iter().fold(Lineage::EMPTY, |lineage, bytes| {
            lineage.then(crate::envelope::decode_ref(bytes).unwrap())
        })
    }

    fn deposits(n: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|v| {
                let event = crate::domains::bank::BankEvent::Deposited { amount: 1 };
                envelope_for::<Account>(v, v, &event).encode()
            })
            .collect()
    }

    #[test]
    fn an_unusable_snapshot_falls_back_to_the_full_fold() {
        let records = deposits(4);
        let ours = lineage(&records[..2]);
        let mut stale =
            Snapshot::take(&Account { balance: 99, ..Account::default() }, 2, ours).unwrap();
        stale.schema_version += 1;
        let garbage =
            Snapshot { stream_version: 2, lineage: ours, schema_version: 1, state: vec![0xff; 3] };
        // Of another history: two deposits of 50 the stream does not hold.
        let lost = (0..2)
            .map(|v| {
                let event = crate::domains::bank::BankEvent::Deposited { amount: 50 };
                envelope_for::<Account>(v, 90 + v, &event).encode()
            })
            .collect::<Vec<_>>();
        let other =
            Snapshot::take(&Account { balance: 100, ..Account::default() }, 2, lineage(&lost))
                .unwrap();
        for snapshot in [stale, garbage, other.clone()] {
            let loaded =
                load::<Account>(STREAM, Some(&snapshot), with_offsets(&records, 0)).unwrap();
            assert_eq!((loaded.state.balance, loaded.version, loaded.from_snapshot), (4, 4, false));
        }
        // A tail alone cannot show the history differs: it is trusted.
        let loaded = load::<Account>(STREAM, Some(&other), with_offsets(&records, 2)).unwrap();
        assert_eq!((loaded.state.balance, loaded.version, loaded.from_snapshot), (102, 4, true));
    }

    #[test]
    fn a_snapshot_ahead_of_its_stream_is_an_error() {
        let records = deposits(2);
        let snapshot =
            Snapshot::take(&Account { balance: 5, ..Account::default() }, 5, Lineage::EMPTY)
                .unwrap();
        let error =
            load::<Account>(STREAM, Some(&snapshot), with_offsets(&records, 0)).unwrap_err();
        assert_eq!(error.to_string(), "acct-1: snapshot at version 5, the stream ends at 2");
    }
}
