//! `PartitionReader`: reads one partition's committed records in offset order, as a
//! consumer, sans-IO over the broker's messages: it learns the leader from the
//! controller, fetches from its position up to the high watermark, retries after a
//! timeout or a refusal, and hands out `(offset, key, value)` records. Projections and
//! CDC replicas sit on it.

use logjam_broker::batch;
use logjam_broker::client;
use logjam_broker::protocol::{Isolation, Msg, NodeId, PartitionState};

/// Records handed out but not yet drained, at most: a reader that is not drained stops
/// fetching.
pub const BUFFERED_RECORDS_MAX: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderConfig {
    pub controller: NodeId,
    pub partition: u32,
    pub max_bytes: u32,
    pub request_timeout_ns: u64,
    /// How long to wait before fetching again after an empty answer or a refusal.
    pub poll_every_ns: u64,
    /// Where its correlation ids start: a process that also sends other requests (a
    /// producer numbers its own from 1) gives its reader a range of its own.
    pub correlation_base: u64,
    /// `ReadCommitted`: only what is decided, up to the last stable offset, without
    /// aborted transactions. `ReadUncommitted` (the weak setup): everything up to the
    /// high watermark, aborted records included.
    pub isolation: Isolation,
}

/// One record of the partition.
pub type PartitionRecord = (u64, Vec<u8>, Vec<u8>);

pub struct PartitionReader {
    config: ReaderConfig,
    leader: Option<(NodeId, u32)>,
    metadata_in_flight: Option<(u64, u64)>,
    in_flight: Option<(u64, u64)>,
    next_offset: u64,
    fetch_at_ns: u64,
    next_correlation: u64,
    /// The high watermark the last answer reported.
    high_watermark: Option<u64>,
    /// Where the last answer's view ended (the last stable offset, read committed).
    visible_end: Option<u64>,
    /// The last answer's view ended at the leader's log end: nothing in its log was
    /// undecided or uncommitted.
    at_log_end: bool,
    outbox: Vec<(NodeId, Msg)>,
    records: Vec<PartitionRecord>,
}

impl PartitionReader {
    /// A reader at `from_offset` (where a projection's checkpoint says to resume).
    pub fn new(config: ReaderConfig, from_offset: u64) -> PartitionReader {
        PartitionReader {
            leader: None,
            metadata_in_flight: None,
            in_flight: None,
            next_offset: from_offset,
            fetch_at_ns: 0,
            next_correlation: config.correlation_base,
            high_watermark: None,
            visible_end: None,
            at_log_end: false,
            config,
            outbox: Vec::new(),
            records: Vec::new(),
        }
    }

    /// The high watermark the last answer reported (what is committed so far).
    pub fn high_watermark(&self) -> Option<u64> {
        self.high_watermark
    }

    /// Where the last answer's view ended: the last stable offset when reading
    /// committed, else the high watermark.
    pub fn visible_end(&self) -> Option<u64> {
        self.visible_end
    }

    /// Whether it has read everything the leader's log held at the last answer, all of
    /// it committed and decided (last stable offset = high watermark = log end).
    pub fn caught_up(&self) -> bool {
        self.at_log_end && self.visible_end.is_some_and(|end| self.next_offset >= end)
    }

    /// The offset of the next record it will hand out.
    pub fn position(&self) -> u64 {
        self.next_offset
    }

