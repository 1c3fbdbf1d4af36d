//! Checkpoint files: small values (a high watermark, a recovery point, a leader-epoch
//! cache) replaced atomically by write-temp, sync, rename, sync-directory.
//!
//! Layout: magic `LJCP` (4) · version 1 (1) · kind (1) · payload length (4) · payload ·
//! CRC-32C of everything before it (4). A checkpoint that fails any check is reported,
//! never half-trusted.

use thiserror::Error;

use crate::storage::{Storage, StorageError, SyncResult, SyncTicket, parent};

const MAGIC: &[u8; 4] = b"LJCP";
const VERSION: u8 = 1;
/// A checkpoint is small by nature; anything larger is garbage.
pub const CHECKPOINT_BYTES_MAX: usize = 1 << 20;

/// What a checkpoint holds; stored in the file so one is never read as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointKind {
    RecoveryPoint = 1,
    HighWatermark = 2,
    LeaderEpochs = 3,
    /// The controller's metadata.
    Metadata = 4,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CheckpointError {
    #[error("{path}: {0}", path = .1)]
    Storage(StorageError, String),
    #[error("{path}: corrupt checkpoint: {problem}")]
    Corrupt { path: String, problem: String },
}

pub fn encode(kind: CheckpointKind, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() + 14 <= CHECKPOINT_BYTES_MAX, "checkpoint payload too large");
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The payload of a checkpoint of `kind`, or what is wrong with the bytes.
pub fn decode(kind: CheckpointKind, bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < 14 {
        return Err(format!("{} bytes is shorter than any checkpoint", bytes.len()));
    }
    if &bytes[..4] != MAGIC {
        return Err("bad magic".to_owned());
    }
    if bytes[4] != VERSION {
        return Err(format!("unknown version {}", bytes[4]));
    }
    if bytes[5] != kind as u8 {
        return Err(format!("holds kind {}, expected {}", bytes[5], kind as u8));
    }
    let length = u32::from_le_bytes(bytes[6..10].try_into().expect("4 bytes")) as usize;
    if bytes.len() != 14 + length {
        return Err(format!(
            "payload length {length} does not match the file size {}",
            bytes.len()
        ));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err("crc mismatch".to_owned());
    }
    Ok(&body[10..])
}

/// Reads a checkpoint: `Ok(None)` if there is none.
pub fn read<S: Storage + ?Sized>(
    storage: &mut S,
    path: &str,
    kind: CheckpointKind,
) -> Result<Option<Vec<u8>>, CheckpointError> {
    if !storage.exists(path) {
        return Ok(None);
    }
    let len = storage.len(path).map_err(|e| CheckpointError::Storage(e, path.to_owned()))? as usize;
    if len > CHECKPOINT_BYTES_MAX {
        return Err(CheckpointError::Corrupt {
            path: path.to_owned(),
            problem: format!("{len} bytes is too large"),
        });
    }
    let mut bytes = vec![0; len];
    crate::storage::read_exact_at(storage, path, 0, &mut bytes)
        .map_err(|e| CheckpointError::Storage(e, path.to_owned()))?;
    decode(kind, &bytes)
        .map(|payload| Some(payload.to_vec()))
        .map_err(|problem| CheckpointError::Corrupt { path: path.to_owned(), problem })
}

/// Encodes a `u64` payload.
pub fn u64_payload(value: u64) -> Vec<u8> {
    value.to_le_bytes().to_vec()
}

/// Decodes a `u64` payload.
pub fn payload_u64(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.try_into().ok()?))
}

#[derive(Debug)]
enum Step {
    Idle,
    /// The temp file is written; waiting for its sync.
    TempSynced(SyncTicket),
    /// Renamed into place; waiting for the directory's sync.
    DirSynced(SyncTicket),
}

