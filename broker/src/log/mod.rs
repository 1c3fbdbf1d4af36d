//! The segmented log of one partition, on any `Storage`.
//!
//! Append assigns offsets and stamps the leader epoch; read serves whole batches from
//! an offset up to a byte budget, validating every batch's CRC before it is served;
//! truncate cuts the tail at a batch boundary; retention drops whole old segments.
//! Durability is explicit: `flush` asks for syncs and the recovery point only moves
//! when they complete. A failed sync fences the log for good: the data it covered may
//! be gone even though a later sync would say otherwise (fsyncgate), so the only way
//! on is to reopen from what the disk holds.

mod recovery;
mod segment;

pub use recovery::{RecoveryProblem, RecoveryReport};

use std::collections::{BTreeMap, VecDeque};

use thiserror::Error;

use crate::batch::{self, BATCH_BYTES_MAX, BatchError, ProducerStamp, Record, RecordBatch};
use crate::checkpoint::{CheckpointKind, CheckpointWriter};
use crate::storage::{Storage, StorageError, SyncResult, SyncTicket, join};
use segment::Segment;

/// When the log asks for its data to be made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// After every append.
    EveryAppend,
    /// When `poll` finds this much time passed since the last flush.
    Interval { every_ns: u64 },
    /// Only when asked (`flush`): rely on replication for durability.
    Never,
}

/// The smallest segment size a log may be configured with, in bytes.
pub const SEGMENT_BYTES_MIN: u64 = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment rolls before an append would take it past this size (at least
    /// `SEGMENT_BYTES_MIN`). A batch larger than a whole segment gets one to itself.
    pub segment_bytes_max: u64,
    /// Bytes between two entries of the sparse offset index.
    pub index_interval_bytes: u64,
    pub flush: FlushPolicy,
    /// Recovery validates every batch of every segment, not only those after the
    /// recovery point: slower on big logs, but corruption at rest (bit rot, a
    /// misdirected write) is cut at open instead of failing a read later.
    pub verify_on_open: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 1 << 30,
            index_interval_bytes: 4096,
            flush: FlushPolicy::Never,
            verify_on_open: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LogError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{path}: corrupt batch at byte {position}: {problem}")]
    Corrupt { path: String, position: u64, problem: String },
    #[error("offset {offset} is outside the log [{start}, {end}]")]
    OffsetOutOfRange { offset: u64, start: u64, end: u64 },
    #[error("batch refused: {0}")]
    Batch(#[from] BatchError),
    #[error("batch at offset {offset} does not follow the log end {end}")]
    NotContiguous { offset: u64, end: u64 },
    #[error("batch of leader epoch {epoch} after epoch {latest}: epochs never go back")]
    EpochRegression { epoch: u32, latest: u32 },
    #[error("log fenced after a failed sync ({detail}); reopen it from disk")]
    Fenced { detail: String },
}

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub end_offset: u64,
    pub producer: ProducerStamp,
    pub attributes: u8,
    /// The stored batch's CRC: with the offsets, what names this batch among all the
    /// log ever held (a harness checks a recovered log against it).
    pub crc: u32,
}

/// Batches read from the log, decoded.
pub type Batches = Vec<RecordBatch>;

struct FlushGroup {
    end_offset: u64,
    outstanding: usize,
}

/// The file a log's recovery point is checkpointed in, in its directory.
pub const RECOVERY_POINT_FILE: &str = "recovery-point.checkpoint";
/// How often `poll` writes the recovery point checkpoint, at most.
const RECOVERY_POINT_CHECKPOINT_EVERY_NS: u64 = 1_000_000_000;
/// The file a log's leader-epoch cache is checkpointed in, in its directory.
pub const LEADER_EPOCHS_FILE: &str = "leader-epochs.checkpoint";

/// One partition's log.
pub struct PartitionLog {
    dir: String,
    config: LogConfig,
    /// Never empty; the last one is the active segment.
    segments: Vec<Segment>,
    /// Every offset below it is durable.
    recovery_point: u64,
    /// (epoch, first offset) in increasing order of both.
    epochs: Vec<(u32, u64)>,
    /// Names created or removed since the directory's last requested sync.
    dir_dirty: bool,
    flushes: VecDeque<FlushGroup>,
    /// Which flush group (by sequence) a ticket belongs to.
    tickets: BTreeMap<SyncTicket, u64>,
    flush_seq_front: u64,
    last_flush_ns: u64,
    recovery_point_written_ns: u64,
    fenced: Option<String>,
    recovery_point_writer: CheckpointWriter,
    epochs_writer: CheckpointWriter,
}

