//! Lines of JSON to and from the history types.
//!
//! Every line after the header is one flat object read into `LineIn`, whose fields are
//! all optional; `line_from_wire` then demands exactly the fields the line's `type`
//! (and `f`) need. Reading flat keeps parsing fast (no buffering of tagged enums) and
//! lets errors say precisely which field is missing or out of place.

use std::io::{self, Write};

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::parse::Problem;
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
        struct RecordVisitor;

        impl<'de> Visitor<'de> for RecordVisitor {
            type Value = Record;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a record [offset, key or null, value]")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Record, A::Error> {
                let offset =
                    seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let key = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let value =
                    seq.next_element()?.ok_or_else(|| de::Error::invalid_length(2, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(4, &self));
                }
                Ok(Record { offset, key, value })
            }
        }

        deserializer.deserialize_seq(RecordVisitor)
    }
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
    let version: VersionIn = serde_json::from_str(line).map_err(Problem::malformed)?;
    match version.v {
        None => return Err(Problem::Invalid("the header has no `v` (format version)".into())),
        Some(v) if v.as_u64() != Some(FORMAT_VERSION) => {
            return Err(Problem::Version(v.to_string()));
        }
        Some(_) => {}
    }
    let header: HeaderIn = serde_json::from_str(line).map_err(Problem::malformed)?;
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

/// Any line after the header, as read: every field optional, none unknown.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn {
    i: Option<u64>,
    t_ns: Option<u64>,
    process: Option<u64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    f: Option<String>,
    partition: Option<u32>,
    key: Option<String>,
    value: Option<String>,
    offset: Option<u64>,
    from: Option<u64>,
    records: Option<Vec<Record>>,
    partitions: Option<Vec<u32>>,
    error: Option<String>,
    node: Option<u32>,
    epoch: Option<u64>,
    log_start_offset: Option<u64>,
    high_watermark: Option<u64>,
    isolation: Option<String>,
    txn_id: Option<String>,
    ops: Option<Vec<MicroOpIn>>,
    last_stable_offset: Option<u64>,
    aborted: Option<Vec<u64>>,
    log_end_offset: Option<u64>,
}

/// A micro-op of a `txn`, as read: every field optional, none unknown.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MicroOpIn {
    f: Option<String>,
    group: Option<String>,
    partition: Option<u32>,
    key: Option<String>,
    value: Option<String>,
    offset: Option<u64>,
    from: Option<u64>,
    to: Option<u64>,
    records: Option<Vec<Record>>,
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
    node: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partitions: Option<&'a [u32]>,
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

pub(super) fn line_from_str(line: &str) -> Result<Line, Problem> {
    let wire: LineIn = serde_json::from_str(line).map_err(Problem::malformed)?;
    line_from_wire(wire)
}

