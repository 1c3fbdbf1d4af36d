//! The HTML timeline of one run: one self-contained file (inline CSS and SVG, no
//! script, no fonts, no network) that shows what every node did over simulated time.
//!
//! - a lane per node, labelled by its role (`broker n0`, `controller n3`, ...);
//! - crashes (crash to the next start), pauses (pause to resume), partitions and clogs
//!   as shaded bands on the lanes they strike;
//! - messages as lines from the sender's lane at the send to the receiver's lane at the
//!   delivery (matched by message id), drops ending in a red cross;
//! - client operations as bars on their process's lane, from invocation to completion,
//!   coloured by outcome (ok, fail, info, still pending);
//! - each broker's leaderships and followerships per partition, with their epochs, from
//!   the history's protocol events;
//! - the anomaly's witness (the first failing check, else the first anomaly the
//!   configuration allows): its time span and its operations highlighted, drawn a second
//!   time zoomed in, next to the table of every invariant.
//!
//! Large runs stay drawable: a panel draws message lines one by one only when at most
//! [`MESSAGE_LINES_MAX`] messages, and no more than one per pixel, fall in its window;
//! else each lane gets a histogram of its message traffic (drops still marked one by one
//! up to [`DROP_MARKS_MAX`]), and the witness panel draws every message only in the
//! widest stretch around the evidence where they fit. Operation bars are drawn one by
//! one up to [`OP_BARS_MAX`], else binned per lane, a bin coloured by its worst outcome.
//! Everything else drawn is bounded by the schedule's faults and the protocol's
//! elections, so the file's size does not grow with the trace.
//!
//! The output is a pure function of its inputs: no clock, no hash-map iteration, fixed
//! number formatting; the same run gives the same bytes.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use logjam_model as model;
use logjam_sim::run::{Check, DRAIN_NS, RunResult, RunVerdict, Schedule};
use logjam_sim::scenario::{Scenario, System};
use logjam_sim::time::format_ns;
use logjam_sim::{DropReason, Fault, NodeId, Partition, TraceEntry, TraceEvent};

/// A panel draws message lines one by one up to this many messages in its window; above
/// it, per-lane histograms.
pub const MESSAGE_LINES_MAX: usize = 2_500;

/// A panel draws operation bars one by one up to this many operations in its window;
/// above it, binned per lane.
pub const OP_BARS_MAX: usize = 2_000;

/// The narrowest stretch of the witness panel drawn with every message line (px).
const LINE_CORE_PX_MIN: f64 = 120.0;

/// Where messages are drawn as histograms, up to this many drops are still marked one
/// by one; above it, they get a histogram of their own.
pub const DROP_MARKS_MAX: usize = 1_000;

/// Width of the label column, and of a panel's plot (px).
const LABEL_W: f64 = 150.0;
const PLOT_W: f64 = 930.0;
/// Right margin after a plot.
const MARGIN_R: f64 = 16.0;
/// Height of the time axis above the lanes.
const AXIS_H: f64 = 30.0;
/// The "network" row on top of the lanes: partitions and drop/duplicate settings.
const NET_H: f64 = 16.0;
/// Width of one histogram bin (messages, binned operations), px.
const BIN_PX: f64 = 3.0;
/// At most this many partitions get a strip of their own on a broker's lane.
const STRIPS_MAX: u32 = 8;
const STRIP_H: f64 = 11.0;
/// Height of an operation bar, and of the density row at the bottom of a lane.
const OP_H: f64 = 12.0;
const DENSITY_H: f64 = 8.0;

macro_rules! w {
    ($($arg:tt)*) => {
        let _ = write!($($arg)*);
    };
}

/// The timeline of one run as a self-contained HTML document. `trace` is the kept trace
/// (run with a `trace_kept_max` that covers the whole run to see all of it; a window
/// that starts late is said so), `history` the recorded history of a log cluster, and
/// `replay_command` the command that replays the run, shown in the header.
pub fn timeline(
    scenario: &Scenario,
    schedule: &Schedule,
    run: &RunResult,
    trace: &[TraceEntry],
    history: Option<&model::History>,
    replay_command: &str,
) -> String {
    let data = Data::build(scenario, schedule, run, trace, history);
    let mut out = String::with_capacity(256 * 1024);
    w!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>logjam timeline: {} seed {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&scenario.name),
        run.seed
    );
    header(&mut out, scenario, run, &data, replay_command);
    legend(&mut out);

    // Left: the witness zoomed in, then the whole run; right: the invariants.
    let overview = Window { t0: 0, t1: data.end_ns, width: PLOT_W, id: "o" };
    w!(
        out,
        "<section class=\"witness-area\">\n<div class=\"panel\" style=\"max-width:{:.0}px\">\n",
        LABEL_W + PLOT_W + MARGIN_R
    );
    if let Some(focus) = data.focus.as_ref().filter(|focus| focus.zoomed) {
        let (t0, t1) = focus.window;
        let detail = Window { t0, t1, width: PLOT_W, id: "d" };
        w!(
            out,
            "<h2 id=\"witness\">Witness: <span class=\"mark {}\">{}</span> {}",
            mark_class(focus.check),
            mark(focus.check),
            esc(focus.check.invariant)
        );
        if let Some(witness) = &focus.check.witness {
            w!(out, " &mdash; {}", esc(witness));
        }
        w!(
            out,
            "</h2>\n<p class=\"note\">Zoomed to {} &ndash; {}: the witness's time span \
             (yellow) and its operations (outlined), with the time around them. {}</p>\n",
            format_ns(t0),
            format_ns(t1),
            data.panel_note(&detail)
        );
        panel(&mut out, &data, &detail);
    }
    w!(out, "<h2>The whole run</h2>\n");
    w!(out, "<p class=\"note\">{}</p>\n", data.panel_note(&overview));
    panel(&mut out, &data, &overview);
    w!(out, "</div>\n");
    checks_table(&mut out, run, data.focus.as_ref());
    w!(out, "</section>\n");
    w!(
        out,
        "<footer>Rendered by logjam-reports from the run's trace, schedule and history. \
         Hover over a band, bar, line or marker for its details.</footer>\n</body>\n</html>\n"
    );
    out
}

const CSS: &str = "\
body{font:13px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:12px 16px;color:#1d1f24;background:#fff}\
h1{font-size:19px;margin:0 0 6px}h2{font-size:15px;margin:10px 0 4px}\
code,pre,.mono{font-family:ui-monospace,'SFMono-Regular',Menlo,Consolas,monospace;font-size:12px}\
table.meta td{padding:1px 10px 1px 0;vertical-align:top}table.meta td:first-child{color:#666;white-space:nowrap}\
.verdict-bad{color:#b00;font-weight:600}.verdict-seen{color:#8a5a00;font-weight:600}.verdict-ok{color:#176b2c;font-weight:600}\
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:8px 0;color:#333}.legend span{display:inline-flex;align-items:center;gap:4px}\
.witness-area{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}\
.panel{flex:1 1 auto;min-width:0}svg.timeline{max-width:100%;height:auto}.note{color:#555;margin:2px 0 6px;max-width:1150px}\
.checks{flex:1 1 400px;min-width:380px;max-width:620px;font-size:12px}.checks .inv{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:nowrap}.checks .checked{color:#666;font-size:11px}\
.checks table{border-collapse:collapse;width:100%}.checks td,.checks th{border-bottom:1px solid #e4e4e4;padding:2px 5px;vertical-align:top;text-align:left}\
.checks th{background:#f3f3f3;font-weight:600}.checks tr.focus td{background:#fff6c4}.checks tr.fail td{background:#ffe3e3}\
.mark{font-family:ui-monospace,Menlo,Consolas,monospace;font-weight:700;padding:0 3px;border-radius:3px}\
.mark.ok{color:#176b2c}.mark.seen{color:#fff;background:#c07800}.mark.fail{color:#fff;background:#c00}\
.witness-text{color:#333}details pre{white-space:pre-wrap;word-break:break-all;margin:2px 0;background:#f7f7f7;padding:3px;font-size:11px}\
footer{color:#777;margin-top:10px}\
svg{display:block;font:11px system-ui,sans-serif}\
svg .lbl{font-size:12px;fill:#222}svg .sub{font-size:10px;fill:#666}svg .tick{font-size:10px;fill:#555}\
svg .in{font-size:9px;fill:#fff;pointer-events:none}svg .ind{font-size:9px;fill:#333;pointer-events:none}\
svg .wl{font-size:11px;font-weight:700;fill:#a0006e}\
";

/// What a lane is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Broker,
    Controller,
    Producer,
    Consumer,
    Node,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Broker => "broker",
            Role::Controller => "controller",
            Role::Producer => "producer",
            Role::Consumer => "consumer",
            Role::Node => "node",
        }
    }
}

struct Lane {
    role: Role,
    /// Top of the lane, relative to the top of the lanes.
    y: f64,
    h: f64,
    /// Partition strips (brokers).
    strips: u32,
    /// Height of its operation bars and of its density row (smaller when there are
    /// many lanes).
    op_h: f64,
    density_h: f64,
}

impl Lane {
    fn mid(&self) -> f64 {
        self.y + self.h / 2.0
    }
    fn op_y(&self) -> f64 {
        self.y + (self.h - self.density_h - self.op_h) / 2.0
    }
    fn density_base(&self) -> f64 {
        self.y + self.h - 1.0
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum BandKind {
    Cut,
    Clog,
    Paused,
    Down,
}

struct Band {
    node: u32,
    start: u64,
    end: u64,
    kind: BandKind,
    note: String,
}

/// One copy of a message: sent, then delivered or dropped.
struct Msg {
    from: u32,
    to: u32,
    msg_id: u64,
    sent: u64,
    end: u64,
    drop: Option<DropReason>,
    /// The message in words, as the trace labelled it at its send (`Process::describe`).
    label: Option<Box<str>>,
}

/// What a message is about, by its label's type name: the timeline colours each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MsgKind {
    Produce,
    Fetch,
    Answer,
    Controller,
    Transaction,
    Other,
}

impl MsgKind {
    const ALL: [MsgKind; 6] = [
        MsgKind::Produce,
        MsgKind::Fetch,
        MsgKind::Answer,
        MsgKind::Controller,
        MsgKind::Transaction,
        MsgKind::Other,
    ];

