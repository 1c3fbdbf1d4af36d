//! An event-store client of any domain (`crate::user::DomainSpec`): it runs each unit
//! of work (one command, or a transfer across two streams) through
//! `eventstore::command::CommandLoop` over a `LogStore` on the cluster, and records
//! every command for the model's event-store checks. A transfer is a saga (debit the
//! source, then credit the destination, or refund the source when the credit cannot
//! be made), or with transactions one `MultiCommandLoop` command whose debit and credit
//! land together (recorded as two commands, one per stream). The client knows no
//! domain: the work carries its own typed command loop behind `ErasedLoop`.
//!
//! A command whose outcome is unknown is retried with the same command id (the loop
//! finds it in the stream if it landed), so a saga always learns where it stands and
//! completes once faults heal.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use logjam_broker::protocol::Msg;
use logjam_eventstore::command::multi::{MultiCommandLoop, MultiOutcome, MultiStep};
use logjam_eventstore::command::{CommandLoop, Outcome, Request, Step};
use logjam_eventstore::envelope::Envelope;
use logjam_eventstore::log_store::LogStore;
use logjam_eventstore::schema::Schema;
use logjam_eventstore::snapshot::{Lineage, Snapshot, Snapshotted};
use logjam_eventstore::store::StreamStore;
use logjam_eventstore::store::{ExpectedVersion, StoreReply, base_stream, snapshot_stream};
use logjam_model::es::{CommandOutcome, CommandRecord};

use crate::user::{AnyWork, DomainSpec};

/// Operations waiting at a busy client.
pub const WORK_QUEUED_MAX: usize = 4;
/// Times one saga step is retried with the same command id before it is given up.
pub const STEP_RETRIES_MAX: u32 = 100;

/// What the event-store processes of a run recorded: every client's commands and every
/// projection's checkpoints.
#[derive(Debug, Default)]
pub struct EsRecording {
    /// Every command the clients ran, with its outcome, in the order they ended.
    pub commands: Vec<CommandRecord>,
    /// Every checkpoint the projections asked for or restored (a transactional
    /// projection's: each committed transaction and each recovery), in order.
    pub projections: Vec<logjam_model::es::ProjectionCheckpoint>,
    /// Times each projection opened from its disk (the first is its boot).
    pub projection_opens: std::collections::BTreeMap<u32, u64>,
    /// Command loads that started from a snapshot (each checked against the full fold).
    pub snapshot_loads: u64,
    /// Snapshots a command load dropped for folding a history the stream no longer has.
    pub snapshots_of_another_history: u64,
}

/// The recording as the processes of one world share it (single-threaded).
pub type SharedEsRecorder = Rc<RefCell<EsRecording>>;

/// Where a unit of work stands: one command, or a step of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    Single,
    Debit,
    Credit,
    Refund,
    /// A transfer as one transaction: debit and credit together.
    Whole,
}

/// The command under way, with what it belongs to.
struct Running {
    work: AnyWork,
    stage: Stage,
    transfer: u64,
    command_id: u64,
    retries: u32,
    /// An earlier attempt under this command id ended indeterminate: it may have
    /// landed (or land yet), so a later refusal or failure proves nothing.
    maybe_landed: bool,
    invoke_ns: u64,
    stream: String,
    command: serde_json::Value,
    command_loop: Box<dyn ErasedLoop>,
    request: u64,
    /// A transfer as one transaction: the credit's stream, command id and command (the
    /// debit's are `stream`, `command_id` and `command`).
    credit: Option<(String, u64, serde_json::Value)>,
}

/// A command loop, whatever its aggregate: `CommandLoop` for one stream,
/// `MultiCommandLoop` for a transfer across two.
pub(crate) trait ErasedLoop {
    fn start(&mut self) -> Next;
    fn on_reply(&mut self, reply: StoreReply) -> Next;
}

impl<A: Snapshotted + PartialEq> ErasedLoop for CommandLoop<A> {
    fn start(&mut self) -> Next {
        next(CommandLoop::start(self))
    }
    fn on_reply(&mut self, reply: StoreReply) -> Next {
        next(CommandLoop::on_reply(self, reply))
    }
}

impl<A: Schema> ErasedLoop for MultiCommandLoop<A> {
    fn start(&mut self) -> Next {
        next_multi(MultiCommandLoop::start(self))
    }
    fn on_reply(&mut self, reply: StoreReply) -> Next {
        next_multi(MultiCommandLoop::on_reply(self, reply))
    }
}

