//! The checkers on small hand-written histories (`tests/histories/*.jsonl`), one row
//! each: the file, the invariants it must violate, and those it must break only as
//! expected under its configuration (or that it holds nothing to judge).
//! `tests/histories/jepsen/` holds Jepsen's own checker cases (jepsen-io/jepsen,
//! `jepsen/test/jepsen/tests/kafka_test.clj`), one file per case, whose header's
//! `about` names the Jepsen test and argues any difference from Jepsen's verdict. Every anomaly kind has a history that shows it
//! and nothing else; the valid histories include the tricky cases (indeterminate sends
//! that did and did not land, concurrent sends landing in either order, a poll racing
//! a send, a seek back) and configurations under which a loss is expected.

use std::path::Path;

use logjam_model::{Invariant, Judgement, Verdict, Witness, check, parse_history};

struct Row {
    file: &'static str,
    violated: &'static [&'static str],
    expected: &'static [&'static str],
    /// The history holds nothing to judge, and must say so rather than hold.
    nothing: bool,
}

const fn row(
    file: &'static str,
    violated: &'static [&'static str],
    expected: &'static [&'static str],
) -> Row {
    Row { file, violated, expected, nothing: false }
}

const fn nothing(file: &'static str) -> Row {
    Row { file, violated: &[], expected: &[], nothing: true }
}

