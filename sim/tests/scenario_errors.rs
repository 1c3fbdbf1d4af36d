//! A bad scenario file is refused with the file, the line and column, the key and the
//! problem; it never panics.

use logjam_sim::scenario::Scenario;

const GOOD: &str = r#"
name = "t"
system = "gossip-counter"

[cluster]
nodes = 3

[network]
latency = ["1ms", "2ms"]

[faults]
crash = { every = ["1s", "2s"], down_for = ["1ms", "5ms"] }
drop = [0.0, 0.1]

[[faults.at]]
time = "1s"
kind = "crash"
target = "n1"

[phases]
chaos = "5s"
quiet = "1s"

[expect]
all_hold = true
"#;

/// Each case replaces one piece of the good file and names the error it must give.
const CASES: &[(&str, &str, &str)] = &[
    (
        "nodes = 3",
        "nodes = 3\ncolour = \"red\"",
        "t.toml:7:1: cluster.colour: unknown field `colour`, expected one of `nodes`, `brokers`",
    ),
    ("nodes = 3", "nodes = 0", "t.toml:6:9: cluster.nodes: 0 is not between 1 and 1024"),
    ("nodes = 3", "nodes = -1", "t.toml:6:9: cluster.nodes: invalid value: integer `-1`"),
    (
        "[\"1ms\", \"2ms\"]",
        "[\"2ms\", \"1ms\"]",
        "t.toml:9:11: network.latency: range is upside down (2ms > 1ms)",
    ),
    (
        "[\"1ms\", \"2ms\"]",
        "[\"1ms\", \"2 weeks\"]",
        "t.toml:9:11: network.latency: duration `2 weeks` has unknown unit `weeks`",
    ),
    (
        "[\"1s\", \"2s\"]",
        "[\"0s\", \"2s\"]",
        "t.toml:12:19: faults.crash.every: must be above zero",
    ),
    ("[0.0, 0.1]", "[0.0, 1.5]", "t.toml:13:8: faults.drop: probability 1.5 is outside [0, 1]"),
    ("[0.0, 0.1]", "[0.2, 0.1]", "t.toml:13:8: faults.drop: range is upside down (0.2 > 0.1)"),
    (
        "target = \"n1\"",
        "target = \"n3\"",
        "t.toml:18:10: faults.at.target: node n3 does not exist (the cluster has 3 nodes)",
    ),
    (
        "target = \"n1\"",
        "target = \"leader\"",
        "t.toml:18:10: faults.at.target: `leader` is not a node",
    ),
    (
        "kind = \"crash\"",
        "kind = \"meteor\"",
        "t.toml:17:8: faults.at.kind: unknown variant `meteor`",
    ),
    (
        "kind = \"crash\"\ntarget = \"n1\"",
        "kind = \"heal\"\ntarget = \"n9\"",
        "t.toml:18:10: faults.at.target: `heal` takes no target (it heals the whole network), yet names `n9`",
    ),
    (
        "chaos = \"5s\"",
        "chaos = \"-2s\"",
        "t.toml:21:9: phases.chaos: duration `-2s` cannot be negative",
    ),
    (
        "time = \"1s\"",
        "time = \"6s\"",
        "t.toml:15:1: faults.at.time: 6s is past the end of the run (chaos 5s + quiet 1s)",
    ),
    (
        "system = \"gossip-counter\"",
        "system = \"kafka\"",
        "t.toml:3:10: system: unknown variant `kafka`",
    ),
    (
        "all_hold = true",
        "violation = \"no-such-thing\"",
        "t.toml:24:1: expect.violation: unknown invariant `no-such-thing`",
    ),
    (
        "all_hold = true",
        "all_hold = true\nviolation = \"converged\"",
        "t.toml:24:1: expect: say either",
    ),
    ("quiet = \"1s\"\n", "", "t.toml:20:1: phases: missing field `quiet`"),
    (
        "all_hold = true",
        "all_hold = true\n\n[coverage]\ncrash = \"5%\"\nfollower-truncaton = \"5%\"",
        "t.toml:29:1: coverage.follower-truncaton: unknown item; known: crash, restart",
    ),
    (
        "all_hold = true",
        "all_hold = true\n\n[coverage]\ncrash = \"half\"",
        "t.toml:28:9: coverage.crash: `half`: write a percentage of runs, like \"5%\"",
    ),
    (
        "kind = \"crash\"\ntarget = \"n1\"",
        "kind = \"split\"\nnodes = []",
        "t.toml:18:9: faults.at.nodes: a split needs nodes on both sides",
    ),
    (
        "kind = \"crash\"\ntarget = \"n1\"",
        "kind = \"split\"\nnodes = [\"n0\"]\nduration = \"1s\"",
        "t.toml:15:1: faults.at.duration: `split` takes no `duration` (it takes: nodes)",
    ),
    (
        "kind = \"crash\"\ntarget = \"n1\"",
        "kind = \"clog\"\nfrom = [\"n0\", \"n1\"]\nto = \"n2\"\nduration = \"1s\"",
        "t.toml:18:8: faults.at.from: name exactly one node",
    ),
    (
        "kind = \"crash\"\ntarget = \"n1\"",
        "kind = \"burst\"\nfrom = \"n0\"\nto = \"n7\"\nduration = \"1s\"",
        "t.toml:19:6: faults.at.to: node n7 does not exist (the cluster has 3 nodes)",
    ),
    (
        "kind = \"crash\"\ntarget = \"n1\"",
        "kind = \"burst\"\nfrom = \"n0\"\nto = \"n1\"",
        "t.toml:15:1: faults.at: `burst` needs `duration`",
    ),
    (
        "kind = \"crash\"\ntarget = \"n1\"",
        "kind = \"lossy-link\"\nfrom = \"n0\"\nto = \"n1\"\nduration = \"1s\"\nprobability = 1.5",
        "t.toml:21:15: faults.at.probability: probability 1.5 is outside [0, 1]",
    ),
    (
        "kind = \"crash\"\ntarget = \"n1\"",
        "kind = \"one-way\"\nfrom = \"n0\"",
        "t.toml:15:1: faults.at: `one-way` needs `to`",
    ),
    (
        "kind = \"crash\"\ntarget = \"n1\"",
        "kind = \"cut\"\ntarget = \"n1\"",
        "t.toml:18:10: faults.at.target: `cut` takes no target (it names its links' ends in `from` and `to`), yet names `n1`",
    ),
    (
        "kind = \"crash\"\ntarget = \"n1\"",
        "kind = \"disk\"\ntarget = \"n1\"",
        "t.toml:15:1: faults.at: `disk` needs `disk`",
    ),
    (
        "kind = \"crash\"\ntarget = \"n1\"",
        "kind = \"disk\"\ntarget = \"n1\"\ndisk = \"bit-rot\"\nfield = \"crc\"",
        "t.toml:19:8: faults.at.field: disk fault `bit-rot` takes no `field`",
    ),
    (
        "kind = \"crash\"\ntarget = \"n1\"",
        "kind = \"disk\"\ntarget = \"n1\"\ndisk = \"batch-header\"\nfield = \"colour\"",
        "t.toml:20:9: faults.at.field: unknown variant `colour`",
    ),
    (
        "kind = \"crash\"\ntarget = \"n1\"",
        "kind = \"network-faults\"\nduplicate = 0.1",
        "t.toml:15:1: faults.at: `network-faults` needs `probability`",
    ),
    (
        "kind = \"crash\"\ntarget = \"n1\"",
        "kind = \"leader-move\"\npartition = 0",
        "t.toml:15:1: faults.at: `leader-move`: only a log cluster has leaders",
    ),
    (
        "kind = \"crash\"\ntarget = \"n1\"",
        "kind = \"leader-move\"",
        "t.toml:15:1: faults.at: `leader-move` needs `partition`",
    ),
    ("name = \"t\"", "name = ", "t.toml:2:8: invalid string"),
];

