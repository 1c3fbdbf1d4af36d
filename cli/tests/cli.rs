//! The CLI contract: commands, output and exit codes (0 all met, 1 not met, 2 bad input).

use std::path::Path;
use std::process::{Command, Output};

fn logjam(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_logjam"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("the binary runs")
}

/// `logjam` with the shard engines' variables cleared and `vars` set.
fn logjam_with_env(args: &[&str], vars: &[(&str, &str)]) -> Output {
    const SHARD_VARIABLES: &[&str] = &[
        "JOB_COMPLETION_INDEX",
        "LOGJAM_SHARD_INDEX",
        "LOGJAM_SHARD_COUNT",
        "CI_NODE_INDEX",
        "CI_NODE_TOTAL",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_COUNT",
    ];
    let mut command = Command::new(env!("CARGO_BIN_EXE_logjam"));
    command.args(args).current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    for name in SHARD_VARIABLES {
        command.env_remove(name);
    }
    command.envs(vars.iter().copied()).output().expect("the binary runs")
}

/// A file of the repository (`scenarios/smoke.toml`), as text.
fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_sweep_that_holds_exits_zero_and_says_so() {
    let output = logjam(&["run", "scenarios/smoke.toml", "--seeds", "20", "--jobs", "2"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let text = stdout(&output);
    assert!(text.contains("seeds 0..20: 20 held, 0 expected violations, 0 unexpected"), "{text}");
    assert!(text.ends_with("PASS\n"), "{text}");
}

#[test]
fn sweep_output_does_not_depend_on_the_thread_count() {
    let one = logjam(&[
        "run",
        "scenarios/volatile-counter.toml",
        "--seeds",
        "12",
        "--jobs",
        "1",
        "--json",
    ]);
    let two = logjam(&[
        "run",
        "scenarios/volatile-counter.toml",
        "--seeds",
        "12",
        "--jobs",
        "2",
        "--json",
    ]);
    assert_eq!(one.status.code(), Some(0));
    assert_eq!(stdout(&one), stdout(&two));
    let json: serde_json::Value = serde_json::from_str(&stdout(&one)).expect("valid JSON");
    assert_eq!(json["schema"], "logjam.sweep.v1");
    assert_eq!(json["seeds"], 12);
    assert_eq!(json["passed"], true);
}

#[test]
fn replay_prints_the_verdict_the_witness_and_a_stable_trace_hash() {
    let args = ["replay", "scenarios/volatile-counter.toml", "--seed", "3"];
    let first = logjam(&args);
    assert_eq!(first.status.code(), Some(0), "an expected violation is not a failure");
    let text = stdout(&first);
    for needle in [
        "trace hash ",
        "FAIL acked-durable",
        "witness: n",
        "verdict    expected violation",
        "replay     cargo run --release -p logjam -- replay scenarios/volatile-counter.toml --seed 3",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert_eq!(text, stdout(&logjam(&args)), "two replays of one seed differ");
}

#[test]
fn replay_with_trace_dumps_the_last_events() {
    let output = logjam(&[
        "replay",
        "scenarios/smoke.toml",
        "--seed",
        "1",
        "--trace",
        "--trace-events",
        "25",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.starts_with("trace (last 25 events, earlier ones not shown):\n"), "{text}");
    let event_lines =
        text.lines().filter(|line| line.starts_with("  ") && line.contains("s  n")).count();
    assert!(event_lines >= 20, "{text}");
}

#[test]
fn replay_with_trace_shows_the_events_around_the_witness_per_node() {
    let schedule = "scenarios/regressions/legacy-truncation.json";
    let output = logjam(&["replay", "--schedule", schedule, "--trace", "--trace-events", "40"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let text = stdout(&output);
    assert!(text.starts_with("trace around the witness of `lost-write` ("), "{text}");
    let lanes: Vec<&str> = text.lines().filter(|line| line.starts_with("  n")).collect();
    assert!(lanes.len() >= 2, "one lane per node: {text}");
    let events = text
        .lines()
        .filter(|line| {
            line.strip_prefix("    ").is_some_and(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    assert!((1..=40).contains(&events), "{events} events shown:\n{text}");
    // The witness itself is in the report below, history lines and all.
    assert!(text.contains("seen lost-write"), "{text}");
    assert!(text.contains("witness: `v"), "{text}");
}

#[test]
fn a_sweep_that_breaks_its_expectation_exits_one_with_replay_commands() {
    // The broken counter, but expected to hold: every crash that loses a write is a failure.
    let dir = tempfile::tempdir().unwrap();
    let path = std::path::PathBuf::from(strict_counter(dir.path()));
    let output = logjam(&["run", path.to_str().unwrap(), "--seeds", "5"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("FAIL seed 0: acked-durable violated: n"), "{text}");
    // The hash the sweep reports for a failing seed is the one its replay prints.
    let line = text
        .lines()
        .find(|line| line.starts_with("  replay:") && line.contains("--seed 0 "))
        .unwrap();
    let hash = line.rsplit("trace hash ").next().unwrap().trim_end_matches(')');
    let replay = stdout(&logjam(&["replay", path.to_str().unwrap(), "--seed", "0"]));
    assert!(replay.contains(&format!("trace hash {hash}")), "sweep said {hash}:\n{replay}");
    assert!(
        text.contains(&format!(
            "  replay: cargo run --release -p logjam -- replay {} --seed 0",
            path.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  shrink: cargo run --release -p logjam -- shrink {} --seed 0 -o volatile-counter-0.json",
            path.display()
        )),
        "{text}"
    );
    assert!(text.ends_with("FAIL\n"));
}

#[test]
fn bad_input_exits_two_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\nsystem = \"gossip-counter\"\n[cluster]\nnodes = 3\nshards = 2\n",
    )
    .unwrap();
    let bad = bad.to_str().unwrap();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["run", bad],
            format!(
                "logjam: {bad}:5:1: cluster.shards: unknown field `shards`, expected one of `nodes`, `brokers`"
            ),
        ),
        (vec!["run", "no/such.toml"], "logjam: no/such.toml: cannot read:".to_owned()),
        (
            vec!["run", "scenarios/smoke.toml", "--seeds", "0"],
            "logjam: --seeds must be between 1".to_owned(),
        ),
        (vec!["replay", "scenarios/smoke.toml"], "--seed <SEED>".to_owned()),
        (vec!["explode"], "unrecognized subcommand 'explode'".to_owned()),
    ];
    for (args, expected) in cases {
        let output = logjam(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&expected), "{args:?}\n  got:  {stderr}\n  want: {expected}");
    }
}

#[test]
fn check_judges_a_recorded_history_and_names_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("run.jsonl");
    // A seed where the weak configuration lost a write, as a sweep finds it.
    let sweep = logjam(&["run", "scenarios/acks-1-leader-crash.toml", "--seeds", "20", "--json"]);
    let sweep: serde_json::Value = serde_json::from_slice(&sweep.stdout).expect("sweep JSON");
    let seed = sweep["first_expected_seed"].as_u64().expect("acks=1 loses a write within 20 seeds");
    let seed = seed.to_string();
    let history_path = history.to_str().unwrap();
    let replay = logjam(&[
        "replay",
        "scenarios/acks-1-leader-crash.toml",
        "--seed",
        &seed,
        "--history",
        history_path,
    ]);
    assert_eq!(replay.status.code(), Some(0), "{}", String::from_utf8_lossy(&replay.stderr));
    // acks=1 promises no durability: the lost write is expected, so the history holds.
    let output = logjam(&["check", history.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("lost-write"), "{}", stdout(&output));
    // The same history claiming acks=all: now the loss is a violation.
    let text = std::fs::read_to_string(&history).unwrap().replacen(
        "\"acks\":\"1\"",
        "\"acks\":\"all\"",
        1,
    );
    let strict = dir.path().join("strict.jsonl");
    std::fs::write(&strict, &text).unwrap();
    assert_eq!(logjam(&["check", strict.to_str().unwrap()]).status.code(), Some(1));
    // A cut last line is reported with its line number, never dropped.
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, &text[..text.len() - 5]).unwrap();
    let output = logjam(&["check", cut.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let lines = text.lines().count();
    assert!(stderr.starts_with(&format!("logjam: {}:{lines}: ", cut.display())), "{stderr}");
}

/// A transactional history from the legacy protocol, checked as any system's would be:
/// the aborted read its configuration allows is expected; the same history claiming
/// KIP-890 fails; a transaction whose completion changed its micro-ops is refused.
#[test]
fn check_judges_a_transactional_history() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("txn.jsonl");
    let replay = logjam(&[
        "replay",
        "--schedule",
        "scenarios/regressions/txn-pre-kip-890.json",
        "--history",
        history.to_str().unwrap(),
    ]);
    assert_eq!(replay.status.code(), Some(0), "{}", String::from_utf8_lossy(&replay.stderr));
    let output = logjam(&["check", history.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("txn-aborted-read"), "{}", stdout(&output));
    let text = std::fs::read_to_string(&history).unwrap();
    assert!(text.contains("\"f\":\"txn\""), "a transactional history");
    let strict = dir.path().join("strict.jsonl");
    std::fs::write(&strict, text.replacen(",\"transactions\":\"pre-kip-890\"", "", 1)).unwrap();
    let output = logjam(&["check", strict.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    // The first completed transaction, its first value changed in the completion only.
    let lines: Vec<&str> = text.lines().collect();
    let (index, line) = lines
        .iter()
        .enumerate()
        .find(|(_, line)| line.contains("\"type\":\"ok\",\"f\":\"txn\""))
        .expect("a committed transaction");
    let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    edited[index] = line.replacen("\"value\":\"v", "\"value\":\"w", 1);
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, edited.join("\n") + "\n").unwrap();
    let output = logjam(&["check", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with(&format!("logjam: {}:{}: ", bad.display(), index + 1)), "{stderr}");
}

#[test]
fn shrink_writes_a_schedule_that_replay_runs_and_judges() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("acks1.json");
    let out_arg = out.to_str().unwrap();
    let shrink = logjam(&[
        "shrink",
        "scenarios/acks-1-leader-crash.toml",
        "--seed",
        "0",
        "-o",
        out_arg,
        "--max-runs",
        "400",
    ]);
    let text = stdout(&shrink);
    assert_eq!(shrink.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&shrink.stderr));
    for wanted in
        ["anomaly    lost-write", "before     ", "after      ", "trace hash ", "replay --schedule"]
    {
        assert!(text.contains(wanted), "no `{wanted}` in:\n{text}");
    }
    let hash = text.lines().find_map(|l| l.strip_prefix("trace hash ")).unwrap().to_owned();
    let replay = logjam(&["replay", "--schedule", out_arg]);
    assert_eq!(replay.status.code(), Some(0), "{}", String::from_utf8_lossy(&replay.stderr));
    let replayed = stdout(&replay);
    assert!(replayed.contains(&format!("trace hash {hash}")), "{replayed}");
    assert!(replayed.contains(&format!("replay --schedule {out_arg}")), "{replayed}");
    assert!(String::from_utf8_lossy(&replay.stderr).contains("as expected"));

    // A seed where every invariant holds has nothing to shrink: bad input.
    let nothing = logjam(&["shrink", "scenarios/smoke.toml", "--seed", "0"]);
    assert_eq!(nothing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("nothing to shrink"));
}

#[test]
fn a_schedule_outside_its_scenario_is_refused_before_it_runs() {
    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/regressions/legacy-truncation.json"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // (edit of the good file, what the error must say)
    let crash = "\"kind\": \"crash\",\n          \"node\": ";
    type Edit<'a> = &'a dyn Fn(&str) -> String;
    let jump = "\"faults\": [\n      {\n        \"at_ns\": 1,\n        \"fault\": {\n          \"kind\": \"clock-jump\",\n          \"node\": 1,\n          \"forward_ns\": 18446744073709551615\n        }\n      },";
    let twice = "\"faults\": [\n      {\n        \"at_ns\": 1,\n        \"fault\": {\n          \"kind\": \"partition\",\n          \"shape\": \"split\",\n          \"left\": [0, 0]\n        }\n      },";
    let colour = "\"kind\": \"crash\",\n          \"colour\": \"red\",";
    let cases: [(Edit, &str); 12] = [
        (&|t| t.replacen("\"faults\": [", jump, 1), "clock jump: 18446744073709551615 ns exceeds"),
        (&|t| t.replacen("\"faults\": [", twice, 1), "partition: node 0 is listed twice"),
        (&|t| t.replacen("\"node\": 7", "\"node\": 70", 1), "node 70 is not a producer"),
        (&|t| t.replacen("\"partition\": 0", "\"partition\": 5", 1), "partition 5 does not exist"),
        (&|t| t.replacen(crash, &format!("{crash}9"), 1), "node n90 does not exist"),
        (
            &|t| t.replacen(&format!("{crash}0"), &format!("{crash}5"), 1),
            "node 5 is not one this scenario's faults strike",
        ),
        (&|t| t.replacen("\"at_ns\": ", "\"at_ns\": 99", 1), "not within the chaos phase"),
        (&|t| t.replacen("\"expect\"", "\"expected\"", 1), "unknown field `expected`"),
        // Inside a fault, where serde lets unknown keys through.
        (&|t| t.replacen("\"kind\": \"crash\",", colour, 1), "unknown field `colour`"),
        (&|t| t.replacen("\"at_ns\": ", "\"at_ns\": -", 1), "invalid value: integer `-"),
        (&|t| t.replacen("logjam-schedule/1", "logjam-schedule/9", 1), "this logjam reads"),
        (&|t| t[..t.len() / 2].to_owned(), "EOF while parsing"),
    ];
    for (index, (edit, wanted)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{index}.json"));
        std::fs::write(&path, edit(&good)).unwrap();
        let output = logjam(&["replay", "--schedule", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "case {index}: {stderr}");
        assert!(stderr.contains(wanted), "case {index}: no `{wanted}` in: {stderr}");
        // The file, then the line and column of the value the problem is about.
        let place = stderr
            .strip_prefix(&format!("logjam: {}:", path.display()))
            .and_then(|rest| rest.split_once(": "))
            .map(|(place, _)| place.to_owned());
        let placed = place.as_deref().is_some_and(|place| {
            place.split(':').count() == 2 && place.split(':').all(|n| n.parse::<u32>().is_ok())
        });
        assert!(placed, "case {index} names no file:line:column: {stderr}");
        assert!(stdout(&output).is_empty(), "case {index} ran anyway");
    }
}

/// The volatile counter with its expected anomaly turned into a promise: every seed
/// fails, so sweeps of it have failures to carry.
fn strict_counter(dir: &Path) -> String {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/volatile-counter.toml");
    let text = std::fs::read_to_string(source)
        .unwrap()
        .replace("violation = \"acked-durable\"\nwithin_seeds = 5", "all_hold = true");
    let path = dir.join("strict.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn four_shards_merged_give_exactly_the_report_of_the_whole_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let strict = strict_counter(dir.path());
    for (scenario, seeds, code) in
        [("scenarios/legacy-truncation.toml", "30", 0), (strict.as_str(), "13", 1)]
    {
        let whole = logjam(&["run", scenario, "--seeds", seeds]);
        assert_eq!(whole.status.code(), Some(code));
        let mut shards = Vec::new();
        for k in 0..4 {
            let shard = format!("{k}/4");
            let output =
                logjam(&["run", scenario, "--seeds", seeds, "--shard", &shard, "--jobs", "1"]);
            let path = dir.path().join(format!("shard-{k}.jsonl"));
            std::fs::write(&path, &output.stdout).unwrap();
            shards.push(path.to_str().unwrap().to_owned());
        }
        let mut args = vec!["report", "merge"];
        // In any order.
        args.extend(shards.iter().rev().map(String::as_str));
        let merged = logjam(&args);
        assert_eq!(merged.status.code(), Some(code), "{}", String::from_utf8_lossy(&merged.stderr));
        assert_eq!(stdout(&merged), stdout(&whole), "{scenario}");

        // Missing, doubled or foreign shards are refused.
        let three = logjam(&["report", "merge", &shards[0], &shards[1], &shards[2]]);
        assert_eq!(three.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&three.stderr).contains("shards missing: 3/4"));
        let twice = logjam(&["report", "merge", &shards[0], &shards[0]]);
        assert_eq!(twice.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&twice.stderr).contains("given twice"));
    }
    // Shards of a scenario file edited since they ran are refused.
    let mut args = vec!["report", "merge"];
    let shards: Vec<String> = (0..4)
        .map(|k| {
            let output = logjam(&["run", &strict, "--seeds", "13", "--shard", &format!("{k}/4")]);
            let path = dir.path().join(format!("again-{k}.jsonl"));
            std::fs::write(&path, &output.stdout).unwrap();
            path.to_str().unwrap().to_owned()
        })
        .collect();
    args.extend(shards.iter().map(String::as_str));
    let mut edited = std::fs::read_to_string(&strict).unwrap();
    edited.push_str("\n# edited after the shards ran\n");
    std::fs::write(&strict, edited).unwrap();
    let stale = logjam(&args);
    assert_eq!(stale.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("not the one the shards ran"));

    let broken = dir.path().join("broken.jsonl");
    std::fs::write(&broken, "{\"schema\": \"logjam.shard.v1\", \"shard\": 0}\n").unwrap();
    let output = logjam(&["report", "merge", broken.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.jsonl:1:") && stderr.contains("missing field"), "{stderr}");
}

#[test]
fn a_time_budget_sweeps_from_a_random_start_and_writes_every_failure() {
    let dir = tempfile::tempdir().unwrap();
    let strict = strict_counter(dir.path());
    let failures = dir.path().join("failures");
    let output = logjam(&[
        "run",
        &strict,
        "--time-budget",
        "1s",
        "--jobs",
        "1",
        "--failures",
        failures.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("sweeping from seed "), "{stderr}");
    let mut files: Vec<_> =
        std::fs::read_dir(&failures).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no failure written: {stderr}");
    // Each one replays as the failure it was.
    let replay = logjam(&["replay", "--schedule", files[0].to_str().unwrap()]);
    assert_eq!(replay.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&replay.stderr).contains("the bug is back"));
}

#[test]
fn an_under_covered_sweep_fails_and_the_report_shows_coverage() {
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.toml");
    // The smoke scenario injects no faults: demanding crashes cannot be met.
    let text = std::fs::read_to_string(source).unwrap() + "\n[coverage]\ncrash = \"10%\"\n";
    let path = dir.path().join("demanding.toml");
    std::fs::write(&path, text).unwrap();
    let report = dir.path().join("sweep.md");
    let output = logjam(&[
        "run",
        path.to_str().unwrap(),
        "--seeds",
        "4",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains(
            "FAIL under-covered: `crash` reached in 0 of 4 runs; the scenario requires at least 10% (1 runs)"
        ),
        "{text}"
    );
    let markdown = std::fs::read_to_string(&report).unwrap();
    assert!(markdown.starts_with("# Sweep: smoke seeds 0..4"), "{markdown}");
    assert!(markdown.contains("| `crash` | 0 | 0.0% | at least 10% |"), "{markdown}");
    assert!(markdown.contains("| `leader-election` |"), "{markdown}");
    assert!(markdown.contains("- FAIL under-covered"), "{markdown}");
}

#[test]
fn replay_writes_a_self_contained_html_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("timeline.html");
    let schedule = "scenarios/regressions/unclean-election.json";
    let output = logjam(&["replay", "--schedule", schedule, "--html", page.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..80.min(html.len())]);
    for wanted in ["broker n0", "controller n3", "lost-write", "witness"] {
        assert!(html.contains(wanted), "no `{wanted}` in the timeline");
    }
    assert!(!html.contains("http://") && !html.contains("https://"), "not self-contained");
}

/// `logjam check` words its errors in the format's terms, not its reading types', exits
/// 2 with the file and line, cuts a quoted value, and reads a byte-order mark first.
#[test]
fn check_words_bad_lines_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let header = r#"{"v":1,"system":"s","config":{}}"#;
    let send =
        r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"send","partition":0,"value":"a"}"#;
    let huge = "x".repeat(10_000_000);
    let cases = [
        (
            format!(
                "{header}\n{}\n",
                send.replace(r#""t_ns":1"#, r#""t_ns":18446744073709551616"#)
            ),
            "2: malformed line: integer 18446744073709551616 is out of range, expected an integer from 0 to 18446744073709551615 (column 34)",
        ),
        (
            format!("{header}\n[0,1]\n"),
            "2: malformed line: expected a JSON object {...} on every line, found an array",
        ),
        (
            format!(
                "{header}\n{send}\n{}\n",
                send.replace("invoke", "ok")
                    .replace(r#""i":0"#, r#""i":1"#)
                    .replace(r#""value":"a""#, &format!(r#""value":"{huge}""#))
            ),
            "3: ok does not match its invoke on line 2: value `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… (10000000 bytes)` vs `a`",
        ),
    ];
    for (index, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad-{index}.jsonl"));
        std::fs::write(&path, text).unwrap();
        let output = logjam(&["check", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim_end(), format!("logjam: {}:{expected}", path.display()));
    }
    let bom = dir.path().join("bom.jsonl");
    let ok = send
        .replace("invoke", "ok")
        .replace(r#""i":0"#, r#""i":1"#)
        .replace("}", r#","offset":0}"#);
    std::fs::write(&bom, format!("\u{feff}{header}\n{send}\n{ok}\n")).unwrap();
    let output = logjam(&["check", bom.to_str().unwrap()]);
    assert_ne!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout(&output).contains("1 operations"), "{}", stdout(&output));
}

/// What a newcomer meets first (issue 22 part 5): a weak sweep says how to replay and
/// shrink what it found and at which seeds; the report lists those seeds; the rate
/// line counts in words; the invariant column stays aligned; a scenario without
/// `about` prints no dangling colon.
#[test]
fn a_weak_sweep_shows_replay_shrink_and_the_seeds_that_showed_its_anomaly() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let report = dir.path().join("sweep.md");
    let report_arg = report.to_str().expect("a UTF-8 path");
    let output = logjam(&[
        "run",
        "scenarios/volatile-counter.toml",
        "--seeds",
        "12",
        "--jobs",
        "1",
        "--report",
        report_arg,
    ]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.contains("expected violation first seen at seed"), "{text}");
    // The node numbering, in every report header.
    assert!(text.lines().nth(1).is_some_and(|line| line.starts_with("nodes    ")), "{text}");
    assert!(text.contains("  replay: cargo run --release -p logjam -- replay scenarios/volatile-counter.toml --seed"), "{text}");
    assert!(text.contains("  shrink: cargo run --release -p logjam -- shrink scenarios/volatile-counter.toml --seed"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&logjam(&[
        "run",
        "scenarios/volatile-counter.toml",
        "--seeds",
        "12",
        "--json",
    ])))
    .expect("JSON");
    let seeds: Vec<String> = json["expected_seeds"]
        .as_array()
        .expect("expected seeds")
        .iter()
        .map(|seed| seed.to_string())
        .collect();
    assert!(!seeds.is_empty());
    if seeds.len() > 1 {
        assert!(text.contains(&format!("  seen at seeds {}", seeds.join(", "))), "{text}");
    }
    let markdown = std::fs::read_to_string(&report).expect("the report");
    assert!(markdown.contains("## Seeds that showed the expected anomaly"), "{markdown}");
    assert!(markdown.contains("\nNodes: "), "{markdown}");
    assert!(markdown.contains(&seeds.join(", ")), "{markdown}");
    assert!(
        markdown.contains("  - shrink: `cargo run --release -p logjam -- shrink"),
        "{markdown}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("12 seeds in ") && stderr.contains(" on 1 thread ("), "{stderr}");
    assert!(stderr.contains(" seeds/s)"), "{stderr}");

    // A scenario without `about`: no dangling colon.
    let plain = dir.path().join("plain.toml");
    let text = repo_file("scenarios/smoke.toml");
    let text: String =
        text.lines().filter(|line| !line.starts_with("about")).collect::<Vec<_>>().join("\n");
    std::fs::write(&plain, text).expect("written");
    let output = logjam(&["run", plain.to_str().expect("UTF-8"), "--seeds", "2"]);
    let first = stdout(&output).lines().next().unwrap_or_default().to_owned();
    assert!(first.starts_with("scenario smoke (") && first.ends_with(')'), "{first}");
}

#[test]
fn replay_keeps_the_invariant_column_aligned() {
    let output = logjam(&["replay", "scenarios/smoke.toml", "--seed", "1"]);
    let text = stdout(&output);
    let columns: Vec<usize> = text
        .lines()
        .filter(|line| {
            line.starts_with("  ok   ")
                || line.starts_with("  seen ")
                || line.starts_with("  FAIL ")
        })
        .map(|line| {
            let rest = &line[7..];
            7 + rest.find(' ').expect("a name")
                + rest[rest.find(' ').unwrap()..].find(|c| c != ' ').unwrap()
        })
        .collect();
    assert!(columns.len() > 10, "{text}");
    assert!(columns.windows(2).all(|pair| pair[0] == pair[1]), "misaligned: {columns:?}\n{text}");
}

/// Every argument of every command is described, every command lists the exit codes,
/// and bare `replay` says it also takes `--schedule`.
#[test]
fn help_describes_every_argument_and_lists_the_exit_codes() {
    for command in [
        &["--help"][..],
        &["run", "--help"],
        &["replay", "--help"],
        &["shrink", "--help"],
        &["check", "--help"],
        &["report", "merge", "--help"],
    ] {
        let output = logjam(command);
        assert_eq!(output.status.code(), Some(0), "{command:?}");
        let help = stdout(&output);
        assert!(
            help.contains("Exit codes:\n  0  ") && help.contains("\n  2  bad input"),
            "{command:?}:\n{help}"
        );
        // An argument line with nothing after its name is undescribed.
        for line in help
            .lines()
            .filter(|line| line.starts_with("  ") && line.trim_start().starts_with(['-', '<', '[']))
        {
            let described =
                line.trim_start().split("  ").filter(|part| !part.trim().is_empty()).count() > 1;
            assert!(described, "{command:?}: `{line}` is not described");
        }
    }
    let bare = logjam(&["replay"]);
    assert_eq!(bare.status.code(), Some(2));
    let error = String::from_utf8_lossy(&bare.stderr);
    assert!(error.contains("--schedule <FILE>"), "{error}");
}

/// The report of a schedule file shows the schedule's own phases and faults, not the
/// scenario's menus.
#[test]
fn a_schedule_replay_reports_the_schedules_own_phases_and_faults() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let report = dir.path().join("run.md");
    let file = "scenarios/regressions/acks-1-leader-crash.json";
    let output =
        logjam(&["replay", "--schedule", file, "--report", report.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let text = stdout(&output);
    let schedule =
        text.lines().find(|line| line.starts_with("schedule   ")).expect("a schedule line");
    assert!(
        schedule.contains("2 faults (crash node 0 at ") && schedule.contains("heal-all at"),
        "{schedule}"
    );
    assert!(schedule.contains("3 operations"), "{schedule}");
    let markdown = std::fs::read_to_string(&report).expect("the report");
    assert!(markdown.contains("| schedule | chaos 0.208991186s"), "{markdown}");
    // The scenario's own phases (8s of chaos) are not shown as the run's.
    assert!(markdown.contains("`chaos=208991186ns`"), "{markdown}");
    let scenario = repo_file("scenarios/acks-1-leader-crash.toml");
    assert!(!scenario.contains("chaos = \"208991186ns\""), "the scenario's phases differ");
}

/// `--trace` shows each message's type and key fields next to its number and digest,
/// and asking for the trace changes nothing of the run.
#[test]
fn the_trace_shows_messages_in_words_and_leaves_the_run_unchanged() {
    let traced = stdout(&logjam(&["replay", "scenarios/smoke.toml", "--seed", "1", "--trace"]));
    let plain = stdout(&logjam(&["replay", "scenarios/smoke.toml", "--seed", "1"]));
    let hash = |text: &str| text.lines().find(|l| l.starts_with("trace hash")).map(str::to_owned);
    assert_eq!(hash(&traced), hash(&plain));
    let sends: Vec<&str> = traced.lines().filter(|line| line.contains(" send #")).collect();
    assert!(!sends.is_empty(), "{traced}");
    for line in &sends {
        let words = line.split(" send #").nth(1).expect("a message");
        assert!(words.contains('{') && words.ends_with(')'), "not in words: {line}");
    }
    assert!(traced.contains("Fetch{p") && traced.contains("FetchResponse{p"), "{traced}");
}

/// A sweep of a weak setup expected to hold says how many of its held runs showed
/// anomalies the configuration allows: "40 held" alone would hide them.
#[test]
fn a_held_sweep_of_a_weak_setup_counts_the_runs_with_allowed_anomalies() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let text = repo_file("scenarios/unclean-election.toml");
    let cut = text.find("[expect]").expect("an [expect] table");
    let path = dir.path().join("unclean-all-hold.toml");
    std::fs::write(&path, format!("{}[expect]\nall_hold = true\n", &text[..cut])).expect("written");
    let path = path.to_str().expect("UTF-8");
    let output = logjam(&["run", path, "--seeds", "20"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    let line = text.lines().find(|line| line.starts_with("seeds 0..20: ")).expect("the tally");
    assert!(
        line.contains("20 held (") && line.contains(" with anomalies the configuration allows)"),
        "{line}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&logjam(&["run", path, "--seeds", "20", "--json"])))
            .expect("JSON");
    let with = json["held_with_anomalies"].as_u64().expect("a count");
    assert!(with > 0 && line.contains(&format!("({with} with")), "{line}");
}

/// A sweep that tested nothing does not pass silently: no client operation started, or
/// a fault kind the scenario configures never struck, is under-covered by default.
#[test]
fn a_sweep_whose_workload_or_faults_never_ran_is_under_covered() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let smoke = repo_file("scenarios/smoke.toml");
    let cases = [
        (
            "no-ops",
            smoke.replace(&line_of(&smoke, "ops_per_s"), "ops_per_s = 0"),
            "none of the 4 runs started a client operation (workload.ops_per_s = 0)",
        ),
        (
            "crash-never",
            smoke.replace("[phases]\n", "[faults]\ncrash = { every = [\"100s\", \"200s\"], down_for = [\"10ms\", \"20ms\"] }\n\n[phases]\n"),
            "`crash` reached in none of 4 runs; the scenario's faults include it",
        ),
    ];
    for (name, text, says) in cases {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("written");
        let output = logjam(&["run", path.to_str().expect("UTF-8"), "--seeds", "4"]);
        assert_eq!(output.status.code(), Some(1), "{name}: {}", stdout(&output));
        assert!(stdout(&output).contains(says), "{name}: {}", stdout(&output));
    }
}

fn line_of(text: &str, key: &str) -> String {
    text.lines().find(|line| line.starts_with(key)).expect("the key").to_owned()
}

/// The coverage table lists only what the scenario can reach: no transaction rows
/// without transactions, no fault the scenario does not configure.
#[test]
fn the_coverage_table_lists_only_what_the_scenario_can_reach() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let report = dir.path().join("sweep.md");
    let output = logjam(&[
        "run",
        "scenarios/smoke.toml",
        "--seeds",
        "3",
        "--report",
        report.to_str().expect("UTF-8"),
    ]);
    assert_eq!(output.status.code(), Some(0));
    let markdown = std::fs::read_to_string(&report).expect("the report");
    for absent in ["`txn-commit`", "`projection-restart`", "`crash`", "`disk-fault`"] {
        assert!(!markdown.contains(absent), "{absent} listed:\n{markdown}");
    }
    assert!(markdown.contains("`leader-election`"), "{markdown}");
    let report = dir.path().join("txn.md");
    let output = logjam(&[
        "run",
        "scenarios/bank-transactions.toml",
        "--seeds",
        "2",
        "--report",
        report.to_str().expect("UTF-8"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let markdown = std::fs::read_to_string(&report).expect("the report");
    assert!(markdown.contains("`txn-commit`") && markdown.contains("`crash`"), "{markdown}");
}

/// The README's shrink example is what the command prints (the wall time aside).
#[test]
fn the_readmes_shrink_example_is_what_shrink_prints() {
    let readme = repo_file("README.md");
    let prompt = "$ cargo run --release -p logjam -- shrink ";
    let block = readme.split(prompt).nth(1).expect("the shrink example");
    let block = block.split("```").next().expect("a closed block");
    let (command, shown) = block.split_once('\n').expect("a command line");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let output_path = dir.path().join("lt.json");
    let mut args: Vec<String> =
        std::iter::once("shrink").chain(command.split_whitespace()).map(str::to_owned).collect();
    let at = args.iter().position(|arg| arg == "-o").expect("-o FILE");
    args[at + 1] = output_path.to_str().expect("UTF-8").to_owned();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = logjam(&args);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = stdout(&output).replace(output_path.to_str().expect("UTF-8"), "lt.json");
    let timeless = |text: &str| -> String {
        text.lines()
            .map(|line| match line.find(" runs in ") {
                Some(at) => format!("{} runs in ...)", &line[..at]),
                None => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(timeless(printed.trim_end()), timeless(shown.trim_end()));
}

/// `--shard auto` under each engine's variables: the shards merged are exactly the
/// sweep run whole, and without any engine the shard is refused, naming what to set.
#[test]
fn shards_from_the_engines_environment_merge_into_the_whole_sweep() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let scenario = "scenarios/legacy-truncation.toml";
    let whole = logjam(&["run", scenario, "--seeds", "16"]);
    type Env = &'static [(&'static str, &'static str)];
    let engines: [(&str, [Env; 2]); 4] = [
        (
            "kubernetes",
            [
                &[("JOB_COMPLETION_INDEX", "0"), ("LOGJAM_SHARD_COUNT", "2")],
                &[("JOB_COMPLETION_INDEX", "1"), ("LOGJAM_SHARD_COUNT", "2")],
            ],
        ),
        (
            "github",
            [
                &[("LOGJAM_SHARD_INDEX", "0"), ("LOGJAM_SHARD_COUNT", "2")],
                &[("LOGJAM_SHARD_INDEX", "1"), ("LOGJAM_SHARD_COUNT", "2")],
            ],
        ),
        (
            "gitlab",
            [
                &[("CI_NODE_INDEX", "1"), ("CI_NODE_TOTAL", "2")],
                &[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "2")],
            ],
        ),
        (
            "slurm",
            [
                &[
                    ("SLURM_ARRAY_TASK_ID", "4"),
                    ("SLURM_ARRAY_TASK_MIN", "4"),
                    ("SLURM_ARRAY_TASK_COUNT", "2"),
                ],
                &[
                    ("SLURM_ARRAY_TASK_ID", "5"),
                    ("SLURM_ARRAY_TASK_MIN", "4"),
                    ("SLURM_ARRAY_TASK_COUNT", "2"),
                ],
            ],
        ),
    ];
    for (engine, shards) in engines {
        let mut files = Vec::new();
        for (k, vars) in shards.iter().enumerate() {
            let output =
                logjam_with_env(&["run", scenario, "--seeds", "16", "--shard", "auto"], vars);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains(&format!("shard {k}/2 (from ")), "{engine}: {stderr}");
            let path = dir.path().join(format!("{engine}-{k}.jsonl"));
            std::fs::write(&path, &output.stdout).expect("written");
            files.push(path.to_str().expect("UTF-8").to_owned());
        }
        let merged = logjam(&["report", "merge", &files[0], &files[1]]);
        assert_eq!(merged.status.code(), whole.status.code(), "{engine}");
        assert_eq!(stdout(&merged), stdout(&whole), "{engine}");
    }
    let output = logjam_with_env(&["run", scenario, "--seeds", "4", "--shard", "auto"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no shard in the environment") && stderr.contains("JOB_COMPLETION_INDEX"),
        "{stderr}"
    );
}
