//! The HTML timeline: what a failing weak-configuration run shows, that the file is
//! self-contained and deterministic, and that a long run stays small.

use std::path::{Path, PathBuf};

use logjam_reports::html::{MESSAGE_LINES_MAX, timeline};
use logjam_sim::nemesis::TimedFault;
use logjam_sim::run::{RunOutput, run_full, schedule_for};
use logjam_sim::scenario::Scenario;
use logjam_sim::schedule_file::ScheduleFile;
use logjam_sim::{Fault, TraceEvent};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

const REGRESSION: &str = "scenarios/regressions/unclean-election.json";
const REPLAY: &str = "cargo run --release -p logjam -- replay --schedule scenarios/regressions/unclean-election.json";

/// The shrunk unclean-election schedule: a weak configuration that loses `v0`.
fn unclean_election() -> String {
    let (file, scenario) = ScheduleFile::load(&repo(REGRESSION)).unwrap_or_else(|e| panic!("{e}"));
    let RunOutput { result, trace, history } = run_full(&scenario, &file.schedule, 4_000_000);
    assert!(
        result.checks.iter().any(|c| c.invariant == "lost-write" && c.expected_anomaly),
        "the regression no longer loses a write: {:?}",
        result.checks
    );
    timeline(&scenario, &file.schedule, &result, &trace, history.as_ref(), REPLAY)
}

/// Every `open` has its `close`, and they nest (a cheap well-formedness check of the
/// elements the renderer writes).
fn assert_balanced(html: &str, tags: &[&str]) {
    for tag in tags {
        let open =
            html.matches(&format!("<{tag} ")).count() + html.matches(&format!("<{tag}>")).count();
        let close = html.matches(&format!("</{tag}>")).count();
        assert_eq!(open, close, "<{tag}> opened {open} times, closed {close} times");
    }
}

