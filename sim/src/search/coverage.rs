//! Coverage: what a run reached (the faults that struck, the protocol events worth
//! reaching) and what its clients did, so that a sweep can say how many runs reached
//! each, and a scenario can demand a minimum: a green sweep must not hide that the
//! faults never bit.

use std::collections::BTreeMap;

use logjam_model as model;

use crate::Stats;

/// Everything worth reaching, with what it means. A run counts how often it reached
/// each; a sweep counts the runs that reached each at least once. Names are stable:
/// scenario files and reports use them.
pub const ITEMS: &[(&str, &str)] = &[
    ("crash", "a server crashed"),
    ("restart", "a server restarted and recovered from its disk"),
    ("pause", "a server paused"),
    ("partition", "the network was partitioned"),
    ("clog", "a link was clogged"),
    ("clock-jump", "a clock jumped forward"),
    ("message-drop", "the network dropped a message at random"),
    ("message-duplicate", "the network duplicated a message"),
    ("link-loss", "a link lost messages of its own (a burst, or a lossy link)"),
    (
        "connection-closed",
        "a message died with its connection (its link was cut or an end crashed)",
    ),
    (
        "disk-fault",
        "a disk fault struck (rot, bad sector, misdirected write, full disk, failed sync)",
    ),
    ("crash-lost-writes", "a crash lost or tore writes that were not yet synced"),
    (
        "torn-tail",
        "a crash tore the last batch of a log segment, synced or not (disk kind torn-tail)",
    ),
    ("header-flip", "a bit of a batch header field flipped at rest (disk kind batch-header)"),
    ("checkpoint-flip", "a bit of a checkpoint file flipped at rest (disk kind checkpoint)"),
    ("failed-sync", "a sync failed"),
    ("halt", "a broker stopped itself on storage it could not trust"),
    ("leader-election", "a partition got a new leader after its first"),
    (
        "leader-move",
        "the controller moved a partition's leadership off its live leader (an operator's leader-move)",
    ),
    ("follower-truncation", "a replica cut its log by the protocol (epochs or the legacy rule)"),
    ("isr-shrink", "a lagging or lost follower left a partition's in-sync replicas"),
    ("isr-grow", "a follower that caught up joined a partition's in-sync replicas"),
    ("recovery-truncation", "a restarted broker's log recovery cut a torn or corrupt tail"),
    (
        "recovery-trusted",
        "a restarted broker's log recovery trusted segments below its recovery point (cluster.verify_on_open = false)",
    ),
    (
        "log-recovery",
        "a restarted broker recovered a log it had written to, checked against its ledger of written batches",
    ),
    ("ledger-full", "the ledger of written batches reached its limit: recoveries went unchecked"),
    ("fencing-refusal", "a request was refused for a stale or unknown leader epoch"),
    ("client-restart", "a crashed producer or consumer came back as a new process"),
    (
        "budget-exceeded",
        "more replicas of a partition had lost unsynced writes at once than the budget (promised less)",
    ),
    ("long-poll-data", "a leader answered a follower's held fetch when its log grew"),
    ("long-poll-wait", "a follower's held fetch waited out the wait and got nothing new"),
    (
        "long-poll-leadership",
        "a leadership change answered a follower's held fetch with the error a fresh one gets",
    ),
    ("projection-restart", "an event-store projection restarted from its checkpoint"),
    ("snapshot-load", "an event-store command loaded its stream from a snapshot plus its tail"),
    (
        "snapshot-other-history",
        "an event-store command dropped a snapshot of events its stream lost (a lossy log)",
    ),
    ("txn-commit", "a transaction committed: every partition got its commit marker"),
    ("txn-abort", "a transaction aborted: every partition got its abort marker"),
    ("txn-timeout", "the coordinator aborted a transaction its producer left open too long"),
    ("txn-marker", "a partition leader wrote a transaction marker"),
    ("producer-fenced", "a producer or marker of an older producer epoch was refused (a zombie)"),
];

