//! Histories: what clients did and saw, and what replicas ended with.
//!
//! These types are the single source of truth for the JSON Lines format documented in
//! `model/HISTORY.md`: `wire` maps each line to and from them, `build` holds the rules
//! a history must keep to be checked, `parse` reads text. A `History` value has passed
//! those rules, so every checker can rely on them.

mod build;
mod parse;
mod text;
mod values;
mod wire;

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::invariant::Guarantee;

pub use build::HistoryBuilder;
pub use parse::{HistoryError, LINE_BYTES_MAX, Problem, parse_history, parse_history_str};
pub use text::Text;

/// The format version this build reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// The largest offset (and high watermark, log start, poll position) a history may
/// state: Kafka's offsets are signed 64-bit, and staying below `u64::MAX` keeps every
/// `offset + 1` in the checkers free of overflow.
pub const OFFSET_MAX: u64 = i64::MAX as u64;

/// The most operation events one history may hold (event positions are kept as `u32`).
pub const EVENTS_MAX: usize = u32::MAX as usize - 1;

/// The first line: what was tested and what its configuration promises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The system under test, for people (`"logjam-broker"`).
    pub system: String,
    pub config: Config,
    /// The guarantees as the history states them. `None`: derived from `config`. A
    /// system whose configuration does not map onto Kafka's knobs states them here.
    pub promises: Option<Vec<Guarantee>>,
    /// The run gave its consume-transform-produce processes time to finish their input
    /// once faults healed: `processing-progress` is judged only then.
    pub processors_settled: bool,
    /// The consume-transform-produce groups the run started, each with its input:
    /// `processing-progress` judges every one of them, also one that never ran a
    /// transaction (without this, only groups a transaction names are known).
    pub processors: Vec<ProcessorGroup>,
    /// Free text for people: where the history comes from, what it shows and why its
    /// verdict is what it is (a JSON line has no comments). Never read by a checker.
    pub about: Option<String>,
}

/// A consume-transform-produce group and the input partition it processes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorGroup {
    /// The group its `commit-offset` micro-ops name (`"g0"`).
    pub group: String,
    /// The input partition.
    pub partition: u32,
}

impl Header {
    /// A header whose promises are derived from its configuration.
    pub fn new(system: impl Into<String>, config: Config) -> Header {
        Header {
            system: system.into(),
            config,
            promises: None,
            processors_settled: false,
            processors: Vec::new(),
            about: None,
        }
    }

    /// The guarantees the checkers hold the history to.
    pub fn promises(&self) -> Vec<Guarantee> {
        match &self.promises {
            Some(stated) => {
                let mut promises = stated.clone();
                promises.sort_unstable();
                promises.dedup();
                promises
            }
            None => self.config.promises(),
        }
        .into_iter()
        .filter(|guarantee| guarantee.stateable())
        .collect()
    }
}

/// Whether an event starts an operation or says how it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The client began the operation.
    Invoke,
    /// It took effect, and the client knows its result.
    Ok,
    /// It definitely did not take effect.
    Fail,
    /// Indeterminate: it may or may not have taken effect, now or later.
    Info,
}

impl EventType {
    pub fn name(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }
}

/// One record of a partition: as polled, or as held by a replica. On the wire it is
/// the array `[offset, key, value]`, with `null` for no key. Key and value are shared
/// strings ([`Text`]): the parser holds each distinct one once.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Record {
    pub offset: u64,
    pub key: Option<Text>,
    pub value: Text,
}

impl Record {
    pub fn new(offset: u64, key: Option<&str>, value: &str) -> Record {
        Record { offset, key: key.map(Text::from), value: Text::from(value) }
    }
}

/// What a poll may see: only decided, committed records (below the last stable
/// offset, aborted ones dropped), or everything below the high watermark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isolation {
    /// `"read_committed"`, the default when a poll states none.
    #[default]
    ReadCommitted,
    /// `"read_uncommitted"`: records of open and aborted transactions too.
    ReadUncommitted,
}

