//! Opening a log: find its segments, trust what the recovery point says is durable,
//! validate everything after it batch by batch, cut a torn or corrupt tail, drop what
//! cannot follow it, rebuild what is derived (indexes, the epoch cache).

use std::collections::VecDeque;
use std::fmt;

use super::segment::{INDEX_SUFFIX, LOG_SUFFIX, Segment, parse_name};
use super::{
    LEADER_EPOCHS_FILE, LogConfig, LogError, PartitionLog, RECOVERY_POINT_FILE, ReadAhead,
    remove_segment_files,
};
use crate::batch::{self, HEADER_BYTES};
use crate::checkpoint::{self, CheckpointKind};
use crate::storage::{Storage, join};

/// Something recovery found wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryProblem {
    pub path: String,
    pub position: u64,
    pub problem: String,
}

impl fmt::Display for RecoveryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: byte {}: {}", self.path, self.position, self.problem)
    }
}

/// What recovery did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub problems: Vec<RecoveryProblem>,
    /// Bytes cut from torn or corrupt tails.
    pub truncated_bytes: u64,
    /// Segment files removed because they could not follow the recovered log.
    pub removed_segments: Vec<String>,
    pub rebuilt_indexes: Vec<String>,
    /// Files in the directory that are not the log's; left alone.
    pub unknown_files: Vec<String>,
    pub batches_scanned: u64,
    pub bytes_scanned: u64,
    /// Segments below the recovery point trusted without a rescan (only when the log
    /// is not configured to verify everything on open).
    pub trusted_segments: u64,
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering from whatever the storage holds.
    pub fn open<S: Storage + ?Sized>(
        storage: &mut S,
        dir: &str,
        config: LogConfig,
    ) -> Result<(PartitionLog, RecoveryReport), LogError> {
        assert!(config.segment_bytes_max <= u64::from(u32::MAX), "index positions are 32-bit");
        // Segments smaller than the largest batch are allowed, as in Kafka: a batch that
        // does not fit the active segment rolls it, and one larger than a whole segment
        // gets an empty segment to itself (the append path rolls only a non-empty one).
        assert!(
            config.segment_bytes_max >= super::SEGMENT_BYTES_MIN,
            "a segment must be at least SEGMENT_BYTES_MIN bytes"
        );
        storage.create_dir(dir)?;
        let mut report = RecoveryReport::default();
        let mut bases = Vec::new();
        let mut indexes = Vec::new();
        for name in storage.list(dir)? {
            if let Some(base) = parse_name(&name, LOG_SUFFIX) {
                bases.push(base);
            } else if let Some(base) = parse_name(&name, INDEX_SUFFIX) {
                indexes.push(base);
            } else if name.ends_with(".tmp") {
                storage.remove(&join(dir, &name))?; // a checkpoint write that never finished
            } else if name != RECOVERY_POINT_FILE && name != LEADER_EPOCHS_FILE {
                report.unknown_files.push(join(dir, &name));
            }
        }
        for base in indexes.into_iter().filter(|base| !bases.contains(base)) {
            storage.remove(&Segment::new(dir, base).index_path)?;
        }
        let recovery_point = read_recovery_point(storage, dir, &mut report);
        let saved_epochs = read_epochs(storage, dir, &mut report);

        let (recovery_point_writer, epochs_writer) = PartitionLog::new_writers(dir);
        let mut log = PartitionLog {
            dir: dir.to_owned(),
            config,
            segments: Vec::new(),
            recovery_point,
            epochs: Vec::new(),
            dir_dirty: false,
            flushes: VecDeque::new(),
            tickets: Default::default(),
            flush_seq_front: 0,
            last_flush_ns: 0,
            recovery_point_written_ns: 0,
            fenced: None,
            recovery_point_writer,
            epochs_writer,
        };
        let mut seen_epochs: Vec<(u32, u64)> = Vec::new();
        let mut first_scanned: Option<u64> = None;
        let mut broken = false;
        for (i, &base) in bases.iter().enumerate() {
            let mut segment = Segment::new(dir, base);
            let follows = log.segments.last().is_none_or(|prev: &Segment| prev.end_offset == base);
            if broken || !follows {
                if !broken {
                    let end = log.segments.last().map_or(base, |prev| prev.end_offset);
                    let problem = format!(
                        "segment starts at offset {base} but the log before it ends at {end}"
                    );
                    report.problems.push(RecoveryProblem {
                        path: segment.log_path.clone(),
                        position: 0,
                        problem,
                    });
                }
                broken = true;
                remove_segment_files(storage, &segment)?;
                report.removed_segments.push(segment.log_path);
                log.dir_dirty = true;
                continue;
            }
            segment.size_bytes = storage.len(&segment.log_path)?;
            let next_base = bases.get(i + 1).copied();
            let trusted = match next_base.filter(|&next| {
                next <= recovery_point && next >= base && !log.config.verify_on_open
            }) {
                // Durable by the recovery point: trusted, not rescanned. Reads still
                // validate every batch they serve.
                Some(next) => trust(
                    storage,
                    &mut segment,
                    next,
                    log.config.index_interval_bytes,
                    saved_epochs.is_none(),
                    &mut seen_epochs,
                    &mut report,
                )?,
                None => false,
            };
            report.trusted_segments += u64::from(trusted);
            if !trusted {
                first_scanned.get_or_insert(base);
                // What it holds past the recovery point may sit only in a page cache
                // (a process restart, not a power loss): the first flush syncs it.
                segment.dirty = true;
                if let Some(problem) = scan(
                    storage,
                    &mut segment,
                    log.config.index_interval_bytes,
                    &mut seen_epochs,
                    &mut report,
                ) {
                    let file_len = storage.len(&segment.log_path)?;
                    report.truncated_bytes += file_len - segment.size_bytes;
                    storage.truncate(&segment.log_path, segment.size_bytes)?;
                    segment.dirty = true;
                    report.problems.push(problem);
                    broken = true;
                }
                if next_base.is_some() && !broken {
                    segment.write_index(storage)?;
                }
            }
            log.segments.push(segment);
        }
        if log.segments.is_empty() {
            let segment = Segment::new(dir, 0);
            storage.create(&segment.log_path)?;
            log.segments.push(segment);
            log.dir_dirty = true;
        }
        let end = log.end_offset();
        log.recovery_point = log.recovery_point.min(end);
        // The epoch cache: the saved one for what was not scanned, then what was seen.
        let scanned_from = first_scanned.unwrap_or(end);
        let mut epochs: Vec<(u32, u64)> = match &saved_epochs {
            Some(saved) => saved
                .iter()
                .copied()
                .filter(|&(_, start)| start < scanned_from && start < end)
                .collect(),
            None => Vec::new(),
        };
        for (epoch, start) in seen_epochs {
            if start < end && epochs.last().is_none_or(|&(latest, _)| epoch > latest) {
                epochs.push((epoch, start));
            }
        }
        log.epochs = epochs;
        if saved_epochs.as_deref() != Some(&log.epochs[..]) {
            log.write_epochs(storage)?;
        }
        Ok((log, report))
    }
}