impl PartitionLog {
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The first offset held.
    pub fn start_offset(&self) -> u64 {
        self.segments[0].base_offset
    }

    /// The offset the next append gets.
    pub fn end_offset(&self) -> u64 {
        self.active().end_offset
    }

    /// Every offset below this is durable on the storage.
    pub fn recovery_point(&self) -> u64 {
        self.recovery_point
    }

    pub fn leader_epochs(&self) -> &[(u32, u64)] {
        &self.epochs
    }

    /// The latest leader epoch in the log.
    pub fn latest_epoch(&self) -> Option<u32> {
        self.epochs.last().map(|&(epoch, _)| epoch)
    }

    /// KIP-279: the largest epoch at most `epoch` that the log has, and the offset where
    /// it ends (the next epoch's start, or the log end). `None` if the log has no epoch
    /// that old.
    pub fn end_offset_for_epoch(&self, epoch: u32) -> Option<(u32, u64)> {
        let after = self.epochs.partition_point(|&(e, _)| e <= epoch);
        let index = after.checked_sub(1)?;
        let end = self.epochs.get(index + 1).map_or(self.end_offset(), |&(_, start)| start);
        Some((self.epochs[index].0, end))
    }

    /// A leader's answer to a follower asking where `epoch` ends (OffsetsForLeaderEpoch):
    /// the largest epoch at most `epoch` this log has and where it ends. Older than every
    /// epoch here: `epoch` itself, ending where the first epoch here starts (its records,
    /// if the follower has any, are not here), as Kafka's `LeaderEpochFileCache` answers.
    pub fn epoch_end_answer(&self, epoch: u32) -> (u32, u64) {
        self.end_offset_for_epoch(epoch).unwrap_or_else(|| {
            let first_start = self.epochs.first().map_or(self.end_offset(), |&(_, start)| start);
            (epoch, first_start.max(self.start_offset()))
        })
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// True while a requested sync has not completed.
    pub fn sync_pending(&self) -> bool {
        !self.flushes.is_empty()
    }

    pub fn is_fenced(&self) -> bool {
        self.fenced.is_some()
    }

    fn active(&self) -> &Segment {
        self.segments.last().expect("a log always has a segment")
    }

    fn check_fenced(&self) -> Result<(), LogError> {
        match &self.fenced {
            Some(detail) => Err(LogError::Fenced { detail: detail.clone() }),
            None => Ok(()),
        }
    }

    /// Appends records as one batch, as the leader of `leader_epoch`.
    pub fn append<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        leader_epoch: u32,
        producer: ProducerStamp,
        records: Vec<Record>,
    ) -> Result<Appended, LogError> {
        self.append_with(storage, now_ns, leader_epoch, 0, producer, records)
    }