impl Isolation {
    pub fn name(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

/// What an operation does. Invocations and completions carry the same arguments; a
/// completion adds the results (`offset` of an ok send, `records` of an ok poll).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Append one record. Values are unique per partition, so a value names its send.
    Send { partition: u32, key: Option<String>, value: String, offset: Option<u64> },
    /// Read a partition from an offset (the consumer's position). A subscribed
    /// consumer's completion may state `assignment`: during this poll the group
    /// rebalanced and gave the consumer these partitions (a result, never on an invoke).
    Poll {
        partition: u32,
        from: u64,
        records: Vec<Record>,
        isolation: Isolation,
        assignment: Option<Box<[u32]>>,
    },
    /// Assign partitions to the consumer. `seek: true` (the default on the wire): every
    /// assigned partition's position is reset, each next poll states its own start.
    /// `seek: false` (Kafka's `assign` alone): a partition that stays assigned keeps its
    /// position, a newly assigned one starts anywhere.
    Assign { partitions: Vec<u32>, seek: bool },
    /// Join consumer group `group` for `partitions` (what the group may assign; a
    /// history names partitions, not topics). The completion may state `assignment`, the
    /// partitions the client was given. Later rebalances are stated on polls.
    Subscribe { group: String, partitions: Vec<u32>, assignment: Option<Box<[u32]>> },
    /// Take the transactional id (Kafka's InitProducerId): once it completes `ok`, every
    /// earlier holder of the id is fenced.
    Init { txn_id: String },
    /// A transaction: its micro-ops, committed (`ok`), aborted (`fail`) or unknown
    /// (`info`) together.
    Txn { txn_id: String, ops: Vec<MicroOp> },
}

impl Op {
    /// The `f` of the line.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Send { .. } => "send",
            Op::Poll { .. } => "poll",
            Op::Assign { .. } => "assign",
            Op::Subscribe { .. } => "subscribe",
            Op::Init { .. } => "init",
            Op::Txn { .. } => "txn",
        }
    }

    /// A read_committed poll without results (an invocation).
    pub fn poll(partition: u32, from: u64) -> Op {
        Op::Poll {
            partition,
            from,
            records: Vec::new(),
            isolation: Isolation::ReadCommitted,
            assignment: None,
        }
    }

    /// A seeking assign of `partitions` (every position reset).
    pub fn assign(partitions: Vec<u32>) -> Op {
        Op::Assign { partitions, seek: true }
    }

    /// A transaction of `ops` under `txn_id`.
    pub fn txn(txn_id: impl Into<String>, ops: Vec<MicroOp>) -> Op {
        Op::Txn { txn_id: txn_id.into(), ops }
    }

    /// The sends the operation makes: itself if a send, a transaction's send micro-ops.
    /// The one place that flattens transactions for the checkers of sends.
    pub(crate) fn sends(&self) -> impl Iterator<Item = SendArgs<'_>> {
        let (single, micro): (Option<SendArgs<'_>>, &[MicroOp]) = match self {
            Op::Send { partition, key, value, offset } => (
                Some(SendArgs {
                    partition: *partition,
                    key: key.as_deref(),
                    value,
                    offset: *offset,
                }),
                &[],
            ),
            Op::Txn { ops, .. } => (None, ops),
            _ => (None, &[]),
        };
        single.into_iter().chain(micro.iter().filter_map(MicroOp::send_args))
    }

    /// The polls the operation makes: itself if a poll, a transaction's poll micro-ops
    /// (read_committed). The one place that flattens transactions for the checkers of
    /// reads.
    pub(crate) fn polls(&self) -> impl Iterator<Item = PollArgs<'_>> {
        let (single, micro): (Option<PollArgs<'_>>, &[MicroOp]) = match self {
            Op::Poll { partition, from, records, isolation, .. } => (
                Some(PollArgs {
                    partition: *partition,
                    from: *from,
                    records,
                    isolation: *isolation,
                }),
                &[],
            ),
            Op::Txn { ops, .. } => (None, ops),
            _ => (None, &[]),
        };
        single.into_iter().chain(micro.iter().filter_map(MicroOp::poll_args))
    }

    /// Every partition the operation writes, reads, assigns or subscribes to (not the
    /// input partitions of offset commits, which name a consumer group's input).
    pub(crate) fn partitions(&self) -> impl Iterator<Item = u32> + '_ {
        let assigned = match self {
            Op::Assign { partitions, .. } | Op::Subscribe { partitions, .. } => {
                partitions.as_slice()
            }
            _ => &[],
        };
        self.sends()
            .map(|send| send.partition)
            .chain(self.polls().map(|poll| poll.partition))
            .chain(assigned.iter().copied())
    }
}