/// How a command across streams ended (`MultiOutcome`), its events as JSON.
pub(crate) enum WholeEnded {
    Appended { parts: Vec<(u64, Vec<serde_json::Value>)> },
    AlreadyApplied { first_versions: Vec<u64> },
    Refused { part: usize, error: String, versions: Vec<u64> },
    Conflict,
    Indeterminate { reason: String },
    Failed { reason: String },
    Corrupt { error: String },
}

/// What a loop wants next, whatever its domain.
pub(crate) enum Next {
    Issue(Request),
    Done(Ended),
    DoneTransfer(WholeEnded),
}

/// How a command ended, whatever its domain.
pub(crate) struct Ended {
    /// Its events are in the stream (appended now, or by an earlier attempt).
    applied: bool,
    /// The domain refused it.
    refused: bool,
    /// It may or may not have landed.
    indeterminate: bool,
    decided_at_version: Option<u64>,
    /// For `applied`: the first version and the events (none if an earlier attempt
    /// appended them).
    ok: Option<(u64, Vec<serde_json::Value>)>,
    /// What happened, for a refusal or a failure.
    reason: String,
    /// Loads that started from a snapshot.
    snapshot_loads: u32,
    /// Snapshots dropped for folding another history.
    snapshots_of_another_history: u32,
    /// A snapshot of the state after an append that reached a multiple of
    /// `SNAPSHOT_EVERY_EVENTS`: (version it covers, encoded snapshot).
    snapshot: Option<Vec<u8>>,
}

/// A client saves a snapshot of a stream each time an append of its takes the stream
/// to a multiple of this many events.
pub const SNAPSHOT_EVERY_EVENTS: u64 = 8;

fn next_multi<A: Schema>(step: MultiStep<A>) -> Next {
    let json = |events: &[A::Event]| -> Vec<serde_json::Value> {
        events.iter().map(|e| serde_json::to_value(e).expect("events serialize")).collect()
    };
    let decision = match step {
        MultiStep::Issue(request) => return Next::Issue(request),
        MultiStep::Done(decision) => decision,
    };
    Next::DoneTransfer(match decision.outcome {
        MultiOutcome::Appended { parts } => WholeEnded::Appended {
            parts: parts.iter().map(|(_, version, events)| (*version, json(events))).collect(),
        },
        MultiOutcome::AlreadyApplied { first_versions } => {
            WholeEnded::AlreadyApplied { first_versions }
        }
        MultiOutcome::Refused { part, error, versions } => {
            WholeEnded::Refused { part, error: error.to_string(), versions }
        }
        MultiOutcome::Conflict => WholeEnded::Conflict,
        MultiOutcome::Indeterminate { reason } => WholeEnded::Indeterminate { reason },
        MultiOutcome::Failed { reason } => WholeEnded::Failed { reason },
        MultiOutcome::Corrupt { error } => WholeEnded::Corrupt { error: error.to_string() },
    })
}

fn next<A: Snapshotted>(step: Step<A>) -> Next {
    match step {
        Step::Issue(request) => Next::Issue(request),
        Step::Done(decision) => {
            let mut ended = ended(decision.outcome, decision.lineage);
            ended.snapshot_loads = decision.snapshot_loads;
            ended.snapshots_of_another_history = decision.snapshots_of_another_history;
            Next::Done(ended)
        }
    }
}

/// The snapshot to save after `events` were appended at `version` on `state`, if they
/// took the stream to a multiple of `SNAPSHOT_EVERY_EVENTS`.
/// `lineage` is the stream's after the append.
fn snapshot_after<A: Snapshotted>(
    state: &A,
    version: u64,
    events: &[A::Event],
    lineage: Lineage,
) -> Option<Vec<u8>> {
    let end = version + events.len() as u64;
    if events.is_empty() || end / SNAPSHOT_EVERY_EVENTS == version / SNAPSHOT_EVERY_EVENTS {
        return None;
    }
    let mut after = state.clone();
    for event in events {
        after.apply(event);
    }
    Snapshot::take(&after, end, lineage).ok().map(|snapshot| snapshot.encode())
}