    /// Appends records as one batch with the given attributes (transactional data, or a
    /// transaction marker), as the leader of `leader_epoch`.
    pub fn append_with<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        leader_epoch: u32,
        attributes: u8,
        producer: ProducerStamp,
        records: Vec<Record>,
    ) -> Result<Appended, LogError> {
        let batch = RecordBatch {
            base_offset: self.end_offset(),
            leader_epoch,
            attributes,
            producer,
            records,
        };
        let bytes = batch.encode()?;
        // Just encoded: validating it again would only recompute the CRC (the batch
        // tests show `validate` reads back this header). Every read validates it.
        let header = batch.encoded_header(bytes.len());
        self.append_checked(storage, now_ns, &bytes, header)
    }

    /// Appends an encoded batch as it came from a leader: it must validate and start at
    /// the log end.
    pub fn append_encoded<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        bytes: &[u8],
    ) -> Result<Appended, LogError> {
        self.check_fenced()?;
        let header = batch::validate(bytes)?;
        self.append_checked(storage, now_ns, bytes, header)
    }

    fn append_checked<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        bytes: &[u8],
        header: batch::BatchHeader,
    ) -> Result<Appended, LogError> {
        self.check_fenced()?;
        if header.size_bytes != bytes.len() {
            return Err(LogError::Batch(BatchError::BadLength { length: bytes.len() as u32 }));
        }
        let end = self.end_offset();
        if header.base_offset != end {
            return Err(LogError::NotContiguous { offset: header.base_offset, end });
        }
        let latest = self.epochs.last().map_or(0, |&(epoch, _)| epoch);
        if header.leader_epoch < latest {
            return Err(LogError::EpochRegression { epoch: header.leader_epoch, latest });
        }
        let size = bytes.len() as u64;
        if self.active().size_bytes > 0
            && self.active().size_bytes + size > self.config.segment_bytes_max
        {
            self.roll(storage)?;
        }
        // A batch that opens an epoch writes the epoch cache's checkpoint first: an
        // append refused (a full disk) must leave nothing behind, or the batch would sit
        // in a log whose caller was told it was not written (and a retry would write it
        // twice). A checkpoint naming an epoch that starts at the log end is harmless:
        // recovery keeps only epochs that start below the end.
        let opens_epoch = self.epochs.last().is_none_or(|&(epoch, _)| header.leader_epoch > epoch);
        if opens_epoch {
            self.epochs.push((header.leader_epoch, header.base_offset));
            if let Err(error) = self.write_epochs(storage) {
                self.epochs.pop();
                return Err(error.into());
            }
        }
        let interval = self.config.index_interval_bytes;
        let active = self.segments.last_mut().expect("a log always has a segment");
        let position = match storage.append(&active.log_path, bytes) {
            Ok(position) => position,
            Err(error) => {
                if opens_epoch {
                    self.epochs.pop();
                }
                return Err(error.into());
            }
        };
        assert_eq!(
            position, active.size_bytes,
            "{}: file and log disagree on the size",
            active.log_path
        );
        active.note_batch(header.base_offset, header.end_offset(), position, size, interval);
        active.dirty = true;
        match self.config.flush {
            FlushPolicy::EveryAppend => self.flush(storage, now_ns)?,
            FlushPolicy::Interval { .. } | FlushPolicy::Never => {}
        }
        Ok(Appended {
            base_offset: header.base_offset,
            end_offset: header.end_offset(),
            producer: header.producer,
            attributes: header.attributes,
            crc: batch::stored_crc(bytes),
        })
    }

    /// Starts a new active segment at the log end.
    pub fn roll<S: Storage + ?Sized>(&mut self, storage: &mut S) -> Result<(), LogError> {
        self.check_fenced()?;
        if self.active().size_bytes == 0 {
            return Ok(());
        }
        self.active().write_index(storage)?;
        let segment = Segment::new(&self.dir, self.end_offset());
        storage.create(&segment.log_path)?;
        self.segments.push(segment);
        self.dir_dirty = true;
        Ok(())
    }

    /// Flushes if the policy says one is due.
    pub fn poll<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
    ) -> Result<(), LogError> {
        if let FlushPolicy::Interval { every_ns } = self.config.flush {
            if now_ns.saturating_sub(self.last_flush_ns) >= every_ns {
                self.flush(storage, now_ns)?;
            }
        }
        // The recovery point checkpoint only shortens recovery (a stale one means a
        // longer scan, never lost data), so it is written now and then, not per flush.
        let written = self.recovery_point_writer.durable().and_then(crate::checkpoint::payload_u64);
        if written != Some(self.recovery_point)
            && now_ns
                >= self.recovery_point_written_ns.saturating_add(RECOVERY_POINT_CHECKPOINT_EVERY_NS)
        {
            self.recovery_point_written_ns = now_ns;
            let payload = crate::checkpoint::u64_payload(self.recovery_point);
            self.recovery_point_writer.write(storage, payload)?;
        }
        Ok(())
    }

    /// Asks for everything written so far to be made durable. The recovery point moves
    /// to today's log end once every sync asked for here has completed.
    pub fn flush<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
    ) -> Result<(), LogError> {
        self.check_fenced()?;
        self.last_flush_ns = now_ns;
        let seq = self.flush_seq_front + self.flushes.len() as u64;
        let mut outstanding = 0;
        for segment in self.segments.iter_mut().filter(|segment| segment.dirty) {
            segment.dirty = false;
            self.tickets.insert(storage.sync(&segment.log_path), seq);
            outstanding += 1;
        }
        if self.dir_dirty {
            self.dir_dirty = false;
            self.tickets.insert(storage.sync(&self.dir), seq);
            outstanding += 1;
        }
        if outstanding > 0 {
            self.flushes.push_back(FlushGroup { end_offset: self.end_offset(), outstanding });
        }
        Ok(())
    }

    /// True if the log asked for this sync (the caller routes completions).
    pub fn owns(&self, ticket: SyncTicket) -> bool {
        self.tickets.contains_key(&ticket)
            || self.recovery_point_writer.owns(ticket)
            || self.epochs_writer.owns(ticket)
    }

    /// A sync the log asked for has completed.
    pub fn on_synced<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        ticket: SyncTicket,
        result: SyncResult,
    ) -> Result<(), LogError> {
        if let Err(error) = &result {
            // The fsyncgate lesson: never trust this disk again without reopening.
            self.fenced.get_or_insert_with(|| error.to_string());
        }
        if self.recovery_point_writer.owns(ticket) {
            self.recovery_point_writer.on_synced(storage, ticket, result)?;
            return self.check_fenced();
        }
        if self.epochs_writer.owns(ticket) {
            self.epochs_writer.on_synced(storage, ticket, result)?;
            return self.check_fenced();
        }
        let Some(seq) = self.tickets.remove(&ticket) else { return self.check_fenced() };
        self.check_fenced()?;
        let group = &mut self.flushes[(seq - self.flush_seq_front) as usize];
        group.outstanding -= 1;
        // Groups complete in order; the checkpoint follows in `poll`.
        while self.flushes.front().is_some_and(|group| group.outstanding == 0) {
            let group = self.flushes.pop_front().expect("front exists");
            self.flush_seq_front += 1;
            // A truncation since the flush may have cut below the group's end.
            self.recovery_point = self.recovery_point.max(group.end_offset.min(self.end_offset()));
        }
        Ok(())
    }

    /// Reads whole batches holding offsets from `from_offset`, up to `max_bytes` (at least
    /// one batch when any is there). Every batch is validated before it is served.
    pub fn read<S: Storage + ?Sized>(
        &self,
        storage: &mut S,
        from_offset: u64,
        max_bytes: usize,
    ) -> Result<Batches, LogError> {
        let mut batches = Vec::new();
        self.read_each(storage, from_offset, max_bytes, |bytes, header| {
            batches.push(batch::decode_validated(bytes, header));
        })?;
        Ok(batches)
    }

    /// Like `read`, but the batches as stored (validated, not decoded): what a leader
    /// sends a follower or a consumer, without decoding and encoding each batch again.
    pub fn read_encoded<S: Storage + ?Sized>(
        &self,
        storage: &mut S,
        from_offset: u64,
        max_bytes: usize,
    ) -> Result<Vec<(batch::BatchHeader, Vec<u8>)>, LogError> {
        let mut batches = Vec::new();
        self.read_with(storage, from_offset, max_bytes, |bytes, header| {
            batches.push((*header, std::mem::take(bytes)));
        })?;
        Ok(batches)
    }

    /// Like `read`, but hands each batch as stored (validated, with its header) to
    /// `take`, in order, instead of collecting them: for callers that look at the
    /// records and keep nothing of the batch.
    pub fn read_each<S: Storage + ?Sized>(
        &self,
        storage: &mut S,
        from_offset: u64,
        max_bytes: usize,
        mut take: impl FnMut(&[u8], &batch::BatchHeader),
    ) -> Result<(), LogError> {
        self.read_with(storage, from_offset, max_bytes, |bytes, header| take(bytes, header))
    }

    /// `read_each` with the batch's buffer itself: `take` may keep it (leaving an empty
    /// one), else it is reused for the next batch.
    fn read_with<S: Storage + ?Sized>(
        &self,
        storage: &mut S,
        from_offset: u64,
        max_bytes: usize,
        mut take: impl FnMut(&mut Vec<u8>, &batch::BatchHeader),
    ) -> Result<(), LogError> {
        self.check_fenced()?;
        let (start, end) = (self.start_offset(), self.end_offset());
        if from_offset < start || from_offset > end {
            return Err(LogError::OffsetOutOfRange { offset: from_offset, start, end });
        }
        if from_offset == end {
            return Ok(()); // nothing yet: the common answer to a caught-up follower
        }
        let mut budget = max_bytes;
        let mut taken = 0;
        let first =
            self.segments.partition_point(|segment| segment.base_offset <= from_offset).max(1) - 1;
        for segment in &self.segments[first..] {
            let mut full = false;
            walk(storage, segment, from_offset, |bytes, header| {
                if header.end_offset() <= from_offset {
                    return Ok(true);
                }
                if taken > 0 && bytes.len() > budget {
                    full = true;
                    return Ok(false);
                }
                budget = budget.saturating_sub(bytes.len());
                taken += 1;
                take(bytes, header);
                Ok(true)
            })?;
            if full {
                break;
            }
        }
        Ok(())
    }

    /// Cuts the log so that it ends at or before `offset`, at a batch boundary. Returns
    /// the new log end (`offset`, or the start of the batch holding it).
    pub fn truncate_to<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        offset: u64,
    ) -> Result<u64, LogError> {
        self.check_fenced()?;
        if offset >= self.end_offset() {
            return Ok(self.end_offset());
        }
        while self.segments.len() > 1 && self.active().base_offset >= offset {
            let segment = self.segments.pop().expect("more than one");
            remove_segment_files(storage, &segment)?;
            self.dir_dirty = true;
        }
        if self.active().base_offset >= offset {
            // Everything goes: the log restarts empty at `offset`.
            let segment = self.segments.pop().expect("one left");
            remove_segment_files(storage, &segment)?;
            let fresh = Segment::new(&self.dir, offset);
            storage.create(&fresh.log_path)?;
            self.segments.push(fresh);
            self.dir_dirty = true;
        } else if offset < self.end_offset() {
            let active = self.segments.last_mut().expect("a log always has a segment");
            let mut cut_at = None;
            let mut position = active.lookup(offset).position;
            walk(storage, active, offset, |bytes, header| {
                if header.end_offset() > offset {
                    cut_at = Some((position, header.base_offset));
                    return Ok(false);
                }
                position += bytes.len() as u64;
                Ok(true)
            })?;
            let Some((position, new_end)) = cut_at else {
                let problem = format!("no batch holds offset {offset}");
                return Err(corrupt(active, active.size_bytes, problem));
            };
            storage.truncate(&active.log_path, position)?;
            active.size_bytes = position;
            active.end_offset = new_end;
            active.cut_index(position);
            active.dirty = true;
        }
        let end = self.end_offset();
        let epochs_before = self.epochs.len();
        self.epochs.retain(|&(_, start)| start < end);
        if self.epochs.len() != epochs_before {
            self.write_epochs(storage)?;
        }
        if self.recovery_point > end {
            self.recovery_point = end;
            self.recovery_point_writer.write(storage, crate::checkpoint::u64_payload(end))?;
        }
        Ok(end)
    }

    /// Retention: drops every segment (but the active one) that ends at or before
    /// `offset`. Returns the new start offset.
    pub fn delete_segments_before<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        offset: u64,
    ) -> Result<u64, LogError> {
        self.check_fenced()?;
        let doomed = self.segments[..self.segments.len() - 1]
            .iter()
            .take_while(|s| s.end_offset <= offset)
            .count();
        for segment in self.segments.drain(..doomed) {
            remove_segment_files(storage, &segment)?;
            self.dir_dirty = true;
        }
        Ok(self.start_offset())
    }

    fn write_epochs<S: Storage + ?Sized>(&mut self, storage: &mut S) -> Result<(), StorageError> {
        let mut payload = Vec::with_capacity(self.epochs.len() * 12);
        for &(epoch, start) in &self.epochs {
            payload.extend_from_slice(&epoch.to_le_bytes());
            payload.extend_from_slice(&start.to_le_bytes());
        }
        self.epochs_writer.write(storage, payload)
    }

    fn new_writers(dir: &str) -> (CheckpointWriter, CheckpointWriter) {
        (
            CheckpointWriter::new(join(dir, RECOVERY_POINT_FILE), CheckpointKind::RecoveryPoint),
            CheckpointWriter::new(join(dir, LEADER_EPOCHS_FILE), CheckpointKind::LeaderEpochs),
        )
    }
}

