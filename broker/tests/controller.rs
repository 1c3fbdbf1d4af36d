//! The controller's rules, driven directly (sans-IO) on real files: elections from the
//! ISR, unclean elections only when allowed, stale ISR changes refused, restarted
//! brokers, and metadata that survives the controller's own restart.

use logjam_broker::controller::{Controller, ControllerConfig, ElectionRule};
use logjam_broker::protocol::{LogReport, Msg, NodeId, PartitionState};
use logjam_broker::storage::FsStorage;

const MS: u64 = 1_000_000;
const TIMEOUT_NS: u64 = 200 * MS;

fn config(unclean: bool) -> ControllerConfig {
    ControllerConfig {
        brokers: vec![0, 1, 2],
        partitions: 1,
        replication_factor: 3,
        unclean_leader_election: unclean,
        min_insync_replicas: 1,
        election: ElectionRule::Kip966,
        session_timeout_ns: TIMEOUT_NS,
    }
}

/// A controller on real files, with its syncs completed as soon as they are asked for.
struct Harness {
    _dir: tempfile::TempDir,
    storage: FsStorage,
    controller: Controller,
    config: ControllerConfig,
    now_ns: u64,
}

impl Harness {
    fn new(unclean: bool) -> Harness {
        Harness::with(config(unclean))
    }

    fn with(config: ControllerConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = FsStorage::new(dir.path());
        let controller = Controller::open(&mut storage, config.clone()).unwrap();
        let mut harness = Harness { _dir: dir, storage, controller, config, now_ns: 0 };
        harness.settle();
        harness
    }

    /// Completes every sync until the metadata stops changing.
    fn settle(&mut self) {
        loop {
            let done = self.storage.take_completed();
            if done.is_empty() {
                return;
            }
            for (ticket, result) in done {
                if self.controller.owns(ticket) {
                    self.controller.on_synced(&mut self.storage, ticket, result).unwrap();
                }
            }
        }
    }

    fn heartbeat(&mut self, broker: NodeId, incarnation: u64) {
        self.report(broker, incarnation, None);
    }

    /// A heartbeat reporting partition 0's log as (latest epoch, end offset).
    fn report(&mut self, broker: NodeId, incarnation: u64, log: Option<(u32, u64)>) {
        let logs = log
            .map(|(latest_epoch, end_offset)| LogReport { partition: 0, latest_epoch, end_offset })
            .into_iter()
            .collect();
        let msg = Msg::Heartbeat { broker, incarnation, logs };
        self.controller.handle(&mut self.storage, self.now_ns, broker, msg).unwrap();
        self.settle();
    }

    /// The leader changes the ISR against the current epochs.
    fn alter_isr(&mut self, isr: Vec<NodeId>) {
        let state = self.state();
        let alter = Msg::AlterIsr {
            partition: 0,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            isr: isr.clone(),
            broker_epochs: vec![],
        };
        let leader = state.leader.unwrap();
        self.controller.handle(&mut self.storage, self.now_ns, leader, alter).unwrap();
        self.settle();
        assert_eq!(self.state().isr, isr);
    }

    fn advance(&mut self, by_ns: u64, alive: &[(NodeId, u64)]) {
        self.now_ns += by_ns;
        for &(broker, incarnation) in alive {
            self.heartbeat(broker, incarnation);
        }
        self.controller.tick(&mut self.storage, self.now_ns).unwrap();
        self.settle();
    }

    fn state(&self) -> PartitionState {
        self.controller.durable_states()[0].clone()
    }

    fn reopen(&mut self) {
        self.controller = Controller::open(&mut self.storage, self.config.clone()).unwrap();
        self.settle();
    }
}

const ALL: [(NodeId, u64); 3] = [(0, 10), (1, 11), (2, 12)];

#[test]
fn elects_from_the_isr_and_bumps_the_epoch() {
    let mut h = Harness::new(false);
    assert_eq!(h.state().leader, None, "no leader before brokers are heard from");
    h.advance(MS, &ALL);
    let first = h.state();
    assert_eq!((first.leader, first.leader_epoch, first.isr.clone()), (Some(0), 1, vec![0, 1, 2]));
    // The leader goes silent: the next ISR member takes over in a new epoch.
    h.advance(TIMEOUT_NS + MS, &[(1, 11), (2, 12)]);
    let second = h.state();
    assert_eq!((second.leader, second.leader_epoch), (Some(1), 2));
    assert_eq!(second.isr, vec![1, 2], "the dead leader leaves the ISR");
    assert!(second.partition_epoch > first.partition_epoch);
}

