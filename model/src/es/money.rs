//! money-conservation and transfer-completion (bank only): across the longest replica
//! of every partition at the end of the run, every transfer is debited once and
//! completed at most once, by a credit to the account it names or a refund to the one
//! it left, for the same amount; balances then sum to deposits minus withdrawals minus
//! the transfers still in flight, and by the end none is. With atomic transfers (one
//! transaction each) none is ever in flight: a debit without its credit is half a
//! transaction committed. `money_cuts` judges the same money at every cut of the
//! projections' checkpoints.

use std::collections::BTreeMap;

use super::digest::Digest;
use super::domain::{Domain, Event};
use super::verdict::{EsGuarantee, EsInvariant, EsWitness, Findings, MoneyTotals};

/// An event on a reference replica.
#[derive(Clone, Copy)]
struct At {
    replica: usize,
    position: u32,
}

/// Everything the log says about one transfer.
#[derive(Default)]
struct Transfer {
    debits: Vec<At>,
    /// Credits and refunds, in (partition, offset) order.
    completions: Vec<At>,
}

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings) -> Option<MoneyTotals> {
    if digest.domain != Some(Domain::Bank) {
        findings.examined(EsInvariant::MoneyConservation, 0, "transfers (not a bank history)");
        findings.examined(EsInvariant::TransferCompletion, 0, "transfers (not a bank history)");
        return None;
    }
    let mut totals =
        MoneyTotals { deposits: 0, withdrawals: 0, balances: 0, in_flight_count: 0, in_flight: 0 };
    let mut transfers: BTreeMap<u64, Transfer> = BTreeMap::new();
    for partition in digest.partitions.values() {
        let replica = partition.reference;
        for (position, parsed) in digest.replicas[replica].parsed.iter().enumerate() {
            let at = At { replica, position: position as u32 };
            match parsed {
                Ok(Event::Deposited { amount }) => totals.deposits += i128::from(*amount),
                Ok(Event::Withdrawn { amount }) => totals.withdrawals += i128::from(*amount),
                Ok(Event::TransferDebited { transfer, .. }) => {
                    transfers.entry(*transfer).or_default().debits.push(at)
                }
                Ok(
                    Event::TransferCredited { transfer, .. }
                    | Event::TransferRefunded { transfer, .. },
                ) => transfers.entry(*transfer).or_default().completions.push(at),
                _ => {}
            }
        }
        for &stream in digest.replicas[replica].streams.keys() {
            totals.balances += digest.fold(replica, stream, u64::MAX).0.balance();
        }
    }
    let mut anomalous = 0;
    for (&id, transfer) in &transfers {
        match (transfer.debits.as_slice(), transfer.completions.as_slice()) {
            ([debit], []) if digest.history.atomic_transfers => {
                anomalous += 1;
                report(digest, EsGuarantee::Integrity, *debit, findings, || {
                    let (stream, event) = describe(digest, *debit);
                    (
                        format!(
                            "transfer {id}: {event} on {stream} committed, but its credit (in the same transaction) never was"
                        ),
                        vec![*debit],
                    )
                });
            }
            ([debit], []) => {
                totals.in_flight_count += 1;
                totals.in_flight += i128::from(amount(digest, *debit));
                in_flight(digest, id, *debit, findings);
            }
            ([debit], [completion]) => {
                anomalous += mismatch(digest, id, *debit, *completion, findings)
            }
            ([_], [first, second, ..]) => {
                anomalous += 1;
                completed_twice(digest, id, *first, *second, findings);
            }
            ([], [completion, ..]) => {
                anomalous += 1;
                // A log that may lose acknowledged appends may lose the debit and keep
                // the credit (they are on two streams); otherwise it is made up.
                let guarantee = if digest.history.lossy_log {
                    EsGuarantee::AckedDurable
                } else {
                    EsGuarantee::Integrity
                };
                report(digest, guarantee, *completion, findings, || {
                    let (stream, event) = describe(digest, *completion);
                    (
                        format!("transfer {id}: {event} on {stream}, but it was never debited"),
                        vec![*completion],
                    )
                });
            }
            ([first, second, ..], _) => {
                anomalous += 1;
                report(digest, EsGuarantee::Integrity, *second, findings, || {
                    let ((a, _), (b, _)) = (describe(digest, *first), describe(digest, *second));
                    (
                        format!("transfer {id} debited twice: from {a} and from {b}"),
                        vec![*first, *second],
                    )
                });
            }
            ([], []) => unreachable!("a transfer is recorded with an event"),
        }
    }
    let conserved = totals.deposits - totals.withdrawals - totals.in_flight;
    if totals.balances != conserved && anomalous == 0 {
        findings.found(EsInvariant::MoneyConservation, EsGuarantee::Integrity, None, || {
            let explanation = format!(
                "balances sum to {} but deposits {} - withdrawals {} - in flight {} = {conserved}",
                totals.balances, totals.deposits, totals.withdrawals, totals.in_flight
            );
            (explanation, Vec::new())
        });
    }
    let cuts = super::money_cuts::check(digest, findings);
    findings.examined(
        EsInvariant::MoneyConservation,
        transfers.len() as u64 + cuts,
        "transfers and projection cuts",
    );
    findings.examined(EsInvariant::TransferCompletion, transfers.len() as u64, "transfers");
    Some(totals)
}

