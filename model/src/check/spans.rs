//! Which offsets polls read across: each poll's span runs from where it started (its
//! position, or its first record if lower) to its last record. Spans are sorted by
//! start and swept once for the furthest reach so far, so "did some poll read across
//! this offset" is one binary search.

use super::digest::PollView;

/// (span start, furthest end of the spans starting at or before it, the poll reaching
/// that end: an index into `Digest::polls`).
pub(super) type Span = (u64, u64, u32);

pub(super) struct ReadSpans(Vec<Span>);

impl ReadSpans {
    /// A poll's span, if it returned anything: (start, last record's offset).
    pub fn of(poll: &PollView<'_>) -> Option<(u64, u64)> {
        let (first, last) = (poll.records.first()?, poll.records.last()?);
        Some((poll.from.min(first.offset), last.offset))
    }

    /// The spans (start, end, poll) of some polls, in any order.
    pub fn new(mut spans: Vec<Span>) -> ReadSpans {
        spans.sort_unstable();
        let mut reach: Option<(u64, u32)> = None;
        for span in spans.iter_mut() {
            if reach.is_none_or(|(end, _)| span.1 > end) {
                reach = Some((span.1, span.2));
            }
            (span.1, span.2) = reach.expect("set above");
        }
        ReadSpans(spans)
    }

    /// The furthest end reached by a span starting at or before `offset`, and its poll.
    pub fn reach_at(&self, offset: u64) -> Option<(u64, u32)> {
        let starting_before = self.0.partition_point(|&(start, _, _)| start <= offset);
        let &(_, end, poll) = self.0.get(starting_before.checked_sub(1)?)?;
        Some((end, poll))
    }
}