/// An event-store scenario, with disk faults on one broker.
const GOOD_ES: &str = r#"
name = "es"
system = "event-store"

[cluster]
brokers = 3
partitions = 2

[eventstore]
domain = "bank"
aggregates = 4

[workload]
producers = 2
consumers = 1

[faults]
disk = { kinds = ["bit-rot"], every = ["1s", "2s"], nodes = 1 }

[phases]
chaos = "5s"
quiet = "1s"

[expect]
all_hold = true
"#;

/// The event-store and disk-budget fields, refused with their place.
const CASES_ES: &[(&str, &str, &str)] = &[
    (
        "domain = \"bank\"",
        "domain = \"ledger\"",
        "t.toml:10:10: eventstore.domain: `ledger` is not a domain the simulator runs",
    ),
    ("aggregates = 4", "aggregates = 1", "t.toml:11:14: eventstore.aggregates: 1 is not between 2"),
    (
        "domain = \"bank\"",
        "domain = \"cart\"",
        "t.toml:15:13: workload.consumers: projections (and CDC replicas) run for the bank and table domains",
    ),
    ("nodes = 1 }", "nodes = 4 }", "t.toml:18:61: faults.disk.nodes: 4 is not between 1 and 3"),
    (
        "aggregates = 4",
        "aggregates = 4\nrows = 3",
        "t.toml:12:1: eventstore.rows: unknown field `rows`",
    ),
    (
        "system = \"event-store\"",
        "system = \"log-cluster\"",
        "t.toml:9:1: eventstore: only for system event-store",
    ),
    ("[eventstore]\ndomain = \"bank\"\naggregates = 4\n", "", "t.toml: eventstore: missing"),
    (
        "all_hold = true",
        "violation = \"lost-write\"\nwithin_seeds = 5",
        "t.toml:24:1: expect.violation: unknown invariant `lost-write`",
    ),
    (
        "[phases]",
        "[transactions]\nprocessors = 1\n\n[phases]",
        "t.toml:21:14: transactions: partitions_per_txn and processors are for system log-cluster",
    ),
    (
        "[phases]",
        "[transactions]\npartitions_per_txn = 2\n\n[phases]",
        "t.toml:21:22: transactions: partitions_per_txn and processors are for system log-cluster",
    ),
    (
        "domain = \"bank\"\naggregates = 4\n\n[workload]\nproducers = 2\nconsumers = 1",
        "domain = \"cart\"\naggregates = 4\n\n[workload]\nproducers = 2\nconsumers = 0\n\n[transactions]\ntimeout = \"1s\"",
        "t.toml:17:1: transactions: only for system log-cluster, or event-store with domain bank",
    ),
    (
        "aggregates = 4\n\n[workload]",
        "aggregates = 4\nexpected_versions = false\n\n[transactions]\ntimeout = \"1s\"\n\n[workload]",
        "t.toml:14:1: transactions: an event store's transactions need eventstore.expected_versions",
    ),
];

