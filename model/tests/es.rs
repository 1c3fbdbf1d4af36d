//! The event-store checkers on small hand-built histories, one row each: a base history
//! (a clean bank, cart or inventory run), one edit that breaks it, the checks that must
//! be violated, those that must be broken only as expected under the setup, and words
//! the explanation must contain. Every check has a row that makes it fail.

use logjam_model::es::{
    CommandOutcome, CommandRecord, EsHistory, EsInvariant, EsVerdict, EsWitness,
    ProjectionCheckpoint, ReplicaStreams, StoredEvent, check,
};
use logjam_model::{Judgement, Status};
use serde_json::{Value, json};

struct Row {
    name: &'static str,
    base: fn() -> EsHistory,
    edit: fn(&mut EsHistory),
    violated: &'static [&'static str],
    expected: &'static [&'static str],
    /// Words some anomaly's explanation must contain.
    mentions: &'static [&'static str],
}

const fn row(
    name: &'static str,
    base: fn() -> EsHistory,
    edit: fn(&mut EsHistory),
    violated: &'static [&'static str],
    expected: &'static [&'static str],
    mentions: &'static [&'static str],
) -> Row {
    Row { name, base, edit, violated, expected, mentions }
}

fn unchanged(_: &mut EsHistory) {}

/// Command 12 acknowledged acct-1 version 3 in a history the log lost; the replicas
/// hold command 7's first attempt there and its retry at version 4.
fn duplicate_after_a_lost_acknowledgement(h: &mut EsHistory) {
    h.commands.push(command(12, "acct-1", Some(3), ok(3, vec![deposited(1)])));
    retry_lands_twice(h);
}

/// The base's command 7 (an indeterminate deposit) landed at acct-1 version 3, and its
/// retry, acknowledged at version 4, landed again right after.
fn retry_lands_twice(h: &mut EsHistory) {
    h.commands.push(command(7, "acct-1", Some(4), ok(4, vec![deposited(10)])));
    append(h, ev(5, "acct-1", 3, 7, deposited(10)));
    append(h, ev(6, "acct-1", 4, 7, deposited(10)));
}

