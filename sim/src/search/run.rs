//! One run of a scenario: its seed expands into an explicit schedule (faults and client
//! operations with their times), the world runs it through a chaos phase and a quiet
//! phase, and the system's invariants are checked on what it did.

use rand::Rng;
use serde::{Deserialize, Serialize, Serializer};

use crate::nemesis::{self, TimedFault};
use crate::scenario::{Expect, Scenario, System};
use crate::{StreamId, stream};
use std::rc::Rc;

use logjam_model as model;

use crate::cluster::{self, ClusterSpec, Recorder, TxnSpec};
use crate::coverage;
use crate::es_client::{SharedEsRecorder, final_es_replicas};
use crate::toy::GossipCounter;
use crate::user::{DomainSpec, Draw};
use crate::{Fault, Limit, NodeId, Stats, TraceEntry, World};
use std::collections::BTreeMap;

/// After the quiet phase, how long in-flight client requests get to finish (longer than
/// any client's request timeout).
pub const DRAIN_NS: u64 = 1_000_000_000;

/// The most client operations one run may schedule.
pub const OPS_PER_RUN_MAX: u64 = 1_000_000;

/// A client operation: an increment at a counter node, or a send by a producer to a
/// partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedOp {
    /// When it is started: simulated time from the start of the run (ns).
    pub at_ns: u64,
    /// The node that does it: a counter node, or a producer slot.
    pub node: NodeId,
    /// The partition a send writes (with transactions, the first of those it writes);
    /// an event-store operation's account; 0 for the counter.
    pub partition: u32,
}

/// Everything a run does, made explicit: replaying it gives the run of its seed. The
/// seed still drives what is not a decision of the test (network latencies, clocks,
/// each node's own randomness); the faults, the operations and the phase lengths are
/// all here, so a shrinker can drop and move them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// The run's seed: it drives what the schedule does not say.
    pub seed: u64,
    /// The chaos phase: faults and operations happen in `[0, chaos_ns)`, and the
    /// schedule's last fault heals everything at `chaos_ns`.
    pub chaos_ns: u64,
    /// The quiet phase after it: no faults, time to converge.
    pub quiet_ns: u64,
    /// The faults, each before `chaos_ns`, then the closing heal-all at `chaos_ns`
    /// (structure, not a fault: `size` does not count it).
    pub faults: Vec<TimedFault>,
    /// The client operations, in time order, each before `chaos_ns`.
    pub ops: Vec<TimedOp>,
    /// The configuration drawn from the scenario's menus, as (key, value): part of the
    /// run, never changed by a shrinker. Empty for a scenario without menus.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<(String, String)>,
}

impl Schedule {
    /// Its size for a shrinker: faults plus operations (the closing heal not counted).
    pub fn size(&self) -> usize {
        self.faults.iter().filter(|timed| timed.fault != Fault::HealAll).count() + self.ops.len()
    }
}

/// Expands a seed into its schedule. Faults come from the nemesis stream, operations
/// from the workload stream.
pub fn schedule_for(scenario: &Scenario, seed: u64) -> Schedule {
    let scenario = &*scenario.for_seed(seed);
    let nodes = scenario.world.nodes;
    let mut nemesis_rng = stream(seed, StreamId::Nemesis);
    let targets = &scenario.fault_targets;
    let disk_targets = &scenario.disk_targets;
    let mut faults = nemesis::expand(
        &scenario.menu,
        targets,
        disk_targets,
        nodes,
        scenario.chaos_ns,
        &mut nemesis_rng,
    );
    faults.extend(scenario.scripted.iter().cloned());
    faults.sort_by_key(|timed| timed.at_ns);
    faults.push(TimedFault { at_ns: scenario.chaos_ns, fault: Fault::HealAll });

    let mut ops = Vec::new();
    if scenario.ops_per_s > 0 {
        let mut workload_rng = stream(seed, StreamId::Workload);
        let mean_gap_ns = (1_000_000_000 / u64::from(scenario.ops_per_s)).max(1);
        let mut at_ns = 0;
        loop {
            at_ns += workload_rng.random_range(1..=2 * mean_gap_ns);
            if at_ns >= scenario.chaos_ns || ops.len() as u64 == OPS_PER_RUN_MAX {
                break;
            }
            let op = match &scenario.system {
                System::GossipCounter { .. } => TimedOp {
                    at_ns,
                    node: NodeId(workload_rng.random_range(0..nodes)),
                    partition: 0,
                },
                System::LogCluster(spec) => TimedOp {
                    at_ns,
                    node: spec.producer(workload_rng.random_range(0..spec.producers)),
                    // An event-store operation names the account it starts at.
                    partition: workload_rng.random_range(
                        0..spec.es.as_ref().map_or(spec.partitions, |es| es.accounts),
                    ),
                },
            };
            ops.push(op);
        }
    }
    Schedule {
        seed,
        chaos_ns: scenario.chaos_ns,
        quiet_ns: scenario.quiet_ns,
        faults,
        ops,
        config: scenario.drawn.clone(),
    }
}

