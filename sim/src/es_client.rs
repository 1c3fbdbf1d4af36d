//! An event-store client of the bank: it runs deposits, withdrawals and transfers (a
//! saga: debit the source, then credit the destination, or refund the source when the
//! credit cannot be made) through `eventstore::command::CommandLoop` over a `LogStore`
//! on the cluster, and records every command for the model's event-store checks.
//!
//! A command whose outcome is unknown is retried with the same command id (the loop
//! finds it in the stream if it landed), so a saga always learns where it stands and
//! completes once faults heal.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use logjam_broker::protocol::Msg;
use logjam_eventstore::command::{CommandLoop, Outcome, Step};
use logjam_eventstore::domains::bank::{Account, BankCommand, account_stream};
use logjam_eventstore::log_store::LogStore;
use logjam_eventstore::store::StreamStore;
use logjam_model::es::{CommandOutcome, CommandRecord};

/// Operations waiting at a busy client.
pub const WORK_QUEUED_MAX: usize = 4;
/// Times one saga step is retried with the same command id before it is given up.
pub const STEP_RETRIES_MAX: u32 = 100;

/// What the event-store processes of a run recorded: every client's commands and every
/// projection's checkpoints.
#[derive(Debug, Default)]
pub struct EsRecording {
    pub commands: Vec<CommandRecord>,
    pub projections: Vec<logjam_model::es::ProjectionCheckpoint>,
    /// Times each projection opened from its disk (the first is its boot).
    pub projection_opens: std::collections::BTreeMap<u32, u64>,
}

pub type SharedEsRecorder = Rc<RefCell<EsRecording>>;

/// One unit of work, drawn from a schedule's operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    Deposit { account: u32, amount: u64 },
    Withdraw { account: u32, amount: u64 },
    Transfer { from: u32, to: u32, amount: u64 },
}

impl Work {
    /// The work an operation on `account` stands for, from a hash of the operation:
    /// each operation decides its own command, so dropping one (shrinking) leaves the
    /// others as they were.
    pub fn of(account: u32, accounts: u32, deposits_only: bool, hash: u64) -> Work {
        let amount = 1 + (hash >> 8) % 100;
        if deposits_only {
            return Work::Deposit { account, amount };
        }
        match hash % 10 {
            0..=3 => Work::Deposit { account, amount },
            4..=6 => Work::Withdraw { account, amount },
            _ => {
                let to = (account + 1 + ((hash >> 20) as u32) % (accounts - 1)) % accounts;
                Work::Transfer { from: account, to, amount: amount.div_ceil(2) }
            }
        }
    }
}

/// Where a transfer saga stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Single,
    Debit,
    Credit,
    Refund,
}

/// The command under way, with what it belongs to.
struct Running {
    work: Work,
    stage: Stage,
    transfer: u64,
    command_id: u64,
    retries: u32,
    /// An earlier attempt under this command id ended indeterminate: it may have
    /// landed (or land yet), so a later refusal or failure proves nothing.
    maybe_landed: bool,
    invoke_ns: u64,
    stream: String,
    command: BankCommand,
    command_loop: CommandLoop<Account>,
    request: u64,
}

pub struct EsClient {
    node: u32,
    accounts: u32,
    store: LogStore,
    queue: VecDeque<Work>,
    running: Option<Running>,
    next_command: u64,
    next_request: u64,
    recorder: SharedEsRecorder,
}