fn read_recovery_point<S: Storage + ?Sized>(
    storage: &mut S,
    dir: &str,
    report: &mut RecoveryReport,
) -> u64 {
    let path = join(dir, RECOVERY_POINT_FILE);
    match checkpoint::read(storage, &path, CheckpointKind::RecoveryPoint) {
        Ok(None) => 0,
        Ok(Some(payload)) => checkpoint::payload_u64(&payload).unwrap_or_else(|| {
            let problem = "recovery point payload is not 8 bytes; scanning everything".to_owned();
            report.problems.push(RecoveryProblem { path, position: 0, problem });
            0
        }),
        Err(error) => {
            let problem = format!("{error}; scanning everything");
            report.problems.push(RecoveryProblem { path, position: 0, problem });
            0
        }
    }
}

fn read_epochs<S: Storage + ?Sized>(
    storage: &mut S,
    dir: &str,
    report: &mut RecoveryReport,
) -> Option<Vec<(u32, u64)>> {
    let path = join(dir, LEADER_EPOCHS_FILE);
    let payload = match checkpoint::read(storage, &path, CheckpointKind::LeaderEpochs) {
        Ok(payload) => payload.unwrap_or_default(),
        Err(error) => {
            report.problems.push(RecoveryProblem {
                path,
                position: 0,
                problem: format!("{error}; rebuilding"),
            });
            return None;
        }
    };
    if payload.len() % 12 != 0 {
        report.problems.push(RecoveryProblem {
            path,
            position: 0,
            problem: "bad epoch list; rebuilding".into(),
        });
        return None;
    }
    let epochs: Vec<(u32, u64)> = payload
        .chunks_exact(12)
        .map(|c| {
            (
                u32::from_le_bytes(c[..4].try_into().unwrap()),
                u64::from_le_bytes(c[4..].try_into().unwrap()),
            )
        })
        .collect();
    let increasing = epochs.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
    if !increasing {
        report.problems.push(RecoveryProblem {
            path,
            position: 0,
            problem: "epochs out of order; rebuilding".into(),
        });
        return None;
    }
    Some(epochs)
}

/// Takes a segment the recovery point vouches for, ending at offset `end`: loads (or
/// rebuilds) its index and finds where its data ends, cutting bytes after it (a
/// truncation that a crash undid). False if its batch headers do not lead to `end`:
/// then it must be scanned like any other.
fn trust<S: Storage + ?Sized>(
    storage: &mut S,
    segment: &mut Segment,
    end: u64,
    interval_bytes: u64,
    need_epochs: bool,
    epochs: &mut Vec<(u32, u64)>,
    report: &mut RecoveryReport,
) -> Result<bool, LogError> {
    segment.end_offset = end;
    let index = segment.load_index(storage);
    if index.is_none() || need_epochs {
        let walked = walk_headers(storage, segment, interval_bytes, epochs);
        segment.end_offset = end;
        if index.is_none() && walked {
            segment.write_index(storage)?;
            report.rebuilt_indexes.push(segment.index_path.clone());
        }
    }
    if let Some(index) = index {
        segment.index = index;
    }
    let Some(data_end) = data_end(storage, segment, end) else { return Ok(false) };
    if data_end < segment.size_bytes {
        let extra = segment.size_bytes - data_end;
        let problem = format!("{extra} bytes after the last batch (offset {end}) cut");
        report.problems.push(RecoveryProblem {
            path: segment.log_path.clone(),
            position: data_end,
            problem,
        });
        report.truncated_bytes += extra;
        storage.truncate(&segment.log_path, data_end)?;
        segment.size_bytes = data_end;
        segment.cut_index(data_end);
        segment.dirty = true;
    }
    Ok(true)
}

