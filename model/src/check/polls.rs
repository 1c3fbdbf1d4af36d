//! nonmonotonic-poll and poll-skip, and their internal forms: does each consumer read
//! its partition in order?
//!
//! Per (process, partition), between assigns (which seek), successive polls must read
//! strictly increasing offsets, none below the poll's `from` (nonmonotonic-poll), and
//! must not step over an offset that someone observed holding a record: another poll
//! or the final log (poll-skip). Only observations count as known offsets, not
//! acknowledgements, so that an acknowledged write nobody can read is a lost-write and
//! not also a skip.
//!
//! Inside one operation (the records of one poll, or successive poll micro-ops of one
//! transaction) the same two rules are the internal kinds, int-nonmonotonic-poll and
//! int-poll-skip, as Jepsen names them.
//!
//! Where a consumer is: an ok poll moves it past its last record. A `fail` poll or
//! transaction did not take effect, so it does not move the consumer (a transactional
//! consumer rewinds on abort, as Jepsen's client does), though what it read is judged
//! from where the consumer was. An `info` one may or may not have moved it: the next
//! poll is judged from the best of the positions it may have had. One anomaly of each
//! kind per poll at most.

use std::collections::BTreeMap;

use super::Findings;
use super::digest::{Claim, Digest, Outcome};
use super::membership::Membership;
use crate::invariant::{Guarantee, Invariant};
use crate::verdict::Witness;

/// Where a consumer's reading of one partition stands, since it last started anew (a
/// seek, a subscribe, a rebalance: `membership`).
#[derive(Default)]
struct Position {
    /// The last offset its ok polls read, and the event that read it.
    read: Option<(u64, usize)>,
    /// The last offsets of `info` polls since then, each a position it may be at.
    maybe: BTreeMap<u64, usize>,
    /// After a subscribe or a rebalance: the offset its group had committed, below
    /// which it may not start (and the event that committed it).
    floor: Option<(u64, usize)>,
}

/// The position a poll is judged from: one past a read (of an earlier operation, or of
/// an earlier poll of its own operation), or its own `from`.
#[derive(Clone, Copy)]
struct Baseline {
    /// The last offset read, and the event that read it.
    last: Option<(u64, usize)>,
    /// The previous read is a poll micro-op of the same operation.
    internal: bool,
    /// With no read yet: the group's committed offset the reading may not start below.
    floor: Option<(u64, usize)>,
}

/// A problem found with a poll: its kind, explanation and witness.
type Problem = (Invariant, String, Vec<Witness>);

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let known = known_offsets(digest);
    let mut positions: BTreeMap<(u64, u32), Position> = BTreeMap::new();
    // Polls (plain, and those inside transactions) in the order they completed.
    let mut by_completion: Vec<(u32, u32)> =
        digest.polls.iter().enumerate().map(|(index, poll)| (poll.event, index as u32)).collect();
    by_completion.sort_unstable();
    let mut next = 0;
    let mut membership = Membership::new(digest);
    let mut resets = Vec::new();
    for (index, event) in digest.history.events().iter().enumerate() {
        membership.resets(index, event, &mut resets);
        for reset in &resets {
            let place = (event.process, reset.part);
            match reset.floor {
                None => positions.remove(&place),
                Some(floor) => {
                    positions.insert(place, Position { floor: Some(floor), ..Position::default() })
                }
            };
        }
        let first = next;
        while by_completion.get(next).is_some_and(|&(at, _)| at as usize == index) {
            next += 1;
        }
        if first < next {
            judge_operation(digest, findings, &known, &mut positions, &by_completion[first..next]);
        }
    }
    let polls = digest.polls.len() as u64;
    for invariant in [
        Invariant::NonmonotonicPoll,
        Invariant::PollSkip,
        Invariant::IntNonmonotonicPoll,
        Invariant::IntPollSkip,
    ] {
        findings.examined(invariant, polls, "polls");
    }
}

/// The polls of one operation (one event's), in order: each judged from where its
/// consumer stood, or from the operation's own previous poll of the partition; then
/// the consumer moves as the operation's outcome says.
fn judge_operation(
    digest: &Digest<'_>,
    findings: &mut Findings<'_>,
    known: &[Vec<(u64, u32)>],
    positions: &mut BTreeMap<(u64, u32), Position>,
    polls: &[(u32, u32)],
) {
    // The last offset this operation read per partition, and its outcome.
    let mut read_here: BTreeMap<u32, (u64, usize)> = BTreeMap::new();
    let mut outcome = Outcome::Ok;
    let mut process = 0;
    for &(event, poll) in polls {
        let view = &digest.polls[poll as usize];
        (outcome, process) = (view.outcome, view.process);
        let Some(last) = view.records.last() else { continue };
        let event = event as usize;
        let position = positions.get(&(view.process, view.part));
        let poll_judged = Poll { digest, index: poll, event };
        let problems = match read_here.get(&view.part) {
            Some(&earlier) => poll_judged
                .problems(Baseline { last: Some(earlier), internal: true, floor: None }, known),
            None => poll_judged.judged_from(position, known),
        };
        for (invariant, explanation, witness) in problems {
            let partition = digest.partition_id(view.part);
            findings.found(invariant, Guarantee::CommittedStable, Some(partition), || {
                (explanation, witness)
            });
        }
        read_here.insert(view.part, (last.offset, event));
    }
    for (part, read) in read_here {
        let position = positions.entry((process, part)).or_default();
        match outcome {
            Outcome::Ok => {
                *position = Position { read: Some(read), maybe: BTreeMap::new(), floor: None };
            }
            Outcome::Info => {
                position.maybe.insert(read.0, read.1);
            }
            Outcome::Fail | Outcome::Pending => {}
        }
    }
}

