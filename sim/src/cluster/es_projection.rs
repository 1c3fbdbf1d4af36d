//! A projection as a process: it reads one partition's committed records from the
//! brokers (`PartitionReader`), folds them into a read model (bank: balances per
//! account; table: the rows of every table, a CDC replica), and checkpoints (next
//! offset, read model) atomically on its own disk after every batch it applies. A
//! crash loses what was not synced; the restart resumes from the durable checkpoint.
//! Every checkpoint it asks for, and every one it restores, is recorded for the
//! model's projection-equivalence check.

use logjam_broker::protocol::{Isolation, Msg};
use logjam_broker::storage::{SyncResult, SyncTicket};
use logjam_eventstore::projection::{
    BankBalances, Projection, ProjectionConfig, ProjectionError, ReadModel, TableRows,
};
use logjam_eventstore::reader::{PartitionReader, ReaderConfig};
use logjam_model::es::ProjectionCheckpoint;

use crate::es_client::SharedEsRecorder;
use crate::{LogDisk, SimDisk};

/// A projection of some read model, its type erased: what the projection node asks
/// of it. Every `Projection<R>` is one (`Typed`); a domain's projection is opened by
/// its [`OpenProjection`].
pub trait ProjectionModel {
    /// The next offset to apply.
    fn next_offset(&self) -> u64;
    /// Applies a record (false: below the next offset, already in).
    fn apply(&mut self, offset: u64, key: &[u8], value: &[u8]) -> Result<bool, ProjectionError>;
    /// Starts checkpointing (next offset, read model).
    fn checkpoint(&mut self, disk: &mut LogDisk<&mut SimDisk>) -> Result<(), ProjectionError>;
    /// Whether the sync `ticket` is one of its checkpoint writes.
    fn owns(&self, ticket: SyncTicket) -> bool;
    /// Takes a checkpoint write a step further.
    fn on_synced(
        &mut self,
        disk: &mut LogDisk<&mut SimDisk>,
        ticket: SyncTicket,
        result: SyncResult,
    ) -> Result<(), ProjectionError>;
    /// The read model as the model's checks read it (`ProjectionCheckpoint::read_model`).
    fn json(&self) -> serde_json::Value;
}

/// How a domain's projection opens from what its disk durably holds.
pub type OpenProjection = fn(
    &mut LogDisk<&mut SimDisk>,
    &ProjectionConfig,
) -> Result<Box<dyn ProjectionModel>, ProjectionError>;

/// A `Projection<R>` with the way its read model is shown to the model's checks.
pub struct Typed<R> {
    projection: Projection<R>,
    json: fn(&R) -> serde_json::Value,
}

impl<R: ReadModel + 'static> Typed<R> {
    /// Opens `Projection<R>` from `disk`, shown to the checks by `json`.
    pub fn open(
        disk: &mut LogDisk<&mut SimDisk>,
        config: &ProjectionConfig,
        json: fn(&R) -> serde_json::Value,
    ) -> Result<Box<dyn ProjectionModel>, ProjectionError> {
        let projection = Projection::<R>::open(disk, config)?;
        Ok(Box::new(Typed { projection, json }))
    }
}

impl<R: ReadModel> ProjectionModel for Typed<R> {
    fn next_offset(&self) -> u64 {
        self.projection.next_offset()
    }

    fn apply(&mut self, offset: u64, key: &[u8], value: &[u8]) -> Result<bool, ProjectionError> {
        self.projection.apply(offset, key, value)
    }

    fn checkpoint(&mut self, disk: &mut LogDisk<&mut SimDisk>) -> Result<(), ProjectionError> {
        self.projection.checkpoint(disk)
    }

    fn owns(&self, ticket: SyncTicket) -> bool {
        self.projection.owns(ticket)
    }

    fn on_synced(
        &mut self,
        disk: &mut LogDisk<&mut SimDisk>,
        ticket: SyncTicket,
        result: SyncResult,
    ) -> Result<(), ProjectionError> {
        self.projection.on_synced(disk, ticket, result)
    }

    fn json(&self) -> serde_json::Value {
        (self.json)(self.projection.model())
    }
}

/// The bank's projection: stream to balance.
pub fn open_bank_balances(
    disk: &mut LogDisk<&mut SimDisk>,
    config: &ProjectionConfig,
) -> Result<Box<dyn ProjectionModel>, ProjectionError> {
    Typed::<BankBalances>::open(disk, config, |model| {
        serde_json::to_value(&model.balances).expect("serializes")
    })
}

