//! The seam between the world's disk and the broker's storage: the world knows nothing
//! of the broker (it depends on no crate of ours), so the harness adapts a node's
//! `SimDisk` to the broker's `Storage` trait, and tells the disk how the broker's log
//! files look so that the aimed disk faults strike where logs break.

use std::borrow::BorrowMut;
use std::ops::Range;

use logjam_broker::batch::{HEADER_BYTES, HEADER_FIELDS};
use logjam_broker::storage::{Storage, StorageError, SyncResult, SyncTicket};

use crate::{CheckpointFile, DiskConfig, DiskError, DiskLayout, HeaderField, SimDisk};

/// A node's disk seen as the broker's `Storage`: `&mut LogDisk(ctx.disk())` is what the
/// broker, the controller, the coordinator and the event store's nodes are handed
/// (borrowed), and `LogDisk(SimDisk::new(..))` a test's own disk (owned).
pub struct LogDisk<D: BorrowMut<SimDisk> = SimDisk>(pub D);

impl<D: BorrowMut<SimDisk>> LogDisk<D> {
    /// Every sync asked for completes now, in ticket order, with the broker's types
    /// (`SimDisk::complete_all_syncs`; for tests that drive a log without a world).
    pub fn complete_all_syncs(&mut self) -> Vec<(SyncTicket, SyncResult)> {
        let done = self.0.borrow_mut().complete_all_syncs();
        done.into_iter()
            .map(|(ticket, result)| (sync_ticket(ticket), sync_result(result)))
            .collect()
    }
}

/// The disk's own operations (faults, crashes, contents) stay at hand through the adapter.
impl<D: BorrowMut<SimDisk>> std::ops::Deref for LogDisk<D> {
    type Target = SimDisk;

    fn deref(&self) -> &SimDisk {
        self.0.borrow()
    }
}

impl<D: BorrowMut<SimDisk>> std::ops::DerefMut for LogDisk<D> {
    fn deref_mut(&mut self) -> &mut SimDisk {
        self.0.borrow_mut()
    }
}

/// The broker's log directory as the aimed disk faults see it: segments end in `.log`,
/// batches are framed by their length field, header fields lie where
/// `batch::HEADER_FIELDS` puts them, checkpoints have the broker's file names.
pub const BROKER_LAYOUT: DiskLayout = DiskLayout {
    name: "logjam-broker",
    log_suffix: Some(".log"),
    record_len: batch_len,
    header_field,
    checkpoint_file,
};

/// The disk a node of the simulated cluster runs on: the default disk, laid out as the
/// broker's.
pub fn broker_disk_config() -> DiskConfig {
    DiskConfig { layout: BROKER_LAYOUT, ..DiskConfig::default() }
}

/// The length of the batch framed at the start of `bytes` (its length field counts the
/// bytes after the first 12), if a whole header is there and frames at least itself.
fn batch_len(bytes: &[u8]) -> Option<usize> {
    let header = bytes.get(..HEADER_BYTES)?;
    let length = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    let size = 12 + length as usize;
    (size >= HEADER_BYTES).then_some(size)
}

fn header_field(field: HeaderField) -> Range<usize> {
    HEADER_FIELDS[field as usize].1.clone()
}

fn checkpoint_file(file: CheckpointFile) -> Option<&'static str> {
    Some(match file {
        CheckpointFile::LeaderEpochs => logjam_broker::log::LEADER_EPOCHS_FILE,
        CheckpointFile::RecoveryPoint => logjam_broker::log::RECOVERY_POINT_FILE,
        CheckpointFile::HighWatermark => logjam_broker::broker::HIGH_WATERMARK_FILE,
    })
}

/// The broker's error for the disk's: the same cases, the same words.
pub fn storage_error(error: DiskError) -> StorageError {
    match error {
        DiskError::NotFound { path } => StorageError::NotFound { path },
        DiskError::AlreadyExists { path } => StorageError::AlreadyExists { path },
        DiskError::NoSpace { path } => StorageError::NoSpace { path },
        DiskError::Io { path, offset, detail } => StorageError::Io { path, offset, detail },
        DiskError::Invalid { path, detail } => StorageError::Invalid { path, detail },
    }
}

/// The broker's ticket for the world's.
pub fn sync_ticket(ticket: crate::SyncTicket) -> SyncTicket {
    SyncTicket(ticket.0)
}

/// The broker's sync result for the world's.
pub fn sync_result(result: crate::SyncResult) -> SyncResult {
    result.map_err(storage_error)
}

impl<D: BorrowMut<SimDisk>> Storage for LogDisk<D> {
    fn create_dir(&mut self, dir: &str) -> Result<(), StorageError> {
        self.0.borrow_mut().create_dir(dir).map_err(storage_error)
    }

    fn create(&mut self, path: &str) -> Result<(), StorageError> {
        self.0.borrow_mut().create(path).map_err(storage_error)
    }

    fn append(&mut self, path: &str, bytes: &[u8]) -> Result<u64, StorageError> {
        self.0.borrow_mut().append(path, bytes).map_err(storage_error)
    }

    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        self.0.borrow_mut().read_at(path, offset, buf).map_err(storage_error)
    }

    fn len(&mut self, path: &str) -> Result<u64, StorageError> {
        self.0.borrow_mut().len(path).map_err(storage_error)
    }

    fn truncate(&mut self, path: &str, len: u64) -> Result<(), StorageError> {
        self.0.borrow_mut().truncate(path, len).map_err(storage_error)
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        self.0.borrow_mut().rename(from, to).map_err(storage_error)
    }

    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.0.borrow_mut().remove(path).map_err(storage_error)
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError> {
        self.0.borrow_mut().list(dir).map_err(storage_error)
    }

    fn exists(&mut self, path: &str) -> bool {
        self.0.borrow_mut().exists(path)
    }

    fn sync(&mut self, path: &str) -> SyncTicket {
        sync_ticket(self.0.borrow_mut().sync(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_are_the_brokers_own_by_name_and_in_order() {
        // `header_field` indexes the broker's table by the variant's position: the name
        // files spell must be the broker's name at that position.
        assert_eq!(HeaderField::ALL.len(), HEADER_FIELDS.len());
        for (index, field) in HeaderField::ALL.into_iter().enumerate() {
            assert_eq!(field as usize, index);
            assert_eq!(HEADER_FIELDS[index].0, field.name(), "{field:?}");
            let spelled = serde_json::to_value(field).unwrap();
            assert_eq!(spelled.as_str(), Some(field.name()), "{field:?}");
        }
        let epoch: HeaderField = serde_json::from_str("\"leader-epoch\"").unwrap();
        assert_eq!(header_field(epoch), 18..22);
    }

    #[test]
    fn batches_frame_by_their_length_field() {
        let mut bytes = vec![0u8; 2 * HEADER_BYTES];
        let length = (HEADER_BYTES - 12) as u32;
        bytes[8..12].copy_from_slice(&length.to_le_bytes());
        bytes[HEADER_BYTES + 8..HEADER_BYTES + 12].copy_from_slice(&length.to_le_bytes());
        assert_eq!(BROKER_LAYOUT.record_starts(&bytes), vec![0, HEADER_BYTES]);
        // A length that frames less than a header is no batch; a cut header neither.
        bytes[HEADER_BYTES + 8..HEADER_BYTES + 12].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(BROKER_LAYOUT.record_starts(&bytes), vec![0]);
        assert_eq!(BROKER_LAYOUT.record_starts(&bytes[..HEADER_BYTES - 1]), Vec::<usize>::new());
    }
}
