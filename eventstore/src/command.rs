//! The command loop every client runs, sans-IO: load the stream, fold it, `handle` the
//! command, append the events expecting exactly the version folded; on a conflict,
//! reload and decide again; on an indeterminate append, reload and look for the
//! command's id before trying again. Bounded attempts throughout.
//!
//! A `CommandLoop` never touches a store: it says which request to make next
//! (`Step::Issue`), the caller issues it with an id of its choosing and hands the
//! reply back (`on_reply`), until `Step::Done` carries the `Decision`. So the same loop
//! runs over `InMemoryStore` (`run_command` drives it) and over a log-backed store whose
//! replies arrive after messages.
//!
//! At most once: every load looks for the command id in the stream first, so an
//! attempt that landed although its reply was lost (or that a client resubmits after a
//! crash, with the same id) is reported as `AlreadyApplied`, never applied twice. Every
//! append expects `Exact(version)`, so a lost attempt that lands late and its retry
//! cannot both land (store guarantee 1). Command ids must therefore be unique per
//! command over a stream's life.

use std::fmt;

use crate::aggregate::Aggregate;
use crate::envelope::Envelope;
use crate::schema::{FoldError, Schema, StreamFold, envelope_for};
use crate::snapshot::{Lineage, Snapshot, Snapshotted};
use crate::store::{APPEND_EVENTS_MAX, AppendPart, ExpectedVersion, StoreReply, StreamStore};

pub mod multi;

/// The most append attempts a command may make.
pub const COMMAND_ATTEMPTS_MAX: u32 = 16;
/// Append attempts unless the caller says otherwise.
pub const COMMAND_ATTEMPTS_DEFAULT: u32 = 5;

/// A request the loop wants made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Read {
        stream: String,
    },
    Append {
        stream: String,
        expected: ExpectedVersion,
        events: Vec<Envelope>,
    },
    /// Every part or none (`StreamStore::append_all`).
    AppendAll {
        parts: Vec<AppendPart>,
    },
}

impl Request {
    /// Makes the request on `store` under the id `request`.
    pub fn issue<S: StreamStore + ?Sized>(self, store: &mut S, now_ns: u64, request: u64) {
        match self {
            Request::Read { stream } => store.read(now_ns, request, &stream),
            Request::Append { stream, expected, events } => {
                store.append(now_ns, request, &stream, expected, events)
            }
            Request::AppendAll { parts } => store.append_all(now_ns, request, parts),
        }
    }
}

/// What the loop wants next.
pub enum Step<A: Aggregate> {
    Issue(Request),
    Done(Decision<A>),
}

/// What became of a command.
pub struct Decision<A: Aggregate> {
    pub stream: String,
    pub command_id: u64,
    /// Append attempts made.
    pub appends: u32,
    /// Reads made.
    pub reads: u32,
    /// Loads that started from a snapshot (and were checked against the full fold).
    pub snapshot_loads: u32,
    /// Snapshots a load dropped because they fold another history than the stream's
    /// (the log lost events they folded, and other events took their versions).
    pub snapshots_of_another_history: u32,
    /// The lineage of the stream as the decision saw it: after its own append for
    /// `Appended`, of the last load otherwise. A snapshot taken after the decision
    /// carries it.
    pub lineage: Lineage,
    pub outcome: Outcome<A>,
}

/// How a command ended. `state` is the fold the decision was made on and `version` the
/// number of events it folded.
pub enum Outcome<A: Aggregate> {
    /// `events` were appended at versions `version..`; `state` is the state before
    /// them. Empty `events`: `handle` accepted the command with nothing to record, and
    /// nothing was appended.
    Appended { state: A, version: u64, events: Vec<A::Event> },
    /// The stream already held this command's events, from `first_version` (an earlier
    /// attempt landed); `state` includes them.
    AlreadyApplied { state: A, version: u64, first_version: u64 },
    /// `handle` refused the command against `state`; nothing was appended.
    Refused { state: A, version: u64, error: A::Error },
    /// Every attempt met a concurrent append; nothing was appended. The stream held
    /// `current` events at the last one.
    Conflict { current: u64 },
    /// An attempt may have landed (or may still land) and the loop could not find out
    /// within its attempts.
    Indeterminate { reason: String },
    /// The store refused definitely; nothing was appended.
    Failed { reason: String },
    /// The stream could not be folded; nothing was appended.
    Corrupt { error: FoldError },
}

enum Phase<A: Aggregate> {
    Loading,
    Appending { state: A, version: u64, events: Vec<A::Event>, lineage_after: Lineage },
    Finished,
}

