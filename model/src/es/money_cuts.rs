//! money-conservation at every read-committed cut (bank with projections): whenever a
//! projection checkpoints, the latest checkpoint of every partition together is a cut
//! of the log as read committed at that moment. Its read models' balances must sum to
//! deposits minus withdrawals below the cut, minus the money in flight across it,
//! counted from the transfers' own halves (debited inside and completed outside or
//! never, less completed inside and debited outside), all from the reference replicas.
//! A read model that counted an aborted or uncommitted event, or one event twice, or a
//! transfer whose halves do not match, shows as money made or lost at that moment.
//! Every checkpoint is a moment judged; a difference is reported when it (or the
//! checkpoints to blame) changes.
//!
//! With atomic transfers a transfer is in flight across a cut only while its markers
//! are being written, so each half seen must have its other half committed somewhere:
//! a half whose partner never commits is money lost at every cut that sees it.
//!
//! Cost: one pass to build per-partition prefix sums, then per checkpoint a binary
//! search per partition, a sum over its read model and a pass over the transfers
//! (checkpoints times transfers: a run has hundreds of each).

use std::collections::{BTreeMap, BTreeSet};

use super::digest::Digest;
use super::domain::Event;
use super::verdict::{EsGuarantee, EsInvariant, EsWitness, Findings};

/// One partition's committed events as running sums, in offset order.
#[derive(Default)]
struct Sums {
    /// (offset, the sum of balance changes up to and including it).
    balances: Vec<(u64, i128)>,
    /// (offset, deposits minus withdrawals up to and including it).
    deposits: Vec<(u64, i128)>,
}

impl Sums {
    fn below(running: &[(u64, i128)], offset: u64) -> i128 {
        match running.partition_point(|&(at, _)| at < offset) {
            0 => 0,
            n => running[n - 1].1,
        }
    }
}

/// A transfer half: where it is and how much.
#[derive(Clone, Copy)]
struct Half {
    partition: u32,
    offset: u64,
    amount: u64,
    replica: usize,
    position: u32,
}

