//! `HISTORY.md` tells the truth: its example history parses and gets exactly the
//! verdict printed under it, and the lost-write variant it describes is reported as it
//! shows.

use logjam_model::{Closing, History, Invariant, Op, Record, check, parse_history_str};

const DOC: &str = include_str!("../HISTORY.md");

/// The bodies of the fenced blocks opened with ```` ```tag ````, in order.
fn blocks(tag: &str) -> Vec<String> {
    let fence = format!("```{tag}\n");
    DOC.split(fence.as_str())
        .skip(1)
        .map(|rest| rest.split("```\n").next().expect("closed").to_string())
        .collect()
}

fn example() -> History {
    let jsonl = blocks("jsonl");
    assert_eq!(jsonl.len(), 1, "one example history");
    parse_history_str(&jsonl[0]).unwrap_or_else(|e| panic!("HISTORY.md example: {e}"))
}

#[test]
fn the_documented_example_gets_the_documented_verdict() {
    let text = blocks("text");
    assert_eq!(check(&example()).to_string(), text[0]);
}

#[test]
fn the_documented_transactional_example_is_judged_as_shown() {
    let jsonl = blocks("jsonl-txn");
    assert_eq!(jsonl.len(), 1, "one transactional example");
    let history =
        parse_history_str(&jsonl[0]).unwrap_or_else(|e| panic!("HISTORY.md txn example: {e}"));
    let verdict = check(&history);
    assert!(verdict.holds(), "{verdict}");
    assert_eq!(verdict.expected(), vec![Invariant::DirtyRead], "{verdict}");
    assert_eq!(format!("{}\n", verdict.anomalies[0]), blocks("text-txn")[0]);
}

#[test]
fn the_documented_lost_write_is_reported_as_shown() {
    let (header, mut events, mut closing) = example().into_parts();
    // The variant the page describes: a later v4 acknowledged at offset 3, and final
    // logs without v3 that committed v4.
    let send = |i: u64, t_ns: u64, kind, offset| logjam_model::Event {
        i,
        t_ns,
        process: 0,
        kind,
        op: Op::Send { partition: 0, key: Some("k4".into()), value: "v4".into(), offset },
        error: None,
    };
    events.push(send(12, 4400, logjam_model::EventType::Invoke, None));
    events.push(send(13, 4900, logjam_model::EventType::Ok, Some(3)));
    for line in &mut closing {
        if let Closing::Replica(replica) = line {
            replica.records.retain(|r| r.value != "v3");
            replica.records.push(Record::new(3, Some("k4"), "v4"));
            replica.high_watermark = 4;
        }
    }
    // Two protocol lines more than the page's example, as the variant has.
    let protocol = |t_ns, node, offset| {
        Closing::Protocol(logjam_model::Protocol {
            t_ns,
            node,
            event: logjam_model::ProtocolEvent::HighWatermark { partition: 0, offset },
        })
    };
    closing.insert(5, protocol(3900, 1, 3));
    closing.insert(8, protocol(4800, 1, 4));
    let verdict = check(&History::new(header, events, closing).expect("valid"));
    assert_eq!(verdict.violated(), vec![Invariant::LostWrite], "{verdict}");
    let text = blocks("text");
    assert_eq!(format!("{}\n", verdict.anomalies[0]), text[1]);
}

#[test]
fn the_documented_results_of_indeterminate_operations_are_judged_as_described() {
    let body = &blocks("jsonl-results")[0];
    let text = format!("{{\"v\":1,\"system\":\"doc\"}}\n{body}");
    let history = parse_history_str(&text).unwrap_or_else(|e| panic!("HISTORY.md results: {e}"));
    let verdict = check(&history);
    // The failed poll's read proves the info transaction; `b` is where it was reported.
    assert!(verdict.holds() && verdict.anomalies.is_empty(), "{verdict}");
    assert_eq!(verdict.check(Invariant::InconsistentOffsets).examined, 1, "{verdict}");
    // Reported at another offset than the one it was read at, `b` is a duplicate.
    let moved = text.replace(r#""value":"b","offset":0}"#, r#""value":"b","offset":7}"#);
    let verdict = check(&parse_history_str(&moved).expect("valid"));
    assert_eq!(verdict.violated(), vec![Invariant::Duplicate], "{verdict}");
}

#[test]
fn the_documented_nothing_to_judge_verdict_is_what_an_empty_history_gets() {
    let verdict = check(&parse_history_str("{\"v\":1,\"system\":\"doc\"}\n").expect("valid"));
    assert!(verdict.nothing_to_judge && !verdict.holds(), "{verdict}");
    let last = verdict.to_string().lines().last().expect("a verdict line").to_string();
    assert_eq!(format!("{last}\n"), blocks("text-nothing")[0]);
}

#[test]
fn the_documented_group_example_is_judged_as_described() {
    let body = &blocks("jsonl-groups")[0];
    let text = format!("{{\"v\":1,\"system\":\"doc\"}}\n{body}");
    let history = parse_history_str(&text).unwrap_or_else(|e| panic!("HISTORY.md groups: {e}"));
    let verdict = check(&history);
    assert!(verdict.holds() && verdict.anomalies.is_empty(), "{verdict}");
    // Without the rebalance, reading `b` again is a rewind within one assignment.
    let unstated = text.replace(r#""assignment":[0],"#, "");
    let verdict = check(&parse_history_str(&unstated).expect("valid"));
    assert_eq!(verdict.violated(), vec![Invariant::NonmonotonicPoll], "{verdict}");
    // Reading `a` again, below what the group committed, is one despite the rebalance.
    let below = text
        .replace(r#""partition":0,"from":1"#, r#""partition":0,"from":0"#)
        .replace(r#""records":[[1,null,"b"]]"#, r#""records":[[0,null,"a"]]"#);
    let verdict = check(&parse_history_str(&below).expect("valid"));
    assert_eq!(verdict.violated(), vec![Invariant::NonmonotonicPoll], "{verdict}");
    assert_eq!(format!("{}\n", verdict.anomalies[0]), blocks("text-groups")[0]);
}
