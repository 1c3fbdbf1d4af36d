//! The stream store seam: what the command loop, the tests and the simulator's checks
//! need from any store of event streams, as a sans-IO trait, plus `InMemoryStore`.
//!
//! A request goes in with a caller-chosen id (`append`, `read`); its reply comes out of
//! `drain_completed` later, with the same id, exactly once. `InMemoryStore` completes
//! every request at once; a log-backed store completes them after messages to and from
//! the brokers, so the caller drains after every input, the way it drains a node's
//! effects.
//!
//! # The guarantees a store gives
//!
//! 1. **Optimistic concurrency.** An append with `Exact(n)` is applied only if the
//!    stream holds exactly `n` events when it is applied (`NoStream` is `Exact(0)`);
//!    otherwise nothing is written and the reply is `WrongExpectedVersion { current }`.
//!    `Any` checks nothing. Of two appends that expect the same version, at most one
//!    is applied.
//! 2. **Atomic appends.** The events of one append land together, at consecutive stream
//!    versions from `first_version`, or none of them do.
//! 3. **Per-stream order.** A stream's events have stream versions 0, 1, 2, ... with no
//!    gap, in increasing log offsets; the store writes each event's `stream_version`
//!    (whatever the caller put there is replaced). A read returns a stream in that
//!    order, whole (a stream holds at most `STREAM_EVENTS_MAX` events).
//! 4. **Replies mean what they say.** `Appended`: applied, and durable as far as the
//!    store promises durability. `Failed`: not applied, and never will be.
//!    `Indeterminate`: it may have been applied, or may still be applied later (a
//!    timed-out request to a log); with `Exact(n)` it can only land while the stream
//!    still holds `n` events, so guarantee 1 still bounds it.
//! 5. **Atomic appends across streams.** `append_all` applies every part (each to its
//!    own stream, each checked against its own expectation) or none of them. On the
//!    log it is one transaction. Its `Appended` names the first part's first version;
//!    its `WrongExpectedVersion` the current length of the first part refused. An
//!    `Indeterminate` one can land only whole, and only while every stream still holds
//!    what its part expected.
//! 6. **At-most-once is the caller's job.** The store does not deduplicate. A caller
//!    that retries after `Indeterminate` must re-read the stream and look for its
//!    command id (`Envelope::command_id`) before appending again, and must append with
//!    `Exact`: then a late landing of the first attempt and the retry expect the same
//!    version or the retry saw the first, and at most one of them is applied.
//!    `command::CommandLoop` does exactly this.
//!
//! Reads need not be linearizable for safety: a stale read only costs a
//! `WrongExpectedVersion` and a retry. `InMemoryStore` reads see every completed append.

use std::collections::BTreeMap;

use crate::envelope::{Envelope, PAYLOAD_BYTES_MAX};

/// The most events one append may carry.
pub const APPEND_EVENTS_MAX: usize = 64;
/// The most events a stream may hold; a read returns the whole stream, so this bounds
/// a read too. An append past it fails.
pub const STREAM_EVENTS_MAX: u64 = 100_000;
/// The longest stream name, in bytes.
pub const STREAM_NAME_BYTES_MAX: usize = 255;

/// What an append expects of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream holds no event.
    NoStream,
    /// The stream holds exactly this many events.
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream holding `current` events meets the expectation.
    pub fn admits(self, current: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::Exact(n) => current == n,
        }
    }
}

/// The reply to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreReply {
    /// The append was applied; its first event is at `first_version`.
    Appended { first_version: u64 },
    /// The append was not applied: the stream holds `current` events.
    WrongExpectedVersion { current: u64 },
    /// The stream's events in order, each with its log offset (or, for a store without
    /// offsets, its position), and the payload of the newest snapshot saved for it
    /// (on `snapshot_stream(stream)`), if any.
    Read { events: Vec<(u64, Envelope)>, snapshot: Option<Vec<u8>> },
    /// The append may or may not have been applied (or may be applied later).
    Indeterminate { reason: String },
    /// The request was definitely not applied.
    Failed { reason: String },
}

/// One stream's part of an append across streams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendPart {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub events: Vec<Envelope>,
}

/// The most streams one append may span.
pub const APPEND_STREAMS_MAX: usize = 8;