const TABLE: &[Row] = &[
    // One anomaly kind each.
    row("lost-write-final-log", &["lost-write"], &[]),
    row("lost-write-poll", &["lost-write"], &[]),
    row("unseen", &["unseen"], &[]),
    row("duplicate", &["duplicate"], &[]),
    row("inconsistent-offsets", &["inconsistent-offsets"], &[]),
    row("phantom-never-sent", &["phantom"], &[]),
    row("phantom-other-key", &["phantom"], &[]),
    row("phantom-read-before-sent", &["phantom"], &[]),
    row("aborted-read", &["aborted-read"], &[]),
    row("nonmonotonic-poll", &["nonmonotonic-poll"], &[]),
    row("poll-skip", &["poll-skip"], &[]),
    row("nonmonotonic-send", &["nonmonotonic-send"], &[]),
    row("realtime-order", &["realtime-order"], &[]),
    row("committed-read-changed", &["committed-read-changed"], &[]),
    row("committed-read-changed-above-final-hw", &["committed-read-changed"], &[]),
    row("replica-log-order", &["replica-log-order"], &[]),
    // Logs apart at the end have also not converged.
    row("divergence", &["divergence", "not-converged"], &[]),
    // Unclean election may let logs part, never leave them apart.
    row("divergence-allowed-never-converged", &["not-converged"], &["divergence"]),
    // Nor do truncation rules that cannot find where logs parted (pre-KIP-101's high
    // watermark, KIP-101's single question): their logs may part, never stay apart; the
    // weak settings are caught by not-converged.
    row("divergence-legacy-truncation-never-converged", &["not-converged"], &["divergence"]),
    row("divergence-kip-101-never-converged", &["not-converged"], &["divergence"]),
    row("multiple-leaders", &["multiple-leaders"], &[]),
    row("epoch-regression", &["epoch-regression"], &[]),
    row("hw-regression", &["hw-regression"], &[]),
    row("truncation-below-hw", &["truncation-below-hw"], &[]),
    row("recovery-prefix", &["recovery-prefix"], &[]),
    row("valid-recovery-prefix", &[], &[]),
    row("still-pending", &["still-pending"], &[]),
    row("not-converged", &["not-converged"], &[]),
    // Transactions, one anomaly kind each.
    row("txn-aborted-read", &["txn-aborted-read"], &[]),
    row("txn-aborted-read-final-view", &["txn-aborted-read"], &[]),
    // KIP-890's late write, under the legacy protocol that allows it.
    row(
        "txn-aborted-read-late-write",
        &[],
        &["lost-write", "inconsistent-offsets", "txn-aborted-read"],
    ),
    row("read-past-lso", &["read-past-lso"], &[]),
    row("atomic-visibility", &["atomic-visibility"], &[]),
    // The same on a lossy log: allowed, as a consequence of the loss.
    row("atomic-visibility-lossy-log", &[], &["atomic-visibility"]),
    row("zombie-write", &["zombie-write"], &[]),
    row("exactly-once", &["exactly-once"], &[]),
    row("hanging-transaction", &["hanging-transaction"], &[]),
    // A group that processed input 0 of two and stopped, in a history whose header says
    // processors had time to finish: exactly once, but stuck.
    row("processing-progress", &["processing-progress"], &[]),
    // A group the header declares that never ran a transaction: stuck from its start
    // (no transaction names it, so only the header makes it known).
    row("processing-progress-never-started", &["processing-progress"], &[]),
    // A read_uncommitted poll of an aborted transaction: never a violation.
    row("dirty-read", &[], &["dirty-read"]),
    // A read past the last stable offset of a transaction left hanging.
    row("read-past-lso-hanging", &["read-past-lso", "hanging-transaction"], &[]),
    // A reader saw one partition of a committed transaction and read across its
    // record on the other (which is also an acknowledged send read across: lost).
    row("atomic-visibility-seen-by-reader", &["atomic-visibility", "lost-write"], &[]),
    // Valid: nothing at all to report.
    row("valid-replicated", &[], &[]),
    row("valid-info-landed", &[], &[]),
    row("valid-info-and-fail-not-landed", &[], &[]),
    row("valid-concurrent-sends-either-order", &[], &[]),
    row("valid-poll-races-send", &[], &[]),
    row("valid-assign-seeks-back", &[], &[]),
    row("valid-jepsen-style-final-reads", &[], &[]),
    // A history without final logs: a transaction whose commit went unanswered, read
    // at read_committed, committed (read-past-lso cannot say otherwise without the
    // final log, and exactly-once counts its input range).
    row("valid-info-txn-read-without-final-logs", &[], &[]),
    // Committed, aborted and fenced transactions, consume-transform-produce offsets,
    // control markers leaving gaps, a read inside a transaction.
    row("valid-transactions", &[], &[]),
    row("valid-processor-declared-finished", &[], &[]),
    // Regression, found by the broker's cluster runs: an old leader that rejoins cuts
    // its own divergent, never-committed tail below the new leader's high watermark
    // (KIP-101). Not a truncation below a watermark it ever reported.
    row("valid-old-leader-cuts-its-divergent-tail", &[], &[]),
    // Regression, found by the flush-never power-loss scenario: an acknowledged send
    // that consumers read, gone from a final log committed past its offset, is a lost
    // write too (the first version counted any read as proof it survived).
    row("lost-write-read-then-gone", &["lost-write", "committed-read-changed"], &[]),
    // Valid under their configuration: the loss is the documented price of it.
    row("expected-loss-acks-1", &[], &["lost-write", "inconsistent-offsets"]),
    row("expected-duplicate-without-idempotence", &[], &["duplicate"]),
    row("expected-unclean-election", &[], &["committed-read-changed", "truncation-below-hw"]),
    row("expected-loss-stated-promises", &[], &["lost-write"]),
    // The legacy transaction protocol: a fenced producer's transaction commits, and a
    // late produce deduplicated into an aborted transaction loses an acknowledged send.
    row("expected-txn-anomalies-pre-kip-890", &[], &["zombie-write", "lost-write"]),
    // The kinds Jepsen names that logjam folded or missed, each with its near-miss.
    row("precommitted-read", &["precommitted-read"], &[]),
    row("valid-reads-of-other-transactions", &[], &[]),
    // Assigns without a seek (a partition that stays assigned keeps its position) and
    // consumer groups (skips and rewinds across a rebalance allowed, not below the
    // group's committed offset), each with the valid near-miss.
    row("assign-no-seek-skip", &["poll-skip"], &[]),
    row("assign-no-seek-rewind", &["nonmonotonic-poll"], &[]),
    row("valid-assign-no-seek", &[], &[]),
    row("subscribe-poll-skip", &["poll-skip"], &[]),
    row("subscribe-rebalance-below-committed", &["nonmonotonic-poll"], &[]),
    row("valid-subscribe-rebalance", &[], &[]),
    row("int-nonmonotonic-poll", &["int-nonmonotonic-poll"], &[]),
    row("int-poll-skip", &["int-poll-skip"], &[]),
    row("valid-polls-step-over-gaps", &[], &[]),
    row("int-nonmonotonic-send", &["int-nonmonotonic-send"], &[]),
    row("int-send-skip", &[], &["int-send-skip"]),
    row("int-send-skip-write-isolation", &["int-send-skip"], &[]),
    row("valid-transaction-sends-in-order", &[], &[]),
    row("lost-write-consumer-passed-it", &["lost-write"], &[]),
    row("unseen-after-a-seek", &["unseen"], &[]),
    // Cycles in the transactions' dependency graph.
    row("g0", &[], &["g0"]),
    row("g0-write-isolation", &["g0"], &[]),
    row("g1c", &["g1c"], &[]),
    row("valid-dependencies-point-forward", &[], &[]),
    // Results stated on info and fail completions.
    row("valid-results-of-indeterminate-operations", &[], &[]),
    // Nothing to judge is its own verdict; one completed poll is something.
    nothing("nothing-to-judge"),
    row("valid-one-empty-poll", &[], &[]),
    // Jepsen's kafka_test.clj, case by case (the `about` of each says which).
    row("jepsen/inconsistent-offsets-info-unproven", &["unseen"], &[]),
    row("jepsen/inconsistent-offsets-info-proven", &["inconsistent-offsets", "unseen"], &[]),
    row("jepsen/g1a", &["txn-aborted-read"], &[]),
    row(
        "jepsen/lost-write-consistent",
        &["lost-write", "unseen", "realtime-order"],
        &["int-send-skip"],
    ),
    row("jepsen/lost-write-inconsistent", &["lost-write", "inconsistent-offsets"], &[]),
    row("jepsen/lost-write-atomic-unproven", &[], &[]),
    row("jepsen/lost-write-atomic-proven", &["lost-write"], &[]),
    row("jepsen/poll-skip", &["poll-skip", "lost-write"], &["int-send-skip"]),
    row("jepsen/poll-skip-txn-abort-good", &[], &[]),
    row("jepsen/poll-skip-txn-abort-no-rollback", &["poll-skip"], &[]),
    row("jepsen/poll-skip-txn-abort-info", &["poll-skip", "unseen"], &[]),
    row("jepsen/nonmonotonic-poll", &["nonmonotonic-poll"], &[]),
    row("jepsen/nonmonotonic-send", &["nonmonotonic-send", "unseen"], &[]),
    row("jepsen/int-poll-skip", &["int-poll-skip"], &[]),
    row("jepsen/int-send-skip", &["lost-write"], &["int-send-skip"]),
    row("jepsen/int-nonmonotonic-poll", &["int-nonmonotonic-poll"], &[]),
    row("jepsen/int-nonmonotonic-send", &["int-nonmonotonic-send", "unseen"], &[]),
    row("jepsen/duplicate", &["duplicate"], &[]),
    row(
        "jepsen/duplicate-hash-insensitive",
        &["duplicate", "inconsistent-offsets", "committed-read-changed", "nonmonotonic-poll"],
        &[],
    ),
    row("jepsen/duplicate-aborted-txns", &["duplicate", "aborted-read"], &[]),
    nothing("jepsen/empty-history"),
    row("jepsen/unseen", &[], &[]),
    row("jepsen/precommitted-read", &["precommitted-read"], &[]),
    row("jepsen/g0", &["unseen"], &["g0"]),
    row("jepsen/g1c-pure-wr", &["g1c"], &[]),
    row("jepsen/g1c-ww-wr", &["unseen"], &["g1c"]),
];