/// One command's loop over a stream.
pub struct CommandLoop<A: Schema> {
    stream: String,
    command_id: u64,
    command: A::Command,
    attempts_max: u32,
    appends: u32,
    reads: u32,
    phase: Phase<A>,
    /// An append whose reply was indeterminate and that could still land: the version
    /// it expected, and why its reply was indeterminate. Cleared once a load shows the
    /// stream past that version without this command's events.
    uncertain: Option<(u64, String)>,
    /// Set by `with_snapshots`: turns a snapshot's payload into (state, version), and
    /// compares two states.
    snapshots: Option<(Restore<A>, Same<A>)>,
    /// Loads that started from a snapshot.
    snapshot_loads: u32,
    /// Snapshots dropped for folding another history.
    snapshots_of_another_history: u32,
    /// The lineage of the stream as last loaded, or as the last append left it.
    lineage: Lineage,
}

/// A snapshot's payload as (state, version, lineage), or `None` if it cannot be used (a stale
/// schema, bytes that do not decode: the stream is folded whole instead).
type Restore<A> = fn(&[u8]) -> Option<(A, u64, Lineage)>;
/// Whether two states are equal.
type Same<A> = fn(&A, &A) -> bool;

fn restore_snapshot<A: Snapshotted>(bytes: &[u8]) -> Option<(A, u64, Lineage)> {
    Snapshot::decode(bytes).ok()?.restore::<A>().ok()
}

impl<A: Schema> CommandLoop<A> {
    pub fn new(stream: &str, command_id: u64, command: A::Command) -> CommandLoop<A> {
        CommandLoop::with_attempts(stream, command_id, command, COMMAND_ATTEMPTS_DEFAULT)
    }

    /// A loop that makes at most `attempts_max` appends (1..=`COMMAND_ATTEMPTS_MAX`).
    pub fn with_attempts(
        stream: &str,
        command_id: u64,
        command: A::Command,
        attempts_max: u32,
    ) -> CommandLoop<A> {
        assert!((1..=COMMAND_ATTEMPTS_MAX).contains(&attempts_max), "attempts_max {attempts_max}");
        CommandLoop {
            stream: stream.to_owned(),
            command_id,
            command,
            attempts_max,
            appends: 0,
            reads: 0,
            phase: Phase::Loading,
            uncertain: None,
            snapshots: None,
            snapshot_loads: 0,
            snapshots_of_another_history: 0,
            lineage: Lineage::EMPTY,
        }
    }

    /// Loads start from the newest snapshot the store brings back with the stream, and
    /// fold only the tail after it. Every such load also folds the stream whole and
    /// asserts the two agree: snapshot + tail must equal the full fold, and a
    /// simulation that breaks it stops there.
    pub fn with_snapshots(mut self) -> CommandLoop<A>
    where
        A: Snapshotted + PartialEq,
    {
        self.snapshots = Some((restore_snapshot::<A>, |a, b| a == b));
        self
    }

    /// The first request: load the stream.
    pub fn start(&mut self) -> Step<A> {
        assert!(self.reads == 0 && matches!(self.phase, Phase::Loading), "started twice");
        self.load()
    }

    /// Takes the reply to the request the last `Step::Issue` asked for.
    pub fn on_reply(&mut self, reply: StoreReply) -> Step<A> {
        match std::mem::replace(&mut self.phase, Phase::Finished) {
            Phase::Loading => self.on_loaded(reply),
            Phase::Appending { state, version, events, lineage_after } => {
                self.on_appended(reply, state, version, events, lineage_after)
            }
            Phase::Finished => panic!("a reply after the command finished"),
        }
    }

    fn load(&mut self) -> Step<A> {
        // Reads retry failures too, so they get a budget of their own.
        if self.reads >= 2 * self.attempts_max {
            return self.end(Outcome::Failed { reason: "out of read attempts".to_owned() });
        }
        self.reads += 1;
        self.phase = Phase::Loading;
        Step::Issue(Request::Read { stream: self.stream.clone() })
    }

