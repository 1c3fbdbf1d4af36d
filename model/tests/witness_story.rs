//! A lost write's witness tells the story of the loss (issue 22 part 2): the replicas
//! that had it committed, the acknowledgement, what removed it from another replica
//! first, the election, and the truncation that removed it from the final log, in
//! time order; a protocol event that is not part of the story is left out.

use logjam_model::{Invariant, check, parse_history_str};

/// Legacy truncation's shape: n1 truncates to its high watermark (below `v2`), is
/// elected, and n0 truncates to follow it; `v9` takes offset 2.
const HISTORY: &str = r#"{"v":1,"system":"story","config":{"acks":"all","min_insync_replicas":2,"unclean_leader_election":false,"flush":"every-batch","truncation":"leader-epoch","idempotent":true}}
{"i":0,"t_ns":100,"process":0,"type":"invoke","f":"send","partition":0,"value":"v0"}
{"i":1,"t_ns":200,"process":0,"type":"ok","f":"send","partition":0,"value":"v0","offset":0}
{"i":2,"t_ns":300,"process":0,"type":"invoke","f":"send","partition":0,"value":"v1"}
{"i":3,"t_ns":400,"process":0,"type":"ok","f":"send","partition":0,"value":"v1","offset":1}
{"i":4,"t_ns":500,"process":0,"type":"invoke","f":"send","partition":0,"value":"v2"}
{"i":5,"t_ns":700,"process":0,"type":"ok","f":"send","partition":0,"value":"v2","offset":2}
{"i":6,"t_ns":1500,"process":0,"type":"invoke","f":"send","partition":0,"value":"v9"}
{"i":7,"t_ns":1700,"process":0,"type":"ok","f":"send","partition":0,"value":"v9","offset":2}
{"t_ns":0,"type":"leader","node":0,"partition":0,"epoch":1}
{"t_ns":0,"type":"follower","node":1,"partition":0,"epoch":1}
{"t_ns":650,"type":"high-watermark","node":0,"partition":0,"offset":3}
{"t_ns":800,"type":"truncate","node":1,"partition":0,"offset":2}
{"t_ns":900,"type":"high-watermark","node":1,"partition":0,"offset":3}
{"t_ns":1000,"type":"leader","node":1,"partition":0,"epoch":2}
{"t_ns":1000,"type":"follower","node":0,"partition":0,"epoch":2}
{"t_ns":1100,"type":"truncate","node":0,"partition":0,"offset":2}
{"t_ns":1800,"type":"high-watermark","node":1,"partition":0,"offset":3}
{"type":"replica","node":0,"partition":0,"log_start_offset":0,"high_watermark":3,"records":[[0,null,"v0"],[1,null,"v1"],[2,null,"v9"]]}
{"type":"replica","node":1,"partition":0,"log_start_offset":0,"high_watermark":3,"records":[[0,null,"v0"],[1,null,"v1"],[2,null,"v9"]]}
"#;

#[test]
fn a_lost_writes_witness_tells_how_it_was_lost_in_time_order() {
    let verdict = check(&parse_history_str(HISTORY).expect("valid"));
    assert!(verdict.violated().contains(&Invariant::LostWrite), "{verdict}");
    let lost = verdict.anomalies.iter().find(|a| a.invariant == Invariant::LostWrite).expect("one");
    assert!(
        lost.explanation.ends_with(
            "(n0 had it committed, high watermark 3; n1 truncated to 2; n1 became leader in epoch 2; n0 truncated to 2)"
        ),
        "{}",
        lost.explanation
    );
    // n1's high watermark after its own truncation is not proof it held `v2`.
    let lines: Vec<u64> = lost.witness.iter().map(|w| w.line()).collect();
    assert_eq!(lines, vec![12, 7, 13, 15, 17, 19], "{verdict}");
    let keys: Vec<(u64, u64)> = lost.witness.iter().map(|w| w.story_key()).collect();
    assert!(keys.windows(2).all(|pair| pair[0] <= pair[1]), "time order: {keys:?}");
}

/// Two logs parted at offset 1: n0's side written under leader n0 in epoch 1, n1's
/// under leader n1 in epoch 2.
const PARTED: &str = r#"{"v":1,"system":"story","config":{"acks":"all","min_insync_replicas":2,"unclean_leader_election":false,"flush":"every-batch","truncation":"leader-epoch","idempotent":true}}
{"i":0,"t_ns":100,"process":0,"type":"invoke","f":"send","partition":0,"value":"v0"}
{"i":1,"t_ns":200,"process":0,"type":"ok","f":"send","partition":0,"value":"v0","offset":0}
{"i":2,"t_ns":250,"process":0,"type":"invoke","f":"send","partition":0,"value":"v2"}
{"i":3,"t_ns":300,"process":0,"type":"ok","f":"send","partition":0,"value":"v2","offset":1}
{"i":4,"t_ns":550,"process":1,"type":"invoke","f":"send","partition":0,"value":"v1"}
{"i":5,"t_ns":600,"process":1,"type":"ok","f":"send","partition":0,"value":"v1","offset":1}
{"t_ns":0,"type":"leader","node":0,"partition":0,"epoch":1}
{"t_ns":500,"type":"leader","node":1,"partition":0,"epoch":2}
{"type":"replica","node":0,"partition":0,"log_start_offset":0,"high_watermark":2,"records":[[0,null,"v0"],[1,null,"v2"]]}
{"type":"replica","node":1,"partition":0,"log_start_offset":0,"high_watermark":2,"records":[[0,null,"v0"],[1,null,"v1"]]}
"#;

#[test]
fn a_divergence_says_which_sends_and_leaders_wrote_each_side() {
    let verdict = check(&parse_history_str(PARTED).expect("valid"));
    let parted = verdict.anomalies.iter().find(|a| a.invariant == Invariant::Divergence);
    let parted = parted.unwrap_or_else(|| panic!("no divergence in\n{verdict}"));
    for words in [
        "differ at offset 1",
        "holds `v2`, acknowledged at 0.000000s, written under leader n0 in epoch 1",
        "holds `v1`, acknowledged at 0.000000s, written under leader n1 in epoch 2",
    ] {
        assert!(parted.explanation.contains(words), "no `{words}` in {}", parted.explanation);
    }
    // Both sends, both elections and both logs, in time order (the logs last).
    let lines: Vec<u64> = parted.witness.iter().map(|w| w.line()).collect();
    assert_eq!(lines, vec![8, 5, 9, 7, 10, 11], "{verdict}");
}
