//! A command over several streams at once (a bank transfer: a debit on one account and
//! a credit on another), decided on every stream's state and appended as one
//! (`StreamStore::append_all`: a transaction on the log). Its parts land together or
//! not at all, so nothing is ever half done, and no saga has to finish it.
//!
//! The loop is `CommandLoop`'s, widened: load every stream, fold each, let each part's
//! `handle` decide, append every part expecting exactly the version it folded; on a
//! conflict, reload and decide again; on an indeterminate append, reload and look for
//! the parts' command ids. At most once: a part's command id found in its stream means
//! an earlier attempt landed, and since attempts land whole, every part's is there.
//! A load that finds some parts' ids and not others' (a read that raced a commit) is
//! made again, and so is one that shows every stream where a refused attempt found
//! them (the read is behind the refusal: deciding on it would be refused again). A
//! failed attempt (certainly not applied) is decided again, within the attempts.

use crate::aggregate::Aggregate;
use crate::schema::{FoldError, Schema, envelope_for};
use crate::store::{APPEND_EVENTS_MAX, AppendPart, ExpectedVersion, StoreReply};

use super::{COMMAND_ATTEMPTS_MAX, Request};

/// One stream's command of a command across streams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part<C> {
    pub stream: String,
    /// Unique per command over the stream's life, as for `CommandLoop`.
    pub command_id: u64,
    pub command: C,
}

/// What the loop wants next.
pub enum MultiStep<A: Aggregate> {
    Issue(Request),
    Done(MultiDecision<A>),
}

/// What became of a command across streams.
pub struct MultiDecision<A: Aggregate> {
    /// Append attempts made.
    pub appends: u32,
    /// Reads made (one per stream per load).
    pub reads: u32,
    pub outcome: MultiOutcome<A>,
}

/// How a command across streams ended, for every part at once.
pub enum MultiOutcome<A: Aggregate> {
    /// Every part's events were appended: per part, the state it decided on, the
    /// version it folded (where its events went) and its events.
    Appended { parts: Vec<(A, u64, Vec<A::Event>)> },
    /// An earlier attempt landed: per part, the first version of its events.
    AlreadyApplied { first_versions: Vec<u64> },
    /// Part `part` was refused against its state; nothing was appended. `versions`:
    /// what each part folded.
    Refused { part: usize, error: A::Error, versions: Vec<u64> },
    /// Every attempt met a concurrent append; nothing was appended.
    Conflict,
    /// An attempt may have landed (or may still land) and the loop could not find out.
    Indeterminate { reason: String },
    /// The store refused definitely; nothing was appended.
    Failed { reason: String },
    /// A stream could not be folded; nothing was appended.
    Corrupt { error: FoldError },
}

impl<A: Aggregate> MultiOutcome<A> {
    pub fn kind(&self) -> &'static str {
        match self {
            MultiOutcome::Appended { .. } => "appended",
            MultiOutcome::AlreadyApplied { .. } => "already-applied",
            MultiOutcome::Refused { .. } => "refused",
            MultiOutcome::Conflict => "conflict",
            MultiOutcome::Indeterminate { .. } => "indeterminate",
            MultiOutcome::Failed { .. } => "failed",
            MultiOutcome::Corrupt { .. } => "corrupt",
        }
    }
}

/// One stream as the last load found it.
struct Loaded<A> {
    state: A,
    version: u64,
    /// The first version of this part's command in the stream, if it is there.
    found: Option<u64>,
}

enum Phase<A: Aggregate> {
    /// Loading stream `loaded.len()`.
    Loading {
        loaded: Vec<Loaded<A>>,
    },
    Appending {
        parts: Vec<(A, u64, Vec<A::Event>)>,
    },
    Finished,
}

/// One command's loop over several streams.
pub struct MultiCommandLoop<A: Schema> {
    parts: Vec<Part<A::Command>>,
    attempts_max: u32,
    appends: u32,
    reads: u32,
    phase: Phase<A>,
    /// An append whose reply was indeterminate and that could still land: the version
    /// each part expected, and why. Cleared once a load shows a stream past its part's
    /// version without the command (the attempt can no longer land whole).
    uncertain: Option<(Vec<Option<u64>>, String)>,
    /// The versions a refused attempt decided on: a load that shows every stream still
    /// there is behind the refusal, and is made again.
    refused_at: Option<Vec<u64>>,
}

impl<A: Schema> MultiCommandLoop<A> {
    /// A loop over `parts` (distinct streams), making at most `attempts_max` appends.
    pub fn new(parts: Vec<Part<A::Command>>, attempts_max: u32) -> MultiCommandLoop<A> {
        assert!((1..=COMMAND_ATTEMPTS_MAX).contains(&attempts_max), "attempts_max {attempts_max}");
        assert!(!parts.is_empty(), "a command across streams has parts");
        MultiCommandLoop {
            parts,
            attempts_max,
            appends: 0,
            reads: 0,
            phase: Phase::Loading { loaded: Vec::new() },
            uncertain: None,
            refused_at: None,
        }
    }

    /// The first request: load the first stream.
    pub fn start(&mut self) -> MultiStep<A> {
        assert!(self.reads == 0, "started twice");
        self.load(Vec::new())
    }

    /// Takes the reply to the request the last `MultiStep::Issue` asked for.
    pub fn on_reply(&mut self, reply: StoreReply) -> MultiStep<A> {
        match std::mem::replace(&mut self.phase, Phase::Finished) {
            Phase::Loading { loaded } => self.on_loaded(reply, loaded),
            Phase::Appending { parts } => self.on_appended(reply, parts),
            Phase::Finished => panic!("a reply after the command finished"),
        }
    }

