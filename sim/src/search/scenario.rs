//! Scenario files: the cluster, its configuration, the workload, the fault menu, the
//! phases and what is expected, in TOML. Every field is checked when the file is loaded,
//! and an error names the file, the line and column, the key and the problem.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use rand::Rng;
use serde::Deserialize;
use toml::Spanned;

use crate::Limits;
use crate::cluster::{ClusterSpec, EsSpec, REPLICA_FETCH_WAIT_NS_LIMIT, TxnSpec};
use crate::config_menu::{COMBINATIONS_WALKED_MAX, DRAW_ATTEMPTS_MAX, Menus};
use crate::coverage;
use crate::nemesis::{DiskFaultKind, FaultMenu, PartitionKind, RangeNs, TimedFault};
use crate::time::{NS_PER_MS, NS_PER_S, NS_PER_US, format_duration_short, parse_duration_ns};
use crate::{CheckpointFile, DiskFault, HeaderField};
use crate::{ClockConfig, DRIFT_MAX_PPM_LIMIT};
use crate::{Fault, Partition};
use crate::{Latency, NetworkConfig};
use crate::{LatencyShape, NodeId};
use crate::{NODES_MAX, WorldConfig};
use crate::{StreamId, stream};
use logjam_broker::broker::TruncationRule;
use logjam_broker::controller::ElectionRule;
use logjam_broker::log::FlushPolicy;
use logjam_broker::protocol::Acks;
use logjam_broker::txn::TxnProtocol;
use std::collections::BTreeMap;

/// A loaded, checked scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Its name (`name`): what runs, sweeps and reports call it.
    pub name: String,
    /// What it is about, for people (`about`; may be empty).
    pub about: String,
    /// The file it came from, as given (used in replay commands).
    pub path: String,
    /// The system it runs, with that system's configuration.
    pub system: System,
    /// The world it runs in: nodes, network, clocks, disks and limits.
    pub world: WorldConfig,
    /// Client operations per simulated second during the chaos phase.
    pub ops_per_s: u32,
    /// The fault menu each seed's faults are drawn from (`[faults]`).
    pub menu: FaultMenu,
    /// Faults at fixed times (`[[faults.at]]`), in every seed's schedule.
    pub scripted: Vec<TimedFault>,
    /// How long the chaos phase lasts (`phases.chaos`, ns): faults and client
    /// operations happen in it.
    pub chaos_ns: u64,
    /// How long the quiet phase after it lasts (`phases.quiet`, ns): no faults, time
    /// to converge.
    pub quiet_ns: u64,
    /// What a sweep of it must show (`[expect]`).
    pub expect: Expect,
    /// The nodes faults strike: the servers, never the clients.
    pub fault_targets: Vec<NodeId>,
    /// The nodes disk faults strike: the brokers. The controller's metadata stands for
    /// a replicated quorum (KRaft) and is not corrupted by a single disk.
    pub disk_targets: Vec<NodeId>,
    /// The fault budget the checker is told: the most servers down at once...
    pub crashes_max: u32,
    /// ...and the most whose disks may lose or corrupt synced data.
    pub disk_faults_max: u32,
    /// Coverage a sweep must reach (`[coverage]`), else it fails as under-covered.
    pub coverage: Vec<coverage::Requirement>,
    /// The file's configuration menus and its text, when it has menus: each seed draws
    /// a configuration of its own (`Scenario::for_seed`).
    pub space: Option<Arc<ConfigSpace>>,
    /// The menu values this scenario was drawn with, as (key, value): empty without
    /// menus.
    pub drawn: Vec<(String, String)>,
}

/// A scenario file with configuration menus: its text and the menus in it.
#[derive(Debug, PartialEq)]
pub struct ConfigSpace {
    /// The file's text as written, menus included.
    pub text: String,
    /// The file it came from, as given.
    pub path: String,
    /// The menus found in the text.
    pub menus: Menus,
    /// The name of the caller's own event-store domain the text was checked with
    /// (`Scenario::parse_for_domain`), if any.
    pub user_domain: Option<String>,
}

/// The system a scenario runs: the replicated log, or the small gossip counter.
#[derive(Clone, Debug, PartialEq)]
pub enum System {
    /// The gossip counter (`toy::GossipCounter`): a grow-only counter replicated by
    /// gossip, whose invariants this crate checks (`COUNTER_INVARIANTS`).
    GossipCounter {
        /// The mean gossip period (ns); each period is drawn between half and one and
        /// a half of it.
        gossip_every_ns: u64,
        /// A node syncs its view to disk before it acknowledges an increment (false:
        /// the broken setup, whose crashes lose acknowledged increments).
        durable: bool,
    },
    /// The replicated log: brokers, a controller, producers and consumers.
    LogCluster(ClusterSpec),
}

/// What a sweep of the scenario must show.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// Every invariant holds in every run.
    AllHold,
    /// A configuration known to break `invariant`: it must be seen within the first
    /// `within_seeds` seeds of a sweep, and no other invariant may break.
    Violation {
        /// The invariant's name (`expect.violation`).
        invariant: String,
        /// How many seeds from a sweep's start it must show within
        /// (`expect.within_seeds`, default 100).
        within_seeds: u64,
    },
}

impl Expect {
    /// The invariant the scenario exists to see broken, if it names one.
    pub fn known_anomaly(&self) -> Option<&str> {
        match self {
            Expect::AllHold => None,
            Expect::Violation { invariant, .. } => Some(invariant),
        }
    }
}

/// Why a scenario file was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// The scenario file, as given.
    pub path: String,
    /// 1-based line and column, when the problem has a place in the file.
    pub place: Option<(usize, usize)>,
    /// The problem, in one line.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.place {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// A duration written as text (`"1.5s"`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Dur(u64);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration_ns(&text).map(Dur).map_err(serde::de::Error::custom)
    }
}

/// Consume-transform-produce processors a scenario may run.
const PROCESSORS_MAX: u32 = 8;

type DurRange = Spanned<[Dur; 2]>;
type ProbabilityRange = Spanned<[f64; 2]>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    #[serde(default)]
    about: String,
    system: SystemName,
    cluster: ClusterFile,
    #[serde(default)]
    workload: WorkloadFile,
    #[serde(default)]
    network: NetworkFile,
    #[serde(default)]
    clocks: ClocksFile,
    #[serde(default)]
    faults: FaultsFile,
    phases: PhasesFile,
    #[serde(default)]
    limits: LimitsFile,
    expect: Spanned<ExpectFile>,
    /// Coverage minimums: item name to the share of a sweep's runs that must reach it.
    #[serde(default)]
    coverage: BTreeMap<Spanned<String>, Spanned<String>>,
    /// The event-store workload (system = "event-store").
    eventstore: Option<Spanned<EventStoreFile>>,
    /// Transactions. A log cluster's producers write every operation as one
    /// transaction across partitions; an event store (bank) makes each transfer one
    /// transaction over its two accounts' streams instead of a saga.
    transactions: Option<Spanned<TransactionsFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransactionsFile {
    /// "kip-890" (default) or "pre-kip-890" (the legacy protocol).
    #[serde(default)]
    protocol: TxnProtocolFile,
    /// The coordinator aborts a transaction open this long (default 1s).
    timeout: Option<Spanned<Dur>>,
    /// Partitions each transaction writes to (default 2, at most the partitions).
    partitions_per_txn: Option<Spanned<u32>>,
    /// How many of the consumers read uncommitted (default 0).
    #[serde(default)]
    read_uncommitted: Option<Spanned<u32>>,
    /// Consume-transform-produce processors (default 0), each with its own output
    /// partition.
    #[serde(default)]
    processors: Option<Spanned<u32>>,
    /// How many of the producer slots run plain (non-transactional) producers, writing
    /// the same partitions as the transactions (default 0, fewer than the producers).
    #[serde(default)]
    plain_producers: Option<Spanned<u32>>,
    /// Where processors commit their position: "in-transaction" (default: exactly
    /// once) or "after-transaction" (the weak setup).
    #[serde(default)]
    offsets: OffsetsFile,
}

#[derive(Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum OffsetsFile {
    #[default]
    InTransaction,
    AfterTransaction,
}

