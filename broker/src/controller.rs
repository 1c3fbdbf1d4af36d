//! The controller: cluster metadata, failure detection and leader election, sans-IO.
//!
//! It learns of brokers by their heartbeats and declares one dead when its session
//! times out. It bumps the leader epoch at every election and the partition epoch at
//! every change, and refuses ISR changes made against a stale epoch. A broker that
//! restarted (a new incarnation) may have lost what it never synced: it leaves the ISR
//! and must catch up to come back.
//!
//! Elections follow KIP-966 (Kafka 4.x). Besides the ISR, each partition keeps its
//! Eligible Leader Replicas: replicas that left the ISR while it was below
//! `min_insync_replicas`, when the high watermark could no longer advance, so they hold
//! every committed record. A leader is the first live ISR member; with none, a live
//! ELR member; with neither, a replica out of sync only under unclean election; and
//! when a restart has emptied both ISR and ELR, the replica with the most complete log
//! once every replica has reported (balanced recovery: no committed record is on a
//! replica not heard from). `ElectionRule::PreKip966` keeps the older rule, which
//! re-elects the last ISR member whatever its restart lost: a weak setting.
//!
//! Its state is durable before anyone hears of it: every change is written to a
//! checkpoint (write-temp, sync, rename, sync-directory) and only the last durable
//! state is announced, so a controller that crashes and recovers never hands out the
//! same epoch twice. The ELR is part of that durable state.

use std::collections::BTreeMap;

use crate::checkpoint::{self, CheckpointKind, CheckpointWriter};
use crate::protocol::{LogReport, Msg, NodeId, PartitionState};
use crate::storage::{Storage, StorageError, SyncResult, SyncTicket};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    pub brokers: Vec<NodeId>,
    pub partitions: u32,
    pub replication_factor: u32,
    pub unclean_leader_election: bool,
    /// The ISR size below which the high watermark stops (strict min ISR): a replica
    /// leaving an ISR smaller than this becomes an Eligible Leader Replica.
    pub min_insync_replicas: u32,
    pub election: ElectionRule,
    /// A broker silent for this long is dead.
    pub session_timeout_ns: u64,
}