    /// Asks for the next stream of a load (`loaded` holds those read so far).
    fn load(&mut self, loaded: Vec<Loaded<A>>) -> MultiStep<A> {
        // Reads retry failures too, so they get a budget of their own.
        if self.reads >= 2 * self.attempts_max * self.parts.len() as u32 {
            return self.end(MultiOutcome::Failed { reason: "out of read attempts".to_owned() });
        }
        self.reads += 1;
        let stream = self.parts[loaded.len()].stream.clone();
        self.phase = Phase::Loading { loaded };
        MultiStep::Issue(Request::Read { stream })
    }

    fn on_loaded(&mut self, reply: StoreReply, mut loaded: Vec<Loaded<A>>) -> MultiStep<A> {
        let records = match reply {
            StoreReply::Read { events, .. } => events,
            StoreReply::Indeterminate { .. } | StoreReply::Failed { .. } => {
                return self.load(loaded);
            }
            other => panic!("a read answered with {other:?}"),
        };
        let part = &self.parts[loaded.len()];
        let (state, version, found) =
            match super::fold_finding::<A>(&part.stream, part.command_id, &records) {
                Ok(folded) => folded,
                Err(error) => return self.end(MultiOutcome::Corrupt { error }),
            };
        loaded.push(Loaded { state, version, found });
        if loaded.len() < self.parts.len() {
            return self.load(loaded);
        }
        let found: Vec<u64> = loaded.iter().filter_map(|l| l.found).collect();
        if found.len() == loaded.len() {
            return self.end(MultiOutcome::AlreadyApplied { first_versions: found });
        }
        if !found.is_empty() {
            // Some streams hold the command and some not: a read raced its commit.
            return self.load(Vec::new());
        }
        if let Some((expected, _)) = &self.uncertain {
            let moved = loaded.iter().zip(expected);
            if moved.filter_map(|(l, e)| e.map(|e| (l, e))).any(|(l, e)| l.version > e) {
                // A stream moved past what the uncertain attempt expected, without it:
                // it can no longer land whole, and it did not land.
                self.uncertain = None;
            }
        }
        if let Some(refused_at) = self.refused_at.take() {
            if loaded.iter().map(|l| l.version).eq(refused_at.iter().copied()) {
                self.refused_at = Some(refused_at);
                return self.load(Vec::new());
            }
        }
        if self.appends >= self.attempts_max {
            return self.end(MultiOutcome::Conflict);
        }
        self.decide(loaded)
    }

    fn decide(&mut self, loaded: Vec<Loaded<A>>) -> MultiStep<A> {
        let versions: Vec<u64> = loaded.iter().map(|l| l.version).collect();
        let mut decided = Vec::with_capacity(loaded.len());
        for (index, (part, l)) in self.parts.iter().zip(loaded).enumerate() {
            match l.state.handle(&part.command) {
                Ok(events) if events.len() > APPEND_EVENTS_MAX => {
                    let reason =
                        format!("{}: {} events exceed the limit", part.stream, events.len());
                    return self.end(MultiOutcome::Failed { reason });
                }
                Ok(events) => decided.push((l.state, l.version, events)),
                Err(error) => {
                    return self.end(MultiOutcome::Refused { part: index, error, versions });
                }
            }
        }
        let appends: Vec<AppendPart> = self
            .parts
            .iter()
            .zip(&decided)
            .filter(|(_, (_, _, events))| !events.is_empty())
            .map(|(part, (_, version, events))| AppendPart {
                stream: part.stream.clone(),
                expected: ExpectedVersion::Exact(*version),
                events: events
                    .iter()
                    .enumerate()
                    .map(|(i, event)| envelope_for::<A>(version + i as u64, part.command_id, event))
                    .collect(),
            })
            .collect();
        if appends.is_empty() {
            return self.end(MultiOutcome::Appended { parts: decided });
        }
        self.appends += 1;
        self.phase = Phase::Appending { parts: decided };
        MultiStep::Issue(Request::AppendAll { parts: appends })
    }

    fn on_appended(
        &mut self,
        reply: StoreReply,
        parts: Vec<(A, u64, Vec<A::Event>)>,
    ) -> MultiStep<A> {
        match reply {
            StoreReply::Appended { .. } => {
                self.uncertain = None;
                self.end(MultiOutcome::Appended { parts })
            }
            StoreReply::WrongExpectedVersion { .. } => {
                self.refused_at = Some(parts.iter().map(|(_, version, _)| *version).collect());
                self.load(Vec::new())
            }
            StoreReply::Indeterminate { reason } => {
                // Only the parts that appended were conditions of the attempt.
                let expected = parts
                    .iter()
                    .map(|(_, version, events)| (!events.is_empty()).then_some(*version))
                    .collect();
                self.uncertain = Some((expected, reason));
                self.load(Vec::new())
            }
            // Certainly not applied: decided again while attempts remain.
            StoreReply::Failed { .. } if self.appends < self.attempts_max => self.load(Vec::new()),
            StoreReply::Failed { reason } => self.end(MultiOutcome::Failed { reason }),
            StoreReply::Read { .. } => panic!("an append answered with a read"),
        }
    }

    /// Ends the loop. A failure or a refusal while an earlier attempt could still land
    /// is reported as indeterminate, as `CommandLoop` does.
    fn end(&mut self, outcome: MultiOutcome<A>) -> MultiStep<A> {
        let outcome = match (outcome, self.uncertain.take()) {
            (
                MultiOutcome::Conflict | MultiOutcome::Failed { .. } | MultiOutcome::Refused { .. },
                Some((_, reason)),
            ) => MultiOutcome::Indeterminate { reason },
            (outcome, _) => outcome,
        };
        self.phase = Phase::Finished;
        MultiStep::Done(MultiDecision { appends: self.appends, reads: self.reads, outcome })
    }
}
