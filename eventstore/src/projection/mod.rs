//! Projections: a read model folded from a partition's records in offset order, and
//! checkpointed together with the offset it has applied up to, atomically, in the
//! projection's own storage.
//!
//! The checkpoint is one file holding `(next offset, read model)`, replaced with the
//! broker's `CheckpointWriter` (write temp, sync, rename, sync directory; sans-IO: the
//! caller hands each sync completion to `on_synced`). After a crash, `open` restores the
//! last durable pair and the consumer resumes at its offset: every record is in the
//! model exactly once, whatever the crash point. Records below the offset (a consumer
//! that re-delivers) are ignored.
//!
//! `broken_checkpoint_order` (test-only: it exists so tests and the simulator can show
//! the bug the correct order prevents; never set it anywhere else) writes the read
//! model and the offset as two checkpoints, the offset only after the model is durable.
//! A crash between the two restores a model that already counts records the restored
//! offset says are still to come: they are counted twice.

mod read_models;

use crate::store::base_stream;

#[cfg(test)]
mod mem_storage;
#[cfg(test)]
mod tests;

pub use read_models::{BankBalances, OpenCarts, StockAvailable, TableRows};

use logjam_broker::checkpoint::{
    self, CHECKPOINT_BYTES_MAX, CheckpointError, CheckpointKind, CheckpointWriter,
};
use logjam_broker::storage::{Storage, StorageError, SyncResult, SyncTicket, join};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::envelope::{EnvelopeRef, decode_ref};
use crate::schema::{FoldError, decode_payload, encode_payload};

/// The broker's checkpoint kinds are a closed set; a projection's files live in its own
/// storage, so it stores them under `Metadata`, with a tag of its own inside.
pub const PROJECTION_CHECKPOINT_KIND: CheckpointKind = CheckpointKind::Metadata;
/// The read model of a projection, encoded, must fit one checkpoint.
pub const READ_MODEL_BYTES_MAX: usize = CHECKPOINT_BYTES_MAX - 64;
const TAG: &[u8; 4] = b"LJPJ";

