//! The controller: cluster metadata, failure detection and leader election, sans-IO.
//!
//! It learns of brokers by their heartbeats and declares one dead when its session
//! times out. It elects leaders from the ISR (outside it only when unclean election is
//! on), bumps the leader epoch at every election and the partition epoch at every
//! change, and refuses ISR changes made against a stale epoch. A broker that restarted
//! (a new incarnation) may have lost what it never synced, so it leaves every ISR it
//! is not the last member of, and must catch up to come back.
//!
//! Its state is durable before anyone hears of it: every change is written to a
//! checkpoint (write-temp, sync, rename, sync-directory) and only the last durable
//! state is announced, so a controller that crashes and recovers never hands out the
//! same epoch twice.

use std::collections::BTreeMap;

use crate::checkpoint::{self, CheckpointKind, CheckpointWriter};
use crate::protocol::{Msg, NodeId, PartitionState};
use crate::storage::{Storage, StorageError, SyncResult, SyncTicket};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    pub brokers: Vec<NodeId>,
    pub partitions: u32,
    pub replication_factor: u32,
    pub unclean_leader_election: bool,
    /// A broker silent for this long is dead.
    pub session_timeout_ns: u64,
}

impl ControllerConfig {
    /// The replicas of a partition, preferred leader first: spread round-robin.
    pub fn assignment(&self, partition: u32) -> Vec<NodeId> {
        let brokers = self.brokers.len() as u32;
        (0..self.replication_factor)
            .map(|i| self.brokers[((partition + i) % brokers) as usize])
            .collect()
    }
}

#[derive(Clone, Debug)]
struct Liveness {
    last_heartbeat_ns: u64,
}

const METADATA_FILE: &str = "metadata.checkpoint";

/// The controller's state machine.
pub struct Controller {
    config: ControllerConfig,
    /// The working state, ahead of the durable one while a write is under way.
    states: Vec<PartitionState>,
    durable_states: Vec<PartitionState>,
    next_producer_id: i64,
    durable_next_producer_id: i64,
    /// Producer ids handed out but not yet durable: (client, correlation, id).
    waiting_ids: Vec<(NodeId, u64, i64)>,
    brokers: BTreeMap<NodeId, Liveness>,
    /// Whether the brokers registered before this controller started were given their
    /// session: a controller that just restarted has heard from nobody yet.
    sessions_started: bool,
    /// Each broker's registration, durable with the metadata: its incarnation as last
    /// seen (so that a broker restarting while the controller was down is still
    /// noticed) and the broker epoch given to it, which grows at every restart.
    registrations: BTreeMap<NodeId, (u64, u64)>,
    durable_registrations: BTreeMap<NodeId, (u64, u64)>,
    writer: CheckpointWriter,
    dirty: bool,
    outbox: Vec<(NodeId, Msg)>,
}

impl Controller {
    /// Starts, recovering the metadata from storage (or creating the first).
    pub fn open<S: Storage + ?Sized>(
        storage: &mut S,
        config: ControllerConfig,
    ) -> Result<Controller, StorageError> {
        assert!(
            config.replication_factor as usize <= config.brokers.len()
                && config.replication_factor > 0
        );
        storage.create_dir("controller")?;
        let path = crate::storage::join("controller", METADATA_FILE);
        // Metadata that exists but cannot be read is never replaced by a fresh start:
        // that would hand out epochs and producer ids a second time.
        let saved = match checkpoint::read(storage, &path, CheckpointKind::Metadata) {
            Ok(None) => None,
            Ok(Some(payload)) => Some(decode(&payload).ok_or_else(|| StorageError::Invalid {
                path: path.clone(),
                detail: "metadata does not decode".to_owned(),
            })?),
            Err(error) => {
                return Err(StorageError::Invalid {
                    path: path.clone(),
                    detail: error.to_string(),
                });
            }
        };
        let (states, next_producer_id, registrations) = match saved {
            Some(saved) => saved,
            None => {
                let states = (0..config.partitions)
                    .map(|partition| {
                        let replicas = config.assignment(partition);
                        // No leader until brokers are heard from; the first election
                        // makes epoch 1.
                        PartitionState {
                            partition,
                            leader: None,
                            leader_epoch: 0,
                            isr: replicas.clone(),
                            replicas,
                            partition_epoch: 0,
                        }
                    })
                    .collect();
                (states, 1, BTreeMap::new())
            }
        };
        let mut controller = Controller {
            config,
            durable_states: Vec::new(),
            states,
            next_producer_id,
            durable_next_producer_id: 0,
            waiting_ids: Vec::new(),
            brokers: BTreeMap::new(),
            sessions_started: false,
            registrations,
            durable_registrations: BTreeMap::new(),
            writer: CheckpointWriter::new(path, CheckpointKind::Metadata),
            dirty: true,
            outbox: Vec::new(),
        };
        controller.persist(storage)?;
        Ok(controller)
    }