/// Why an append across streams is refused before it reaches a store: no part, too
/// many, or a stream named twice (its parts could not both meet their expectations).
pub fn check_parts(parts: &[AppendPart]) -> Result<(), String> {
    if parts.is_empty() || parts.len() > APPEND_STREAMS_MAX {
        return Err(format!("{} parts is not 1..={APPEND_STREAMS_MAX}", parts.len()));
    }
    for (i, part) in parts.iter().enumerate() {
        if parts[..i].iter().any(|earlier| earlier.stream == part.stream) {
            return Err(format!("{}: named by two parts of one append", part.stream));
        }
    }
    Ok(())
}

/// A store of event streams, sans-IO. See the module doc for its guarantees.
pub trait StreamStore {
    /// Asks to append `events` to `stream` if it meets `expected`.
    fn append(
        &mut self,
        now_ns: u64,
        request: u64,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<Envelope>,
    );
    /// Asks to append every part, each if its stream meets its expectation, all or none.
    fn append_all(&mut self, now_ns: u64, request: u64, parts: Vec<AppendPart>);
    /// Asks for every event of `stream` (none if it does not exist).
    fn read(&mut self, now_ns: u64, request: u64, stream: &str);
    /// The replies that completed since the last call, in completion order.
    fn drain_completed(&mut self) -> Vec<(u64, StoreReply)>;
}

/// Snapshots of a stream are records of their own stream, next to it (same partition on
/// the log): `acct-3#snapshot`. A read of a stream brings back its newest snapshot.
pub const SNAPSHOT_SUFFIX: &str = "#snapshot";

/// The stream a stream's snapshots are saved on.
pub fn snapshot_stream(stream: &str) -> String {
    format!("{stream}{SNAPSHOT_SUFFIX}")
}

/// The stream a (snapshot) stream belongs to: what its placement is decided by.
pub fn base_stream(stream: &str) -> &str {
    stream.strip_suffix(SNAPSHOT_SUFFIX).unwrap_or(stream)
}

/// Why a stream name or an append is refused before it reaches the store.
pub fn check_append(stream: &str, current: u64, events: &[Envelope]) -> Result<(), String> {
    check_stream_name(stream)?;
    if events.is_empty() {
        return Err(format!("{stream}: an append needs at least one event"));
    }
    if events.len() > APPEND_EVENTS_MAX {
        return Err(format!(
            "{stream}: {} events exceed the {APPEND_EVENTS_MAX}-event append limit",
            events.len()
        ));
    }
    if current + events.len() as u64 > STREAM_EVENTS_MAX {
        return Err(format!("{stream}: full ({current} events, limit {STREAM_EVENTS_MAX})"));
    }
    if let Some(event) = events.iter().find(|e| e.payload.len() > PAYLOAD_BYTES_MAX) {
        return Err(format!("{stream}: a {}-byte payload is too large", event.payload.len()));
    }
    if events.iter().any(|e| e.schema_version == 0) {
        return Err(format!("{stream}: schema version 0 is never written"));
    }
    Ok(())
}

/// Why a stream name is refused: empty or longer than `STREAM_NAME_BYTES_MAX`.
pub fn check_stream_name(stream: &str) -> Result<(), String> {
    if stream.is_empty() || stream.len() > STREAM_NAME_BYTES_MAX {
        return Err(format!(
            "stream name of {} bytes is not 1..={STREAM_NAME_BYTES_MAX}",
            stream.len()
        ));
    }
    Ok(())
}

/// One record of `InMemoryStore`'s log: the stream (the record's key) and the envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub stream: String,
    pub envelope: Envelope,
}

/// A store in memory that completes every request at once. All streams share one log
/// (like one partition), so a record's offset is its index and projections can read
/// the log in offset order.
#[derive(Clone, Debug, Default)]
pub struct InMemoryStore {
    log: Vec<LogRecord>,
    /// Each stream's offsets, in stream-version order.
    streams: BTreeMap<String, Vec<u64>>,
    completed: Vec<(u64, StoreReply)>,
}

impl InMemoryStore {
    pub fn new() -> InMemoryStore {
        InMemoryStore::default()
    }