#[derive(Clone, Copy, Default, Deserialize)]
enum TxnProtocolFile {
    #[default]
    #[serde(rename = "kip-890")]
    Kip890,
    #[serde(rename = "pre-kip-890")]
    PreKip890,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventStoreFile {
    /// Required, but for a scenario checked for a domain of the caller's own.
    domain: Option<Spanned<String>>,
    /// Aggregates the commands pick from (bank accounts, carts).
    aggregates: Option<Spanned<u32>>,
    #[serde(default = "yes")]
    expected_versions: bool,
    /// Only deposits (no withdrawals or transfers): contention without overdrafts.
    #[serde(default)]
    deposits_only: bool,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum SystemName {
    GossipCounter,
    LogCluster,
    EventStore,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    /// gossip-counter only.
    nodes: Option<Spanned<u32>>,
    /// log-cluster only, from here on.
    brokers: Option<Spanned<u32>>,
    partitions: Option<Spanned<u32>>,
    replication_factor: Option<Spanned<u32>>,
    min_insync_replicas: Option<Spanned<u32>>,
    acks: Option<AcksFile>,
    unclean_leader_election: Option<bool>,
    flush: Option<Spanned<FlushFile>>,
    truncation: Option<TruncationFile>,
    election: Option<ElectionFile>,
    /// Long-poll follower fetches: how long a leader may hold one (0, the default,
    /// answers at once).
    replica_fetch_wait: Option<Spanned<Dur>>,
    /// A broker's restart validates every batch of its logs (default), or trusts the
    /// segments below its recovery point (Kafka's way: faster on big logs).
    verify_on_open: Option<bool>,
    /// A broker's log segments roll at this size, in KiB (default 8192): small ones
    /// put recovery's trusted-segment path and segment rolls under the faults.
    segment_kib: Option<Spanned<u64>>,
    /// A follower that has not caught up for this long leaves the ISR (Kafka's
    /// `replica.lag.time.max.ms`; default 300ms).
    replica_lag_max: Option<Spanned<Dur>>,
    /// The controller counts a broker dead after this long without a heartbeat
    /// (Kafka's `broker.session.timeout.ms`; default 200ms; heartbeats every 50ms).
    session_timeout: Option<Spanned<Dur>>,
}

#[derive(Clone, Copy, Deserialize)]
enum AcksFile {
    #[serde(rename = "0")]
    Zero,
    #[serde(rename = "1")]
    One,
    #[serde(rename = "all")]
    All,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(untagged)]
enum FlushFile {
    Named(FlushName),
    Interval { every_ms: u64 },
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum FlushName {
    EveryBatch,
    Never,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum TruncationFile {
    LeaderEpoch,
    #[serde(rename = "kip-101")]
    Kip101,
    HighWatermark,
}

#[derive(Clone, Copy, Deserialize)]
enum ElectionFile {
    #[serde(rename = "kip-966")]
    Kip966,
    #[serde(rename = "pre-kip-966")]
    PreKip966,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WorkloadFile {
    /// gossip-counter: increments per second; log-cluster: sends per second.
    ops_per_s: Option<Spanned<u32>>,
    /// gossip-counter only.
    gossip_every: Option<Spanned<Dur>>,
    durable: Option<bool>,
    /// log-cluster only.
    producers: Option<Spanned<u32>>,
    consumers: Option<Spanned<u32>>,
    idempotent: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct NetworkFile {
    latency: DurRange,
    tail_probability: Spanned<f64>,
    tail_max: Dur,
    /// How latency is spread over `latency` (see `LatencyShape`).
    shape: ShapeFile,
    /// Messages travel on connections that a crash or a cut closes.
    connections: bool,
}

#[derive(Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ShapeFile {
    #[default]
    Uniform,
    Exponential,
    Pareto,
}

impl Default for NetworkFile {
    fn default() -> Self {
        NetworkFile {
            latency: Spanned::new(0..0, [Dur(100 * NS_PER_US), Dur(NS_PER_MS)]),
            tail_probability: Spanned::new(0..0, 0.0),
            tail_max: Dur(0),
            shape: ShapeFile::Uniform,
            connections: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ClocksFile {
    skew_max: Dur,
    drift_max_ppm: Spanned<u32>,
}

impl Default for ClocksFile {
    fn default() -> Self {
        ClocksFile { skew_max: Dur(0), drift_max_ppm: Spanned::new(0..0, 0) }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CrashMenuFile {
    every: DurRange,
    down_for: DurRange,
    /// At most this many nodes down at once (default 1): the fault budget.
    max_down: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiskMenuFile {
    kinds: Spanned<Vec<DiskFaultKind>>,
    every: DurRange,
    /// Disk faults strike only this many brokers (the first ones), the fault budget the
    /// checker is told; by default every broker's disk, so nothing durable is promised.
    nodes: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DurationMenuFile {
    every: DurRange,
    duration: DurRange,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EveryMenuFile {
    every: DurRange,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LossyLinkMenuFile {
    every: DurRange,
    duration: DurRange,
    /// Each message sent on the link is lost with a probability drawn from this range.
    probability: ProbabilityRange,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockJumpMenuFile {
    every: DurRange,
    forward: DurRange,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionMenuFile {
    kinds: Spanned<Vec<PartitionKind>>,
    every: DurRange,
    heal_after: DurRange,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsFile {
    #[serde(default = "yes")]
    swarm: bool,
    crash: Option<CrashMenuFile>,
    pause: Option<DurationMenuFile>,
    partition: Option<PartitionMenuFile>,
    clog: Option<DurationMenuFile>,
    clock_jump: Option<ClockJumpMenuFile>,
    disk: Option<DiskMenuFile>,
    drop: Option<ProbabilityRange>,
    duplicate: Option<ProbabilityRange>,
    /// A link loses everything for a while.
    burst: Option<DurationMenuFile>,
    /// A link loses some of what is sent on it for a while.
    lossy_link: Option<LossyLinkMenuFile>,
    /// The controller moves a random partition's leadership off its live leader.
    leader_move: Option<EveryMenuFile>,
    /// The swarm strikes plain producers and consumers too (crashes, pauses, cuts and
    /// clogs): a crashed client's open operation ends indeterminate, and it comes back
    /// as a new process.
    #[serde(default)]
    clients: bool,
    #[serde(default)]
    at: Vec<Spanned<ScriptedFile>>,
}

fn yes() -> bool {
    true
}

impl Default for FaultsFile {
    fn default() -> Self {
        FaultsFile {
            swarm: true,
            crash: None,
            pause: None,
            partition: None,
            clog: None,
            clock_jump: None,
            disk: None,
            drop: None,
            duplicate: None,
            burst: None,
            lossy_link: None,
            leader_move: None,
            clients: false,
            at: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptedFile {
    time: Dur,
    kind: ScriptedKind,
    target: Option<Spanned<String>>,
    duration: Option<Dur>,
    /// `split`: the nodes on one side.
    nodes: Option<Spanned<Vec<Spanned<String>>>>,
    /// `one-way`, `cut`: the senders (a list); `clog`, `burst`, `lossy-link`: one node.
    from: Option<Spanned<NodeList>>,
    /// `one-way`, `cut`: the receivers (a list); `clog`, `burst`, `lossy-link`: one node.
    to: Option<Spanned<NodeList>>,
    /// `disk`: the disk fault, as `faults.disk.kinds` names them.
    disk: Option<Spanned<DiskFaultKind>>,
    /// `disk` with `disk = "batch-header"`: the field (default: drawn).
    field: Option<HeaderField>,
    /// `disk` with `disk = "checkpoint"`: the file (default: drawn).
    file: Option<CheckpointFile>,
    /// `disk` with `disk = "out-of-space"`: bytes left (default 0).
    free_bytes: Option<u64>,
    /// `lossy-link`: the share of messages lost; `network-faults`: the random drop.
    probability: Option<Spanned<f64>>,
    /// `network-faults`: the random duplication.
    duplicate: Option<Spanned<f64>>,
    /// `leader-move`: the partition whose leadership moves.
    partition: Option<Spanned<u32>>,
}

/// One node (`"n1"`) or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum NodeList {
    One(String),
    Many(Vec<String>),
}

impl NodeList {
    fn names(&self) -> Vec<&str> {
        match self {
            NodeList::One(name) => vec![name.as_str()],
            NodeList::Many(names) => names.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum ScriptedKind {
    Crash,
    Restart,
    Pause,
    Resume,
    Isolate,
    ClockJump,
    Heal,
    HealAll,
    /// Every server crashes at once (correlated power loss).
    PowerLoss,
    /// Two sides, `nodes` and the rest, cut from each other.
    Split,
    /// Messages from `from` to `to` lost; the other way works.
    OneWay,
    /// Messages between `from` and `to` lost, both ways.
    Cut,
    /// The link `from` -> `to` holds everything for `duration`, then delivers it.
    Clog,
    /// The link `from` -> `to` loses everything sent on it for `duration`.
    Burst,
    /// The link `from` -> `to` loses each message with `probability` for `duration`.
    LossyLink,
    /// A disk fault (`disk`) on the target's disk.
    Disk,
    /// The network's random drop (`probability`) and duplication (`duplicate`).
    NetworkFaults,
    /// The controller moves the leadership of `partition` off its live leader.
    LeaderMove,
}

impl ScriptedKind {
    /// The kind's name in scenario files.
    fn name(self) -> &'static str {
        match self {
            ScriptedKind::Crash => "crash",
            ScriptedKind::Restart => "restart",
            ScriptedKind::Pause => "pause",
            ScriptedKind::Resume => "resume",
            ScriptedKind::Isolate => "isolate",
            ScriptedKind::ClockJump => "clock-jump",
            ScriptedKind::Heal => "heal",
            ScriptedKind::HealAll => "heal-all",
            ScriptedKind::PowerLoss => "power-loss",
            ScriptedKind::Split => "split",
            ScriptedKind::OneWay => "one-way",
            ScriptedKind::Cut => "cut",
            ScriptedKind::Clog => "clog",
            ScriptedKind::Burst => "burst",
            ScriptedKind::LossyLink => "lossy-link",
            ScriptedKind::Disk => "disk",
            ScriptedKind::NetworkFaults => "network-faults",
            ScriptedKind::LeaderMove => "leader-move",
        }
    }

    /// The fields a kind takes besides `time`, `kind` and (if it strikes a node)
    /// `target`.
    fn fields(self) -> &'static [&'static str] {
        match self {
            ScriptedKind::ClockJump => &["duration"],
            ScriptedKind::Split => &["nodes"],
            ScriptedKind::OneWay | ScriptedKind::Cut => &["from", "to"],
            ScriptedKind::Clog | ScriptedKind::Burst => &["from", "to", "duration"],
            ScriptedKind::LossyLink => &["from", "to", "duration", "probability"],
            ScriptedKind::Disk => &["disk", "field", "file", "free_bytes"],
            ScriptedKind::NetworkFaults => &["probability", "duplicate"],
            ScriptedKind::LeaderMove => &["partition"],
            _ => &[],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhasesFile {
    chaos: Spanned<Dur>,
    quiet: Dur,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    events_max: Option<u64>,
    in_flight_max: Option<u64>,
    time_max: Option<Dur>,
    timers_per_node_max: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFile {
    all_hold: Option<bool>,
    violation: Option<String>,
    within_seeds: Option<u64>,
}

/// The gossip counter's invariants, which a scenario may name in `expect.violation`.
pub const COUNTER_INVARIANTS: &[&str] = &["acked-durable", "no-phantom", "converged"];

/// A broker's log segment size when the scenario does not say (`cluster.segment_kib`).
pub const SEGMENT_KIB_DEFAULT: u64 = 8 << 10;
/// The smallest segment a scenario may ask for, in KiB (a batch must fit one).
pub const SEGMENT_KIB_MIN: u64 = 4;
/// The largest, in KiB (1 GiB, Kafka's default).
pub const SEGMENT_KIB_MAX: u64 = 1 << 20;

/// The bounds of `cluster.replica_lag_max`: above a follower's fetch tick, and short
/// enough for a run's seconds.
pub const REPLICA_LAG_NS_RANGE: std::ops::RangeInclusive<u64> = 20_000_000..=10_000_000_000;
/// The bounds of `cluster.session_timeout`: above two heartbeats (a broker heartbeats
/// every 50ms), and short enough for a run's seconds.
pub const SESSION_TIMEOUT_NS_RANGE: std::ops::RangeInclusive<u64> = 100_000_000..=10_000_000_000;

/// The most aggregates an event-store scenario may name (`eventstore.aggregates`).
pub const ES_ACCOUNTS_MAX: u32 = 1_000;

/// The invariants a scenario of `system` may name in `expect.violation`.
fn invariants(system: &System) -> Vec<&'static str> {
    match system {
        System::GossipCounter { .. } => COUNTER_INVARIANTS.to_vec(),
        System::LogCluster(spec) if spec.es.is_some() => {
            logjam_model::es::EsInvariant::ALL.iter().map(|i| i.name()).collect()
        }
        System::LogCluster(_) => logjam_model::Invariant::ALL.iter().map(|i| i.name()).collect(),
    }
}

/// Turns byte spans into places in the file.
struct Source<'a> {
    path: &'a str,
    text: &'a str,
    /// A domain of the caller's own: `eventstore.domain` may name it, or be left out.
    user_domain: Option<&'a str>,
}

impl Source<'_> {
    fn error(&self, span: Option<Range<usize>>, message: String) -> ScenarioError {
        let place = span.filter(|span| span.end > 0).map(|span| {
            let before = &self.text[..span.start.min(self.text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            (line, column)
        });
        ScenarioError { path: self.path.to_owned(), place, message }
    }

    fn range(&self, what: &str, range: &DurRange) -> Result<RangeNs, ScenarioError> {
        let [Dur(min), Dur(max)] = *range.get_ref();
        if min > max {
            return Err(self.error(
                Some(range.span()),
                format!(
                    "{what}: range is upside down ({} > {})",
                    format_duration_short(min),
                    format_duration_short(max)
                ),
            ));
        }
        Ok([min, max])
    }

    fn probability(&self, what: &str, value: &Spanned<f64>) -> Result<f64, ScenarioError> {
        let p = *value.get_ref();
        if (0.0..=1.0).contains(&p) {
            Ok(p)
        } else {
            Err(self
                .error(Some(value.span()), format!("{what}: probability {p} is outside [0, 1]")))
        }
    }

    fn probability_range(
        &self,
        what: &str,
        range: &ProbabilityRange,
    ) -> Result<[f64; 2], ScenarioError> {
        let [min, max] = *range.get_ref();
        for p in [min, max] {
            self.probability(what, &Spanned::new(range.span(), p))?;
        }
        if min > max {
            return Err(self.error(
                Some(range.span()),
                format!("{what}: range is upside down ({min} > {max})"),
            ));
        }
        Ok([min, max])
    }
}

/// A disk fault kind as scenario files write it.
fn disk_kind_name(kind: DiskFaultKind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// A drawn configuration for people: `cluster.acks=1 cluster.brokers=5`.
pub fn shown_config(drawn: &[(String, String)]) -> String {
    drawn.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(" ")
}

impl Scenario {
    /// Which nodes play which role, in words (`brokers n0-n2, controller n3, ...`).
    pub fn node_map(&self) -> String {
        match &self.system {
            System::LogCluster(spec) => spec.node_map(),
            System::GossipCounter { .. } => match self.world.nodes {
                1 => "counter node n0".to_owned(),
                nodes => format!("counter nodes n0-n{}", nodes - 1),
            },
        }
    }

    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ScenarioError {
            path: shown.clone(),
            place: None,
            message: format!("cannot read: {error}"),
        })?;
        Scenario::parse(&text, &shown)
    }

    /// Checks scenario text; `path` is only used in messages and replay commands.
    ///
    /// With configuration menus, every menu value must be part of at least one
    /// combination that checks; the scenario returned is one of them (a base for what
    /// does not change from seed to seed: name, phases, expectation, coverage).
    pub fn parse(text: &str, path: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse_with(text, path, None)
    }

    /// `parse` for a run of the caller's own event-store domain named `domain` (see
    /// `crate::user`): `eventstore.domain` may name it (or a built-in domain), and when
    /// left out it is `domain`.
    pub fn parse_for_domain(
        text: &str,
        path: &str,
        domain: &str,
    ) -> Result<Scenario, ScenarioError> {
        Scenario::parse_with(text, path, Some(domain))
    }

    fn parse_with(
        text: &str,
        path: &str,
        user_domain: Option<&str>,
    ) -> Result<Scenario, ScenarioError> {
        let source = Source { path, text, user_domain };
        let menus =
            Menus::find(text).map_err(|(span, message)| source.error(Some(span), message))?;
        if menus.is_empty() {
            return Scenario::parse_plain(text, path, user_domain);
        }
        let space = Arc::new(ConfigSpace {
            text: text.to_owned(),
            path: path.to_owned(),
            menus,
            user_domain: user_domain.map(str::to_owned),
        });
        let mut base = None;
        for (m, menu) in space.menus.menus.iter().enumerate() {
            for (v, value) in menu.values.iter().enumerate() {
                match Scenario::drawable(&space, m, v) {
                    Ok(scenario) => {
                        base.get_or_insert(scenario);
                    }
                    Err(error) => {
                        let message = format!(
                            "{} = {} can never be drawn: {}",
                            menu.key, value.source, error.message
                        );
                        return Err(source.error(Some(value.span.clone()), message));
                    }
                }
            }
        }
        Ok(base.expect("a menu has values"))
    }

    /// A combination with value `v` of menu `m` that checks, or the last problem met:
    /// random draws first, then the combinations in order.
    fn drawable(space: &Arc<ConfigSpace>, m: usize, v: usize) -> Result<Scenario, ScenarioError> {
        let menus = &space.menus;
        let mut rng = stream(0, StreamId::Config);
        let mut last = None;
        let tries = (0..64).map(|_| menus.draw(&mut rng)).chain(
            (0..menus.combinations().min(COMBINATIONS_WALKED_MAX))
                .map(|n| menus.combination(n))
                .filter(|choice| choice[m] == v),
        );
        for mut choice in tries {
            choice[m] = v;
            match Scenario::pinned_choice(space, &choice) {
                Ok(scenario) => return Ok(scenario),
                Err(error) => last = Some(error),
            }
        }
        Err(last.expect("a menu has values"))
    }

    /// The scenario of one combination of menu values.
    fn pinned_choice(
        space: &Arc<ConfigSpace>,
        choice: &[usize],
    ) -> Result<Scenario, ScenarioError> {
        let text = space.menus.pin(&space.text, choice);
        let scenario = Scenario::parse_plain(&text, &space.path, space.user_domain.as_deref())?;
        Ok(Scenario {
            space: Some(Arc::clone(space)),
            drawn: space.menus.named(choice),
            ..scenario
        })
    }

    /// The scenario seed `seed` runs: itself without menus, else the configuration the
    /// seed's `Config` stream draws (drawn again until it checks).
    pub fn for_seed(&self, seed: u64) -> Cow<'_, Scenario> {
        let Some(space) = &self.space else { return Cow::Borrowed(self) };
        let menus = &space.menus;
        let mut rng = stream(seed, StreamId::Config);
        for _ in 0..DRAW_ATTEMPTS_MAX {
            if let Ok(scenario) = Scenario::pinned_choice(space, &menus.draw(&mut rng)) {
                return Cow::Owned(self.keeping_path(scenario));
            }
        }
        let combinations = menus.combinations();
        let first = rng.random_range(0..combinations);
        (0..combinations.min(COMBINATIONS_WALKED_MAX))
            .find_map(|n| {
                let choice = menus.combination((first + n) % combinations);
                Scenario::pinned_choice(space, &choice).ok()
            })
            .map(|scenario| Cow::Owned(self.keeping_path(scenario)))
            .expect("the file was checked to have combinations that check")
    }

    /// The scenario of a configuration drawn before (a schedule file's, a run's), given
    /// as (key, value) pairs naming one value of every menu.
    pub fn pinned(&self, drawn: &[(String, String)]) -> Result<Scenario, String> {
        let Some(space) = &self.space else {
            if drawn.is_empty() {
                return Ok(self.clone());
            }
            return Err(format!(
                "the scenario has no configuration menus, yet a configuration is given ({})",
                shown_config(drawn)
            ));
        };
        let menus = &space.menus;
        let mut choice: Vec<Option<usize>> = vec![None; menus.menus.len()];
        for (key, value) in drawn {
            let Some((m, v)) = menus.index_of(key, value) else {
                return Err(format!("`{key} = {value}` is not a value of the scenario's menus"));
            };
            if choice[m].replace(v).is_some() {
                return Err(format!("`{key}` is given twice"));
            }
        }
        let choice: Vec<usize> = choice
            .iter()
            .zip(&menus.menus)
            .map(|(index, menu)| {
                index.ok_or_else(|| format!("no value for the menu `{}`", menu.key))
            })
            .collect::<Result<_, _>>()?;
        Scenario::pinned_choice(space, &choice)
            .map(|scenario| self.keeping_path(scenario))
            .map_err(|error| error.message)
    }

    /// A drawn scenario under this one's path (which a caller may have set after
    /// loading: it goes into replay commands).
    fn keeping_path(&self, drawn: Scenario) -> Scenario {
        Scenario { path: self.path.clone(), ..drawn }
    }

    /// Every (key, value) of the scenario's menus (none without menus).
    pub fn menu_values(&self) -> Vec<(String, String)> {
        self.space.as_ref().map_or_else(Vec::new, |space| space.menus.all_values())
    }

    /// Checks text without menus.
    fn parse_plain(
        text: &str,
        path: &str,
        user_domain: Option<&str>,
    ) -> Result<Scenario, ScenarioError> {
        let source = Source { path, text, user_domain };
        let file: File = toml::from_str(text).map_err(|error| {
            let message = error.message().trim_end().replace('\n', " ");
            // Name the key too: serde's messages ("unknown variant", a duration's) do not.
            let message = match error.span().and_then(|span| key_path(text, &span)) {
                Some(key) => format!("{key}: {message}"),
                None => message,
            };
            source.error(error.span(), message)
        })?;
        source.check(file)
    }
}

/// The dotted key (`phases.chaos`, `faults.at.kind`) of the innermost key, value or
/// table of `text` that holds the bytes `span`; `None` if the text does not parse.
fn key_path(text: &str, span: &Range<usize>) -> Option<String> {
    let document = toml_edit::ImDocument::parse(text).ok()?;
    let mut path = Vec::new();
    key_path_in(entries(document.as_table()), span, &mut path);
    (!path.is_empty()).then(|| path.join("."))
}

type Entry<'a> = (&'a toml_edit::Key, &'a toml_edit::Item);

fn entries(table: &toml_edit::Table) -> Vec<Entry<'_>> {
    table.iter().filter_map(|(key, _)| table.get_key_value(key)).collect()
}

/// Pushes onto `path` the keys down to the innermost of `entries` that holds `span`.
fn key_path_in(entries_here: Vec<Entry<'_>>, span: &Range<usize>, path: &mut Vec<String>) {
    for (key, item) in entries_here {
        match item {
            toml_edit::Item::Value(value) => {
                let (Some(key_span), Some(value_span)) = (key.span(), value.span()) else {
                    continue;
                };
                if !(key_span.start <= span.start && span.end <= value_span.end) {
                    continue;
                }
                path.push(key.get().to_owned());
                // An inline table, or an array of them: look inside.
                let inline: Vec<&toml_edit::InlineTable> = match value {
                    toml_edit::Value::InlineTable(table) => vec![table],
                    toml_edit::Value::Array(array) => {
                        array.iter().filter_map(toml_edit::Value::as_inline_table).collect()
                    }
                    _ => Vec::new(),
                };
                for table in inline {
                    let inner =
                        table.iter().filter_map(|(key, _)| table.get_key_value(key)).collect();
                    key_path_in(inner, span, path);
                }
                return;
            }
            toml_edit::Item::Table(table) if in_table(key, table, span, path) => return,
            toml_edit::Item::ArrayOfTables(array)
                if array.iter().any(|table| in_table(key, table, span, path)) =>
            {
                return;
            }
            toml_edit::Item::Table(_) | toml_edit::Item::ArrayOfTables(_) => {}
            toml_edit::Item::None => {}
        }
    }
}

/// Whether `table` (under `key`) holds `span`; if so, its keys down to it are on `path`.
fn in_table(
    key: &toml_edit::Key,
    table: &toml_edit::Table,
    span: &Range<usize>,
    path: &mut Vec<String>,
) -> bool {
    let depth = path.len();
    path.push(key.get().to_owned());
    key_path_in(entries(table), span, path);
    // A table's span holds its header and body; a dotted one (`a.b = 1`) has none.
    let holds = table.span().is_some_and(|t| t.start <= span.start && span.end <= t.end);
    if path.len() > depth + 1 || holds {
        return true;
    }
    path.truncate(depth);
    false
}

impl Source<'_> {
    fn check(&self, file: File) -> Result<Scenario, ScenarioError> {
        let (system, nodes, servers) = self.system(&file)?;
        let [min_ns, max_ns] = self.range("network.latency", &file.network.latency)?;
        let tail_probability =
            self.probability("network.tail_probability", &file.network.tail_probability)?;
        let network = NetworkConfig {
            latency: Latency {
                min_ns,
                max_ns,
                tail_probability,
                tail_max_ns: file.network.tail_max.0,
                shape: match file.network.shape {
                    ShapeFile::Uniform => LatencyShape::Uniform,
                    ShapeFile::Exponential => LatencyShape::Exponential,
                    ShapeFile::Pareto => LatencyShape::Pareto,
                },
            },
            connections: file.network.connections,
            ..NetworkConfig::default()
        };
        let drift_max_ppm = *file.clocks.drift_max_ppm.get_ref();
        if drift_max_ppm > DRIFT_MAX_PPM_LIMIT {
            let message =
                format!("clocks.drift_max_ppm: {drift_max_ppm} exceeds {DRIFT_MAX_PPM_LIMIT}");
            return Err(self.error(Some(file.clocks.drift_max_ppm.span()), message));
        }
        let clocks = ClockConfig { skew_max_ns: file.clocks.skew_max.0, drift_max_ppm };
        let chaos_ns = file.phases.chaos.get_ref().0;
        let quiet_ns = file.phases.quiet.0;
        let defaults = Limits::default();
        let limits = Limits {
            events_max: file.limits.events_max.unwrap_or(defaults.events_max),
            in_flight_max: file.limits.in_flight_max.unwrap_or(defaults.in_flight_max),
            time_max_ns: file.limits.time_max.map_or(defaults.time_max_ns, |d| d.0),
            timers_per_node_max: file
                .limits
                .timers_per_node_max
                .unwrap_or(defaults.timers_per_node_max),
            trace_kept_max: 0,
        };
        // The cluster runs the broker on every disk: its aimed faults strike the broker's logs.
        let disk = crate::broker_disk_config();
        let world = WorldConfig { nodes, network, clocks, disk, limits, ..WorldConfig::default() };
        world.validate().map_err(|error| self.error(None, error.to_string()))?;
        if chaos_ns.saturating_add(quiet_ns) > world.limits.time_max_ns {
            let message = "phases: chaos + quiet exceed limits.time_max".to_owned();
            return Err(self.error(Some(file.phases.chaos.span()), message));
        }

        let faults = &file.faults;
        let periodic = |what: &str, every: &DurRange, (name, second): (&str, &DurRange)| {
            let every_ns = self.range(&format!("faults.{what}.every"), every)?;
            if every_ns[0] == 0 {
                let message = format!("faults.{what}.every: must be above zero");
                return Err(self.error(Some(every.span()), message));
            }
            let span_ns = self.range(&format!("faults.{what}.{name}"), second)?;
            if span_ns[1] > crate::FAULT_SPAN_MAX_NS {
                let message = format!(
                    "faults.{what}.{name}: at most {}",
                    format_duration_short(crate::FAULT_SPAN_MAX_NS)
                );
                return Err(self.error(Some(second.span()), message));
            }
            Ok((every_ns, span_ns))
        };
        let partition = match &faults.partition {
            None => None,
            Some(menu) => {
                if menu.kinds.get_ref().is_empty() {
                    let message = "faults.partition.kinds: name at least one kind".to_owned();
                    return Err(self.error(Some(menu.kinds.span()), message));
                }
                let (every, heal_after) =
                    periodic("partition", &menu.every, ("heal_after", &menu.heal_after))?;
                Some((menu.kinds.get_ref().clone(), every, heal_after))
            }
        };
        let menu = FaultMenu {
            swarm: faults.swarm,
            crash: faults
                .crash
                .as_ref()
                .map(|m| periodic("crash", &m.every, ("down_for", &m.down_for)))
                .transpose()?,
            pause: faults
                .pause
                .as_ref()
                .map(|m| periodic("pause", &m.every, ("duration", &m.duration)))
                .transpose()?,
            partition,
            clog: faults
                .clog
                .as_ref()
                .map(|m| periodic("clog", &m.every, ("duration", &m.duration)))
                .transpose()?,
            clock_jump: faults
                .clock_jump
                .as_ref()
                .map(|m| periodic("clock_jump", &m.every, ("forward", &m.forward)))
                .transpose()?,
            crash_down_max: match faults.crash.as_ref().and_then(|m| m.max_down.as_ref()) {
                Some(max) if *max.get_ref() == 0 => {
                    let message = "faults.crash.max_down: must be above zero".to_owned();
                    return Err(self.error(Some(max.span()), message));
                }
                Some(max) => *max.get_ref(),
                None => 1,
            },
            disk: match &faults.disk {
                None => None,
                Some(menu) => {
                    if menu.kinds.get_ref().is_empty() {
                        let message = "faults.disk.kinds: name at least one kind".to_owned();
                        return Err(self.error(Some(menu.kinds.span()), message));
                    }
                    let every = self.range("faults.disk.every", &menu.every)?;
                    if every[0] == 0 {
                        let message = "faults.disk.every: must be above zero".to_owned();
                        return Err(self.error(Some(menu.every.span()), message));
                    }
                    Some((menu.kinds.get_ref().clone(), every))
                }
            },
            drop: faults
                .drop
                .as_ref()
                .map(|r| self.probability_range("faults.drop", r))
                .transpose()?,
            duplicate: faults
                .duplicate
                .as_ref()
                .map(|r| self.probability_range("faults.duplicate", r))
                .transpose()?,
            burst: faults
                .burst
                .as_ref()
                .map(|m| periodic("burst", &m.every, ("duration", &m.duration)))
                .transpose()?,
            lossy_link: match &faults.lossy_link {
                None => None,
                Some(m) => {
                    let (every, duration) =
                        periodic("lossy_link", &m.every, ("duration", &m.duration))?;
                    let probability =
                        self.probability_range("faults.lossy_link.probability", &m.probability)?;
                    Some((every, duration, probability))
                }
            },
            operator: match (&faults.leader_move, &system) {
                (None, _) => None,
                (Some(m), System::LogCluster(spec)) => {
                    let every = self.range("faults.leader_move.every", &m.every)?;
                    if every[0] == 0 {
                        let message = "faults.leader_move.every: must be above zero".to_owned();
                        return Err(self.error(Some(m.every.span()), message));
                    }
                    Some((every, NodeId(spec.brokers), u64::from(spec.total_partitions())))
                }
                (Some(m), _) => {
                    let message = "faults.leader_move: only a log cluster has leaders".to_owned();
                    return Err(self.error(Some(m.every.span()), message));
                }
            },
        };
        let mut scripted = Vec::new();
        for entry in &faults.at {
            let time_ns = entry.get_ref().time.0;
            if time_ns >= chaos_ns + quiet_ns {
                let message = format!(
                    "faults.at.time: {} is past the end of the run (chaos {} + quiet {})",
                    format_duration_short(time_ns),
                    format_duration_short(chaos_ns),
                    format_duration_short(quiet_ns)
                );
                return Err(self.error(Some(entry.span()), message));
            }
            let leaders = match &system {
                System::LogCluster(spec) => Some((NodeId(spec.brokers), spec.total_partitions())),
                _ => None,
            };
            scripted.extend(self.scripted(entry, nodes, &servers, leaders)?);
        }
        let power_loss =
            faults.at.iter().any(|entry| entry.get_ref().kind == ScriptedKind::PowerLoss);
        let crashes_max = if power_loss {
            servers.len() as u32
        } else if faults.crash.is_some() {
            menu.crash_down_max.min(servers.len() as u32)
        } else {
            // Crashes of clients cost the system nothing: only servers count.
            let crashes = scripted.iter().filter(
                |timed| matches!(timed.fault, Fault::Crash { node } if servers.contains(&node)),
            );
            crashes.count() as u32
        };
        // Faults strike the servers, the clients too if the menu says so, and whatever
        // a scripted fault names (so that a schedule shrunk from it replays).
        let mut fault_targets = servers.clone();
        if faults.clients {
            if let System::LogCluster(spec) = &system {
                fault_targets.extend(spec.plain_clients());
            }
        }
        fault_targets.extend(scripted.iter().filter_map(|timed| timed.fault.node()));
        fault_targets.sort_unstable();
        fault_targets.dedup();
        let mut disk_targets: Vec<NodeId> = match &system {
            System::LogCluster(spec) => (0..spec.brokers).map(NodeId).collect(),
            System::GossipCounter { .. } => servers.clone(),
        };
        let disk_nodes = faults.disk.as_ref().and_then(|menu| menu.nodes.as_ref());
        if let Some(nodes) = disk_nodes {
            let count = *nodes.get_ref();
            if count == 0 || count as usize > disk_targets.len() {
                let message = format!(
                    "faults.disk.nodes: {count} is not between 1 and {} (the brokers)",
                    disk_targets.len()
                );
                return Err(self.error(Some(nodes.span()), message));
            }
            disk_targets.truncate(count as usize);
        }
        // Scripted disk faults spend the budget too: every disk they strike counts.
        let mut struck_disks: Vec<NodeId> = scripted
            .iter()
            .filter_map(|timed| match timed.fault {
                Fault::Disk { node, .. } => Some(node),
                _ => None,
            })
            .collect();
        if faults.disk.is_some() {
            struck_disks.extend(&disk_targets);
        }
        struck_disks.sort_unstable();
        struck_disks.dedup();
        let disk_faults_max = match (&faults.disk, disk_nodes) {
            (Some(_), None) => servers.len() as u32,
            _ => struck_disks.len() as u32,
        };
        let expect = self.expect(&file.expect, &system)?;
        let mut coverage = Vec::new();
        for (item, share) in &file.coverage {
            if !coverage::is_item(item.get_ref()) {
                let known: Vec<&str> = coverage::ITEMS.iter().map(|(name, _)| *name).collect();
                let message = format!(
                    "coverage.{}: unknown item; known: {}",
                    item.get_ref(),
                    known.join(", ")
                );
                return Err(self.error(Some(item.span()), message));
            }
            let min_per_mille = coverage::parse_percent(share.get_ref()).map_err(|problem| {
                self.error(Some(share.span()), format!("coverage.{}: {problem}", item.get_ref()))
            })?;
            coverage.push(coverage::Requirement { item: item.get_ref().clone(), min_per_mille });
        }
        // A network that duplicates messages can deliver a copy of a produce request
        // after its original was refused: the clients must not call a send that was
        // refused on every attempt failed (it may land yet).
        let duplicates = world.network.duplicate_probability > 0.0
            || menu.duplicate.is_some_and(|[_, high]| high > 0.0)
            || scripted.iter().any(|timed| {
                matches!(timed.fault, crate::Fault::NetworkFaults { duplicate_probability, .. } if duplicate_probability > 0.0)
            });
        let system = match system {
            System::LogCluster(spec) => {
                System::LogCluster(ClusterSpec { requests_may_repeat: duplicates, ..spec })
            }
            other => other,
        };
        Ok(Scenario {
            coverage,
            disk_targets,
            name: file.name,
            about: file.about,
            path: self.path.to_owned(),
            system,
            world,
            ops_per_s: file.workload.ops_per_s.as_ref().map_or(100, |ops| *ops.get_ref()),
            menu,
            scripted,
            chaos_ns,
            quiet_ns,
            expect,
            fault_targets,
            crashes_max,
            disk_faults_max,
            space: None,
            drawn: Vec::new(),
        })
    }

    /// The event-store workload: present exactly when the system is `event-store`.
    fn event_store(&self, file: &File) -> Result<Option<EsSpec>, ScenarioError> {
        let table = file.eventstore.as_ref();
        match (file.system, table) {
            (SystemName::EventStore, None) if self.user_domain.is_some() => Ok(Some(EsSpec {
                domain: self.user_domain.unwrap_or_default().to_owned(),
                accounts: 4,
                expected_versions: true,
                deposits_only: false,
            })),
            (SystemName::EventStore, None) => Err(self.error(
                None,
                "eventstore: missing (an event-store system needs its domain)".into(),
            )),
            (SystemName::EventStore, Some(table)) => {
                let es = table.get_ref();
                let domain = match (&es.domain, self.user_domain) {
                    (Some(domain), user) => {
                        let name = domain.get_ref().as_str();
                        if crate::user::builtin(name).is_none() && Some(name) != user {
                            let also = user.map_or(String::new(), |user| format!(", or {user}"));
                            let message = format!(
                                "eventstore.domain: `{name}` is not a domain the simulator runs (bank, cart, inventory, table{also})"
                            );
                            return Err(self.error(Some(domain.span()), message));
                        }
                        name.to_owned()
                    }
                    (None, Some(user)) => user.to_owned(),
                    (None, None) => {
                        let message = "eventstore.domain: missing (bank, cart, inventory or table)";
                        return Err(self.error(Some(table.span()), message.into()));
                    }
                };
                let projections = file.workload.consumers.as_ref().map_or(0, |c| *c.get_ref());
                // A user's domain says whether it has a read model (`EsSuite` checks).
                let builtin = crate::user::builtin(&domain).is_some();
                if builtin && !["bank", "table"].contains(&domain.as_str()) && projections > 0 {
                    let span = file.workload.consumers.as_ref().map(Spanned::span);
                    let message = "workload.consumers: projections (and CDC replicas) run \
                                   for the bank and table domains"
                        .into();
                    return Err(self.error(span, message));
                }
                let accounts = match &es.aggregates {
                    Some(aggregates) if !(2..=ES_ACCOUNTS_MAX).contains(aggregates.get_ref()) => {
                        let message = format!(
                            "eventstore.aggregates: {} is not between 2 and {ES_ACCOUNTS_MAX}",
                            aggregates.get_ref()
                        );
                        return Err(self.error(Some(aggregates.span()), message));
                    }
                    Some(aggregates) => *aggregates.get_ref(),
                    None => 4,
                };
                Ok(Some(EsSpec {
                    domain,
                    accounts,
                    expected_versions: es.expected_versions,
                    deposits_only: es.deposits_only,
                }))
            }
            (_, Some(table)) => {
                Err(self
                    .error(Some(table.span()), "eventstore: only for system event-store".into()))
            }
            (_, None) => Ok(None),
        }
    }

    /// The transactional workload: only for a log cluster without an event store.
    fn transactions(
        &self,
        file: &File,
        partitions: u32,
        (producers, consumers): (u32, u32),
    ) -> Result<Option<TxnSpec>, ScenarioError> {
        let Some(table) = &file.transactions else { return Ok(None) };
        let txn = table.get_ref();
        match (file.system, &file.eventstore) {
            (SystemName::LogCluster, None) => {}
            (SystemName::EventStore, Some(es))
                if es.get_ref().domain.as_ref().is_some_and(|d| d.get_ref() == "bank") =>
            {
                if !es.get_ref().expected_versions {
                    // A transfer's records are conditional on both streams' versions:
                    // that is what makes an uncertain one land whole or not at all.
                    let message = "transactions: an event store's transactions need \
                                   eventstore.expected_versions"
                        .into();
                    return Err(self.error(Some(table.span()), message));
                }
                // The bank's transfers are its transactions: nothing else to say.
                let span = (txn.partitions_per_txn.as_ref().map(Spanned::span))
                    .or_else(|| txn.processors.as_ref().map(Spanned::span));
                if span.is_some() {
                    let message = "transactions: partitions_per_txn and processors are for \
                                   system log-cluster (a bank transfer writes its two accounts)"
                        .into();
                    return Err(self.error(span, message));
                }
            }
            _ => {
                let message = "transactions: only for system log-cluster, or event-store with \
                               domain bank"
                    .into();
                return Err(self.error(Some(table.span()), message));
            }
        }
        let timeout_ns = txn.timeout.as_ref().map_or(NS_PER_S, |t| t.get_ref().0);
        if timeout_ns == 0 {
            let span = txn.timeout.as_ref().map(Spanned::span);
            return Err(self.error(span, "transactions.timeout: must be above zero".into()));
        }
        let partitions_per_txn =
            txn.partitions_per_txn.as_ref().map_or(2.min(partitions), |p| *p.get_ref());
        if !(1..=partitions).contains(&partitions_per_txn) {
            let span = txn.partitions_per_txn.as_ref().map(Spanned::span);
            let message = format!(
                "transactions.partitions_per_txn: {partitions_per_txn} is not between 1 and the partitions ({partitions})"
            );
            return Err(self.error(span, message));
        }
        let read_uncommitted = txn.read_uncommitted.as_ref().map_or(0, |r| *r.get_ref());
        if read_uncommitted > consumers {
            let span = txn.read_uncommitted.as_ref().map(Spanned::span);
            let message = format!(
                "transactions.read_uncommitted: {read_uncommitted} exceeds the consumers ({consumers})"
            );
            return Err(self.error(span, message));
        }
        let processors = txn.processors.as_ref().map_or(0, |p| *p.get_ref());
        if processors > PROCESSORS_MAX {
            let span = txn.processors.as_ref().map(Spanned::span);
            let message = format!("transactions.processors: {processors} exceeds {PROCESSORS_MAX}");
            return Err(self.error(span, message));
        }
        let plain_producers = txn.plain_producers.as_ref().map_or(0, |p| *p.get_ref());
        if plain_producers >= producers {
            let span = txn.plain_producers.as_ref().map(Spanned::span);
            let message = format!(
                "transactions.plain_producers: {plain_producers} must be below the producers ({producers}): one at least runs transactions"
            );
            return Err(self.error(span, message));
        }
        Ok(Some(TxnSpec {
            processors,
            plain_producers,
            offsets_in_txn: matches!(txn.offsets, OffsetsFile::InTransaction),
            protocol: match txn.protocol {
                TxnProtocolFile::Kip890 => TxnProtocol::Kip890,
                TxnProtocolFile::PreKip890 => TxnProtocol::Legacy,
            },
            timeout_ns,
            partitions_per_txn,
            read_uncommitted,
        }))
    }

    /// The system, its node count, and the nodes faults may strike.
    fn system(&self, file: &File) -> Result<(System, u32, Vec<NodeId>), ScenarioError> {
        let (cluster, workload) = (&file.cluster, &file.workload);
        let refuse = |span: Option<Range<usize>>, message: String| Err(self.error(span, message));
        let positive = |what: &str,
                        value: &Option<Spanned<u32>>,
                        default: u32|
         -> Result<u32, ScenarioError> {
            match value {
                Some(value) if *value.get_ref() == 0 => {
                    Err(self.error(Some(value.span()), format!("{what}: must be above zero")))
                }
                Some(value) => Ok(*value.get_ref()),
                None => Ok(default),
            }
        };
        match file.system {
            SystemName::GossipCounter => {
                let cluster_only = [
                    &cluster.brokers,
                    &cluster.partitions,
                    &cluster.replication_factor,
                    &cluster.min_insync_replicas,
                ];
                if let Some(field) = cluster_only.iter().find_map(|f| f.as_ref()) {
                    let message =
                        "cluster: only `nodes` belongs to a gossip-counter cluster".into();
                    return refuse(Some(field.span()), message);
                }
                let Some(nodes_field) = &cluster.nodes else {
                    return refuse(None, "cluster.nodes: missing (how many counter nodes)".into());
                };
                let nodes = *nodes_field.get_ref();
                if !(1..=NODES_MAX).contains(&nodes) {
                    let message =
                        format!("cluster.nodes: {nodes} is not between 1 and {NODES_MAX}");
                    return refuse(Some(nodes_field.span()), message);
                }
                let gossip_every_ns =
                    workload.gossip_every.as_ref().map_or(20 * NS_PER_MS, |d| d.get_ref().0);
                if gossip_every_ns == 0 {
                    let span = workload.gossip_every.as_ref().map(Spanned::span);
                    return refuse(span, "workload.gossip_every: must be above zero".into());
                }
                let system = System::GossipCounter {
                    gossip_every_ns,
                    durable: workload.durable.unwrap_or(true),
                };
                Ok((system, nodes, (0..nodes).map(NodeId).collect()))
            }
            SystemName::LogCluster | SystemName::EventStore => {
                if let Some(field) = &cluster.nodes {
                    return refuse(
                        Some(field.span()),
                        "cluster.nodes: a log-cluster counts `brokers`".into(),
                    );
                }
                if let Some(field) = &workload.gossip_every {
                    return refuse(
                        Some(field.span()),
                        "workload.gossip_every: only for system gossip-counter".into(),
                    );
                }
                let brokers = positive("cluster.brokers", &cluster.brokers, 3)?;
                let partitions = positive("cluster.partitions", &cluster.partitions, 1)?;
                let replication_factor = positive(
                    "cluster.replication_factor",
                    &cluster.replication_factor,
                    brokers.min(3),
                )?;
                if replication_factor > brokers {
                    let span = cluster.replication_factor.as_ref().map(Spanned::span);
                    let message = format!(
                        "cluster.replication_factor: {replication_factor} exceeds brokers {brokers}"
                    );
                    return refuse(span, message);
                }
                let min_insync_replicas = positive(
                    "cluster.min_insync_replicas",
                    &cluster.min_insync_replicas,
                    replication_factor.min(2),
                )?;
                if min_insync_replicas > replication_factor {
                    let span = cluster.min_insync_replicas.as_ref().map(Spanned::span);
                    let message = format!(
                        "cluster.min_insync_replicas: {min_insync_replicas} exceeds replication_factor {replication_factor}"
                    );
                    return refuse(span, message);
                }
                let flush = match cluster.flush.as_ref().map(|f| *f.get_ref()) {
                    None | Some(FlushFile::Named(FlushName::EveryBatch)) => {
                        FlushPolicy::EveryAppend
                    }
                    Some(FlushFile::Named(FlushName::Never)) => FlushPolicy::Never,
                    Some(FlushFile::Interval { every_ms: 0 }) => {
                        let span = cluster.flush.as_ref().map(Spanned::span);
                        return refuse(span, "cluster.flush.every_ms: must be above zero".into());
                    }
                    Some(FlushFile::Interval { every_ms }) => {
                        FlushPolicy::Interval { every_ns: every_ms * NS_PER_MS }
                    }
                };
                let replica_fetch_wait_ns =
                    cluster.replica_fetch_wait.as_ref().map_or(0, |d| d.get_ref().0);
                if replica_fetch_wait_ns >= REPLICA_FETCH_WAIT_NS_LIMIT {
                    let span = cluster.replica_fetch_wait.as_ref().map(Spanned::span);
                    let message = format!(
                        "cluster.replica_fetch_wait: {} must be below {} (a follower gives up on a fetch after the request timeout)",
                        format_duration_short(replica_fetch_wait_ns),
                        format_duration_short(REPLICA_FETCH_WAIT_NS_LIMIT)
                    );
                    return refuse(span, message);
                }
                let segment_kib =
                    cluster.segment_kib.as_ref().map_or(SEGMENT_KIB_DEFAULT, |kib| *kib.get_ref());
                if !(SEGMENT_KIB_MIN..=SEGMENT_KIB_MAX).contains(&segment_kib) {
                    let span = cluster.segment_kib.as_ref().map(Spanned::span);
                    let message = format!(
                        "cluster.segment_kib: {segment_kib} is not between {SEGMENT_KIB_MIN} and {SEGMENT_KIB_MAX}"
                    );
                    return refuse(span, message);
                }
                let within = |name: &str,
                              value: &Option<Spanned<Dur>>,
                              default_ns: u64,
                              range: std::ops::RangeInclusive<u64>|
                 -> Result<u64, ScenarioError> {
                    let ns = value.as_ref().map_or(default_ns, |d| d.get_ref().0);
                    if range.contains(&ns) {
                        return Ok(ns);
                    }
                    let span = value.as_ref().map(Spanned::span);
                    let message = format!(
                        "cluster.{name}: {} is not between {} and {}",
                        format_duration_short(ns),
                        format_duration_short(*range.start()),
                        format_duration_short(*range.end())
                    );
                    Err(self.error(span, message))
                };
                let replica_lag_max_ns = within(
                    "replica_lag_max",
                    &cluster.replica_lag_max,
                    crate::cluster::REPLICA_LAG_MAX_NS_DEFAULT,
                    REPLICA_LAG_NS_RANGE,
                )?;
                let session_timeout_ns = within(
                    "session_timeout",
                    &cluster.session_timeout,
                    crate::cluster::SESSION_TIMEOUT_NS_DEFAULT,
                    SESSION_TIMEOUT_NS_RANGE,
                )?;
                let spec = ClusterSpec {
                    replica_lag_max_ns,
                    session_timeout_ns,
                    brokers,
                    partitions,
                    replication_factor,
                    min_insync_replicas,
                    verify_on_open: cluster.verify_on_open.unwrap_or(true),
                    segment_bytes_max: segment_kib * 1024,
                    // Set once the network and the faults are known (below).
                    requests_may_repeat: false,
                    acks: match cluster.acks.unwrap_or(AcksFile::All) {
                        AcksFile::Zero => Acks::None,
                        AcksFile::One => Acks::Leader,
                        AcksFile::All => Acks::All,
                    },
                    unclean_leader_election: cluster.unclean_leader_election.unwrap_or(false),
                    flush,
                    replica_fetch_wait_ns,
                    truncation: match cluster.truncation.unwrap_or(TruncationFile::LeaderEpoch) {
                        TruncationFile::LeaderEpoch => TruncationRule::LeaderEpoch,
                        TruncationFile::Kip101 => TruncationRule::Kip101,
                        TruncationFile::HighWatermark => TruncationRule::HighWatermark,
                    },
                    election: match cluster.election.unwrap_or(ElectionFile::Kip966) {
                        ElectionFile::Kip966 => ElectionRule::Kip966,
                        ElectionFile::PreKip966 => ElectionRule::PreKip966,
                    },
                    idempotent: workload.idempotent.unwrap_or(true),
                    producers: positive("workload.producers", &workload.producers, 1)?,
                    consumers: workload.consumers.as_ref().map_or(1, |c| *c.get_ref()),
                    es: self.event_store(file)?,
                    txn: None,
                };
                let txn =
                    self.transactions(file, spec.partitions, (spec.producers, spec.consumers))?;
                let spec = ClusterSpec { txn, ..spec };
                let nodes = spec.nodes();
                if nodes > NODES_MAX {
                    return refuse(
                        None,
                        format!("cluster: {nodes} nodes in all exceed {NODES_MAX}"),
                    );
                }
                let mut targets = spec.servers();
                if spec.es.is_some() {
                    // Event-store projections crash too: their checkpoints must survive it.
                    targets.extend((0..spec.consumers).map(|index| spec.consumer(index)));
                }
                if let (Some(txn), None) = (&spec.txn, &spec.es) {
                    // Transactional producers and processors crash and come back (their
                    // late messages are zombies'), and their links clog (a late produce
                    // or commit). Event-store clients keep what they decided in memory
                    // and are not crashed.
                    targets.extend((0..spec.producers).map(|index| spec.producer(index)));
                    targets.extend((0..txn.processors).map(|index| spec.processor(index)));
                }
                targets.sort_unstable();
                Ok((System::LogCluster(spec), nodes, targets))
            }
        }
    }

    fn scripted(
        &self,
        entry: &Spanned<ScriptedFile>,
        nodes: u32,
        servers: &[NodeId],
        leaders: Option<(NodeId, u32)>,
    ) -> Result<Vec<TimedFault>, ScenarioError> {
        let scripted = entry.get_ref();
        let kind = scripted.kind;
        let untargeted = match kind {
            ScriptedKind::Heal => Some("it heals the whole network"),
            ScriptedKind::HealAll => Some("it heals everything"),
            ScriptedKind::PowerLoss => Some("it crashes every server"),
            ScriptedKind::Split => Some("it names one side in `nodes`"),
            ScriptedKind::OneWay
            | ScriptedKind::Cut
            | ScriptedKind::Clog
            | ScriptedKind::Burst
            | ScriptedKind::LossyLink => Some("it names its links' ends in `from` and `to`"),
            ScriptedKind::NetworkFaults => Some("it strikes every link"),
            ScriptedKind::LeaderMove => Some("the controller moves the leadership"),
            ScriptedKind::Crash
            | ScriptedKind::Restart
            | ScriptedKind::Pause
            | ScriptedKind::Resume
            | ScriptedKind::Isolate
            | ScriptedKind::ClockJump
            | ScriptedKind::Disk => None,
        };
        if let (Some(what), Some(target)) = (untargeted, &scripted.target) {
            let message = format!(
                "faults.at.target: `{}` takes no target ({what}), yet names `{}`",
                kind.name(),
                target.get_ref()
            );
            return Err(self.error(Some(target.span()), message));
        }
        let given: [(&str, bool); 11] = [
            ("partition", scripted.partition.is_some()),
            ("duration", scripted.duration.is_some()),
            ("nodes", scripted.nodes.is_some()),
            ("from", scripted.from.is_some()),
            ("to", scripted.to.is_some()),
            ("disk", scripted.disk.is_some()),
            ("field", scripted.field.is_some()),
            ("file", scripted.file.is_some()),
            ("free_bytes", scripted.free_bytes.is_some()),
            ("probability", scripted.probability.is_some()),
            ("duplicate", scripted.duplicate.is_some()),
        ];
        if let Some((field, _)) =
            given.iter().find(|(field, set)| *set && !kind.fields().contains(field))
        {
            let takes = match kind.fields() {
                [] => "none".to_owned(),
                fields => fields.join(", "),
            };
            return Err(self.error(
                Some(entry.span()),
                format!(
                    "faults.at.{field}: `{}` takes no `{field}` (it takes: {takes})",
                    kind.name()
                ),
            ));
        }
        let need = |field: &str| -> ScenarioError {
            self.error(Some(entry.span()), format!("faults.at: `{}` needs `{field}`", kind.name()))
        };
        let parse_node = |field: &str, text: &str, span: Range<usize>| {
            let node = text
                .strip_prefix('n')
                .and_then(|digits| digits.parse::<u32>().ok())
                .ok_or_else(|| {
                    self.error(
                        Some(span.clone()),
                        format!(
                            "faults.at.{field}: `{text}` is not a node (write \"n0\", \"n1\", ...)"
                        ),
                    )
                })?;
            if node >= nodes {
                let message = format!(
                    "faults.at.{field}: node n{node} does not exist (the cluster has {nodes} nodes)"
                );
                return Err(self.error(Some(span), message));
            }
            Ok(NodeId(node))
        };
        let node = || -> Result<NodeId, ScenarioError> {
            let Some(target) = &scripted.target else {
                return Err(self.error(
                    Some(entry.span()),
                    "faults.at: this kind needs a target (\"n0\", \"n1\", ...)".into(),
                ));
            };
            parse_node("target", target.get_ref(), target.span())
        };
        let list = |field: &str, value: &Option<Spanned<NodeList>>| {
            let value = value.as_ref().ok_or_else(|| need(field))?;
            let names = value.get_ref().names();
            if names.is_empty() {
                let message = format!("faults.at.{field}: name at least one node");
                return Err(self.error(Some(value.span()), message));
            }
            names
                .into_iter()
                .map(|name| parse_node(field, name, value.span()))
                .collect::<Result<Vec<NodeId>, ScenarioError>>()
        };
        let one = |field: &str, value: &Option<Spanned<NodeList>>| {
            let found = list(field, value)?;
            match found[..] {
                [node] => Ok(node),
                _ => {
                    let span = value.as_ref().map(Spanned::span);
                    Err(self.error(span, format!("faults.at.{field}: name exactly one node")))
                }
            }
        };
        let duration = || scripted.duration.map(|Dur(ns)| ns).ok_or_else(|| need("duration"));
        let probability = |field: &str, value: &Option<Spanned<f64>>| match value {
            Some(value) => self.probability(&format!("faults.at.{field}"), value),
            None => Err(need(field)),
        };
        let fault = match kind {
            ScriptedKind::Crash => Fault::Crash { node: node()? },
            ScriptedKind::Restart => Fault::Restart { node: node()? },
            ScriptedKind::Pause => Fault::Pause { node: node()? },
            ScriptedKind::Resume => Fault::Resume { node: node()? },
            ScriptedKind::Isolate => Fault::Partition(Partition::Isolate { node: node()? }),
            ScriptedKind::ClockJump => Fault::ClockJump { node: node()?, forward_ns: duration()? },
            ScriptedKind::Heal => Fault::HealNetwork,
            ScriptedKind::HealAll => Fault::HealAll,
            ScriptedKind::PowerLoss => {
                let at_ns = scripted.time.0;
                return Ok(servers
                    .iter()
                    .map(|&node| TimedFault { at_ns, fault: Fault::Crash { node } })
                    .collect());
            }
            ScriptedKind::Split => {
                let given = scripted.nodes.as_ref().ok_or_else(|| need("nodes"))?;
                let left = given
                    .get_ref()
                    .iter()
                    .map(|name| parse_node("nodes", name.get_ref(), name.span()))
                    .collect::<Result<Vec<NodeId>, ScenarioError>>()?;
                if left.is_empty() || left.len() as u32 >= nodes {
                    let message = "faults.at.nodes: a split needs nodes on both sides".to_owned();
                    return Err(self.error(Some(given.span()), message));
                }
                Fault::Partition(Partition::Split { left })
            }
            ScriptedKind::OneWay => Fault::Partition(Partition::OneWay {
                from: list("from", &scripted.from)?,
                to: list("to", &scripted.to)?,
            }),
            ScriptedKind::Cut => Fault::Partition(Partition::Symmetric {
                a: list("from", &scripted.from)?,
                b: list("to", &scripted.to)?,
            }),
            ScriptedKind::Clog => Fault::Clog {
                from: one("from", &scripted.from)?,
                to: one("to", &scripted.to)?,
                duration_ns: duration()?,
            },
            ScriptedKind::Burst | ScriptedKind::LossyLink => Fault::LinkLoss {
                from: one("from", &scripted.from)?,
                to: one("to", &scripted.to)?,
                drop_probability: match kind {
                    ScriptedKind::Burst => 1.0,
                    _ => probability("probability", &scripted.probability)?,
                },
                duration_ns: duration()?,
            },
            ScriptedKind::Disk => {
                let disk = scripted.disk.as_ref().ok_or_else(|| need("disk"))?;
                let kind = *disk.get_ref();
                let wrong = match (kind, &scripted.field, &scripted.file, &scripted.free_bytes) {
                    (DiskFaultKind::BatchHeader, _, None, None)
                    | (DiskFaultKind::Checkpoint, None, _, None)
                    | (DiskFaultKind::OutOfSpace, None, None, _)
                    | (_, None, None, None) => None,
                    (_, Some(_), _, _) => Some("field"),
                    (_, _, Some(_), _) => Some("file"),
                    (_, _, _, Some(_)) => Some("free_bytes"),
                };
                if let Some(field) = wrong {
                    let message = format!(
                        "faults.at.{field}: disk fault `{}` takes no `{field}`",
                        disk_kind_name(kind)
                    );
                    return Err(self.error(Some(disk.span()), message));
                }
                let mut rng = crate::stream(scripted.time.0, crate::StreamId::Nemesis);
                let disk_fault = match (kind, scripted.field, scripted.file, scripted.free_bytes) {
                    (DiskFaultKind::BatchHeader, Some(field), _, _) => {
                        DiskFault::BatchHeader { field }
                    }
                    (DiskFaultKind::Checkpoint, _, Some(file), _) => DiskFault::Checkpoint { file },
                    (DiskFaultKind::OutOfSpace, _, _, free_bytes) => {
                        DiskFault::OutOfSpace { free_bytes: free_bytes.unwrap_or(0) }
                    }
                    // A field or file left open is drawn, from a stream of the fault's
                    // own time: the scenario, not the seed, decides it.
                    (kind, _, _, _) => kind.draw(&mut rng),
                };
                Fault::Disk { node: node()?, disk_fault }
            }
            ScriptedKind::LeaderMove => {
                let partition = scripted.partition.as_ref().ok_or_else(|| need("partition"))?;
                let Some((controller, partitions)) = leaders else {
                    let message = "faults.at: `leader-move`: only a log cluster has leaders";
                    return Err(self.error(Some(entry.span()), message.to_owned()));
                };
                if *partition.get_ref() >= partitions {
                    let message = format!(
                        "faults.at.partition: partition {} does not exist (there are {partitions})",
                        partition.get_ref()
                    );
                    return Err(self.error(Some(partition.span()), message));
                }
                Fault::Operator { node: controller, action: u64::from(*partition.get_ref()) }
            }
            ScriptedKind::NetworkFaults => Fault::NetworkFaults {
                drop_probability: probability("probability", &scripted.probability)?,
                duplicate_probability: match &scripted.duplicate {
                    Some(value) => self.probability("faults.at.duplicate", value)?,
                    None => 0.0,
                },
            },
        };
        fault
            .validate(nodes)
            .map_err(|error| self.error(Some(entry.span()), format!("faults.at: {error}")))?;
        Ok(vec![TimedFault { at_ns: scripted.time.0, fault }])
    }

    fn expect(
        &self,
        expect: &Spanned<ExpectFile>,
        system: &System,
    ) -> Result<Expect, ScenarioError> {
        let known = invariants(system);
        let span = Some(expect.span());
        match expect.get_ref() {
            ExpectFile { all_hold: Some(true), violation: None, within_seeds: None } => Ok(Expect::AllHold),
            ExpectFile { all_hold: None | Some(false), violation: Some(invariant), within_seeds } => {
                if !known.contains(&invariant.as_str()) {
                    let message = format!("expect.violation: unknown invariant `{invariant}` (known: {})", known.join(", "));
                    return Err(self.error(span, message));
                }
                Ok(Expect::Violation { invariant: invariant.clone(), within_seeds: within_seeds.unwrap_or(100).max(1) })
            }
            _ => Err(self.error(span, "expect: say either `all_hold = true` or `violation = \"<invariant>\"` (with an optional `within_seeds`)".into())),
        }
    }
}
