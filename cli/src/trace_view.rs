//! `replay --trace`: the trace events around an anomaly's witness, lane by lane (one per
//! node), or the last events of the run when nothing went wrong.

use std::collections::BTreeMap;
use std::fmt::Write;

use logjam_sim::run::RunResult;
use logjam_sim::time::format_ns;
use logjam_sim::{NodeId, TraceEntry, TraceEvent};

/// How far before the witness's first event the window opens: the causes come first.
const BEFORE_WITNESS_NS: u64 = 50_000_000;
/// How far after its last event the window closes.
const AFTER_WITNESS_NS: u64 = 5_000_000;

/// The node an event happened at (the receiver of a delivery, the sender of a send);
/// `None` for events of the whole world (partitions, network weather, limits).
fn lane_of(event: &TraceEvent) -> Option<NodeId> {
    match event {
        TraceEvent::Send { from, .. }
        | TraceEvent::Drop { from, .. }
        | TraceEvent::Duplicate { from, .. }
        | TraceEvent::Clog { from, .. }
        | TraceEvent::LinkLoss { from, .. } => Some(*from),
        TraceEvent::Deliver { to, .. } => Some(*to),
        TraceEvent::Start { node }
        | TraceEvent::TimerFired { node, .. }
        | TraceEvent::Crash { node }
        | TraceEvent::Pause { node }
        | TraceEvent::Resume { node }
        | TraceEvent::ClockJump { node, .. }
        | TraceEvent::Ignored { node, .. }
        | TraceEvent::SyncDone { node, .. }
        | TraceEvent::DiskCrash { node, .. }
        | TraceEvent::DiskFault { node, .. }
        | TraceEvent::Operator { node, .. } => Some(*node),
        TraceEvent::Partition { .. }
        | TraceEvent::NetworkFaults { .. }
        | TraceEvent::LimitReached { .. } => None,
    }
}

/// The events in the window around the first witness with a time (a broken invariant
/// first, else an anomaly the configuration allows), per node, at most `events_max`.
/// `None` when the run has no such witness.
pub fn around_witness(trace: &[TraceEntry], run: &RunResult, events_max: usize) -> Option<String> {
    let check = run
        .checks
        .iter()
        .filter(|check| check.witness_span_ns.is_some())
        .find(|check| !check.holds)
        .or_else(|| {
            run.checks.iter().find(|c| c.expected_anomaly && c.witness_span_ns.is_some())
        })?;
    let (first_ns, last_ns) = check.witness_span_ns?;
    let (from_ns, to_ns) =
        (first_ns.saturating_sub(BEFORE_WITNESS_NS), last_ns.saturating_add(AFTER_WITNESS_NS));
    let window: Vec<&TraceEntry> =
        trace.iter().filter(|e| (from_ns..=to_ns).contains(&e.at_ns)).collect();
    // Too many to show: the ones nearest the witness's first event.
    let shown: Vec<&TraceEntry> = if window.len() > events_max {
        let centre = window.partition_point(|e| e.at_ns < first_ns);
        let start = centre.saturating_sub(events_max / 2).min(window.len() - events_max);
        window[start..start + events_max].to_vec()
    } else {
        window.clone()
    };
    let mut lanes: BTreeMap<Option<NodeId>, Vec<&TraceEntry>> = BTreeMap::new();
    for entry in &shown {
        lanes.entry(lane_of(&entry.event)).or_default().push(entry);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace around the witness of `{}` ({} .. {}), {} of {} events in {} .. {}, per node:",
        check.invariant,
        format_ns(first_ns),
        format_ns(last_ns),
        shown.len(),
        window.len(),
        format_ns(from_ns),
        format_ns(to_ns),
    );
    // Lanes in node order, the world's own events last.
    let world = lanes.remove(&None);
    for (lane, entries) in lanes.iter().map(|(n, e)| (n.map(|n| format!("n{}", n.0)), e)) {
        let _ = writeln!(out, "  {} ({} events)", lane.unwrap_or_default(), entries.len());
        for entry in entries {
            let _ = writeln!(out, "    {entry}");
        }
    }
    if let Some(entries) = world {
        let _ = writeln!(out, "  world ({} events)", entries.len());
        for entry in entries {
            let _ = writeln!(out, "    {entry}");
        }
    }
    Some(out)
}

/// The last `events_max` events of the run.
pub fn last_events(trace: &[TraceEntry], run: &RunResult, events_max: usize) -> String {
    let shown = &trace[trace.len().saturating_sub(events_max)..];
    let mut out = String::new();
    let earlier = trace.len() > shown.len() || run.stats.events > trace.len() as u64;
    let _ = writeln!(
        out,
        "trace (last {} events{}):",
        shown.len(),
        if earlier { ", earlier ones not shown" } else { "" }
    );
    for entry in shown {
        let _ = writeln!(out, "  {entry}");
    }
    out
}
