//! Bad input: every malformed history gets an error naming its line and the problem,
//! a history cut mid-line is reported (never silently shortened), and no input, however
//! mangled, makes the parser or the checkers panic.

use logjam_model::testkit::{GenConfig, generate};
use logjam_model::{HistoryError, Problem, check, parse_history, parse_history_str};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, RngSeed};

const HEADER: &str = r#"{"v":1,"system":"s","config":{}}"#;
const SEND_A: &str = r#"{"i":0,"t_ns":10,"process":0,"type":"invoke","f":"send","partition":0,"key":"k","value":"a"}"#;
const SEND_A_OK: &str = r#"{"i":1,"t_ns":20,"process":0,"type":"ok","f":"send","partition":0,"key":"k","value":"a","offset":0}"#;

const SUBSCRIBE: &str = r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"subscribe","group":"g","partitions":[0,1]}"#;
const SUBSCRIBE_OK: &str = r#"{"i":1,"t_ns":2,"process":0,"type":"ok","f":"subscribe","group":"g","partitions":[0,1],"assignment":[0]}"#;
const POLL: &str =
    r#"{"i":2,"t_ns":3,"process":0,"type":"invoke","f":"poll","partition":0,"from":0}"#;
const SUBSCRIBE_TOPICS: &str = r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"subscribe","group":"g","topics":["orders"]}"#;

const TXN: &str = r#"{"i":0,"t_ns":10,"process":0,"type":"invoke","f":"txn","txn_id":"tx","ops":[{"f":"send","partition":0,"key":"k","value":"t1"},{"f":"poll","partition":1,"from":0},{"f":"commit-offset","group":"g","partition":2,"from":5,"to":9}]}"#;
const TXN_OK: &str = r#"{"i":1,"t_ns":20,"process":0,"type":"ok","f":"txn","txn_id":"tx","ops":[{"f":"send","partition":0,"key":"k","value":"t1","offset":4},{"f":"poll","partition":1,"from":0,"records":[]},{"f":"commit-offset","group":"g","partition":2,"from":5,"to":9}]}"#;

/// Parses with both entry points, which must agree.
fn parse(text: &str) -> Result<logjam_model::History, HistoryError> {
    let from_str = parse_history_str(text);
    let from_reader = parse_history(text.as_bytes());
    assert_eq!(from_str, from_reader, "the two parsers disagree on\n{text}");
    from_str
}