/// One operation inside a transaction (a `txn`'s `ops`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MicroOp {
    /// A transactional send; `offset` only on an ok txn, and optional there.
    Send { partition: u32, key: Option<String>, value: String, offset: Option<u64> },
    /// A read inside the transaction (read_committed); `records` only on an ok txn.
    Poll { partition: u32, from: u64, records: Vec<Record> },
    /// Consume-transform-produce: the transaction commits consumer group `group`'s
    /// position on input partition `partition`, having processed offsets `[from, to)`
    /// (Kafka's sendOffsetsToTransaction).
    CommitOffset { group: String, partition: u32, from: u64, to: u64 },
}

impl MicroOp {
    /// The `f` of the micro-op.
    pub fn name(&self) -> &'static str {
        match self {
            MicroOp::Send { .. } => "send",
            MicroOp::Poll { .. } => "poll",
            MicroOp::CommitOffset { .. } => "commit-offset",
        }
    }

    /// A send without result (as invoked).
    pub fn send(partition: u32, key: Option<&str>, value: impl Into<String>) -> MicroOp {
        MicroOp::Send { partition, key: key.map(str::to_string), value: value.into(), offset: None }
    }

    /// A read without result (as invoked).
    pub fn poll(partition: u32, from: u64) -> MicroOp {
        MicroOp::Poll { partition, from, records: Vec::new() }
    }

    /// An offset commit of input `[from, to)` of `partition` for `group`.
    pub fn commit_offset(group: impl Into<String>, partition: u32, from: u64, to: u64) -> MicroOp {
        MicroOp::CommitOffset { group: group.into(), partition, from, to }
    }

    pub(crate) fn send_args(&self) -> Option<SendArgs<'_>> {
        match self {
            MicroOp::Send { partition, key, value, offset } => Some(SendArgs {
                partition: *partition,
                key: key.as_deref(),
                value,
                offset: *offset,
            }),
            _ => None,
        }
    }

    fn poll_args(&self) -> Option<PollArgs<'_>> {
        match self {
            MicroOp::Poll { partition, from, records } => Some(PollArgs {
                partition: *partition,
                from: *from,
                records,
                isolation: Isolation::ReadCommitted,
            }),
            _ => None,
        }
    }
}

/// A send as the checkers see it: a plain send or a transaction's send micro-op.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendArgs<'a> {
    pub partition: u32,
    pub key: Option<&'a str>,
    pub value: &'a str,
    pub offset: Option<u64>,
}

/// A poll as the checkers see it: a plain poll or a transaction's poll micro-op.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PollArgs<'a> {
    pub partition: u32,
    pub from: u64,
    pub records: &'a [Record],
    pub isolation: Isolation,
}

/// One line of the operation part of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The event's position among operation events, from 0.
    pub i: u64,
    /// Simulated (or recorded) time; never decreases from one event to the next.
    pub t_ns: u64,
    /// The client process. A process runs one operation at a time.
    pub process: u64,
    pub kind: EventType,
    pub op: Op,
    /// Why a `fail` or `info` ended so, for people.
    pub error: Option<String>,
}