/// The table domain's CDC replica: table stream to {key: value}.
pub fn open_table_rows(
    disk: &mut LogDisk<&mut SimDisk>,
    config: &ProjectionConfig,
) -> Result<Box<dyn ProjectionModel>, ProjectionError> {
    Typed::<TableRows>::open(disk, config, |model| {
        let tables: serde_json::Map<String, serde_json::Value> = model
            .tables
            .iter()
            .map(|(stream, table)| {
                let rows = table
                    .rows
                    .iter()
                    .map(|(key, value)| (key.to_string(), serde_json::Value::from(*value)))
                    .collect();
                (stream.clone(), serde_json::Value::Object(rows))
            })
            .collect();
        serde_json::Value::Object(tables)
    })
}

/// A projection as a process's state machine: a reader of one partition, the domain's
/// projection it feeds, and what it recorded (sans-IO: the cluster process carries its
/// messages and syncs).
pub struct ProjectionNode {
    node: u32,
    partition: u32,
    /// It reads uncommitted (the weak setup): recorded with every checkpoint.
    read_uncommitted: bool,
    projection: Box<dyn ProjectionModel>,
    reader: PartitionReader,
    recorder: SharedEsRecorder,
    /// Why it stopped (a record it could not apply, a failed checkpoint write).
    halted: Option<String>,
}

impl ProjectionNode {
    /// Opens the projection (`open`: the domain's) from what its disk durably holds and
    /// resumes after it.
    pub fn open(
        disk: &mut LogDisk<&mut SimDisk>,
        node: u32,
        open: OpenProjection,
        reader: ReaderConfig,
        recorder: SharedEsRecorder,
        t_ns: u64,
    ) -> Result<ProjectionNode, String> {
        let config = ProjectionConfig::new("projection");
        let projection = open(disk, &config).map_err(|error| format!("projection: {error}"))?;
        let partition = reader.partition;
        let read_uncommitted = reader.isolation == Isolation::ReadUncommitted;
        let reader = PartitionReader::new(reader, projection.next_offset());
        let node = ProjectionNode {
            node,
            partition,
            read_uncommitted,
            projection,
            reader,
            recorder,
            halted: None,
        };
        *node.recorder.borrow_mut().projection_opens.entry(node.node).or_insert(0) += 1;
        node.record(t_ns);
        Ok(node)
    }

    /// Why it stopped, if it did: a record it could not apply, or a failed checkpoint.
    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    fn record(&self, t_ns: u64) {
        self.recorder.borrow_mut().projections.push(ProjectionCheckpoint {
            consumer: self.node,
            t_ns,
            partition: self.partition,
            offset: self.projection.next_offset(),
            read_model: self.projection.json(),
            read_uncommitted: self.read_uncommitted,
        });
    }

    /// Takes the messages to send, as (node, message).
    pub fn drain_outbox(&mut self) -> Vec<(u32, Msg)> {
        self.reader.drain_outbox().collect()
    }

    /// The passing of time on the node's clock: the reader's polls and timeouts
    /// (nothing once halted).
    pub fn tick(&mut self, now_ns: u64) {
        if self.halted.is_none() {
            self.reader.tick(now_ns);
        }
    }

    /// A message from the cluster: records the reader got are applied, and a batch that
    /// applied something new is checkpointed to `disk` and recorded at world time
    /// `t_ns` (`now_ns` is the node's clock).
    pub fn handle(&mut self, disk: &mut LogDisk<&mut SimDisk>, now_ns: u64, t_ns: u64, msg: &Msg) {
        if self.halted.is_some() || !self.reader.handle(now_ns, msg) {
            return;
        }
        let mut applied = false;
        for (offset, key, value) in self.reader.drain_records() {
            match self.projection.apply(offset, &key, &value) {
                Ok(fresh) => applied |= fresh,
                Err(error) => {
                    self.halted = Some(format!("offset {offset}: {error}"));
                    return;
                }
            }
        }
        if applied {
            if let Err(error) = self.projection.checkpoint(disk) {
                self.halted = Some(format!("checkpoint: {error}"));
                return;
            }
            self.record(t_ns);
        }
    }

    /// A sync ended: if it is one of the checkpoint's writes, the checkpoint goes a
    /// step further (a failed one halts the projection).
    pub fn on_synced(
        &mut self,
        disk: &mut LogDisk<&mut SimDisk>,
        ticket: SyncTicket,
        result: SyncResult,
    ) {
        if !self.projection.owns(ticket) {
            return;
        }
        if let Err(error) = self.projection.on_synced(disk, ticket, result) {
            // The durable checkpoint is the previous one; a restart resumes from it.
            self.halted = Some(format!("checkpoint: {error}"));
        }
    }
}
