//! A bank projection as a process: it reads one partition's committed records from
//! the brokers (`PartitionReader`), folds them into account balances, and checkpoints
//! (next offset, balances) atomically on its own disk after every batch it applies. A
//! crash loses what was not synced; the restart resumes from the durable checkpoint.
//! Every checkpoint it asks for, and every one it restores, is recorded for the
//! model's projection-equivalence check.

use logjam_broker::protocol::Msg;
use logjam_broker::storage::{SyncResult, SyncTicket};
use logjam_eventstore::projection::{BankBalances, Projection, ProjectionConfig};
use logjam_eventstore::reader::{PartitionReader, ReaderConfig};
use logjam_model::es::ProjectionCheckpoint;

use crate::SimDisk;
use crate::es_client::SharedEsRecorder;

pub struct ProjectionNode {
    node: u32,
    partition: u32,
    projection: Projection<BankBalances>,
    reader: PartitionReader,
    recorder: SharedEsRecorder,
    /// Why it stopped (a record it could not apply, a failed checkpoint write).
    halted: Option<String>,
}

impl ProjectionNode {
    /// Opens the projection from what its disk durably holds and resumes after it.
    pub fn open(
        disk: &mut SimDisk,
        node: u32,
        reader: ReaderConfig,
        recorder: SharedEsRecorder,
        t_ns: u64,
    ) -> Result<ProjectionNode, String> {
        let config = ProjectionConfig::new("projection");
        let projection = Projection::<BankBalances>::open(disk, &config)
            .map_err(|error| format!("projection: {error}"))?;
        let partition = reader.partition;
        let reader = PartitionReader::new(reader, projection.next_offset());
        let node = ProjectionNode { node, partition, projection, reader, recorder, halted: None };
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
            read_model: serde_json::to_value(&self.projection.model().balances)
                .expect("balances serialize"),
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

    pub fn handle(&mut self, disk: &mut SimDisk, now_ns: u64, t_ns: u64, msg: &Msg) {
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

    pub fn on_synced(&mut self, disk: &mut SimDisk, ticket: SyncTicket, result: SyncResult) {
        if !self.projection.owns(ticket) {
            return;
        }
        if let Err(error) = self.projection.on_synced(disk, ticket, result) {
            // The durable checkpoint is the previous one; a restart resumes from it.
            self.halted = Some(format!("checkpoint: {error}"));
        }
    }
}