impl EsClient {
    pub fn new(node: u32, accounts: u32, store: LogStore, recorder: SharedEsRecorder) -> EsClient {
        EsClient {
            node,
            accounts,
            store,
            queue: VecDeque::new(),
            running: None,
            next_command: 0,
            next_request: 0,
            recorder,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.running.is_none() && self.queue.is_empty() && self.store.is_idle()
    }

    /// Takes on a unit of work; false if too much is waiting already.
    pub fn submit(&mut self, now_ns: u64, work: Work) -> bool {
        if self.queue.len() >= WORK_QUEUED_MAX {
            return false;
        }
        debug_assert!(match &work {
            Work::Deposit { account, .. } | Work::Withdraw { account, .. } =>
                *account < self.accounts,
            Work::Transfer { from, to, .. } =>
                from != to && *from < self.accounts && *to < self.accounts,
        });
        self.queue.push_back(work);
        self.start_next(now_ns);
        true
    }

    /// The quiet phase begins: work not yet started is dropped (it was never invoked),
    /// and what is under way, sagas included, runs to its end.
    pub fn drop_waiting_work(&mut self) {
        self.queue.clear();
    }

    pub fn drain_outbox(&mut self) -> Vec<(u32, Msg)> {
        self.store.drain_outbox()
    }

    pub fn tick(&mut self, now_ns: u64) {
        self.store.tick(now_ns);
        self.pump(now_ns);
    }

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
        let (stage, transfer) = match work {
            Work::Transfer { .. } => (Stage::Debit, self.command_id()),
            _ => (Stage::Single, 0),
        };
        let command_id = self.command_id();
        self.begin(now_ns, work, stage, transfer, command_id, 0, false);
    }