fn ended<A: Snapshotted>(outcome: Outcome<A>, lineage: Lineage) -> Ended {
    let json = |events: &[A::Event]| {
        events.iter().map(|e| serde_json::to_value(e).expect("events serialize")).collect()
    };
    let none = Ended {
        applied: false,
        refused: false,
        indeterminate: false,
        decided_at_version: None,
        ok: None,
        reason: String::new(),
        snapshot_loads: 0,
        snapshots_of_another_history: 0,
        snapshot: None,
    };
    match outcome {
        Outcome::Appended { state, version, events } => Ended {
            applied: true,
            decided_at_version: Some(version),
            ok: Some((version, json(&events))),
            snapshot: snapshot_after(&state, version, &events, lineage),
            ..none
        },
        Outcome::AlreadyApplied { first_version, .. } => Ended {
            applied: true,
            decided_at_version: Some(first_version),
            ok: Some((first_version, Vec::new())),
            ..none
        },
        Outcome::Refused { version, error, .. } => Ended {
            refused: true,
            decided_at_version: Some(version),
            reason: format!("refused: {error}"),
            ..none
        },
        Outcome::Indeterminate { reason } => Ended { indeterminate: true, reason, ..none },
        Outcome::Conflict { current } => {
            Ended { reason: format!("conflict: the stream held {current} events"), ..none }
        }
        Outcome::Failed { reason } => Ended { reason, ..none },
        Outcome::Corrupt { error } => Ended { reason: format!("corrupt stream: {error}"), ..none },
    }
}

/// An event-store client: runs units of work of any domain, one at a time, through
/// the command loop over a `LogStore`, and records every command.
pub struct EsClient {
    node: u32,
    store: LogStore,
    queue: VecDeque<AnyWork>,
    running: Option<Running>,
    next_command: u64,
    next_request: u64,
    recorder: SharedEsRecorder,
    /// Save snapshots and load from them (with expected versions only: without, a
    /// stream's versions are what each writer believed, and a snapshot could not be
    /// matched to a prefix).
    snapshots: bool,
    /// Transfers are one transaction each (the store has a coordinator), not sagas.
    transfers_in_txn: bool,
}

impl EsClient {
    /// A client on `node`; `snapshots`: save snapshots and load from them.
    pub fn new(
        node: u32,
        store: LogStore,
        recorder: SharedEsRecorder,
        snapshots: bool,
    ) -> EsClient {
        EsClient {
            node,
            store,
            queue: VecDeque::new(),
            running: None,
            next_command: 0,
            next_request: 0,
            recorder,
            snapshots,
            transfers_in_txn: false,
        }
    }

    /// Runs each transfer as one transaction over its two accounts (the store must
    /// have transactions).
    pub fn with_transfers_in_transactions(mut self) -> EsClient {
        self.transfers_in_txn = true;
        self
    }

    /// Nothing waiting, nothing under way, and no store request in flight.
    pub fn is_idle(&self) -> bool {
        self.running.is_none() && self.queue.is_empty() && self.store.is_idle()
    }

    /// Takes on a unit of work; false if too much is waiting already.
    pub fn submit(&mut self, now_ns: u64, work: AnyWork) -> bool {
        if self.queue.len() >= WORK_QUEUED_MAX {
            return false;
        }
        self.queue.push_back(work);
        self.start_next(now_ns);
        true
    }

    /// The quiet phase begins: work not yet started is dropped (it was never invoked),
    /// and what is under way, sagas included, runs to its end.
    pub fn drop_waiting_work(&mut self) {
        self.queue.clear();
    }

    /// Takes the messages to send, as (node, message).
    pub fn drain_outbox(&mut self) -> Vec<(u32, Msg)> {
        self.store.drain_outbox()
    }

    /// The passing of time on the node's clock: the store's retries and timeouts, then
    /// whatever ended moves the work on.
    pub fn tick(&mut self, now_ns: u64) {
        self.store.tick(now_ns);
        self.pump(now_ns);
    }

    /// A message from the cluster for the store; whatever it ended moves the work on.
    pub fn handle(&mut self, now_ns: u64, msg: Msg) {
        self.store.handle(now_ns, msg);
        self.pump(now_ns);
    }

    fn command_id(&mut self) -> u64 {
        self.next_command += 1;
        (u64::from(self.node) << 40) | self.next_command
    }

    fn start_next(&mut self, now_ns: u64) {
        if self.running.is_some() {
            return;
        }
        let Some(work) = self.queue.pop_front() else { return };
        let (stage, transfer) = match work.0.is_transfer() {
            true if self.transfers_in_txn => (Stage::Whole, self.command_id()),
            true => (Stage::Debit, self.command_id()),
            false => (Stage::Single, 0),
        };
        let command_id = self.command_id();
        if stage == Stage::Whole {
            let credit_id = self.command_id();
            return self.begin_whole(now_ns, work, transfer, (command_id, credit_id), (0, false));
        }
        self.begin(now_ns, work, stage, transfer, command_id, 0, false);
    }