/// One invariant, checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The invariant's name (`lost-write`).
    pub invariant: &'static str,
    /// What was checked, with counts.
    pub checked: String,
    /// No promised guarantee broken.
    pub holds: bool,
    /// An anomaly the configuration does not promise to prevent was found: expected
    /// under this configuration, not a violation.
    pub expected_anomaly: bool,
    /// What went wrong, in one line.
    pub witness: Option<String>,
    /// The history lines that prove it (the smallest evidence), in history order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub witness_lines: Vec<String>,
    /// When the witness's events happened (simulated ns, first and last): where to
    /// look in the trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness_span_ns: Option<(u64, u64)>,
}

fn hex<S: Serializer>(hash: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("{hash:016x}"))
}

/// What one run did and whether its invariants held.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunResult {
    /// The scenario's name.
    pub scenario: String,
    /// The seed that ran.
    pub seed: u64,
    /// The world's trace hash, a fingerprint of everything that happened (16 hex
    /// digits in JSON): a replay gives the same.
    #[serde(serialize_with = "hex")]
    pub trace_hash: u64,
    /// The invariants checked, one check each.
    pub checks: Vec<Check>,
    /// The limit that ended the run early, if one did.
    pub limit: Option<Limit>,
    /// Client operations started...
    pub ops_started: u64,
    /// ...and skipped because their node was down or still busy with the last one.
    pub ops_skipped: u64,
    /// Faults in the schedule, the closing heal-all included.
    pub faults_scheduled: u64,
    /// The simulated time the run ended at (ns).
    pub simulated_ns: u64,
    /// The world's counts of what happened (events, messages, faults, ...).
    pub stats: Stats,
    /// How often the run reached each coverage item (`coverage::ITEMS`).
    pub reached: coverage::Reached,
    /// Client operations by kind and outcome ("send ok", "poll info", ...).
    pub ops: BTreeMap<String, u64>,
    /// The model's word when the run had more replicas lossy at once than the
    /// scenario's budget (so it promised less), in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_exceeded: Option<String>,
    /// The configuration drawn from the scenario's menus (empty without menus).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<(String, String)>,
}

/// A run judged against what the scenario expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunVerdict {
    /// Every invariant held (and that was expected).
    Held,
    /// The violation the scenario expects happened, and nothing else.
    ExpectedViolation,
    /// Something the scenario does not allow: an invariant broke or a limit was hit.
    Unexpected(String),
}

impl RunResult {
    /// The checks whose invariant broke (an expected anomaly is not one).
    pub fn violations(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|check| !check.holds)
    }

    /// The run judged against `expect`: a limit reached, or a broken invariant other
    /// than the one expected, is unexpected.
    pub fn verdict(&self, expect: &Expect) -> RunVerdict {
        if let Some(limit) = self.limit {
            return RunVerdict::Unexpected(format!("limit reached: {limit}"));
        }
        let allowed = expect.known_anomaly();
        let mut expected_seen =
            self.checks.iter().any(|c| c.expected_anomaly && Some(c.invariant) == allowed);
        for check in self.violations() {
            if Some(check.invariant) == allowed {
                expected_seen = true;
            } else {
                let witness = check.witness.as_deref().unwrap_or("");
                return RunVerdict::Unexpected(format!("{} violated: {witness}", check.invariant));
            }
        }
        if expected_seen { RunVerdict::ExpectedViolation } else { RunVerdict::Held }
    }
}

/// The command that replays one seed of a scenario.
pub fn replay_command(scenario: &Scenario, seed: u64) -> String {
    format!("cargo run --release -p logjam -- replay {} --seed {seed}", scenario.path)
}

/// Runs one seed. `trace_kept_max > 0` keeps that many of the last trace events.
pub fn run_seed(
    scenario: &Scenario,
    seed: u64,
    trace_kept_max: usize,
) -> (RunResult, Vec<TraceEntry>) {
    run_schedule(scenario, &schedule_for(scenario, seed), trace_kept_max)
}

/// Runs an explicit schedule.
pub fn run_schedule(
    scenario: &Scenario,
    schedule: &Schedule,
    trace_kept_max: usize,
) -> (RunResult, Vec<TraceEntry>) {
    let output = run_full(scenario, schedule, trace_kept_max);
    (output.result, output.trace)
}

/// Everything a run leaves: its result, the kept trace, and the recorded history
/// (for systems checked by the model).
pub struct RunOutput {
    /// What the run did and whether its invariants held.
    pub result: RunResult,
    /// The last trace events kept (at most the `trace_kept_max` asked for).
    pub trace: Vec<TraceEntry>,
    /// The cluster's recorded history; `None` for the gossip counter, or when the
    /// recording broke the history's rules (the `history-valid` check says why).
    pub history: Option<model::History>,
}

/// Runs an explicit schedule and keeps everything it recorded.
///
/// A scenario with menus runs the configuration the schedule names (checked with the
/// schedule, see `schedule_file::check_schedule`).
pub fn run_full(scenario: &Scenario, schedule: &Schedule, trace_kept_max: usize) -> RunOutput {
    run_full_inner(scenario, schedule, trace_kept_max, None)
}

