//! Lines of JSON to and from the history types.
//!
//! Every line after the header is one flat object read into `LineIn`, whose fields are
//! all optional; `line_from_wire` then demands exactly the fields the line's `type`
//! (and `f`) need. Reading flat keeps parsing fast (no buffering of tagged enums) and
//! lets errors say precisely which field is missing or out of place.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::parse::{Problem, quoted};
use super::text::Interner;
use super::{
    Closing, Event, EventType, FORMAT_VERSION, Header, Isolation, MicroOp, Op, ProcessorGroup,
    Protocol, ProtocolEvent, Record, Replica,
};
use crate::config::Config;
use crate::invariant::Guarantee;

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(3)?;
        tuple.serialize_element(&self.offset)?;
        tuple.serialize_element(&self.key)?;
        tuple.serialize_element(&self.value)?;
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // One reader of the `[offset, key, value]` form: `RecordIn`'s, without interning.
        let record = RecordIn::deserialize(deserializer)?;
        Ok(Record {
            offset: record.offset,
            key: record.key.map(|key| key.as_str().into()),
            value: record.value.as_str().into(),
        })
    }
}

/// A string as read: borrowed from the line unless it holds escapes, so reading a
/// line's `type`, `f` or a record allocates nothing.
struct Borrowed<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Borrowed<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BorrowedVisitor;

        impl<'de> Visitor<'de> for BorrowedVisitor {
            type Value = Borrowed<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Borrowed(Cow::Borrowed(text)))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Borrowed(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(Borrowed(Cow::Owned(text)))
            }
        }

        deserializer.deserialize_str(BorrowedVisitor)
    }
}

impl Borrowed<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

/// A record as read, its strings borrowed from the line until they are interned.
struct RecordIn<'a> {
    offset: u64,
    key: Option<Borrowed<'a>>,
    value: Borrowed<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for RecordIn<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RecordVisitor;

        impl<'de> Visitor<'de> for RecordVisitor {
            type Value = RecordIn<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a record [offset, key or null, value]")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let offset =
                    seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let key = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let value =
                    seq.next_element()?.ok_or_else(|| de::Error::invalid_length(2, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(4, &self));
                }
                Ok(RecordIn { offset, key, value })
            }
        }

        deserializer.deserialize_seq(RecordVisitor)
    }
}

/// Records as read, their keys and values interned.
fn records_from_wire(records: Vec<RecordIn<'_>>, interner: &mut Interner) -> Vec<Record> {
    records
        .into_iter()
        .map(|record| Record {
            offset: record.offset,
            key: record.key.map(|key| interner.intern(key.as_str())),
            value: interner.intern(record.value.as_str()),
        })
        .collect()
}

/// The header as written.
#[derive(Serialize)]
struct HeaderOut<'a> {
    v: u64,
    system: &'a str,
    config: &'a Config,
    #[serde(skip_serializing_if = "Option::is_none")]
    promises: Option<&'a [Guarantee]>,
    #[serde(skip_serializing_if = "is_false")]
    processors_settled: bool,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    processors: &'a [ProcessorGroup],
    #[serde(skip_serializing_if = "Option::is_none")]
    about: Option<&'a str>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The header as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderIn {
    v: u64,
    system: String,
    #[serde(default)]
    config: Config,
    #[serde(default)]
    promises: Option<Vec<Guarantee>>,
    #[serde(default)]
    processors_settled: bool,
    #[serde(default)]
    processors: Vec<ProcessorGroup>,
    about: Option<String>,
}

/// Only the version, read first so that a newer history is refused for its version and
/// not for the fields it added.
#[derive(Deserialize)]
struct VersionIn {
    v: Option<serde_json::Value>,
}