    /// Starts (or retries, with the same ids) a transfer as one transaction.
    fn begin_whole(
        &mut self,
        now_ns: u64,
        work: AnyWork,
        transfer: u64,
        (debit_id, credit_id): (u64, u64),
        (retries, maybe_landed): (u32, bool),
    ) {
        let ((source, debit_json), (target, credit_json), mut command_loop) =
            work.0.whole(transfer, (debit_id, credit_id));
        let step = command_loop.start();
        self.running = Some(Running {
            work,
            stage: Stage::Whole,
            transfer,
            command_id: debit_id,
            retries,
            maybe_landed,
            invoke_ns: now_ns,
            stream: source,
            command: debit_json,
            command_loop,
            request: 0,
            credit: Some((target, credit_id, credit_json)),
        });
        self.follow(now_ns, step);
    }

    /// Starts (or retries, with the same id) one command of a unit of work.
    #[allow(clippy::too_many_arguments)]
    fn begin(
        &mut self,
        now_ns: u64,
        work: AnyWork,
        stage: Stage,
        transfer: u64,
        command_id: u64,
        retries: u32,
        maybe_landed: bool,
    ) {
        let (stream, json, command_loop) = work.0.step(stage, transfer, command_id, self.snapshots);
        let ids = (command_id, retries, maybe_landed);
        self.launch(now_ns, (work, stage, transfer), ids, stream, json, command_loop);
    }

    fn launch(
        &mut self,
        now_ns: u64,
        (work, stage, transfer): (AnyWork, Stage, u64),
        (command_id, retries, maybe_landed): (u64, u32, bool),
        stream: String,
        command: serde_json::Value,
        mut command_loop: Box<dyn ErasedLoop>,
    ) {
        let step = command_loop.start();
        self.running = Some(Running {
            work,
            stage,
            transfer,
            command_id,
            retries,
            maybe_landed,
            invoke_ns: now_ns,
            stream,
            command,
            command_loop,
            request: 0,
            credit: None,
        });
        self.follow(now_ns, step);
    }

    fn follow(&mut self, now_ns: u64, step: Next) {
        match step {
            Next::Issue(request) => {
                let running = self.running.as_mut().expect("a command under way");
                self.next_request += 1;
                running.request = self.next_request;
                request.issue(&mut self.store, now_ns, running.request);
            }
            Next::Done(ended) => {
                let running = self.running.take().expect("a command under way");
                self.finish(now_ns, running, ended);
            }
            Next::DoneTransfer(decision) => {
                let running = self.running.take().expect("a command under way");
                self.finish_whole(now_ns, running, decision);
            }
        }
    }

    /// Replies from the store, fed to the command under way.
    fn pump(&mut self, now_ns: u64) {
        loop {
            let replies = self.store.drain_completed();
            if replies.is_empty() {
                break;
            }
            for (request, reply) in replies {
                let Some(running) = self.running.as_mut() else { continue };
                if running.request != request {
                    continue; // a reply for a command that already ended
                }
                let step = running.command_loop.on_reply(reply);
                self.follow(now_ns, step);
            }
        }
        self.start_next(now_ns);
    }