/// One poll being judged.
struct Poll<'d, 'h> {
    digest: &'d Digest<'h>,
    index: u32,
    event: usize,
}

impl Poll<'_, '_> {
    /// The problems of a poll judged from the consumer's position: from its last ok
    /// read, unless an `info` poll may have moved it to a place the poll reads fine from
    /// (the highest such place below the poll's first record).
    fn judged_from(&self, position: Option<&Position>, known: &[Vec<(u64, u32)>]) -> Vec<Problem> {
        let read = position.and_then(|p| p.read);
        let floor = position.and_then(|p| p.floor).filter(|_| read.is_none());
        let definite = Baseline { last: read, internal: false, floor };
        let problems = self.problems(definite, known);
        if problems.is_empty() {
            return problems;
        }
        let first = self.digest.polls[self.index as usize].records[0].offset;
        let maybe = position.and_then(|p| p.maybe.range(..first).next_back());
        match maybe {
            Some((&offset, &event)) if definite.last.is_none_or(|(read, _)| offset > read) => {
                let alternative =
                    Baseline { last: Some((offset, event)), internal: false, floor: None };
                let other = self.problems(alternative, known);
                if other.is_empty() { other } else { problems }
            }
            _ => problems,
        }
    }

    /// The order problem and the skip problem of this poll from `baseline`, if any.
    fn problems(&self, baseline: Baseline, known: &[Vec<(u64, u32)>]) -> Vec<Problem> {
        let view = &self.digest.polls[self.index as usize];
        let mut problems = Vec::new();
        problems.extend(self.order(baseline));
        problems.extend(self.skip(baseline, &known[view.part as usize]));
        problems
    }

    fn order(&self, baseline: Baseline) -> Option<Problem> {
        let digest = self.digest;
        let view = &digest.polls[self.index as usize];
        let first = view.records[0].offset;
        let this = || digest.witness.event(self.event);
        if let Some((last, previous)) = baseline.last.filter(|&(last, _)| first <= last) {
            let (invariant, witness) = if baseline.internal {
                (Invariant::IntNonmonotonicPoll, vec![this()])
            } else {
                (Invariant::NonmonotonicPoll, vec![digest.witness.event(previous), this()])
            };
            let whose = if baseline.internal {
                "an earlier poll of the same operation"
            } else {
                "the previous poll"
            };
            return Some((
                invariant,
                format!("read offset {first} after {whose} read up to {last}"),
                witness,
            ));
        }
        if let Some((floor, committed)) = baseline.floor.filter(|&(floor, _)| first < floor) {
            return Some((
                Invariant::NonmonotonicPoll,
                format!(
                    "read offset {first} after its group's rebalance, but the group had committed its position at offset {floor} (offsets below it processed)"
                ),
                vec![digest.witness.event(committed), this()],
            ));
        }
        if first < view.from && !baseline.internal {
            return Some((
                Invariant::NonmonotonicPoll,
                format!("read offset {first} below its from {}", view.from),
                vec![this()],
            ));
        }
        view.records.windows(2).find(|pair| pair[1].offset <= pair[0].offset).map(|pair| {
            (
                Invariant::IntNonmonotonicPoll,
                format!(
                    "read offset {} after offset {} in the same poll",
                    pair[1].offset, pair[0].offset
                ),
                vec![this()],
            )
        })
    }

    fn skip(&self, baseline: Baseline, known: &[(u64, u32)]) -> Option<Problem> {
        let digest = self.digest;
        let view = &digest.polls[self.index as usize];
        // The first offset this read should start at: right after the previous read, or
        // at `from` after an assign.
        let mut expected = baseline.last.map_or(view.from, |(last, _)| last + 1);
        // One search per poll, then a cursor that only moves forward with `expected`: it
        // passes only known offsets below a record this poll read, so the walk is as long
        // as the poll.
        let mut cursor = known.partition_point(|&(offset, _)| offset < expected);
        for (index, record) in view.records.iter().enumerate() {
            while known.get(cursor).is_some_and(|&(offset, _)| offset < expected) {
                cursor += 1;
            }
            if let Some(&(skipped, claim)) =
                known.get(cursor).filter(|&&(offset, _)| offset < record.offset)
            {
                let claim: &Claim = &digest.claims[claim as usize];
                let internal = index > 0 || baseline.internal;
                let invariant = if internal { Invariant::IntPollSkip } else { Invariant::PollSkip };
                let explanation = format!(
                    "read offset {} but skipped offset {skipped}, which holds `{}`",
                    record.offset,
                    digest.value_text(claim)
                );
                let mut witness =
                    vec![digest.witness.event(self.event), digest.claim_witness(claim)];
                if let (0, Some((_, previous))) = (index, baseline.last) {
                    witness.push(digest.witness.event(previous));
                }
                return Some((invariant, explanation, witness));
            }
            expected = expected.max(record.offset + 1);
        }
        None
    }
}

/// Per dense partition: each offset some read_committed observation (a read or the
/// final log) holds a record at, sorted, with the first claim that shows it. A
/// read_uncommitted poll may return records of aborted transactions, which
/// read_committed polls rightly step over, so its reads are not known offsets.
fn known_offsets(digest: &Digest<'_>) -> Vec<Vec<(u64, u32)>> {
    let mut known: Vec<Vec<(u64, u32)>> = vec![Vec::new(); digest.partitions.len()];
    for (index, claim) in digest.claims.iter().enumerate() {
        if !digest.read_committed(claim) {
            continue;
        }
        let offsets = &mut known[claim.part as usize];
        if offsets.last().is_none_or(|&(offset, _)| offset != claim.offset) {
            offsets.push((claim.offset, index as u32));
        }
    }
    known
}