    /// The kind of a message labelled `label` (`Fetch{p0 ...}`).
    fn of(label: Option<&str>) -> MsgKind {
        let Some(label) = label else { return MsgKind::Other };
        let name = label.split(['{', ' ', '(']).next().unwrap_or(label);
        if name.ends_with("Response") || name.ends_with("Ack") {
            return MsgKind::Answer;
        }
        match name {
            "Produce" => MsgKind::Produce,
            "Fetch" | "OffsetForLeaderEpoch" => MsgKind::Fetch,
            "Heartbeat" | "AlterIsr" | "Metadata" | "InitProducerId" => MsgKind::Controller,
            "InitTxn" | "AddPartitionsToTxn" | "EndTxn" | "VerifyTxn" | "WriteTxnMarker" => {
                MsgKind::Transaction
            }
            _ => MsgKind::Other,
        }
    }

    fn colour(self) -> &'static str {
        match self {
            MsgKind::Produce => "#2a9d3a",
            MsgKind::Fetch => "#3d6fc4",
            MsgKind::Answer => "#17a2b8",
            MsgKind::Controller => "#8e44ad",
            MsgKind::Transaction => "#b5651d",
            MsgKind::Other => "#777",
        }
    }

    fn name(self) -> &'static str {
        match self {
            MsgKind::Produce => "produce",
            MsgKind::Fetch => "fetch (replicas, consumers)",
            MsgKind::Answer => "answer",
            MsgKind::Controller => "controller (heartbeats, ISR, metadata)",
            MsgKind::Transaction => "transactions",
            MsgKind::Other => "other message",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    Pending,
    Info,
    Fail,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Pending => "pending",
            Outcome::Info => "info",
            Outcome::Fail => "fail",
        }
    }
    fn colour(self) -> &'static str {
        match self {
            Outcome::Ok => "#2e9e44",
            Outcome::Pending => "#8c8c8c",
            Outcome::Info => "#e69a00",
            Outcome::Fail => "#d62728",
        }
    }
}

struct OpBar {
    /// The operation's index in the history.
    op: usize,
    node: u32,
    start: u64,
    end: u64,
    outcome: Outcome,
    witness: bool,
}

/// A broker's role for one partition over a span of time.
struct Seg {
    node: u32,
    partition: u32,
    start: u64,
    end: u64,
    leader: bool,
    epoch: u64,
}

/// A point event worth a marker on a lane.
struct Marker {
    node: u32,
    at: u64,
    /// Partition strip it belongs on (brokers), if any.
    partition: Option<u32>,
    kind: MarkerKind,
    note: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MarkerKind {
    Truncate,
    ClockJump,
    Disk,
    WitnessProtocol,
}

/// The check whose witness is highlighted, and where its evidence is.
struct Focus<'a> {
    check: &'a Check,
    span: Option<(u64, u64)>,
    /// The zoomed window.
    window: (u64, u64),
    /// The evidence: the span and the witness's operations, first to last.
    evidence: (u64, u64),
    /// The evidence has times: the witness gets a panel of its own.
    zoomed: bool,
    /// The witness's operations: their nodes (clients), invocations and completions.
    op_spans: Vec<(u32, u64, u64)>,
    /// Nodes whose final log is part of the witness.
    replica_nodes: BTreeSet<u32>,
}

/// An interval of the network row: partitions and random drop/duplicate settings.
struct NetBand {
    start: u64,
    end: u64,
    kind: NetKind,
    note: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum NetKind {
    Partition,
    Lossy,
}

struct Data<'a> {
    end_ns: u64,
    chaos_ns: u64,
    quiet_end_ns: u64,
    drain_end_ns: Option<u64>,
    lanes: Vec<Lane>,
    lanes_h: f64,
    partitions: u32,
    bands: Vec<Band>,
    net: Vec<NetBand>,
    msgs: Vec<Msg>,
    ops: Vec<OpBar>,
    segs: Vec<Seg>,
    markers: Vec<Marker>,
    /// The trace, for the histograms.
    trace: &'a [TraceEntry],
    /// The kept trace starts late: events before it are not drawn.
    trace_from_ns: Option<u64>,
    history: Option<&'a model::History>,
    focus: Option<Focus<'a>>,
    limit_at: Option<u64>,
    /// The witness panel's `line_core`, computed once.
    line_core: OnceCell<Option<(u64, u64)>>,
}

/// The time window a panel shows and its plot width.
struct Window {
    t0: u64,
    t1: u64,
    width: f64,
    /// Prefix of the ids in its SVG.
    id: &'static str,
}

impl Window {
    fn x(&self, t: u64) -> f64 {
        let span = (self.t1 - self.t0).max(1) as f64;
        LABEL_W + (t as f64 - self.t0 as f64) * self.width / span
    }
    fn overlaps(&self, start: u64, end: u64) -> bool {
        end >= self.t0 && start <= self.t1
    }
    /// x of a time clamped to the window.
    fn cx(&self, t: u64) -> f64 {
        self.x(t.clamp(self.t0, self.t1))
    }
    fn bins(&self) -> usize {
        (self.width / BIN_PX).ceil() as usize
    }
    fn bin(&self, t: u64) -> Option<usize> {
        if t < self.t0 || t > self.t1 {
            return None;
        }
        let bin = ((self.x(t) - LABEL_W) / BIN_PX) as usize;
        Some(bin.min(self.bins() - 1))
    }
}

impl<'a> Data<'a> {
    fn build(
        scenario: &Scenario,
        schedule: &Schedule,
        run: &'a RunResult,
        trace: &'a [TraceEntry],
        history: Option<&'a model::History>,
    ) -> Data<'a> {
        let nodes = scenario.world.nodes;
        let spec = match &scenario.system {
            System::LogCluster(spec) => Some(spec),
            System::GossipCounter { .. } => None,
        };
        let partitions = spec.map_or(0, |spec| spec.partitions);
        let quiet_end_ns = schedule.chaos_ns + schedule.quiet_ns;
        let drain_end_ns = spec.map(|_| quiet_end_ns + DRAIN_NS);
        let trace_end = trace.last().map_or(0, |entry| entry.at_ns);
        let end_ns =
            run.simulated_ns.max(trace_end).max(quiet_end_ns).max(drain_end_ns.unwrap_or(0)).max(1);

        // Lanes.
        let compact = nodes > 32;
        let (client_h, op_h, density_h) =
            if compact { (16.0, 8.0, 5.0) } else { (26.0, OP_H, DENSITY_H) };
        let mut lanes = Vec::with_capacity(nodes as usize);
        let mut y = 0.0;
        for node in 0..nodes {
            let role = match spec {
                None => Role::Node,
                Some(spec) if node < spec.brokers => Role::Broker,
                Some(spec) if node == spec.brokers => Role::Controller,
                Some(spec) if node <= spec.brokers + spec.producers => Role::Producer,
                Some(_) => Role::Consumer,
            };
            let strips = if role == Role::Broker { partitions.min(STRIPS_MAX) } else { 0 };
            let h = if strips > 0 {
                (6.0 + f64::from(strips) * STRIP_H + DENSITY_H + 2.0).max(34.0)
            } else {
                client_h
            };
            let (op_h, density_h) = if strips > 0 { (OP_H, DENSITY_H) } else { (op_h, density_h) };
            lanes.push(Lane { role, y, h, strips, op_h, density_h });
            y += h;
        }
        let lanes_h = y;

        let trace_from_ns = match trace.first() {
            Some(first) if first.at_ns > 0 => Some(first.at_ns),
            _ => None,
        };

        // Crash and pause bands from the trace (or the schedule, when no trace was kept),
        // partitions and clogs from the schedule.
        let mut bands = Vec::new();
        let mut crashes: Vec<Vec<u64>> = vec![Vec::new(); nodes as usize];
        if trace.is_empty() {
            bands_from_schedule(schedule, nodes, end_ns, &mut bands, &mut crashes);
        } else {
            bands_from_trace(trace, nodes, end_ns, &mut bands, &mut crashes);
        }
        let mut net = Vec::new();
        network_from_schedule(schedule, nodes, &mut bands, &mut net);

        // Messages, markers and the limit from the trace.
        let mut msgs = Vec::new();
        let mut sends: BTreeMap<u64, (u64, u32, u32, Option<&str>)> = BTreeMap::new();
        let mut markers = Vec::new();
        let mut limit_at = None;
        for entry in trace {
            let at = entry.at_ns;
            match &entry.event {
                TraceEvent::Send { from, to, msg_id, .. } => {
                    sends.insert(*msg_id, (at, from.0, to.0, entry.label.as_deref()));
                }
                TraceEvent::Deliver { msg_id, .. } => {
                    if let Some(&(sent, from, to, label)) = sends.get(msg_id) {
                        let (msg_id, label) = (*msg_id, label.map(Box::from));
                        msgs.push(Msg { from, to, msg_id, sent, end: at, drop: None, label });
                    }
                }
                TraceEvent::Drop { msg_id, reason, .. } => {
                    if let Some(&(sent, from, to, label)) = sends.get(msg_id) {
                        let (msg_id, drop, label) = (*msg_id, Some(*reason), label.map(Box::from));
                        msgs.push(Msg { from, to, msg_id, sent, end: at, drop, label });
                    }
                }
                TraceEvent::ClockJump { node, forward_ns } => markers.push(Marker {
                    node: node.0,
                    at,
                    partition: None,
                    kind: MarkerKind::ClockJump,
                    note: format!("{node} clock jumps forward {}", duration(*forward_ns)),
                }),
                TraceEvent::DiskFault { node, fault_tag, detail } => markers.push(Marker {
                    node: node.0,
                    at,
                    partition: None,
                    kind: MarkerKind::Disk,
                    note: format!("{node} disk fault #{fault_tag} ({detail:#x})"),
                }),
                TraceEvent::DiskCrash { node, damage } => {
                    let lost = damage.writes_lost + damage.writes_torn + damage.name_changes_lost;
                    if lost > 0 {
                        markers.push(Marker {
                            node: node.0,
                            at,
                            partition: None,
                            kind: MarkerKind::Disk,
                            note: entry.event.to_string(),
                        });
                    }
                }
                TraceEvent::SyncDone { node, ok: false, .. } => markers.push(Marker {
                    node: node.0,
                    at,
                    partition: None,
                    kind: MarkerKind::Disk,
                    note: entry.event.to_string(),
                }),
                TraceEvent::LimitReached { .. } => limit_at = Some(at),
                _ => {}
            }
        }
        drop(sends);