impl LineIn {
    /// The names of the fields present, to refuse those a line's type does not take.
    fn present(&self) -> impl Iterator<Item = &'static str> {
        [
            ("i", self.i.is_some()),
            ("t_ns", self.t_ns.is_some()),
            ("process", self.process.is_some()),
            ("f", self.f.is_some()),
            ("partition", self.partition.is_some()),
            ("key", self.key.is_some()),
            ("value", self.value.is_some()),
            ("offset", self.offset.is_some()),
            ("from", self.from.is_some()),
            ("records", self.records.is_some()),
            ("partitions", self.partitions.is_some()),
            ("error", self.error.is_some()),
            ("node", self.node.is_some()),
            ("epoch", self.epoch.is_some()),
            ("log_start_offset", self.log_start_offset.is_some()),
            ("high_watermark", self.high_watermark.is_some()),
            ("isolation", self.isolation.is_some()),
            ("txn_id", self.txn_id.is_some()),
            ("ops", self.ops.is_some()),
            ("last_stable_offset", self.last_stable_offset.is_some()),
            ("aborted", self.aborted.is_some()),
            ("log_end_offset", self.log_end_offset.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
    }

    /// Refuses any present field outside `allowed` (which always admits `type`).
    fn only(&self, what: &str, allowed: &[&str]) -> Result<(), Problem> {
        match self.present().find(|field| !allowed.contains(field)) {
            Some(field) => Err(Problem::Invalid(format!("`{field}` does not belong on {what}"))),
            None => Ok(()),
        }
    }
}

fn need<T>(field: Option<T>, what: &str, name: &str) -> Result<T, Problem> {
    field.ok_or_else(|| Problem::Invalid(format!("{what} has no `{name}`")))
}

fn line_from_wire(mut wire: LineIn) -> Result<Line, Problem> {
    let kind = need(wire.kind.take(), "the line", "type")?;
    let event_type = match kind.as_str() {
        "invoke" => Some(EventType::Invoke),
        "ok" => Some(EventType::Ok),
        "fail" => Some(EventType::Fail),
        "info" => Some(EventType::Info),
        _ => None,
    };
    match event_type {
        Some(event_type) => event_from_wire(wire, event_type).map(Line::Event),
        None => closing_from_wire(wire, &kind).map(Line::Closing),
    }
}

fn event_from_wire(mut wire: LineIn, kind: EventType) -> Result<Event, Problem> {
    let f = need(wire.f.take(), &format!("an {} event", kind.name()), "f")?;
    let article = if f.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    let what = format!("{article} {f} {}", kind.name());
    let ended = matches!(kind, EventType::Fail | EventType::Info);
    let mut allowed = vec!["i", "t_ns", "process", "f"];
    if ended {
        allowed.push("error");
    }
    let op = match f.as_str() {
        "send" => {
            allowed.extend(["partition", "key", "value"]);
            if kind != EventType::Invoke {
                allowed.push("offset");
            }
            wire.only(&what, &allowed)?;
            Op::Send {
                partition: need(wire.partition, &what, "partition")?,
                key: wire.key.take(),
                value: need(wire.value.take(), &what, "value")?,
                offset: wire.offset,
            }
        }
        "poll" => {
            allowed.extend(["partition", "from", "isolation"]);
            if kind != EventType::Invoke {
                allowed.push("records");
            }
            wire.only(&what, &allowed)?;
            // An ok poll states its result, possibly `[]`; a fail or info poll may state
            // what it read before it ended (absent: nothing).
            let records = match kind {
                EventType::Ok => need(wire.records.take(), &what, "records")?,
                _ => wire.records.take().unwrap_or_default(),
            };
            Op::Poll {
                partition: need(wire.partition, &what, "partition")?,
                from: need(wire.from, &what, "from")?,
                records,
                isolation: isolation_from_wire(wire.isolation.take())?,
            }
        }
        "assign" => {
            allowed.push("partitions");
            wire.only(&what, &allowed)?;
            Op::Assign { partitions: need(wire.partitions.take(), &what, "partitions")? }
        }
        "init" => {
            allowed.push("txn_id");
            wire.only(&what, &allowed)?;
            Op::Init { txn_id: need(wire.txn_id.take(), &what, "txn_id")? }
        }
        "txn" => {
            allowed.extend(["txn_id", "ops"]);
            wire.only(&what, &allowed)?;
            let txn_id = need(wire.txn_id.take(), &what, "txn_id")?;
            let ops = need(wire.ops.take(), &what, "ops")?
                .into_iter()
                .enumerate()
                .map(|(index, micro)| micro_from_wire(micro, kind, index))
                .collect::<Result<Vec<MicroOp>, Problem>>()?;
            Op::Txn { txn_id, ops }
        }
        _ => return Err(Problem::UnknownOperation(f)),
    };
    Ok(Event {
        i: need(wire.i, &what, "i")?,
        t_ns: need(wire.t_ns, &what, "t_ns")?,
        process: need(wire.process, &what, "process")?,
        kind,
        op,
        error: wire.error.take(),
    })
}

fn isolation_from_wire(isolation: Option<String>) -> Result<Isolation, Problem> {
    match isolation.as_deref() {
        None | Some("read_committed") => Ok(Isolation::ReadCommitted),
        Some("read_uncommitted") => Ok(Isolation::ReadUncommitted),
        Some(other) => Err(Problem::Invalid(format!(
            "unknown isolation `{other}` (read_committed or read_uncommitted)"
        ))),
    }
}

/// One micro-op of a txn line (`index` in its `ops`), with exactly the fields its `f`
/// takes; results only on a completion (ok, fail or info).
fn micro_from_wire(
    mut micro: MicroOpIn,
    kind: EventType,
    index: usize,
) -> Result<MicroOp, Problem> {
    let at = format!("a txn {}'s ops[{index}]", kind.name());
    let f = need(micro.f.take(), &at, "f")?;
    let what = format!("{at} ({f})");
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
                Err(Problem::Invalid(format!("`{field}` does not belong on {what}")))
            }
            None => Ok(()),
        }
    };
    let completed = kind != EventType::Invoke;
    Ok(match f.as_str() {
        "send" => {
            only(if completed {
                &["partition", "key", "value", "offset"]
            } else {
                &["partition", "key", "value"]
            })?;
            MicroOp::Send {
                partition: need(micro.partition, &what, "partition")?,
                key: micro.key.take(),
                value: need(micro.value.take(), &what, "value")?,
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
                partition: need(micro.partition, &what, "partition")?,
                from: need(micro.from, &what, "from")?,
                records: micro.records.take().unwrap_or_default(),
            }
        }
        "commit-offset" => {
            only(&["group", "partition", "from", "to"])?;
            MicroOp::CommitOffset {
                group: need(micro.group.take(), &what, "group")?,
                partition: need(micro.partition, &what, "partition")?,
                from: need(micro.from, &what, "from")?,
                to: need(micro.to, &what, "to")?,
            }
        }
        _ => {
            return Err(Problem::Invalid(format!(
                "unknown micro-op `{f}` in {at} (send, poll or commit-offset)"
            )));
        }
    })
}

