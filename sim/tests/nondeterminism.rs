//! The nondeterminism guard: a sample of seeds of the fault-heavy scenarios is run twice
//! and the two full traces are compared event by event. If they ever part ways, the test
//! prints the first event where they differ, with the events before it, instead of only
//! two different hashes.

use std::path::Path;

use logjam_sim::TraceEntry;
use logjam_sim::run::{run_full, schedule_for};
use logjam_sim::scenario::Scenario;

/// Trace entries kept per run: all of them, for these runs (the largest has ~200,000).
const EVENTS_KEPT_MAX: usize = 2_000_000;
/// Events shown before the first difference.
const CONTEXT_EVENTS: usize = 5;

/// Where two traces of the same run part ways, described for a human; `None` if equal.
fn first_divergence(a: &[TraceEntry], b: &[TraceEntry]) -> Option<String> {
    let at = match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(at) => at,
        None if a.len() == b.len() => return None,
        None => a.len().min(b.len()),
    };
    let mut text = format!("the runs part ways at event {at}:\n");
    for entry in &a[at.saturating_sub(CONTEXT_EVENTS)..at] {
        text.push_str(&format!("  both   {entry}\n"));
    }
    let show =
        |entry: Option<&TraceEntry>| entry.map_or("(no event)".to_owned(), |e| e.to_string());
    text.push_str(&format!("  first  {}\n", show(a.get(at))));
    text.push_str(&format!("  second {}\n", show(b.get(at))));
    Some(text)
}

#[test]
fn seeds_replayed_twice_give_identical_traces() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sample = [
        ("crash-restart-loop", 0..4),
        ("disk-faults", 0..4),
        ("partitions", 0..4),
        ("clock-skew", 0..2),
        ("power-loss", 0..2),
        ("partition-storm", 0..2),
        ("txn-faults", 0..3),
        ("txn-exactly-once", 0..2),
        ("bank-transactions", 0..2),
    ];
    for (name, seeds) in sample {
        let scenario = Scenario::load(&root.join(format!("scenarios/{name}.toml"))).unwrap();
        for seed in seeds {
            let schedule = schedule_for(&scenario, seed);
            let first = run_full(&scenario, &schedule, EVENTS_KEPT_MAX);
            let second = run_full(&scenario, &schedule, EVENTS_KEPT_MAX);
            assert!(
                first.trace.len() < EVENTS_KEPT_MAX,
                "{name} seed {seed}: the trace was not kept whole"
            );
            if let Some(divergence) = first_divergence(&first.trace, &second.trace) {
                panic!("{name} seed {seed} is nondeterministic: {divergence}");
            }
            assert_eq!(first.result.trace_hash, second.result.trace_hash, "{name} seed {seed}");
            assert_eq!(first.result, second.result, "{name} seed {seed}");
        }
    }
}

#[test]
fn a_divergence_is_shown_at_its_first_event_with_what_came_before() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scenario = Scenario::load(&root.join("scenarios/crash-restart-loop.toml")).unwrap();
    let trace = run_full(&scenario, &schedule_for(&scenario, 1), EVENTS_KEPT_MAX).trace;
    assert!(trace.len() > 100);
    assert_eq!(first_divergence(&trace, &trace), None);
    let mut changed = trace.clone();
    changed[77].at_ns += 1;
    let text = first_divergence(&trace, &changed).unwrap();
    assert!(text.starts_with("the runs part ways at event 77:"), "{text}");
    assert_eq!(text.matches("  both   ").count(), CONTEXT_EVENTS, "{text}");
    assert!(text.contains(&format!("  first  {}", trace[77])), "{text}");
    assert!(text.contains(&format!("  second {}", changed[77])), "{text}");
    let shorter = first_divergence(&trace, &trace[..50]).unwrap();
    assert!(shorter.contains("at event 50") && shorter.contains("(no event)"), "{shorter}");
}