fn corrupt(segment: &Segment, position: u64, problem: String) -> LogError {
    LogError::Corrupt { path: segment.log_path.clone(), position, problem }
}

/// Reads the whole batch at `position` of the file at `path`, which holds valid data up
/// to `file_end`, into `bytes` (unvalidated; the buffer is reused, its old contents gone).
fn read_batch_at<S: Storage + ?Sized>(
    storage: &mut S,
    path: &str,
    position: u64,
    file_end: u64,
    bytes: &mut Vec<u8>,
) -> Result<(), LogError> {
    let corrupt = |problem: String| LogError::Corrupt { path: path.to_owned(), position, problem };
    let mut head = [0u8; 12];
    if position + 12 > file_end {
        return Err(corrupt(format!(
            "{} bytes left, less than a batch header",
            file_end - position
        )));
    }
    crate::storage::read_exact_at(storage, path, position, &mut head)?;
    let size = batch::peek_size(&head).map_err(|e| corrupt(e.to_string()))?;
    if position + size as u64 > file_end {
        return Err(corrupt(format!("batch of {size} bytes runs past the end at byte {file_end}")));
    }
    debug_assert!(size <= BATCH_BYTES_MAX);
    bytes.clear();
    bytes.resize(size, 0);
    crate::storage::read_exact_at(storage, path, position, bytes)?;
    Ok(())
}

