//! Shrinking a failing schedule to a small one that fails the same way.
//!
//! Delta debugging (Zeller and Hildebrandt's ddmin) over the schedule's parts, in the
//! order a reader profits most from: faults first, then client operations, then faults
//! again (a smaller workload often needs fewer of them), then time: the chaos phase cut
//! to just after the last thing that happens, the quiet phase shortened, each fault
//! moved earlier towards the event before it and clogs made shorter. A candidate is kept
//! only if its run still shows the same anomaly kind (the same invariant); a different
//! failure is a different bug and is not followed.
//!
//! The search is deterministic (the same schedule and scenario give the same result)
//! and runs one candidate at a time; the caller bounds it (runs, wall time) through the
//! `keep_going` callback, which is also where progress is shown. The closing heal-all at
//! `chaos_ns` is structure, not a fault: it is never dropped and moves with the chaos
//! phase's end.

use crate::Fault;
use crate::nemesis::TimedFault;
use crate::run::{Schedule, run_schedule};
use crate::scenario::Scenario;
use crate::schedule_file::anomalies;

/// Where the shrinker is, for progress and budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Runs so far.
    pub runs: u64,
    /// The size (faults + operations) of the smallest failing schedule so far.
    pub size: usize,
    /// What the search is doing.
    pub phase: Phase,
}

/// A phase of the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Dropping faults (before and after the operations).
    Faults,
    /// Dropping client operations.
    Ops,
    /// Moving the timeline, faults and operations earlier, and shortening clogs, the
    /// chaos phase and the quiet phase.
    Time,
}

impl Phase {
    /// The phase for people (`dropping faults`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Faults => "dropping faults",
            Phase::Ops => "dropping operations",
            Phase::Time => "shortening time",
        }
    }
}

/// What a shrink found.
#[derive(Clone, Debug, PartialEq)]
pub struct Shrunk {
    /// The smallest schedule found that still shows the anomaly (the one given, if
    /// none smaller did).
    pub schedule: Schedule,
    /// Candidate runs made.
    pub runs: u64,
    /// The budget ran out before the search finished: smaller may exist.
    pub stopped_early: bool,
}

/// Shrinks `schedule`, which must show `anomaly` in `scenario`, to a smaller schedule
/// that still does. `keep_going` is asked before every run; `false` stops the search
/// and the smallest failing schedule so far is returned.
pub fn shrink(
    scenario: &Scenario,
    schedule: Schedule,
    anomaly: &str,
    keep_going: &mut dyn FnMut(Progress) -> bool,
) -> Shrunk {
    let mut fails = |candidate: &Schedule| {
        anomalies(&run_schedule(scenario, candidate, 0).0).iter().any(|kind| kind == anomaly)
    };
    shrink_with(schedule, &mut fails, keep_going)
}

/// The search itself, over any test of "still fails" (the unit tests give it a cheap
/// one).
pub fn shrink_with(
    schedule: Schedule,
    fails: &mut dyn FnMut(&Schedule) -> bool,
    keep_going: &mut dyn FnMut(Progress) -> bool,
) -> Shrunk {
    let mut search = Search { best: schedule, runs: 0, stopped: false, fails, keep_going };
    search.faults();
    search.ops();
    search.faults();
    search.time();
    Shrunk { schedule: search.best, runs: search.runs, stopped_early: search.stopped }
}

struct Search<'a> {
    best: Schedule,
    runs: u64,
    stopped: bool,
    fails: &'a mut dyn FnMut(&Schedule) -> bool,
    keep_going: &'a mut dyn FnMut(Progress) -> bool,
}

