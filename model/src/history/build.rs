//! The rules a history keeps, checked as it is built, line by line.
//!
//! The parser and `HistoryBuilder` feed the same `Validator`, so a history recorded in
//! memory by the simulator and one read from a file are held to the same rules, and an
//! error names the line the offending part has (or would have) in the written history.

use std::collections::BTreeMap;

use super::parse::{HistoryError, Problem, quoted};
use super::values::ValueIndex;
use super::{
    Closing, EVENTS_MAX, Event, EventType, Header, History, MicroOp, OFFSET_MAX, Op, OpSpan,
    Protocol, ProtocolEvent, Record, Replica, SendAt,
};

pub(crate) struct Validator {
    header: Header,
    events: Vec<Event>,
    closing: Vec<Closing>,
    ops: Vec<OpSpan>,
    op_of_event: Vec<u32>,
    /// The operation each process has in flight.
    pending: BTreeMap<u64, u32>,
    t_ns_last: u64,
    protocol_t_ns_last: u64,
    /// The line of each replica's final log, by (node, partition).
    replica_lines: BTreeMap<(u32, u32), u64>,
    closing_first_line: Option<u64>,
    /// Every send (plain or in a transaction), in invocation order, and their
    /// (partition, value) index.
    sends: Vec<SendAt>,
    value_index: ValueIndex,
    /// Each subscribed process's latest `subscribe` (an index into `ops`), until it
    /// assigns: a poll may state a rebalance only then.
    subscribed: BTreeMap<u64, u32>,
}

fn invalid(line: u64, message: String) -> HistoryError {
    HistoryError::new(line, Problem::Invalid(message))
}

fn offset_in_range(line: u64, what: &str, offset: u64) -> Result<(), HistoryError> {
    if offset > OFFSET_MAX {
        return Err(invalid(
            line,
            format!("{what} {offset} exceeds the largest offset {OFFSET_MAX}"),
        ));
    }
    Ok(())
}

fn records_in_range(line: u64, records: &[Record]) -> Result<(), HistoryError> {
    records.iter().try_for_each(|record| offset_in_range(line, "record offset", record.offset))
}

impl Validator {
    pub(crate) fn new(header: Header) -> Validator {
        Validator {
            header,
            events: Vec::new(),
            closing: Vec::new(),
            ops: Vec::new(),
            op_of_event: Vec::new(),
            pending: BTreeMap::new(),
            t_ns_last: 0,
            protocol_t_ns_last: 0,
            replica_lines: BTreeMap::new(),
            closing_first_line: None,
            sends: Vec::new(),
            value_index: ValueIndex::with_capacity(0),
            subscribed: BTreeMap::new(),
        }
    }

    fn next_line(&self) -> u64 {
        (self.events.len() + self.closing.len()) as u64 + 2
    }

    pub(crate) fn events_len(&self) -> usize {
        self.events.len()
    }

    pub(crate) fn push_event(&mut self, event: Event) -> Result<(), HistoryError> {
        let line = self.next_line();
        if let Some(first) = self.closing_first_line {
            return Err(invalid(
                line,
                format!("operation after the closing lines (the first is on line {first})"),
            ));
        }
        if self.events.len() >= EVENTS_MAX {
            return Err(invalid(line, format!("more than {EVENTS_MAX} operation events")));
        }
        let expected_i = self.events.len() as u64;
        if event.i != expected_i {
            return Err(invalid(
                line,
                format!(
                    "event index {}, expected {expected_i}: indices count events from 0",
                    event.i
                ),
            ));
        }
        if event.t_ns < self.t_ns_last {
            return Err(invalid(
                line,
                format!(
                    "t_ns {} goes back in time (the previous event is at {})",
                    event.t_ns, self.t_ns_last
                ),
            ));
        }
        self.check_shape(line, &event)?;
        let op = match event.kind {
            EventType::Invoke => self.invoke(line, &event)?,
            _ => self.complete(line, &event)?,
        };
        self.t_ns_last = event.t_ns;
        self.op_of_event.push(op);
        self.events.push(event);
        Ok(())
    }