/// Whom the controller may elect when the ISR has no live member left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionRule {
    /// KIP-966: Eligible Leader Replicas, and a restarted broker leaves the ISR and the
    /// ELR even when it was the last member; balanced recovery when both are empty.
    Kip966,
    /// Before KIP-966: the last ISR member stays in the ISR through its restart and is
    /// elected again with whatever its restart left it, and the others truncate to it
    /// (every acknowledged write lost to one crash, with `flush = never`).
    PreKip966,
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
    /// Each partition's Eligible Leader Replicas (KIP-966), durable with the states.
    eligible: Vec<Vec<NodeId>>,
    /// Each broker's last heartbeat report of its logs, with the incarnation it came
    /// from (not durable: heard again after a controller restart).
    reports: BTreeMap<NodeId, (u64, Vec<LogReport>)>,
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
            Ok(Some(payload)) => {
                Some(Metadata::decode(&payload).ok_or_else(|| StorageError::Invalid {
                    path: path.clone(),
                    detail: "metadata does not decode".to_owned(),
                })?)
            }
            Err(error) => {
                return Err(StorageError::Invalid {
                    path: path.clone(),
                    detail: error.to_string(),
                });
            }
        };
        let Metadata { states, next_producer_id, registrations, eligible } = match saved {
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
                let eligible = vec![Vec::new(); config.partitions as usize];
                Metadata { states, next_producer_id: 1, registrations: BTreeMap::new(), eligible }
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
            eligible,
            reports: BTreeMap::new(),
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
            self.writer.write(storage, self.metadata().encode())?;
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
            let Metadata { states, next_producer_id: next_id, registrations, .. } =
                Metadata::decode(payload).expect("we wrote it");
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

    /// Moves the leadership of a partition off its live leader to the next live ISR
    /// member (a preferred-leader election, or a controlled shutdown's first step): a
    /// clean election with the ISR unchanged, in a new epoch. Nothing happens without a
    /// live leader or another live ISR member. Returns whether the leader moved.
    pub fn move_leader(&mut self, partition: u32, now_ns: u64) -> bool {
        assert!(partition < self.config.partitions, "p{partition}: no such partition");
        let state = &self.states[partition as usize];
        let Some(leader) = state.leader.filter(|&leader| self.alive(leader, now_ns)) else {
            return false;
        };
        let at = state.isr.iter().position(|&b| b == leader).unwrap_or(0);
        let next = (1..state.isr.len())
            .map(|step| state.isr[(at + step) % state.isr.len()])
            .find(|&b| b != leader && self.alive(b, now_ns));
        let Some(next) = next else { return false };
        let state = &mut self.states[partition as usize];
        state.leader = Some(next);
        state.leader_epoch += 1;
        state.partition_epoch += 1;
        self.dirty = true;
        true
    }

    fn elect(&mut self, partition: u32, now_ns: u64) {
        let alive: Vec<NodeId> = self.states[partition as usize]
            .replicas
            .iter()
            .copied()
            .filter(|&b| self.alive(b, now_ns))
            .collect();
        let (leader, isr) = match self.config.election {
            ElectionRule::PreKip966 => self.choose_pre_kip_966(partition, &alive),
            ElectionRule::Kip966 => self.choose_kip_966(partition, &alive),
        };
        let state = &mut self.states[partition as usize];
        if leader == state.leader && isr == state.isr {
            return;
        }
        state.leader = leader;
        state.isr = isr;
        state.leader_epoch += 1;
        state.partition_epoch += 1;
        self.dirty = true;
    }

    /// The rule before KIP-966: a live ISR member, else (if allowed) any live replica;
    /// the dead leave the ISR unless that would empty it.
    fn choose_pre_kip_966(
        &self,
        partition: u32,
        alive: &[NodeId],
    ) -> (Option<NodeId>, Vec<NodeId>) {
        let state = &self.states[partition as usize];
        let from_isr = state.isr.iter().copied().find(|b| alive.contains(b));
        match (from_isr, self.config.unclean_leader_election) {
            (Some(leader), _) => {
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
        }
    }

    /// KIP-966: the dead leave the ISR (to the ELR, if it falls below min ISR); then a
    /// live ISR member leads, else a live ELR member, else (if allowed) any live
    /// replica, else, when restarts emptied ISR and ELR, balanced recovery.
    fn choose_kip_966(
        &mut self,
        partition: u32,
        alive: &[NodeId],
    ) -> (Option<NodeId>, Vec<NodeId>) {
        let index = partition as usize;
        let isr = self.states[index].isr.clone();
        let live_isr: Vec<NodeId> = isr.iter().copied().filter(|b| alive.contains(b)).collect();
        if let Some(&leader) = live_isr.first() {
            self.shrink_eligible(partition, &live_isr, None);
            return (Some(leader), live_isr);
        }
        // No live ISR member: the dead ones (fenced, not restarted) hold everything
        // committed, as the ELR does; a live one of them leads.
        let mut eligible = self.eligible[index].clone();
        for &member in &isr {
            if !eligible.contains(&member) {
                eligible.push(member);
            }
        }
        if let Some(position) = eligible.iter().position(|b| alive.contains(b)) {
            let leader = eligible.remove(position);
            self.eligible[index] = eligible;
            self.dirty = true;
            return (Some(leader), vec![leader]);
        }
        if self.config.unclean_leader_election {
            if let Some(&leader) = alive.first() {
                self.eligible[index].clear();
                self.dirty = true;
                return (Some(leader), vec![leader]);
            }
        } else if eligible.is_empty() {
            if let Some(leader) = self.most_complete(partition, alive) {
                return (Some(leader), vec![leader]);
            }
        }
        // Nobody may lead yet: the partition waits, its ISR and ELR as they are.
        (None, isr)
    }

    /// Balanced recovery: with ISR and ELR empty, no replica is known to hold every
    /// committed record, but each committed record is on some replica. Once every
    /// replica is alive and has reported its log from its current life, the one with
    /// the latest epoch and, within it, the longest log holds them all (the leader of
    /// that epoch had them when it was elected, and the replica took its log).
    fn most_complete(&self, partition: u32, alive: &[NodeId]) -> Option<NodeId> {
        let replicas = &self.states[partition as usize].replicas;
        let mut best: Option<(NodeId, (u32, u64))> = None;
        for &replica in replicas {
            if !alive.contains(&replica) {
                return None;
            }
            let incarnation = self.registrations.get(&replica).map(|&(incarnation, _)| incarnation);
            let report = self
                .reports
                .get(&replica)
                .filter(|(life, _)| Some(*life) == incarnation)
                .and_then(|(_, logs)| logs.iter().find(|log| log.partition == partition))?;
            let rank = (report.latest_epoch, report.end_offset);
            if best.is_none_or(|(_, best_rank)| rank > best_rank) {
                best = Some((replica, rank));
            }
        }
        best.map(|(replica, _)| replica)
    }

    /// KIP-966's ELR rule for an ISR about to become `target`: at or above min ISR the
    /// high watermark may advance without anyone who left, so the ELR empties; below
    /// it, whoever leaves the ISR holds everything committed and joins the ELR.
    /// `unclean`, a broker that restarted and may have lost records, joins neither.
    fn shrink_eligible(&mut self, partition: u32, target: &[NodeId], unclean: Option<NodeId>) {
        if self.config.election != ElectionRule::Kip966 {
            return;
        }
        let index = partition as usize;
        let mut eligible = std::mem::take(&mut self.eligible[index]);
        if target.len() as u32 >= self.config.min_insync_replicas {
            eligible.clear();
        } else {
            for &member in &self.states[index].isr {
                if !eligible.contains(&member) {
                    eligible.push(member);
                }
            }
            eligible.retain(|member| !target.contains(member) && Some(*member) != unclean);
        }
        if eligible != self.eligible[index] {
            self.dirty = true;
        }
        self.eligible[index] = eligible;
    }

    /// The Eligible Leader Replicas of a partition as this controller holds them.
    pub fn eligible_leader_replicas(&self, partition: u32) -> &[NodeId] {
        &self.eligible[partition as usize]
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
            Msg::Heartbeat { broker, incarnation, logs } => {
                self.brokers.insert(broker, Liveness { last_heartbeat_ns: now_ns });
                self.reports.insert(broker, (incarnation, logs));
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
                    self.shrink_eligible(partition, &isr, None);
                    let state = &mut self.states[partition as usize];
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
        match self.config.election {
            ElectionRule::PreKip966 => self.forget_unsynced_pre_kip_966(broker),
            ElectionRule::Kip966 => {
                for partition in 0..self.states.len() as u32 {
                    let index = partition as usize;
                    let state = &self.states[index];
                    let led = state.leader == Some(broker);
                    let eligible = self.eligible[index].contains(&broker);
                    if !led && !eligible && !state.isr.contains(&broker) {
                        continue;
                    }
                    // An unclean shutdown: it leaves the ISR and the ELR, even as their
                    // last member, and comes back only by catching up.
                    let target: Vec<NodeId> =
                        state.isr.iter().copied().filter(|&member| member != broker).collect();
                    self.shrink_eligible(partition, &target, Some(broker));
                    self.eligible[index].retain(|&member| member != broker);
                    let state = &mut self.states[index];
                    state.isr = target;
                    if led {
                        state.leader = None;
                        state.leader_epoch += 1;
                    }
                    state.partition_epoch += 1;
                    self.dirty = true;
                }
            }
        }
    }

    fn forget_unsynced_pre_kip_966(&mut self, broker: NodeId) {
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

    fn metadata(&self) -> Metadata {
        Metadata {
            states: self.states.clone(),
            next_producer_id: self.next_producer_id,
            registrations: self.registrations.clone(),
            eligible: self.eligible.clone(),
        }
    }
}

/// What the controller keeps durable.
struct Metadata {
    states: Vec<PartitionState>,
    next_producer_id: i64,
    /// Broker to (incarnation, broker epoch).
    registrations: BTreeMap<NodeId, (u64, u64)>,
    /// Each partition's ELR, in partition order.
    eligible: Vec<Vec<NodeId>>,
}

impl Metadata {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.next_producer_id.to_le_bytes());
        out.extend_from_slice(&(self.states.len() as u32).to_le_bytes());
        let list = |out: &mut Vec<u8>, list: &[NodeId]| {
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            list.iter().for_each(|node| out.extend_from_slice(&node.to_le_bytes()));
        };
        for state in &self.states {
            out.extend_from_slice(&state.partition.to_le_bytes());
            out.extend_from_slice(&state.leader.map_or(u32::MAX, |l| l).to_le_bytes());
            out.extend_from_slice(&state.leader_epoch.to_le_bytes());
            out.extend_from_slice(&state.partition_epoch.to_le_bytes());
            list(&mut out, &state.replicas);
            list(&mut out, &state.isr);
        }
        out.extend_from_slice(&(self.registrations.len() as u32).to_le_bytes());
        for (&broker, &(incarnation, epoch)) in &self.registrations {
            out.extend_from_slice(&broker.to_le_bytes());
            out.extend_from_slice(&incarnation.to_le_bytes());
            out.extend_from_slice(&epoch.to_le_bytes());
        }
        for eligible in &self.eligible {
            list(&mut out, eligible);
        }
        out
    }

    /// None if the bytes are not metadata this controller wrote.
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
        let list = |u32_: &mut dyn FnMut() -> Option<u32>| -> Option<Vec<NodeId>> {
            let len = u32_()?;
            (0..len.min(1 << 10)).map(|_| u32_()).collect()
        };
        let mut states = Vec::new();
        for _ in 0..count.min(1 << 16) {
            let partition = u32_()?;
            let leader = Some(u32_()?).filter(|&l| l != u32::MAX);
            let leader_epoch = u32_()?;
            let partition_epoch = u32_()?;
            let replicas = list(&mut u32_)?;
            let isr = list(&mut u32_)?;
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
            let mut u64_ =
                || -> Option<u64> { Some(u64::from(u32_()?) | (u64::from(u32_()?) << 32)) };
            let incarnation = u64_()?;
            let epoch = u64_()?;
            registrations.insert(broker, (incarnation, epoch));
        }
        let eligible = states.iter().map(|_| list(&mut u32_)).collect::<Option<Vec<_>>>()?;
        Some(Metadata { states, next_producer_id, registrations, eligible })
    }
}