impl Search<'_> {
    /// Runs a candidate; keeps it when it still fails. `None` once the budget is spent.
    fn try_candidate(&mut self, candidate: Schedule, phase: Phase) -> Option<bool> {
        if self.stopped {
            return None;
        }
        let progress = Progress { runs: self.runs, size: self.best.size(), phase };
        if !(self.keep_going)(progress) {
            self.stopped = true;
            return None;
        }
        self.runs += 1;
        let failed = (self.fails)(&candidate);
        if failed {
            self.best = candidate;
        }
        Some(failed)
    }

    fn faults(&mut self) {
        let (faults, closing) = split_closing(&self.best.faults);
        let closing = closing.clone();
        let rebuild = |kept: &[TimedFault], best: &Schedule| {
            let mut faults = kept.to_vec();
            faults.push(closing.clone());
            Schedule { faults, ..best.clone() }
        };
        let kept = ddmin(faults.to_vec(), &mut |kept| {
            let candidate = rebuild(kept, &self.best);
            self.try_candidate(candidate, Phase::Faults)
        });
        debug_assert_eq!(rebuild(&kept, &self.best), self.best);
    }

    fn ops(&mut self) {
        let ops = self.best.ops.clone();
        ddmin(ops, &mut |kept| {
            let candidate = Schedule { ops: kept.to_vec(), ..self.best.clone() };
            self.try_candidate(candidate, Phase::Ops)
        });
    }

    fn time(&mut self) {
        // The whole timeline earlier: runs often idle a long while before the part
        // that matters (the cluster needs some start-up time, which the search finds).
        let first_ns = event_times(&self.best).min().unwrap_or(0);
        let shift = |best: &Schedule, by_ns: u64| shifted(best, by_ns);
        self.search_up(first_ns, shift);
        // Each fault and operation towards the event before it, halving the gap while
        // it still fails.
        let faults = split_closing(&self.best.faults).0.len();
        for index in 0..faults {
            self.halve_while_failing(|best| move_earlier(best, Item::Fault(index)));
            self.halve_while_failing(|best| shorter_clog(best, index));
        }
        for index in 0..self.best.ops.len() {
            self.halve_while_failing(|best| move_earlier(best, Item::Op(index)));
        }
        // The chaos phase ends just after the last fault or operation, at the least.
        let chaos_min_ns = event_times(&self.best).max().map_or(1, |last_ns| last_ns + 1);
        self.search_down(
            chaos_min_ns,
            |best| best.chaos_ns,
            |best, chaos_ns| {
                let mut candidate = best.clone();
                candidate.chaos_ns = chaos_ns;
                candidate.faults.last_mut().expect("the closing heal").at_ns = chaos_ns;
                candidate
            },
        );
        self.search_down(
            0,
            |best| best.quiet_ns,
            |best, quiet_ns| Schedule { quiet_ns, ..best.clone() },
        );
    }

    fn halve_while_failing(&mut self, candidate_of: impl Fn(&Schedule) -> Option<Schedule>) {
        for _ in 0..GAP_HALVINGS_MAX {
            let Some(candidate) = candidate_of(&self.best) else { return };
            if self.try_candidate(candidate, Phase::Time) != Some(true) {
                return;
            }
        }
    }

    /// Binary search for the largest value in `[0, max]` that still fails, `with`
    /// building the candidate for a value.
    fn search_up(&mut self, max: u64, with: impl Fn(&Schedule, u64) -> Schedule) {
        let base = self.best.clone();
        let (mut lo, mut hi) = (0, max);
        while lo < hi && hi - lo > TIME_RESOLUTION_NS {
            let mid = lo + (hi - lo).div_ceil(2);
            match self.try_candidate(with(&base, mid), Phase::Time) {
                Some(true) => lo = mid,
                Some(false) => hi = mid - 1,
                None => return,
            }
        }
    }

    /// Binary search for the smallest value in `[min, current]` that still fails
    /// (failing need not be monotone in it: this finds a small one, not the least).
    fn search_down(
        &mut self,
        min: u64,
        get: impl Fn(&Schedule) -> u64,
        set: impl Fn(&Schedule, u64) -> Schedule,
    ) {
        let (mut lo, mut hi) = (min, get(&self.best));
        while lo < hi && hi - lo > TIME_RESOLUTION_NS {
            let mid = lo + (hi - lo) / 2;
            match self.try_candidate(set(&self.best, mid), Phase::Time) {
                Some(true) => hi = mid,
                Some(false) => lo = mid + 1,
                None => return,
            }
        }
    }
}

/// Time searches stop at this resolution: finer cuts rarely make a schedule clearer.
const TIME_RESOLUTION_NS: u64 = 1_000_000;
/// How many times one fault's gap (or one clog) is halved at most.
const GAP_HALVINGS_MAX: u32 = 8;