pub(super) fn header_from_line(line: &str) -> Result<Header, Problem> {
    if !line.trim_start().starts_with('{') {
        if let Some(problem) = Problem::not_an_object(line) {
            return Err(problem);
        }
    }
    let version: VersionIn = serde_json::from_str(line).map_err(|error| {
        Problem::not_an_object(line).unwrap_or_else(|| Problem::malformed(error, line))
    })?;
    match version.v {
        None => return Err(Problem::Invalid("the header has no `v` (format version)".into())),
        Some(v) if v.as_u64() != Some(FORMAT_VERSION) => {
            return Err(Problem::Version(quoted(&v.to_string()).into_owned()));
        }
        Some(_) => {}
    }
    let header: HeaderIn =
        serde_json::from_str(line).map_err(|error| Problem::malformed(error, line))?;
    debug_assert_eq!(header.v, FORMAT_VERSION);
    if let Some(unpromisable) =
        header.promises.iter().flatten().find(|guarantee| !guarantee.stateable())
    {
        return Err(Problem::Invalid(format!(
            "no system can promise `{unpromisable}`: read_uncommitted reads are allowed to see uncommitted data"
        )));
    }
    Ok(Header {
        system: header.system,
        config: header.config,
        promises: header.promises,
        processors_settled: header.processors_settled,
        processors: header.processors,
        about: header.about,
    })
}

pub(super) fn write_header(out: &mut impl Write, header: &Header) -> io::Result<()> {
    let line = HeaderOut {
        v: FORMAT_VERSION,
        system: &header.system,
        config: &header.config,
        promises: header.promises.as_deref(),
        processors_settled: header.processors_settled,
        processors: &header.processors,
        about: header.about.as_deref(),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// Any line after the header, as read: every field optional, none unknown. Strings the
/// checkers keep are owned; the rest are borrowed from the line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn<'a> {
    i: Option<u64>,
    t_ns: Option<u64>,
    process: Option<u64>,
    #[serde(rename = "type", borrow)]
    kind: Option<Borrowed<'a>>,
    #[serde(borrow)]
    f: Option<Borrowed<'a>>,
    partition: Option<u32>,
    key: Option<String>,
    value: Option<String>,
    offset: Option<u64>,
    from: Option<u64>,
    #[serde(borrow)]
    records: Option<Vec<RecordIn<'a>>>,
    partitions: Option<Vec<u32>>,
    error: Option<String>,
    node: Option<u32>,
    epoch: Option<u64>,
    log_start_offset: Option<u64>,
    high_watermark: Option<u64>,
    #[serde(borrow)]
    isolation: Option<Borrowed<'a>>,
    txn_id: Option<String>,
    #[serde(borrow)]
    ops: Option<Vec<MicroOpIn<'a>>>,
    last_stable_offset: Option<u64>,
    aborted: Option<Vec<u64>>,
    log_end_offset: Option<u64>,
    group: Option<String>,
    seek: Option<bool>,
    assignment: Option<Vec<u32>>,
    /// Read only to refuse it in words: a history names partitions, not topics.
    topics: Option<de::IgnoredAny>,
}

/// A micro-op of a `txn`, as read: every field optional, none unknown.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MicroOpIn<'a> {
    #[serde(borrow)]
    f: Option<Borrowed<'a>>,
    group: Option<String>,
    partition: Option<u32>,
    key: Option<String>,
    value: Option<String>,
    offset: Option<u64>,
    from: Option<u64>,
    to: Option<u64>,
    #[serde(borrow)]
    records: Option<Vec<RecordIn<'a>>>,
}

/// A micro-op of a `txn`, as written. Field order is the order on the line.
#[derive(Serialize, Default)]
struct MicroOpOut<'a> {
    f: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    partition: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<&'a [Record]>,
}

/// Any line after the header, as written. Field order is the order on the line.
#[derive(Serialize, Default)]
struct LineOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    i: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<u64>,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    f: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    txn_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partitions: Option<&'a [u32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seek: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    assignment: Option<&'a [u32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    isolation: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_start_offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    high_watermark: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_stable_offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aborted: Option<&'a [u64]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_end_offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<&'a [Record]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ops: Option<Vec<MicroOpOut<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// A line after the header, typed.
pub(super) enum Line {
    Event(Event),
    Closing(Closing),
}

pub(super) fn line_from_str(line: &str, interner: &mut Interner) -> Result<Line, Problem> {
    let wire: LineIn<'_> = match serde_json::from_str(line) {
        Ok(wire) => wire,
        Err(error) => {
            return Err(
                Problem::not_an_object(line).unwrap_or_else(|| Problem::malformed(error, line))
            );
        }
    };
    line_from_wire(wire, interner)
}