const TABLE: &[Row] = &[
    // Clean runs: nothing to report.
    row("bank-clean", bank, unchanged, &[], &[], &[]),
    row("bank-clean-appends-with-any", bank, |h| h.expected_versions = false, &[], &[], &[]),
    row("cart-clean", cart, unchanged, &[], &[], &[]),
    row("inventory-clean", inventory, unchanged, &[], &[], &[]),
    // A transfer refunded instead of credited holds too.
    row("bank-transfer-refunded", bank, refund_instead_of_credit, &[], &[], &[]),
    // Atomic transfers (one transaction each): the transfer is debited and credited.
    row("bank-atomic-clean", bank, |h| h.atomic_transfers = true, &[], &[], &[]),
    // A saga's credit that never lands leaves the transfer in flight at the end...
    row(
        "saga-credit-missing",
        bank,
        credit_never_lands,
        &["transfer-completion"],
        &[],
        &["transfer 1", "neither credited nor refunded"],
    ),
    // ...but with atomic transfers it is half a transaction committed: money lost, in
    // the final log and at the projections' cut that sees the debit.
    row(
        "atomic-credit-missing",
        bank,
        |h| {
            h.atomic_transfers = true;
            credit_never_lands(h);
        },
        &["money-conservation"],
        &[],
        &["its credit (in the same transaction) never was", "transfer 1 is half visible"],
    ),
    // A transfer credited 30 for a debit of 40, projected faithfully: no read model is
    // wrong, but 10 vanished, in the final log and at the cut that sees both halves.
    row(
        "transfer-halves-disagree",
        bank,
        |h| {
            for replica in &mut h.replicas {
                for event in replica.events.iter_mut().filter(|e| e.offset == 4) {
                    event.event = credit(1, "acct-1", 30);
                }
            }
            command_mut(h, 5).outcome = ok(1, vec![credit(1, "acct-1", 30)]);
            h.projections[1] = checkpoint(5, json!({"acct-1": 30, "acct-2": 80}));
        },
        &["money-conservation"],
        &[],
        &["does not add up", "in flight across the cut 0 = 120 (-10)"],
    ),
    // A projection that stopped behind the log, in a run that gave it time to catch up.
    row(
        "projection-stuck-behind",
        bank,
        |h| {
            h.projections_settled = true;
            h.projections.pop();
        },
        &["projection-progress"],
        &[],
        &["projection 1 of partition 0 ends below offset 3, 2 committed events behind"],
    ),
    // The same on a log that may lose acknowledged appends: what the projection folded
    // may have vanished under it, so stopping is what that allows.
    row(
        "projection-stuck-behind-on-a-lossy-log",
        bank,
        |h| {
            h.projections_settled = true;
            h.lossy_log = true;
            h.projections.pop();
        },
        &[],
        &["projection-progress"],
        &[],
    ),
    row("projections-caught-up", bank, |h| h.projections_settled = true, &[], &[], &[]),
    // A projection that counted a debit the log does not hold (an aborted transaction's,
    // read uncommitted) makes money vanish at its cut: expected of a projection reading
    // uncommitted...
    row(
        "read-uncommitted-projection-counts-aborted-debit",
        bank,
        |h| counts_aborted_debit(h, true),
        &[],
        &["money-conservation", "projection-equivalence"],
        &["read models' balances sum to 100", "(-20)"],
    ),
    // ...and a violation of one reading committed.
    row(
        "read-committed-projection-counts-aborted-debit",
        bank,
        |h| counts_aborted_debit(h, false),
        &["money-conservation", "projection-equivalence"],
        &[],
        &["read models' balances sum to 100"],
    ),
    // stream-contiguity: acct-1 jumps from version 1 to 3 (the command was told 3).
    row(
        "version-gap",
        bank,
        |h| {
            set_version(h, 3, 3);
            let command = command_mut(h, 4);
            command.decided_at_version = Some(3);
            command.outcome = ok(3, vec![debit(1, "acct-2", 40)]);
        },
        &["stream-contiguity"],
        &[],
        &["acct-1", "version 2 is missing", "command 4"],
    ),
    // stream-contiguity: a landed indeterminate append repeats acct-1 version 2.
    row(
        "version-repeat",
        bank,
        |h| {
            h.commands.push(command(11, "acct-1", Some(2), info()));
            append(h, ev(5, "acct-1", 2, 11, deposited(10)));
        },
        &["stream-contiguity"],
        &[],
        &["acct-1", "version 2 twice", "command 4", "command 11"],
    ),
    // stream-contiguity: n2's offsets go backwards.
    row(
        "offsets-out-of-order",
        bank,
        |h| {
            h.replicas[1].events[1].offset = 2;
            h.replicas[1].events[2].offset = 1;
        },
        &["stream-contiguity"],
        &[],
        &["partition 0 on n2: offset 1 (acct-1 version 1) follows offset 2"],
    ),
    // stream-contiguity: acct-1 is in two partitions.
    row(
        "stream-in-two-partitions",
        bank,
        |h| {
            let events = vec![ev(0, "acct-1", 0, 1, deposited(100))];
            h.replicas.push(ReplicaStreams { node: 4, partition: 1, events });
        },
        &["stream-contiguity"],
        &[],
        &["acct-1 is in partitions 0 and 1"],
    ),
    // lost-update: two ok commands decided on acct-2 version 1 (the store appended the
    // second at version 2): a violation with expected versions...
    row(
        "lost-update-same-version",
        bank,
        deposit_on_stale_version,
        &["lost-update"],
        &[],
        &["commands 5 and 9", "acct-2 version 1"],
    ),
    // ...and what appends with "any" allow.
    row(
        "lost-update-same-version-appends-with-any",
        bank,
        |h| {
            h.expected_versions = false;
            deposit_on_stale_version(h);
        },
        &[],
        &["lost-update"],
        &["commands 5 and 9"],
    ),
    // Two withdrawals decided on the same balance overdraw it between them.
    row(
        "concurrent-withdrawals",
        bank,
        concurrent_withdrawals,
        &["lost-update", "business-rules"],
        &[],
        &["commands 9 and 10", "Withdrawn 60 from a balance of 30 leaves -30"],
    ),
    row(
        "concurrent-withdrawals-appends-with-any",
        bank,
        |h| {
            h.expected_versions = false;
            concurrent_withdrawals(h);
        },
        &[],
        &["lost-update", "business-rules"],
        &[],
    ),
    // lost-update: n2 holds another command at an acknowledged version.
    row(
        "acked-append-overwritten",
        bank,
        |h| h.replicas[1].events[2].command_id = 99,
        &["lost-update"],
        &[],
        &["command 3 appended acct-1 version 1", "n2 holds command 99"],
    ),
    row(
        "acked-append-overwritten-on-a-lossy-log",
        bank,
        |h| {
            h.lossy_log = true;
            h.replicas[1].events[2].command_id = 99;
        },
        &[],
        &["lost-update"],
        &[],
    ),
    // lost-update: command 9 decided on acct-2 version 2, but a landed indeterminate
    // append (command 11) took version 2 and command 9 went to version 3.
    row(
        "stale-decision",
        bank,
        |h| {
            h.commands.push(command(11, "acct-2", Some(2), info()));
            h.commands.push(command(9, "acct-2", Some(2), ok(3, vec![deposited(5)])));
            append(h, ev(5, "acct-2", 2, 11, deposited(10)));
            append(h, ev(6, "acct-2", 3, 9, deposited(5)));
        },
        &["lost-update"],
        &[],
        &["command 9 decided on acct-2 version 2 but appended at version 3", "(command 11)"],
    ),
    // duplicate-command: command 3's Withdrawn is appended again, later.
    row(
        "duplicate-command",
        bank,
        |h| append(h, ev(5, "acct-1", 3, 3, withdrawn(30))),
        &["duplicate-command"],
        &[],
        &["command 3", "acct-1 version 1", "acct-1 version 3"],
    ),
    // duplicate-command: an indeterminate deposit landed, and its retry (same id)
    // appended it again right after.
    row(
        "duplicate-command-retry",
        bank,
        retry_lands_twice,
        &["duplicate-command"],
        &[],
        &["command 7", "acct-1 version 3", "acct-1 version 4"],
    ),
    // duplicate-command explained by a loss: command 7's first attempt (indeterminate)
    // landed at acct-1 version 3 in one history; command 12 was acknowledged version 3
    // in another, which the log lost; 7's reload saw that other history and its retry
    // landed at version 4 after its own first attempt (config-swarm-es seed 2072). On a
    // log that may lose acknowledged events, both are what the loss allows...
    row(
        "duplicate-command-after-a-lost-acknowledgement-on-a-lossy-log",
        bank,
        |h| {
            h.lossy_log = true;
            duplicate_after_a_lost_acknowledgement(h);
        },
        &[],
        &["duplicate-command", "lost-update"],
        &["the log lost command 12's acknowledged event at acct-1 version 3"],
    ),
    // ...and on a log that promises durability, both are violations.
    row(
        "duplicate-command-after-a-lost-acknowledgement",
        bank,
        duplicate_after_a_lost_acknowledgement,
        &["duplicate-command", "lost-update"],
        &[],
        &["the log lost command 12's acknowledged event"],
    ),
    // The near miss: on a lossy log, a duplicate no loss explains is still a violation.
    row(
        "duplicate-command-retry-on-a-lossy-log",
        bank,
        |h| {
            h.lossy_log = true;
            retry_lands_twice(h);
        },
        &["duplicate-command"],
        &[],
        &["command 7", "acct-1 version 3", "acct-1 version 4"],
    ),
    // business-rules: a landed indeterminate withdrawal overdraws acct-2.
    row(
        "overdraft",
        bank,
        |h| {
            h.commands.push(command(11, "acct-2", Some(2), info()));
            append(h, ev(5, "acct-2", 2, 11, withdrawn(100)));
        },
        &["business-rules"],
        &[],
        &["acct-2 version 2", "command 11", "Withdrawn 100 from a balance of 90 leaves -10"],
    ),
    // replay-equivalence too: the handler decided the overdraft on a state that forbade it.
    row(
        "handler-overdraft",
        bank,
        |h| {
            h.commands.push(command(9, "acct-2", Some(2), ok(2, vec![withdrawn(100)])));
            append(h, ev(5, "acct-2", 2, 9, withdrawn(100)));
        },
        &["replay-equivalence", "business-rules"],
        &[],
        &["command 9 decided Withdrawn 100 on acct-2 at version 2 (balance 90)"],
    ),
    // replay-equivalence: the log holds other events than the command appended.
    row(
        "recorded-other-events",
        bank,
        |h| command_mut(h, 3).outcome = ok(1, vec![withdrawn(35)]),
        &["replay-equivalence"],
        &[],
        &["acct-1 version 1", "command 3"],
    ),
    // folds-agree: n2's acct-1 says Withdrawn 20 where n1's says 30.
    row(
        "folds-disagree",
        bank,
        |h| h.replicas[1].events[2].event = withdrawn(20),
        &["folds-agree"],
        &[],
        &["acct-1 folds to balance 30 on n1 but balance 40 on n2", "version 1"],
    ),
    // money-conservation: transfer 1 credited twice (the second decided on a stale state).
    row(
        "debit-credited-twice",
        bank,
        |h| {
            h.commands.push(command(10, "acct-2", Some(1), info()));
            append(h, ev(5, "acct-2", 2, 10, credit(1, "acct-1", 40)));
        },
        &["money-conservation"],
        &[],
        &["transfer 1 completed twice", "acct-2 version 1", "acct-2 version 2"],
    ),
    // money-conservation: transfer 1 debited 40 but credited 30.
    row(
        "transfer-credited-wrong-amount",
        bank,
        |h| {
            command_mut(h, 5).outcome = ok(1, vec![credit(1, "acct-1", 30)]);
            for replica in &mut h.replicas {
                for event in replica.events.iter_mut().filter(|e| e.command_id == 5) {
                    event.event = credit(1, "acct-1", 30);
                }
            }
            h.projections[1].read_model = json!({"acct-1": 30, "acct-2": 80});
        },
        &["money-conservation"],
        &[],
        &[
            "transfer 1 does not add up",
            "TransferCredited 30 from acct-1 (transfer 1) on acct-2 version 1",
        ],
    ),
    // transfer-completion: the credit never happened.
    row(
        "debit-never-completed",
        bank,
        |h| {
            h.commands.retain(|c| c.command_id != 5);
            for replica in &mut h.replicas {
                replica.events.retain(|e| e.command_id != 5);
            }
            h.projections[1].read_model = json!({"acct-1": 30, "acct-2": 50});
        },
        &["transfer-completion"],
        &[],
        &["transfer 1", "acct-1 version 2", "command 4", "neither credited nor refunded"],
    ),
    // projection-equivalence: the read model counted the credit at offset 4 twice (and
    // so, at that checkpoint, money appears: money-conservation at the cut)...
    row(
        "projection-double-count",
        bank,
        |h| h.projections[1].read_model = json!({"acct-1": 30, "acct-2": 130}),
        &["money-conservation", "projection-equivalence"],
        &[],
        &["counts twice acct-2 version 1 at offset 4", "130 in the read model but 90"],
    ),
    // ...or skipped the withdrawal at offset 2.
    row(
        "projection-skip",
        bank,
        |h| h.projections[1].read_model = json!({"acct-1": 60, "acct-2": 90}),
        &["money-conservation", "projection-equivalence"],
        &[],
        &["skips acct-1 version 1 at offset 2"],
    ),
    // ...or counted the event at its checkpoint offset.
    row(
        "projection-past-its-offset",
        bank,
        |h| h.projections[0].read_model = json!({"acct-1": 30, "acct-2": 50}),
        &["money-conservation", "projection-equivalence"],
        &[],
        &["at or past its offset, acct-1 version 2 at offset 3"],
    ),
    // cart: an item added after CheckedOut, and a line taken below zero.
    row(
        "cart-after-checkout",
        cart,
        |h| {
            h.commands.push(command(5, "cart-1", Some(3), info()));
            append(h, ev(4, "cart-1", 3, 5, json!({"ItemAdded": {"sku": 7, "qty": 1}})));
        },
        &["business-rules"],
        &[],
        &["cart-1 version 3", "after CheckedOut"],
    ),
    row(
        "cart-negative-line",
        cart,
        |h| {
            h.commands.push(command(5, "cart-2", Some(1), info()));
            append(h, ev(4, "cart-2", 1, 5, json!({"ItemRemoved": {"sku": 3, "qty": 2}})));
        },
        &["business-rules"],
        &[],
        &["cart-2 version 1", "ItemRemoved 2 of sku 3 from a line of 1"],
    ),
    row(
        "cart-projection-shows-checked-out-cart",
        cart,
        |h| h.projections[0].read_model = json!({"cart-1": {"7": 1}, "cart-2": {"3": 1}}),
        &["projection-equivalence"],
        &[],
        &["skips cart-1 version 2 at offset 2"],
    ),
    // inventory: reservations beyond stock, and a release of a released order.
    row(
        "inventory-over-reserved",
        inventory,
        |h| {
            h.commands.push(command(5, "sku-1", Some(4), info()));
            append(h, ev(4, "sku-1", 4, 5, json!({"Reserved": {"order": 3, "qty": 2}})));
        },
        &["business-rules"],
        &[],
        &["sku-1 version 4", "reservations to 6 of 5 stocked"],
    ),
    row(
        "inventory-release-not-live",
        inventory,
        |h| {
            h.commands.push(command(5, "sku-1", Some(4), info()));
            append(h, ev(4, "sku-1", 4, 5, json!({"Released": {"order": 1}})));
        },
        &["business-rules"],
        &[],
        &["sku-1 version 4", "Released order 1, which was already released"],
    ),
    row(
        "unknown-domain",
        bank,
        |h| h.domain = "ledger".to_string(),
        &["business-rules"],
        &[],
        &["unknown domain `ledger`"],
    ),
];

