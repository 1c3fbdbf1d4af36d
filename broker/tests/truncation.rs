//! How a follower finds where its log parts from its new leader's (KIP-101, KIP-279).
//!
//! The case KIP-279 fixed: two replicas lead in turn without hearing of each other's
//! epochs (unclean elections), so each holds an epoch the other lacks. KIP-101's one
//! question leaves the follower with records of an epoch the leader overwrote; KIP-279
//! asks again about the follower's next lower epoch until both agree.

mod support;

use logjam_broker::batch::{ProducerStamp, Record};
use logjam_broker::broker::{Broker, BrokerConfig, TruncationRule};
use logjam_broker::protocol::{Acks, Msg, NodeId, PartitionState};
use logjam_broker::storage::FsStorage;
use support::{CONTROLLER, MS, broker_config};

const CLIENT: NodeId = 5;

/// The controller's word on partition 0 (replicas 0 and 1): `leader` leads alone.
fn states(epoch: u32, leader: NodeId) -> Msg {
    let state = PartitionState {
        partition: 0,
        replicas: vec![0, 1],
        leader: Some(leader),
        leader_epoch: epoch,
        isr: vec![leader],
        partition_epoch: epoch,
    };
    Msg::HeartbeatAck { states: vec![state], registration: Some((1, 1)) }
}

fn produce(correlation: u64) -> Msg {
    Msg::Produce {
        partition: 0,
        correlation,
        leader_epoch: None,
        acks: Acks::Leader,
        producer: ProducerStamp::NONE,
        records: vec![Record { timestamp_ns: 0, key: b"k".to_vec(), value: b"v".to_vec() }],
        expected_version: None,
        transactional: false,
    }
}

/// Two brokers; messages between them flow only while `connected`.
struct Pair {
    rule: TruncationRule,
    now_ns: u64,
    brokers: Vec<Broker>,
    disks: Vec<FsStorage>,
    connected: bool,
    correlation: u64,
    _dirs: Vec<tempfile::TempDir>,
}

impl Pair {
    fn new(rule: TruncationRule) -> Pair {
        let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let config = |id| BrokerConfig { truncation: rule, ..broker_config(id) };
        Pair {
            rule,
            now_ns: 1_000 * MS,
            brokers: (0..2).map(|id| Broker::new(config(id), 1)).collect(),
            disks: dirs.iter().map(|dir| FsStorage::new(dir.path())).collect(),
            connected: true,
            correlation: 0,
            _dirs: dirs,
        }
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, msg: Msg) {
        let to = to as usize;
        self.brokers[to].handle(&mut self.disks[to], self.now_ns, from, msg);
        assert_eq!(self.brokers[to].halted(), None);
    }

    /// Both brokers hear of epoch `epoch` led by `leader` (the other only if connected).
    fn elect(&mut self, epoch: u32, leader: NodeId) {
        for id in 0..2 {
            if id == leader || self.connected {
                self.deliver(CONTROLLER, id, states(epoch, leader));
            }
        }
        self.settle();
    }

    /// `count` single-record produces to `leader`.
    fn write(&mut self, leader: NodeId, count: usize) {
        for _ in 0..count {
            self.correlation += 1;
            let msg = produce(self.correlation);
            self.deliver(CLIENT, leader, msg);
            self.settle();
        }
    }

    /// Delivers and completes everything until all is quiet, ticking a little so that
    /// fetch loops go round.
    fn settle(&mut self) {
        for _ in 0..200 {
            self.now_ns += MS;
            let mut sent = Vec::new();
            for id in 0..2 {
                self.brokers[id].tick(&mut self.disks[id], self.now_ns);
                for (ticket, result) in self.disks[id].take_completed() {
                    self.brokers[id].on_synced(&mut self.disks[id], self.now_ns, ticket, result);
                }
                let from = id as NodeId;
                sent.extend(self.brokers[id].drain_outbox().map(|(to, msg)| (from, to, msg)));
            }
            for (from, to, msg) in sent {
                if to < 2 && self.connected {
                    self.deliver(from, to, msg);
                }
            }
        }
    }

    /// Broker `id` restarts (a new incarnation) on its disk, and the controller tells it
    /// of epoch `epoch` led by the other. Returns the epoch question it asks, undelivered.
    fn restart_as_follower(&mut self, id: usize, incarnation: u64, epoch: u32) -> Msg {
        let config = BrokerConfig { truncation: self.rule, ..broker_config(id as NodeId) };
        self.brokers[id] = Broker::new(config, incarnation);
        let Msg::HeartbeatAck { states, .. } = states(epoch, 1 - id as NodeId) else {
            unreachable!()
        };
        let registration = Some((incarnation, incarnation));
        self.deliver(CONTROLLER, id as NodeId, Msg::HeartbeatAck { states, registration });
        // Its recovery's sync completes, and it asks.
        for _ in 0..10 {
            self.now_ns += MS;
            for (ticket, result) in self.disks[id].take_completed() {
                self.brokers[id].on_synced(&mut self.disks[id], self.now_ns, ticket, result);
            }
            self.brokers[id].tick(&mut self.disks[id], self.now_ns);
            let asked = self.brokers[id]
                .drain_outbox()
                .find(|(_, msg)| matches!(msg, Msg::OffsetForLeaderEpoch { .. }));
            if let Some((_, msg)) = asked {
                return msg;
            }
        }
        panic!("a new follower asks where its epoch ends")
    }