#[test]
fn bad_files_are_refused_with_the_place_and_the_problem() {
    assert!(Scenario::parse(GOOD, "t.toml").is_ok(), "{:?}", Scenario::parse(GOOD, "t.toml"));
    assert!(Scenario::parse(GOOD_ES, "t.toml").is_ok(), "{:?}", Scenario::parse(GOOD_ES, "t.toml"));
    let cases =
        CASES.iter().map(|case| (GOOD, case)).chain(CASES_ES.iter().map(|case| (GOOD_ES, case)));
    let mismatches: Vec<String> = cases
        .filter_map(|(good, (from, to, expected))| {
            assert!(good.contains(from), "case {from:?} does not match the good file");
            let text = good.replacen(from, to, 1);
            mismatch(Scenario::parse(&text, "t.toml").map(|_| ()), from, to, expected)
        })
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// What is wrong with the answer to one case (every case's shown at once), if anything.
fn mismatch(
    parsed: Result<(), logjam_sim::scenario::ScenarioError>,
    from: &str,
    to: &str,
    expected: &str,
) -> Option<String> {
    match parsed {
        Ok(()) => Some(format!("accepted {from:?} -> {to:?}")),
        Err(error) if error.to_string().starts_with(expected) => None,
        Err(error) => Some(format!("{from:?} -> {to:?}\n  got:  {error}\n  want: {expected}")),
    }
}

#[test]
fn garbage_never_panics() {
    let mut text = GOOD.as_bytes().to_vec();
    // Deterministic corruption: every byte position, one at a time, replaced by a few
    // troublesome characters.
    for position in 0..text.len() {
        for replacement in [b'"', b'[', b'=', b'\n', b'9', b'-'] {
            let original = text[position];
            text[position] = replacement;
            let _ = Scenario::parse(&String::from_utf8_lossy(&text), "t.toml");
            text[position] = original;
        }
    }
}

const CLUSTER_GOOD: &str = r#"
name = "c"
system = "log-cluster"

[cluster]
brokers = 3
replication_factor = 3
min_insync_replicas = 2
acks = "all"
flush = "every-batch"

[workload]
producers = 2

[faults]
crash = { every = ["1s", "2s"], down_for = ["1ms", "5ms"], max_down = 1 }

[[faults.at]]
time = "1s"
kind = "crash"
target = "n2"

[phases]
chaos = "5s"
quiet = "1s"

[expect]
violation = "lost-write"
"#;

/// Impossible clusters and misnamed things in a log-cluster scenario.
const CLUSTER_CASES: &[(&str, &str, &str)] = &[
    // Configuration menus: empty, a value out of range, a value no combination allows.
    ("brokers = 3", "brokers = []", "c.toml:6:11: cluster.brokers: a menu with no values"),
    (
        "min_insync_replicas = 2",
        "min_insync_replicas = [2, 0]",
        "c.toml:8:27: cluster.min_insync_replicas = 0 can never be drawn: cluster.min_insync_replicas: must be above zero",
    ),
    (
        "replication_factor = 3",
        "replication_factor = [3, 4]",
        "c.toml:7:26: cluster.replication_factor = 4 can never be drawn: cluster.replication_factor: 4 exceeds brokers 3",
    ),
    (
        "acks = \"all\"",
        "acks = [\"all\", \"all\"]",
        "c.toml:9:16: cluster.acks: `\"all\"` is in the menu twice",
    ),
    (
        "acks = \"all\"",
        "acks = [\"all\", \"most\"]",
        "c.toml:9:16: cluster.acks = \"most\" can never be drawn: cluster.acks: unknown variant `most`",
    ),
    (
        "replication_factor = 3",
        "replication_factor = 4",
        "c.toml:7:22: cluster.replication_factor: 4 exceeds brokers 3",
    ),
    (
        "min_insync_replicas = 2",
        "min_insync_replicas = 4",
        "c.toml:8:23: cluster.min_insync_replicas: 4 exceeds replication_factor 3",
    ),
    ("acks = \"all\"", "acks = \"most\"", "c.toml:9:8: cluster.acks: unknown variant `most`"),
    (
        "flush = \"every-batch\"",
        "flush = { every_ms = 0 }",
        "c.toml:10:9: cluster.flush.every_ms: must be above zero",
    ),
    (
        "flush = \"every-batch\"",
        "flush = \"every-batch\"\nreplica_fetch_wait = \"50ms\"",
        "c.toml:11:22: cluster.replica_fetch_wait: 50ms must be below 50ms (a follower gives up on a fetch after the request timeout)",
    ),
    (
        "flush = \"every-batch\"",
        "flush = \"every-batch\"\nreplica_lag_max = \"5ms\"",
        "c.toml:11:19: cluster.replica_lag_max: 5ms is not between 20ms and 10s",
    ),
    (
        "flush = \"every-batch\"",
        "flush = \"every-batch\"\nsession_timeout = \"60s\"",
        "c.toml:11:19: cluster.session_timeout: 60s is not between 100ms and 10s",
    ),
    (
        "flush = \"every-batch\"",
        "flush = \"every-batch\"\nsession_timeout = [\"200ms\", \"50ms\"]",
        "c.toml:11:29: cluster.session_timeout = \"50ms\" can never be drawn: cluster.session_timeout: 50ms is not between 100ms and 10s",
    ),
    (
        "brokers = 3",
        "brokers = 3\nnodes = 3",
        "c.toml:7:9: cluster.nodes: a log-cluster counts `brokers`",
    ),
    (
        "target = \"n2\"",
        "target = \"n9\"",
        "c.toml:21:10: faults.at.target: node n9 does not exist (the cluster has 7 nodes)",
    ),
    ("max_down = 1", "max_down = 0", "c.toml:16:71: faults.crash.max_down: must be above zero"),
    (
        "violation = \"lost-write\"",
        "violation = \"lost-wrte\"",
        "c.toml:27:1: expect.violation: unknown invariant `lost-wrte`",
    ),
    // Transactions: each field refused with its place.
    (
        "[workload]",
        "[transactions]\nprotocol = \"kip-891\"\n\n[workload]",
        "c.toml:13:12: transactions.protocol: unknown variant `kip-891`",
    ),
    (
        "[workload]",
        "[transactions]\npartitions_per_txn = 4\n\n[workload]",
        "c.toml:13:22: transactions.partitions_per_txn: 4 is not between 1 and the partitions (1)",
    ),
    (
        "[workload]",
        "[transactions]\nplain_producers = 2\n\n[workload]",
        "c.toml:13:19: transactions.plain_producers: 2 must be below the producers (2): one at least runs transactions",
    ),
    (
        "[workload]",
        "[transactions]\nprocessors = 99\n\n[workload]",
        "c.toml:13:14: transactions.processors: 99 exceeds 8",
    ),
    (
        "[workload]",
        "[transactions]\nread_uncommitted = 2\n\n[workload]",
        "c.toml:13:20: transactions.read_uncommitted: 2 exceeds the consumers (1)",
    ),
    (
        "[workload]",
        "[transactions]\ntimeout = \"0s\"\n\n[workload]",
        "c.toml:13:11: transactions.timeout: must be above zero",
    ),
    (
        "[workload]",
        "[transactions]\nreaders = 1\n\n[workload]",
        "c.toml:13:1: transactions.readers: unknown field `readers`",
    ),
    (
        "[workload]",
        "[transactions]\noffsets = \"sometimes\"\n\n[workload]",
        "c.toml:13:11: transactions.offsets: unknown variant `sometimes`",
    ),
];

#[test]
fn impossible_clusters_are_refused_with_the_place_and_the_problem() {
    assert!(
        Scenario::parse(CLUSTER_GOOD, "c.toml").is_ok(),
        "{:?}",
        Scenario::parse(CLUSTER_GOOD, "c.toml")
    );
    let mismatches: Vec<String> = CLUSTER_CASES
        .iter()
        .filter_map(|(from, to, expected)| {
            assert!(CLUSTER_GOOD.contains(from), "case {from:?} does not match the good file");
            let text = CLUSTER_GOOD.replacen(from, to, 1);
            mismatch(Scenario::parse(&text, "c.toml").map(|_| ()), from, to, expected)
        })
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn the_isr_and_session_timings_reach_the_cluster() {
    use logjam_sim::cluster::{REPLICA_LAG_MAX_NS_DEFAULT, SESSION_TIMEOUT_NS_DEFAULT};
    use logjam_sim::scenario::System;
    let timings = |text: &str| match Scenario::parse(text, "c.toml").expect("a good file").system {
        System::LogCluster(spec) => (spec.replica_lag_max_ns, spec.session_timeout_ns),
        System::GossipCounter { .. } => panic!("a log cluster"),
    };
    assert_eq!(timings(CLUSTER_GOOD), (REPLICA_LAG_MAX_NS_DEFAULT, SESSION_TIMEOUT_NS_DEFAULT));
    let set = CLUSTER_GOOD.replacen(
        "flush = \"every-batch\"",
        "flush = \"every-batch\"\nreplica_lag_max = \"3s\"\nsession_timeout = \"120ms\"",
        1,
    );
    assert_eq!(timings(&set), (3_000_000_000, 120_000_000));
}