/// The faults before the closing heal-all, and the heal-all.
fn split_closing(faults: &[TimedFault]) -> (&[TimedFault], &TimedFault) {
    let (closing, rest) = faults.split_last().expect("a schedule ends with its heal-all");
    debug_assert_eq!(closing.fault, Fault::HealAll);
    (rest, closing)
}

/// One fault (the closing heal excluded) or operation of a schedule.
#[derive(Clone, Copy)]
enum Item {
    Fault(usize),
    Op(usize),
}

/// The times of every fault (the closing heal excluded) and operation.
fn event_times(schedule: &Schedule) -> impl Iterator<Item = u64> + '_ {
    let (faults, _) = split_closing(&schedule.faults);
    faults.iter().map(|timed| timed.at_ns).chain(schedule.ops.iter().map(|op| op.at_ns))
}

/// The whole timeline `by_ns` earlier: every fault and operation, and the chaos end.
fn shifted(schedule: &Schedule, by_ns: u64) -> Schedule {
    let mut candidate = schedule.clone();
    for timed in &mut candidate.faults {
        timed.at_ns -= by_ns;
    }
    for op in &mut candidate.ops {
        op.at_ns -= by_ns;
    }
    candidate.chaos_ns -= by_ns;
    candidate
}

/// The schedule with one item moved halfway towards the fault or operation before it
/// (or time 0), if that moves it by at least the resolution. It stays after that
/// event, so the order of the lists does not change.
fn move_earlier(schedule: &Schedule, item: Item) -> Option<Schedule> {
    let at_ns = match item {
        Item::Fault(index) => schedule.faults[index].at_ns,
        Item::Op(index) => schedule.ops[index].at_ns,
    };
    let before_ns = event_times(schedule).filter(|&t| t < at_ns).max().unwrap_or(0);
    let gap_ns = at_ns - before_ns;
    if gap_ns < 2 * TIME_RESOLUTION_NS {
        return None;
    }
    let mut candidate = schedule.clone();
    let moved_ns = before_ns + gap_ns / 2;
    match item {
        Item::Fault(index) => candidate.faults[index].at_ns = moved_ns,
        Item::Op(index) => candidate.ops[index].at_ns = moved_ns,
    }
    Some(candidate)
}

/// The schedule with clog `index` lasting half as long, if it is a clog worth halving.
fn shorter_clog(schedule: &Schedule, index: usize) -> Option<Schedule> {
    let Fault::Clog { duration_ns, .. } = schedule.faults.get(index)?.fault else { return None };
    if duration_ns < 2 * TIME_RESOLUTION_NS {
        return None;
    }
    let mut candidate = schedule.clone();
    if let Fault::Clog { duration_ns, .. } = &mut candidate.faults[index].fault {
        *duration_ns /= 2;
    }
    Some(candidate)
}

