//! Where a consumer's positions start over: its assigns and its consumer group's
//! rebalances.
//!
//! The checkers of a consumer's order (`polls`) and of how far its reading reached
//! (`digest`'s `reach_start`) keep a position per (process, partition); this module
//! says, event by event, which of them start anew:
//!
//! - an `assign` that seeks (the default) resets every partition it names;
//! - an `assign` with `seek: false` (Kafka's `assign` alone) resets the partitions it
//!   adds or takes away; a partition that stays assigned keeps its position;
//! - a `subscribe` resets every partition the process had assigned and every partition
//!   the group may give it;
//! - a subscribed consumer's poll that states a rebalance (`assignment`) resets every
//!   partition of the subscription, before its own records are judged: the history
//!   does not say which partitions the rebalance kept in place (Kafka's eager protocol
//!   revokes them all), so each starts anew, but at or after the offset the group had
//!   committed for it (the `to` of its `commit-offset`s in transactions that completed
//!   `ok` before the rebalancing poll, or the subscribe, was invoked), if any.

use std::collections::BTreeMap;

use super::digest::Digest;
use crate::history::{Event, EventType, MicroOp, Op};

/// A position that starts anew: the dense partition, and the lowest offset its next
/// read may start at (the group's committed offset, and the event that committed it).
pub(super) struct Reset {
    pub part: u32,
    pub floor: Option<(u64, usize)>,
}

/// What a process last did about its partitions.
enum Member<'h> {
    /// Assigned these dense partitions (sorted) by hand.
    Assigned(Vec<u32>),
    /// Subscribed to `group` for these dense partitions (sorted).
    Subscribed { group: &'h str, parts: Vec<u32> },
}

/// Per (group, dense partition), the offsets committed by transactions that ended
/// `ok`, in completion order: (completion event, the highest `to` so far, the event of
/// that highest one).
type Commits<'h> = BTreeMap<(&'h str, u32), Vec<(u32, u64, u32)>>;

pub(super) struct Membership<'d, 'h> {
    digest: &'d Digest<'h>,
    members: BTreeMap<u64, Member<'h>>,
    /// Built at the first subscribe: a history without one never pays for it.
    commits: Option<Commits<'h>>,
}

impl<'d, 'h> Membership<'d, 'h> {
    pub fn new(digest: &'d Digest<'h>) -> Membership<'d, 'h> {
        Membership { digest, members: BTreeMap::new(), commits: None }
    }

    /// The positions of `event`'s process that start anew at event `index`, before the
    /// polls it completes are judged, into `out` (cleared first). Called for every
    /// event, in order.
    pub fn resets(&mut self, index: usize, event: &'h Event, out: &mut Vec<Reset>) {
        out.clear();
        let digest = self.digest;
        let dense = |partitions: &[u32]| {
            let mut parts: Vec<u32> = partitions.iter().map(|&p| digest.part(p)).collect();
            parts.sort_unstable();
            parts.dedup();
            parts
        };
        let fresh = |part| Reset { part, floor: None };
        match (event.kind, &event.op) {
            (EventType::Invoke, Op::Assign { partitions, seek }) => {
                let parts = dense(partitions);
                let old = match self.members.get(&event.process) {
                    Some(Member::Assigned(old)) if !seek => old.as_slice(),
                    _ => &[],
                };
                if *seek {
                    out.extend(parts.iter().copied().map(fresh));
                } else {
                    // The partitions added or taken away; those in both keep their place.
                    let (mut a, mut b) = (old.iter().peekable(), parts.iter().peekable());
                    loop {
                        match (a.peek(), b.peek()) {
                            (Some(&&x), Some(&&y)) if x == y => {
                                a.next();
                                b.next();
                            }
                            (Some(&&x), Some(&&y)) if x < y => {
                                out.push(fresh(x));
                                a.next();
                            }
                            (_, Some(&&y)) => {
                                out.push(fresh(y));
                                b.next();
                            }
                            (Some(&&x), None) => {
                                out.push(fresh(x));
                                a.next();
                            }
                            (None, None) => break,
                        }
                    }
                }
                self.members.insert(event.process, Member::Assigned(parts));
            }
            (EventType::Invoke, Op::Subscribe { group, partitions, .. }) => {
                let mut parts = dense(partitions);
                if let Some(Member::Assigned(old) | Member::Subscribed { parts: old, .. }) =
                    self.members.get(&event.process)
                {
                    let mut all: Vec<u32> = old.iter().chain(&parts).copied().collect();
                    all.sort_unstable();
                    all.dedup();
                    out.extend(all.into_iter().map(fresh));
                } else {
                    out.extend(parts.iter().copied().map(fresh));
                }
                self.floors(group, index, out);
                parts.shrink_to_fit();
                self.members.insert(event.process, Member::Subscribed { group, parts });
            }
            (kind, Op::Poll { assignment: Some(_), .. }) if kind != EventType::Invoke => {
                let Some(Member::Subscribed { group, parts }) = self.members.get(&event.process)
                else {
                    return;
                };
                let group = *group;
                out.extend(parts.iter().copied().map(fresh));
                let invoke = digest.history.ops()[digest.history.op_of_event(index)].invoke;
                self.floors(group, invoke as usize, out);
            }
            _ => {}
        }
    }

    /// Sets each reset's floor: the offset `group` had committed for its partition by
    /// transactions that completed `ok` before event `before`.
    fn floors(&mut self, group: &'h str, before: usize, out: &mut [Reset]) {
        let digest = self.digest;
        let commits = self.commits.get_or_insert_with(|| commits(digest));
        for reset in out.iter_mut() {
            let Some(list) = commits.get(&(group, reset.part)) else { continue };
            let known = list.partition_point(|&(at, _, _)| (at as usize) < before);
            if let Some(&(_, to, at)) = known.checked_sub(1).map(|last| &list[last]) {
                reset.floor = Some((to, at as usize));
            }
        }
    }
}

/// Every offset commit of a transaction that ended `ok`, by (group, partition).
fn commits<'h>(digest: &Digest<'h>) -> Commits<'h> {
    let history = digest.history;
    let mut commits: Commits<'h> = BTreeMap::new();
    for (op, span) in history.ops().iter().enumerate() {
        let Some(completion) = span.completion else { continue };
        let Some(event) = history.completion_of(op) else { continue };
        if event.kind != EventType::Ok {
            continue;
        }
        let Op::Txn { ops, .. } = &event.op else { continue };
        for micro in ops {
            if let MicroOp::CommitOffset { group, partition, to, .. } = micro {
                // A commit names the group's input partition, which the history may
                // mention nowhere else: only partitions a consumer can hold matter here.
                let Ok(part) = digest.partitions.binary_search(partition) else { continue };
                commits
                    .entry((group.as_str(), part as u32))
                    .or_default()
                    .push((completion, *to, completion));
            }
        }
    }
    for list in commits.values_mut() {
        list.sort_unstable();
        let mut best: Option<(u64, u32)> = None;
        for entry in list.iter_mut() {
            if best.is_none_or(|(to, _)| entry.1 > to) {
                best = Some((entry.1, entry.2));
            }
            (entry.1, entry.2) = best.expect("set above");
        }
    }
    commits
}