/// What a line or micro-op is, for messages: made only when one is needed, so reading a
/// good line formats nothing.
type What<'w> = &'w dyn Fn() -> String;

/// A line's fields other than `type`, one bit each, in the order a message names the
/// first one out of place.
mod field {
    pub const I: u32 = 1 << 0;
    pub const T_NS: u32 = 1 << 1;
    pub const PROCESS: u32 = 1 << 2;
    pub const F: u32 = 1 << 3;
    pub const PARTITION: u32 = 1 << 4;
    pub const KEY: u32 = 1 << 5;
    pub const VALUE: u32 = 1 << 6;
    pub const OFFSET: u32 = 1 << 7;
    pub const FROM: u32 = 1 << 8;
    pub const RECORDS: u32 = 1 << 9;
    pub const PARTITIONS: u32 = 1 << 10;
    pub const ERROR: u32 = 1 << 11;
    pub const NODE: u32 = 1 << 12;
    pub const EPOCH: u32 = 1 << 13;
    pub const LOG_START_OFFSET: u32 = 1 << 14;
    pub const HIGH_WATERMARK: u32 = 1 << 15;
    pub const ISOLATION: u32 = 1 << 16;
    pub const TXN_ID: u32 = 1 << 17;
    pub const OPS: u32 = 1 << 18;
    pub const LAST_STABLE_OFFSET: u32 = 1 << 19;
    pub const ABORTED: u32 = 1 << 20;
    pub const LOG_END_OFFSET: u32 = 1 << 21;
    pub const GROUP: u32 = 1 << 22;
    pub const SEEK: u32 = 1 << 23;
    pub const ASSIGNMENT: u32 = 1 << 24;
    pub const TOPICS: u32 = 1 << 25;

    /// The name of each bit.
    pub const NAMES: [&str; 26] = [
        "i",
        "t_ns",
        "process",
        "f",
        "partition",
        "key",
        "value",
        "offset",
        "from",
        "records",
        "partitions",
        "error",
        "node",
        "epoch",
        "log_start_offset",
        "high_watermark",
        "isolation",
        "txn_id",
        "ops",
        "last_stable_offset",
        "aborted",
        "log_end_offset",
        "group",
        "seek",
        "assignment",
        "topics",
    ];
}

impl LineIn<'_> {
    /// The fields present, to refuse those a line's type does not take.
    fn present(&self) -> u32 {
        use field::*;
        [
            (I, self.i.is_some()),
            (T_NS, self.t_ns.is_some()),
            (PROCESS, self.process.is_some()),
            (F, self.f.is_some()),
            (PARTITION, self.partition.is_some()),
            (KEY, self.key.is_some()),
            (VALUE, self.value.is_some()),
            (OFFSET, self.offset.is_some()),
            (FROM, self.from.is_some()),
            (RECORDS, self.records.is_some()),
            (PARTITIONS, self.partitions.is_some()),
            (ERROR, self.error.is_some()),
            (NODE, self.node.is_some()),
            (EPOCH, self.epoch.is_some()),
            (LOG_START_OFFSET, self.log_start_offset.is_some()),
            (HIGH_WATERMARK, self.high_watermark.is_some()),
            (ISOLATION, self.isolation.is_some()),
            (TXN_ID, self.txn_id.is_some()),
            (OPS, self.ops.is_some()),
            (LAST_STABLE_OFFSET, self.last_stable_offset.is_some()),
            (ABORTED, self.aborted.is_some()),
            (LOG_END_OFFSET, self.log_end_offset.is_some()),
            (GROUP, self.group.is_some()),
            (SEEK, self.seek.is_some()),
            (ASSIGNMENT, self.assignment.is_some()),
            (TOPICS, self.topics.is_some()),
        ]
        .into_iter()
        .fold(0, |mask, (bit, present)| if present { mask | bit } else { mask })
    }

    /// Refuses any present field outside `allowed` (`type` is always admitted).
    fn only(&self, what: What<'_>, allowed: u32) -> Result<(), Problem> {
        let out_of_place = self.present() & !allowed;
        if out_of_place == 0 {
            return Ok(());
        }
        let field = field::NAMES[out_of_place.trailing_zeros() as usize];
        Err(Problem::Invalid(format!("`{field}` does not belong on {}", what())))
    }
}