#[test]
fn table() {
    for row in TABLE {
        let mut history = (row.base)();
        (row.edit)(&mut history);
        let verdict = check(&history);
        let names = |invariants: Vec<EsInvariant>| -> Vec<&'static str> {
            invariants.into_iter().map(EsInvariant::name).collect()
        };
        let shown = format!("{}: {verdict}", row.name);
        if names(verdict.violated()) != row.violated {
            eprintln!("ROWFAIL {}: {:?}", row.name, names(verdict.violated()));
        }
        assert_eq!(names(verdict.violated()), row.violated, "{shown}");
        assert_eq!(names(verdict.expected()), row.expected, "{shown}");
        assert_eq!(verdict.holds(), row.violated.is_empty(), "{shown}");
        for words in row.mentions {
            assert!(
                verdict.anomalies.iter().any(|a| a.explanation.contains(words)),
                "{}: no explanation mentions `{words}`\n{verdict}",
                row.name
            );
        }
        well_formed(&verdict, row.name);
    }
}

/// Every anomaly is counted, explained in one line, judged as its guarantee was
/// promised, and (but for an unknown domain) witnessed by one or two items.
fn well_formed(verdict: &EsVerdict, name: &str) {
    for anomaly in &verdict.anomalies {
        assert!(!anomaly.explanation.is_empty() && !anomaly.explanation.contains('\n'), "{name}");
        let promised = verdict.promises.contains(&anomaly.guarantee);
        assert_eq!(anomaly.judgement == Judgement::Violation, promised, "{name}: {anomaly}");
        if verdict.domain != "ledger" {
            assert!((1..=2).contains(&anomaly.witness.len()), "{name}: {anomaly}");
        }
        let check = verdict.check(anomaly.invariant);
        assert!(check.violations + check.expected > 0, "{name}");
    }
    for check in &verdict.checks {
        let counted = verdict.anomalies.iter().filter(|a| a.invariant == check.invariant).count();
        assert_eq!(counted as u64, check.violations + check.expected, "{name}: {check:?}");
        assert_eq!(check.status() == Status::Holds, counted == 0, "{name}");
    }
    serde_json::to_string(verdict).expect("a verdict serializes");
}