/// Bytes read ahead by a walk over a segment: one read of up to `READ_AHEAD_BYTES` serves
/// the batches inside it, where reading each batch costs two reads (its header, then
/// all of it).
#[derive(Default)]
pub(super) struct ReadAhead {
    /// Where `bytes` start in the file.
    start: u64,
    bytes: Vec<u8>,
}

/// The most a walk reads ahead at once.
const READ_AHEAD_BYTES: u64 = 64 * 1024;

impl ReadAhead {
    /// The batch at `position` as `read_batch_at` reads it, when the bytes read ahead
    /// hold all of it and it reads without error there.
    fn batch_at(&self, position: u64, file_end: u64) -> Option<&[u8]> {
        let from = usize::try_from(position.checked_sub(self.start)?).ok()?;
        if position + 12 > file_end || from + 12 > self.bytes.len() {
            return None;
        }
        let size = batch::peek_size(&self.bytes[from..from + 12]).ok()?;
        if position + size as u64 > file_end || from + size > self.bytes.len() {
            return None;
        }
        Some(&self.bytes[from..from + size])
    }

    /// `read_batch_at`, served from bytes read ahead where it can be. Storage reads
    /// change nothing, and a read of a range that succeeds means a read of any part of
    /// it succeeds with the same bytes: so a batch served from the bytes read ahead is
    /// the batch `read_batch_at` would have read. Whatever may fail (a header or batch
    /// past the end, a bad length, a failed or short read) is left to
    /// `read_batch_at`, which fails as it always did.
    pub(super) fn read_batch_at<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        path: &str,
        position: u64,
        file_end: u64,
        bytes: &mut Vec<u8>,
    ) -> Result<(), LogError> {
        if self.batch_at(position, file_end).is_none() && position < file_end {
            let want = (file_end - position).min(READ_AHEAD_BYTES) as usize;
            self.start = position;
            self.bytes.clear();
            self.bytes.resize(want, 0);
            if !matches!(storage.read_at(path, position, &mut self.bytes), Ok(read) if read == want)
            {
                self.bytes.clear();
            }
        }
        match self.batch_at(position, file_end) {
            Some(batch) => {
                bytes.clear();
                bytes.extend_from_slice(batch);
                Ok(())
            }
            None => read_batch_at(storage, path, position, file_end, bytes),
        }
    }
}

