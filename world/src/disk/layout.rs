//! What a disk knows of the files its aimed faults strike.
//!
//! Most disk faults strike any file (bit rot, bad sectors, misdirected writes). The
//! aimed ones strike where a log breaks: the last record appended to a log file, one
//! field of a record's header, a named checkpoint file. Which files are logs and how
//! their records are framed is the harness's knowledge, not the world's: the harness
//! running a log on the disk describes it with a `DiskLayout`. A disk with
//! `DiskLayout::NONE` has no aimed targets, and aimed faults strike nothing.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

/// Where a disk's aimed faults (`DiskFault::TornTail`, `BatchHeader`, `Checkpoint`)
/// strike. Compared and printed by `name`.
#[derive(Clone, Copy)]
pub struct DiskLayout {
    /// Names the layout (in `Debug` output and comparisons).
    pub name: &'static str,
    /// The suffix of log files: append-only files of framed records. `None`: no file
    /// is a log.
    pub log_suffix: Option<&'static str>,
    /// The length (header included) of the record framed at the start of the bytes,
    /// or `None` when they do not start with a whole record.
    pub record_len: fn(&[u8]) -> Option<usize>,
    /// The bytes of a header field inside a record (empty: the records have no such
    /// field).
    pub header_field: fn(HeaderField) -> Range<usize>,
    /// The file name of a checkpoint (`None`: the log keeps no such file).
    pub checkpoint_file: fn(CheckpointFile) -> Option<&'static str>,
}

impl DiskLayout {
    /// No file is a log: aimed faults strike nothing.
    pub const NONE: DiskLayout = DiskLayout {
        name: "none",
        log_suffix: None,
        record_len: |_| None,
        header_field: |_| 0..0,
        checkpoint_file: |_| None,
    };

    /// Is the file at `path` a log file?
    pub fn is_log(&self, path: &str) -> bool {
        self.log_suffix.is_some_and(|suffix| path.ends_with(suffix))
    }

    /// Where each whole record of a log's bytes starts, following the frames from the
    /// start up to the first that is not a whole record.
    pub fn record_starts(&self, log: &[u8]) -> Vec<usize> {
        let mut starts = Vec::new();
        let mut at = 0;
        while let Some(len) = (self.record_len)(&log[at..]) {
            if len == 0 || at + len > log.len() {
                break;
            }
            starts.push(at);
            at += len;
        }
        starts
    }
}

impl Default for DiskLayout {
    fn default() -> Self {
        DiskLayout::NONE
    }
}

impl fmt::Debug for DiskLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DiskLayout({})", self.name)
    }
}

impl PartialEq for DiskLayout {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for DiskLayout {}

/// A field of a record batch header, as Kafka's v2 format has them (a harness's
/// `DiskLayout` says where each lies in its own records).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)] // the names are the format's
pub enum HeaderField {
    BaseOffset,
    Length,
    Crc,
    Magic,
    Attributes,
    /// Outside the CRC in Kafka's format (the leader stamps it).
    LeaderEpoch,
    ProducerId,
    ProducerEpoch,
    BaseSequence,
    RecordCount,
    FirstTimestamp,
    MaxTimestamp,
}

impl HeaderField {
    /// Every field, in header order.
    pub const ALL: [HeaderField; 12] = [
        HeaderField::BaseOffset,
        HeaderField::Length,
        HeaderField::Crc,
        HeaderField::Magic,
        HeaderField::Attributes,
        HeaderField::LeaderEpoch,
        HeaderField::ProducerId,
        HeaderField::ProducerEpoch,
        HeaderField::BaseSequence,
        HeaderField::RecordCount,
        HeaderField::FirstTimestamp,
        HeaderField::MaxTimestamp,
    ];

    /// The field's name, as scenario and schedule files write it.
    pub fn name(self) -> &'static str {
        const NAMES: [&str; 12] = [
            "base-offset",
            "length",
            "crc",
            "magic",
            "attributes",
            "leader-epoch",
            "producer-id",
            "producer-epoch",
            "base-sequence",
            "record-count",
            "first-timestamp",
            "max-timestamp",
        ];
        NAMES[self as usize]
    }
}

/// A checkpoint file of a partition's log directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckpointFile {
    /// The leader-epoch cache.
    LeaderEpochs,
    /// How far the log is known durable.
    RecoveryPoint,
    /// The partition's high watermark.
    HighWatermark,
}

impl CheckpointFile {
    /// Every checkpoint file.
    pub const ALL: [CheckpointFile; 3] = [
        CheckpointFile::LeaderEpochs,
        CheckpointFile::RecoveryPoint,
        CheckpointFile::HighWatermark,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serde_spelling_in_order() {
        for (index, field) in HeaderField::ALL.into_iter().enumerate() {
            assert_eq!(field as usize, index);
            let spelled =
                serde::de::value::StrDeserializer::<serde::de::value::Error>::new(field.name());
            assert_eq!(HeaderField::deserialize(spelled), Ok(field));
        }
    }

    #[test]
    fn record_starts_follow_the_frames_and_stop_at_a_partial_one() {
        // Records framed by their first byte: the length of the whole record.
        let layout = DiskLayout {
            record_len: |bytes| bytes.first().map(|&len| len as usize),
            ..DiskLayout::NONE
        };
        assert_eq!(layout.record_starts(&[2, 0, 3, 0, 0, 9, 0]), vec![0, 2]);
        assert_eq!(layout.record_starts(&[]), Vec::<usize>::new());
        assert_eq!(layout.record_starts(&[0, 1]), Vec::<usize>::new());
        assert!(!DiskLayout::NONE.is_log("p0/0.log"));
    }
}