        // The highlighted check: the first failing one, else the anomaly the scenario
        // exists to find, else the first allowed anomaly.
        let known = scenario.expect.known_anomaly();
        let check = run
            .checks
            .iter()
            .find(|check| !check.holds)
            .or_else(|| {
                run.checks.iter().find(|c| c.expected_anomaly && Some(c.invariant) == known)
            })
            .or_else(|| run.checks.iter().find(|check| check.expected_anomaly));
        let mut witness_ops = BTreeSet::new();
        let mut witness_protocol = BTreeSet::new();
        let mut replica_nodes = BTreeSet::new();
        if let (Some(check), Some(history)) = (check, history) {
            let events = history.events().len() as u64;
            for line in &check.witness_lines {
                let Some(number) = witness_line_number(line) else { continue };
                let Some(index) = number.checked_sub(2) else { continue };
                if index < events {
                    witness_ops.insert(history.op_of_event(index as usize));
                } else {
                    match history.closing().get((index - events) as usize) {
                        Some(model::Closing::Protocol(_)) => {
                            witness_protocol.insert((index - events) as usize);
                        }
                        Some(model::Closing::Replica(replica)) => {
                            replica_nodes.insert(replica.node);
                        }
                        None => {}
                    }
                }
            }
        }

        // Operations.
        let mut ops = Vec::new();
        if let Some(history) = history {
            ops.reserve(history.ops().len());
            for op in 0..history.ops().len() {
                let invoke = history.invoke_of(op);
                let Ok(node) = u32::try_from(invoke.process) else { continue };
                if node >= nodes {
                    continue;
                }
                let (end, outcome) = match history.completion_of(op) {
                    Some(done) => (
                        done.t_ns,
                        match done.kind {
                            model::EventType::Ok | model::EventType::Invoke => Outcome::Ok,
                            model::EventType::Fail => Outcome::Fail,
                            model::EventType::Info => Outcome::Info,
                        },
                    ),
                    None => (end_ns, Outcome::Pending),
                };
                let witness = witness_ops.contains(&op);
                ops.push(OpBar { op, node, start: invoke.t_ns, end, outcome, witness });
            }
        }

        // Leaderships and followerships from the protocol events; a crash or a restart
        // ends every role of the node.
        let mut segs = Vec::new();
        if let Some(history) = history {
            let mut open: BTreeMap<(u32, u32), (u64, bool, u64)> = BTreeMap::new();
            let close = |open: &mut BTreeMap<(u32, u32), (u64, bool, u64)>,
                         segs: &mut Vec<Seg>,
                         key: (u32, u32),
                         at: u64| {
                if let Some((start, leader, epoch)) = open.remove(&key) {
                    let crash = crashes
                        .get(key.0 as usize)
                        .and_then(|times| times.iter().find(|&&t| t >= start))
                        .copied()
                        .unwrap_or(u64::MAX);
                    let end = at.min(crash);
                    segs.push(Seg { node: key.0, partition: key.1, start, end, leader, epoch });
                }
            };
            for (index, line) in history.closing().iter().enumerate() {
                let model::Closing::Protocol(protocol) = line else { continue };
                let (node, at) = (protocol.node, protocol.t_ns);
                match protocol.event {
                    model::ProtocolEvent::Leader { partition, epoch } => {
                        close(&mut open, &mut segs, (node, partition), at);
                        open.insert((node, partition), (at, true, epoch));
                    }
                    model::ProtocolEvent::Follower { partition, epoch } => {
                        close(&mut open, &mut segs, (node, partition), at);
                        open.insert((node, partition), (at, false, epoch));
                    }
                    model::ProtocolEvent::Restart => {
                        let keys: Vec<(u32, u32)> =
                            open.range((node, 0)..=(node, u32::MAX)).map(|(k, _)| *k).collect();
                        for key in keys {
                            close(&mut open, &mut segs, key, at);
                        }
                    }
                    model::ProtocolEvent::Truncate { partition, offset } => {
                        markers.push(Marker {
                            node,
                            at,
                            partition: Some(partition),
                            kind: MarkerKind::Truncate,
                            note: format!(
                                "n{node} truncates partition {partition} at offset {offset} ({})",
                                format_ns(at)
                            ),
                        });
                    }
                    model::ProtocolEvent::HighWatermark { .. }
                    | model::ProtocolEvent::Recover { .. } => {}
                }
                if witness_protocol.contains(&index) {
                    markers.push(Marker {
                        node,
                        at,
                        partition: protocol.event.partition(),
                        kind: MarkerKind::WitnessProtocol,
                        note: format!("witness: {}", model::protocol_json(protocol)),
                    });
                }
            }
            let keys: Vec<(u32, u32)> = open.keys().copied().collect();
            for key in keys {
                close(&mut open, &mut segs, key, end_ns);
            }
            segs.sort_by_key(|seg| (seg.node, seg.partition, seg.start));
        }

        let focus = check.map(|check| {
            let span = check.witness_span_ns;
            let mut lo = span.map(|(first, _)| first);
            let mut hi = span.map(|(_, last)| last);
            for bar in ops.iter().filter(|bar| bar.witness) {
                lo = Some(lo.map_or(bar.start, |lo| lo.min(bar.start)));
                hi = Some(hi.map_or(bar.end, |hi| hi.max(bar.end)));
            }
            let (window, evidence, zoomed) = match (lo, hi) {
                (Some(lo), Some(hi)) => {
                    // The evidence and what led to it and followed it: at least a tenth of
                    // the run on each side (crashes and elections sit around a loss).
                    let pad = (hi - lo).max(end_ns / 10).max(20_000_000);
                    ((lo.saturating_sub(pad), (hi + pad).min(end_ns)), (lo, hi), true)
                }
                _ => ((0, end_ns), (0, end_ns), false),
            };
            let op_spans = ops
                .iter()
                .filter(|bar| bar.witness)
                .map(|bar| (bar.node, bar.start, bar.end))
                .collect();
            Focus { check, span, window, evidence, zoomed, op_spans, replica_nodes }
        });

        Data {
            end_ns,
            chaos_ns: schedule.chaos_ns,
            quiet_end_ns,
            drain_end_ns,
            lanes,
            lanes_h,
            partitions,
            bands,
            net,
            msgs,
            ops,
            segs,
            markers,
            trace,
            trace_from_ns,
            history,
            focus,
            limit_at,
            line_core: OnceCell::new(),
        }
    }

    fn messages_in(&self, window: &Window) -> usize {
        self.msgs.iter().filter(|msg| window.overlaps(msg.sent, msg.end)).count()
    }

    /// Where a witness panel too busy for every message line still draws them: the
    /// widest time around the evidence (halving from the whole panel) whose messages fit
    /// (at most [`MESSAGE_LINES_MAX`], and one per pixel of its width), if it is at least
    /// `LINE_CORE_PX_MIN` wide.
    fn line_core(&self, window: &Window) -> Option<(u64, u64)> {
        if window.id != "d" {
            return None;
        }
        *self.line_core.get_or_init(|| self.find_line_core(window))
    }

    fn find_line_core(&self, window: &Window) -> Option<(u64, u64)> {
        let (lo, hi) = self.focus.as_ref()?.evidence;
        let core = |pad: u64| (lo.saturating_sub(pad).max(window.t0), (hi + pad).min(window.t1));
        // Halve the padding until the lines fit; narrower than LINE_CORE_PX_MIN, lines
        // are a blot, not a picture.
        let mut pad = window.t1 - window.t0;
        while pad > 0 {
            let (a, b) = core(pad);
            let px = window.x(b) - window.x(a);
            if px < LINE_CORE_PX_MIN {
                return None;
            }
            let count = self.msgs.iter().filter(|msg| msg.end >= a && msg.sent <= b).count();
            if count <= MESSAGE_LINES_MAX && count as f64 <= px {
                return Some((a, b));
            }
            pad /= 2;
        }
        None
    }

    /// Whether a message is one of the witness's operations: to or from its client
    /// while the operation is in flight.
    fn of_witness_op(&self, msg: &Msg) -> bool {
        self.focus.as_ref().is_some_and(|focus| {
            focus.op_spans.iter().any(|&(node, start, end)| {
                (msg.from == node || msg.to == node) && msg.end >= start && msg.sent <= end
            })
        })
    }

    /// How many messages of the witness's operations a witness panel too busy for every
    /// message line draws one by one (none in the overview).
    fn witness_op_messages(&self, window: &Window) -> usize {
        if window.id != "d" {
            return 0;
        }
        self.msgs
            .iter()
            .filter(|msg| window.overlaps(msg.sent, msg.end) && self.of_witness_op(msg))
            .count()
    }

    /// Whether a panel draws its messages one by one: at most [`MESSAGE_LINES_MAX`], and
    /// no more than one per pixel of width on average (denser lines are a solid wall).
    fn message_lines_fit(&self, window: &Window) -> bool {
        let messages = self.messages_in(window);
        messages <= MESSAGE_LINES_MAX && messages as f64 <= window.width
    }

    fn ops_in(&self, window: &Window) -> usize {
        self.ops.iter().filter(|bar| window.overlaps(bar.start, bar.end)).count()
    }

    /// What a panel draws one by one and what it aggregates.
    fn panel_note(&self, window: &Window) -> String {
        let messages = self.messages_in(window);
        let mut note = if self.trace.is_empty() {
            "No trace was kept: messages are not drawn, crashes and pauses come from the schedule."
                .to_owned()
        } else if self.message_lines_fit(window) {
            format!("{messages} messages drawn one by one.")
        } else {
            let mut note = format!(
                "{messages} messages: too many to draw one by one (more than {MESSAGE_LINES_MAX}, or \
                 more than one per pixel), so each lane shows a histogram of the messages it sent \
                 and received (blue) per {} of time, and where messages to it were dropped (red).",
                duration(self.bin_ns(window))
            );
            if let Some((a, b)) = self.line_core(window) {
                w!(
                    note,
                    " Around the witness, {} &ndash; {} (blue bracket), every message is drawn.",
                    format_ns(a),
                    format_ns(b)
                );
            }
            let of_witness = self.witness_op_messages(window);
            if of_witness > 0 {
                w!(note, " The {of_witness} messages of the witness's operations are drawn too.");
            }
            note
        };
        let ops = self.ops_in(window);
        if ops > OP_BARS_MAX {
            w!(
                note,
                " {ops} client operations: binned per {} (more than {OP_BARS_MAX}); a bin takes \
                 the colour of its worst outcome.",
                duration(self.bin_ns(window))
            );
        } else if ops > 0 {
            w!(note, " {ops} client operations drawn one by one.");
        }
        if let Some(from) = self.trace_from_ns {
            w!(
                note,
                " The kept trace starts at {}: messages, crashes and pauses before it are not drawn.",
                format_ns(from)
            );
        }
        if self.partitions > STRIPS_MAX {
            w!(note, " Leader epochs shown for partitions 0..{STRIPS_MAX} only.");
        }
        note
    }

    fn bin_ns(&self, window: &Window) -> u64 {
        ((window.t1 - window.t0) as f64 * BIN_PX / window.width) as u64
    }
}

