//! The rules a history keeps, checked as it is built, line by line.
//!
//! The parser and `HistoryBuilder` feed the same `Validator`, so a history recorded in
//! memory by the simulator and one read from a file are held to the same rules, and an
//! error names the line the offending part has (or would have) in the written history.

use std::collections::BTreeMap;

use super::parse::{HistoryError, Problem};
use super::values::ValueIndex;
use super::{
    Closing, EVENTS_MAX, Event, EventType, Header, History, OFFSET_MAX, Op, OpSpan, Protocol,
    ProtocolEvent, Record,
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
    /// Ops that are sends, in invocation order, and their (partition, value) index.
    sends: Vec<u32>,
    value_index: ValueIndex,
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

    /// Results only on completions that have them; offsets in range.
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
                if event.kind != EventType::Ok {
                    return Err(invalid(
                        line,
                        format!("`offset` does not belong on a send {kind}"),
                    ));
                }
                offset_in_range(line, "offset", *offset)
            }
            Op::Send { offset: None, .. } | Op::Assign { .. } => Ok(()),
            Op::Poll { from, records, .. } => {
                if !records.is_empty() && event.kind != EventType::Ok {
                    return Err(invalid(
                        line,
                        format!("`records` does not belong on a poll {kind}"),
                    ));
                }
                offset_in_range(line, "from", *from)?;
                records_in_range(line, records)
            }
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
        if let Op::Send { partition, value, .. } = &event.op {
            self.index_send(line, *partition, value, op)?;
        }
        self.ops.push(OpSpan { invoke: self.events.len() as u32, completion: None });
        self.pending.insert(event.process, op);
        Ok(op)
    }

    /// Values must be unique per partition: a value is how reads name its send.
    fn index_send(
        &mut self,
        line: u64,
        partition: u32,
        value: &str,
        op: u32,
    ) -> Result<(), HistoryError> {
        let (events, ops, sends) = (&self.events, &self.ops, &self.sends);
        let key_of = |position: u32| send_key(events, ops, sends, position);
        match self.value_index.insert(partition, value, sends.len() as u32, key_of) {
            Ok(()) => {
                self.sends.push(op);
                Ok(())
            }
            Err(first) => {
                let first_line = self.ops[self.sends[first as usize] as usize].invoke as u64 + 2;
                Err(invalid(
                    line,
                    format!(
                        "value `{value}` was already sent to partition {partition} on line {first_line}: values must be unique per partition"
                    ),
                ))
            }
        }
    }

    fn complete(&mut self, line: u64, event: &Event) -> Result<u32, HistoryError> {
        let Some(op) = self.pending.remove(&event.process) else {
            return Err(HistoryError::new(line, Problem::unmatched(event.kind, event.process)));
        };
        let invoke = &self.events[self.ops[op as usize].invoke as usize];
        if let Some(mismatch) = mismatch(&invoke.op, &event.op) {
            return Err(invalid(
                line,
                format!(
                    "{} does not match its invoke on line {}: {mismatch}",
                    event.kind.name(),
                    invoke.i + 2
                ),
            ));
        }
        self.ops[op as usize].completion = Some(self.events.len() as u32);
        Ok(op)
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

/// The (partition, value) of the send at `position` in `sends`.
pub(crate) fn send_key<'a>(
    events: &'a [Event],
    ops: &[OpSpan],
    sends: &[u32],
    position: u32,
) -> (u32, &'a str) {
    match &events[ops[sends[position as usize] as usize].invoke as usize].op {
        Op::Send { partition, value, .. } => (*partition, value),
        _ => unreachable!("the send index holds sends"),
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
                Some(format!("key {k2:?} vs {k1:?}"))
            } else if v1 != v2 {
                Some(format!("value `{v2}` vs `{v1}`"))
            } else {
                None
            }
        }
        (Op::Poll { partition: p1, from: f1, .. }, Op::Poll { partition: p2, from: f2, .. }) => {
            if p1 != p2 {
                Some(format!("partition {p2} vs {p1}"))
            } else if f1 != f2 {
                Some(format!("from {f2} vs {f1}"))
            } else {
                None
            }
        }
        (Op::Assign { partitions: a }, Op::Assign { partitions: b }) => {
            (a != b).then(|| format!("partitions {b:?} vs {a:?}"))
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