/// `run_full` with a domain of the caller's own (`crate::user`): the event-store
/// clients run `domain` when the scenario's `eventstore.domain` names it, a built-in
/// domain when it names one.
pub fn run_full_with(
    scenario: &Scenario,
    schedule: &Schedule,
    trace_kept_max: usize,
    domain: &dyn DomainSpec,
) -> RunOutput {
    run_full_inner(scenario, schedule, trace_kept_max, Some(domain))
}

fn run_full_inner(
    scenario: &Scenario,
    schedule: &Schedule,
    trace_kept_max: usize,
    domain: Option<&dyn DomainSpec>,
) -> RunOutput {
    let drawn;
    let scenario = if scenario.space.is_some() {
        drawn =
            scenario.pinned(&schedule.config).expect("a checked schedule names a configuration");
        &drawn
    } else {
        scenario
    };
    let mut config = scenario.world.clone();
    config.limits.trace_kept_max = trace_kept_max;
    match &scenario.system {
        System::GossipCounter { gossip_every_ns, durable } => {
            let (every_ns, durable) = (*gossip_every_ns, *durable);
            let world =
                World::new(&config, schedule.seed, move |_| GossipCounter::new(every_ns, durable))
                    .expect("a loaded scenario holds a valid world");
            let (result, trace) = run_counter(scenario, schedule, world);
            RunOutput { result, trace, history: None }
        }
        System::LogCluster(spec) => {
            let domain = spec.es.as_ref().map(|es| match domain {
                Some(domain) if domain.name() == es.domain => domain,
                _ => crate::user::builtin(&es.domain).unwrap_or_else(|| {
                    panic!(
                        "domain `{}` is not built in: run it with run_full_with (crate::user)",
                        es.domain
                    )
                }),
            });
            run_cluster(scenario, spec, schedule, &config, domain)
        }
    }
}

fn schedule_faults<P: crate::Process>(world: &mut World<P>, schedule: &Schedule) {
    for timed in &schedule.faults {
        world.schedule(timed.at_ns, timed.fault.clone()).expect("the nemesis draws valid faults");
    }
}

fn result<P: crate::Process>(
    scenario: &Scenario,
    schedule: &Schedule,
    world: &World<P>,
    checks: Vec<Check>,
    (ops_started, ops_skipped): (u64, u64),
) -> (RunResult, Vec<TraceEntry>) {
    let result = RunResult {
        scenario: scenario.name.clone(),
        seed: schedule.seed,
        trace_hash: world.trace_hash(),
        checks,
        limit: world.stopped(),
        ops_started,
        ops_skipped,
        faults_scheduled: schedule.faults.len() as u64,
        simulated_ns: world.now_ns(),
        stats: world.stats().clone(),
        reached: coverage::from_stats(world.stats()),
        ops: BTreeMap::new(),
        budget_exceeded: None,
        config: schedule.config.clone(),
    };
    (result, world.trace().kept().cloned().collect())
}

fn run_counter(
    scenario: &Scenario,
    schedule: &Schedule,
    mut world: World<GossipCounter>,
) -> (RunResult, Vec<TraceEntry>) {
    schedule_faults(&mut world, schedule);
    let nodes = world.nodes() as usize;
    let mut acked = vec![0u64; nodes];
    let (mut ops_started, mut ops_skipped) = (0, 0);
    for op in &schedule.ops {
        if world.run_until(op.at_ns).is_some() {
            break;
        }
        match world.with_process(op.node, |counter, ctx| counter.increment(ctx)) {
            Some(_) => {
                acked[op.node.index()] += 1;
                ops_started += 1;
            }
            None => ops_skipped += 1,
        }
    }
    world.run_until(schedule.chaos_ns + schedule.quiet_ns);
    let views: Vec<Option<Vec<u64>>> =
        (0..nodes as u32).map(|n| world.process(NodeId(n)).map(|p| p.view().to_vec())).collect();
    let (mut run, trace) = result(
        scenario,
        schedule,
        &world,
        check_counter(&acked, &views),
        (ops_started, ops_skipped),
    );
    run.ops = BTreeMap::from([("increment ok".to_owned(), ops_started)]);
    (run, trace)
}