#[test]
fn a_failing_weak_configuration_run_shows_its_lanes_witness_and_invariants() {
    let html = unclean_election();
    let (file, scenario) = ScheduleFile::load(&repo(REGRESSION)).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>\n"));
    assert!(html.ends_with("</html>\n"));

    // A lane per node, labelled by its role, in the witness panel and the overview.
    let lanes = [
        "broker n0",
        "broker n1",
        "broker n2",
        "controller n3",
        "producer n4",
        "producer n5",
        "producer n6",
        "producer n7",
        "consumer n8",
    ];
    assert_eq!(scenario.world.nodes as usize, lanes.len());
    for lane in lanes {
        let label = format!(">{lane}</text>");
        assert_eq!(html.matches(&label).count(), 2, "lane `{lane}` missing from a panel");
    }
    assert_eq!(html.matches("class=\"lbl lane\"").count(), 2 * lanes.len());

    // The witness: its heading, its time span and its operation, highlighted.
    assert!(
        html.contains(
            "<h2 id=\"witness\">Witness: <span class=\"mark seen\">seen</span> lost-write"
        )
    );
    assert!(html.contains("`v0` was acknowledged at offset 0, which n0 has committed without it"));
    assert!(html.matches("class=\"witness-span\"").count() >= 2, "the span in both panels");
    assert!(html.matches("class=\"witness-op\"").count() >= 2, "v0's send in both panels");
    assert!(html.contains("witness: v0 ok@0"));
    // n0's final log is part of the witness: its lane label is highlighted.
    assert!(html.contains("n0's final log is part of the witness"));

    // The invariant table: one row per check, lost-write marked seen and focused.
    let (run, _) = logjam_sim::run::run_schedule(&scenario, &file.schedule, 0);
    for check in &run.checks {
        assert!(
            html.contains(&format!("<span class=\"inv\">{}</span>", check.invariant)),
            "no row for {}",
            check.invariant
        );
    }
    assert!(html.contains(
        "<tr class=\"seen focus\"><td><span class=\"mark seen\">seen</span></td><td><span class=\"inv\">lost-write</span>"
    ));
    assert!(!html.contains("mark fail"), "nothing is a broken promise here");
    assert_eq!(html.matches(" focus\"").count(), 1, "exactly one focused row");

    // What happened: n0 and n1 crashed, a clog, leaders with epochs, messages and drops.
    assert!(html.contains("n0 down (crashed)"));
    assert!(html.contains("n1 down (crashed)"));
    assert!(html.contains("clog n2-&gt;n3"));
    assert!(html.contains(">leader e2</text>"));
    assert!(html.contains("marker-end=\"url(#d-arrow)\""), "message lines in the witness panel");
    assert!(html.contains("dropped"), "the drops to the crashed n1");
    // Messages coloured by kind, the legend saying which, each titled in words.
    for kind in ["message: produce", "message: fetch", "message: answer", "message: controller"] {
        assert!(html.contains(kind), "legend: no `{kind}`");
    }
    assert!(html.contains("stroke=\"#2a9d3a\" stroke-opacity"), "a produce line");
    assert!(html.contains("stroke=\"#3d6fc4\" stroke-opacity"), "a fetch line");
    assert!(html.contains(" Produce{p0 #"), "a message titled in words");

    // The header.
    assert!(html.contains(&format!("<code>{:016x}</code>", run.trace_hash)));
    assert!(html.contains(&format!("<code>{REPLAY}</code>")));
    // The verdict in the words every output shares.
    let verdict = logjam_reports::report::verdict_text(&scenario, &run);
    assert!(verdict.starts_with("expected violation: "), "{verdict}");
    assert!(verdict.contains("the scenario's known anomaly, and no broken promise"), "{verdict}");
    assert!(html.contains(&logjam_reports::html::esc(&verdict)), "{verdict}");
    assert!(html.contains("<td>seed</td><td>0</td>"));
    assert!(html.contains(&format!("<td>nodes</td><td>{}</td>", scenario.node_map())));

    assert_balanced(
        &html,
        &["svg", "g", "text", "title", "table", "tr", "td", "section", "div", "details", "pre"],
    );
}

#[test]
fn the_file_is_self_contained() {
    let html = unclean_election();
    for forbidden in [
        "http://",
        "https://",
        "//cdn",
        "<script",
        "<link",
        "<img",
        "<iframe",
        "@import",
        "@font-face",
        "src=",
    ] {
        assert!(!html.contains(forbidden), "the file references `{forbidden}`");
    }
    // Every url(...) points inside the document (patterns, markers, clip paths).
    for (at, _) in html.match_indices("url(") {
        assert_eq!(&html[at + 4..at + 5], "#", "external url at byte {at}: {}", &html[at..at + 40]);
    }
}

#[test]
fn the_same_run_renders_to_the_same_bytes() {
    let first = unclean_election();
    let second = unclean_election();
    assert!(first == second, "two renderings of the same run differ");
    // And rendering one run twice (no state kept between calls).
    let (file, scenario) = ScheduleFile::load(&repo(REGRESSION)).unwrap();
    let output = run_full(&scenario, &file.schedule, 4_000_000);
    let render = || {
        timeline(
            &scenario,
            &file.schedule,
            &output.result,
            &output.trace,
            output.history.as_ref(),
            REPLAY,
        )
    };
    assert!(render() == render());
    assert!(render() == first);
}

#[test]
fn a_run_without_a_kept_trace_still_renders_its_faults_and_operations() {
    let (file, scenario) = ScheduleFile::load(&repo(REGRESSION)).unwrap();
    let output = run_full(&scenario, &file.schedule, 0);
    assert!(output.trace.is_empty());
    let html =
        timeline(&scenario, &file.schedule, &output.result, &[], output.history.as_ref(), REPLAY);
    assert!(html.contains("No trace was kept"));
    assert!(html.contains("n0 down (crashed)"), "crashes from the schedule");
    assert!(html.contains("class=\"witness-op\""));
    assert!(!html.contains("marker-end="), "no message lines without a trace");
}

