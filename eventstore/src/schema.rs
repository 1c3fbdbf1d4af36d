//! Event schemas: how an aggregate's events become an envelope's payload and back, how
//! events written at older schema versions are lifted (upcast) to the current one, and
//! the fold of a stored stream.
//!
//! Events are written at the aggregate's current `Schema::SCHEMA_VERSION`, encoded with
//! postcard (serde, compact varints, no field names). When an event type changes shape,
//! the version goes up, the old shape stays in the code as a type of its own, and the
//! domain's `Upcaster` decodes the old bytes and lifts them to the current event. An
//! event is never skipped: an unknown schema version, or bytes that do not decode,
//! stop the fold with an error that names the stream, the offset and the version.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::aggregate::Aggregate;
use crate::envelope::{DecodeError, Envelope, EnvelopeRef, PAYLOAD_BYTES_MAX, decode_ref};

/// An aggregate whose events are stored: its current schema version and its upcaster.
pub trait Schema: Aggregate {
    /// The schema version events are written at. Never 0.
    const SCHEMA_VERSION: u16;
    /// Reads events written at older schema versions.
    type Upcaster: Upcaster<Event = Self::Event>;
}

/// Lifts events written at older schema versions to the current event type.
pub trait Upcaster {
    type Event;
    /// The older schema versions it reads, each below the current one.
    const READS: &'static [u16];
    /// Decodes `payload`, written at `schema_version` (one of `READS`), into a current
    /// event, or says why the bytes do not decode.
    fn upcast(schema_version: u16, payload: &[u8]) -> Result<Self::Event, String>;
}

/// The upcaster of a schema that never changed: reads no older version.
pub struct NoUpcaster<E>(PhantomData<E>);

impl<E> Upcaster for NoUpcaster<E> {
    type Event = E;
    const READS: &'static [u16] = &[];
    fn upcast(schema_version: u16, _payload: &[u8]) -> Result<E, String> {
        Err(format!("no upcaster reads schema version {schema_version}"))
    }
}

/// Why a stored stream could not be folded. Every variant names the stream and the
/// offset of the record; none is ever skipped.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FoldError {
    #[error("{stream} at offset {offset}: bad envelope: {error}")]
    Envelope { stream: String, offset: u64, error: DecodeError },
    #[error("{stream} at offset {offset}: unknown schema version {schema_version}")]
    UnknownSchema { stream: String, offset: u64, schema_version: u16 },
    #[error(
        "{stream} at offset {offset}: schema version {schema_version} does not decode: {detail}"
    )]
    Undecodable { stream: String, offset: u64, schema_version: u16, detail: String },
    #[error("{stream} at offset {offset}: stream version {found}, expected {expected}")]
    OutOfOrder { stream: String, offset: u64, expected: u64, found: u64 },
    #[error("{stream} at offset {offset}: offsets must increase, previous was {previous}")]
    OffsetOrder { stream: String, offset: u64, previous: u64 },
    #[error(
        "{stream} at offset {offset}: stream version {stream_version} breaks an invariant: {detail}"
    )]
    Invariant { stream: String, offset: u64, stream_version: u64, detail: String },
}

/// Encodes a value with postcard. Panics only if serde cannot encode the type at all
/// (a programming error, found by the first test that writes one).
pub fn encode_payload<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("postcard encodes every serde type we derive")
}

/// Decodes a postcard value that must use every byte.
pub fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| e.to_string())?;
    if rest.is_empty() { Ok(value) } else { Err(format!("{} trailing bytes", rest.len())) }
}

/// The envelope of `event` at the current schema version. Panics if the encoded event
/// exceeds `PAYLOAD_BYTES_MAX` (the domain's types must stay small).
pub fn envelope_for<A: Schema>(stream_version: u64, command_id: u64, event: &A::Event) -> Envelope {
    let payload = encode_payload(event);
    assert!(payload.len() <= PAYLOAD_BYTES_MAX, "an event of {} bytes", payload.len());
    Envelope { stream_version, command_id, schema_version: A::SCHEMA_VERSION, payload }
}

/// The event in `envelope`, upcast to the current schema.
pub fn decode_event<A: Schema>(
    stream: &str,
    offset: u64,
    envelope: &Envelope,
) -> Result<A::Event, FoldError> {
    decode_event_ref::<A>(stream, offset, envelope.as_ref())
}