#[test]
fn out_of_isr_replicas_lead_only_when_unclean_election_is_on() {
    for unclean in [false, true] {
        let mut h = Harness::new(unclean);
        h.advance(MS, &ALL);
        // The leader shrinks the ISR to itself (both followers lag).
        let state = h.state();
        let alter = Msg::AlterIsr {
            partition: 0,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            isr: vec![0],
            broker_epochs: vec![],
        };
        h.controller.handle(&mut h.storage, h.now_ns, 0, alter).unwrap();
        h.settle();
        assert_eq!(h.state().isr, vec![0]);
        // Then the only in-sync replica dies.
        h.advance(TIMEOUT_NS + MS, &[(1, 11), (2, 12)]);
        let state = h.state();
        if unclean {
            assert_eq!(
                (state.leader, state.isr.clone()),
                (Some(1), vec![1]),
                "unclean: an out-of-sync replica leads"
            );
        } else {
            assert_eq!(state.leader, None, "clean: the partition waits for its in-sync replica");
        }
    }
}

#[test]
fn stale_isr_changes_are_refused() {
    let mut h = Harness::new(false);
    h.advance(MS, &ALL);
    let state = h.state();
    let alter =
        |partition_epoch, isr: Vec<NodeId>, broker_epochs: Vec<(NodeId, u64)>| Msg::AlterIsr {
            partition: 0,
            leader_epoch: state.leader_epoch,
            partition_epoch,
            isr,
            broker_epochs,
        };
    // Shrink with the current epoch: accepted.
    h.controller
        .handle(&mut h.storage, h.now_ns, 0, alter(state.partition_epoch, vec![0, 1], vec![]))
        .unwrap();
    h.settle();
    let shrunk = h.state();
    assert_eq!(shrunk.isr, vec![0, 1]);
    // The same change again, against the old partition epoch: refused.
    h.controller
        .handle(&mut h.storage, h.now_ns, 0, alter(state.partition_epoch, vec![0], vec![]))
        .unwrap();
    h.settle();
    assert_eq!(h.state().isr, vec![0, 1], "a stale change was applied");
    // A joiner whose progress came from another broker epoch (before a restart): refused.
    let stale_join = alter(shrunk.partition_epoch, vec![0, 1, 2], vec![(2, 999)]);
    h.controller.handle(&mut h.storage, h.now_ns, 0, stale_join).unwrap();
    h.settle();
    assert_eq!(h.state().isr, vec![0, 1], "a join from a stale broker epoch was accepted");
    // A change sent by a broker that does not lead: refused.
    h.controller
        .handle(&mut h.storage, h.now_ns, 1, alter(shrunk.partition_epoch, vec![1], vec![]))
        .unwrap();
    h.settle();
    assert_eq!(h.state().isr, vec![0, 1]);
}

#[test]
fn a_restarted_leader_leaves_the_isr_and_its_epoch_ends() {
    let mut h = Harness::new(false);
    h.advance(MS, &ALL);
    let before = h.state();
    h.heartbeat(0, 99); // broker 0 restarted: a new incarnation
    let after = h.state();
    assert!(!after.isr.contains(&0), "a restarted broker stays in the ISR: {after:?}");
    assert!(after.leader_epoch > before.leader_epoch, "the restarted leader's epoch goes on");
    h.advance(MS, &[(0, 99), (1, 11), (2, 12)]);
    assert_eq!(h.state().leader, Some(1));
}

#[test]
fn metadata_and_producer_ids_survive_a_controller_restart() {
    let mut h = Harness::new(false);
    h.advance(MS, &ALL);
    h.advance(TIMEOUT_NS + MS, &[(1, 11), (2, 12)]);
    let before = h.state();
    let mut ids = Vec::new();
    let mut collect = |h: &mut Harness| {
        for (_, msg) in h.controller.drain_outbox() {
            if let Msg::InitProducerIdResponse { producer_id, .. } = msg {
                ids.push(producer_id);
            }
        }
    };
    for correlation in 0..3 {
        h.controller
            .handle(&mut h.storage, h.now_ns, 7, Msg::InitProducerId { correlation })
            .unwrap();
        h.settle();
    }
    collect(&mut h);
    h.reopen();
    assert_eq!(h.state(), before, "the restarted controller forgot its metadata");
    for correlation in 3..6 {
        h.controller
            .handle(&mut h.storage, h.now_ns, 7, Msg::InitProducerId { correlation })
            .unwrap();
        h.settle();
    }
    // The reopened controller learned who is alive afresh, but never reuses an epoch.
    h.advance(MS, &[(1, 11), (2, 12)]);
    assert!(h.state().leader_epoch >= before.leader_epoch);
    collect(&mut h);
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "a producer id was handed out twice: {ids:?}");
    assert_eq!(ids.len(), 6, "every request was answered once its id was durable");
}

#[test]
fn unreadable_metadata_is_refused_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = FsStorage::new(dir.path());
    drop(Controller::open(&mut storage, config(false)).unwrap());
    std::fs::write(dir.path().join("controller/metadata.checkpoint"), b"garbage").unwrap();
    let error = Controller::open(&mut storage, config(false)).err().expect("opened over garbage");
    assert!(error.to_string().contains("controller/metadata.checkpoint"), "{error}");
}