    pub fn drain_outbox(&mut self) -> std::vec::Drain<'_, (NodeId, Msg)> {
        self.outbox.drain(..)
    }

    /// The state the cluster has been told (durable).
    pub fn durable_states(&self) -> &[PartitionState] {
        &self.durable_states
    }

    /// At its first moment, a controller gives every broker its durable metadata knows
    /// a full session, as if it had just heard from it: it has heard from nobody yet,
    /// and taking them all for dead would shrink every ISR to whoever speaks first and
    /// elect it, complete or not. (Found by cdc-disk-faults at 5,000 seeds: after a
    /// controller restart the first broker to heartbeat, whose disk had rotted, became
    /// the only ISR member and kept leading after its own restart, and the followers
    /// cut committed records to its log.)
    fn start_sessions(&mut self, now_ns: u64) {
        if std::mem::replace(&mut self.sessions_started, true) {
            return;
        }
        for &broker in self.registrations.keys() {
            self.brokers.entry(broker).or_insert(Liveness { last_heartbeat_ns: now_ns });
        }
    }

    fn alive(&self, broker: NodeId, now_ns: u64) -> bool {
        self.brokers
            .get(&broker)
            .is_some_and(|l| now_ns <= l.last_heartbeat_ns + self.config.session_timeout_ns)
    }

    fn persist<S: Storage + ?Sized>(&mut self, storage: &mut S) -> Result<(), StorageError> {
        if self.dirty {
            self.dirty = false;
            self.writer
                .write(storage, encode(&self.states, self.next_producer_id, &self.registrations))?;
        }
        Ok(())
    }

    pub fn owns(&self, ticket: SyncTicket) -> bool {
        self.writer.owns(ticket)
    }

    /// A sync completed; once the metadata is durable, it is announced.
    pub fn on_synced<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        ticket: SyncTicket,
        result: SyncResult,
    ) -> Result<(), StorageError> {
        self.writer.on_synced(storage, ticket, result)?;
        if let Some(payload) = self.writer.durable() {
            let (states, next_id, registrations) = decode(payload).expect("we wrote it");
            if states != self.durable_states || registrations != self.durable_registrations {
                self.durable_states = states;
                self.durable_registrations = registrations;
                for &broker in &self.config.brokers {
                    let ack = self.ack(broker);
                    self.outbox.push((broker, ack));
                }
            }
            self.durable_next_producer_id = next_id;
            let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting_ids)
                .into_iter()
                .partition(|&(_, _, id)| id < next_id);
            self.waiting_ids = waiting;
            for (client, correlation, producer_id) in ready {
                self.outbox
                    .push((client, Msg::InitProducerIdResponse { correlation, producer_id }));
            }
        }
        Ok(())
    }

    /// The passing of time: dead brokers lose their leaderships.
    pub fn tick<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
    ) -> Result<(), StorageError> {
        self.start_sessions(now_ns);
        for partition in 0..self.config.partitions {
            let state = &self.states[partition as usize];
            let leader_ok = state.leader.is_some_and(|leader| self.alive(leader, now_ns));
            if !leader_ok {
                self.elect(partition, now_ns);
            }
        }
        self.persist(storage)
    }

    fn elect(&mut self, partition: u32, now_ns: u64) {
        let unclean = self.config.unclean_leader_election;
        let alive: Vec<NodeId> = self.states[partition as usize]
            .replicas
            .iter()
            .copied()
            .filter(|&b| self.alive(b, now_ns))
            .collect();
        let state = &mut self.states[partition as usize];
        let from_isr = state.isr.iter().copied().find(|b| alive.contains(b));
        let (leader, isr) = match (from_isr, unclean) {
            (Some(leader), _) => {
                // The dead leave the ISR, unless that would empty it.
                let mut isr: Vec<NodeId> =
                    state.isr.iter().copied().filter(|b| alive.contains(b)).collect();
                if isr.is_empty() {
                    isr = vec![leader];
                }
                (Some(leader), isr)
            }
            (None, true) => match alive.first() {
                Some(&leader) => (Some(leader), vec![leader]),
                None => (None, state.isr.clone()),
            },
            (None, false) => (None, state.isr.clone()),
        };
        if leader == state.leader && isr == state.isr {
            return;
        }
        state.leader = leader;
        state.isr = isr;
        state.leader_epoch += 1;
        state.partition_epoch += 1;
        self.dirty = true;
    }

    pub fn handle<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        now_ns: u64,
        from: NodeId,
        msg: Msg,
    ) -> Result<(), StorageError> {
        self.start_sessions(now_ns);
        match msg {
            Msg::Heartbeat { broker, incarnation } => {
                self.brokers.insert(broker, Liveness { last_heartbeat_ns: now_ns });
                let next_epoch =
                    self.registrations.values().map(|&(_, epoch)| epoch).max().unwrap_or(0) + 1;
                match self.registrations.get(&broker).copied() {
                    Some((known, _)) if known == incarnation => {}
                    before => {
                        self.registrations.insert(broker, (incarnation, next_epoch));
                        if before.is_some() {
                            self.forget_unsynced(broker);
                        }
                        self.dirty = true;
                    }
                }
                let ack = self.ack(from);
                self.outbox.push((from, ack));
            }
            Msg::AlterIsr { partition, leader_epoch, partition_epoch, isr, broker_epochs } => {
                let Some(state) = self.states.get_mut(partition as usize) else { return Ok(()) };
                // A joining member must be in the broker epoch its fetches came from: its
                // progress may date from before a restart that lost what it had.
                let joiners_current =
                    isr.iter().filter(|member| !state.isr.contains(member)).all(|member| {
                        let seen = broker_epochs.iter().find(|(m, _)| m == member).map(|&(_, e)| e);
                        seen.is_some()
                            && seen == self.registrations.get(member).map(|&(_, epoch)| epoch)
                    });
                let current = state.leader == Some(from)
                    && state.leader_epoch == leader_epoch
                    && state.partition_epoch == partition_epoch
                    && joiners_current
                    && isr.contains(&from)
                    && isr.iter().all(|member| state.replicas.contains(member));
                if current {
                    state.isr = isr;
                    state.partition_epoch += 1;
                    self.dirty = true;
                } else {
                    // Stale: tell the sender what is current.
                    self.outbox.push((from, self.ack(from)));
                }
            }
            Msg::Metadata { correlation } => {
                self.outbox.push((
                    from,
                    Msg::MetadataResponse { correlation, states: self.durable_states.clone() },
                ));
            }
            Msg::InitProducerId { correlation } => {
                // Answered once the id is durable: a recovered controller never
                // hands out the same id twice.
                self.waiting_ids.push((from, correlation, self.next_producer_id));
                self.next_producer_id += 1;
                self.dirty = true;
            }
            _ => {}
        }
        self.persist(storage)
    }

    /// A broker restarted: it may lack what it acknowledged but never synced.
    /// The durable state, for a broker, with its durable registration.
    fn ack(&self, broker: NodeId) -> Msg {
        let registration = self.durable_registrations.get(&broker).copied();
        Msg::HeartbeatAck { states: self.durable_states.clone(), registration }
    }

    fn forget_unsynced(&mut self, broker: NodeId) {
        for state in &mut self.states {
            let led = state.leader == Some(broker);
            let others_in_isr = state.isr.iter().any(|&member| member != broker);
            if led || (state.isr.contains(&broker) && others_in_isr) {
                if others_in_isr {
                    state.isr.retain(|&member| member != broker);
                }
                if led {
                    // Its earlier life led this epoch with a log it may have lost part
                    // of: whoever leads next (it again, if it is all the ISR has) does
                    // so in a new epoch. (Found by crash-restart-loop: a restarted
                    // broker resumed its old epoch and two logs shared it.)
                    state.leader = if others_in_isr { None } else { Some(broker) };
                    state.leader_epoch += 1;
                }
                state.partition_epoch += 1;
                self.dirty = true;
            }
        }
    }
}