/// `decode_event` over a borrowed envelope.
pub fn decode_event_ref<A: Schema>(
    stream: &str,
    offset: u64,
    envelope: EnvelopeRef<'_>,
) -> Result<A::Event, FoldError> {
    let schema_version = envelope.schema_version;
    let decoded = if schema_version == A::SCHEMA_VERSION {
        decode_payload(envelope.payload)
    } else if <A::Upcaster as Upcaster>::READS.contains(&schema_version) {
        debug_assert!(schema_version < A::SCHEMA_VERSION, "upcasters read older versions");
        A::Upcaster::upcast(schema_version, envelope.payload)
    } else {
        return Err(FoldError::UnknownSchema { stream: stream.to_owned(), offset, schema_version });
    };
    decoded.map_err(|detail| FoldError::Undecodable {
        stream: stream.to_owned(),
        offset,
        schema_version,
        detail,
    })
}

/// Folds `(offset, envelope bytes)` records of `stream` from the empty state: the state
/// and its version (the number of events folded).
pub fn fold_stream<'a, A: Schema>(
    stream: &str,
    records: impl IntoIterator<Item = (u64, &'a [u8])>,
) -> Result<(A, u64), FoldError> {
    let mut fold = StreamFold::<A>::new(stream);
    for (offset, bytes) in records {
        fold.push_bytes(offset, bytes)?;
    }
    Ok(fold.finish())
}

/// A fold in progress over one stream's records, in offset order. Checks that stream
/// versions follow each other from where it started and that offsets increase, and
/// validates every event before applying it.
pub struct StreamFold<'s, A> {
    stream: &'s str,
    state: A,
    /// Events folded so far, including those a snapshot stood for.
    version: u64,
    /// Records below this stream version are covered by the starting state (a
    /// snapshot) and skipped, but only before the first event folded here.
    start_version: u64,
    last_offset: Option<u64>,
    /// One past the highest stream version pushed, skipped records included.
    records_end: u64,
}