/// The number of a witness line (`line 12     {...}`).
fn witness_line_number(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("line ")?;
    let digits: &str = &rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())];
    digits.parse().ok()
}

fn bands_from_trace(
    trace: &[TraceEntry],
    nodes: u32,
    end_ns: u64,
    bands: &mut Vec<Band>,
    crashes: &mut [Vec<u64>],
) {
    let mut down: Vec<Option<u64>> = vec![None; nodes as usize];
    let mut paused: Vec<Option<u64>> = vec![None; nodes as usize];
    let band = |node: u32, start: u64, end: u64, kind: BandKind| {
        let note = match kind {
            BandKind::Down => format!(
                "n{node} down (crashed) {} – {}",
                format_ns(start),
                if end == end_ns { "end".to_owned() } else { format_ns(end) }
            ),
            _ => format!("n{node} paused {} – {}", format_ns(start), format_ns(end)),
        };
        Band { node, start, end, kind, note }
    };
    for entry in trace {
        let at = entry.at_ns;
        match &entry.event {
            TraceEvent::Crash { node } => {
                let n = node.index();
                if n < down.len() {
                    if let Some(since) = paused[n].take() {
                        bands.push(band(node.0, since, at, BandKind::Paused));
                    }
                    down[n].get_or_insert(at);
                    crashes[n].push(at);
                }
            }
            TraceEvent::Start { node } => {
                if let Some(since) = down.get_mut(node.index()).and_then(Option::take) {
                    bands.push(band(node.0, since, at, BandKind::Down));
                }
            }
            TraceEvent::Pause { node } => {
                if let Some(slot) = paused.get_mut(node.index()) {
                    slot.get_or_insert(at);
                }
            }
            TraceEvent::Resume { node } => {
                if let Some(since) = paused.get_mut(node.index()).and_then(Option::take) {
                    bands.push(band(node.0, since, at, BandKind::Paused));
                }
            }
            _ => {}
        }
    }
    for (n, since) in down.into_iter().enumerate() {
        if let Some(since) = since {
            bands.push(band(n as u32, since, end_ns, BandKind::Down));
        }
    }
    for (n, since) in paused.into_iter().enumerate() {
        if let Some(since) = since {
            bands.push(band(n as u32, since, end_ns, BandKind::Paused));
        }
    }
}

/// Crashes and pauses as the schedule asks for them (when no trace was kept).
fn bands_from_schedule(
    schedule: &Schedule,
    nodes: u32,
    end_ns: u64,
    bands: &mut Vec<Band>,
    crashes: &mut [Vec<u64>],
) {
    let mut trace = Vec::new();
    for timed in &schedule.faults {
        let at = timed.at_ns;
        match &timed.fault {
            Fault::Crash { node } => trace.push(TraceEntry {
                at_ns: at,
                event: TraceEvent::Crash { node: *node },
                label: None,
            }),
            Fault::Restart { node } => trace.push(TraceEntry {
                at_ns: at,
                event: TraceEvent::Start { node: *node },
                label: None,
            }),
            Fault::Pause { node } => trace.push(TraceEntry {
                at_ns: at,
                event: TraceEvent::Pause { node: *node },
                label: None,
            }),
            Fault::Resume { node } => trace.push(TraceEntry {
                at_ns: at,
                event: TraceEvent::Resume { node: *node },
                label: None,
            }),
            Fault::HealAll => {
                for n in 0..nodes {
                    trace.push(TraceEntry {
                        at_ns: at,
                        event: TraceEvent::Resume { node: NodeId(n) },
                        label: None,
                    });
                    trace.push(TraceEntry {
                        at_ns: at,
                        event: TraceEvent::Start { node: NodeId(n) },
                        label: None,
                    });
                }
            }
            _ => {}
        }
    }
    bands_from_trace(&trace, nodes, end_ns, bands, crashes);
}

fn node_list(nodes: &[NodeId]) -> String {
    let names: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    names.join(",")
}