    /// Results only on completions (an indeterminate or failed operation may state
    /// what it got before it ended); offsets in range.
    fn check_shape(&self, line: u64, event: &Event) -> Result<(), HistoryError> {
        let kind = event.kind.name();
        if event.error.is_some() && matches!(event.kind, EventType::Invoke | EventType::Ok) {
            return Err(invalid(
                line,
                format!("`error` does not belong on a {} {kind}", event.op.name()),
            ));
        }
        match &event.op {
            Op::Send { offset: Some(offset), .. } => {
                if event.kind == EventType::Invoke {
                    return Err(invalid(
                        line,
                        format!("`offset` does not belong on a send {kind}"),
                    ));
                }
                offset_in_range(line, "offset", *offset)
            }
            Op::Send { offset: None, .. } | Op::Assign { .. } | Op::Init { .. } => Ok(()),
            Op::Subscribe { partitions, assignment, .. } => {
                let Some(assignment) = assignment else { return Ok(()) };
                if event.kind == EventType::Invoke {
                    return Err(invalid(
                        line,
                        format!("`assignment` does not belong on a subscribe {kind}"),
                    ));
                }
                match assignment.iter().find(|partition| !partitions.contains(partition)) {
                    Some(stray) => Err(invalid(
                        line,
                        format!(
                            "assignment {assignment:?} names partition {stray}, which the subscribe's partitions {partitions:?} do not"
                        ),
                    )),
                    None => Ok(()),
                }
            }
            Op::Poll { from, records, assignment, .. } => {
                if !records.is_empty() && event.kind == EventType::Invoke {
                    return Err(invalid(
                        line,
                        format!("`records` does not belong on a poll {kind}"),
                    ));
                }
                if assignment.is_some() && event.kind == EventType::Invoke {
                    return Err(invalid(
                        line,
                        format!("`assignment` does not belong on a poll {kind}"),
                    ));
                }
                offset_in_range(line, "from", *from)?;
                records_in_range(line, records)
            }
            Op::Txn { ops, .. } => ops
                .iter()
                .enumerate()
                .try_for_each(|(index, micro)| check_micro(line, event.kind, index, micro)),
        }
    }