/// A replica's final log for one partition (a closing line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    pub node: u32,
    pub partition: u32,
    /// Records below it were deleted on purpose (retention), not lost.
    pub log_start_offset: u64,
    /// Records below it are committed.
    pub high_watermark: u64,
    /// Every offset below it is decided (no transaction open there). `None`: the high
    /// watermark (no transaction open at all). At most `high_watermark`.
    pub last_stable_offset: Option<u64>,
    /// Offsets, in `records` and sorted, whose records belong to aborted transactions.
    /// Control markers are not records: they occupy offsets, so `records` has gaps.
    pub aborted: Vec<u64>,
    /// The log's end when it is past the last record (control markers after it).
    /// `None`: one past the last record.
    pub log_end_offset: Option<u64>,
    /// Every record the replica holds, committed or not, in log order.
    pub records: Vec<Record>,
}

impl Replica {
    /// The last stable offset, the high watermark if none was stated.
    pub fn last_stable(&self) -> u64 {
        self.last_stable_offset.map_or(self.high_watermark, |lso| lso.min(self.high_watermark))
    }

    /// Whether the record at `offset` belongs to an aborted transaction.
    pub fn is_aborted(&self, offset: u64) -> bool {
        self.aborted.binary_search(&offset).is_ok()
    }

    /// The log end stated, else one past the last record's offset (the log start if
    /// empty).
    pub fn log_end_offset(&self) -> u64 {
        let records_end =
            self.records.last().map_or(self.log_start_offset, |record| record.offset + 1);
        self.log_end_offset.unwrap_or(records_end)
    }
}

/// What a node reported about its replication protocol (a closing line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolEvent {
    /// The node became the partition's leader in `epoch`.
    Leader { partition: u32, epoch: u64 },
    /// The node became a follower in `epoch`.
    Follower { partition: u32, epoch: u64 },
    /// The node's high watermark for the partition is now `offset`.
    HighWatermark { partition: u32, offset: u64 },
    /// The node truncated the partition's log: records at `offset` and above are gone.
    /// Only protocol truncations count; losing unsynced data in a crash is not one.
    Truncate { partition: u32, offset: u64 },
    /// The node restarted: a new lifetime begins (in-memory state starts over).
    Restart,
    /// The node opened the partition's log from its disk at a start: the recovered log
    /// ends at `log_end_offset`, and up to `offset` it holds only batches this node had
    /// itself written there (in any lifetime). `offset < log_end_offset`: recovery kept
    /// records the node never wrote (a torn or damaged batch taken for a good one).
    Recover { partition: u32, offset: u64, log_end_offset: u64 },
}

impl ProtocolEvent {
    pub fn name(&self) -> &'static str {
        match self {
            ProtocolEvent::Leader { .. } => "leader",
            ProtocolEvent::Follower { .. } => "follower",
            ProtocolEvent::HighWatermark { .. } => "high-watermark",
            ProtocolEvent::Truncate { .. } => "truncate",
            ProtocolEvent::Restart => "restart",
            ProtocolEvent::Recover { .. } => "recover",
        }
    }

    pub fn partition(&self) -> Option<u32> {
        match *self {
            ProtocolEvent::Leader { partition, .. }
            | ProtocolEvent::Follower { partition, .. }
            | ProtocolEvent::HighWatermark { partition, .. }
            | ProtocolEvent::Truncate { partition, .. }
            | ProtocolEvent::Recover { partition, .. } => Some(partition),
            ProtocolEvent::Restart => None,
        }
    }
}

/// A protocol event with when and where it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protocol {
    pub t_ns: u64,
    pub node: u32,
    pub event: ProtocolEvent,
}

/// A line after the operations: final state and protocol events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closing {
    Replica(Replica),
    Protocol(Protocol),
}

/// Where a send is: its operation, and for a transaction the position of the send
/// among the transaction's micro-ops (`micro: None` for a plain send).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SendAt {
    pub op: u32,
    pub micro: Option<u32>,
}

/// An operation: its invocation and, unless still pending, its completion, as
/// positions in `History::events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpSpan {
    pub invoke: u32,
    pub completion: Option<u32>,
}