    fn epochs(&self, id: usize) -> (Vec<(u32, u64)>, u64) {
        let log = self.brokers[id].log(0).unwrap();
        (log.leader_epochs().to_vec(), log.end_offset())
    }
}

#[test]
fn kip_101_keeps_records_of_an_epoch_the_leader_overwrote() {
    // KIP-279's first case. Broker 1 led epoch 2 at offset 1 while broker 0 still held
    // its epoch-1 record there; broker 0 then led epoch 3. Asked where epoch 2 ends,
    // broker 0 names epoch 1 ending at 2: KIP-101 cuts at 2 and keeps offset 1 of
    // epoch 2; KIP-279 sees broker 1's epoch 1 ends at 1 and cuts there.
    for (rule, converges) in [(TruncationRule::LeaderEpoch, true), (TruncationRule::Kip101, false)]
    {
        let mut pair = Pair::new(rule);
        pair.elect(1, 0);
        pair.write(0, 1); // both: epoch 1 at 0..1
        pair.connected = false;
        pair.write(0, 1); // broker 0: epoch 1 at 0..2
        pair.elect(2, 1);
        pair.write(1, 1); // broker 1: epoch 1 at 0..1, epoch 2 at 1..2
        pair.elect(3, 0);
        pair.write(0, 1); // broker 0: epoch 1 at 0..2, epoch 3 at 2..3
        pair.connected = true;
        pair.elect(4, 0);
        let (leader, follower) = (pair.epochs(0), pair.epochs(1));
        assert_eq!(leader, (vec![(1, 0), (3, 2)], 3), "{rule:?}: the leader keeps its log");
        assert_eq!(follower == leader, converges, "{rule:?}: follower {follower:?}");
    }
}

#[test]
fn a_follower_lacking_the_leaders_epoch_asks_again() {
    // Broker 0 holds epochs 1 and 3, broker 1 epochs 1 and 2, and epoch 1 is longer on
    // broker 0. Asked where epoch 3 ends, broker 1 names epoch 2 ending at 10; broker
    // 0 lacks epoch 2, so it cuts to the end of its epoch 1 (5) and asks where epoch 1
    // ends: at 3 on the leader. One question alone (the commit before this test) kept
    // broker 0's epoch-1 records at 3..5, where the leader has epoch 2's.
    let mut pair = Pair::new(TruncationRule::LeaderEpoch);
    pair.elect(1, 0);
    pair.write(0, 3); // both: epoch 1 at 0..3
    pair.connected = false;
    pair.write(0, 2); // broker 0: epoch 1 at 0..5
    pair.elect(2, 1);
    pair.write(1, 7); // broker 1: epoch 1 at 0..3, epoch 2 at 3..10
    pair.elect(3, 0);
    pair.write(0, 3); // broker 0: epoch 1 at 0..5, epoch 3 at 5..8
    assert_eq!(pair.epochs(0), (vec![(1, 0), (3, 5)], 8));
    assert_eq!(pair.epochs(1), (vec![(1, 0), (2, 3)], 10));
    pair.connected = true;
    pair.elect(4, 1);
    let (leader, follower) = (pair.epochs(1), pair.epochs(0));
    assert_eq!(leader, (vec![(1, 0), (2, 3)], 10), "the leader keeps its log");
    assert_eq!(follower, leader);
}

#[test]
fn an_answer_to_an_earlier_life_is_not_taken_for_this_ones() {
    // Broker 1 follows, restarts, and follows again; the leader's answer to its first
    // life's question arrives in its second life (a long network tail). Correlation ids
    // that start again at every life (the commit before this test) made the stale
    // answer match the new question, and the follower cut its log to the stale offset,
    // below its own high watermark.
    let mut pair = Pair::new(TruncationRule::LeaderEpoch);
    pair.elect(1, 0);
    pair.write(0, 5); // both: epoch 1 at 0..5, high watermark 5
    pair.connected = false;
    let first = pair.restart_as_follower(1, 2, 2);
    let second = pair.restart_as_follower(1, 3, 3);
    let correlation = |msg: &Msg| match msg {
        Msg::OffsetForLeaderEpoch { correlation, .. } => *correlation,
        _ => unreachable!(),
    };
    assert_ne!(correlation(&first), correlation(&second), "two lives asked with one id");
    // The stale answer: epoch 1 ends at 0 (a log the leader had back then, say).
    let stale = Msg::OffsetForLeaderEpochResponse {
        partition: 0,
        correlation: correlation(&first),
        result: Ok((1, 0)),
    };
    pair.deliver(0, 1, stale);
    assert_eq!(pair.epochs(1), (vec![(1, 0)], 5), "the follower took an earlier life's answer");
}