    fn invoke(&mut self, line: u64, event: &Event) -> Result<u32, HistoryError> {
        if let Some(&op) = self.pending.get(&event.process) {
            let invoke = &self.events[self.ops[op as usize].invoke as usize];
            return Err(invalid(
                line,
                format!(
                    "process {} invoked a {} while its {} from line {} is still pending",
                    event.process,
                    event.op.name(),
                    invoke.op.name(),
                    invoke.i + 2
                ),
            ));
        }
        let op = self.ops.len() as u32;
        // Every value first, so a refused invocation leaves nothing indexed.
        let sent: Vec<(SendAt, u32, &str)> = match &event.op {
            Op::Send { partition, value, .. } => {
                vec![(SendAt { op, micro: None }, *partition, value.as_str())]
            }
            Op::Txn { ops, .. } => ops
                .iter()
                .enumerate()
                .filter_map(|(index, micro)| match micro {
                    MicroOp::Send { partition, value, .. } => {
                        Some((SendAt { op, micro: Some(index as u32) }, *partition, value.as_str()))
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        self.check_unsent(line, &sent)?;
        match &event.op {
            Op::Subscribe { .. } => {
                self.subscribed.insert(event.process, op);
            }
            Op::Assign { .. } => {
                self.subscribed.remove(&event.process);
            }
            _ => {}
        }
        self.ops.push(OpSpan { invoke: self.events.len() as u32, completion: None });
        for (at, partition, value) in sent {
            self.index_send(partition, value, at, &event.op);
        }
        self.pending.insert(event.process, op);
        Ok(op)
    }

    /// Values must be unique per partition: a value is how reads name its send.
    fn check_unsent(&self, line: u64, sent: &[(SendAt, u32, &str)]) -> Result<(), HistoryError> {
        let (events, ops, sends) = (&self.events, &self.ops, &self.sends);
        let key_of = |position: u32| send_key(events, ops, sends, position);
        // Sends of one operation among themselves (an operation of one send has none).
        let mut in_this_op = std::collections::BTreeSet::new();
        for &(_, partition, value) in sent {
            let first_line = match self.value_index.get(partition, value, &key_of) {
                Some(first) => self.ops[self.sends[first as usize].op as usize].invoke as u64 + 2,
                None if sent.len() > 1 && !in_this_op.insert((partition, value)) => line,
                None => continue,
            };
            return Err(invalid(
                line,
                format!(
                    "value `{}` was already sent to partition {partition} on line {first_line}: values must be unique per partition",
                    quoted(value)
                ),
            ));
        }
        Ok(())
    }

    /// Indexes a send known to be new; `pending` is the operation being invoked (not in
    /// `events` yet), whose earlier sends the index may need to read back.
    fn index_send(&mut self, partition: u32, value: &str, at: SendAt, pending: &Op) {
        let (events, ops, sends) = (&self.events, &self.ops, &self.sends);
        let key_of = |position: u32| {
            let held = sends[position as usize];
            if held.op == at.op {
                send_key_of(pending, held)
            } else {
                send_key(events, ops, sends, position)
            }
        };
        let inserted = self.value_index.insert(partition, value, sends.len() as u32, key_of);
        debug_assert!(inserted.is_ok(), "checked by check_unsent");
        self.sends.push(at);
    }

    fn complete(&mut self, line: u64, event: &Event) -> Result<u32, HistoryError> {
        let Some(op) = self.pending.remove(&event.process) else {
            return Err(HistoryError::new(line, Problem::unmatched(event.kind, event.process)));
        };
        let invoke = &self.events[self.ops[op as usize].invoke as usize];
        if let Some(mismatch) = mismatch(&invoke.op, &event.op) {
            // Still pending: the history is refused, but the validator stays consistent.
            self.pending.insert(event.process, op);
            return Err(invalid(
                line,
                format!(
                    "{} does not match its invoke on line {}: {mismatch}",
                    event.kind.name(),
                    invoke.i + 2
                ),
            ));
        }
        if let Op::Poll { assignment: Some(assignment), .. } = &event.op {
            if let Err(problem) = self.check_rebalance(event.process, assignment) {
                self.pending.insert(event.process, op);
                return Err(invalid(line, problem));
            }
        }
        self.ops[op as usize].completion = Some(self.events.len() as u32);
        Ok(op)
    }

    /// A poll states a rebalance (`assignment`): its process must be subscribed, and the
    /// group may give it only partitions its subscription names.
    fn check_rebalance(&self, process: u64, assignment: &[u32]) -> Result<(), String> {
        let Some(&subscribe) = self.subscribed.get(&process) else {
            return Err(format!(
                "a poll states a rebalance (`assignment`), but process {process} is not subscribed: only a consumer that subscribed to a group (and has not assigned since) is rebalanced"
            ));
        };
        let invoke = &self.events[self.ops[subscribe as usize].invoke as usize];
        let Op::Subscribe { partitions, .. } = &invoke.op else {
            unreachable!("subscribed holds subscribes")
        };
        match assignment.iter().find(|partition| !partitions.contains(partition)) {
            Some(stray) => Err(format!(
                "assignment {assignment:?} names partition {stray}, which the subscribe on line {} does not ({partitions:?})",
                invoke.i + 2
            )),
            None => Ok(()),
        }
    }

    pub(crate) fn push_closing(&mut self, closing: Closing) -> Result<(), HistoryError> {
        let line = self.next_line();
        if self.closing.len() >= u32::MAX as usize {
            return Err(invalid(line, format!("more than {} closing lines", u32::MAX)));
        }
        self.closing_first_line.get_or_insert(line);
        match &closing {
            Closing::Replica(replica) => {
                let place = (replica.node, replica.partition);
                if let Some(first) = self.replica_lines.insert(place, line) {
                    return Err(invalid(
                        line,
                        format!(
                            "a second final log for node {} partition {} (the first is on line {first})",
                            replica.node, replica.partition
                        ),
                    ));
                }
                offset_in_range(line, "log_start_offset", replica.log_start_offset)?;
                offset_in_range(line, "high_watermark", replica.high_watermark)?;
                records_in_range(line, &replica.records)?;
                check_transactional_state(line, replica)?;
            }
            Closing::Protocol(Protocol { t_ns, event, .. }) => {
                if *t_ns < self.protocol_t_ns_last {
                    return Err(invalid(
                        line,
                        format!(
                            "t_ns {t_ns} goes back in time (the previous protocol event is at {})",
                            self.protocol_t_ns_last
                        ),
                    ));
                }
                self.protocol_t_ns_last = *t_ns;
                if let ProtocolEvent::HighWatermark { offset, .. }
                | ProtocolEvent::Truncate { offset, .. } = event
                {
                    offset_in_range(line, "offset", *offset)?;
                }
                if let ProtocolEvent::Recover { offset, log_end_offset, .. } = event {
                    offset_in_range(line, "offset", *offset)?;
                    offset_in_range(line, "log_end_offset", *log_end_offset)?;
                }
            }
        }
        self.closing.push(closing);
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<History, HistoryError> {
        debug_assert_eq!(self.events.len(), self.op_of_event.len());
        Ok(History {
            header: self.header,
            events: self.events,
            closing: self.closing,
            ops: self.ops,
            op_of_event: self.op_of_event,
            sends: self.sends,
            value_index: self.value_index,
        })
    }
}

/// A txn's micro-op: results only on a completion, offsets in range, `from <= to`.
fn check_micro(
    line: u64,
    kind: EventType,
    index: usize,
    micro: &MicroOp,
) -> Result<(), HistoryError> {
    let what = format!("ops[{index}] ({}) of a txn {}", micro.name(), kind.name());
    match micro {
        MicroOp::Send { offset: Some(offset), .. } => {
            if kind == EventType::Invoke {
                return Err(invalid(line, format!("`offset` does not belong on {what}")));
            }
            offset_in_range(line, "offset", *offset)
        }
        MicroOp::Send { offset: None, .. } => Ok(()),
        MicroOp::Poll { from, records, .. } => {
            if !records.is_empty() && kind == EventType::Invoke {
                return Err(invalid(line, format!("`records` does not belong on {what}")));
            }
            offset_in_range(line, "from", *from)?;
            records_in_range(line, records)
        }
        MicroOp::CommitOffset { from, to, .. } => {
            offset_in_range(line, "from", *from)?;
            offset_in_range(line, "to", *to)?;
            if from > to {
                return Err(invalid(line, format!("{what} commits from {from} past to {to}")));
            }
            Ok(())
        }
    }
}

/// A replica's log end (if stated) is past its last record, its last stable offset is
/// at most its high watermark, and its aborted offsets are sorted offsets of records it
/// holds.
fn check_transactional_state(line: u64, replica: &Replica) -> Result<(), HistoryError> {
    if let Some(end) = replica.log_end_offset {
        if let Some(last) = replica.records.last().filter(|last| end <= last.offset) {
            return Err(invalid(
                line,
                format!(
                    "log_end_offset {end} is not past the last record (offset {})",
                    last.offset
                ),
            ));
        }
        if end < replica.log_start_offset {
            return Err(invalid(
                line,
                format!(
                    "log_end_offset {end} is below log_start_offset {}",
                    replica.log_start_offset
                ),
            ));
        }
    }
    if let Some(lso) = replica.last_stable_offset {
        if lso > replica.high_watermark {
            return Err(invalid(
                line,
                format!(
                    "last_stable_offset {lso} exceeds high_watermark {}",
                    replica.high_watermark
                ),
            ));
        }
    }
    if let Some(pair) = replica.aborted.windows(2).find(|pair| pair[1] <= pair[0]) {
        return Err(invalid(
            line,
            format!("aborted offset {} after {}: aborted offsets must increase", pair[1], pair[0]),
        ));
    }
    let held = |offset: u64| replica.records.iter().any(|record| record.offset == offset);
    // Records may be out of order in a malformed log (reported by replica-log-order),
    // so look them up by a merge only when they are sorted.
    let sorted = replica.records.windows(2).all(|pair| pair[0].offset < pair[1].offset);
    let mut cursor = 0;
    for &offset in &replica.aborted {
        let found = if sorted {
            cursor += replica.records[cursor..].partition_point(|record| record.offset < offset);
            replica.records.get(cursor).is_some_and(|record| record.offset == offset)
        } else {
            held(offset)
        };
        if !found {
            return Err(invalid(
                line,
                format!("aborted offset {offset} is not the offset of a record in `records`"),
            ));
        }
    }
    Ok(())
}

/// The (partition, value) of the send at `position` in `sends`.
pub(crate) fn send_key<'a>(
    events: &'a [Event],
    ops: &[OpSpan],
    sends: &[SendAt],
    position: u32,
) -> (u32, &'a str) {
    let at = sends[position as usize];
    send_key_of(&events[ops[at.op as usize].invoke as usize].op, at)
}

/// The (partition, value) of a send in the operation `op`.
fn send_key_of(op: &Op, at: SendAt) -> (u32, &str) {
    match (op, at.micro) {
        (Op::Send { partition, value, .. }, None) => (*partition, value),
        (Op::Txn { ops, .. }, Some(micro)) => match &ops[micro as usize] {
            MicroOp::Send { partition, value, .. } => (*partition, value),
            _ => unreachable!("the send index holds send micro-ops"),
        },
        _ => unreachable!("the send index holds sends"),
    }
}

/// A key as a mismatch names it (`Some("k")`, `None`), cut as `quoted` cuts.
fn quoted_key(key: &Option<String>) -> String {
    match key {
        Some(key) => format!("Some({:?})", quoted(key)),
        None => "None".to_string(),
    }
}

/// How a completion's arguments differ from its invocation's, if they do.
fn mismatch(invoke: &Op, completion: &Op) -> Option<String> {
    match (invoke, completion) {
        (
            Op::Send { partition: p1, key: k1, value: v1, .. },
            Op::Send { partition: p2, key: k2, value: v2, .. },
        ) => {
            if p1 != p2 {
                Some(format!("partition {p2} vs {p1}"))
            } else if k1 != k2 {
                Some(format!("key {} vs {}", quoted_key(k2), quoted_key(k1)))
            } else if v1 != v2 {
                Some(format!("value `{}` vs `{}`", quoted(v2), quoted(v1)))
            } else {
                None
            }
        }
        (
            Op::Poll { partition: p1, from: f1, isolation: i1, .. },
            Op::Poll { partition: p2, from: f2, isolation: i2, .. },
        ) => {
            if p1 != p2 {
                Some(format!("partition {p2} vs {p1}"))
            } else if f1 != f2 {
                Some(format!("from {f2} vs {f1}"))
            } else if i1 != i2 {
                Some(format!("isolation {} vs {}", i2.name(), i1.name()))
            } else {
                None
            }
        }
        (Op::Assign { partitions: a, seek: s1 }, Op::Assign { partitions: b, seek: s2 }) => {
            if a != b {
                Some(format!("partitions {b:?} vs {a:?}"))
            } else {
                (s1 != s2).then(|| format!("seek {s2} vs {s1}"))
            }
        }
        (
            Op::Subscribe { group: g1, partitions: a, .. },
            Op::Subscribe { group: g2, partitions: b, .. },
        ) => {
            if g1 != g2 {
                Some(format!("group `{}` vs `{}`", quoted(g2), quoted(g1)))
            } else {
                (a != b).then(|| format!("partitions {b:?} vs {a:?}"))
            }
        }
        (Op::Init { txn_id: a }, Op::Init { txn_id: b }) => {
            (a != b).then(|| format!("txn_id `{}` vs `{}`", quoted(b), quoted(a)))
        }
        (Op::Txn { txn_id: a, ops: invoked }, Op::Txn { txn_id: b, ops: completed }) => {
            if a != b {
                return Some(format!("txn_id `{}` vs `{}`", quoted(b), quoted(a)));
            }
            if invoked.len() != completed.len() {
                return Some(format!("{} ops vs {}", completed.len(), invoked.len()));
            }
            invoked.iter().zip(completed).enumerate().find_map(|(index, (invoked, completed))| {
                micro_mismatch(invoked, completed).map(|why| format!("ops[{index}]: {why}"))
            })
        }
        _ => Some(format!("{} vs {}", completion.name(), invoke.name())),
    }
}

/// How a completion's micro-op differs from its invocation's, if it does.
fn micro_mismatch(invoke: &MicroOp, completion: &MicroOp) -> Option<String> {
    match (invoke, completion) {
        (
            MicroOp::Send { partition: p1, key: k1, value: v1, .. },
            MicroOp::Send { partition: p2, key: k2, value: v2, .. },
        ) => {
            if p1 != p2 {
                Some(format!("partition {p2} vs {p1}"))
            } else if k1 != k2 {
                Some(format!("key {} vs {}", quoted_key(k2), quoted_key(k1)))
            } else {
                (v1 != v2).then(|| format!("value `{}` vs `{}`", quoted(v2), quoted(v1)))
            }
        }
        (
            MicroOp::Poll { partition: p1, from: f1, .. },
            MicroOp::Poll { partition: p2, from: f2, .. },
        ) => {
            if p1 != p2 {
                Some(format!("partition {p2} vs {p1}"))
            } else {
                (f1 != f2).then(|| format!("from {f2} vs {f1}"))
            }
        }
        (
            MicroOp::CommitOffset { group: g1, partition: p1, from: f1, to: t1 },
            MicroOp::CommitOffset { group: g2, partition: p2, from: f2, to: t2 },
        ) => {
            if g1 != g2 {
                Some(format!("group `{}` vs `{}`", quoted(g2), quoted(g1)))
            } else if p1 != p2 {
                Some(format!("partition {p2} vs {p1}"))
            } else {
                ((f1, t1) != (f2, t2)).then(|| format!("range [{f2}, {t2}) vs [{f1}, {t1})"))
            }
        }
        _ => Some(format!("{} vs {}", completion.name(), invoke.name())),
    }
}

/// Builds a history in memory, event by event, holding it to the same rules as a
/// parsed one: the simulator's recorder. It numbers events itself; errors surface at
/// the event that breaks a rule.
pub struct HistoryBuilder {
    validator: Validator,
}

impl HistoryBuilder {
    pub fn new(header: Header) -> HistoryBuilder {
        HistoryBuilder { validator: Validator::new(header) }
    }

    /// Adds an operation event; its index is the number of events so far.
    pub fn event(
        &mut self,
        t_ns: u64,
        process: u64,
        kind: EventType,
        op: Op,
        error: Option<String>,
    ) -> Result<(), HistoryError> {
        let i = self.validator.events_len() as u64;
        self.validator.push_event(Event { i, t_ns, process, kind, op, error })
    }

    /// Starts an operation.
    pub fn invoke(&mut self, t_ns: u64, process: u64, op: Op) -> Result<(), HistoryError> {
        self.event(t_ns, process, EventType::Invoke, op, None)
    }

    /// Adds a replica's final log or a protocol event; operations may not follow.
    pub fn closing(&mut self, closing: Closing) -> Result<(), HistoryError> {
        self.validator.push_closing(closing)
    }

    pub fn finish(self) -> Result<History, HistoryError> {
        self.validator.finish()
    }
}