#[test]
fn a_restarted_controller_gives_every_registered_broker_a_session_before_it_elects() {
    let mut h = Harness::new(false);
    h.advance(MS, &ALL);
    let before = h.state();
    assert_eq!((before.leader, before.isr.clone()), (Some(0), vec![0, 1, 2]));
    // The controller restarts long after it last heard from anyone; broker 2 is the
    // first to speak. The others are not dead: they have not had a session yet.
    h.now_ns += 10 * TIMEOUT_NS;
    h.reopen();
    h.advance(MS, &[(2, 12)]);
    let after = h.state();
    assert_eq!(after.leader, Some(0), "the leader was taken for dead: {after:?}");
    assert_eq!(after.isr, vec![0, 1, 2], "the ISR shrank to whoever spoke first: {after:?}");
    // A broker that stays silent for a whole session after the restart is dead.
    h.advance(TIMEOUT_NS + MS, &[(1, 11), (2, 12)]);
    let later = h.state();
    assert_eq!((later.leader, later.isr.clone()), (Some(1), vec![1, 2]));
}

#[test]
fn the_last_isr_member_restarted_is_elected_again_only_before_kip_966() {
    // (rule, leader once the restarted broker is back)
    let cases = [(ElectionRule::Kip966, Some(2)), (ElectionRule::PreKip966, Some(0))];
    for (election, leader) in cases {
        let config = ControllerConfig { min_insync_replicas: 2, election, ..config(false) };
        let mut h = Harness::with(config);
        h.advance(MS, &ALL);
        // Before anyone was heard from nobody led and nothing changed: the first leader
        // leads epoch 1 with every replica in sync.
        let first = h.state();
        assert_eq!((first.leader_epoch, first.isr.clone()), (1, vec![0, 1, 2]), "{election:?}");
        // Both followers stop fetching: the ISR shrinks to the leader alone, and the one
        // that left it below min ISR holds everything committed (the high watermark
        // stops there).
        h.alter_isr(vec![0, 2]);
        h.alter_isr(vec![0]);
        if election == ElectionRule::Kip966 {
            assert_eq!(h.controller.eligible_leader_replicas(0), [2]);
            // The ELR is durable metadata.
            h.reopen();
            assert_eq!(h.controller.eligible_leader_replicas(0), [2]);
        }
        // The leader restarts having lost what it never synced.
        h.heartbeat(0, 99);
        h.advance(MS, &[(0, 99), (1, 11), (2, 12)]);
        let state = h.state();
        assert_eq!(state.leader, leader, "{election:?}: {state:?}");
        // An elected ELR member leaves the ELR for the ISR.
        assert!(h.controller.eligible_leader_replicas(0).is_empty(), "{election:?}");
    }
}

#[test]
fn with_isr_and_elr_emptied_by_restarts_the_most_complete_log_leads_once_all_report() {
    let config = ControllerConfig {
        min_insync_replicas: 2,
        election: ElectionRule::Kip966,
        ..config(false)
    };
    let mut h = Harness::with(config);
    h.advance(MS, &ALL);
    // Every broker restarts (a power loss): none is known to hold everything committed.
    h.report(0, 99, Some((1, 5)));
    h.report(1, 98, Some((1, 9)));
    h.report(2, 97, None);
    h.advance(MS, &[]);
    let state = h.state();
    assert_eq!((state.leader, state.isr.clone()), (None, vec![]), "elected before 2 reported");
    assert!(h.controller.eligible_leader_replicas(0).is_empty());
    // Broker 2's report from its earlier life does not count; this one does.
    h.report(2, 97, Some((1, 7)));
    h.advance(MS, &[]);
    let state = h.state();
    assert_eq!((state.leader, state.isr), (Some(1), vec![1]), "not the longest log of epoch 1");
}

#[test]
fn a_leader_move_hands_a_live_leadership_to_the_next_live_isr_member_in_a_new_epoch() {
    let mut h = Harness::new(false);
    assert!(!h.controller.move_leader(0, h.now_ns), "no leader yet: nothing to move");
    h.advance(MS, &ALL);
    let before = h.state();
    assert_eq!(before.leader, Some(0));
    assert!(h.controller.move_leader(0, h.now_ns));
    h.advance(MS, &ALL);
    let after = h.state();
    assert_eq!((after.leader, after.isr.clone()), (Some(1), before.isr.clone()), "ISR unchanged");
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    assert!(after.partition_epoch > before.partition_epoch);
    // Round the ISR, skipping members that are not alive (n2 went silent; its leader
    // has not shrunk the ISR yet).
    h.advance(TIMEOUT_NS + MS, &[(0, 10), (1, 11)]);
    assert_eq!(h.state().leader, Some(1));
    assert!(h.controller.move_leader(0, h.now_ns));
    h.advance(MS, &[(0, 10), (1, 11)]);
    assert_eq!(h.state().leader, Some(0), "moved to the silent n2");
    // Alone in the ISR, a leader stays.
    h.alter_isr(vec![0]);
    let alone = h.state();
    assert!(!h.controller.move_leader(0, h.now_ns), "moved to a replica out of the ISR");
    h.advance(MS, &[(0, 10), (1, 11)]);
    assert_eq!(h.state().leader_epoch, alone.leader_epoch);
}