/// Partitions and clogs from the schedule: a partition lasts until the next partition
/// or heal; a clog for its duration or until a heal.
fn network_from_schedule(
    schedule: &Schedule,
    nodes: u32,
    bands: &mut Vec<Band>,
    net: &mut Vec<NetBand>,
) {
    let faults = &schedule.faults;
    let heals_at = |from: usize, partition_too: bool| -> Option<u64> {
        faults[from + 1..]
            .iter()
            .find(|timed| match timed.fault {
                Fault::HealNetwork | Fault::HealAll => true,
                Fault::Partition(_) => partition_too,
                _ => false,
            })
            .map(|timed| timed.at_ns)
    };
    for (index, timed) in faults.iter().enumerate() {
        let at = timed.at_ns;
        match &timed.fault {
            Fault::Partition(partition) => {
                let end = heals_at(index, true).unwrap_or(schedule.chaos_ns).max(at);
                let mut struck: Vec<(u32, String)> = Vec::new();
                let shape = match partition {
                    Partition::Isolate { node } => {
                        struck.push((node.0, format!("{node} isolated")));
                        format!("{node} isolated")
                    }
                    Partition::Symmetric { a, b } => {
                        let (sa, sb) = (node_list(a), node_list(b));
                        for n in a {
                            struck.push((n.0, format!("{n} cut from {sb}")));
                        }
                        for n in b {
                            struck.push((n.0, format!("{n} cut from {sa}")));
                        }
                        format!("{sa} | {sb}")
                    }
                    Partition::OneWay { from, to } => {
                        let (sf, st) = (node_list(from), node_list(to));
                        for n in from {
                            struck.push((n.0, format!("{n}: nothing it sends to {st} arrives")));
                        }
                        for n in to {
                            struck.push((n.0, format!("{n}: hears nothing from {sf}")));
                        }
                        format!("{sf} -> {st} cut (one way)")
                    }
                    Partition::Split { left } => {
                        let sl = node_list(left);
                        for n in 0..nodes {
                            let side = if left.contains(&NodeId(n)) { "left" } else { "right" };
                            struck
                                .push((n, format!("n{n} on the {side} side of split {sl} | rest")));
                        }
                        format!("split {sl} | rest")
                    }
                };
                let when = format!("{} – {}", format_ns(at), format_ns(end));
                for (node, what) in struck {
                    if node < nodes {
                        bands.push(Band {
                            node,
                            start: at,
                            end,
                            kind: BandKind::Cut,
                            note: format!("partition: {what}, {when}"),
                        });
                    }
                }
                net.push(NetBand {
                    start: at,
                    end,
                    kind: NetKind::Partition,
                    note: format!("partition {shape}, {when}"),
                });
            }
            Fault::Clog { from, to, duration_ns } => {
                let end =
                    at.saturating_add(*duration_ns).min(heals_at(index, false).unwrap_or(u64::MAX));
                let when = format!("{} – {}", format_ns(at), format_ns(end));
                for (node, what) in [
                    (
                        from.0,
                        format!(
                            "clog {from}->{to}: {to} gets nothing from {from} until it ends, then all of it"
                        ),
                    ),
                    (to.0, format!("clog {from}->{to}: messages from {from} held")),
                ] {
                    if node < nodes {
                        bands.push(Band {
                            node,
                            start: at,
                            end,
                            kind: BandKind::Clog,
                            note: format!("{what}, {when}"),
                        });
                    }
                }
            }
            Fault::NetworkFaults { drop_probability, duplicate_probability } => {
                let end = faults[index + 1..]
                    .iter()
                    .find(|t| matches!(t.fault, Fault::NetworkFaults { .. } | Fault::HealAll))
                    .map_or(schedule.chaos_ns, |t| t.at_ns);
                if *drop_probability > 0.0 || *duplicate_probability > 0.0 {
                    net.push(NetBand {
                        start: at,
                        end,
                        kind: NetKind::Lossy,
                        note: format!(
                            "network drops {:.1}% and duplicates {:.1}% of messages, {} – {}",
                            drop_probability * 100.0,
                            duplicate_probability * 100.0,
                            format_ns(at),
                            format_ns(end)
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    bands.sort_by_key(|band| (band.kind, band.node, band.start));
}

/// A duration for people, at a precision that suits it.
fn duration(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        format!("{}.{:03} s", ns / 1_000_000_000, ns % 1_000_000_000 / 1_000_000)
    } else if ns >= 1_000_000 {
        format!("{}.{:01} ms", ns / 1_000_000, ns % 1_000_000 / 100_000)
    } else if ns >= 1_000 {
        format!("{} µs", ns / 1_000)
    } else {
        format!("{ns} ns")
    }
}

/// Escapes text for HTML (element content and attribute values).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn mark(check: &Check) -> &'static str {
    match (check.holds, check.expected_anomaly) {
        (false, _) => "FAIL",
        (true, true) => "seen",
        (true, false) => "ok",
    }
}

fn mark_class(check: &Check) -> &'static str {
    match (check.holds, check.expected_anomaly) {
        (false, _) => "fail",
        (true, true) => "seen",
        (true, false) => "ok",
    }
}

fn header(out: &mut String, scenario: &Scenario, run: &RunResult, data: &Data, replay: &str) {
    let stats = &run.stats;
    w!(
        out,
        "<header>\n<h1>logjam timeline &middot; {} &middot; seed {}</h1>\n<table class=\"meta\">\n",
        esc(&scenario.name),
        run.seed
    );
    let row = |out: &mut String, key: &str, value: &str| {
        w!(out, "<tr><td>{key}</td><td>{value}</td></tr>\n");
    };
    row(
        out,
        "scenario",
        &format!("{} ({}): {}", esc(&scenario.name), esc(&scenario.path), esc(&scenario.about)),
    );
    row(out, "seed", &run.seed.to_string());
    row(out, "nodes", &esc(&scenario.node_map()));
    row(out, "trace hash", &format!("<code>{:016x}</code>", run.trace_hash));
    let class = match run.verdict(&scenario.expect) {
        RunVerdict::Held => "verdict-ok",
        RunVerdict::ExpectedViolation => "verdict-seen",
        RunVerdict::Unexpected(_) => "verdict-bad",
    };
    let verdict = crate::report::verdict_text(scenario, run);
    row(out, "verdict", &format!("<span class=\"{class}\">{}</span>", esc(&verdict)));
    row(out, "replay", &format!("<code>{}</code>", esc(replay)));
    row(
        out,
        "simulated",
        &format!(
            "{} in {} events ({} trace events drawn from); chaos until {}, quiet until {}; \
             {} client ops started, {} skipped; {} faults scheduled",
            format_ns(run.simulated_ns),
            stats.events,
            data.trace.len(),
            format_ns(data.chaos_ns),
            format_ns(data.quiet_end_ns),
            run.ops_started,
            run.ops_skipped,
            run.faults_scheduled
        ),
    );
    row(
        out,
        "messages",
        &format!(
            "{} sent, {} delivered, {} dropped (random {}, partition {}, node down {}), {} duplicated, {} held by clogs",
            stats.sent,
            stats.delivered,
            stats.dropped(),
            stats.dropped_random,
            stats.dropped_partitioned,
            stats.dropped_node_down,
            stats.duplicated,
            stats.clog_delayed
        ),
    );
    row(
        out,
        "faults",
        &format!(
            "{} crashes, {} pauses, {} partitions, {} clogs, {} clock jumps, {} disk faults",
            stats.crashes,
            stats.pauses,
            stats.partitions,
            stats.clogs,
            stats.clock_jumps,
            stats.disk_faults
        ),
    );
    if let Some(limit) = run.limit {
        row(
            out,
            "LIMIT",
            &format!(
                "<span class=\"verdict-bad\">run ended early: {}</span>",
                esc(&limit.to_string())
            ),
        );
    }
    w!(out, "</table>\n</header>\n");
}

fn swatch(out: &mut String, body: &str, label: &str) {
    w!(out, "<span><svg width=\"22\" height=\"12\">{body}</svg>{label}</span>");
}

fn legend(out: &mut String) {
    w!(out, "<div class=\"legend\">");
    swatch(
        out,
        "<rect width=\"22\" height=\"12\" fill=\"#555\" opacity=\".45\"/>",
        "down (crash to start)",
    );
    swatch(out, "<rect width=\"22\" height=\"12\" fill=\"#e8b400\" opacity=\".45\"/>", "paused");
    swatch(
        out,
        "<rect width=\"22\" height=\"12\" fill=\"#fff\"/><path d=\"M0 12L12 0M6 12L18 0M12 12L22 2\" stroke=\"#7b3fb5\" stroke-width=\"2\"/>",
        "partitioned",
    );
    swatch(
        out,
        "<rect width=\"22\" height=\"12\" fill=\"#fff\"/><path d=\"M0 0L12 12M6 0L18 12M12 0L22 10\" stroke=\"#e07b00\" stroke-width=\"2\"/>",
        "clogged link",
    );
    for outcome in [Outcome::Ok, Outcome::Fail, Outcome::Info, Outcome::Pending] {
        swatch(
            out,
            &format!(
                "<rect y=\"1\" width=\"22\" height=\"10\" rx=\"2\" fill=\"{}\"/>",
                outcome.colour()
            ),
            &format!("operation {}", outcome.name()),
        );
    }
    swatch(out, "<rect y=\"1\" width=\"22\" height=\"10\" fill=\"#2f5fb3\"/>", "leader (epoch)");
    swatch(out, "<rect y=\"4\" width=\"22\" height=\"4\" fill=\"#9db4dd\"/>", "follower (epoch)");
    for kind in MsgKind::ALL {
        swatch(
            out,
            &format!(
                "<line x1=\"0\" y1=\"10\" x2=\"22\" y2=\"2\" stroke=\"{}\" stroke-width=\"2\"/>",
                kind.colour()
            ),
            &format!("message: {}", kind.name()),
        );
    }
    swatch(
        out,
        "<line x1=\"0\" y1=\"10\" x2=\"18\" y2=\"3\" stroke=\"#d62728\" stroke-dasharray=\"3 2\"/><path d=\"M15 0l6 6M21 0l-6 6\" stroke=\"#d62728\" stroke-width=\"1.5\"/>",
        "dropped message",
    );
    swatch(
        out,
        "<rect width=\"22\" height=\"12\" fill=\"#ffe14d\" opacity=\".5\"/>",
        "witness span",
    );
    swatch(
        out,
        "<rect x=\"1\" y=\"1\" width=\"20\" height=\"10\" fill=\"#2e9e44\" stroke=\"#a0006e\" stroke-width=\"2.5\"/>",
        "witness operation",
    );
    swatch(out, "<path d=\"M6 1h10l-5 9z\" fill=\"#111\"/>", "truncation");
    swatch(
        out,
        "<rect x=\"7\" y=\"2\" width=\"7\" height=\"7\" fill=\"#c00\" transform=\"rotate(45 10.5 5.5)\"/>",
        "disk fault, failed sync or writes lost in a crash",
    );
    swatch(out, "<path d=\"M8 2l7 4l-7 4z\" fill=\"#0a7d8c\"/>", "clock jump");
    swatch(
        out,
        "<circle cx=\"11\" cy=\"6\" r=\"4.5\" fill=\"none\" stroke=\"#a0006e\" stroke-width=\"2\"/>",
        "protocol event of the witness",
    );
    w!(out, "</div>\n");
}

fn checks_table(out: &mut String, run: &RunResult, focus: Option<&Focus>) {
    w!(
        out,
        "<div class=\"checks\">\n<h2>Invariants</h2>\n<table>\n\
         <tr><th></th><th>invariant and what it checked</th><th>witness</th></tr>\n"
    );
    for check in &run.checks {
        let focused = focus.is_some_and(|focus| std::ptr::eq(focus.check, check));
        w!(
            out,
            "<tr class=\"{}{}\"><td><span class=\"mark {}\">{}</span></td><td><span class=\"inv\">{}</span> <span class=\"checked\">{}</span></td><td>",
            mark_class(check),
            if focused { " focus" } else { "" },
            mark_class(check),
            mark(check),
            esc(check.invariant),
            esc(&check.checked)
        );
        if let Some(witness) = &check.witness {
            w!(out, "<span class=\"witness-text\">{}</span>", esc(witness));
            if let Some((first, last)) = check.witness_span_ns {
                w!(
                    out,
                    " <span class=\"note\">({} &ndash; {})</span>",
                    format_ns(first),
                    format_ns(last)
                );
            }
            if !check.witness_lines.is_empty() {
                w!(
                    out,
                    "<details{}><summary>{} history lines</summary><pre>",
                    if focused { " open" } else { "" },
                    check.witness_lines.len()
                );
                for line in &check.witness_lines {
                    w!(out, "{}\n", esc(line));
                }
                w!(out, "</pre></details>");
            }
        }
        w!(out, "</td></tr>\n");
    }
    w!(out, "</table>\n</div>\n");
}

/// A "nice" tick step: 1, 2 or 5 times a power of ten, giving at most about `count`
/// ticks over `span_ns`.
fn tick_step(span_ns: u64, count: u64) -> u64 {
    let raw = (span_ns / count.max(1)).max(1);
    let mut step = 1u64;
    loop {
        for factor in [1, 2, 5] {
            if step * factor >= raw {
                return step * factor;
            }
        }
        step *= 10;
    }
}

/// A tick label: seconds with as many decimals as the step needs.
fn tick_label(t: u64, step: u64) -> String {
    let mut decimals = 0u32;
    while decimals < 9 && step % 10u64.pow(9 - decimals) != 0 {
        decimals += 1;
    }
    let seconds = t / 1_000_000_000;
    if decimals == 0 {
        return format!("{seconds} s");
    }
    let fraction = t % 1_000_000_000 / 10u64.pow(9 - decimals);
    format!("{seconds}.{fraction:0width$} s", width = decimals as usize)
}

fn partition_colour(partition: u32) -> &'static str {
    const COLOURS: [&str; 8] =
        ["#2f5fb3", "#1b8a8a", "#7a4fb5", "#b5561b", "#3d8a1b", "#b51b6b", "#5b6b7a", "#8a7a1b"];
    COLOURS[partition as usize % COLOURS.len()]
}

fn partition_light(partition: u32) -> &'static str {
    const COLOURS: [&str; 8] =
        ["#9db4dd", "#92cccc", "#c2b0dd", "#ddb597", "#aacc97", "#dd97bc", "#b0bac4", "#ccc497"];
    COLOURS[partition as usize % COLOURS.len()]
}

/// Rough width of text in the SVG's 9-11px font, to decide whether a label fits.
fn text_fits(text: &str, px: f64, char_px: f64) -> bool {
    text.chars().count() as f64 * char_px + 4.0 <= px
}

/// Half the width of a mark on a strip (a truncation's triangle, a witness's ring).
const MARK_HALF_W: f64 = 6.0;

/// Where a strip label (5.2 px a character) starts inside `[x1, x2]` so that it
/// covers none of the strip's `marks` (their centres): at the left, or just right of
/// the marks it would cover. `None` if it fits nowhere.
fn label_beside_marks(text: &str, x1: f64, x2: f64, marks: &[f64]) -> Option<f64> {
    let width = text.chars().count() as f64 * 5.2;
    let mut x = x1 + 2.0;
    // Each move goes right past one mark: at most one move a mark.
    for _ in 0..=marks.len() {
        let covered = marks
            .iter()
            .filter(|&&mark| mark + MARK_HALF_W > x && mark - MARK_HALF_W < x + width)
            .fold(None, |right: Option<f64>, &mark| Some(right.map_or(mark, |r| r.max(mark))));
        match covered {
            None => return (x + width + 2.0 <= x2).then_some(x),
            Some(mark) => x = mark + MARK_HALF_W + 1.0,
        }
    }
    None
}

fn panel(out: &mut String, data: &Data, window: &Window) {
    let id = window.id;
    let top = AXIS_H + NET_H;
    let height = top + data.lanes_h + 27.0;
    let width = LABEL_W + window.width + MARGIN_R;
    let plot_x = LABEL_W;
    w!(
        out,
        "<svg class=\"timeline\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\">\n"
    );
    w!(
        out,
        "<defs><clipPath id=\"{id}-clip\"><rect x=\"{plot_x:.0}\" y=\"0\" width=\"{:.0}\" height=\"{height:.0}\"/></clipPath>\
         <pattern id=\"{id}-cut\" width=\"7\" height=\"7\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"2.5\" height=\"7\" fill=\"#7b3fb5\" opacity=\".55\"/></pattern>\
         <pattern id=\"{id}-clog\" width=\"7\" height=\"7\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(-45)\"><rect width=\"2\" height=\"7\" fill=\"#e07b00\" opacity=\".6\"/></pattern>\
         <marker id=\"{id}-arrow\" viewBox=\"0 0 6 6\" refX=\"6\" refY=\"3\" markerWidth=\"4\" markerHeight=\"4\" orient=\"auto\"><path d=\"M0 0L6 3L0 6z\" fill=\"#3d6fc4\" fill-opacity=\".8\"/></marker>\
         </defs>\n",
        window.width
    );

    // Lane backgrounds and labels.
    w!(out, "<g class=\"lanes\">\n");
    for (node, lane) in data.lanes.iter().enumerate() {
        let y = top + lane.y;
        let fill = if node % 2 == 0 { "#f7f8fa" } else { "#ffffff" };
        w!(
            out,
            "<rect x=\"0\" y=\"{y:.1}\" width=\"{width:.0}\" height=\"{:.1}\" fill=\"{fill}\"/>",
            lane.h
        );
        if node > 0 && data.lanes[node - 1].role != lane.role {
            w!(
                out,
                "<line x1=\"0\" y1=\"{y:.1}\" x2=\"{width:.0}\" y2=\"{y:.1}\" stroke=\"#c9ced6\"/>"
            );
        }
        let replica =
            data.focus.as_ref().is_some_and(|focus| focus.replica_nodes.contains(&(node as u32)));
        if replica {
            w!(
                out,
                "<rect x=\"1\" y=\"{:.1}\" width=\"{:.0}\" height=\"{:.1}\" fill=\"#ffe14d\" opacity=\".6\"><title>n{node}'s final log is part of the witness</title></rect>",
                y + 1.0,
                LABEL_W - 4.0,
                lane.h - 2.0
            );
        }
        let label_y = if lane.strips > 0 { y + 13.0 } else { lane.mid() + top + 4.0 };
        w!(
            out,
            "<text class=\"lbl lane\" x=\"6\" y=\"{label_y:.1}\">{} n{node}</text>",
            lane.role.name()
        );
        for strip in 0..lane.strips {
            let sy = strip_y(lane, strip) + top;
            w!(
                out,
                "<text class=\"sub\" x=\"{:.0}\" y=\"{:.1}\">p{strip}</text>",
                LABEL_W - 22.0,
                sy + 8.5
            );
        }
        w!(out, "\n");
    }
    w!(out, "<text class=\"sub\" x=\"6\" y=\"{:.1}\">network</text></g>\n", AXIS_H + NET_H - 4.0);

    // Time axis and grid.
    let span = window.t1 - window.t0;
    let step = tick_step(span, (window.width / 110.0) as u64);
    w!(out, "<g class=\"axis\">");
    let mut t = window.t0.div_ceil(step) * step;
    while t <= window.t1 {
        let x = window.x(t);
        w!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{:.0}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#e2e4e8\"/><text class=\"tick\" x=\"{x:.1}\" y=\"{:.0}\" text-anchor=\"middle\">{}</text>",
            AXIS_H - 8.0,
            top + data.lanes_h,
            AXIS_H - 12.0,
            tick_label(t, step)
        );
        t += step;
    }
    w!(
        out,
        "<line x1=\"{plot_x:.0}\" y1=\"{:.0}\" x2=\"{:.0}\" y2=\"{:.0}\" stroke=\"#999\"/></g>\n",
        AXIS_H - 8.0,
        plot_x + window.width,
        AXIS_H - 8.0
    );

    w!(out, "<g clip-path=\"url(#{id}-clip)\">\n");

    // Phase lines.
    let mut phases =
        vec![(data.chaos_ns, "heal-all: chaos ends"), (data.quiet_end_ns, "quiet ends: checks")];
    if let Some(drain) = data.drain_end_ns {
        phases.push((drain, "drain ends"));
    }
    // Labels of lines close together are joined into one.
    let mut labels: Vec<(f64, String)> = Vec::new();
    for (at, what) in phases {
        if at >= window.t0 && at <= window.t1 {
            let x = window.x(at);
            w!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{:.0}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#0a7d32\" stroke-dasharray=\"4 3\"><title>{what} at {}</title></line>\n",
                AXIS_H - 6.0,
                top + data.lanes_h + 3.0,
                format_ns(at)
            );
            match labels.last_mut() {
                Some((last_x, text)) if x - *last_x < text.chars().count() as f64 * 5.5 + 8.0 => {
                    text.push_str(" · ");
                    text.push_str(what);
                }
                _ => labels.push((x, what.to_owned())),
            }
        }
    }
    // A label that would overlap the one before it goes on a second row.
    let mut row_right = [f64::MIN; 2];
    for (x, text) in labels {
        // Near the right edge, the label goes to the left of its line.
        let width = text.chars().count() as f64 * 5.5;
        let fits_right = x + 3.0 + width <= LABEL_W + window.width;
        let (x, anchor, left) = if fits_right {
            (x + 3.0, "start", x + 3.0)
        } else {
            (x - 3.0, "end", x - 3.0 - width)
        };
        let row = if left >= row_right[0] + 6.0 { 0 } else { 1 };
        row_right[row] = left + width;
        w!(
            out,
            "<text class=\"sub\" x=\"{x:.1}\" y=\"{:.0}\" text-anchor=\"{anchor}\" fill=\"#0a7d32\">{text}</text>\n",
            top + data.lanes_h + 12.0 + row as f64 * 11.0
        );
    }
    if let Some(at) = data.limit_at.filter(|&at| at >= window.t0 && at <= window.t1) {
        let x = window.x(at);
        w!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{:.0}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#c00\" stroke-width=\"2\"><title>limit reached at {}</title></line>\n",
            AXIS_H - 6.0,
            top + data.lanes_h,
            format_ns(at)
        );
    }

    // The network row.
    for band in data.net.iter().filter(|band| window.overlaps(band.start, band.end)) {
        let (x1, x2) = (window.cx(band.start), window.cx(band.end));
        let (fill, y, h) = match band.kind {
            NetKind::Partition => (format!("url(#{id}-cut)"), AXIS_H - 2.0, 8.0),
            NetKind::Lossy => ("#d62728".to_owned(), AXIS_H + 7.0, 4.0),
        };
        w!(
            out,
            "<rect x=\"{x1:.1}\" y=\"{y:.0}\" width=\"{:.1}\" height=\"{h:.0}\" fill=\"{fill}\" opacity=\".8\"><title>{}</title></rect>\n",
            (x2 - x1).max(1.0),
            esc(&band.note)
        );
    }

    // Fault bands.
    for band in data.bands.iter().filter(|band| window.overlaps(band.start, band.end)) {
        let Some(lane) = data.lanes.get(band.node as usize) else { continue };
        let (x1, x2) = (window.cx(band.start), window.cx(band.end));
        let (fill, opacity, label) = match band.kind {
            BandKind::Down => ("#555".to_owned(), ".45", "down"),
            BandKind::Paused => ("#e8b400".to_owned(), ".45", "paused"),
            BandKind::Cut => (format!("url(#{id}-cut)"), ".75", "cut"),
            BandKind::Clog => (format!("url(#{id}-clog)"), ".6", "clog"),
        };
        let y = top + lane.y;
        w!(
            out,
            "<rect x=\"{x1:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\" opacity=\"{opacity}\"><title>{}</title></rect>",
            (x2 - x1).max(1.0),
            lane.h,
            esc(&band.note)
        );
        if matches!(band.kind, BandKind::Down | BandKind::Paused) && text_fits(label, x2 - x1, 6.0)
        {
            w!(
                out,
                "<text class=\"ind\" x=\"{:.1}\" y=\"{:.1}\" font-weight=\"700\">{label}</text>",
                x1 + 3.0,
                y + lane.h - 3.0
            );
        }
        w!(out, "\n");
    }

    // Messages: lines, or per-lane histograms.
    if data.message_lines_fit(window) {
        message_lines(out, data, window, top, &|_| true);
    } else {
        message_density(out, data, window, top);
        let core = data.line_core(window);
        let of_witness = data.witness_op_messages(window) > 0;
        if let Some((a, b)) = core {
            let (x1, x2) = (window.x(a), window.x(b));
            w!(
                out,
                "<rect x=\"{x1:.1}\" y=\"{:.0}\" width=\"{:.1}\" height=\"5\" fill=\"#3d6fc4\" opacity=\".45\"><title>every message is drawn in {} – {}</title></rect>\n",
                AXIS_H - 7.0,
                (x2 - x1).max(2.0),
                format_ns(a),
                format_ns(b)
            );
            for x in [x1, x2] {
                w!(
                    out,
                    "<line x1=\"{x:.1}\" y1=\"{:.0}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#3d6fc4\" stroke-dasharray=\"1 3\"/>\n",
                    AXIS_H - 7.0,
                    top + data.lanes_h
                );
            }
        }
        if core.is_some() || of_witness {
            let (a, b) = core.unwrap_or((1, 0));
            let select = |msg: &Msg| {
                (msg.end >= a && msg.sent <= b) || (of_witness && data.of_witness_op(msg))
            };
            message_lines(out, data, window, top, &select);
        }
    }

    // In the overview, where the witness panel zooms in.
    if let (Some(focus), "o") = (data.focus.as_ref().filter(|focus| focus.zoomed), id) {
        let (x1, x2) = (window.cx(focus.window.0), window.cx(focus.window.1));
        w!(
            out,
            "<rect x=\"{x1:.1}\" y=\"{:.0}\" width=\"{:.1}\" height=\"5\" fill=\"#a0006e\" opacity=\".35\"><title>the witness panel shows {} – {}</title></rect>\n",
            AXIS_H - 7.0,
            (x2 - x1).max(2.0),
            format_ns(focus.window.0),
            format_ns(focus.window.1)
        );
    }

    // The witness span, across every lane.
    if let Some(focus) = &data.focus {
        if let Some((first, last)) =
            focus.span.filter(|&(first, last)| window.overlaps(first, last))
        {
            let (x1, x2) = (window.cx(first), window.cx(last));
            let (x1, x2) = if x2 - x1 < 4.0 {
                ((x1 + x2) / 2.0 - 2.0, (x1 + x2) / 2.0 + 2.0)
            } else {
                (x1, x2)
            };
            w!(
                out,
                "<rect class=\"witness-span\" x=\"{x1:.1}\" y=\"{:.0}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#ffe14d\" opacity=\".5\"><title>witness of {}: {} – {}</title></rect><text class=\"wl\" x=\"{:.1}\" y=\"{:.0}\">witness</text>\n",
                AXIS_H - 6.0,
                x2 - x1,
                data.lanes_h + NET_H + 6.0,
                esc(focus.check.invariant),
                format_ns(first),
                format_ns(last),
                x2 + 3.0,
                AXIS_H + 5.0
            );
        }
    }

    // Where the marks drawn on a partition strip sit (truncations, witnessed protocol
    // events): an epoch label is laid out beside them, never under them.
    let mut strip_marks: BTreeMap<(u32, u32), Vec<f64>> = BTreeMap::new();
    for marker in data.markers.iter().filter(|m| m.at >= window.t0 && m.at <= window.t1) {
        if let Some(partition) = marker.partition {
            strip_marks.entry((marker.node, partition)).or_default().push(window.x(marker.at));
        }
    }
    let no_marks = Vec::new();

    // Leaderships and followerships.
    for seg in data.segs.iter().filter(|seg| window.overlaps(seg.start, seg.end)) {
        let Some(lane) = data.lanes.get(seg.node as usize) else { continue };
        if seg.partition >= lane.strips {
            continue;
        }
        let sy = top + strip_y(lane, seg.partition);
        let (x1, x2) = (window.cx(seg.start), window.cx(seg.end));
        let w = (x2 - x1).max(1.0);
        let marks = strip_marks.get(&(seg.node, seg.partition)).unwrap_or(&no_marks);
        let role = if seg.leader { "leader" } else { "follower" };
        let title = format!(
            "n{} {role} of partition {} in epoch {}, {} – {}",
            seg.node,
            seg.partition,
            seg.epoch,
            format_ns(seg.start),
            format_ns(seg.end)
        );
        if seg.leader {
            w!(
                out,
                "<rect x=\"{x1:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.0}\" fill=\"{}\"><title>{title}</title></rect>",
                sy,
                STRIP_H - 1.0,
                partition_colour(seg.partition)
            );
            let label = format!("leader e{}", seg.epoch);
            let short = format!("e{}", seg.epoch);
            let placed = label_beside_marks(&label, x1, x2, marks)
                .map(|x| (x, &label))
                .or_else(|| label_beside_marks(&short, x1, x2, marks).map(|x| (x, &short)));
            if let Some((x, text)) = placed {
                w!(out, "<text class=\"in\" x=\"{x:.1}\" y=\"{:.1}\">{text}</text>", sy + 8.0);
            }
        } else {
            w!(
                out,
                "<rect x=\"{x1:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"4\" fill=\"{}\"><title>{title}</title></rect>",
                sy + 3.5,
                partition_light(seg.partition)
            );
            let short = format!("e{}", seg.epoch);
            if let Some(x) = label_beside_marks(&short, x1, x2, marks) {
                w!(out, "<text class=\"ind\" x=\"{x:.1}\" y=\"{:.1}\">{short}</text>", sy + 3.2);
            }
        }
        w!(out, "\n");
    }

    // Operations: bars, or binned.
    if data.ops_in(window) <= OP_BARS_MAX {
        op_bars(out, data, window, top);
    } else {
        op_bins(out, data, window, top);
    }

    // Markers.
    for marker in data.markers.iter().filter(|m| m.at >= window.t0 && m.at <= window.t1) {
        let Some(lane) = data.lanes.get(marker.node as usize) else { continue };
        let x = window.x(marker.at);
        let y = match marker.partition {
            Some(p) if p < lane.strips => top + strip_y(lane, p),
            _ => top + lane.y + 1.0,
        };
        let note = esc(&marker.note);
        match marker.kind {
            MarkerKind::Truncate => {
                w!(
                    out,
                    "<path d=\"M{:.1} {:.1}h10l-5 9z\" fill=\"#111\" stroke=\"#fff\" stroke-width=\".8\"><title>{note}</title></path>\n",
                    x - 5.0,
                    y
                );
            }
            MarkerKind::ClockJump => {
                w!(
                    out,
                    "<path d=\"M{:.1} {:.1}l7 4l-7 4z\" fill=\"#0a7d8c\"><title>{note}</title></path>\n",
                    x - 3.0,
                    y
                );
            }
            MarkerKind::Disk => {
                w!(
                    out,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\" fill=\"#c00\" transform=\"rotate(45 {x:.1} {:.1})\"><title>{note}</title></rect>\n",
                    x - 3.5,
                    y + 1.0,
                    y + 4.5
                );
            }
            MarkerKind::WitnessProtocol => {
                w!(
                    out,
                    "<circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"none\" stroke=\"#a0006e\" stroke-width=\"2.5\"><title>{note}</title></circle>\n",
                    y + 5.0
                );
            }
        }
    }
    w!(out, "</g>\n</svg>\n");
}