/// Whether `name` is one of `ITEMS`.
pub fn is_item(name: &str) -> bool {
    ITEMS.iter().any(|(item, _)| *item == name)
}

/// What a run reached, by item (every item present, zero included).
pub type Reached = BTreeMap<String, u64>;

/// What the world's counters say a run reached.
pub fn from_stats(stats: &Stats) -> Reached {
    let mut reached: Reached = ITEMS.iter().map(|(name, _)| ((*name).to_owned(), 0)).collect();
    let mut set = |name: &str, count: u64| {
        debug_assert!(is_item(name), "{name} is not a coverage item");
        reached.insert(name.to_owned(), count);
    };
    set("crash", stats.crashes);
    set("pause", stats.pauses);
    set("partition", stats.partitions);
    set("clog", stats.clogs);
    set("clock-jump", stats.clock_jumps);
    set("message-drop", stats.dropped_random);
    set("message-duplicate", stats.duplicated);
    set("link-loss", stats.dropped_link_loss);
    set("connection-closed", stats.dropped_connection_closed);
    set("disk-fault", stats.disk_faults);
    set("crash-lost-writes", stats.disk_writes_lost + stats.disk_writes_torn);
    set("torn-tail", stats.disk_tails_torn);
    set("header-flip", stats.disk_header_flips);
    set("checkpoint-flip", stats.disk_checkpoint_flips);
    set("failed-sync", stats.syncs_failed);
    set("halt", stats.halts);
    reached
}

/// Adds what the history's protocol events say: elections after a partition's first
/// leader, protocol truncations, restarts after each node's first start.
pub fn add_protocol(reached: &mut Reached, history: &model::History) {
    let mut first_epoch: BTreeMap<u32, u64> = BTreeMap::new();
    let mut started: BTreeMap<u32, ()> = BTreeMap::new();
    let (mut elections, mut truncations, mut restarts, mut recoveries) = (0, 0, 0, 0);
    for closing in history.closing() {
        let model::Closing::Protocol(protocol) = closing else { continue };
        match protocol.event {
            model::ProtocolEvent::Leader { partition, epoch } => {
                let first = *first_epoch.entry(partition).or_insert(epoch);
                elections += u64::from(epoch > first);
            }
            model::ProtocolEvent::Truncate { .. } => truncations += 1,
            model::ProtocolEvent::Restart => {
                restarts += u64::from(started.insert(protocol.node, ()).is_some());
            }
            model::ProtocolEvent::Recover { .. } => recoveries += 1,
            model::ProtocolEvent::Follower { .. } | model::ProtocolEvent::HighWatermark { .. } => {}
        }
    }
    reached.insert("log-recovery".to_owned(), recoveries);
    reached.insert("leader-election".to_owned(), elections);
    reached.insert("follower-truncation".to_owned(), truncations);
    reached.insert("restart".to_owned(), restarts);
}

/// Adds what the cluster counted outside the history (ISR changes, recovery cuts,
/// fencing refusals).
pub fn add_counted(reached: &mut Reached, counted: &BTreeMap<&'static str, u64>) {
    for (item, count) in counted {
        debug_assert!(is_item(item), "{item} is not a coverage item");
        *reached.entry((*item).to_owned()).or_insert(0) += count;
    }
}

/// What the clients did: operations by kind and outcome ("send ok", "poll info", ...),
/// from the history (operations still pending at the end count as "pending").
pub fn ops_by_outcome(history: &model::History) -> BTreeMap<String, u64> {
    // Counted under the (name, outcome) pair, the few keys named once at the end.
    let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for (index, _) in history.ops().iter().enumerate() {
        let name = history.invoke_of(index).op.name();
        let outcome = match history.completion_of(index).map(|event| event.kind) {
            Some(model::EventType::Ok) => "ok",
            Some(model::EventType::Fail) => "fail",
            Some(model::EventType::Info) => "info",
            Some(model::EventType::Invoke) | None => "pending",
        };
        *counts.entry((name, outcome)).or_insert(0) += 1;
    }
    counts
        .into_iter()
        .map(|((name, outcome), count)| (format!("{name} {outcome}"), count))
        .collect()
}