/// The largest timeline of a 100,000-event run we accept. A panel draws at most
/// `MESSAGE_LINES_MAX` message lines and `OP_BARS_MAX` operation bars; beyond that, one
/// histogram path per lane (310 bins of 3 px) and one path per lane and outcome. So the
/// file grows with the number of lanes, not with the trace: the 69 lanes of the
/// throughput scenario come to 157 KB for its 125,768 events here (166 KB for the full
/// 60 s run's 1.09 million). 512 KB leaves three times that for a busier run, and still
/// fails at once if anything is ever drawn per event (100,000 elements of even 40 bytes
/// are 4 MB).
const LONG_RUN_BYTES_MAX: usize = 512 * 1024;

#[test]
fn a_long_run_stays_small() {
    // The throughput bench scenario (3 brokers, 64 producers, 1,000 sends per simulated
    // second), its chaos phase cut from 60 s to 6 s.
    let scenario = Scenario::load(&repo("scenarios/bench/throughput.toml")).unwrap();
    let mut schedule = schedule_for(&scenario, 0);
    let chaos_ns = 6_000_000_000;
    schedule.chaos_ns = chaos_ns;
    schedule.ops.retain(|op| op.at_ns < chaos_ns);
    schedule.faults.retain(|timed| timed.at_ns < chaos_ns && timed.fault != Fault::HealAll);
    schedule.faults.push(TimedFault { at_ns: chaos_ns, fault: Fault::HealAll });
    let RunOutput { result, trace, history } = run_full(&scenario, &schedule, 4_000_000);
    assert!(trace.len() >= 100_000, "only {} trace events", trace.len());
    let messages = trace.iter().filter(|e| matches!(e.event, TraceEvent::Send { .. })).count();
    assert!(messages > MESSAGE_LINES_MAX);

    let html = timeline(&scenario, &schedule, &result, &trace, history.as_ref(), "replay");
    assert!(
        html.len() < LONG_RUN_BYTES_MAX,
        "{} bytes for {} trace events",
        html.len(),
        trace.len()
    );
    // It aggregated instead of drawing everything...
    assert!(html.contains("too many to draw one by one"));
    assert!(html.contains("client operations: binned per"));
    assert!(html.matches("<line ").count() < 200, "message lines drawn one by one");
    // ...and still shows every lane and the leaders.
    for node in 0..scenario.world.nodes {
        assert!(html.contains(&format!(" n{node}</text>")), "lane n{node} missing");
    }
    assert!(html.contains(">leader e1</text>"));
    assert_balanced(&html, &["svg", "g", "text", "title", "table", "tr"]);
}

#[test]
fn a_weak_scenario_focuses_the_anomaly_it_exists_to_find() {
    // txn-pre-kip-890 seed 3 shows lost-write (listed first) and txn-aborted-read, the
    // scenario's known anomaly: the zoomed witness is the latter, with its story.
    let scenario = Scenario::load(&repo("scenarios/txn-pre-kip-890.toml")).unwrap();
    let schedule = schedule_for(&scenario, 3);
    let RunOutput { result, trace, history } = run_full(&scenario, &schedule, 4_000_000);
    let seen = |name: &str| result.checks.iter().any(|c| c.invariant == name && c.expected_anomaly);
    assert!(seen("lost-write") && seen("txn-aborted-read"), "{:?}", result.checks);
    let html = timeline(&scenario, &schedule, &result, &trace, history.as_ref(), "replay");
    let witness = html.split("Witness:").nth(1).expect("a witness panel");
    let heading = &witness[..witness.find("</h2>").expect("its heading ends")];
    assert!(heading.contains("txn-aborted-read"), "{heading}");
    assert!(heading.contains("was acknowledged `v108` at offset 58"), "{heading}");
}