fn histories() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/histories"))
}

fn verdict_of(file: &str) -> (Verdict, u64) {
    let path = histories().join(format!("{file}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let history = parse_history(text.as_bytes()).unwrap_or_else(|e| panic!("{}", e.in_file(file)));
    (check(&history), text.lines().count() as u64)
}

fn names(invariants: Vec<Invariant>) -> Vec<&'static str> {
    let mut names: Vec<&str> = invariants.into_iter().map(Invariant::name).collect();
    names.sort_unstable();
    names
}

fn sorted(names: &[&'static str]) -> Vec<&'static str> {
    let mut names = names.to_vec();
    names.sort_unstable();
    names
}

#[test]
fn each_history_gets_exactly_its_verdict() {
    // Every row is judged before the test fails, so one run names every wrong verdict.
    let wrong: Vec<String> = TABLE.iter().filter_map(wrong_verdict).collect();
    assert!(wrong.is_empty(), "{} wrong verdicts:\n\n{}", wrong.len(), wrong.join("\n\n"));
}

/// What is wrong with a row's verdict, if anything.
fn wrong_verdict(row: &Row) -> Option<String> {
    let (verdict, lines) = verdict_of(row.file);
    let file = row.file;
    let (violated, expected) = (names(verdict.violated()), names(verdict.expected()));
    if violated != sorted(row.violated) || expected != sorted(row.expected) {
        return Some(format!(
            "{file}: violated {violated:?} (want {:?}), expected {expected:?} (want {:?})\n{verdict}",
            sorted(row.violated),
            sorted(row.expected)
        ));
    }
    if verdict.holds() != (row.violated.is_empty() && !row.nothing)
        || verdict.nothing_to_judge != row.nothing
    {
        return Some(format!(
            "{file}: nothing to judge is {}\n{verdict}",
            verdict.nothing_to_judge
        ));
    }
    verdict.anomalies.iter().find_map(|anomaly| {
        // Every anomaly explains itself, points at real lines of the file, and is a
        // violation exactly when its guarantee was promised.
        let explained = !anomaly.explanation.is_empty() && !anomaly.witness.is_empty();
        let lines_real = anomaly.witness.iter().all(|w| (2..=lines).contains(&w.line()));
        let judged_violation = anomaly.judgement == Judgement::Violation;
        let judged_right = judged_violation == verdict.promises.contains(&anomaly.guarantee);
        (!(explained && lines_real && judged_right)).then(|| format!("{file}: {anomaly}"))
    })
}

/// Kinds that imply another: logs apart below both high watermarks at the end are also
/// logs that never converged.
const IMPLIES: &[(&str, &str)] = &[("divergence", "not-converged")];

#[test]
fn every_anomaly_kind_has_a_history_showing_it_alone() {
    for invariant in Invariant::ALL {
        // An anomaly no configuration may promise to prevent is shown as expected.
        let mut alone = vec![invariant.name()];
        alone.extend(IMPLIES.iter().filter(|(kind, _)| *kind == invariant.name()).map(|p| p.1));
        let (violated, expected): (&[&str], &[&str]) =
            if invariant.guarantee().promisable() { (&alone, &[]) } else { (&[], &alone) };
        let shown_alone =
            TABLE.iter().any(|row| row.violated == violated && row.expected == expected);
        assert!(shown_alone, "no history shows {invariant} alone");
    }
}

#[test]
fn every_history_file_is_in_the_table() {
    let files_in = |dir: &str| -> Vec<String> {
        std::fs::read_dir(histories().join(dir))
            .expect("the histories directory exists")
            .map(|entry| entry.expect("readable"))
            .filter(|entry| entry.file_type().expect("readable").is_file())
            .map(|entry| format!("{dir}{}", entry.file_name().to_string_lossy()))
            .collect()
    };
    let mut files = files_in("");
    files.extend(files_in("jepsen/"));
    files.sort_unstable();
    let mut listed: Vec<String> = TABLE.iter().map(|row| format!("{}.jsonl", row.file)).collect();
    listed.sort_unstable();
    assert_eq!(files, listed);
}

#[test]
fn witnesses_are_the_few_lines_that_prove_it() {
    // Spot checks of what a person reads: the explanation and the exact lines.
    let cases: &[(&str, &str, &[u64])] = &[
        (
            "lost-write-final-log",
            "`a` was acknowledged at offset 0, which n0 has committed without it",
            &[3, 6],
        ),
        (
            "lost-write-poll",
            "`a` was acknowledged at offset 0, but a poll read across that offset without it",
            &[3, 7],
        ),
        ("poll-skip", "read offset 2 but skipped offset 1, which holds `b`", &[9, 11, 13]),
        (
            "realtime-order",
            "`b` was sent after process 0 had a send acknowledged at offset 1, but it landed at offset 0",
            &[3, 4, 5],
        ),
        ("committed-read-changed", "`a` was read at offset 0, and later `b` is there", &[7, 8]),
        (
            "divergence",
            "n0 and n1 differ at offset 1, below both high watermarks (2 and 2): n0 holds `b`, acknowledged at 0.000000s; n1 holds `c`, sent (indeterminate) at 0.000000s",
            &[5, 7, 8, 9],
        ),
        (
            "txn-aborted-read",
            "`t1` at offset 0 was read at read_committed, but its transaction failed",
            &[3, 5],
        ),
        (
            "txn-aborted-read-late-write",
            "`a1` at offset 0 was read at read_committed, but its transaction failed; it failed at 0.200000s, and the same producer's later transaction `tx` (committed at 0.400000s, line 5) was acknowledged `b1` at offset 0, where n0's final log holds `a1`: the late write passed for that send and was committed with it",
            // The abort, the later commit, the read, and the final log.
            &[3, 5, 7, 8],
        ),
        (
            "atomic-visibility",
            "transaction `tx` of process 0 is partly visible: `a` (partition 0) is in the final read_committed view, `b` (partition 1) is not",
            &[3, 4],
        ),
        (
            "atomic-visibility-seen-by-reader",
            "process 1 read transaction `tx`'s record on partition 0 but read partition 1 across its offset 0 without `b`",
            &[3, 7, 9],
        ),
        (
            "zombie-write",
            "process 0 invoked transaction `tx` after process 1 took the id, yet its `z1` became visible",
            &[5, 6, 8],
        ),
        (
            "hanging-transaction",
            "n0 ends with last stable offset 0 below its high watermark 1: a transaction left undecided",
            // The replica's log, and the undecided transaction's own line.
            &[3, 4],
        ),
        (
            "processing-progress",
            "group `g` on input partition 0 committed its input up to (not including) offset 1, but the input's last record in the final read_committed view is at offset 1, still unprocessed",
            &[7],
        ),
        (
            "truncation-below-hw",
            "n1 truncated to offset 1, below its own committed high watermark 2",
            &[3, 4],
        ),
        (
            "recovery-prefix",
            "n1 recovered its log to offset 5, but from offset 3 on it holds batches it never wrote there",
            &[3],
        ),
    ];
    for &(file, explanation, lines) in cases {
        let (verdict, _) = verdict_of(file);
        let anomalies: Vec<_> =
            verdict.anomalies.iter().filter(|a| a.explanation == explanation).collect();
        assert_eq!(anomalies.len(), 1, "{file}: {verdict}");
        let anomaly = anomalies[0];
        assert_eq!(anomaly.explanation, explanation, "{file}");
        assert_eq!(anomaly.witness.iter().map(Witness::line).collect::<Vec<_>>(), lines, "{file}");
    }
}

#[test]
fn the_verdict_prints_every_invariant_and_each_anomaly_with_its_lines() {
    let (verdict, _) = verdict_of("expected-loss-acks-1");
    let text = verdict.to_string();
    for invariant in Invariant::ALL {
        assert!(text.contains(invariant.name()), "{invariant} missing from\n{text}");
    }
    assert!(
        text.contains(
            "promises  committed-stable no-duplicates transactional integrity liveness recovered-prefix (from the configuration)"
        ),
        "{text}"
    );
    assert!(text.contains("expected lost-write (breaks acked-durable) in partition 0: `a` was acknowledged at offset 0"), "{text}");
    assert!(
        text.contains(r#"line 3      {"i":1,"t_ns":20,"process":0,"type":"ok","f":"send""#),
        "{text}"
    );
    assert!(text.ends_with("verdict: holds: every promised invariant holds; 2 anomalies expected under this configuration\n"), "{text}");

    let (verdict, _) = verdict_of("duplicate");
    let text = verdict.to_string();
    assert!(text.contains("duplicate               VIOLATED  1 in 1 values"), "{text}");
    assert!(text.ends_with("verdict: VIOLATED: 1 violation of 1 invariant\n"), "{text}");
}

#[test]
fn a_flood_of_anomalies_is_counted_in_full_and_kept_in_part() {
    use logjam_model::{ANOMALIES_KEPT_PER_INVARIANT, ANOMALIES_SHOWN_PER_INVARIANT, Invariant};
    // One poll reading 250 records nobody sent: 250 phantoms.
    let records: Vec<String> = (0..250).map(|o| format!(r#"[{o},null,"ghost{o}"]"#)).collect();
    let header = r#"{"v":1,"system":"s"}"#;
    let invoke =
        r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"poll","partition":0,"from":0}"#;
    let ok =
        r#"{"i":1,"t_ns":2,"process":0,"type":"ok","f":"poll","partition":0,"from":0,"records":["#;
    let text = format!("{header}\n{invoke}\n{ok}{}]}}\n", records.join(","));
    let verdict = check(&logjam_model::parse_history_str(&text).expect("valid"));
    assert_eq!(verdict.check(Invariant::Phantom).violations, 250);
    assert_eq!(verdict.anomalies.len(), ANOMALIES_KEPT_PER_INVARIANT);
    let shown = verdict.to_string();
    assert_eq!(shown.matches("VIOLATION phantom").count(), ANOMALIES_SHOWN_PER_INVARIANT);
    let more = 250 - ANOMALIES_SHOWN_PER_INVARIANT;
    assert!(shown.contains(&format!("... and {more} more phantom anomalies not shown")), "{shown}");
}