/// A scenario's demand: at least `min_per_mille` of a sweep's runs reach `item`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The coverage item (a name of `ITEMS`).
    pub item: String,
    /// The share of runs that must reach it, in thousandths.
    pub min_per_mille: u32,
}

/// Runs of a sweep that reached each item, and the requirements it fell short of.
pub fn shortfalls(
    requirements: &[Requirement],
    runs_reaching: &BTreeMap<String, u64>,
    runs: u64,
) -> Vec<String> {
    requirements
        .iter()
        .filter_map(|requirement| {
            let reached = runs_reaching.get(&requirement.item).copied().unwrap_or(0);
            // At least min_per_mille / 1000 of the runs, rounded up: one run at least.
            let needed = (runs * u64::from(requirement.min_per_mille)).div_ceil(1000).max(1);
            (reached < needed).then(|| match requirement.min_per_mille {
                0 => format!(
                    "under-covered: `{}` reached in none of {runs} runs; the scenario's faults include it, so at least one run must",
                    requirement.item
                ),
                _ => format!(
                    "under-covered: `{}` reached in {reached} of {runs} runs; the scenario requires at least {} ({needed} runs)",
                    requirement.item,
                    per_mille_text(requirement.min_per_mille)
                ),
            })
        })
        .collect()
}

/// The coverage items a fault menu implies: each fault kind it configures, by the item
/// that counts it striking. A sweep must reach each in at least one run (beyond the
/// scenario's own `[coverage]` minimums), or its faults never bit.
pub fn implied_by(menu: &crate::nemesis::FaultMenu) -> Vec<&'static str> {
    use crate::nemesis::DiskFaultKind;
    let mut items = Vec::new();
    let rate = |range: Option<[f64; 2]>| range.is_some_and(|[_, high]| high > 0.0);
    for (configured, item) in [
        (menu.crash.is_some(), "crash"),
        (menu.pause.is_some(), "pause"),
        (menu.partition.is_some(), "partition"),
        (menu.clog.is_some(), "clog"),
        (menu.clock_jump.is_some(), "clock-jump"),
        (rate(menu.drop), "message-drop"),
        (rate(menu.duplicate), "message-duplicate"),
        (menu.burst.is_some() || menu.lossy_link.is_some(), "link-loss"),
        (menu.operator.is_some(), "leader-move"),
    ] {
        if configured {
            items.push(item);
        }
    }
    if let Some((kinds, _)) = &menu.disk {
        let aimed =
            [DiskFaultKind::TornTail, DiskFaultKind::BatchHeader, DiskFaultKind::Checkpoint];
        if kinds.iter().any(|kind| !aimed.contains(kind)) {
            items.push("disk-fault");
        }
    }
    items
}

/// Whether a run of `scenario` can reach the coverage item `name` at all: a fault kind
/// the scenario does not configure, the transactions' items without transactions, the
/// event store's without it, and what only a crash or a disk fault causes without
/// either, cannot. Reports list only what can be reached (and anything a run did
/// reach). A scenario with configuration menus can reach everything its menus allow:
/// every item counts as reachable.
pub fn reachable(scenario: &crate::scenario::Scenario, name: &str) -> bool {
    use crate::nemesis::DiskFaultKind;
    use crate::scenario::System;
    if scenario.space.is_some() {
        return true;
    }
    let menu = &scenario.menu;
    let implied = implied_by(menu);
    let disk_kind =
        |kind: DiskFaultKind| menu.disk.as_ref().is_some_and(|(kinds, _)| kinds.contains(&kind));
    let crashes = menu.crash.is_some();
    let spec = match &scenario.system {
        System::LogCluster(spec) => Some(spec),
        System::GossipCounter { .. } => None,
    };
    match name {
        "crash" | "pause" | "partition" | "clog" | "clock-jump" | "message-drop"
        | "message-duplicate" | "link-loss" | "leader-move" | "disk-fault" => {
            implied.contains(&name)
        }
        "torn-tail" => disk_kind(DiskFaultKind::TornTail),
        "header-flip" => disk_kind(DiskFaultKind::BatchHeader),
        "checkpoint-flip" => disk_kind(DiskFaultKind::Checkpoint),
        "failed-sync" => disk_kind(DiskFaultKind::FailSync) || disk_kind(DiskFaultKind::OutOfSpace),
        "halt" => menu.disk.is_some(),
        "restart" | "crash-lost-writes" | "budget-exceeded" | "client-restart" => crashes,
        "log-recovery" | "recovery-truncation" | "ledger-full" => spec.is_some() && crashes,
        "recovery-trusted" => spec.is_some_and(|spec| !spec.verify_on_open) && crashes,
        "projection-restart" | "snapshot-load" => spec.is_some_and(|spec| spec.es.is_some()),
        "snapshot-other-history" => spec.is_some_and(|spec| spec.es.is_some()) && crashes,
        "txn-commit" | "txn-abort" | "txn-timeout" | "txn-marker" | "producer-fenced" => {
            spec.is_some_and(|spec| spec.txn.is_some())
        }
        // The replication protocol's own events: any log cluster.
        _ => spec.is_some(),
    }
}