fn strip_y(lane: &Lane, strip: u32) -> f64 {
    lane.y + 4.0 + f64::from(strip) * STRIP_H
}

/// The messages of the window that `select` picks, as lines.
fn message_lines(
    out: &mut String,
    data: &Data,
    window: &Window,
    top: f64,
    select: &dyn Fn(&Msg) -> bool,
) {
    let detailed = window.id == "d";
    w!(out, "<g class=\"messages\" stroke-width=\"1\" fill=\"none\">\n");
    for msg in data.msgs.iter().filter(|msg| window.overlaps(msg.sent, msg.end) && select(msg)) {
        let (Some(from), Some(to)) =
            (data.lanes.get(msg.from as usize), data.lanes.get(msg.to as usize))
        else {
            continue;
        };
        let (x1, y1, x2, y2) =
            (window.x(msg.sent), top + from.mid(), window.x(msg.end), top + to.mid());
        let title = |out: &mut String| {
            if detailed {
                let fate = match msg.drop {
                    None => format!("delivered {}", format_ns(msg.end)),
                    Some(reason) => format!("dropped {} ({reason:?})", format_ns(msg.end)),
                };
                let words =
                    msg.label.as_deref().map_or(String::new(), |label| format!(" {}", esc(label)));
                w!(
                    out,
                    "<title>n{}→n{} #{}{words} sent {}, {fate}</title>",
                    msg.from,
                    msg.to,
                    msg.msg_id,
                    format_ns(msg.sent)
                );
            }
        };
        match msg.drop {
            None => {
                w!(
                    out,
                    "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{}\" stroke-opacity=\".55\" marker-end=\"url(#{}-arrow)\">",
                    MsgKind::of(msg.label.as_deref()).colour(),
                    window.id
                );
                title(out);
                w!(out, "</line>\n");
            }
            Some(_) => {
                w!(
                    out,
                    "<g stroke=\"#d62728\"><line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke-dasharray=\"3 2\"/><path d=\"M{:.1} {:.1}l6 6m0 -6l-6 6\" stroke-width=\"1.5\"/>",
                    x2 - 3.0,
                    y2 - 3.0
                );
                title(out);
                w!(out, "</g>\n");
            }
        }
    }
    w!(out, "</g>\n");
}