fn encode(
    states: &[PartitionState],
    next_producer_id: i64,
    registrations: &BTreeMap<NodeId, (u64, u64)>,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&next_producer_id.to_le_bytes());
    out.extend_from_slice(&(states.len() as u32).to_le_bytes());
    for state in states {
        out.extend_from_slice(&state.partition.to_le_bytes());
        out.extend_from_slice(&state.leader.map_or(u32::MAX, |l| l).to_le_bytes());
        out.extend_from_slice(&state.leader_epoch.to_le_bytes());
        out.extend_from_slice(&state.partition_epoch.to_le_bytes());
        for list in [&state.replicas, &state.isr] {
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            list.iter().for_each(|node| out.extend_from_slice(&node.to_le_bytes()));
        }
    }
    out.extend_from_slice(&(registrations.len() as u32).to_le_bytes());
    for (&broker, &(incarnation, epoch)) in registrations {
        out.extend_from_slice(&broker.to_le_bytes());
        out.extend_from_slice(&incarnation.to_le_bytes());
        out.extend_from_slice(&epoch.to_le_bytes());
    }
    out
}

type Metadata = (Vec<PartitionState>, i64, BTreeMap<NodeId, (u64, u64)>);

fn decode(bytes: &[u8]) -> Option<Metadata> {
    let mut at = 0;
    let mut u32_ = || -> Option<u32> {
        let value = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        Some(value)
    };
    let low = u32_()? as i64;
    let high = u32_()? as i64;
    let next_producer_id = low | (high << 32);
    let count = u32_()?;
    let mut states = Vec::new();
    for _ in 0..count.min(1 << 16) {
        let partition = u32_()?;
        let leader = Some(u32_()?).filter(|&l| l != u32::MAX);
        let leader_epoch = u32_()?;
        let partition_epoch = u32_()?;
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let len = u32_()?;
            for _ in 0..len.min(1 << 10) {
                list.push(u32_()?);
            }
        }
        let [replicas, isr] = lists;
        states.push(PartitionState {
            partition,
            replicas,
            leader,
            leader_epoch,
            isr,
            partition_epoch,
        });
    }
    let mut registrations = BTreeMap::new();
    for _ in 0..u32_()?.min(1 << 16) {
        let broker = u32_()?;
        let mut u64_ = || -> Option<u64> { Some(u64::from(u32_()?) | (u64::from(u32_()?) << 32)) };
        let incarnation = u64_()?;
        let epoch = u64_()?;
        registrations.insert(broker, (incarnation, epoch));
    }
    Some((states, next_producer_id, registrations))
}