fn closing_from_wire(mut wire: LineIn, kind: &str) -> Result<Closing, Problem> {
    let what = format!("a {kind} line");
    let partition_event = |wire: &LineIn, field: &str| -> Result<(u32, u64), Problem> {
        wire.only(&what, &["t_ns", "node", "partition", field])?;
        let value = match field {
            "epoch" => wire.epoch,
            _ => wire.offset,
        };
        Ok((need(wire.partition, &what, "partition")?, need(value, &what, field)?))
    };
    let event = match kind {
        "replica" => {
            wire.only(
                &what,
                &[
                    "node",
                    "partition",
                    "log_start_offset",
                    "high_watermark",
                    "last_stable_offset",
                    "aborted",
                    "log_end_offset",
                    "records",
                ],
            )?;
            return Ok(Closing::Replica(Replica {
                node: need(wire.node, &what, "node")?,
                partition: need(wire.partition, &what, "partition")?,
                log_start_offset: wire.log_start_offset.unwrap_or(0),
                high_watermark: need(wire.high_watermark, &what, "high_watermark")?,
                last_stable_offset: wire.last_stable_offset,
                aborted: wire.aborted.take().unwrap_or_default(),
                log_end_offset: wire.log_end_offset,
                records: need(wire.records.take(), &what, "records")?,
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
            wire.only(&what, &["t_ns", "node"])?;
            ProtocolEvent::Restart
        }
        "recover" => {
            wire.only(&what, &["t_ns", "node", "partition", "offset", "log_end_offset"])?;
            let offset = need(wire.offset, &what, "offset")?;
            let log_end_offset = need(wire.log_end_offset, &what, "log_end_offset")?;
            if offset > log_end_offset {
                return Err(Problem::Invalid(format!(
                    "offset {offset} (written up to) is past log_end_offset {log_end_offset}"
                )));
            }
            ProtocolEvent::Recover {
                partition: need(wire.partition, &what, "partition")?,
                offset,
                log_end_offset,
            }
        }
        _ => return Err(Problem::UnknownType(kind.to_string())),
    };
    Ok(Closing::Protocol(Protocol {
        t_ns: need(wire.t_ns, &what, "t_ns")?,
        node: need(wire.node, &what, "node")?,
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
        Op::Poll { partition, from, records, isolation } => {
            line.partition = Some(*partition);
            line.from = Some(*from);
            // The default is left out, so a history without transactions reads as before.
            line.isolation = (*isolation != Isolation::ReadCommitted).then_some(isolation.name());
            // An ok poll always has a result, possibly empty; a fail or info poll only
            // if it read something.
            let stated = event.kind == EventType::Ok || !records.is_empty();
            line.records = stated.then_some(records.as_slice());
        }
        Op::Assign { partitions } => line.partitions = Some(partitions),
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
