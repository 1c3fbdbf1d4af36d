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
    BankBalances, Projection, ProjectionConfig, ProjectionError, TableRows,
};
use logjam_eventstore::reader::{PartitionReader, ReaderConfig};
use logjam_model::es::ProjectionCheckpoint;

use crate::es_client::SharedEsRecorder;
use crate::{LogDisk, SimDisk};

/// The read models the simulator projects.
enum Model {
    Bank(Projection<BankBalances>),
    Table(Projection<TableRows>),
}

impl Model {
    fn next_offset(&self) -> u64 {
        match self {
            Model::Bank(p) => p.next_offset(),
            Model::Table(p) => p.next_offset(),
        }
    }

    fn apply(&mut self, offset: u64, key: &[u8], value: &[u8]) -> Result<bool, ProjectionError> {
        match self {
            Model::Bank(p) => p.apply(offset, key, value),
            Model::Table(p) => p.apply(offset, key, value),
        }
    }

    fn checkpoint(&mut self, disk: &mut LogDisk<&mut SimDisk>) -> Result<(), ProjectionError> {
        match self {
            Model::Bank(p) => p.checkpoint(disk),
            Model::Table(p) => p.checkpoint(disk),
        }
    }

    fn owns(&self, ticket: SyncTicket) -> bool {
        match self {
            Model::Bank(p) => p.owns(ticket),
            Model::Table(p) => p.owns(ticket),
        }
    }

    fn on_synced(
        &mut self,
        disk: &mut LogDisk<&mut SimDisk>,
        ticket: SyncTicket,
        result: SyncResult,
    ) -> Result<(), ProjectionError> {
        match self {
            Model::Bank(p) => p.on_synced(disk, ticket, result),
            Model::Table(p) => p.on_synced(disk, ticket, result),
        }
    }

    /// The read model as the model's checks read it: stream to balance, or table
    /// stream to {key: value}.
    fn json(&self) -> serde_json::Value {
        match self {
            Model::Bank(p) => serde_json::to_value(&p.model().balances).expect("serializes"),
            Model::Table(p) => {
                let tables: serde_json::Map<String, serde_json::Value> = p
                    .model()
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
            }
        }
    }
}

pub struct ProjectionNode {
    node: u32,
    partition: u32,
    /// It reads uncommitted (the weak setup): recorded with every checkpoint.
    read_uncommitted: bool,
    projection: Model,
    reader: PartitionReader,
    recorder: SharedEsRecorder,
    /// Why it stopped (a record it could not apply, a failed checkpoint write).
    halted: Option<String>,
}

impl ProjectionNode {
    /// Opens the projection (of tables when `tables`, else of bank balances) from what
    /// its disk durably holds and resumes after it.
    pub fn open(
        disk: &mut LogDisk<&mut SimDisk>,
        node: u32,
        tables: bool,
        reader: ReaderConfig,
        recorder: SharedEsRecorder,
        t_ns: u64,
    ) -> Result<ProjectionNode, String> {
        let config = ProjectionConfig::new("projection");
        let projection = if tables {
            Projection::<TableRows>::open(disk, &config).map(Model::Table)
        } else {
            Projection::<BankBalances>::open(disk, &config).map(Model::Bank)
        }
        .map_err(|error| format!("projection: {error}"))?;
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

    pub fn drain_outbox(&mut self) -> Vec<(u32, Msg)> {
        self.reader.drain_outbox().collect()
    }

    pub fn tick(&mut self, now_ns: u64) {
        if self.halted.is_none() {
            self.reader.tick(now_ns);
        }
    }

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