    /// How many events `stream` holds.
    pub fn stream_len(&self, stream: &str) -> u64 {
        self.streams.get(stream).map_or(0, |offsets| offsets.len() as u64)
    }

    /// The whole log in offset order.
    pub fn log(&self) -> &[LogRecord] {
        &self.log
    }

    /// The names of the streams, sorted.
    pub fn streams(&self) -> impl Iterator<Item = &str> {
        self.streams.keys().map(String::as_str)
    }

    /// `stream`'s events as `(offset, envelope)`, in order.
    pub fn stream(&self, stream: &str) -> Vec<(u64, Envelope)> {
        let offsets = self.streams.get(stream).map_or(&[][..], Vec::as_slice);
        offsets.iter().map(|&offset| (offset, self.log[offset as usize].envelope.clone())).collect()
    }

    fn try_append(
        &mut self,
        stream: &str,
        expected: ExpectedVersion,
        mut events: Vec<Envelope>,
    ) -> StoreReply {
        let current = self.stream_len(stream);
        if let Err(reason) = check_append(stream, current, &events) {
            return StoreReply::Failed { reason };
        }
        if !expected.admits(current) {
            return StoreReply::WrongExpectedVersion { current };
        }
        let offsets = self.streams.entry(stream.to_owned()).or_default();
        for (i, envelope) in events.iter_mut().enumerate() {
            envelope.stream_version = current + i as u64;
        }
        for envelope in events {
            offsets.push(self.log.len() as u64);
            self.log.push(LogRecord { stream: stream.to_owned(), envelope });
        }
        debug_assert!(
            offsets
                .iter()
                .enumerate()
                .all(|(v, &o)| self.log[o as usize].envelope.stream_version == v as u64),
            "stream versions are positions"
        );
        StoreReply::Appended { first_version: current }
    }

    fn try_append_all(&mut self, parts: Vec<AppendPart>) -> StoreReply {
        if let Err(reason) = check_parts(&parts) {
            return StoreReply::Failed { reason };
        }
        for part in &parts {
            let current = self.stream_len(&part.stream);
            if let Err(reason) = check_append(&part.stream, current, &part.events) {
                return StoreReply::Failed { reason };
            }
            if !part.expected.admits(current) {
                return StoreReply::WrongExpectedVersion { current };
            }
        }
        let mut first = None;
        for part in parts {
            let reply = self.try_append(&part.stream, part.expected, part.events);
            let StoreReply::Appended { first_version } = reply else {
                unreachable!("every part was checked: {reply:?}");
            };
            first.get_or_insert(first_version);
        }
        StoreReply::Appended { first_version: first.expect("at least one part") }
    }
}

impl StreamStore for InMemoryStore {
    fn append(
        &mut self,
        _now_ns: u64,
        request: u64,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<Envelope>,
    ) {
        let reply = self.try_append(stream, expected, events);
        self.completed.push((request, reply));
    }

    fn append_all(&mut self, _now_ns: u64, request: u64, parts: Vec<AppendPart>) {
        let reply = self.try_append_all(parts);
        self.completed.push((request, reply));
    }

    fn read(&mut self, _now_ns: u64, request: u64, stream: &str) {
        let reply = match check_stream_name(stream) {
            Ok(()) => {
                let snapshot = self
                    .stream(&snapshot_stream(stream))
                    .pop()
                    .map(|(_, envelope)| envelope.payload);
                StoreReply::Read { events: self.stream(stream), snapshot }
            }
            Err(reason) => StoreReply::Failed { reason },
        };
        self.completed.push((request, reply));
    }