fn message_density(out: &mut String, data: &Data, window: &Window, top: f64) {
    let bins = window.bins();
    let nodes = data.lanes.len();
    let mut traffic = vec![0u32; nodes * bins];
    let mut drops = vec![0u32; nodes * bins];
    let mut dropped = Vec::new();
    for entry in data.trace {
        let Some(bin) = window.bin(entry.at_ns) else { continue };
        match &entry.event {
            TraceEvent::Send { from, .. } if from.index() < nodes => {
                traffic[from.index() * bins + bin] += 1
            }
            TraceEvent::Deliver { to, .. } if to.index() < nodes => {
                traffic[to.index() * bins + bin] += 1
            }
            TraceEvent::Drop { to, .. } if to.index() < nodes => {
                drops[to.index() * bins + bin] += 1;
                dropped.push(entry);
            }
            _ => {}
        }
    }
    // Few drops are marked one by one; many get a histogram of their own.
    let drops_one_by_one = dropped.len() <= DROP_MARKS_MAX;
    let bin_ns = data.bin_ns(window);
    w!(out, "<g class=\"density\">\n");
    for (node, lane) in data.lanes.iter().enumerate() {
        let row = &traffic[node * bins..(node + 1) * bins];
        let drop_row = &drops[node * bins..(node + 1) * bins];
        let base = top + lane.density_base();
        for (counts, colour, what) in [
            (row, "#3d6fc4", "messages sent and received"),
            (drop_row, "#d62728", "messages dropped on the way to it"),
        ] {
            let peak = counts.iter().copied().max().unwrap_or(0);
            if peak == 0 || (drops_one_by_one && colour == "#d62728") {
                continue;
            }
            let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
            let mut path = format!("M{LABEL_W:.0} {base:.1}");
            let mut level = 0.0;
            let mut run = 0usize;
            let flush = |path: &mut String, run: &mut usize| {
                if *run > 0 {
                    w!(path, "h{}", (*run as f64 * BIN_PX) as u64);
                    *run = 0;
                }
            };
            for &count in counts {
                let h = if count == 0 {
                    0.0
                } else {
                    (f64::from(count) / f64::from(peak) * lane.density_h).max(1.0).round()
                };
                if h != level {
                    flush(&mut path, &mut run);
                    w!(path, "V{:.1}", base - h);
                    level = h;
                }
                run += 1;
            }
            flush(&mut path, &mut run);
            w!(path, "V{base:.1}z");
            w!(
                out,
                "<path d=\"{path}\" fill=\"{colour}\" opacity=\".7\"><title>n{node}: {total} {what}; peak {peak} per {}</title></path>\n",
                duration(bin_ns)
            );
        }
    }
    if drops_one_by_one {
        for entry in dropped {
            let TraceEvent::Drop { from, to, msg_id, reason } = &entry.event else { continue };
            let (x, y) = (window.x(entry.at_ns), top + data.lanes[to.index()].mid());
            w!(
                out,
                "<path d=\"M{:.1} {:.1}l6 6m0 -6l-6 6\" stroke=\"#d62728\" stroke-width=\"1.5\"><title>{from}→{to} #{msg_id} dropped {} ({reason:?})</title></path>\n",
                x - 3.0,
                y - 3.0,
                format_ns(entry.at_ns)
            );
        }
    }
    w!(out, "</g>\n");
}