fn need<T>(field: Option<T>, what: What<'_>, name: &str) -> Result<T, Problem> {
    field.ok_or_else(|| Problem::Invalid(format!("{} has no `{name}`", what())))
}

fn line_from_wire(mut wire: LineIn<'_>, interner: &mut Interner) -> Result<Line, Problem> {
    let kind = need(wire.kind.take(), &|| "the line".to_string(), "type")?;
    let event_type = match kind.as_str() {
        "invoke" => Some(EventType::Invoke),
        "ok" => Some(EventType::Ok),
        "fail" => Some(EventType::Fail),
        "info" => Some(EventType::Info),
        _ => None,
    };
    match event_type {
        Some(event_type) => event_from_wire(wire, event_type, interner).map(Line::Event),
        None => closing_from_wire(wire, kind.as_str(), interner).map(Line::Closing),
    }
}

/// The fields every operation event takes, and those a completion that did not end
/// `ok` takes too.
const EVENT_FIELDS: u32 = field::I | field::T_NS | field::PROCESS | field::F;
const ENDED_FIELDS: u32 = EVENT_FIELDS | field::ERROR;

fn event_from_wire(
    mut wire: LineIn<'_>,
    kind: EventType,
    interner: &mut Interner,
) -> Result<Event, Problem> {
    let f = need(wire.f.take(), &|| format!("an {} event", kind.name()), "f")?;
    let f = f.as_str();
    let what_text = || {
        let article = if f.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        format!("{article} {f} {}", kind.name())
    };
    let what: What<'_> = &what_text;
    let ended = matches!(kind, EventType::Fail | EventType::Info);
    let allowed = if ended { ENDED_FIELDS } else { EVENT_FIELDS };
    let invoke = kind == EventType::Invoke;
    let op = match f {
        "send" => {
            let also = field::PARTITION | field::KEY | field::VALUE;
            wire.only(what, allowed | also | if invoke { 0 } else { field::OFFSET })?;
            Op::Send {
                partition: need(wire.partition, what, "partition")?,
                key: wire.key.take(),
                value: need(wire.value.take(), what, "value")?,
                offset: wire.offset,
            }
        }
        "poll" => {
            let also = field::PARTITION | field::FROM | field::ISOLATION;
            let results = field::RECORDS | field::ASSIGNMENT;
            wire.only(what, allowed | also | if invoke { 0 } else { results })?;
            // An ok poll states its result, possibly `[]`; a fail or info poll may state
            // what it read before it ended (absent: nothing).
            let records = match kind {
                EventType::Ok => need(wire.records.take(), what, "records")?,
                _ => wire.records.take().unwrap_or_default(),
            };
            Op::Poll {
                partition: need(wire.partition, what, "partition")?,
                from: need(wire.from, what, "from")?,
                records: records_from_wire(records, interner),
                isolation: isolation_from_wire(wire.isolation.take())?,
                assignment: wire.assignment.take().map(Vec::into_boxed_slice),
            }
        }
        "assign" => {
            wire.only(what, allowed | field::PARTITIONS | field::SEEK)?;
            Op::Assign {
                partitions: need(wire.partitions.take(), what, "partitions")?,
                seek: wire.seek.unwrap_or(true),
            }
        }
        "subscribe" => {
            if wire.topics.is_some() {
                return Err(Problem::Invalid(format!(
                    "{} names `topics`, but a history names partitions, not topics: state the consumer group as `group` and the partitions it may assign as `partitions`",
                    what()
                )));
            }
            let also = field::GROUP | field::PARTITIONS;
            wire.only(what, allowed | also | if invoke { 0 } else { field::ASSIGNMENT })?;
            Op::Subscribe {
                group: need(wire.group.take(), what, "group")?,
                partitions: need(wire.partitions.take(), what, "partitions")?,
                assignment: wire.assignment.take().map(Vec::into_boxed_slice),
            }
        }
        "init" => {
            wire.only(what, allowed | field::TXN_ID)?;
            Op::Init { txn_id: need(wire.txn_id.take(), what, "txn_id")? }
        }
        "txn" => {
            wire.only(what, allowed | field::TXN_ID | field::OPS)?;
            let txn_id = need(wire.txn_id.take(), what, "txn_id")?;
            let ops = need(wire.ops.take(), what, "ops")?
                .into_iter()
                .enumerate()
                .map(|(index, micro)| micro_from_wire(micro, kind, index, interner))
                .collect::<Result<Vec<MicroOp>, Problem>>()?;
            Op::Txn { txn_id, ops }
        }
        _ => return Err(Problem::UnknownOperation(quoted(f).into_owned())),
    };
    Ok(Event {
        i: need(wire.i, what, "i")?,
        t_ns: need(wire.t_ns, what, "t_ns")?,
        process: need(wire.process, what, "process")?,
        kind,
        op,
        error: wire.error.take(),
    })
}