    fn on_loaded(&mut self, reply: StoreReply) -> Step<A> {
        let (records, snapshot) = match reply {
            StoreReply::Read { events, snapshot } => (events, snapshot),
            StoreReply::Indeterminate { .. } | StoreReply::Failed { .. } => return self.load(),
            other => panic!("a read answered with {other:?}"),
        };
        let (mut state, version, first_version) =
            match fold_finding::<A>(&self.stream, self.command_id, &records) {
                Ok(folded) => folded,
                Err(error) => return self.end(Outcome::Corrupt { error }),
            };
        let restored = match (&self.snapshots, &snapshot) {
            (Some((restore, same)), Some(bytes)) => restore(bytes).map(|s| (s, *same)),
            _ => None,
        };
        // A snapshot ahead of the stream (the stream lost events it covers) is not used,
        // nor one of another history (the stream lost events it folded, and others took
        // their versions): snapshot + tail would be neither history.
        let snapshot_at = restored.as_ref().map(|((_, at, _), _)| *at).filter(|&at| at <= version);
        let (lineage_at_snapshot, lineage) = lineages(&records, snapshot_at);
        self.lineage = lineage;
        let restored = match restored {
            Some(((state, at, lineage), same)) if snapshot_at.is_some() => {
                if Some(lineage) == lineage_at_snapshot {
                    Some(((state, at, lineage), same))
                } else {
                    self.snapshots_of_another_history += 1;
                    None
                }
            }
            _ => None,
        };
        if let Some(((snapshot_state, at, _), same)) = restored {
            let mut tail = StreamFold::<A>::from_state(&self.stream, snapshot_state, at);
            for (offset, envelope) in &records {
                if let Err(error) = tail.push(*offset, envelope.as_ref()) {
                    return self.end(Outcome::Corrupt { error });
                }
            }
            let (from_snapshot, tail_version) = tail.finish();
            assert!(
                tail_version == version && same(&from_snapshot, &state),
                "{}: snapshot at version {at} + tail is not the full fold",
                self.stream
            );
            self.snapshot_loads += 1;
            state = from_snapshot;
        }
        if let Some(first_version) = first_version {
            return self.end(Outcome::AlreadyApplied { state, version, first_version });
        }
        if self.uncertain.as_ref().is_some_and(|&(expected, _)| version > expected) {
            // Another append holds the position the uncertain one expected: it can no
            // longer land, and it did not (its command id is not in the stream).
            self.uncertain = None;
        }
        if self.appends >= self.attempts_max {
            return self.end(Outcome::Conflict { current: version });
        }
        self.decide(state, version)
    }

    fn decide(&mut self, state: A, version: u64) -> Step<A> {
        let events = match state.handle(&self.command) {
            Ok(events) => events,
            Err(error) => return self.end(Outcome::Refused { state, version, error }),
        };
        if events.is_empty() {
            return self.end(Outcome::Appended { state, version, events });
        }
        if events.len() > APPEND_EVENTS_MAX {
            let reason = format!("{} events exceed the append limit", events.len());
            return self.end(Outcome::Failed { reason });
        }
        let envelopes: Vec<Envelope> = events
            .iter()
            .enumerate()
            .map(|(i, event)| envelope_for::<A>(version + i as u64, self.command_id, event))
            .collect();
        let lineage_after = envelopes
            .iter()
            .fold(self.lineage, |lineage, envelope| lineage.then(envelope.as_ref()));
        self.appends += 1;
        self.phase = Phase::Appending { state, version, events, lineage_after };
        let expected = ExpectedVersion::Exact(version);
        Step::Issue(Request::Append { stream: self.stream.clone(), expected, events: envelopes })
    }

    fn on_appended(
        &mut self,
        reply: StoreReply,
        state: A,
        version: u64,
        events: Vec<A::Event>,
        lineage_after: Lineage,
    ) -> Step<A> {
        match reply {
            StoreReply::Appended { first_version } => {
                assert_eq!(first_version, version, "an Exact({version}) append landed elsewhere");
                self.uncertain = None;
                self.lineage = lineage_after;
                self.end(Outcome::Appended { state, version, events })
            }
            StoreReply::WrongExpectedVersion { current } => {
                assert_ne!(current, version, "a conflict at the expected version");
                self.load()
            }
            StoreReply::Indeterminate { reason } => {
                self.uncertain = Some((version, reason));
                self.load()
            }
            StoreReply::Failed { reason } => self.end(Outcome::Failed { reason }),
            StoreReply::Read { .. } => panic!("an append answered with a read"),
        }
    }

    /// Ends the loop. A failure or a refusal while an earlier attempt could still land
    /// (a stale read can show a stream short of it) is reported as indeterminate: the
    /// command may yet take effect.
    fn end(&mut self, outcome: Outcome<A>) -> Step<A> {
        let outcome = match (outcome, self.uncertain.take()) {
            (
                Outcome::Conflict { .. } | Outcome::Failed { .. } | Outcome::Refused { .. },
                Some((_, reason)),
            ) => Outcome::Indeterminate { reason },
            (outcome, _) => outcome,
        };
        self.phase = Phase::Finished;
        Step::Done(Decision {
            stream: std::mem::take(&mut self.stream),
            command_id: self.command_id,
            appends: self.appends,
            reads: self.reads,
            snapshot_loads: self.snapshot_loads,
            snapshots_of_another_history: self.snapshots_of_another_history,
            lineage: self.lineage,
            outcome,
        })
    }
}