#[test]
fn every_check_can_fail() {
    for invariant in EsInvariant::ALL {
        assert!(
            TABLE.iter().any(|row| row.violated.contains(&invariant.name())),
            "no row violates {invariant}"
        );
    }
}

#[test]
fn clean_bank_counts_what_it_examined() {
    let verdict = check(&bank());
    let examined = |invariant| {
        let check = verdict.check(invariant);
        (check.examined, check.unit, check.skipped)
    };
    assert_eq!(examined(EsInvariant::StreamContiguity), (6, "streams on replicas", 0));
    assert_eq!(examined(EsInvariant::LostUpdate), (5, "ok commands", 0));
    assert_eq!(examined(EsInvariant::ReplayEquivalence), (5, "ok commands", 0));
    assert_eq!(examined(EsInvariant::MoneyConservation), (3, "transfers and projection cuts", 0));
    assert_eq!(examined(EsInvariant::ProjectionEquivalence), (2, "checkpoints", 0));
    let money = verdict.money.expect("a bank history has totals");
    assert_eq!((money.deposits, money.withdrawals, money.balances), (150, 30, 120));
    assert_eq!((money.in_flight_count, money.in_flight), (0, 0));
    assert!(verdict.to_string().contains("verdict: holds"), "{verdict}");
}