/// Visits the batches of `segment` from the index entry at or before `offset`, each
/// validated and checked to follow the one before: a valid batch in the wrong place (a
/// misdirected write) is corruption too. `visit` returns false to stop.
fn walk<S: Storage + ?Sized>(
    storage: &mut S,
    segment: &Segment,
    offset: u64,
    mut visit: impl FnMut(&mut Vec<u8>, &batch::BatchHeader) -> Result<bool, LogError>,
) -> Result<(), LogError> {
    let entry = segment.lookup(offset);
    let (mut position, mut expected) = (entry.position, entry.offset);
    let mut bytes = Vec::new();
    let mut ahead = ReadAhead::default();
    while position < segment.size_bytes {
        ahead.read_batch_at(
            storage,
            &segment.log_path,
            position,
            segment.size_bytes,
            &mut bytes,
        )?;
        let header =
            batch::validate(&bytes).map_err(|e| corrupt(segment, position, e.to_string()))?;
        if header.base_offset != expected {
            let problem = format!("batch has offset {}, expected {expected}", header.base_offset);
            return Err(corrupt(segment, position, problem));
        }
        let size = bytes.len() as u64;
        if !visit(&mut bytes, &header)? {
            return Ok(());
        }
        position += size;
        expected = header.end_offset();
    }
    if expected != segment.end_offset {
        let problem = format!("segment ends at offset {expected}, expected {}", segment.end_offset);
        return Err(corrupt(segment, position, problem));
    }
    Ok(())
}

fn remove_segment_files<S: Storage + ?Sized>(
    storage: &mut S,
    segment: &Segment,
) -> Result<(), StorageError> {
    storage.remove(&segment.log_path)?;
    if storage.exists(&segment.index_path) {
        storage.remove(&segment.index_path)?;
    }
    Ok(())
}