/// Returns the cuts judged.
pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings) -> u64 {
    let checkpoints = &digest.history.projections;
    if checkpoints.is_empty() || digest.partitions.is_empty() {
        return 0;
    }
    let mut sums: BTreeMap<u32, Sums> = BTreeMap::new();
    let mut debits: BTreeMap<u64, Half> = BTreeMap::new();
    let mut completions: BTreeMap<u64, Half> = BTreeMap::new();
    for (&partition, p) in &digest.partitions {
        let replica = p.reference;
        let entry = sums.entry(partition).or_default();
        let (mut balance, mut net) = (0i128, 0i128);
        for (position, parsed) in digest.replicas[replica].parsed.iter().enumerate() {
            let offset = digest.event(replica, position as u32).offset;
            let at = |amount: u64| Half {
                partition,
                offset,
                amount,
                replica,
                position: position as u32,
            };
            let (change, deposit) = match parsed {
                Ok(Event::Deposited { amount }) => (i128::from(*amount), i128::from(*amount)),
                Ok(Event::Withdrawn { amount }) => (-i128::from(*amount), -i128::from(*amount)),
                Ok(Event::TransferDebited { transfer, amount, .. }) => {
                    debits.entry(*transfer).or_insert(at(*amount));
                    (-i128::from(*amount), 0)
                }
                Ok(
                    Event::TransferCredited { transfer, amount, .. }
                    | Event::TransferRefunded { transfer, amount },
                ) => {
                    completions.entry(*transfer).or_insert(at(*amount));
                    (i128::from(*amount), 0)
                }
                _ => continue,
            };
            balance += change;
            net += deposit;
            entry.balances.push((offset, balance));
            entry.deposits.push((offset, net));
        }
    }
    // Halves whose partner never committed: with atomic transfers, money lost.
    let mut lone: Vec<(u64, Half, &'static str)> = Vec::new();
    if digest.history.atomic_transfers {
        for (&id, &half) in &debits {
            if !completions.contains_key(&id) {
                lone.push((id, half, "its credit never commits"));
            }
        }
        for (&id, &half) in &completions {
            if !debits.contains_key(&id) {
                lone.push((id, half, "its debit never commits"));
            }
        }
    }
    let mut order: Vec<usize> = (0..checkpoints.len()).collect();
    order.sort_by_key(|&index| (checkpoints[index].t_ns, index));
    let mut latest: BTreeMap<u32, usize> = BTreeMap::new();
    let mut judged = 0;
    let mut last_reported: Option<(i128, Vec<usize>)> = None;
    let mut reported_lone = BTreeSet::new();
    for index in order {
        let checkpoint = &checkpoints[index];
        if !sums.contains_key(&checkpoint.partition) {
            continue;
        }
        latest.insert(checkpoint.partition, index);
        if latest.len() < sums.len() {
            continue; // not every partition has been read yet
        }
        judged += 1;
        let members: Vec<usize> = latest.values().copied().collect();
        let inside = |half: &Half| {
            latest.get(&half.partition).is_some_and(|&i| half.offset < checkpoints[i].offset)
        };
        let models: i128 = members.iter().map(|&i| model_sum(&checkpoints[i].read_model)).sum();
        let net: i128 = members
            .iter()
            .map(|&i| Sums::below(&sums[&checkpoints[i].partition].deposits, checkpoints[i].offset))
            .sum();
        // In flight across the cut, by the transfers' own halves: debited inside and
        // completed outside (or never), less completed inside and debited outside.
        let debited_out: i128 = debits
            .iter()
            .filter(|(id, debit)| inside(debit) && !completions.get(id).is_some_and(inside))
            .map(|(_, debit)| i128::from(debit.amount))
            .sum();
        let completed_in: i128 = completions
            .iter()
            .filter(|(id, completion)| inside(completion) && !debits.get(id).is_some_and(inside))
            .map(|(_, completion)| i128::from(completion.amount))
            .sum();
        let in_flight = debited_out - completed_in;
        let expected = net - in_flight;
        let difference = models - expected;
        // The checkpoints whose own read model is off (one or two); if none is, the
        // money went astray in the log itself (halves that do not match).
        let culprits: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| {
                let sums = &sums[&checkpoints[i].partition];
                model_sum(&checkpoints[i].read_model)
                    != Sums::below(&sums.balances, checkpoints[i].offset)
            })
            .take(2)
            .collect();
        let guarantee =
            if !culprits.is_empty() && culprits.iter().all(|&i| checkpoints[i].read_uncommitted) {
                EsGuarantee::CommittedReads
            } else if digest.history.lossy_log {
                EsGuarantee::AckedDurable
            } else {
                EsGuarantee::Integrity
            };
        let cut_name = || describe_cut(digest, &members);
        let this = (difference, culprits.clone());
        if difference != 0 && last_reported.as_ref() != Some(&this) {
            let shown =
                if culprits.is_empty() { &members[..members.len().min(2)] } else { &culprits[..] };
            findings.found(EsInvariant::MoneyConservation, guarantee, None, || {
                let explanation = format!(
                    "at the projections' cut {} the read models' balances sum to {models}, but deposits - withdrawals {net} - transfers in flight across the cut {in_flight} = {expected} ({difference:+})",
                    cut_name(),
                );
                (explanation, witness(digest, shown))
            });
        }
        last_reported = (difference != 0).then_some(this);
        for &(id, half, why) in &lone {
            if !inside(&half) || !reported_lone.insert(id) {
                continue;
            }
            let stream = digest.event(half.replica, half.position).stream.as_str();
            findings.found(EsInvariant::MoneyConservation, EsGuarantee::Integrity, Some(stream), || {
                let explanation = format!(
                    "at the projections' cut {} transfer {id} is half visible: {stream} holds its {} at offset {} of p{}, and {why}",
                    cut_name(),
                    if debits.get(&id).is_some_and(|d| d.offset == half.offset && d.partition == half.partition) { "debit" } else { "credit" },
                    half.offset,
                    half.partition,
                );
                let mut witness = witness(digest, &[latest[&half.partition]]);
                witness.push(digest.event_witness(half.replica, half.position));
                (explanation, witness)
            });
        }
    }
    judged
}

/// A bank read model's balances summed (`{"acct-1": 40, ...}`); anything else counts 0.
fn model_sum(read_model: &serde_json::Value) -> i128 {
    read_model
        .as_object()
        .map(|accounts| accounts.values().filter_map(|v| v.as_i64()).map(i128::from).sum())
        .unwrap_or(0)
}

fn describe_cut(digest: &Digest<'_>, members: &[usize]) -> String {
    let checkpoints = &digest.history.projections;
    let parts: Vec<String> = members
        .iter()
        .map(|&i| format!("p{} below {}", checkpoints[i].partition, checkpoints[i].offset))
        .collect();
    let t_ns = members.iter().map(|&i| checkpoints[i].t_ns).max().unwrap_or(0);
    format!("{{{}}} at {}.{:03}s", parts.join(", "), t_ns / 1_000_000_000, t_ns / 1_000_000 % 1000)
}

fn witness(digest: &Digest<'_>, members: &[usize]) -> Vec<EsWitness> {
    members
        .iter()
        .map(|&i| EsWitness::Projection {
            index: i as u64,
            checkpoint: digest.history.projections[i].clone(),
        })
        .collect()
}