fn run_cluster(
    scenario: &Scenario,
    spec: &ClusterSpec,
    schedule: &Schedule,
    config: &crate::WorldConfig,
    domain: Option<&dyn DomainSpec>,
) -> RunOutput {
    let mut header = model::Header::new(
        "logjam-broker",
        spec.model_config(scenario.crashes_max, scenario.disk_faults_max),
    );
    // The quiet phase and the drain give processors (and transactional projections)
    // the time to finish their input.
    header.processors_settled = true;
    header.processors = spec.processor_groups();
    let recorder = Recorder::new(header);
    let es_recorder: SharedEsRecorder = Rc::default();
    let projection = domain.and_then(|domain| domain.projection());
    let factory = cluster::factory(spec.clone(), recorder.clone(), es_recorder.clone(), projection);
    let mut world =
        World::new(config, schedule.seed, factory).expect("a loaded scenario holds a valid world");
    schedule_faults(&mut world, schedule);
    let (mut invoked, mut skipped) = (0, 0);
    for (index, op) in schedule.ops.iter().enumerate() {
        if world.run_until(op.at_ns).is_some() {
            break;
        }
        let started = match (&spec.es, domain) {
            (Some(es), Some(domain)) => {
                let hash = op_hash(schedule.seed, op);
                let draw = Draw {
                    aggregate: op.partition,
                    aggregates: es.accounts,
                    deposits_only: es.deposits_only,
                    hash,
                };
                let work = domain.work(&draw);
                world.with_process(op.node, |process, ctx| process.es_submit(ctx, work))
            }
            _ => {
                let value = crate::numbered("v", index as u64);
                match &spec.txn {
                    Some(txn) if !spec.is_plain_producer(op.node) => {
                        let partitions = txn_partitions(spec.partitions, txn, op, schedule.seed);
                        world.with_process(op.node, |process, ctx| {
                            process.transact(ctx, &partitions, value)
                        })
                    }
                    _ => world.with_process(op.node, |process, ctx| {
                        process.send(ctx, op.partition, value)
                    }),
                }
            }
        };
        match started {
            Some(true) => invoked += 1,
            _ => skipped += 1, // the client is down, or still busy with its last operation
        }
    }
    if spec.es.is_some() {
        // The quiet phase gives work under way the time to finish; none starts anew.
        world.run_until(schedule.chaos_ns);
        for index in 0..spec.producers {
            world.with_process(spec.producer(index), |process, _| process.es_drop_waiting_work());
        }
    }
    world.run_until(schedule.chaos_ns + schedule.quiet_ns);
    // Drain: consumers start no new polls, and what is in flight gets to finish.
    let processors = spec.txn.as_ref().map_or(0, |txn| txn.processors);
    let readers = (0..spec.consumers)
        .map(|index| spec.consumer(index))
        .chain((0..processors).map(|index| spec.processor(index)));
    for node in readers {
        world.with_process(node, |process, _| process.stop_polling());
    }
    world.run_until(schedule.chaos_ns + schedule.quiet_ns + DRAIN_NS);
    let replicas = cluster::final_replicas(&mut world, spec);
    let es_replicas = domain.map(|domain| final_es_replicas(&mut world, spec, domain));
    let (run, trace) = result(scenario, schedule, &world, Vec::new(), (invoked, skipped));
    drop(world);
    let recorder = Rc::try_unwrap(recorder).ok().expect("the world is gone").into_inner();
    let mut run = run;
    coverage::add_counted(&mut run.reached, &recorder.counted);
    // The promises the log was judged by: the configuration's, or fewer when the run
    // had more replicas lossy at once than the budget (the event store's checks follow).
    let mut log_promises =
        spec.model_config(scenario.crashes_max, scenario.disk_faults_max).promises();
    let (checks, history) = match recorder.finish(replicas) {
        Ok(history) => {
            coverage::add_protocol(&mut run.reached, &history);
            run.ops = coverage::ops_by_outcome(&history);
            let verdict = model::check(&history);
            run.budget_exceeded = verdict.budget_exceeded.clone();
            log_promises = verdict.promises.clone();
            run.reached
                .insert("budget-exceeded".to_owned(), u64::from(run.budget_exceeded.is_some()));
            (checks_of(&verdict), Some(history))
        }
        Err(problem) => {
            let check = Check {
                invariant: "history-valid",
                checked: "the recorded history".to_owned(),
                holds: false,
                expected_anomaly: false,
                witness: Some(problem),
                witness_lines: Vec::new(),
                witness_span_ns: None,
            };
            (vec![check], None)
        }
    };
    let mut checks = checks;
    if let (Some(es), Some(replicas)) = (&spec.es, es_replicas) {
        // Event-store clients record commands, not sends and polls: of the log's own
        // checks only those about replicas and the protocol apply.
        // With transactions, projections record their transactions as a processor does:
        // the checks of transactional writes and exactly-once processing apply to them.
        let txn = spec.txn.is_some();
        checks.retain(|check| {
            REPLICA_INVARIANTS.contains(&check.invariant)
                || (txn && ES_TXN_INVARIANTS.contains(&check.invariant))
        });
        let recording = Rc::try_unwrap(es_recorder).expect("the world is gone").into_inner();
        let restarts: u64 = recording.projection_opens.values().map(|opens| opens - 1).sum();
        run.reached.insert("projection-restart".to_owned(), restarts);
        run.reached.insert("snapshot-load".to_owned(), recording.snapshot_loads);
        run.reached
            .insert("snapshot-other-history".to_owned(), recording.snapshots_of_another_history);
        let promises = log_promises;
        let es_history = model::es::EsHistory {
            domain: es.domain.clone(),
            expected_versions: es.expected_versions,
            commands: recording.commands,
            replicas,
            projections: recording.projections,
            lossy_log: !promises.contains(&model::Guarantee::CommittedStable),
            atomic_transfers: spec.txn.is_some(),
            // The quiet phase and the drain give every projection time to catch up.
            projections_settled: true,
        };
        let fold = domain.and_then(|domain| domain.fold());
        checks.extend(es_checks_of(&model::es::check_with(&es_history, fold.as_deref())));
    }
    RunOutput { result: RunResult { checks, ..run }, trace, history }
}