    pub fn drain_outbox(&mut self) -> std::vec::Drain<'_, (NodeId, Msg)> {
        self.outbox.drain(..)
    }

    /// Records read since the last call, in offset order.
    pub fn drain_records(&mut self) -> Vec<PartitionRecord> {
        std::mem::take(&mut self.records)
    }

    fn correlation(&mut self) -> u64 {
        self.next_correlation += 1;
        self.next_correlation
    }

    /// The passing of time: asks for what comes next when nothing is in flight.
    pub fn tick(&mut self, now_ns: u64) {
        let timeout_ns = self.config.request_timeout_ns;
        if self.in_flight.is_some_and(|(_, sent_ns)| now_ns >= sent_ns + timeout_ns) {
            self.in_flight = None;
            self.leader = None;
        }
        if self.in_flight.is_some()
            || now_ns < self.fetch_at_ns
            || self.records.len() >= BUFFERED_RECORDS_MAX
        {
            return;
        }
        let Some((leader, leader_epoch)) = self.leader else {
            if self.metadata_in_flight.is_none_or(|(_, sent)| now_ns >= sent + timeout_ns) {
                let correlation = self.correlation();
                self.metadata_in_flight = Some((correlation, now_ns));
                self.outbox.push((self.config.controller, Msg::Metadata { correlation }));
            }
            return;
        };
        let correlation = self.correlation();
        self.in_flight = Some((correlation, now_ns));
        self.outbox.push((
            leader,
            Msg::Fetch {
                partition: self.config.partition,
                correlation,
                leader_epoch,
                fetch_offset: self.next_offset,
                replica: None,
                durable_offset: 0,
                max_bytes: self.config.max_bytes,
                isolation: self.config.isolation,
            },
        ));
    }

    /// A message; returns false if it was not for this reader. A batch that fails to
    /// decode stops the read there (it is fetched again), never skipped.
    pub fn handle(&mut self, now_ns: u64, msg: &Msg) -> bool {
        match msg {
            Msg::MetadataResponse { correlation, states }
                if self.metadata_in_flight.is_some_and(|(c, _)| c == *correlation) =>
            {
                self.metadata_in_flight = None;
                self.learn(states);
                self.tick(now_ns);
                true
            }
            Msg::FetchResponse { correlation, result, partition }
                if *partition == self.config.partition
                    && self.in_flight.is_some_and(|(c, _)| c == *correlation) =>
            {
                self.in_flight = None;
                match result {
                    Ok(data) => {
                        // An answer whose first batch starts past this reader's
                        // position was not asked by it (an earlier reader's, with the
                        // same correlation): taking it would skip records.
                        // (Its header alone says so; the batches are validated below.)
                        let first = data.batches.first().and_then(|b| batch::peek_offsets(b).ok());
                        if first.is_some_and(|(base_offset, _)| base_offset > self.next_offset) {
                            self.tick(now_ns);
                            return true;
                        }
                        self.high_watermark = Some(data.high_watermark);
                        let before = self.next_offset;
                        // Read committed: only what is decided, without aborted
                        // transactions or markers (their offsets are passed over).
                        let isolation = self.config.isolation;
                        let limit = client::visible_limit(data, isolation);
                        self.visible_end = Some(limit);
                        self.at_log_end = limit == data.log_end_offset;
                        'batches: for bytes in &data.batches {
                            let Ok(header) = batch::validate(bytes) else { break 'batches };
                            let hidden = client::is_hidden(data, &header, isolation);
                            let batch = batch::decode_validated(bytes, &header);
                            for (index, record) in batch.records.iter().enumerate() {
                                let offset = batch.base_offset + index as u64;
                                if offset < self.next_offset {
                                    continue;
                                }
                                if offset >= limit {
                                    break 'batches;
                                }
                                if !hidden {
                                    let (key, value) = (record.key.clone(), record.value.clone());
                                    self.records.push((offset, key, value));
                                }
                                self.next_offset = offset + 1;
                            }
                        }
                        if self.next_offset == before {
                            self.fetch_at_ns = now_ns + self.config.poll_every_ns;
                        }
                    }
                    Err(_) => {
                        self.leader = None;
                        self.fetch_at_ns = now_ns + self.config.poll_every_ns;
                    }
                }
                self.tick(now_ns);
                true
            }
            _ => false,
        }
    }

    fn learn(&mut self, states: &[PartitionState]) {
        if let Some(state) = states.iter().find(|s| s.partition == self.config.partition) {
            self.leader = state.leader.map(|leader| (leader, state.leader_epoch));
        }
    }
}