fn isolation_from_wire(isolation: Option<Borrowed<'_>>) -> Result<Isolation, Problem> {
    match isolation.as_ref().map(Borrowed::as_str) {
        None | Some("read_committed") => Ok(Isolation::ReadCommitted),
        Some("read_uncommitted") => Ok(Isolation::ReadUncommitted),
        Some(other) => Err(Problem::Invalid(format!(
            "unknown isolation `{}` (read_committed or read_uncommitted)",
            quoted(other)
        ))),
    }
}

/// One micro-op of a txn line (`index` in its `ops`), with exactly the fields its `f`
/// takes; results only on a completion (ok, fail or info).
fn micro_from_wire(
    mut micro: MicroOpIn<'_>,
    kind: EventType,
    index: usize,
    interner: &mut Interner,
) -> Result<MicroOp, Problem> {
    let at = || format!("a txn {}'s ops[{index}]", kind.name());
    let f = need(micro.f.take(), &at, "f")?;
    let f = f.as_str();
    let what_text = || format!("{} ({f})", at());
    let what: What<'_> = &what_text;
    let present = [
        ("group", micro.group.is_some()),
        ("partition", micro.partition.is_some()),
        ("key", micro.key.is_some()),
        ("value", micro.value.is_some()),
        ("offset", micro.offset.is_some()),
        ("from", micro.from.is_some()),
        ("to", micro.to.is_some()),
        ("records", micro.records.is_some()),
    ];
    let only = |allowed: &[&str]| -> Result<(), Problem> {
        match present.iter().find(|(name, there)| *there && !allowed.contains(name)) {
            Some((field, _)) => {
                Err(Problem::Invalid(format!("`{field}` does not belong on {}", what())))
            }
            None => Ok(()),
        }
    };
    let completed = kind != EventType::Invoke;
    Ok(match f {
        "send" => {
            only(if completed {
                &["partition", "key", "value", "offset"]
            } else {
                &["partition", "key", "value"]
            })?;
            MicroOp::Send {
                partition: need(micro.partition, what, "partition")?,
                key: micro.key.take(),
                value: need(micro.value.take(), what, "value")?,
                offset: micro.offset,
            }
        }
        "poll" => {
            only(if completed {
                &["partition", "from", "records"]
            } else {
                &["partition", "from"]
            })?;
            MicroOp::Poll {
                partition: need(micro.partition, what, "partition")?,
                from: need(micro.from, what, "from")?,
                records: records_from_wire(micro.records.take().unwrap_or_default(), interner),
            }
        }
        "commit-offset" => {
            only(&["group", "partition", "from", "to"])?;
            MicroOp::CommitOffset {
                group: need(micro.group.take(), what, "group")?,
                partition: need(micro.partition, what, "partition")?,
                from: need(micro.from, what, "from")?,
                to: need(micro.to, what, "to")?,
            }
        }
        _ => {
            return Err(Problem::Invalid(format!(
                "unknown micro-op `{}` in {} (send, poll or commit-offset)",
                quoted(f),
                at()
            )));
        }
    })
}