/// A read model: a fold of the events of the streams it wants, in offset order.
pub trait ReadModel: Default + Clone + Serialize + DeserializeOwned {
    /// Whether the events of `stream` go into this model (others are passed over).
    fn wants(stream: &str) -> bool;
    /// Folds one event in. An event the model cannot take (one that breaks the
    /// domain's invariants) is an error, never skipped.
    fn apply(
        &mut self,
        stream: &str,
        offset: u64,
        envelope: EnvelopeRef<'_>,
    ) -> Result<(), FoldError>;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectionConfig {
    /// The directory of the projection's checkpoint files in its storage.
    pub dir: String,
    /// Test-only: the broken variant (model, then offset, as two checkpoints). See the
    /// module doc.
    pub broken_checkpoint_order: bool,
}

impl ProjectionConfig {
    pub fn new(dir: &str) -> ProjectionConfig {
        ProjectionConfig { dir: dir.to_owned(), broken_checkpoint_order: false }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{path}: {detail}")]
    Corrupt { path: String, detail: String },
    #[error(transparent)]
    Fold(#[from] FoldError),
    #[error("offset {offset}: record key is not a stream name")]
    BadKey { offset: u64 },
    #[error("read model of {size_bytes} bytes exceeds the {READ_MODEL_BYTES_MAX}-byte limit")]
    ModelTooLarge { size_bytes: usize },
}

/// What the single checkpoint file holds (correct order).
#[derive(Serialize, Deserialize)]
struct Body<R> {
    next_offset: u64,
    model: R,
}

/// A projection: its read model, the offset it has applied up to, and its checkpoint
/// writers.
pub struct Projection<R> {
    model: R,
    /// The next offset to apply: every record below it is in `model`.
    next_offset: u64,
    broken: bool,
    /// Correct order: `(next_offset, model)`. Broken order: the model alone.
    writer: CheckpointWriter,
    /// Broken order only: the offset, written after the model is durable.
    offset_writer: CheckpointWriter,
    /// Broken order only: the offsets of the model write under way and of the one
    /// queued behind it, each written once its model is durable.
    offset_in_flight: Option<u64>,
    offset_queued: Option<u64>,
    /// Broken order only: successful syncs of the model writer; a write takes two
    /// (the temp file, then the directory), so an even count means one just finished.
    model_syncs: u64,
}

impl<R: ReadModel> Projection<R> {
    /// Opens the projection from what its storage durably holds (empty if nothing).
    pub fn open<S: Storage + ?Sized>(
        storage: &mut S,
        config: &ProjectionConfig,
    ) -> Result<Projection<R>, ProjectionError> {
        storage.create_dir(&config.dir)?;
        let model_path = join(&config.dir, "projection.ckpt");
        let offset_path = join(&config.dir, "offset.ckpt");
        let (model, next_offset) = if config.broken_checkpoint_order {
            let model = read_tagged::<S, R>(storage, &model_path)?.unwrap_or_default();
            let offset = read_tagged::<S, u64>(storage, &offset_path)?.unwrap_or(0);
            (model, offset)
        } else {
            match read_tagged::<S, Body<R>>(storage, &model_path)? {
                Some(body) => (body.model, body.next_offset),
                None => (R::default(), 0),
            }
        };
        Ok(Projection {
            model,
            next_offset,
            broken: config.broken_checkpoint_order,
            writer: CheckpointWriter::new(model_path, PROJECTION_CHECKPOINT_KIND),
            offset_writer: CheckpointWriter::new(offset_path, PROJECTION_CHECKPOINT_KIND),
            offset_in_flight: None,
            offset_queued: None,
            model_syncs: 0,
        })
    }

    pub fn model(&self) -> &R {
        &self.model
    }

    /// Where the consumer should read from.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Applies the record at `offset` (key: the stream name; value: an envelope).
    /// Returns false for a record below `next_offset`, already in the model.
    pub fn apply(
        &mut self,
        offset: u64,
        key: &[u8],
        value: &[u8],
    ) -> Result<bool, ProjectionError> {
        if offset < self.next_offset {
            return Ok(false);
        }
        let stream = std::str::from_utf8(key).map_err(|_| ProjectionError::BadKey { offset })?;
        // Snapshots sit next to their streams, under their own names: not events.
        if R::wants(stream) && base_stream(stream) == stream {
            let envelope = decode_ref(value).map_err(|error| FoldError::Envelope {
                stream: stream.to_owned(),
                offset,
                error,
            })?;
            self.model.apply(stream, offset, envelope)?;
        }
        self.next_offset = offset + 1;
        Ok(true)
    }

    /// Starts checkpointing the model at `next_offset` (or queues it behind the write
    /// under way; only the newest matters).
    pub fn checkpoint<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
    ) -> Result<(), ProjectionError> {
        if self.broken {
            self.writer.write(storage, tagged(&self.model)?)?;
            match self.offset_in_flight {
                None => self.offset_in_flight = Some(self.next_offset),
                Some(_) => self.offset_queued = Some(self.next_offset),
            }
        } else {
            let body = Body { next_offset: self.next_offset, model: &self.model };
            self.writer.write(storage, tagged(&body)?)?;
        }
        Ok(())
    }

    /// True if `ticket` is a sync this projection waits for.
    pub fn owns(&self, ticket: SyncTicket) -> bool {
        self.writer.owns(ticket) || self.offset_writer.owns(ticket)
    }

    /// Takes a checkpoint write a step further. An error fails the write: the durable
    /// checkpoint is the previous one.
    pub fn on_synced<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        ticket: SyncTicket,
        result: SyncResult,
    ) -> Result<(), ProjectionError> {
        if self.offset_writer.owns(ticket) {
            return Ok(self.offset_writer.on_synced(storage, ticket, result)?);
        }
        assert!(self.writer.owns(ticket), "{ticket} is not this projection's");
        if !self.broken {
            return Ok(self.writer.on_synced(storage, ticket, result)?);
        }
        if let Err(error) = self.writer.on_synced(storage, ticket, result) {
            (self.offset_in_flight, self.offset_queued, self.model_syncs) = (None, None, 0);
            return Err(error.into());
        }
        self.model_syncs += 1;
        if self.model_syncs % 2 == 0 {
            // The broken order: the model is durable; only now, separately, its offset.
            let offset = self.offset_in_flight.take().expect("a model write under way");
            self.offset_writer.write(storage, tagged(&offset)?)?;
            self.offset_in_flight = self.offset_queued.take();
        }
        Ok(())
    }
}

fn tagged<T: Serialize>(value: &T) -> Result<Vec<u8>, ProjectionError> {
    let mut out = TAG.to_vec();
    out.extend_from_slice(&encode_payload(value));
    if out.len() > READ_MODEL_BYTES_MAX {
        return Err(ProjectionError::ModelTooLarge { size_bytes: out.len() });
    }
    Ok(out)
}

fn read_tagged<S: Storage + ?Sized, T: DeserializeOwned>(
    storage: &mut S,
    path: &str,
) -> Result<Option<T>, ProjectionError> {
    let Some(payload) = checkpoint::read(storage, path, PROJECTION_CHECKPOINT_KIND)? else {
        return Ok(None);
    };
    let corrupt = |detail: String| ProjectionError::Corrupt { path: path.to_owned(), detail };
    let body = payload
        .strip_prefix(TAG)
        .ok_or_else(|| corrupt("not a projection checkpoint".to_owned()))?;
    decode_payload(body).map(Some).map_err(corrupt)
}