/// The lineage of a folded stream's first `at` events (if asked) and of all of them, in
/// one pass (`records` are in version order from 0: the fold checked it).
fn lineages(records: &[(u64, Envelope)], at: Option<u64>) -> (Option<Lineage>, Lineage) {
    let mut lineage = Lineage::EMPTY;
    let mut at_lineage = None;
    for (version, (_, envelope)) in records.iter().enumerate() {
        if Some(version as u64) == at {
            at_lineage = Some(lineage);
        }
        lineage = lineage.then(envelope.as_ref());
    }
    if Some(records.len() as u64) == at {
        at_lineage = Some(lineage);
    }
    (at_lineage, lineage)
}

/// Folds a stream's records, and finds where `command_id`'s events start in it: the
/// state, the version (events folded), and the first version of the command's events.
fn fold_finding<A: Schema>(
    stream: &str,
    command_id: u64,
    records: &[(u64, Envelope)],
) -> Result<(A, u64, Option<u64>), FoldError> {
    let mut fold = StreamFold::<A>::new(stream);
    let mut found = None;
    for (offset, envelope) in records {
        fold.push(*offset, envelope.as_ref())?;
        if envelope.command_id == command_id && found.is_none() {
            found = Some(envelope.stream_version);
        }
    }
    let (state, version) = fold.finish();
    Ok((state, version, found))
}

/// The most requests `run_command` makes before it gives up on the loop: a bound on a
/// bug, far above what `COMMAND_ATTEMPTS_MAX` allows.
const RUN_REQUESTS_MAX: u32 = 4 * COMMAND_ATTEMPTS_MAX + 4;

/// Drives `command` to its decision over a store that completes every request at once
/// (`InMemoryStore`, or a test wrapper of one). Request ids come from `next_request`.
pub fn run_command<A: Schema, S: StreamStore + ?Sized>(
    store: &mut S,
    now_ns: u64,
    next_request: &mut u64,
    mut command: CommandLoop<A>,
) -> Decision<A> {
    let mut step = command.start();
    for _ in 0..RUN_REQUESTS_MAX {
        let request = match step {
            Step::Done(decision) => return decision,
            Step::Issue(request) => request,
        };
        let id = *next_request;
        *next_request += 1;
        request.issue(store, now_ns, id);
        let mut replies = store.drain_completed();
        assert_eq!(replies.len(), 1, "run_command needs a store that completes at once");
        let (reply_id, reply) = replies.pop().expect("one reply");
        assert_eq!(reply_id, id, "the reply answers the request");
        step = command.on_reply(reply);
    }
    panic!("a command loop made more than {RUN_REQUESTS_MAX} requests");
}

impl<A: Aggregate> Outcome<A> {
    /// A short name: `appended`, `already-applied`, `refused`, `conflict`,
    /// `indeterminate`, `failed`, `corrupt`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Appended { .. } => "appended",
            Outcome::AlreadyApplied { .. } => "already-applied",
            Outcome::Refused { .. } => "refused",
            Outcome::Conflict { .. } => "conflict",
            Outcome::Indeterminate { .. } => "indeterminate",
            Outcome::Failed { .. } => "failed",
            Outcome::Corrupt { .. } => "corrupt",
        }
    }
}

impl<A> fmt::Debug for Outcome<A>
where
    A: Aggregate + fmt::Debug,
    A::Event: fmt::Debug,
    A::Error: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Appended { state, version, events } => f
                .debug_struct("Appended")
                .field("state", state)
                .field("version", version)
                .field("events", events)
                .finish(),
            Outcome::AlreadyApplied { state, version, first_version } => f
                .debug_struct("AlreadyApplied")
                .field("state", state)
                .field("version", version)
                .field("first_version", first_version)
                .finish(),
            Outcome::Refused { state, version, error } => f
                .debug_struct("Refused")
                .field("state", state)
                .field("version", version)
                .field("error", error)
                .finish(),
            Outcome::Conflict { current } => {
                f.debug_struct("Conflict").field("current", current).finish()
            }
            Outcome::Indeterminate { reason } => {
                f.debug_struct("Indeterminate").field("reason", reason).finish()
            }
            Outcome::Failed { reason } => f.debug_struct("Failed").field("reason", reason).finish(),
            Outcome::Corrupt { error } => f.debug_struct("Corrupt").field("error", error).finish(),
        }
    }
}

impl<A> fmt::Debug for Decision<A>
where
    A: Aggregate + fmt::Debug,
    A::Event: fmt::Debug,
    A::Error: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("stream", &self.stream)
            .field("command_id", &self.command_id)
            .field("appends", &self.appends)
            .field("reads", &self.reads)
            .field("outcome", &self.outcome)
            .finish()
    }
}

#[cfg(test)]
mod tests;