fn lines(lines: &[&str]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

#[test]
fn each_bad_input_names_its_line_and_problem() {
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "line 1: empty history: expected a header line"),
        (HEADER.to_string(), "line 1: last line has no newline: the history was cut short"),
        (
            lines(&[HEADER, SEND_A]) + &SEND_A_OK[..40],
            "line 3: last line has no newline: the history was cut short",
        ),
        (
            lines(&[r#"{"v":2,"system":"s","later":true}"#]),
            "line 1: unsupported history version 2 (this build reads version 1)",
        ),
        (lines(&[r#"{"system":"s"}"#]), "line 1: the header has no `v` (format version)"),
        (lines(&[r#"{"v":1}"#]), "line 1: malformed line: missing field `system` (column 7)"),
        (
            lines(&[r#"{"v":1,"system":"s","config":{"acks":"2"}}"#]),
            "line 1: malformed line: unknown variant `2`, expected one of `0`, `1`, `all` (column 40)",
        ),
        (
            lines(&[HEADER, "{\"i\":0,"]),
            "line 2: malformed line: EOF while parsing a value (column 7)",
        ),
        (lines(&[HEADER, "not json"]), "line 2: malformed line: expected ident (column 2)"),
        (lines(&[HEADER, "", SEND_A]), "line 2: empty line"),
        (lines(&[HEADER, r#"{"type":"commit","node":1}"#]), "line 2: unknown line type `commit`"),
        (
            lines(&[HEADER, r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"unsubscribe"}"#]),
            "line 2: unknown operation `unsubscribe`",
        ),
        (
            lines(&[HEADER, r#"{"i":0,"t_ns":1,"process":0,"f":"send"}"#]),
            "line 2: the line has no `type`",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":3,"type":"ok","f":"send","partition":0,"value":"a","offset":0}"#,
            ]),
            "line 2: ok without a matching invoke for process 3",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"send","partition":0}"#,
            ]),
            "line 2: a send invoke has no `value`",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"send","partition":0,"value":"a","offset":3}"#,
            ]),
            "line 2: `offset` does not belong on a send invoke",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"poll","partition":0,"from":0,"records":[]}"#,
            ]),
            "line 2: `records` does not belong on a poll invoke",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"send","partition":0,"value":"a","colour":1}"#,
            ]),
            "line 2: malformed line: unknown field `colour`",
        ),
        (
            lines(&[
                HEADER,
                SEND_A,
                r#"{"i":1,"t_ns":20,"process":0,"type":"ok","f":"poll","partition":0,"from":0,"records":[[0,"k"]]}"#,
            ]),
            "line 3: malformed line: invalid length 2, expected a record [offset, key or null, value]",
        ),
        (
            lines(&[HEADER, &SEND_A.replace(r#""i":0"#, r#""i":5"#)]),
            "line 2: event index 5, expected 0: indices count events from 0",
        ),
        (
            lines(&[HEADER, SEND_A, &SEND_A_OK.replace(r#""t_ns":20"#, r#""t_ns":5"#)]),
            "line 3: t_ns 5 goes back in time (the previous event is at 10)",
        ),
        (
            lines(&[
                HEADER,
                SEND_A,
                &SEND_A.replace(r#""i":0"#, r#""i":1"#).replace(r#""a""#, r#""b""#),
            ]),
            "line 3: process 0 invoked a send while its send from line 2 is still pending",
        ),
        (
            lines(&[HEADER, SEND_A, &SEND_A_OK.replace(r#""value":"a""#, r#""value":"b""#)]),
            "line 3: ok does not match its invoke on line 2: value `b` vs `a`",
        ),
        (
            lines(&[
                HEADER,
                SEND_A,
                &SEND_A_OK.replace(r#""f":"send""#, r#""f":"assign""#).replace(
                    r#","partition":0,"key":"k","value":"a","offset":0"#,
                    r#","partitions":[0]"#,
                ),
            ]),
            "line 3: ok does not match its invoke on line 2: assign vs send",
        ),
        (
            lines(&[
                HEADER,
                SEND_A,
                SEND_A_OK,
                &SEND_A
                    .replace(r#""i":0"#, r#""i":2"#)
                    .replace(r#""t_ns":10"#, r#""t_ns":30"#)
                    .replace(r#""process":0"#, r#""process":1"#),
            ]),
            "line 4: value `a` was already sent to partition 0 on line 2: values must be unique per partition",
        ),
        (
            lines(&[HEADER, SEND_A, r#"{"t_ns":5,"type":"restart","node":0}"#, SEND_A_OK]),
            "line 4: operation after the closing lines (the first is on line 3)",
        ),
        (
            lines(&[
                HEADER,
                r#"{"type":"replica","node":1,"partition":0,"high_watermark":0,"records":[]}"#,
                r#"{"type":"replica","node":1,"partition":0,"high_watermark":0,"records":[]}"#,
            ]),
            "line 3: a second final log for node 1 partition 0 (the first is on line 2)",
        ),
        (
            lines(&[
                HEADER,
                r#"{"t_ns":9,"type":"restart","node":0}"#,
                r#"{"t_ns":8,"type":"restart","node":1}"#,
            ]),
            "line 3: t_ns 8 goes back in time (the previous protocol event is at 9)",
        ),
        (
            lines(&[HEADER, r#"{"t_ns":9,"type":"leader","node":0,"partition":0}"#]),
            "line 2: a leader line has no `epoch`",
        ),
        (
            lines(&[HEADER, r#"{"t_ns":9,"type":"restart","node":0,"partition":0}"#]),
            "line 2: `partition` does not belong on a restart line",
        ),
        (
            lines(&[
                HEADER,
                r#"{"type":"replica","node":1,"partition":0,"high_watermark":9223372036854775808,"records":[]}"#,
            ]),
            "line 2: high_watermark 9223372036854775808 exceeds the largest offset 9223372036854775807",
        ),
        // An info send may state the offset it was given; it is held to the same range.
        (
            lines(&[
                HEADER,
                SEND_A,
                &SEND_A_OK
                    .replace(r#""type":"ok""#, r#""type":"info""#)
                    .replace(r#""offset":0"#, r#""offset":9223372036854775808"#),
            ]),
            "line 3: offset 9223372036854775808 exceeds the largest offset 9223372036854775807",
        ),
        // Transactions.
        (
            lines(&[HEADER, r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"txn","ops":[]}"#]),
            "line 2: a txn invoke has no `txn_id`",
        ),
        (
            lines(&[
                HEADER,
                TXN,
                &TXN_OK.replace(r#""value":"t1","offset":4"#, r#""value":"t9","offset":4"#),
            ]),
            "line 3: ok does not match its invoke on line 2: ops[0]: value `t9` vs `t1`",
        ),
        (
            lines(&[HEADER, TXN, &TXN_OK.replace(r#","to":9"#, r#","to":8"#)]),
            "line 3: ok does not match its invoke on line 2: ops[2]: range [5, 8) vs [5, 9)",
        ),
        (
            lines(&[
                HEADER,
                TXN,
                &TXN_OK
                    .replace(r#""f":"poll","#, r#""f":"send","value":"z","#)
                    .replace(r#""from":0,"records":[]"#, r#""offset":1"#),
            ]),
            "line 3: ok does not match its invoke on line 2: ops[1]: send vs poll",
        ),
        (
            lines(&[
                HEADER,
                TXN,
                &TXN_OK.replace(r#",{"f":"poll","partition":1,"from":0,"records":[]}"#, ""),
            ]),
            "line 3: ok does not match its invoke on line 2: 2 ops vs 3",
        ),
        (
            lines(&[HEADER, &TXN.replace(r#""f":"poll""#, r#""f":"peek""#)]),
            "line 2: unknown micro-op `peek` in a txn invoke's ops[1] (send, poll or commit-offset)",
        ),
        (
            lines(&[HEADER, &TXN.replace(r#""value":"t1""#, r#""value":"t1","offset":3"#)]),
            "line 2: `offset` does not belong on a txn invoke's ops[0] (send)",
        ),
        (
            lines(&[HEADER, &TXN.replace(r#""value":"t1""#, r#""value":"t1","colour":3"#)]),
            "line 2: malformed line: unknown field `colour`",
        ),
        (
            lines(&[HEADER, &TXN.replace(r#""from":5,"to":9"#, r#""from":9,"to":5"#)]),
            "line 2: ops[2] (commit-offset) of a txn invoke commits from 9 past to 5",
        ),
        (
            lines(&[
                HEADER,
                &TXN.replace(r#""partition":1,"from":0"#, r#""partition":0,"value":"t1""#),
            ]),
            "line 2: `value` does not belong on a txn invoke's ops[1] (poll)",
        ),
        (
            lines(&[
                HEADER,
                &TXN.replace(
                    r#"{"f":"poll","partition":1,"from":0}"#,
                    r#"{"f":"send","partition":0,"value":"t1"}"#,
                ),
            ]),
            "line 2: value `t1` was already sent to partition 0 on line 2: values must be unique per partition",
        ),
        (
            lines(&[
                HEADER,
                SEND_A,
                SEND_A_OK,
                &TXN.replace(r#""i":0,"t_ns":10"#, r#""i":2,"t_ns":30"#)
                    .replace(r#""t1""#, r#""a""#),
            ]),
            "line 4: value `a` was already sent to partition 0 on line 2: values must be unique per partition",
        ),
        (
            lines(&[HEADER, r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"init"}"#]),
            "line 2: an init invoke has no `txn_id`",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"init","txn_id":"x","partition":0}"#,
            ]),
            "line 2: `partition` does not belong on an init invoke",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"poll","partition":0,"from":0,"isolation":"snapshot"}"#,
            ]),
            "line 2: unknown isolation `snapshot` (read_committed or read_uncommitted)",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"poll","partition":0,"from":0,"isolation":"read_uncommitted"}"#,
                r#"{"i":1,"t_ns":2,"process":0,"type":"ok","f":"poll","partition":0,"from":0,"records":[]}"#,
            ]),
            "line 3: ok does not match its invoke on line 2: isolation read_committed vs read_uncommitted",
        ),
        (
            lines(&[
                HEADER,
                r#"{"type":"replica","node":1,"partition":0,"high_watermark":2,"last_stable_offset":3,"records":[[0,null,"a"],[1,null,"b"]]}"#,
            ]),
            "line 2: last_stable_offset 3 exceeds high_watermark 2",
        ),
        (
            lines(&[
                HEADER,
                r#"{"type":"replica","node":1,"partition":0,"high_watermark":2,"log_end_offset":1,"records":[[0,null,"a"],[1,null,"b"]]}"#,
            ]),
            "line 2: log_end_offset 1 is not past the last record (offset 1)",
        ),
        (
            lines(&[
                HEADER,
                r#"{"type":"replica","node":1,"partition":0,"log_start_offset":10,"high_watermark":10,"log_end_offset":3,"records":[]}"#,
            ]),
            "line 2: log_end_offset 3 is below log_start_offset 10",
        ),
        (
            lines(&[
                HEADER,
                r#"{"type":"replica","node":1,"partition":0,"high_watermark":3,"aborted":[1],"records":[[0,null,"a"],[2,null,"b"]]}"#,
            ]),
            "line 2: aborted offset 1 is not the offset of a record in `records`",
        ),
        (
            lines(&[
                HEADER,
                r#"{"type":"replica","node":1,"partition":0,"high_watermark":3,"aborted":[2,0],"records":[[0,null,"a"],[2,null,"b"]]}"#,
            ]),
            "line 2: aborted offset 0 after 2: aborted offsets must increase",
        ),
        (
            lines(&[r#"{"v":1,"system":"s","promises":["integrity","read-committed-only"]}"#]),
            "line 1: no system can promise `read-committed-only`",
        ),
        // serde reads a number past u64 as a float: the message names it as written.
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":18446744073709551616,"process":0,"type":"invoke","f":"send","partition":0,"value":"a"}"#,
            ]),
            "line 2: malformed line: integer 18446744073709551616 is out of range, expected an integer from 0 to 18446744073709551615 (column 34)",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"send","partition":4294967296,"value":"a"}"#,
            ]),
            "line 2: malformed line: invalid value: integer `4294967296`, expected an integer from 0 to 4294967295 (column 77)",
        ),
        // A line that is JSON but not an object says so, not the reading type's name.
        (
            lines(&[HEADER, "[0,1,\"process\"]"]),
            "line 2: malformed line: expected a JSON object {...} on every line, found an array",
        ),
        (
            lines(&["[1]"]),
            "line 1: malformed line: expected a JSON object {...} on every line, found an array",
        ),
        (
            lines(&[HEADER, "7"]),
            "line 2: malformed line: expected a JSON object {...} on every line, found a number",
        ),
        // A byte-order mark is read before the header only.
        (lines(&[HEADER, "\u{feff}{}"]), "line 2: malformed line: expected value (column 1)"), // Consumer groups and assigns without a seek.
        (
            lines(&[HEADER, SUBSCRIBE_TOPICS]),
            "line 2: a subscribe invoke names `topics`, but a history names partitions, not topics: state the consumer group as `group` and the partitions it may assign as `partitions`",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"subscribe","partitions":[0]}"#,
            ]),
            "line 2: a subscribe invoke has no `group`",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"subscribe","group":"g"}"#,
            ]),
            "line 2: a subscribe invoke has no `partitions`",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"subscribe","group":"g","partitions":[0],"assignment":[0]}"#,
            ]),
            "line 2: `assignment` does not belong on a subscribe invoke",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"subscribe","group":7,"partitions":[0]}"#,
            ]),
            "line 2: malformed line: invalid type: integer `7`, expected a string",
        ),
        (
            lines(&[
                HEADER,
                SUBSCRIBE,
                r#"{"i":1,"t_ns":2,"process":0,"type":"ok","f":"subscribe","group":"g","partitions":[0,1],"assignment":[2]}"#,
            ]),
            "line 3: assignment [2] names partition 2, which the subscribe's partitions [0, 1] do not",
        ),
        (
            lines(&[
                HEADER,
                SUBSCRIBE,
                r#"{"i":1,"t_ns":2,"process":0,"type":"ok","f":"subscribe","group":"h","partitions":[0,1]}"#,
            ]),
            "line 3: ok does not match its invoke on line 2: group `h` vs `g`",
        ),
        (
            lines(&[
                HEADER,
                SUBSCRIBE,
                SUBSCRIBE_OK,
                r#"{"i":2,"t_ns":3,"process":0,"type":"invoke","f":"poll","partition":0,"from":0,"assignment":[0]}"#,
            ]),
            "line 4: `assignment` does not belong on a poll invoke",
        ),
        (
            lines(&[
                HEADER,
                SUBSCRIBE,
                SUBSCRIBE_OK,
                POLL,
                r#"{"i":3,"t_ns":4,"process":0,"type":"ok","f":"poll","partition":0,"from":0,"assignment":[0,3],"records":[]}"#,
            ]),
            "line 5: assignment [0, 3] names partition 3, which the subscribe on line 2 does not ([0, 1])",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":3,"process":0,"type":"invoke","f":"poll","partition":0,"from":0}"#,
                r#"{"i":1,"t_ns":4,"process":0,"type":"ok","f":"poll","partition":0,"from":0,"assignment":[0],"records":[]}"#,
            ]),
            "line 3: a poll states a rebalance (`assignment`), but process 0 is not subscribed",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"send","partition":0,"value":"a","topics":["t"]}"#,
            ]),
            "line 2: `topics` does not belong on a send invoke",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"assign","partitions":[0],"seek":"no"}"#,
            ]),
            "line 2: malformed line: invalid type: string \"no\", expected a boolean",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"assign","seek":false}"#,
            ]),
            "line 2: an assign invoke has no `partitions`",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"assign","partitions":[0],"seek":false}"#,
                r#"{"i":1,"t_ns":2,"process":0,"type":"ok","f":"assign","partitions":[0]}"#,
            ]),
            "line 3: ok does not match its invoke on line 2: seek true vs false",
        ),
        (
            lines(&[
                HEADER,
                r#"{"i":0,"t_ns":1,"process":0,"type":"invoke","f":"assign","partitions":[0],"group":"g"}"#,
            ]),
            "line 2: `group` does not belong on an assign invoke",
        ),
    ];
    for (text, expected) in cases {
        let error = parse(&text).expect_err(&text);
        let message = error.to_string();
        assert!(message.starts_with(expected), "got: {message}\nwant: {expected}\ninput:\n{text}");
    }
}

#[test]
fn errors_name_the_file_too() {
    let error = parse(&lines(&[HEADER, "{"])).expect_err("malformed");
    assert_eq!(error.line, 2);
    assert!(matches!(error.problem, Problem::Malformed(_)));
    assert!(
        error.in_file("runs/h.jsonl").starts_with("runs/h.jsonl:2: malformed line: "),
        "{}",
        error.in_file("runs/h.jsonl")
    );
}

#[test]
fn not_utf8_is_named_by_the_reader() {
    let mut bytes = lines(&[HEADER]).into_bytes();
    bytes.extend_from_slice(b"{\"type\":\"\xff\"}\n");
    let error = parse_history(bytes.as_slice()).expect_err("not UTF-8");
    assert_eq!(error, HistoryError { line: 2, problem: Problem::NotUtf8 });
}

#[test]
fn a_byte_order_mark_before_the_header_is_read() {
    let text = format!("\u{feff}{}", lines(&[HEADER, SEND_A, SEND_A_OK]));
    assert_eq!(parse(&text).expect("a BOM first").events().len(), 2);
}

#[test]
fn a_quoted_value_is_cut_to_its_start_and_length() {
    let huge = "x".repeat(10_000_000);
    let completion = SEND_A_OK.replace(r#""value":"a""#, &format!(r#""value":"{huge}""#));
    let error = parse(&lines(&[HEADER, SEND_A, &completion])).expect_err("a mismatch");
    let shown = format!("`{}… (10000000 bytes)`", &huge[..80]);
    assert_eq!(
        error.to_string(),
        format!("line 3: ok does not match its invoke on line 2: value {shown} vs `a`")
    );
    // The same for an unknown operation, and for what serde quotes.
    let unknown = SEND_A.replace(r#""f":"send""#, &format!(r#""f":"{huge}""#));
    let error = parse(&lines(&[HEADER, &unknown])).expect_err("unknown");
    assert_eq!(
        error.to_string(),
        format!("line 2: unknown operation `{}… (10000000 bytes)`", &huge[..80])
    );
    let header = format!(r#"{{"v":1,"system":"s","config":{{"acks":"{huge}"}}}}"#);
    let error = parse(&lines(&[&header])).expect_err("unknown variant");
    assert!(error.to_string().len() < 400, "{}", &error.to_string()[..400]);
}

#[test]
fn windows_line_endings_are_read() {
    let text = lines(&[HEADER, SEND_A, SEND_A_OK]).replace('\n', "\r\n");
    assert_eq!(parse(&text).expect("CRLF").events().len(), 2);
}

/// A generated history with everything in it: sends, polls, assigns, infos, fails,
/// protocol events and final logs.
fn sample() -> String {
    let mut setup = GenConfig::new(9, 40);
    setup.info_probability = 0.2;
    setup.fail_probability = 0.1;
    setup.final_reads = true;
    generate(&setup).to_jsonl()
}

/// What a corrupt input may do: fail naming a line within the input (or the one after
/// it, for a missing newline or end), or parse into a history the checkers judge.
fn judged_or_named(text: &str) {
    match parse(text) {
        Ok(history) => {
            let verdict = check(&history);
            assert_eq!(verdict.checks.len(), logjam_model::Invariant::ALL.len());
        }
        Err(error) => {
            let lines = text.matches('\n').count() as u64;
            assert!(
                (1..=lines + 1).contains(&error.line),
                "{error} names a line outside 1..={}",
                lines + 1
            );
        }
    }
}

#[test]
fn a_history_cut_anywhere_but_a_line_end_is_reported_as_cut() {
    let text = sample();
    let ends: Vec<usize> = text.match_indices('\n').map(|(at, _)| at + 1).collect();
    for cut in 1..text.len() {
        let prefix = &text[..cut];
        let result = parse(prefix);
        if ends.contains(&cut) {
            // A cut at a line end leaves a shorter history that is whole: it parses or
            // fails for what is missing, never for what is there.
            judged_or_named(prefix);
            continue;
        }
        let line = prefix.matches('\n').count() as u64 + 1;
        assert_eq!(
            result,
            Err(HistoryError { line, problem: Problem::Truncated }),
            "cut at byte {cut}"
        );
    }
}

#[test]
fn corrupted_bytes_and_shuffled_lines_never_panic() {
    let text = sample();
    let garbage: &[u8] = b"x}{\n\"9-:,[] \x00\xff";
    let bytes = text.as_bytes();
    for at in (0..bytes.len()).step_by(7) {
        for &byte in garbage {
            let mut corrupt = bytes.to_vec();
            corrupt[at] = byte;
            match String::from_utf8(corrupt) {
                Ok(corrupt) => judged_or_named(&corrupt),
                Err(not_utf8) => {
                    let error = parse_history(not_utf8.as_bytes()).expect_err("not UTF-8");
                    assert!(
                        matches!(error.problem, Problem::NotUtf8 | Problem::Truncated),
                        "{error}"
                    );
                }
            }
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    for at in 0..lines.len() {
        let mut deleted = lines.clone();
        deleted.remove(at);
        judged_or_named(&self::lines(&deleted));
        let mut doubled = lines.clone();
        doubled.insert(at, lines[at]);
        judged_or_named(&self::lines(&doubled));
        if at + 1 < lines.len() {
            let mut swapped = lines.clone();
            swapped.swap(at, at + 1);
            judged_or_named(&self::lines(&swapped));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        rng_algorithm: RngAlgorithm::ChaCha,
        // A fixed seed: `cargo test` runs the same cases every time.
        rng_seed: RngSeed::Fixed(2),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        match parse_history(bytes.as_slice()) {
            Ok(history) => prop_assert_eq!(check(&history).checks.len(), logjam_model::Invariant::ALL.len()),
            Err(error) => prop_assert!(error.line >= 1 && error.line <= bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1),
        }
    }

    #[test]
    fn lines_of_a_real_history_in_any_order_never_panic(
        picks in prop::collection::vec((any::<prop::sample::Index>(), 0usize..6, any::<u8>()), 0..40),
    ) {
        // Valid lines recombined, some with a field knocked out of shape: the parser
        // must name the line, or the checkers must judge what parses.
        let text = sample();
        let pool: Vec<&str> = text.lines().collect();
        let mut out = vec![pool[0].to_string()];
        for (index, damage, byte) in picks {
            let line = pool[index.index(pool.len())];
            out.push(match damage {
                0 => line.replacen("\"offset\":", "\"offset\":1", 1),
                1 => line.replacen("\"process\":", &format!("\"process\":{byte}"), 1),
                2 => line.replacen("\"t_ns\":", "\"t_ns\":9", 1),
                3 => line.replacen("\"high_watermark\":", &format!("\"high_watermark\":{byte}"), 1),
                _ => line.to_string(),
            });
        }
        let text = out.iter().map(|line| format!("{line}\n")).collect::<String>();
        judged_or_named(&text);
    }
}

#[test]
fn a_history_built_in_memory_is_held_to_the_same_rules() {
    use logjam_model::{Config, EventType, Header, HistoryBuilder, Op};
    let send =
        |value: &str, offset| Op::Send { partition: 0, key: None, value: value.into(), offset };
    let mut builder = HistoryBuilder::new(Header::new("sim", Config::default()));
    builder.invoke(10, 0, send("a", None)).expect("an invoke");
    builder.event(20, 0, EventType::Ok, send("a", Some(0)), None).expect("its completion");
    // The error names the line the event would have in the written history.
    let error =
        builder.event(30, 1, EventType::Ok, send("b", Some(1)), None).expect_err("no invoke");
    assert_eq!(error.to_string(), "line 4: ok without a matching invoke for process 1");
    let error = builder.invoke(5, 1, send("b", None)).expect_err("back in time");
    assert_eq!(error.to_string(), "line 4: t_ns 5 goes back in time (the previous event is at 20)");
    let error = builder.invoke(30, 1, send("a", None)).expect_err("value reused");
    assert_eq!(
        error.to_string(),
        "line 4: value `a` was already sent to partition 0 on line 2: values must be unique per partition"
    );
    builder.invoke(30, 1, send("b", None)).expect("a fresh value");
    let history = builder.finish().expect("a pending send is allowed (and judged still-pending)");
    assert_eq!(parse(&history.to_jsonl()).expect("round trip"), history);
}

#[test]
fn transactional_lines_round_trip() {
    use logjam_model::{
        Closing, Config, EventType, Header, HistoryBuilder, Isolation, MicroOp, Op, Record,
        Replica, Transactions,
    };
    let config = Config { transactions: Transactions::PreKip890, ..Config::default() };
    let mut builder = HistoryBuilder::new(Header::new("s", config));
    builder.invoke(1, 0, Op::Init { txn_id: "tx".into() }).expect("init");
    builder.event(2, 0, EventType::Ok, Op::Init { txn_id: "tx".into() }, None).expect("init ok");
    let ops = vec![
        MicroOp::send(0, Some("k"), "t1"),
        MicroOp::poll(1, 0),
        MicroOp::commit_offset("g", 2, 5, 9),
    ];
    builder.invoke(3, 0, Op::txn("tx", ops.clone())).expect("txn");
    let mut done = ops;
    done[0] =
        MicroOp::Send { partition: 0, key: Some("k".into()), value: "t1".into(), offset: Some(0) };
    done[1] = MicroOp::Poll { partition: 1, from: 0, records: vec![Record::new(0, None, "x")] };
    builder.event(4, 0, EventType::Ok, Op::txn("tx", done), None).expect("txn ok");
    let read = |records| Op::Poll {
        partition: 0,
        from: 0,
        records,
        isolation: Isolation::ReadUncommitted,
        assignment: None,
    };
    builder.invoke(5, 1, read(vec![])).expect("poll");
    builder
        .event(6, 1, EventType::Ok, read(vec![Record::new(0, Some("k"), "t1")]), None)
        .expect("poll ok");
    let replica = Replica {
        node: 0,
        partition: 0,
        log_start_offset: 0,
        high_watermark: 4,
        last_stable_offset: Some(2),
        aborted: vec![2],
        log_end_offset: None,
        records: vec![Record::new(0, Some("k"), "t1"), Record::new(2, Some("k"), "t2")],
    };
    builder.closing(Closing::Replica(replica)).expect("replica");
    let history = builder.finish().expect("valid");
    let text = history.to_jsonl();
    assert!(text.contains(r#""transactions":"pre-kip-890""#), "{text}");
    assert!(text.contains(r#""isolation":"read_uncommitted""#), "{text}");
    assert!(text.contains(r#""last_stable_offset":2,"aborted":[2]"#), "{text}");
    assert!(
        text.contains(r#"{"f":"commit-offset","group":"g","partition":2,"from":5,"to":9}"#),
        "{text}"
    );
    assert_eq!(parse(&text).expect("round trip"), history);
    // Defaults are left out, so a history without transactions reads as it always did.
    let plain = lines(&[HEADER, SEND_A, SEND_A_OK]);
    assert_eq!(
        parse(&plain).expect("valid").to_jsonl().lines().skip(1).collect::<Vec<_>>(),
        [SEND_A, SEND_A_OK]
    );
}

#[test]
fn subscribe_and_assign_without_a_seek_round_trip() {
    for file in ["valid-subscribe-rebalance", "valid-assign-no-seek"] {
        let path = format!("{}/tests/histories/{file}.jsonl", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("the history file");
        let history = parse(&text).expect("valid");
        let written = history.to_jsonl();
        assert_eq!(parse(&written).expect("round trip"), history, "{file}");
        // A seeking assign writes no `seek`, a non-seeking one `"seek":false`.
        assert_eq!(written.contains(r#""seek":false"#), file.contains("assign"), "{file}");
        assert_eq!(written.contains(r#""assignment":["#), file.contains("subscribe"), "{file}");
    }
}