#[test]
fn witnesses_name_the_commands_and_events() {
    let mut history = bank();
    deposit_on_stale_version(&mut history);
    let verdict = check(&history);
    let anomaly = &verdict.anomalies[0];
    let ids: Vec<u64> = anomaly
        .witness
        .iter()
        .map(|w| match w {
            EsWitness::Command { record, .. } => record.command_id,
            other => panic!("a lost update is witnessed by commands, not {other}"),
        })
        .collect();
    assert_eq!(ids, [5, 9]);
    let text = verdict.to_string();
    assert!(text.contains("VIOLATION lost-update (breaks serial-decisions)"), "{text}");
}

#[test]
fn the_format_is_serde_json() {
    let record = command(3, "acct-1", Some(1), ok(1, vec![withdrawn(30)]));
    let text = serde_json::to_string(&record).unwrap();
    assert!(
        text.contains(
            r#""outcome":{"ok":{"first_version":1,"events":[{"Withdrawn":{"amount":30}}]}}"#
        ),
        "{text}"
    );
    let history = bank();
    let round_trip: EsHistory =
        serde_json::from_str(&serde_json::to_string(&history).unwrap()).unwrap();
    assert_eq!(round_trip, history);
    // Fields added since the first version default.
    let mut value = serde_json::to_value(&history).unwrap();
    let object = value.as_object_mut().unwrap();
    object.remove("projections");
    object.remove("lossy_log");
    let older: EsHistory = serde_json::from_value(value).unwrap();
    assert!(older.projections.is_empty() && !older.lossy_log);
    let outcome: CommandOutcome =
        serde_json::from_str(r#"{"indeterminate":{"reason":"timeout"}}"#).unwrap();
    assert_eq!(outcome, CommandOutcome::Indeterminate { reason: "timeout".into() });
}

// ---- the base histories ----

/// Two accounts on one partition of three replicas (n3 one event behind): deposits, a
/// withdrawal, a transfer of 40 from acct-1 to acct-2 debited and credited, a rejected
/// overdraft, an indeterminate and a failed deposit that never landed, and two
/// projection checkpoints.
fn bank() -> EsHistory {
    let commands = vec![
        command(1, "acct-1", Some(0), ok(0, vec![deposited(100)])),
        command(2, "acct-2", Some(0), ok(0, vec![deposited(50)])),
        command(3, "acct-1", Some(1), ok(1, vec![withdrawn(30)])),
        command(4, "acct-1", Some(2), ok(2, vec![debit(1, "acct-2", 40)])),
        command(5, "acct-2", Some(1), ok(1, vec![credit(1, "acct-1", 40)])),
        command(
            6,
            "acct-2",
            Some(2),
            CommandOutcome::Rejected { reason: "insufficient funds".into() },
        ),
        command(7, "acct-1", Some(3), info()),
        command(8, "acct-2", None, CommandOutcome::Fail { reason: "not leader".into() }),
    ];
    let events = vec![
        ev(0, "acct-1", 0, 1, deposited(100)),
        ev(1, "acct-2", 0, 2, deposited(50)),
        ev(2, "acct-1", 1, 3, withdrawn(30)),
        ev(3, "acct-1", 2, 4, debit(1, "acct-2", 40)),
        ev(4, "acct-2", 1, 5, credit(1, "acct-1", 40)),
    ];
    let projections = vec![
        checkpoint(3, json!({"acct-1": 70, "acct-2": 50})),
        checkpoint(5, json!({"acct-1": 30, "acct-2": 90})),
    ];
    history("bank", commands, events, projections)
}

/// Two carts: cart-1 filled, trimmed and checked out; cart-2 open with one line.
fn cart() -> EsHistory {
    let commands = vec![
        command(1, "cart-1", Some(0), ok(0, vec![json!({"ItemAdded": {"sku": 7, "qty": 2}})])),
        command(2, "cart-1", Some(1), ok(1, vec![json!({"ItemRemoved": {"sku": 7, "qty": 1}})])),
        command(3, "cart-1", Some(2), ok(2, vec![json!("CheckedOut")])),
        command(4, "cart-2", Some(0), ok(0, vec![json!({"ItemAdded": {"sku": 3, "qty": 1}})])),
    ];
    let events = vec![
        ev(0, "cart-1", 0, 1, json!({"ItemAdded": {"sku": 7, "qty": 2}})),
        ev(1, "cart-1", 1, 2, json!({"ItemRemoved": {"sku": 7, "qty": 1}})),
        ev(2, "cart-1", 2, 3, json!("CheckedOut")),
        ev(3, "cart-2", 0, 4, json!({"ItemAdded": {"sku": 3, "qty": 1}})),
    ];
    let projections = vec![checkpoint(4, json!({"cart-2": {"3": 1}}))];
    history("cart", commands, events, projections)
}

/// One sku: stocked 5, order 1 reserved 3 and released, order 2 reserved 4.
fn inventory() -> EsHistory {
    let commands = vec![
        command(1, "sku-1", Some(0), ok(0, vec![json!({"Stocked": {"qty": 5}})])),
        command(2, "sku-1", Some(1), ok(1, vec![json!({"Reserved": {"order": 1, "qty": 3}})])),
        command(3, "sku-1", Some(2), ok(2, vec![json!({"Released": {"order": 1}})])),
        command(4, "sku-1", Some(3), ok(3, vec![json!({"Reserved": {"order": 2, "qty": 4}})])),
    ];
    let events = vec![
        ev(0, "sku-1", 0, 1, json!({"Stocked": {"qty": 5}})),
        ev(1, "sku-1", 1, 2, json!({"Reserved": {"order": 1, "qty": 3}})),
        ev(2, "sku-1", 2, 3, json!({"Released": {"order": 1}})),
        ev(3, "sku-1", 3, 4, json!({"Reserved": {"order": 2, "qty": 4}})),
    ];
    let projections = vec![checkpoint(4, json!({"sku-1": 1}))];
    history("inventory", commands, events, projections)
}

// ---- edits shared by rows ----

/// Command 9 deposits on acct-2 having folded only version 0, like command 5 did, and
/// the store appends it at version 2.
fn deposit_on_stale_version(h: &mut EsHistory) {
    h.commands.push(command(9, "acct-2", Some(1), ok(2, vec![deposited(20)])));
    append(h, ev(5, "acct-2", 2, 9, deposited(20)));
}

/// Commands 9 and 10 each withdraw 60 from acct-2's 90, both having folded versions 0
/// and 1; the store appends them at versions 2 and 3.
fn concurrent_withdrawals(h: &mut EsHistory) {
    h.commands.push(command(9, "acct-2", Some(2), ok(2, vec![withdrawn(60)])));
    h.commands.push(command(10, "acct-2", Some(2), ok(3, vec![withdrawn(60)])));
    append(h, ev(5, "acct-2", 2, 9, withdrawn(60)));
    append(h, ev(6, "acct-2", 3, 10, withdrawn(60)));
}

/// Transfer 1 is refunded to acct-1 (command 5, version 3) instead of credited.
fn refund_instead_of_credit(h: &mut EsHistory) {
    let refund = json!({"TransferRefunded": {"transfer": 1, "amount": 40}});
    let command = command_mut(h, 5);
    command.stream = "acct-1".to_string();
    command.decided_at_version = Some(3);
    command.outcome = ok(3, vec![refund.clone()]);
    for replica in &mut h.replicas {
        for event in replica.events.iter_mut().filter(|e| e.command_id == 5) {
            *event = ev(4, "acct-1", 3, 5, refund.clone());
        }
    }
    h.projections[1].read_model = json!({"acct-1": 70, "acct-2": 50});
}

/// The transfer's credit (offset 4) never lands: its command was indeterminate, and
/// the last checkpoint holds only what the log does.
fn credit_never_lands(h: &mut EsHistory) {
    for replica in &mut h.replicas {
        replica.events.retain(|e| e.offset != 4);
    }
    command_mut(h, 5).outcome = info();
    h.projections[1] = checkpoint(5, json!({"acct-1": 30, "acct-2": 50}));
}

/// A checkpoint at the log's end whose read model has 20 less on acct-1 than the log.
fn counts_aborted_debit(h: &mut EsHistory, read_uncommitted: bool) {
    let mut counted = checkpoint(5, json!({"acct-1": 10, "acct-2": 90}));
    counted.read_uncommitted = read_uncommitted;
    h.projections[1] = counted;
}

/// Sets the version of the event at `offset` on every replica.
fn set_version(h: &mut EsHistory, offset: u64, version: u64) {
    for replica in &mut h.replicas {
        for event in replica.events.iter_mut().filter(|e| e.offset == offset) {
            event.version = version;
        }
    }
}

fn command_mut(h: &mut EsHistory, command_id: u64) -> &mut CommandRecord {
    h.commands.iter_mut().find(|c| c.command_id == command_id).expect("the command exists")
}

/// Appends an event to n1's and n2's committed logs (n3 stays behind).
fn append(h: &mut EsHistory, event: StoredEvent) {
    for replica in h.replicas.iter_mut().filter(|r| r.node != 3) {
        replica.events.push(event.clone());
    }
}

// ---- builders ----

/// A history on partition 0 with replicas n1 and n2 holding every event and n3 all but
/// the last.
fn history(
    domain: &str,
    commands: Vec<CommandRecord>,
    events: Vec<StoredEvent>,
    projections: Vec<ProjectionCheckpoint>,
) -> EsHistory {
    let behind = events[..events.len() - 1].to_vec();
    EsHistory {
        domain: domain.to_string(),
        expected_versions: true,
        commands,
        replicas: vec![
            ReplicaStreams { node: 1, partition: 0, events: events.clone() },
            ReplicaStreams { node: 2, partition: 0, events },
            ReplicaStreams { node: 3, partition: 0, events: behind },
        ],
        projections,
        lossy_log: false,
        atomic_transfers: false,
        projections_settled: false,
    }
}

fn command(
    command_id: u64,
    stream: &str,
    decided: Option<u64>,
    outcome: CommandOutcome,
) -> CommandRecord {
    CommandRecord {
        process: command_id % 3,
        invoke_ns: command_id * 1_000,
        complete_ns: command_id * 1_000 + 500,
        command_id,
        stream: stream.to_string(),
        command: json!({"id": command_id}),
        decided_at_version: decided,
        outcome,
    }
}

fn ok(first_version: u64, events: Vec<Value>) -> CommandOutcome {
    CommandOutcome::Ok { first_version, events }
}

fn info() -> CommandOutcome {
    CommandOutcome::Indeterminate { reason: "timed out".to_string() }
}

fn ev(offset: u64, stream: &str, version: u64, command_id: u64, event: Value) -> StoredEvent {
    StoredEvent { offset, stream: stream.to_string(), version, command_id, event }
}

fn checkpoint(offset: u64, read_model: Value) -> ProjectionCheckpoint {
    ProjectionCheckpoint {
        consumer: 1,
        t_ns: offset * 10_000,
        partition: 0,
        offset,
        read_model,
        read_uncommitted: false,
    }
}

fn deposited(amount: u64) -> Value {
    json!({"Deposited": {"amount": amount}})
}

fn withdrawn(amount: u64) -> Value {
    json!({"Withdrawn": {"amount": amount}})
}

fn debit(transfer: u64, to: &str, amount: u64) -> Value {
    json!({"TransferDebited": {"transfer": transfer, "to": to, "amount": amount}})
}

fn credit(transfer: u64, from: &str, amount: u64) -> Value {
    json!({"TransferCredited": {"transfer": transfer, "from": from, "amount": amount}})
}

/// A domain the model has no fold of, and none given: the checks that need a fold say
/// they were not checked (never "holds"), and business-rules is violated.
#[test]
fn an_unknown_domain_is_not_checked_rather_than_passed() {
    let mut history = bank();
    history.domain = "ledger".to_string();
    let verdict = check(&history);
    for invariant in [
        EsInvariant::ReplayEquivalence,
        EsInvariant::FoldsAgree,
        EsInvariant::ProjectionEquivalence,
    ] {
        assert!(verdict.check(invariant).not_checked.is_some(), "{invariant}: {verdict}");
    }
    assert!(verdict.to_string().contains("NOT CHECKED"), "{verdict}");
    assert_eq!(verdict.violated(), vec![EsInvariant::BusinessRules]);
    // The model's own domains never say it.
    assert!(check(&bank()).checks.iter().all(|c| c.not_checked.is_none()));
}

/// A caller's fold of the bank's JSON with a read model of its own (balances), for
/// projection-equivalence of a domain the model has no fold of.
struct Ledger {
    read_model: bool,
}

/// A stream's state: anything goes (the read model is what is judged here).
#[derive(Clone)]
struct Anything;

impl logjam_model::es::UserState for Anything {
    fn validate(&self, _event: &Value) -> Result<(), String> {
        Ok(())
    }
    fn apply(&mut self, _event: &Value) {}
    fn broken_invariant(&self) -> Option<(String, String)> {
        None
    }
    fn describe(&self) -> String {
        "anything".into()
    }
    fn same(&self, _other: &dyn logjam_model::es::UserState) -> bool {
        true
    }
    fn clone_box(&self) -> Box<dyn logjam_model::es::UserState> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Balances per stream, folded from the bank's events.
struct Balances(serde_json::Map<String, Value>);

impl logjam_model::es::UserReadModel for Balances {
    fn apply(&mut self, stream: &str, _offset: u64, event: &Value) -> Result<(), String> {
        let (kind, body) = event.as_object().and_then(|o| o.iter().next()).ok_or("not an event")?;
        let amount = body["amount"].as_i64().ok_or("no amount")?;
        let sign = if kind.contains("Withdrawn") || kind.contains("Debited") { -1 } else { 1 };
        let balance = self.0.entry(stream.to_owned()).or_insert(json!(0));
        *balance = json!(balance.as_i64().unwrap_or(0) + sign * amount);
        Ok(())
    }
    fn json(&self) -> Value {
        Value::Object(self.0.clone())
    }
}

impl logjam_model::es::UserFold for Ledger {
    fn initial(&self) -> Box<dyn logjam_model::es::UserState> {
        Box::new(Anything)
    }
    fn read_model(&self) -> Option<Box<dyn logjam_model::es::UserReadModel>> {
        self.read_model.then(|| {
            Box::new(Balances(Default::default())) as Box<dyn logjam_model::es::UserReadModel>
        })
    }
}

/// projection-equivalence with a caller's read model: each row changes the bank's
/// checkpoints and says what the check must answer.
#[test]
fn a_callers_read_model_judges_every_checkpoint() {
    struct Case {
        name: &'static str,
        change: fn(&mut EsHistory),
        read_model: bool,
        /// `None`: holds; else words the violation's explanation holds.
        violated: Option<&'static [&'static str]>,
        not_checked: bool,
    }
    let cases = [
        Case {
            name: "as folded",
            change: unchanged,
            read_model: true,
            violated: None,
            not_checked: false,
        },
        Case {
            name: "the debit at offset 3 left out",
            change: |h| h.projections[1].read_model = json!({"acct-1": 70, "acct-2": 90}),
            read_model: true,
            violated: Some(&[
                "checkpoint #1",
                "acct-1 is 70 in the checkpoint but 30 in the fold",
                "without acct-1 version 2 at offset 3",
            ]),
            not_checked: false,
        },
        Case {
            name: "the debit at offset 3 counted before its offset",
            change: |h| h.projections[0].read_model = json!({"acct-1": 30, "acct-2": 50}),
            read_model: true,
            violated: Some(&[
                "checkpoint #0",
                "below offset 3",
                "with the first event at or past its offset, acct-1 version 2",
            ]),
            not_checked: false,
        },
        Case {
            name: "a stream the fold never saw",
            change: |h| {
                h.projections[0].read_model = json!({"acct-1": 70, "acct-2": 50, "acct-9": 1})
            },
            read_model: true,
            violated: Some(&["acct-9 is 1 in the checkpoint but null in the fold"]),
            not_checked: false,
        },
        Case {
            name: "no read model given",
            change: unchanged,
            read_model: false,
            violated: None,
            not_checked: true,
        },
    ];
    for case in cases {
        let mut history = bank();
        history.domain = "ledger".to_string();
        (case.change)(&mut history);
        let fold = Ledger { read_model: case.read_model };
        let verdict = logjam_model::es::check_with(&history, Some(&fold));
        let check = verdict.check(EsInvariant::ProjectionEquivalence);
        assert_eq!(check.not_checked.is_some(), case.not_checked, "{}: {verdict}", case.name);
        let violated = verdict.violated().contains(&EsInvariant::ProjectionEquivalence);
        assert_eq!(violated, case.violated.is_some(), "{}: {verdict}", case.name);
        if let Some(words) = case.violated {
            let shown = verdict.to_string();
            for word in words {
                assert!(shown.contains(word), "{}: no `{word}` in\n{shown}", case.name);
            }
        }
    }
}