const REPLICA_FIELDS: u32 = field::NODE
    | field::PARTITION
    | field::LOG_START_OFFSET
    | field::HIGH_WATERMARK
    | field::LAST_STABLE_OFFSET
    | field::ABORTED
    | field::LOG_END_OFFSET
    | field::RECORDS;

fn closing_from_wire(
    mut wire: LineIn<'_>,
    kind: &str,
    interner: &mut Interner,
) -> Result<Closing, Problem> {
    let what_text = || format!("a {kind} line");
    let what: What<'_> = &what_text;
    let partition_event = |wire: &LineIn, name: &str| -> Result<(u32, u64), Problem> {
        let (bit, value) = match name {
            "epoch" => (field::EPOCH, wire.epoch),
            _ => (field::OFFSET, wire.offset),
        };
        wire.only(what, field::T_NS | field::NODE | field::PARTITION | bit)?;
        Ok((need(wire.partition, what, "partition")?, need(value, what, name)?))
    };
    let event = match kind {
        "replica" => {
            wire.only(what, REPLICA_FIELDS)?;
            let records = need(wire.records.take(), what, "records")?;
            return Ok(Closing::Replica(Replica {
                node: need(wire.node, what, "node")?,
                partition: need(wire.partition, what, "partition")?,
                log_start_offset: wire.log_start_offset.unwrap_or(0),
                high_watermark: need(wire.high_watermark, what, "high_watermark")?,
                last_stable_offset: wire.last_stable_offset,
                aborted: wire.aborted.take().unwrap_or_default(),
                log_end_offset: wire.log_end_offset,
                records: records_from_wire(records, interner),
            }));
        }
        "leader" => {
            let (partition, epoch) = partition_event(&wire, "epoch")?;
            ProtocolEvent::Leader { partition, epoch }
        }
        "follower" => {
            let (partition, epoch) = partition_event(&wire, "epoch")?;
            ProtocolEvent::Follower { partition, epoch }
        }
        "high-watermark" => {
            let (partition, offset) = partition_event(&wire, "offset")?;
            ProtocolEvent::HighWatermark { partition, offset }
        }
        "truncate" => {
            let (partition, offset) = partition_event(&wire, "offset")?;
            ProtocolEvent::Truncate { partition, offset }
        }
        "restart" => {
            wire.only(what, field::T_NS | field::NODE)?;
            ProtocolEvent::Restart
        }
        "recover" => {
            let fields = field::T_NS
                | field::NODE
                | field::PARTITION
                | field::OFFSET
                | field::LOG_END_OFFSET;
            wire.only(what, fields)?;
            let offset = need(wire.offset, what, "offset")?;
            let log_end_offset = need(wire.log_end_offset, what, "log_end_offset")?;
            if offset > log_end_offset {
                return Err(Problem::Invalid(format!(
                    "offset {offset} (written up to) is past log_end_offset {log_end_offset}"
                )));
            }
            ProtocolEvent::Recover {
                partition: need(wire.partition, what, "partition")?,
                offset,
                log_end_offset,
            }
        }
        _ => return Err(Problem::UnknownType(quoted(kind).into_owned())),
    };
    Ok(Closing::Protocol(Protocol {
        t_ns: need(wire.t_ns, what, "t_ns")?,
        node: need(wire.node, what, "node")?,
        event,
    }))
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        event_line(self).serialize(serializer)
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        protocol_line(self).serialize(serializer)
    }
}