/// A short label for an operation bar, and its full description.
fn op_text(history: &model::History, bar: &OpBar) -> (String, String) {
    let invoke = history.invoke_of(bar.op);
    let done = history.completion_of(bar.op);
    let (what, short) = match &invoke.op {
        model::Op::Send { partition, value, .. } => {
            (format!("send {value} to partition {partition}"), value.clone())
        }
        model::Op::Poll { partition, from, .. } => (
            format!("poll partition {partition} from offset {from}"),
            format!("poll p{partition}@{from}"),
        ),
        model::Op::Assign { partitions, .. } => {
            (format!("assign {partitions:?}"), "assign".to_owned())
        }
        model::Op::Subscribe { group, partitions, .. } => {
            (format!("subscribe {group} {partitions:?}"), "subscribe".to_owned())
        }
        model::Op::Init { txn_id } => {
            (format!("init transactional id {txn_id}"), "init".to_owned())
        }
        model::Op::Txn { txn_id, ops } => {
            (format!("transaction {txn_id} of {} operations", ops.len()), format!("txn {txn_id}"))
        }
    };
    let (result, short_result) = match done {
        None => ("still pending at the end".to_owned(), "pending".to_owned()),
        Some(event) => match (&event.op, event.kind) {
            (model::Op::Send { offset: Some(offset), .. }, model::EventType::Ok) => {
                (format!("ok at offset {offset}"), format!("ok@{offset}"))
            }
            (model::Op::Poll { records, .. }, model::EventType::Ok) => {
                (format!("ok, {} records", records.len()), format!("ok {}", records.len()))
            }
            (_, kind) => {
                let error = event.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
                (format!("{}{error}", kind.name()), kind.name().to_owned())
            }
        },
    };
    let end = done.map_or_else(|| "…".to_owned(), |event| format_ns(event.t_ns));
    let full = format!(
        "{}n{} {what}: {result}; {} – {end} (history line {})",
        if bar.witness { "WITNESS: " } else { "" },
        bar.node,
        format_ns(invoke.t_ns),
        history.line_of_event(history.ops()[bar.op].invoke as usize)
    );
    (format!("{short} {short_result}"), full)
}

fn op_bars(out: &mut String, data: &Data, window: &Window, top: f64) {
    let Some(history) = data.history else { return };
    w!(out, "<g class=\"ops\">\n");
    let mut witness_labels = Vec::new();
    for bar in data.ops.iter().filter(|bar| window.overlaps(bar.start, bar.end)) {
        let Some(lane) = data.lanes.get(bar.node as usize) else { continue };
        let (x1, x2) = (window.cx(bar.start), window.cx(bar.end));
        let w = (x2 - x1).max(1.5);
        let y = top + lane.op_y();
        let (short, full) = op_text(history, bar);
        let stroke = if bar.witness { " stroke=\"#a0006e\" stroke-width=\"2.5\"" } else { "" };
        w!(
            out,
            "<rect{} x=\"{x1:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.0}\" rx=\"2\" fill=\"{}\"{stroke}><title>{}</title></rect>",
            if bar.witness { " class=\"witness-op\"" } else { "" },
            lane.op_h,
            bar.outcome.colour(),
            esc(&full)
        );
        if text_fits(&short, w, 5.2) {
            w!(
                out,
                "<text class=\"in\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x1 + 2.0,
                y + 9.0,
                esc(&short)
            );
        }
        w!(out, "\n");
        if bar.witness {
            witness_labels.push((x1, y, short));
        }
    }
    // Witness operations get a marker above and a label, on top of everything.
    for (x, y, short) in witness_labels {
        w!(
            out,
            "<path d=\"M{:.1} {:.1}l5 -7h-10z\" fill=\"#a0006e\"/><text class=\"wl\" x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            x,
            y - 1.0,
            x + 7.0,
            y - 2.0,
            esc(&format!("witness: {short}"))
        );
    }
    w!(out, "</g>\n");
}

fn op_bins(out: &mut String, data: &Data, window: &Window, top: f64) {
    let bins = window.bins();
    let nodes = data.lanes.len();
    // Per lane and bin: counts of ok, pending, info, fail (the order of `Outcome`).
    let mut counts = vec![[0u32; 4]; nodes * bins];
    for bar in data.ops.iter().filter(|bar| window.overlaps(bar.start, bar.end)) {
        let node = bar.node as usize;
        if node >= nodes {
            continue;
        }
        let first = window.bin(bar.start.max(window.t0)).unwrap_or(0);
        let last = window.bin(bar.end.min(window.t1)).unwrap_or(bins - 1);
        for bin in first..=last {
            counts[node * bins + bin][bar.outcome as usize] += 1;
        }
    }
    let outcomes = [Outcome::Ok, Outcome::Pending, Outcome::Info, Outcome::Fail];
    let bin_ns = data.bin_ns(window);
    w!(out, "<g class=\"ops binned\">\n");
    // One path per lane and outcome: the runs of bins whose worst outcome it is.
    for (node, lane) in data.lanes.iter().enumerate() {
        let y = top + lane.op_y();
        let row = &counts[node * bins..(node + 1) * bins];
        let worst = |bin: usize| (0..4).rev().find(|&k| row[bin][k] > 0);
        let mut paths: [String; 4] = Default::default();
        let mut bin = 0;
        while bin < bins {
            let Some(kind) = worst(bin) else {
                bin += 1;
                continue;
            };
            let start = bin;
            while bin < bins && worst(bin) == Some(kind) {
                bin += 1;
            }
            let x = LABEL_W + start as f64 * BIN_PX;
            let w = ((bin - start) as f64 * BIN_PX).min(LABEL_W + window.width - x);
            w!(paths[kind], "M{x:.0} {y:.1}h{w:.0}v{:.0}h-{w:.0}z", lane.op_h);
        }
        let mut total = [0u64; 4];
        for op in data.ops.iter().filter(|bar| bar.node as usize == node) {
            if window.overlaps(op.start, op.end) {
                total[op.outcome as usize] += 1;
            }
        }
        for (kind, path) in paths.iter().enumerate() {
            if path.is_empty() {
                continue;
            }
            w!(
                out,
                "<path d=\"{path}\" fill=\"{}\"><title>n{node}: {} ok, {} fail, {} info, {} pending operations; {} bins (per {}) whose worst outcome is {}</title></path>\n",
                outcomes[kind].colour(),
                total[Outcome::Ok as usize],
                total[Outcome::Fail as usize],
                total[Outcome::Info as usize],
                total[Outcome::Pending as usize],
                if kind == 0 { "green" } else { "coloured" },
                duration(bin_ns),
                outcomes[kind].name()
            );
        }
    }
    // The witness's operations stay visible one by one.
    for bar in data.ops.iter().filter(|bar| bar.witness && window.overlaps(bar.start, bar.end)) {
        let Some(lane) = data.lanes.get(bar.node as usize) else { continue };
        let (x1, x2) = (window.cx(bar.start), window.cx(bar.end));
        let y = top + lane.op_y();
        w!(
            out,
            "<rect class=\"witness-op\" x=\"{x1:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.0}\" fill=\"{}\" stroke=\"#a0006e\" stroke-width=\"2.5\"/><path d=\"M{x1:.1} {:.1}l5 -7h-10z\" fill=\"#a0006e\"/>\n",
            (x2 - x1).max(2.0),
            lane.op_h,
            bar.outcome.colour(),
            y - 1.0
        );
    }
    w!(out, "</g>\n");
}

#[cfg(test)]
mod tests {
    use super::label_beside_marks;

    /// (case, segment start, segment end, marks, where the label starts).
    type Case = (&'static str, f64, f64, &'static [f64], Option<f64>);

    #[test]
    fn an_epoch_label_is_laid_out_beside_the_marks_on_its_strip() {
        // "e3" is 10.4 px wide.
        let cases: &[Case] = &[
            ("no marks: at the left", 100.0, 200.0, &[], Some(102.0)),
            ("a truncation where the segment starts", 100.0, 200.0, &[100.0], Some(107.0)),
            ("two marks side by side", 100.0, 200.0, &[100.0, 110.0], Some(117.0)),
            ("a mark further right is no obstacle", 100.0, 200.0, &[150.0], Some(102.0)),
            ("no room beside the mark", 100.0, 118.0, &[102.0], None),
        ];
        for &(name, x1, x2, marks, want) in cases {
            assert_eq!(label_beside_marks("e3", x1, x2, marks), want, "{name}");
        }
    }
}
