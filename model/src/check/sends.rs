//! nonmonotonic-send and realtime-order: do sends land in the order they were made?
//!
//! A send B lands where its acknowledgement says (or the offset an `info` completion
//! reported, once its operation is proven committed), or, if it ended `info` (or still
//! pending) but was observed, at the lowest offset it was observed at: Jepsen's
//! must-have-committed rule. B must land above every send A acknowledged before B was
//! invoked. If A came from B's own process that is process order (nonmonotonic-send);
//! from another process, real-time order (realtime-order). Only acknowledged sends
//! count as A: an `info` send has no moment it was known to be done.
//!
//! One sweep in event order keeps, per partition, the highest acknowledged offset and
//! the highest from any other process (so any process can ask "the highest not mine"),
//! and per (process, partition) its last acknowledged offset.

use std::collections::BTreeMap;

use super::Findings;
use super::digest::Digest;
use crate::history::EventType;
use crate::invariant::{Guarantee, Invariant};
use crate::verdict::Witness;

/// An acknowledged send: its offset, process and acknowledging event.
#[derive(Clone, Copy)]
struct Acked {
    offset: u64,
    process: u64,
    event: usize,
}

/// The highest acknowledged send of a partition, and the highest of any other process.
#[derive(Clone, Copy, Default)]
struct Highest {
    first: Option<Acked>,
    other: Option<Acked>,
}

impl Highest {
    fn add(&mut self, acked: Acked) {
        match self.first {
            Some(first) if first.process == acked.process => {
                if acked.offset > first.offset {
                    self.first = Some(acked);
                }
            }
            Some(first) if acked.offset <= first.offset => {
                if self.other.is_none_or(|other| acked.offset > other.offset) {
                    self.other = Some(acked);
                }
            }
            _ => {
                self.other = self.first;
                self.first = Some(acked);
            }
        }
    }

    /// The highest acknowledged send by a process other than `process`.
    fn not_of(&self, process: u64) -> Option<Acked> {
        match self.first {
            Some(first) if first.process != process => Some(first),
            _ => self.other,
        }
    }
}

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let history = digest.history;
    // A transaction's sends have consecutive value ids, so an op's first is enough.
    let mut first_value_of_op = vec![u32::MAX; history.ops().len()];
    for (value, send) in digest.sends.iter().enumerate().rev() {
        first_value_of_op[send.op as usize] = value as u32;
    }
    let mut highest = vec![Highest::default(); digest.partitions.len()];
    let mut last_acked: BTreeMap<(u64, u32), Acked> = BTreeMap::new();
    let mut landed_sends = 0;
    for (index, event) in history.events().iter().enumerate() {
        let first = first_value_of_op[history.op_of_event(index)];
        // Plain sends, and a transaction's sends at its invocation and commit.
        for (nth, args) in event.op.sends().enumerate() {
            let value = first + nth as u32;
            let send = &digest.sends[value as usize];
            match event.kind {
                EventType::Invoke => {
                    let Some((landed, evidence)) = landing(digest, value) else { continue };
                    landed_sends += 1;
                    if let Some(earlier) =
                        last_acked.get(&(event.process, send.part)).filter(|a| landed < a.offset)
                    {
                        findings.found(Invariant::NonmonotonicSend, Guarantee::AckedDurable, Some(digest.partition_id(send.part)), || {
                            let explanation = format!(
                                "process {} sent `{}` after a send acknowledged at offset {}, but it landed at offset {landed}",
                                event.process, send.value, earlier.offset
                            );
                            (explanation, vec![digest.witness.event(earlier.event), digest.witness.event(index), evidence.witness(digest)])
                        });
                    }
                    if let Some(earlier) = highest[send.part as usize]
                        .not_of(event.process)
                        .filter(|a| landed < a.offset)
                    {
                        findings.found(Invariant::RealtimeOrder, Guarantee::AckedDurable, Some(digest.partition_id(send.part)), || {
                            let explanation = format!(
                                "`{}` was sent after process {} had a send acknowledged at offset {}, but it landed at offset {landed}",
                                send.value, earlier.process, earlier.offset
                            );
                            (explanation, vec![digest.witness.event(earlier.event), digest.witness.event(index), evidence.witness(digest)])
                        });
                    }
                }
                EventType::Ok => {
                    let Some(offset) = args.offset else { continue };
                    let acked = Acked { offset, process: event.process, event: index };
                    highest[send.part as usize].add(acked);
                    last_acked.insert((event.process, send.part), acked);
                }
                EventType::Fail | EventType::Info => {}
            }
        }
    }
    findings.examined(Invariant::NonmonotonicSend, landed_sends, "sends that landed");
    findings.examined(Invariant::RealtimeOrder, landed_sends, "sends that landed");
}

/// What shows where a send landed: its acknowledgement, or an observation (a claim).
#[derive(Clone, Copy)]
enum Evidence {
    Ack(usize),
    Observed(u32),
}

impl Evidence {
    fn witness(self, digest: &Digest<'_>) -> Witness {
        match self {
            Evidence::Ack(event) => digest.witness.event(event),
            Evidence::Observed(claim) => digest.claim_witness(&digest.claims[claim as usize]),
        }
    }
}

/// Where the send with this value id landed, and what shows it.
fn landing(digest: &Digest<'_>, value: u32) -> Option<(u64, Evidence)> {
    let send = &digest.sends[value as usize];
    digest.landing(value).map(|(offset, claim)| match claim {
        Some(claim) => (offset, Evidence::Observed(claim)),
        None => (offset, Evidence::Ack(send.completion.expect("an offset came back") as usize)),
    })
}