fn event_line(event: &Event) -> LineOut<'_> {
    let mut line = LineOut {
        i: Some(event.i),
        t_ns: Some(event.t_ns),
        process: Some(event.process),
        kind: event.kind.name(),
        f: Some(event.op.name()),
        error: event.error.as_deref(),
        ..LineOut::default()
    };
    match &event.op {
        Op::Send { partition, key, value, offset } => {
            line.partition = Some(*partition);
            line.key = key.as_deref();
            line.value = Some(value);
            line.offset = *offset;
        }
        Op::Poll { partition, from, records, isolation, assignment } => {
            line.partition = Some(*partition);
            line.assignment = assignment.as_deref();
            line.from = Some(*from);
            // The default is left out, so a history without transactions reads as before.
            line.isolation = (*isolation != Isolation::ReadCommitted).then_some(isolation.name());
            // An ok poll always has a result, possibly empty; a fail or info poll only
            // if it read something.
            let stated = event.kind == EventType::Ok || !records.is_empty();
            line.records = stated.then_some(records.as_slice());
        }
        Op::Assign { partitions, seek } => {
            line.partitions = Some(partitions);
            // The default is left out, so a history of seeking assigns reads as before.
            line.seek = (!seek).then_some(false);
        }
        Op::Subscribe { group, partitions, assignment } => {
            line.group = Some(group);
            line.partitions = Some(partitions);
            line.assignment = assignment.as_deref();
        }
        Op::Init { txn_id } => line.txn_id = Some(txn_id),
        Op::Txn { txn_id, ops } => {
            line.txn_id = Some(txn_id);
            let kind = event.kind;
            line.ops = Some(ops.iter().map(|micro| micro_line(micro, kind)).collect());
        }
    }
    line
}

fn micro_line(micro: &MicroOp, kind: EventType) -> MicroOpOut<'_> {
    let mut line = MicroOpOut { f: micro.name(), ..MicroOpOut::default() };
    match micro {
        MicroOp::Send { partition, key, value, offset } => {
            line.partition = *partition;
            line.key = key.as_deref();
            line.value = Some(value);
            line.offset = *offset;
        }
        MicroOp::Poll { partition, from, records } => {
            line.partition = *partition;
            line.from = Some(*from);
            let stated = kind == EventType::Ok || !records.is_empty();
            line.records = stated.then_some(records.as_slice());
        }
        MicroOp::CommitOffset { group, partition, from, to } => {
            line.group = Some(group);
            line.partition = *partition;
            line.from = Some(*from);
            line.to = Some(*to);
        }
    }
    line
}

fn protocol_line(protocol: &Protocol) -> LineOut<'static> {
    let mut line = LineOut {
        t_ns: Some(protocol.t_ns),
        kind: protocol.event.name(),
        node: Some(protocol.node),
        partition: protocol.event.partition(),
        ..LineOut::default()
    };
    match protocol.event {
        ProtocolEvent::Leader { epoch, .. } | ProtocolEvent::Follower { epoch, .. } => {
            line.epoch = Some(epoch);
        }
        ProtocolEvent::HighWatermark { offset, .. } | ProtocolEvent::Truncate { offset, .. } => {
            line.offset = Some(offset);
        }
        ProtocolEvent::Recover { offset, log_end_offset, .. } => {
            line.offset = Some(offset);
            line.log_end_offset = Some(log_end_offset);
        }
        ProtocolEvent::Restart => {}
    }
    line
}

pub(super) fn write_event(out: &mut impl Write, event: &Event) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &event_line(event))?;
    out.write_all(b"\n")
}

pub(super) fn write_closing(out: &mut impl Write, closing: &Closing) -> io::Result<()> {
    let line = match closing {
        Closing::Replica(replica) => LineOut {
            kind: "replica",
            node: Some(replica.node),
            partition: Some(replica.partition),
            log_start_offset: Some(replica.log_start_offset),
            high_watermark: Some(replica.high_watermark),
            last_stable_offset: replica.last_stable_offset,
            aborted: (!replica.aborted.is_empty()).then_some(replica.aborted.as_slice()),
            log_end_offset: replica.log_end_offset,
            records: Some(&replica.records),
            ..LineOut::default()
        },
        Closing::Protocol(protocol) => protocol_line(protocol),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}