impl<'s, A: Schema> StreamFold<'s, A> {
    pub fn new(stream: &'s str) -> StreamFold<'s, A> {
        StreamFold::from_state(stream, A::default(), 0)
    }

    /// Starts from `state` at `version` (a snapshot): records of the stream with lower
    /// stream versions are skipped.
    pub fn from_state(stream: &'s str, state: A, version: u64) -> StreamFold<'s, A> {
        StreamFold {
            stream,
            state,
            version,
            start_version: version,
            last_offset: None,
            records_end: 0,
        }
    }

    pub fn push_bytes(&mut self, offset: u64, bytes: &[u8]) -> Result<(), FoldError> {
        let envelope = decode_ref(bytes).map_err(|error| FoldError::Envelope {
            stream: self.stream.to_owned(),
            offset,
            error,
        })?;
        self.push(offset, envelope)
    }

    pub fn push(&mut self, offset: u64, envelope: EnvelopeRef<'_>) -> Result<(), FoldError> {
        let stream = || self.stream.to_owned();
        if let Some(previous) = self.last_offset.filter(|&previous| offset <= previous) {
            return Err(FoldError::OffsetOrder { stream: stream(), offset, previous });
        }
        self.last_offset = Some(offset);
        let found = envelope.stream_version;
        self.records_end = self.records_end.max(found.saturating_add(1));
        if self.version == self.start_version && found < self.start_version {
            return Ok(());
        }
        if found != self.version {
            return Err(FoldError::OutOfOrder {
                stream: stream(),
                offset,
                expected: self.version,
                found,
            });
        }
        let event = decode_event_ref::<A>(self.stream, offset, envelope)?;
        if let Err(error) = self.state.validate(&event) {
            let detail = error.to_string();
            return Err(FoldError::Invariant {
                stream: stream(),
                offset,
                stream_version: found,
                detail,
            });
        }
        self.state.apply(&event);
        self.version += 1;
        Ok(())
    }

    pub fn state(&self) -> &A {
        &self.state
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// One past the highest stream version pushed so far, skipped records included: a
    /// fold from a snapshot checks the stream reached the snapshot.
    pub fn records_end(&self) -> u64 {
        self.records_end
    }

    pub fn finish(self) -> (A, u64) {
        (self.state, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter whose events are `u8` increments; schema 2, reading schema 1 where
    /// increments were written as `bool` (true = 1).
    #[derive(Clone, Debug, Default, PartialEq)]
    struct Counter(u64);

    struct BoolUpcaster;
    impl Upcaster for BoolUpcaster {
        type Event = u8;
        const READS: &'static [u16] = &[1];
        fn upcast(_: u16, payload: &[u8]) -> Result<u8, String> {
            decode_payload::<bool>(payload).map(u8::from)
        }
    }

    impl Aggregate for Counter {
        type Command = u8;
        type Event = u8;
        type Error = String;
        fn handle(&self, command: &u8) -> Result<Vec<u8>, String> {
            Ok(vec![*command])
        }
        fn apply(&mut self, event: &u8) {
            self.0 += u64::from(*event);
        }
        fn validate(&self, event: &u8) -> Result<(), String> {
            if *event == 0 { Err("a zero increment".to_owned()) } else { Ok(()) }
        }
    }

    impl Schema for Counter {
        const SCHEMA_VERSION: u16 = 2;
        type Upcaster = BoolUpcaster;
    }

    fn record(stream_version: u64, schema_version: u16, payload: Vec<u8>) -> Vec<u8> {
        Envelope { stream_version, command_id: 9, schema_version, payload }.encode()
    }

    type Records = Vec<(u64, Vec<u8>)>;

    fn fold(records: &[(u64, Vec<u8>)]) -> Result<(Counter, u64), FoldError> {
        fold_stream::<Counter>("c-1", records.iter().map(|(o, b)| (*o, b.as_slice())))
    }

    #[test]
    fn folds_current_and_upcast_events() {
        let records = [
            (10, record(0, 1, encode_payload(&true))),
            (12, record(1, 2, encode_payload(&5u8))),
            (13, record(2, 2, encode_payload(&7u8))),
        ];
        assert_eq!(fold(&records), Ok((Counter(13), 3)));
        assert_eq!(fold(&[]), Ok((Counter(0), 0)));
    }

    #[test]
    fn every_bad_record_is_an_error_naming_where() {
        let good = record(0, 2, encode_payload(&1u8));
        let cases: Vec<(Records, &str)> = vec![
            (vec![(4, record(0, 3, vec![1]))], "c-1 at offset 4: unknown schema version 3"),
            (vec![(4, record(0, 2, vec![]))], "c-1 at offset 4: schema version 2 does not decode"),
            (
                vec![(4, record(0, 2, vec![1, 1]))],
                "schema version 2 does not decode: 1 trailing bytes",
            ),
            (vec![(4, record(0, 1, vec![7]))], "c-1 at offset 4: schema version 1 does not decode"),
            (vec![(4, good[..5].to_vec())], "c-1 at offset 4: bad envelope"),
            (vec![(4, record(1, 2, vec![1]))], "c-1 at offset 4: stream version 1, expected 0"),
            (vec![(4, good.clone()), (4, record(1, 2, vec![1]))], "offsets must increase"),
            (vec![(4, good.clone()), (5, good.clone())], "stream version 0, expected 1"),
            (vec![(4, record(0, 2, vec![0]))], "stream version 0 breaks an invariant: a zero"),
        ];
        for (records, expected) in cases {
            let error = fold(&records).unwrap_err().to_string();
            assert!(error.contains(expected), "{error} lacks {expected}");
        }
    }

    #[test]
    fn a_fold_from_a_snapshot_skips_only_what_the_snapshot_covers() {
        let records: Vec<(u64, Vec<u8>)> =
            (0..4).map(|v| (v, record(v, 2, encode_payload(&1u8)))).collect();
        let mut fold = StreamFold::from_state("c-1", Counter(2), 2);
        for (offset, bytes) in &records {
            fold.push_bytes(*offset, bytes).unwrap();
        }
        assert_eq!(fold.finish(), (Counter(4), 4));
        let mut fold = StreamFold::from_state("c-1", Counter(2), 2);
        fold.push_bytes(2, &records[2].1).unwrap();
        let error = fold.push_bytes(3, &records[0].1).unwrap_err();
        assert!(matches!(error, FoldError::OutOfOrder { expected: 3, found: 0, .. }), "{error}");
    }
}