/// The log checks that judge event-store projections' transactions (their sends and the
/// input ranges they commit), kept in an event store with transactions. (Not
/// `duplicate`: it reads every value in the logs, and the event store's records are not
/// sends of the history; a client may save the same snapshot twice.)
const ES_TXN_INVARIANTS: &[&str] =
    &["lost-write", "zombie-write", "exactly-once", "hanging-transaction"];

/// The log checks that judge replicas and protocol events, not client operations.
const REPLICA_INVARIANTS: &[&str] = &[
    "replica-log-order",
    "divergence",
    "multiple-leaders",
    "epoch-regression",
    "hw-regression",
    "truncation-below-hw",
    "not-converged",
    "history-valid",
];

/// The partitions a transaction writes: the operation's own, then others picked by the
/// operation's hash, all distinct.
fn txn_partitions(partitions: u32, txn: &TxnSpec, op: &TimedOp, seed: u64) -> Vec<u32> {
    let mut hash = op_hash(seed, op);
    let mut chosen = vec![op.partition];
    while (chosen.len() as u32) < txn.partitions_per_txn {
        // From a drawn partition, the first one not yet taken.
        let start = (hash % u64::from(partitions)) as u32;
        hash = hash.rotate_left(17);
        let free = (0..partitions).map(|d| (start + d) % partitions).find(|p| !chosen.contains(p));
        chosen.push(free.expect("partitions_per_txn is at most the partitions"));
    }
    chosen
}

/// An operation's own hash: what command it stands for, independent of its neighbours.
fn op_hash(seed: u64, op: &TimedOp) -> u64 {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&op.at_ns.to_le_bytes());
    bytes[8..12].copy_from_slice(&op.node.0.to_le_bytes());
    bytes[12..16].copy_from_slice(&op.partition.to_le_bytes());
    bytes[16..].copy_from_slice(&seed.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// The event-store verdict as the run's checks.
fn es_checks_of(verdict: &model::es::EsVerdict) -> Vec<Check> {
    verdict
        .checks
        .iter()
        .map(|check| {
            let anomaly =
                verdict.anomalies.iter().find(|anomaly| anomaly.invariant == check.invariant);
            let found = anomaly.map(|a| (a.explanation.clone(), lines(&a.witness)));
            let counts = (check.examined, check.unit, check.violations, check.expected);
            let mut row = check_row(check.invariant.name(), counts, found, None);
            if let Some(why) = check.not_checked {
                row.checked = format!("not checked: {why}");
            }
            row
        })
        .collect()
}

/// The model's verdict as the run's checks: one per invariant of the catalogue.
fn checks_of(verdict: &model::Verdict) -> Vec<Check> {
    verdict
        .checks
        .iter()
        .map(|check| {
            let anomaly =
                verdict.anomalies.iter().find(|anomaly| anomaly.invariant == check.invariant);
            let times = anomaly.into_iter().flat_map(|a| &a.witness).filter_map(witness_time_ns);
            let witness_span_ns = times.fold(None, |span: Option<(u64, u64)>, t| {
                Some(span.map_or((t, t), |(first, last)| (first.min(t), last.max(t))))
            });
            let found = anomaly.map(|a| (a.explanation.clone(), lines(&a.witness)));
            let counts = (check.examined, check.unit, check.violations, check.expected);
            check_row(check.invariant.name(), counts, found, witness_span_ns)
        })
        .collect()
}

fn lines<W: std::fmt::Display>(witness: &[W]) -> Vec<String> {
    witness.iter().map(|w| w.to_string()).collect()
}

/// One check of a verdict: (examined, unit, violations, expected) and the first
/// anomaly's explanation and witness lines.
fn check_row(
    invariant: &'static str,
    (examined, unit, violations, expected): (u64, &str, u64, u64),
    found: Option<(String, Vec<String>)>,
    witness_span_ns: Option<(u64, u64)>,
) -> Check {
    let (witness, witness_lines) = match found {
        Some((explanation, lines)) => (Some(explanation), lines),
        None => (None, Vec::new()),
    };
    Check {
        invariant,
        checked: format!("{examined} {unit}"),
        holds: violations == 0,
        expected_anomaly: violations == 0 && expected > 0,
        witness,
        witness_lines,
        witness_span_ns,
    }
}

fn witness_time_ns(witness: &model::Witness) -> Option<u64> {
    match witness {
        model::Witness::Event { event, .. } => Some(event.t_ns),
        model::Witness::Protocol { protocol, .. } => Some(protocol.t_ns),
        model::Witness::Replica { .. } => None,
    }
}

/// The gossip counter's invariants, from the increments acknowledged at each node and
/// every node's final view (`None`: the node is down at the end).
fn check_counter(acked: &[u64], views: &[Option<Vec<u64>>]) -> Vec<Check> {
    let nodes = acked.len();
    let up: Vec<(usize, &Vec<u64>)> =
        views.iter().enumerate().filter_map(|(n, view)| view.as_ref().map(|v| (n, v))).collect();
    let total: u64 = acked.iter().sum();

    // acked-durable: a node's own count never falls below what it acknowledged.
    let lost = up.iter().find(|(n, view)| view[*n] < acked[*n]).map(|(n, view)| {
        format!(
            "n{n} acknowledged {} increments but its view after the run holds {}",
            acked[*n], view[*n]
        )
    });
    // no-phantom: nobody believes in more increments at a node than that node made.
    let phantom = up.iter().find_map(|(n, view)| {
        (0..nodes).find(|&m| view[m] > acked[m]).map(|m| {
            format!(
                "n{n} believes n{m} made {} increments; n{m} acknowledged {}",
                view[m], acked[m]
            )
        })
    });
    // converged: after the quiet phase every node is up and all views are equal.
    let diverged = match views.iter().position(Option::is_none) {
        Some(n) => Some(format!("n{n} is still down after the quiet phase")),
        None => up.windows(2).find(|pair| pair[0].1 != pair[1].1).map(|pair| {
            format!("n{} sees {:?} but n{} sees {:?}", pair[0].0, pair[0].1, pair[1].0, pair[1].1)
        }),
    };
    let check = |invariant, checked: String, witness: Option<String>| Check {
        invariant,
        checked,
        holds: witness.is_none(),
        expected_anomaly: false,
        witness,
        witness_lines: Vec::new(),
        witness_span_ns: None,
    };
    vec![
        check(
            "acked-durable",
            format!("{total} acknowledged increments on {} nodes", up.len()),
            lost,
        ),
        check("no-phantom", format!("{} views of {nodes} counts", up.len()), phantom),
        check("converged", format!("{nodes} nodes after the quiet phase"), diverged),
    ]
}

/// A seed whose run broke the scenario's expectation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unexpected {
    /// The seed.
    pub seed: u64,
    /// Why, in one line: the invariant broken and its witness, the limit reached, or
    /// the panic message.
    pub why: String,
    /// What `replay` of the seed must print again (none if the run panicked).
    #[serde(with = "hex_option")]
    pub trace_hash: Option<u64>,
}