    /// Records how a command ended and moves its saga on.
    fn finish(&mut self, now_ns: u64, running: Running, ended: Ended) {
        let mut recorder = self.recorder.borrow_mut();
        recorder.snapshot_loads += u64::from(ended.snapshot_loads);
        recorder.snapshots_of_another_history += u64::from(ended.snapshots_of_another_history);
        drop(recorder);
        if let Some(payload) = ended.snapshot.as_ref().filter(|_| self.snapshots) {
            // Saved next to the stream; its reply is not waited for (a lost snapshot
            // only means a longer fold).
            let envelope = Envelope {
                stream_version: 0,
                command_id: 0,
                schema_version: 1,
                payload: payload.clone(),
            };
            self.next_request += 1;
            let stream = snapshot_stream(&running.stream);
            self.store.append(
                now_ns,
                self.next_request,
                &stream,
                ExpectedVersion::Any,
                vec![envelope],
            );
        }
        let applied = ended.applied;
        // Unknown: this attempt may have landed, or an earlier one under the same id may.
        let unknown = !applied && (running.maybe_landed || ended.indeterminate);
        let recorded = match ended.ok {
            Some((first_version, events)) => CommandOutcome::Ok { first_version, events },
            None if ended.indeterminate => CommandOutcome::Indeterminate { reason: ended.reason },
            None if unknown => CommandOutcome::Indeterminate {
                reason: format!("an earlier attempt may still land; this one: {}", ended.reason),
            },
            None if ended.refused => CommandOutcome::Rejected { reason: ended.reason },
            None => CommandOutcome::Fail { reason: ended.reason },
        };
        let decided_at_version = if unknown { None } else { ended.decided_at_version };
        self.recorder.borrow_mut().commands.push(CommandRecord {
            process: u64::from(self.node),
            invoke_ns: running.invoke_ns,
            complete_ns: now_ns,
            command_id: running.command_id,
            stream: running.stream.clone(),
            command: running.command.clone(),
            decided_at_version,
            outcome: recorded,
        });
        let definite_no = !applied && !unknown;
        let refused = ended.refused && !unknown;
        let Running { work, stage, transfer, command_id, retries, .. } = running;
        let retry = retries < STEP_RETRIES_MAX;
        // A retry keeps the command id: the loop finds the command in the stream if an
        // earlier attempt landed.
        match stage {
            Stage::Single | Stage::Debit if unknown && retry => {
                self.begin(now_ns, work, stage, transfer, command_id, retries + 1, true)
            }
            Stage::Debit if applied => {
                let credit_id = self.command_id();
                self.begin(now_ns, work, Stage::Credit, transfer, credit_id, 0, false)
            }
            Stage::Credit if applied || refused => {
                // Credited (a refusal means the destination already holds this
                // transfer's credit): the saga is done.
            }
            // A credit that may have landed is looked up again; one that definitely did
            // not is retried, and after enough failures the source is refunded.
            Stage::Credit if (unknown || definite_no) && retry => {
                self.begin(now_ns, work, Stage::Credit, transfer, command_id, retries + 1, unknown)
            }
            Stage::Credit if !unknown => {
                let refund_id = self.command_id();
                self.begin(now_ns, work, Stage::Refund, transfer, refund_id, 0, false)
            }
            Stage::Refund if !applied && !refused && retry => {
                self.begin(now_ns, work, Stage::Refund, transfer, command_id, retries + 1, unknown)
            }
            Stage::Single | Stage::Debit | Stage::Credit | Stage::Refund | Stage::Whole => {}
        }
    }

    /// Records a transfer made as one transaction, as two commands (its debit on the
    /// source and its credit on the destination, each with its own id and version),
    /// and tries again with the same ids while it may have landed.
    fn finish_whole(&mut self, now_ns: u64, running: Running, decision: WholeEnded) {
        let unknown_after = |reason: String| {
            if running.maybe_landed {
                CommandOutcome::Indeterminate {
                    reason: format!("an earlier attempt may still land; this one: {reason}"),
                }
            } else {
                CommandOutcome::Fail { reason }
            }
        };
        // Per part: (decided at version, outcome).
        let (parts, unknown): (Vec<(Option<u64>, CommandOutcome)>, bool) = match decision {
            WholeEnded::Appended { parts } => {
                let parts = parts
                    .into_iter()
                    .map(|(version, events)| {
                        let outcome = CommandOutcome::Ok { first_version: version, events };
                        (Some(version), outcome)
                    })
                    .collect();
                (parts, false)
            }
            WholeEnded::AlreadyApplied { first_versions } => {
                let parts = first_versions
                    .iter()
                    .map(|&first_version| {
                        let outcome = CommandOutcome::Ok { first_version, events: Vec::new() };
                        (Some(first_version), outcome)
                    })
                    .collect();
                (parts, false)
            }
            WholeEnded::Refused { part, error, versions } if !running.maybe_landed => {
                let streams = [&running.stream, &running.credit.as_ref().expect("whole").0];
                let reason = format!("refused: {error} (on {})", streams[part]);
                let parts = versions
                    .iter()
                    .map(|&version| {
                        (Some(version), CommandOutcome::Rejected { reason: reason.clone() })
                    })
                    .collect();
                (parts, false)
            }
            WholeEnded::Indeterminate { reason } => {
                let outcome = CommandOutcome::Indeterminate { reason };
                (vec![(None, outcome.clone()), (None, outcome)], true)
            }
            other => {
                let reason = match other {
                    WholeEnded::Refused { error, .. } => format!("refused: {error}"),
                    WholeEnded::Conflict => "conflict on every attempt".to_owned(),
                    WholeEnded::Failed { reason } => reason,
                    WholeEnded::Corrupt { error } => format!("corrupt stream: {error}"),
                    _ => unreachable!("handled above"),
                };
                let outcome = unknown_after(reason);
                let unknown = matches!(outcome, CommandOutcome::Indeterminate { .. });
                (vec![(None, outcome.clone()), (None, outcome)], unknown)
            }
        };
        let Running { work, transfer, command_id, retries, credit, stream, command, .. } = running;
        let (credit_stream, credit_id, credit_command) = credit.expect("a whole transfer");
        let records = [(stream, command_id, command), (credit_stream, credit_id, credit_command)];
        let mut recorder = self.recorder.borrow_mut();
        for ((stream, command_id, command), (decided_at_version, outcome)) in
            records.into_iter().zip(parts)
        {
            recorder.commands.push(CommandRecord {
                process: u64::from(self.node),
                invoke_ns: running.invoke_ns,
                complete_ns: now_ns,
                command_id,
                stream,
                command,
                decided_at_version,
                outcome,
            });
        }
        drop(recorder);
        if unknown && retries < STEP_RETRIES_MAX {
            let ids = (command_id, credit_id);
            self.begin_whole(now_ns, work, transfer, ids, (retries + 1, true));
        }
    }
}

