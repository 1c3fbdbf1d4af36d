//! One pass over an event-store history into the indexes every checker shares: each
//! partition's replicas and its reference (the longest committed log), each replica's
//! events by stream and by version, every event parsed once, commands by id.

use std::collections::BTreeMap;

use super::domain::{Domain, Event, State};
use super::history::{CommandOutcome, EsHistory, StoredEvent};
use super::verdict::{EsGuarantee, EsWitness};

/// A partition's replicas.
pub(super) struct Partition {
    /// Indices into `EsHistory::replicas`, in history order.
    pub replicas: Vec<usize>,
    /// The one with the most committed events (the first such, on a tie): the
    /// reference the others and the commands are judged against.
    pub reference: usize,
}

/// One replica's events, indexed.
#[derive(Default)]
pub(super) struct ReplicaIndex<'h> {
    /// Stream to the positions of its events in the replica's log, in log order.
    pub streams: BTreeMap<&'h str, Vec<u32>>,
    /// Stream to version to the position of the first event with that version.
    versions: BTreeMap<&'h str, BTreeMap<u64, u32>>,
    /// Each event parsed (in log order), or why it is not one of the domain's.
    pub parsed: Vec<Result<Event, String>>,
}

pub(super) struct Digest<'h> {
    pub history: &'h EsHistory,
    /// None if the history names no known domain.
    pub domain: Option<Domain>,
    pub partitions: BTreeMap<u32, Partition>,
    /// Parallel to `EsHistory::replicas`.
    pub replicas: Vec<ReplicaIndex<'h>>,
    /// Each stream's partition: the first it is seen in, replicas in history order.
    pub stream_partition: BTreeMap<&'h str, u32>,
    /// Command id to the positions of its records (a retry shares the id).
    pub commands_by_id: BTreeMap<u64, Vec<usize>>,
}

impl<'h> Digest<'h> {
    pub(super) fn new(history: &'h EsHistory) -> Digest<'h> {
        let domain = Domain::from_name(&history.domain);
        let mut partitions: BTreeMap<u32, Partition> = BTreeMap::new();
        let mut stream_partition = BTreeMap::new();
        let mut replicas = Vec::with_capacity(history.replicas.len());
        for (index, replica) in history.replicas.iter().enumerate() {
            let partition = partitions
                .entry(replica.partition)
                .or_insert(Partition { replicas: Vec::new(), reference: index });
            partition.replicas.push(index);
            if replica.events.len() > history.replicas[partition.reference].events.len() {
                partition.reference = index;
            }
            let mut indexed = ReplicaIndex::default();
            for (position, event) in replica.events.iter().enumerate() {
                let stream = event.stream.as_str();
                stream_partition.entry(stream).or_insert(replica.partition);
                indexed.streams.entry(stream).or_default().push(position as u32);
                indexed
                    .versions
                    .entry(stream)
                    .or_default()
                    .entry(event.version)
                    .or_insert(position as u32);
                indexed.parsed.push(match domain {
                    Some(domain) => domain.parse(&event.event),
                    None => Err(format!("unknown domain `{}`", history.domain)),
                });
            }
            replicas.push(indexed);
        }
        let mut commands_by_id: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (index, command) in history.commands.iter().enumerate() {
            commands_by_id.entry(command.command_id).or_default().push(index);
        }
        Digest { history, domain, partitions, replicas, stream_partition, commands_by_id }
    }

    pub(super) fn event(&self, replica: usize, position: u32) -> &'h StoredEvent {
        &self.history.replicas[replica].events[position as usize]
    }

    /// The positions of a stream's events on a replica, in log order.
    pub(super) fn stream(&self, replica: usize, stream: &str) -> &[u32] {
        self.replicas[replica].streams.get(stream).map_or(&[], Vec::as_slice)
    }

    /// The position of the (first) event at `version` of `stream` on a replica.
    pub(super) fn at_version(&self, replica: usize, stream: &str, version: u64) -> Option<u32> {
        self.replicas[replica].versions.get(stream)?.get(&version).copied()
    }

    /// The reference replica of the partition `stream` lives in.
    pub(super) fn reference_of(&self, stream: &str) -> Option<usize> {
        let partition = self.stream_partition.get(stream)?;
        Some(self.partitions[partition].reference)
    }

    /// The replicas of the partition `stream` lives in.
    pub(super) fn replicas_of(&self, stream: &str) -> &[usize] {
        match self.stream_partition.get(stream) {
            Some(partition) => &self.partitions[partition].replicas,
            None => &[],
        }
    }

    /// The lenient fold of a stream's events on a replica whose offsets are below
    /// `offset_end`, with how many events it folded.
    pub(super) fn fold(&self, replica: usize, stream: &str, offset_end: u64) -> (State, u64) {
        let domain = self.domain.expect("folds run only for a known domain");
        let mut state = domain.initial();
        let mut folded = 0;
        for &position in self.stream(replica, stream) {
            let event = self.event(replica, position);
            if event.offset >= offset_end {
                continue;
            }
            if let Ok(parsed) = &self.replicas[replica].parsed[position as usize] {
                state.apply(parsed, event.version);
            }
            folded += 1;
        }
        (state, folded)
    }

    /// The record of a command id the checkers name it by: its `Ok` attempt if it had
    /// one, else its first.
    pub(super) fn command_of(&self, command_id: u64) -> Option<usize> {
        let records = self.commands_by_id.get(&command_id)?;
        let ok = records.iter().find(|&&index| {
            matches!(self.history.commands[index].outcome, CommandOutcome::Ok { .. })
        });
        ok.or(records.first()).copied()
    }

    /// The guarantee broken when the event at `position` of a replica breaks a rule:
    /// serial decisions if the command that wrote it decided on an older version than
    /// it landed on (it missed updates), durability if on a newer one (it folded events
    /// the log lost since), integrity otherwise.
    pub(super) fn landing_guarantee(&self, replica: usize, position: u32) -> EsGuarantee {
        let event = self.event(replica, position);
        let mut first_version = event.version;
        while let Some(before) = first_version.checked_sub(1) {
            match self.at_version(replica, &event.stream, before) {
                Some(p) if self.event(replica, p).command_id == event.command_id => {
                    first_version = before;
                }
                _ => break,
            }
        }
        let decided: Vec<u64> = self
            .commands_by_id
            .get(&event.command_id)
            .into_iter()
            .flatten()
            .filter_map(|&index| self.history.commands[index].decided_at_version)
            .collect();
        match decided.first() {
            _ if decided.contains(&first_version) => EsGuarantee::Integrity,
            Some(&decided) if decided < first_version => EsGuarantee::SerialDecisions,
            Some(_) => EsGuarantee::AckedDurable,
            None => EsGuarantee::Integrity,
        }
    }

    pub(super) fn event_witness(&self, replica: usize, position: u32) -> EsWitness {
        let holder = &self.history.replicas[replica];
        EsWitness::Event {
            node: holder.node,
            partition: holder.partition,
            event: self.event(replica, position).clone(),
        }
    }

    pub(super) fn command_witness(&self, index: usize) -> EsWitness {
        EsWitness::Command { index: index as u64, record: self.history.commands[index].clone() }
    }

    pub(super) fn node(&self, replica: usize) -> u32 {
        self.history.replicas[replica].node
    }
}