/// `Option<u64>` as a 16-digit hex string (or null), both ways.
mod hex_option {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
        match hash {
            Some(hash) => serializer.serialize_str(&format!("{hash:016x}")),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u64>, D::Error> {
        let text: Option<String> = Option::deserialize(deserializer)?;
        text.map(|text| u64::from_str_radix(&text, 16).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Unexpected seeds a sweep keeps, the lowest first: a sweep's memory must not grow
/// with its seed count, even when every seed fails. The rest are counted.
pub const UNEXPECTED_KEPT_MAX: usize = 1_000;

/// A sweep's outcome against the scenario's expectation. Built a seed at a time, in any
/// order (`add`), and from disjoint parts (`merge`, for shards); `finish` judges it.
/// Whatever the order, the finished result is the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepResult {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario's file, as given.
    pub path: String,
    /// The sweep's first seed: `expect.within_seeds` counts from it.
    pub start: u64,
    /// Seeds run.
    pub seeds: u64,
    /// Runs in which every invariant held.
    pub held: u64,
    /// Of those, runs that showed an anomaly the configuration allows (a held run of
    /// a weak setup is not a clean one).
    #[serde(default)]
    pub held_with_anomalies: u64,
    /// Runs that started at least one client operation: a sweep where none did tested
    /// nothing, and is under-covered.
    #[serde(default)]
    pub runs_with_ops: u64,
    /// Runs that showed the violation the scenario expects, and nothing else.
    pub expected_violations: u64,
    /// Seeds whose runs broke the expectation, with why, in seed order (the lowest
    /// `UNEXPECTED_KEPT_MAX` of them)...
    pub unexpected: Vec<Unexpected>,
    /// ...and how many there were in all.
    pub unexpected_total: u64,
    /// For a scenario that expects a violation: the first seed that showed it.
    pub first_expected_seed: Option<u64>,
    /// A scenario that expects a violation, which was not seen within its seeds.
    pub expected_violation_missing: Option<String>,
    /// Runs that reached each coverage item at least once (panicked runs not counted).
    pub coverage: BTreeMap<String, u64>,
    /// The scenario's coverage minimums this sweep fell short of.
    pub under_covered: Vec<String>,
    /// Seeds that showed the expected violation, lowest first (at most
    /// `EXPECTED_SEEDS_KEPT_MAX`): how many seeds a search needs to find it.
    pub expected_seeds: Vec<u64>,
    /// For a scenario with configuration menus: each menu value (`cluster.acks=1`) with
    /// the runs that drew it. Every value is listed; one no seed drew has no runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_config: BTreeMap<String, ValueTally>,
}

/// The runs of a sweep that drew one configuration menu value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueTally {
    /// Runs that drew the value.
    pub runs: u64,
    /// Of those, runs in which every invariant held...
    pub held: u64,
    /// ...and runs that showed the expected violation.
    pub expected_violations: u64,
    /// Runs that broke the expectation (panics not counted: their configuration is
    /// the seed's, replay it to see).
    pub unexpected: u64,
    /// The lowest seed that drew the value and broke the expectation.
    pub first_unexpected_seed: Option<u64>,
    /// The lowest seed that drew the value and showed the expected violation.
    pub first_expected_seed: Option<u64>,
    /// Runs that reached each coverage item (items no run reached left out).
    pub coverage: BTreeMap<String, u64>,
}

impl ValueTally {
    fn merge(&mut self, part: ValueTally) {
        self.runs += part.runs;
        self.held += part.held;
        self.expected_violations += part.expected_violations;
        self.unexpected += part.unexpected;
        self.first_unexpected_seed =
            min_seed(self.first_unexpected_seed, part.first_unexpected_seed);
        self.first_expected_seed = min_seed(self.first_expected_seed, part.first_expected_seed);
        for (item, runs) in part.coverage {
            *self.coverage.entry(item).or_insert(0) += runs;
        }
    }
}

fn min_seed(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The tally key of a menu value: `cluster.acks=1`.
pub fn value_key(key: &str, value: &str) -> String {
    format!("{key}={value}")
}

/// Expected-violation seeds a sweep keeps for its seeds-to-failure histogram.
pub const EXPECTED_SEEDS_KEPT_MAX: usize = 10_000;

impl SweepResult {
    /// An empty sweep of `scenario` whose seeds count from `start`.
    pub fn new(scenario: &Scenario, start: u64) -> SweepResult {
        SweepResult {
            scenario: scenario.name.clone(),
            path: scenario.path.clone(),
            start,
            seeds: 0,
            held: 0,
            held_with_anomalies: 0,
            runs_with_ops: 0,
            expected_violations: 0,
            unexpected: Vec::new(),
            unexpected_total: 0,
            first_expected_seed: None,
            expected_violation_missing: None,
            coverage: coverage::ITEMS.iter().map(|(name, _)| ((*name).to_owned(), 0)).collect(),
            under_covered: Vec::new(),
            expected_seeds: Vec::new(),
            by_config: scenario
                .menu_values()
                .iter()
                .map(|(key, value)| (value_key(key, value), ValueTally::default()))
                .collect(),
        }
    }

    /// Counts one run.
    pub fn add(&mut self, scenario: &Scenario, run: &RunResult) {
        self.seeds += 1;
        if run.ops_started > 0 {
            self.runs_with_ops += 1;
        }
        for (item, count) in &run.reached {
            if *count > 0 {
                *self.coverage.entry(item.clone()).or_insert(0) += 1;
            }
        }
        let verdict = run.verdict(&scenario.expect);
        for (key, value) in &run.config {
            let tally = self.by_config.entry(value_key(key, value)).or_default();
            tally.runs += 1;
            match &verdict {
                RunVerdict::Held => tally.held += 1,
                RunVerdict::ExpectedViolation => {
                    tally.expected_violations += 1;
                    tally.first_expected_seed = min_seed(tally.first_expected_seed, Some(run.seed));
                }
                RunVerdict::Unexpected(_) => {
                    tally.unexpected += 1;
                    tally.first_unexpected_seed =
                        min_seed(tally.first_unexpected_seed, Some(run.seed));
                }
            }
            for (item, count) in &run.reached {
                if *count > 0 {
                    *tally.coverage.entry(item.clone()).or_insert(0) += 1;
                }
            }
        }
        match verdict {
            RunVerdict::Held => {
                self.held += 1;
                if run.checks.iter().any(|check| check.holds && check.expected_anomaly) {
                    self.held_with_anomalies += 1;
                }
            }
            RunVerdict::ExpectedViolation => {
                self.expected_violations += 1;
                self.first_expected_seed =
                    Some(self.first_expected_seed.map_or(run.seed, |first| first.min(run.seed)));
                self.push_expected_seed(run.seed);
            }
            RunVerdict::Unexpected(why) => {
                self.push_unexpected(Unexpected {
                    seed: run.seed,
                    why,
                    trace_hash: Some(run.trace_hash),
                });
            }
        }
    }

    /// Counts one seed whose run panicked: an assertion fired, a found bug.
    pub fn add_panic(&mut self, seed: u64, message: &str) {
        self.seeds += 1;
        let why = format!("panicked: {message}");
        self.push_unexpected(Unexpected { seed, why, trace_hash: None });
    }

    fn push_unexpected(&mut self, failure: Unexpected) {
        self.unexpected_total += 1;
        self.unexpected.push(failure);
        if self.unexpected.len() >= 2 * UNEXPECTED_KEPT_MAX {
            self.keep_lowest_unexpected();
        }
    }

    fn push_expected_seed(&mut self, seed: u64) {
        self.expected_seeds.push(seed);
        if self.expected_seeds.len() >= 2 * EXPECTED_SEEDS_KEPT_MAX {
            self.expected_seeds.sort_unstable();
            self.expected_seeds.truncate(EXPECTED_SEEDS_KEPT_MAX);
        }
    }

    fn keep_lowest_unexpected(&mut self) {
        self.unexpected.sort_by_key(|failure| failure.seed);
        self.unexpected.truncate(UNEXPECTED_KEPT_MAX);
    }

    /// Adds a disjoint part of the same sweep (another shard's seeds).
    pub fn merge(&mut self, part: SweepResult) {
        debug_assert_eq!((&self.path, self.start), (&part.path, part.start));
        self.seeds += part.seeds;
        self.held += part.held;
        self.held_with_anomalies += part.held_with_anomalies;
        self.runs_with_ops += part.runs_with_ops;
        self.expected_violations += part.expected_violations;
        self.first_expected_seed = match (self.first_expected_seed, part.first_expected_seed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let total = self.unexpected_total + part.unexpected_total;
        for failure in part.unexpected {
            self.push_unexpected(failure);
        }
        self.unexpected_total = total;
        for (item, runs) in part.coverage {
            *self.coverage.entry(item).or_insert(0) += runs;
        }
        for seed in part.expected_seeds {
            self.push_expected_seed(seed);
        }
        for (value, tally) in part.by_config {
            self.by_config.entry(value).or_default().merge(tally);
        }
    }

    /// Judges the counted seeds: failures in seed order, and for a scenario that
    /// expects a violation, whether it showed within its budget.
    pub fn finish(&mut self, scenario: &Scenario) {
        self.keep_lowest_unexpected();
        self.expected_seeds.sort_unstable();
        self.expected_seeds.truncate(EXPECTED_SEEDS_KEPT_MAX);
        // Beyond the scenario's own minimums: every fault kind it configures must strike
        // in some run, and some run must start a client operation, or the sweep tested
        // less than it says.
        let mut requirements = scenario.coverage.clone();
        for item in coverage::implied_by(&scenario.menu) {
            if !requirements.iter().any(|requirement| requirement.item == item) {
                requirements
                    .push(coverage::Requirement { item: item.to_owned(), min_per_mille: 0 });
            }
        }
        self.under_covered = coverage::shortfalls(&requirements, &self.coverage, self.seeds);
        if self.seeds > 0 && self.runs_with_ops == 0 {
            self.under_covered.push(format!(
                "under-covered: none of the {} runs started a client operation (workload.ops_per_s = {})",
                self.seeds, scenario.ops_per_s
            ));
        }
        self.expected_violation_missing = None;
        if let Expect::Violation { invariant, within_seeds } = &scenario.expect {
            let start = self.start;
            let seen_in_time =
                self.first_expected_seed.is_some_and(|seed| seed - start < *within_seeds);
            if !seen_in_time && self.seeds >= *within_seeds {
                self.expected_violation_missing = Some(format!(
                    "expected `{invariant}` to be violated within {within_seeds} seeds from {start}; it was not"
                ));
            }
        }
    }

    /// Judges runs (in any order) of consecutive seeds from `start`.
    pub fn judge(scenario: &Scenario, start: u64, runs: &[RunResult]) -> SweepResult {
        let mut result = SweepResult::new(scenario, start);
        for run in runs {
            result.add(scenario, run);
        }
        result.finish(scenario);
        result
    }

    /// True when the sweep showed what the scenario expects.
    pub fn passed(&self) -> bool {
        self.unexpected_total == 0
            && self.expected_violation_missing.is_none()
            && self.under_covered.is_empty()
    }

    /// Seeds a search from a random start needs to find the expected violation: the
    /// gaps between consecutive failing seeds (from the start to the first, then
    /// between each), as a histogram of power-of-two buckets `(low, high, count)`.
    pub fn seeds_to_failure(&self) -> Vec<(u64, u64, u64)> {
        let mut buckets: BTreeMap<u32, u64> = BTreeMap::new();
        let mut previous = self.start;
        for &seed in &self.expected_seeds {
            let gap = seed - previous + 1;
            *buckets.entry(gap.ilog2()).or_insert(0) += 1;
            previous = seed + 1;
        }
        buckets.into_iter().map(|(log, count)| (1 << log, (2 << log) - 1, count)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_checks_name_the_broken_invariant_with_a_witness() {
        let good = Some(vec![2, 1]);
        type Case = (Vec<u64>, Vec<Option<Vec<u64>>>, Option<(&'static str, &'static str)>);
        let cases: Vec<Case> = vec![
            (vec![2, 1], vec![good.clone(), good.clone()], None),
            (
                vec![3, 1],
                vec![Some(vec![2, 1]), Some(vec![2, 1])],
                Some((
                    "acked-durable",
                    "n0 acknowledged 3 increments but its view after the run holds 2",
                )),
            ),
            (
                vec![2, 1],
                vec![Some(vec![2, 5]), Some(vec![2, 5])],
                Some(("no-phantom", "n0 believes n1 made 5 increments; n1 acknowledged 1")),
            ),
            (
                vec![2, 1],
                vec![good.clone(), Some(vec![1, 1])],
                Some(("converged", "n0 sees [2, 1] but n1 sees [1, 1]")),
            ),
            (
                vec![2, 1],
                vec![good.clone(), None],
                Some(("converged", "n1 is still down after the quiet phase")),
            ),
        ];
        for (acked, views, expected) in cases {
            let broken: Vec<(&str, String)> = check_counter(&acked, &views)
                .into_iter()
                .filter(|check| !check.holds)
                .map(|check| (check.invariant, check.witness.unwrap()))
                .collect();
            let expected: Vec<(&str, String)> =
                expected.into_iter().map(|(name, witness)| (name, witness.to_owned())).collect();
            assert_eq!(broken, expected, "acked {acked:?}, views {views:?}");
        }
    }
}