/// Every up broker's committed events (below its high watermark), decoded, as the
/// event-store history's replica logs. A record that does not decode is kept with the
/// reason, so the checks see it instead of a silent gap.
pub fn final_es_replicas(
    world: &mut crate::World<crate::cluster::ClusterProcess>,
    spec: &crate::cluster::ClusterSpec,
    domain: &dyn DomainSpec,
) -> Vec<logjam_model::es::ReplicaStreams> {
    use logjam_eventstore::envelope;
    let mut replicas = Vec::new();
    for id in 0..spec.brokers {
        let node = crate::NodeId(id);
        let Some(broker) = world.process(node).and_then(|p| p.broker()) else { continue };
        // Only the event store's own partitions (not the projections' outputs).
        let partitions: Vec<u32> = broker.partitions().filter(|&p| p < spec.partitions).collect();
        for partition in partitions {
            let events = world.with_process(node, |process, ctx| {
                let broker = process.broker()?;
                let log = broker.log(partition)?;
                // The committed view: below the last stable offset (the high watermark
                // when no transaction is undecided), without markers or the records of
                // aborted transactions.
                let visible_end = broker.last_stable_offset(partition).unwrap_or(0);
                let aborted = broker.aborted_txns(partition);
                let batches = log
                    .read(&mut crate::LogDisk(ctx.disk()), log.start_offset(), usize::MAX)
                    .ok()?;
                let mut events = Vec::new();
                for batch in batches {
                    let control = batch.attributes & logjam_broker::batch::ATTRIBUTE_CONTROL != 0;
                    let transactional =
                        batch.attributes & logjam_broker::batch::ATTRIBUTE_TRANSACTIONAL != 0;
                    let of_aborted = transactional
                        && aborted
                            .iter()
                            .any(|txn| txn.covers(batch.producer.producer_id, batch.base_offset));
                    if control || of_aborted {
                        continue;
                    }
                    for (index, record) in batch.records.into_iter().enumerate() {
                        let offset = batch.base_offset + index as u64;
                        if offset >= visible_end {
                            continue;
                        }
                        let stream = String::from_utf8_lossy(&record.key).into_owned();
                        if base_stream(&stream) != stream {
                            continue; // a snapshot, not an event
                        }
                        let decoded = envelope::decode(&record.value)
                            .map_err(|error| error.to_string())
                            .and_then(|env| {
                                let event = domain.decode(&stream, offset, &env)?;
                                Ok((env, event))
                            });
                        let stored = match decoded {
                            Ok((env, event)) => logjam_model::es::StoredEvent {
                                offset,
                                stream,
                                version: env.stream_version,
                                command_id: env.command_id,
                                event,
                            },
                            Err(reason) => logjam_model::es::StoredEvent {
                                offset,
                                stream,
                                version: u64::MAX,
                                command_id: 0,
                                event: serde_json::json!({ "Undecodable": reason }),
                            },
                        };
                        events.push(stored);
                    }
                }
                Some(events)
            });
            if let Some(Some(events)) = events {
                replicas.push(logjam_model::es::ReplicaStreams { node: id, partition, events });
            }
        }
    }
    replicas
}