/// The byte position where the batch ending at offset `end` ends, following headers
/// from the last index entry; `None` if they do not lead there.
fn data_end<S: Storage + ?Sized>(storage: &mut S, segment: &Segment, end: u64) -> Option<u64> {
    let entry = segment.lookup(end.saturating_sub(1).max(segment.base_offset));
    let (mut position, mut expected) = (entry.position, entry.offset);
    let mut head = [0u8; HEADER_BYTES];
    while expected < end {
        crate::storage::read_exact_at(storage, &segment.log_path, position, &mut head).ok()?;
        let size = batch::peek_size(&head).ok()? as u64;
        let base = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let count = u64::from(u32::from_le_bytes(head[36..40].try_into().expect("4 bytes")));
        if base != expected || count == 0 || position + size > segment.size_bytes {
            return None;
        }
        position += size;
        expected = base + count;
    }
    (expected == end).then_some(position)
}

/// Validates a segment batch by batch from its start. Leaves the segment describing the
/// valid prefix and returns the first problem, if any.
fn scan<S: Storage + ?Sized>(
    storage: &mut S,
    segment: &mut Segment,
    interval_bytes: u64,
    epochs: &mut Vec<(u32, u64)>,
    report: &mut RecoveryReport,
) -> Option<RecoveryProblem> {
    let file_len = segment.size_bytes;
    segment.size_bytes = 0;
    segment.end_offset = segment.base_offset;
    segment.index.clear();
    segment.bytes_since_index = 0;
    let mut position = 0;
    let mut bytes = Vec::new();
    let mut ahead = ReadAhead::default();
    while position < file_len {
        let problem = |problem: String| {
            Some(RecoveryProblem { path: segment.log_path.clone(), position, problem })
        };
        match ahead.read_batch_at(storage, &segment.log_path, position, file_len, &mut bytes) {
            Ok(()) => {}
            Err(LogError::Corrupt { problem: detail, .. }) => return problem(detail),
            Err(error) => return problem(error.to_string()),
        };
        let header = match batch::validate(&bytes) {
            Ok(header) => header,
            Err(error) => return problem(error.to_string()),
        };
        if header.base_offset != segment.end_offset {
            return problem(format!(
                "batch has offset {}, expected {}",
                header.base_offset, segment.end_offset
            ));
        }
        if epochs.last().is_some_and(|&(latest, _)| header.leader_epoch < latest) {
            return problem(format!(
                "batch has leader epoch {} after epoch {}",
                header.leader_epoch,
                epochs.last().unwrap().0
            ));
        }
        if epochs.last().is_none_or(|&(latest, _)| header.leader_epoch > latest) {
            epochs.push((header.leader_epoch, header.base_offset));
        }
        segment.note_batch(
            header.base_offset,
            header.end_offset(),
            position,
            bytes.len() as u64,
            interval_bytes,
        );
        report.batches_scanned += 1;
        report.bytes_scanned += bytes.len() as u64;
        position += bytes.len() as u64;
    }
    None
}

/// Rebuilds the index and collects epochs of a trusted segment from batch headers alone
/// (no CRC: the recovery point vouches for it, and reads check each batch). Stops
/// quietly at anything odd. True if it walked the whole segment.
fn walk_headers<S: Storage + ?Sized>(
    storage: &mut S,
    segment: &mut Segment,
    interval_bytes: u64,
    epochs: &mut Vec<(u32, u64)>,
) -> bool {
    let file_len = segment.size_bytes;
    let mut index_segment = Segment::new("", segment.base_offset);
    let mut position = 0;
    let mut head = [0u8; HEADER_BYTES];
    while position < file_len {
        if crate::storage::read_exact_at(storage, &segment.log_path, position, &mut head).is_err() {
            return false;
        }
        let Ok(size) = batch::peek_size(&head) else { return false };
        let base = u64::from_le_bytes(head[..8].try_into().unwrap());
        let epoch = u32::from_le_bytes(head[18..22].try_into().unwrap());
        let count = u64::from(u32::from_le_bytes(head[36..40].try_into().unwrap()));
        if base != index_segment.end_offset || count == 0 || position + size as u64 > file_len {
            return false;
        }
        if epochs.last().is_none_or(|&(latest, _)| epoch > latest) {
            epochs.push((epoch, base));
        }
        index_segment.note_batch(base, base + count, position, size as u64, interval_bytes);
        position += size as u64;
    }
    segment.index = index_segment.index;
    true
}