    fn drain_completed(&mut self) -> Vec<(u64, StoreReply)> {
        std::mem::take(&mut self.completed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload: u8) -> Envelope {
        Envelope { stream_version: 999, command_id: 1, schema_version: 1, payload: vec![payload] }
    }

    fn append(
        store: &mut InMemoryStore,
        stream: &str,
        expected: ExpectedVersion,
        n: u8,
    ) -> StoreReply {
        store.append(0, 1, stream, expected, (0..n).map(event).collect());
        let mut replies = store.drain_completed();
        assert_eq!(replies.len(), 1);
        replies.pop().expect("one reply").1
    }

    #[test]
    fn expected_versions_guard_appends() {
        let mut store = InMemoryStore::new();
        assert_eq!(
            append(&mut store, "a", ExpectedVersion::Exact(1), 1),
            StoreReply::WrongExpectedVersion { current: 0 }
        );
        assert_eq!(
            append(&mut store, "a", ExpectedVersion::NoStream, 2),
            StoreReply::Appended { first_version: 0 }
        );
        assert_eq!(
            append(&mut store, "a", ExpectedVersion::NoStream, 1),
            StoreReply::WrongExpectedVersion { current: 2 }
        );
        assert_eq!(
            append(&mut store, "b", ExpectedVersion::Exact(0), 1),
            StoreReply::Appended { first_version: 0 }
        );
        assert_eq!(
            append(&mut store, "a", ExpectedVersion::Exact(2), 1),
            StoreReply::Appended { first_version: 2 }
        );
        assert_eq!(
            append(&mut store, "a", ExpectedVersion::Exact(2), 1),
            StoreReply::WrongExpectedVersion { current: 3 }
        );
        assert_eq!(
            append(&mut store, "a", ExpectedVersion::Any, 1),
            StoreReply::Appended { first_version: 3 }
        );
        let read = store.stream("a");
        let versions: Vec<u64> = read.iter().map(|(_, e)| e.stream_version).collect();
        let offsets: Vec<u64> = read.iter().map(|(o, _)| *o).collect();
        assert_eq!(versions, [0, 1, 2, 3], "the store stamps positions");
        assert_eq!(offsets, [0, 1, 3, 4], "one log, offsets increase");
        store.read(0, 7, "a");
        store.read(0, 8, "nothing");
        assert_eq!(
            store.drain_completed(),
            [
                (7, StoreReply::Read { events: read, snapshot: None }),
                (8, StoreReply::Read { events: vec![], snapshot: None })
            ]
        );
    }

    #[test]
    fn appends_across_streams_land_whole_or_not_at_all() {
        let part = |stream: &str, expected, n: u8| AppendPart {
            stream: stream.to_owned(),
            expected,
            events: (0..n).map(event).collect(),
        };
        let mut store = InMemoryStore::new();
        let mut append_all = |parts| {
            store.append_all(0, 1, parts);
            store.drain_completed().pop().expect("one reply").1
        };
        use ExpectedVersion::{Exact, NoStream};
        let cases = [
            (vec![part("a", NoStream, 1), part("b", NoStream, 2)], Ok(0)),
            (vec![part("a", Exact(1), 1), part("b", Exact(1), 1)], Err(Some(2))),
            (vec![part("c", NoStream, 1), part("a", Exact(2), 1)], Err(Some(1))),
            (vec![part("a", Exact(1), 1), part("a", Exact(2), 1)], Err(None)),
            (vec![], Err(None)),
            (vec![part("b", Exact(2), 1), part("a", Exact(1), 1)], Ok(2)),
        ];
        for (index, (parts, expected)) in cases.into_iter().enumerate() {
            let reply = append_all(parts);
            match expected {
                Ok(first_version) => {
                    assert_eq!(reply, StoreReply::Appended { first_version }, "case {index}")
                }
                Err(Some(current)) => {
                    assert_eq!(reply, StoreReply::WrongExpectedVersion { current }, "case {index}")
                }
                Err(None) => assert!(matches!(reply, StoreReply::Failed { .. }), "case {index}"),
            }
        }
        let lengths: Vec<u64> = ["a", "b", "c"].iter().map(|s| store.stream_len(s)).collect();
        assert_eq!(lengths, [2, 3, 0], "refused parts left nothing behind");
    }

    #[test]
    fn limits_fail_appends_without_writing() {
        let mut store = InMemoryStore::new();
        let too_many = APPEND_EVENTS_MAX as u8 + 1;
        for (stream, n) in [("a", 0), ("a", too_many), ("", 1)] {
            let reply = append(&mut store, stream, ExpectedVersion::Any, n);
            assert!(matches!(reply, StoreReply::Failed { .. }), "{reply:?}");
        }
        assert!(store.log().is_empty());
        let long = "x".repeat(STREAM_NAME_BYTES_MAX + 1);
        store.read(0, 1, &long);
        assert!(matches!(store.drain_completed()[0].1, StoreReply::Failed { .. }));
    }
}