/// ddmin: the smallest sublist (1-minimal, as far as the budget allows) for which
/// `fails` holds, given that it holds for `items`. `fails` returns `None` once the
/// budget is spent; the smallest failing list found so far is returned then.
fn ddmin<T: Clone>(mut items: Vec<T>, fails: &mut dyn FnMut(&[T]) -> Option<bool>) -> Vec<T> {
    if items.is_empty() {
        return items;
    }
    // The empty list first: often the fault list is not needed at all.
    match fails(&[]) {
        Some(true) => return Vec::new(),
        Some(false) => {}
        None => return items,
    }
    let mut chunks = 2usize;
    while items.len() >= 2 {
        let size = items.len().div_ceil(chunks);
        let bounds: Vec<(usize, usize)> = (0..items.len())
            .step_by(size)
            .map(|start| (start, (start + size).min(items.len())))
            .collect();
        let mut reduced = false;
        // A chunk alone (when there are more than two: with two, the complement of one
        // is the other).
        if bounds.len() > 2 {
            for &(start, end) in &bounds {
                match fails(&items[start..end]) {
                    Some(true) => {
                        items = items[start..end].to_vec();
                        chunks = 2;
                        reduced = true;
                        break;
                    }
                    Some(false) => {}
                    None => return items,
                }
            }
        }
        if !reduced {
            for &(start, end) in &bounds {
                let complement: Vec<T> =
                    items[..start].iter().chain(&items[end..]).cloned().collect();
                match fails(&complement) {
                    Some(true) => {
                        items = complement;
                        chunks = (chunks - 1).max(2);
                        reduced = true;
                        break;
                    }
                    Some(false) => {}
                    None => return items,
                }
            }
        }
        if !reduced {
            if chunks >= items.len() {
                break;
            }
            chunks = (chunks * 2).min(items.len());
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;
    use crate::run::TimedOp;

    fn schedule(faults: usize, ops: usize) -> Schedule {
        let chaos_ns = 10_000_000_000;
        let mut list: Vec<TimedFault> = (0..faults as u64)
            .map(|i| TimedFault {
                at_ns: (i + 1) * 100_000_000,
                fault: Fault::Crash { node: NodeId(i as u32 % 3) },
            })
            .collect();
        list.push(TimedFault { at_ns: chaos_ns, fault: Fault::HealAll });
        let ops = (0..ops as u64)
            .map(|i| TimedOp { at_ns: i * 5_000_000, node: NodeId(4), partition: 0 })
            .collect();
        Schedule {
            seed: 7,
            chaos_ns,
            quiet_ns: 2_000_000_000,
            faults: list,
            ops,
            config: Vec::new(),
        }
    }

    #[test]
    fn ddmin_finds_the_one_or_two_items_that_matter() {
        let cases: Vec<(usize, Vec<usize>)> =
            vec![(1, vec![0]), (100, vec![37]), (100, vec![3, 96]), (64, vec![10, 11, 12])];
        for (len, needed) in cases {
            let mut runs = 0;
            let kept = ddmin((0..len).collect(), &mut |items| {
                runs += 1;
                Some(needed.iter().all(|n| items.contains(n)))
            });
            assert_eq!(kept, needed, "from {len} items");
            assert!(runs < 40 * needed.len() * (len.max(2).ilog2() as usize + 1), "{runs} runs");
        }
    }

    #[test]
    fn ddmin_stops_when_the_budget_is_spent_and_keeps_what_still_fails() {
        let mut left = 5;
        let kept = ddmin((0..100).collect::<Vec<u32>>(), &mut |items| {
            if left == 0 {
                return None;
            }
            left -= 1;
            Some(items.contains(&42))
        });
        assert!(kept.contains(&42));
        assert!(kept.len() < 100, "five runs halve it at least once");
    }

    #[test]
    fn shrinks_faults_ops_and_time_keeping_what_the_failure_needs() {
        // "Fails" while the crash of node 1 at 500 ms is there, with at least two
        // operations before the end of chaos: the shrinker must keep exactly that.
        let original = schedule(20, 400);
        let mut fails = |candidate: &Schedule| {
            let crash = candidate.faults.iter().any(|timed| {
                timed.fault == Fault::Crash { node: NodeId(1) } && timed.at_ns >= 400_000_000
            });
            crash && candidate.ops.len() >= 2
        };
        let shrunk = shrink_with(original.clone(), &mut fails, &mut |_| true);
        assert!(!shrunk.stopped_early);
        assert!(fails(&shrunk.schedule));
        assert_eq!(
            shrunk.schedule.size(),
            3,
            "one crash and two operations: {:?}",
            shrunk.schedule
        );
        assert!(shrunk.schedule.chaos_ns < original.chaos_ns);
        assert_eq!(shrunk.schedule.faults.last().unwrap().fault, Fault::HealAll);
        assert_eq!(shrunk.schedule.faults.last().unwrap().at_ns, shrunk.schedule.chaos_ns);
        assert!(shrunk.schedule.quiet_ns <= TIME_RESOLUTION_NS);
    }

    #[test]
    fn the_budget_bounds_the_runs() {
        let mut asked = 0;
        let shrunk = shrink_with(schedule(20, 400), &mut |_| true, &mut |progress| {
            asked += 1;
            progress.runs < 10
        });
        assert_eq!(shrunk.runs, 10);
        assert!(shrunk.stopped_early);
        assert_eq!(asked, 11);
    }
}