/// A checked history: a header, operation events, closing lines. Built only by
/// `parse_history` or `HistoryBuilder`, which enforce the format's rules, so checkers
/// may rely on them (pairs match, values are unique per partition, offsets in range).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    header: Header,
    events: Vec<Event>,
    closing: Vec<Closing>,
    /// Every operation, in invocation order.
    ops: Vec<OpSpan>,
    /// For each event, the operation it belongs to.
    op_of_event: Vec<u32>,
    /// Every send (plain, or a transaction's send micro-op), in invocation order.
    sends: Vec<SendAt>,
    /// (partition, value) to a position in `sends`.
    value_index: values::ValueIndex,
}

impl History {
    /// Checks the parts against the format's rules. Errors name the line the part would
    /// have in the written history (header on line 1, event `i` on line `i + 2`).
    pub fn new(
        header: Header,
        events: Vec<Event>,
        closing: Vec<Closing>,
    ) -> Result<History, HistoryError> {
        let mut builder = build::Validator::new(header);
        for event in events {
            builder.push_event(event)?;
        }
        for line in closing {
            builder.push_closing(line)?;
        }
        builder.finish()
    }

    /// Gives the parts back, for tools that edit a history (such as mutation tests).
    pub fn into_parts(self) -> (Header, Vec<Event>, Vec<Closing>) {
        (self.header, self.events, self.closing)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn closing(&self) -> &[Closing] {
        &self.closing
    }

    /// Every operation in invocation order.
    pub fn ops(&self) -> &[OpSpan] {
        &self.ops
    }

    /// The operation an event belongs to (an index into `ops`).
    pub fn op_of_event(&self, event: usize) -> usize {
        self.op_of_event[event] as usize
    }

    /// Every send (plain, or a transaction's send micro-op), in invocation order.
    pub(crate) fn sends(&self) -> &[SendAt] {
        &self.sends
    }

    /// The position in `sends()` of the send of `value` to `partition`, if any.
    pub(crate) fn send_position(&self, partition: u32, value: &str) -> Option<u32> {
        let key_of = |position| build::send_key(&self.events, &self.ops, &self.sends, position);
        self.value_index.get(partition, value, &key_of)
    }

    /// The line an operation event is on in the written history.
    pub fn line_of_event(&self, event: usize) -> u64 {
        event as u64 + 2
    }

    /// The line a closing line is on in the written history.
    pub fn line_of_closing(&self, closing: usize) -> u64 {
        (self.events.len() + closing) as u64 + 2
    }

    /// The invocation event of an operation.
    pub fn invoke_of(&self, op: usize) -> &Event {
        &self.events[self.ops[op].invoke as usize]
    }

    /// The completion event of an operation, unless it is still pending.
    pub fn completion_of(&self, op: usize) -> Option<&Event> {
        self.ops[op].completion.map(|event| &self.events[event as usize])
    }

    /// Writes the history as JSON Lines, every line ending in a newline.
    pub fn write_jsonl(&self, out: &mut impl Write) -> io::Result<()> {
        wire::write_header(out, &self.header)?;
        for event in &self.events {
            wire::write_event(out, event)?;
        }
        for line in &self.closing {
            wire::write_closing(out, line)?;
        }
        Ok(())
    }

    /// The history as JSON Lines text.
    pub fn to_jsonl(&self) -> String {
        let mut out = Vec::new();
        self.write_jsonl(&mut out).expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }
}

/// One event as its JSON line (without the newline), for witnesses and messages.
pub fn event_json(event: &Event) -> String {
    let mut out = Vec::new();
    wire::write_event(&mut out, event).expect("writing to a Vec cannot fail");
    out.pop();
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// One protocol event as its JSON line (without the newline).
pub fn protocol_json(protocol: &Protocol) -> String {
    let mut out = Vec::new();
    wire::write_closing(&mut out, &Closing::Protocol(*protocol))
        .expect("writing to a Vec cannot fail");
    out.pop();
    String::from_utf8(out).expect("serde_json writes UTF-8")
}