    /// Starts (or retries, with the same id) one command of a unit of work.
    #[allow(clippy::too_many_arguments)]
    fn begin(
        &mut self,
        now_ns: u64,
        work: Work,
        stage: Stage,
        transfer: u64,
        command_id: u64,
        retries: u32,
        maybe_landed: bool,
    ) {
        let (account, command) = match (&work, stage) {
            (Work::Deposit { account, amount }, _) => {
                (*account, BankCommand::Deposit { amount: *amount })
            }
            (Work::Withdraw { account, amount }, _) => {
                (*account, BankCommand::Withdraw { amount: *amount })
            }
            (Work::Transfer { from, to, amount }, Stage::Debit) => (
                *from,
                BankCommand::Debit {
                    transfer,
                    to: account_stream(u64::from(*to)),
                    amount: *amount,
                },
            ),
            (Work::Transfer { from, to, amount }, Stage::Credit) => (
                *to,
                BankCommand::Credit {
                    transfer,
                    from: account_stream(u64::from(*from)),
                    amount: *amount,
                },
            ),
            (Work::Transfer { from, amount, .. }, Stage::Refund) => {
                (*from, BankCommand::Refund { transfer, amount: *amount })
            }
            (Work::Transfer { .. }, Stage::Single) => unreachable!("a transfer is a saga"),
        };
        let stream = account_stream(u64::from(account));
        let mut command_loop = CommandLoop::new(&stream, command_id, command.clone());
        self.next_request += 1;
        let request = self.next_request;
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
            request,
        });
        self.follow(now_ns, step);
    }

    fn follow(&mut self, now_ns: u64, step: Step<Account>) {
        match step {
            Step::Issue(request) => {
                let running = self.running.as_mut().expect("a command under way");
                self.next_request += 1;
                running.request = self.next_request;
                request.issue(&mut self.store, now_ns, running.request);
            }
            Step::Done(decision) => {
                let running = self.running.take().expect("a command under way");
                self.finish(now_ns, running, decision.outcome);
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
    fn finish(&mut self, now_ns: u64, running: Running, outcome: Outcome<Account>) {
        let applied = matches!(outcome, Outcome::Appended { .. } | Outcome::AlreadyApplied { .. });
        // Unknown: this attempt may have landed, or an earlier one under the same id may.
        let unknown =
            !applied && (running.maybe_landed || matches!(outcome, Outcome::Indeterminate { .. }));
        let (decided_at_version, recorded) = match &outcome {
            Outcome::Appended { version, events, .. } => (
                Some(*version),
                CommandOutcome::Ok {
                    first_version: *version,
                    events: events
                        .iter()
                        .map(|e| serde_json::to_value(e).expect("events serialize"))
                        .collect(),
                },
            ),
            Outcome::AlreadyApplied { first_version, .. } => (
                Some(*first_version),
                CommandOutcome::Ok { first_version: *first_version, events: Vec::new() },
            ),
            Outcome::Indeterminate { reason } => {
                (None, CommandOutcome::Indeterminate { reason: reason.clone() })
            }
            other if unknown => (
                None,
                CommandOutcome::Indeterminate {
                    reason: format!(
                        "an earlier attempt may still land; this one: {}",
                        describe(other)
                    ),
                },
            ),
            Outcome::Refused { version, error, .. } => {
                (Some(*version), CommandOutcome::Rejected { reason: error.to_string() })
            }
            other => (None, CommandOutcome::Fail { reason: describe(other) }),
        };
        self.recorder.borrow_mut().commands.push(CommandRecord {
            process: u64::from(self.node),
            invoke_ns: running.invoke_ns,
            complete_ns: now_ns,
            command_id: running.command_id,
            stream: running.stream.clone(),
            command: serde_json::to_value(&running.command).expect("commands serialize"),
            decided_at_version,
            outcome: recorded,
        });
        let definite_no = !applied && !unknown;
        let refused = matches!(outcome, Outcome::Refused { .. }) && !unknown;
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
            Stage::Single | Stage::Debit | Stage::Credit | Stage::Refund => {}
        }
    }
}

fn describe(outcome: &Outcome<Account>) -> String {
    match outcome {
        Outcome::Appended { .. } | Outcome::AlreadyApplied { .. } => "applied".to_owned(),
        Outcome::Refused { error, .. } => format!("refused: {error}"),
        Outcome::Conflict { current } => format!("conflict: the stream held {current} events"),
        Outcome::Indeterminate { reason } => reason.clone(),
        Outcome::Failed { reason } => reason.clone(),
        Outcome::Corrupt { error } => format!("corrupt stream: {error}"),
    }
}

/// Every up broker's committed events (below its high watermark), decoded, as the
/// event-store history's replica logs. A record that does not decode is kept with the
/// reason, so the checks see it instead of a silent gap.
pub fn final_es_replicas(
    world: &mut crate::World<crate::cluster::ClusterProcess>,
    spec: &crate::cluster::ClusterSpec,
) -> Vec<logjam_model::es::ReplicaStreams> {
    use logjam_eventstore::envelope;
    use logjam_eventstore::schema::decode_event;
    let mut replicas = Vec::new();
    for id in 0..spec.brokers {
        let node = crate::NodeId(id);
        let Some(broker) = world.process(node).and_then(|p| p.broker()) else { continue };
        let partitions: Vec<u32> = broker.partitions().collect();
        for partition in partitions {
            let events = world.with_process(node, |process, ctx| {
                let broker = process.broker()?;
                let log = broker.log(partition)?;
                let high_watermark = broker.high_watermark(partition).unwrap_or(0);
                let batches = log.read(ctx.disk(), log.start_offset(), usize::MAX).ok()?;
                let mut events = Vec::new();
                for batch in batches {
                    for (index, record) in batch.records.into_iter().enumerate() {
                        let offset = batch.base_offset + index as u64;
                        if offset >= high_watermark {
                            continue;
                        }
                        let stream = String::from_utf8_lossy(&record.key).into_owned();
                        let decoded = envelope::decode(&record.value)
                            .map_err(|error| error.to_string())
                            .and_then(|env| {
                                decode_event::<Account>(&stream, offset, &env)
                                    .map(|event| (env, event))
                                    .map_err(|error| error.to_string())
                            });
                        let stored = match decoded {
                            Ok((env, event)) => logjam_model::es::StoredEvent {
                                offset,
                                stream,
                                version: env.stream_version,
                                command_id: env.command_id,
                                event: serde_json::to_value(&event).expect("events serialize"),
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