fn amount(digest: &Digest<'_>, at: At) -> u64 {
    match &digest.replicas[at.replica].parsed[at.position as usize] {
        Ok(
            Event::TransferDebited { amount, .. }
            | Event::TransferCredited { amount, .. }
            | Event::TransferRefunded { amount, .. },
        ) => *amount,
        _ => unreachable!("only transfer events are collected"),
    }
}

/// The stream and version of an event, and the event.
fn describe(digest: &Digest<'_>, at: At) -> (String, String) {
    let stored = digest.event(at.replica, at.position);
    let event = match &digest.replicas[at.replica].parsed[at.position as usize] {
        Ok(event) => event.to_string(),
        Err(_) => stored.event.to_string(),
    };
    (format!("{} version {}", stored.stream, stored.version), event)
}

fn report(
    digest: &Digest<'_>,
    guarantee: EsGuarantee,
    on: At,
    findings: &mut Findings,
    describe: impl FnOnce() -> (String, Vec<At>),
) {
    let stream = digest.event(on.replica, on.position).stream.as_str();
    findings.found(EsInvariant::MoneyConservation, guarantee, Some(stream), || {
        let (explanation, events) = describe();
        let witness: Vec<EsWitness> =
            events.iter().map(|at| digest.event_witness(at.replica, at.position)).collect();
        (explanation, witness)
    });
}

/// A debit completed by a credit or refund that does not match it; 1 if so.
fn mismatch(
    digest: &Digest<'_>,
    id: u64,
    debit: At,
    completion: At,
    findings: &mut Findings,
) -> u64 {
    let parsed = |at: At| &digest.replicas[at.replica].parsed[at.position as usize];
    let source = &digest.event(debit.replica, debit.position).stream;
    let target = &digest.event(completion.replica, completion.position).stream;
    let Ok(Event::TransferDebited { to, amount, .. }) = parsed(debit) else {
        unreachable!("debits are TransferDebited")
    };
    let matches = match parsed(completion) {
        Ok(Event::TransferCredited { from, amount: credited, .. }) => {
            target == to && from == source && credited == amount
        }
        Ok(Event::TransferRefunded { amount: refunded, .. }) => {
            target == source && refunded == amount
        }
        _ => unreachable!("completions are credits and refunds"),
    };
    if matches {
        return 0;
    }
    report(digest, EsGuarantee::Integrity, completion, findings, || {
        let ((a, debited), (b, completed)) =
            (describe(digest, debit), describe(digest, completion));
        let explanation =
            format!("transfer {id} does not add up: {debited} on {a}, then {completed} on {b}");
        (explanation, vec![debit, completion])
    });
    1
}

fn completed_twice(digest: &Digest<'_>, id: u64, first: At, second: At, findings: &mut Findings) {
    // A second completion decided on a stale state is what appends without expected
    // versions allow.
    let guarantee = digest.landing_guarantee(second.replica, second.position);
    report(digest, guarantee, second, findings, || {
        let ((a, one), (b, other)) = (describe(digest, first), describe(digest, second));
        let explanation =
            format!("transfer {id} completed twice: {one} on {a}, and {other} on {b}");
        (explanation, vec![first, second])
    });
}

fn in_flight(digest: &Digest<'_>, id: u64, debit: At, findings: &mut Findings) {
    let stored = digest.event(debit.replica, debit.position);
    // A log that may lose acknowledged appends may lose the credit the saga appended.
    let guarantee =
        if digest.history.lossy_log { EsGuarantee::AckedDurable } else { EsGuarantee::Liveness };
    findings.found(EsInvariant::TransferCompletion, guarantee, Some(&stored.stream), || {
        let (at, event) = describe(digest, debit);
        let explanation = format!(
            "transfer {id}: {event} on {at} (command {}) is neither credited nor refunded by the end",
            stored.command_id
        );
        let mut witness = vec![digest.event_witness(debit.replica, debit.position)];
        witness.extend(digest.command_of(stored.command_id).map(|c| digest.command_witness(c)));
        (explanation, witness)
    });
}
