//! nonmonotonic-poll and poll-skip: does each consumer read its partition in order?
//!
//! Per (process, partition), between assigns (which seek), successive ok polls must
//! read strictly increasing offsets, none below the poll's `from` (nonmonotonic-poll),
//! and must not step over an offset that someone observed holding a record: another
//! poll or the final log (poll-skip). Only observations count as known offsets, not
//! acknowledgements, so that an acknowledged write nobody can read is a lost-write and
//! not also a skip. One anomaly of each kind per poll at most.

use std::collections::BTreeMap;

use super::Findings;
use super::digest::{Claim, Digest};
use crate::history::{EventType, Op, Record};
use crate::invariant::{Guarantee, Invariant};
use crate::verdict::Witness;

pub(super) fn check(digest: &Digest<'_>, findings: &mut Findings<'_>) {
    let known = known_offsets(digest);
    // The last offset each (process, partition) read, and the event that read it.
    let mut last_read: BTreeMap<(u64, u32), (u64, usize)> = BTreeMap::new();
    // Polls (plain, and those inside transactions) in the order they completed.
    let mut by_completion: Vec<(u32, u32)> =
        digest.polls.iter().enumerate().map(|(index, poll)| (poll.event, index as u32)).collect();
    by_completion.sort_unstable();
    let mut next = by_completion.iter().peekable();
    for (index, event) in digest.history.events().iter().enumerate() {
        if let (EventType::Invoke, Op::Assign { partitions }) = (event.kind, &event.op) {
            for &partition in partitions {
                last_read.remove(&(event.process, digest.part(partition)));
            }
        }
        while let Some(&&(_, poll)) = next.peek().filter(|&&&(at, _)| at as usize == index) {
            next.next();
            let view = &digest.polls[poll as usize];
            let Some(last) = view.records.last() else { continue };
            let place = (view.process, view.part);
            let poll = Poll {
                part: view.part,
                from: view.from,
                records: view.records,
                event: index,
                previous: last_read.get(&place).copied(),
            };
            judge_order(digest, findings, &poll);
            judge_skip(digest, findings, &poll, &known[view.part as usize]);
            last_read.insert(place, (last.offset, index));
        }
    }
    let polls = digest.polls.len() as u64;
    findings.examined(Invariant::NonmonotonicPoll, polls, "polls");
    findings.examined(Invariant::PollSkip, polls, "polls");
}

/// An ok poll with records, and where its process last read this partition.
struct Poll<'a> {
    part: u32,
    from: u64,
    records: &'a [Record],
    event: usize,
    previous: Option<(u64, usize)>,
}

fn judge_order(digest: &Digest<'_>, findings: &mut Findings<'_>, poll: &Poll<'_>) {
    let first = poll.records[0].offset;
    let this = || digest.witness.event(poll.event);
    let problem: Option<(String, Vec<Witness>)> = if first < poll.from {
        Some((format!("read offset {first} below its from {}", poll.from), vec![this()]))
    } else if let Some((last, previous)) = poll.previous.filter(|&(last, _)| first <= last) {
        Some((
            format!("read offset {first} after the previous poll read up to {last}"),
            vec![digest.witness.event(previous), this()],
        ))
    } else {
        poll.records.windows(2).find(|pair| pair[1].offset <= pair[0].offset).map(|pair| {
            (
                format!("read offset {} after offset {}", pair[1].offset, pair[0].offset),
                vec![this()],
            )
        })
    };
    if let Some((explanation, witness)) = problem {
        let partition = digest.partition_id(poll.part);
        findings.found(
            Invariant::NonmonotonicPoll,
            Guarantee::CommittedStable,
            Some(partition),
            || (explanation, witness),
        );
    }
}

fn judge_skip(
    digest: &Digest<'_>,
    findings: &mut Findings<'_>,
    poll: &Poll<'_>,
    known: &[(u64, u32)],
) {
    // The first offset this read should start at: right after the previous read, or
    // at `from` after an assign.
    let mut expected = poll.previous.map_or(poll.from, |(last, _)| last + 1);
    // One search per poll, then a cursor that only moves forward with `expected`: it
    // passes only known offsets below a record this poll read, so the walk is as long
    // as the poll.
    let mut cursor = known.partition_point(|&(offset, _)| offset < expected);
    for (index, record) in poll.records.iter().enumerate() {
        while known.get(cursor).is_some_and(|&(offset, _)| offset < expected) {
            cursor += 1;
        }
        if let Some(&(skipped, claim)) =
            known.get(cursor).filter(|&&(offset, _)| offset < record.offset)
        {
            let partition = digest.partition_id(poll.part);
            let claim: &Claim = &digest.claims[claim as usize];
            findings.found(
                Invariant::PollSkip,
                Guarantee::CommittedStable,
                Some(partition),
                || {
                    let explanation = format!(
                        "read offset {} but skipped offset {skipped}, which holds `{}`",
                        record.offset,
                        digest.value_text(claim)
                    );
                    let mut witness =
                        vec![digest.witness.event(poll.event), digest.claim_witness(claim)];
                    if let (0, Some((_, previous))) = (index, poll.previous) {
                        witness.push(digest.witness.event(previous));
                    }
                    (explanation, witness)
                },
            );
            return;
        }
        expected = expected.max(record.offset + 1);
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