/// "5%", "12.5%".
pub fn per_mille_text(per_mille: u32) -> String {
    if per_mille % 10 == 0 {
        format!("{}%", per_mille / 10)
    } else {
        format!("{}.{}%", per_mille / 10, per_mille % 10)
    }
}

/// Parses "5%" or "12.5%" (to a tenth of a percent) into per mille.
pub fn parse_percent(text: &str) -> Result<u32, String> {
    let number = text
        .trim()
        .strip_suffix('%')
        .ok_or_else(|| format!("`{text}`: write a percentage of runs, like \"5%\""))?;
    let (whole, tenth) = match number.split_once('.') {
        Some((whole, tenth)) if tenth.len() == 1 => (whole, tenth),
        Some(_) => return Err(format!("`{text}`: at most one decimal, like \"12.5%\"")),
        None => (number, "0"),
    };
    let parsed = whole.parse::<u32>().ok().zip(tenth.parse::<u32>().ok());
    match parsed {
        Some((whole, tenth)) if whole * 10 + tenth <= 1000 => Ok(whole * 10 + tenth),
        _ => Err(format!("`{text}`: a percentage between 0% and 100%")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_parse_to_per_mille_or_say_what_is_wrong() {
        let cases: &[(&str, Result<u32, &str>)] = &[
            ("5%", Ok(50)),
            ("12.5%", Ok(125)),
            ("100%", Ok(1000)),
            ("0%", Ok(0)),
            ("5", Err("write a percentage")),
            ("101%", Err("between 0% and 100%")),
            ("1.25%", Err("at most one decimal")),
            ("x%", Err("between 0% and 100%")),
        ];
        for (text, expected) in cases {
            match (parse_percent(text), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
            if let Ok(per_mille) = parse_percent(text) {
                assert_eq!(parse_percent(&per_mille_text(per_mille)), Ok(per_mille));
            }
        }
    }

    #[test]
    fn a_requirement_not_met_is_named_with_the_numbers() {
        let requirements = vec![
            Requirement { item: "crash".to_owned(), min_per_mille: 500 },
            Requirement { item: "follower-truncation".to_owned(), min_per_mille: 50 },
        ];
        let reaching: BTreeMap<String, u64> =
            [("crash".to_owned(), 600), ("follower-truncation".to_owned(), 49)].into();
        let short = shortfalls(&requirements, &reaching, 1000);
        assert_eq!(
            short,
            vec![
                "under-covered: `follower-truncation` reached in 49 of 1000 runs; the scenario requires at least 5% (50 runs)"
            ]
        );
        // A small sweep needs at least one run.
        assert_eq!(shortfalls(&requirements[1..], &BTreeMap::new(), 3).len(), 1);
        assert!(
            shortfalls(&requirements[1..], &[("follower-truncation".to_owned(), 1)].into(), 3)
                .is_empty()
        );
    }
}