/// Writes one checkpoint file through its four steps, sans-IO: `write` starts, each
/// `on_synced` takes it a step further. A write asked for while one is under way
/// replaces any queued one (only the newest value matters).
#[derive(Debug)]
pub struct CheckpointWriter {
    path: String,
    temp: String,
    kind: CheckpointKind,
    step: Step,
    queued: Option<Vec<u8>>,
    /// The payload most recently made durable.
    durable: Option<Vec<u8>>,
    in_progress: Option<Vec<u8>>,
}

impl CheckpointWriter {
    pub fn new(path: String, kind: CheckpointKind) -> CheckpointWriter {
        let temp = format!("{path}.tmp");
        CheckpointWriter {
            path,
            temp,
            kind,
            step: Step::Idle,
            queued: None,
            durable: None,
            in_progress: None,
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The last payload known durable.
    pub fn durable(&self) -> Option<&[u8]> {
        self.durable.as_deref()
    }

    /// Starts writing `payload` (or queues it behind the write under way).
    pub fn write<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        payload: Vec<u8>,
    ) -> Result<(), StorageError> {
        match self.step {
            Step::Idle => self.start(storage, payload),
            _ => {
                self.queued = Some(payload);
                Ok(())
            }
        }
    }

    fn start<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        payload: Vec<u8>,
    ) -> Result<(), StorageError> {
        if storage.exists(&self.temp) {
            storage.remove(&self.temp)?;
        }
        storage.create(&self.temp)?;
        storage.append(&self.temp, &encode(self.kind, &payload))?;
        self.step = Step::TempSynced(storage.sync(&self.temp));
        self.in_progress = Some(payload);
        Ok(())
    }

    /// True if `ticket` is one this writer waits for.
    pub fn owns(&self, ticket: SyncTicket) -> bool {
        matches!(self.step, Step::TempSynced(t) | Step::DirSynced(t) if t == ticket)
    }

    /// Takes the write a step further. An error fails the write; the caller must treat
    /// the checkpoint as unwritten (and, after a failed sync, stop trusting the disk).
    pub fn on_synced<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        ticket: SyncTicket,
        result: SyncResult,
    ) -> Result<(), StorageError> {
        debug_assert!(self.owns(ticket));
        if let Err(error) = result {
            self.step = Step::Idle;
            return Err(error);
        }
        match self.step {
            Step::TempSynced(_) => {
                storage.rename(&self.temp, &self.path)?;
                self.step = Step::DirSynced(storage.sync(parent(&self.path)));
                Ok(())
            }
            Step::DirSynced(_) => {
                self.step = Step::Idle;
                self.durable = self.in_progress.take();
                match self.queued.take() {
                    Some(payload) => self.start(storage, payload),
                    None => Ok(()),
                }
            }
            Step::Idle => unreachable!("owns() checked the ticket"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_refuses_every_kind_of_damage() {
        let good = encode(CheckpointKind::HighWatermark, &u64_payload(77));
        assert_eq!(payload_u64(decode(CheckpointKind::HighWatermark, &good).unwrap()), Some(77));
        let cases: Vec<(Vec<u8>, CheckpointKind, &str)> = vec![
            (good[..10].to_vec(), CheckpointKind::HighWatermark, "shorter than any checkpoint"),
            (good.clone(), CheckpointKind::RecoveryPoint, "holds kind 2, expected 1"),
            ([b"XXXX", &good[4..]].concat(), CheckpointKind::HighWatermark, "bad magic"),
            (
                [&good[..], &[0]].concat(),
                CheckpointKind::HighWatermark,
                "does not match the file size",
            ),
        ];
        for (bytes, kind, expected) in cases {
            let problem = decode(kind, &bytes).unwrap_err();
            assert!(problem.contains(expected), "{problem}");
        }
        for byte in 0..good.len() {
            let mut bad = good.clone();
            bad[byte] ^= 0x10;
            assert!(
                decode(CheckpointKind::HighWatermark, &bad).is_err(),
                "flip in byte {byte} unnoticed"
            );
        }
    }
}
