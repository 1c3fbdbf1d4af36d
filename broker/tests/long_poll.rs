//! Long-poll follower fetches (Kafka's `replica.fetch.wait.max.ms`, with
//! `replica.fetch.min.bytes` = 1): a leader holds a follower's fetch that finds nothing
//! new until its log grows, the wait ends, or its leadership does. The follower's
//! progress counts when the fetch arrives, so neither the ISR nor the high watermark
//! waits for the answer.

mod support;

use logjam_broker::batch::{ProducerStamp, Record};
use logjam_broker::broker::{Broker, BrokerConfig};
use logjam_broker::log::{FlushPolicy, LogConfig};
use logjam_broker::protocol::{Acks, ErrorCode, Isolation, Msg, NodeId, PartitionState};
use logjam_broker::storage::FsStorage;
use support::{CONTROLLER, MS, broker_config};

const CLIENT: NodeId = 5;
const FOLLOWER: NodeId = 1;
const WAIT_NS: u64 = 50 * MS;
const TICK_NS: u64 = 5 * MS;
/// Every test starts here (not at 0, so no timer is due at once by accident).
const T0: u64 = 1_000 * MS;

fn config(id: NodeId, wait_ns: u64, flush: FlushPolicy) -> BrokerConfig {
    let base = broker_config(id);
    BrokerConfig {
        min_insync_replicas: 2,
        log: LogConfig { flush, ..base.log },
        replica_fetch_wait_max_ns: wait_ns,
        ..base
    }
}

/// The controller's word on partition 0 (replicas 0, 1 and 2, all in sync).
fn states(epoch: u32, leader: NodeId) -> Msg {
    let state = PartitionState {
        partition: 0,
        replicas: vec![0, 1, 2],
        leader: Some(leader),
        leader_epoch: epoch,
        isr: vec![0, 1, 2],
        partition_epoch: epoch,
    };
    Msg::HeartbeatAck { states: vec![state], registration: Some((1, 1)) }
}

fn produce(correlation: u64, acks: Acks) -> Msg {
    Msg::Produce {
        partition: 0,
        correlation,
        leader_epoch: None,
        acks,
        producer: ProducerStamp::NONE,
        records: vec![Record { timestamp_ns: 0, key: b"k".to_vec(), value: b"v".to_vec() }],
        expected_version: None,
        transactional: false,
    }
}

/// What a follower's fetch got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Data,
    Empty,
    Refused(ErrorCode),
}

/// One step of a leader's life, all at `T0` unless it is a tick.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Follower 1 fetches (in epoch 1) at this offset, with this correlation.
    Fetch {
        correlation: u64,
        offset: u64,
    },
    Produce,
    /// A transaction marker (of a producer the partition has not seen): an append too.
    Marker,
    Tick {
        after_ns: u64,
    },
    /// The controller moves the partition to this epoch and leader.
    Elect {
        epoch: u32,
        leader: NodeId,
    },
}

/// Broker 0 leads partition 0 in epoch 1 and takes the steps; after each, follower 1's
/// answers (correlation and what it got) must be exactly the ones given.
fn check(wait_ns: u64, steps: &[(Step, &[(u64, Answer)])]) {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = FsStorage::new(dir.path());
    let mut broker = Broker::new(config(0, wait_ns, FlushPolicy::Never), 1);
    broker.handle(&mut disk, T0, CONTROLLER, states(1, 0));
    assert!(broker.is_leader(0));
    broker.drain_outbox().for_each(drop);
    for (index, (step, want)) in steps.iter().enumerate() {
        match *step {
            Step::Fetch { correlation, offset } => {
                let fetch = Msg::Fetch {
                    partition: 0,
                    correlation,
                    leader_epoch: 1,
                    fetch_offset: offset,
                    replica: Some((FOLLOWER, 1)),
                    durable_offset: offset,
                    max_bytes: 1 << 20,
                    isolation: Isolation::ReadUncommitted,
                };
                broker.handle(&mut disk, T0, FOLLOWER, fetch);
            }
            Step::Produce => broker.handle(&mut disk, T0, CLIENT, produce(0, Acks::Leader)),
            Step::Marker => {
                let marker = Msg::WriteTxnMarker {
                    correlation: 0,
                    partition: 0,
                    producer_id: 7,
                    producer_epoch: 1,
                    commit: true,
                    coordinator_epoch: 0,
                };
                broker.handle(&mut disk, T0, CLIENT, marker);
            }
            Step::Tick { after_ns } => broker.tick(&mut disk, T0 + after_ns),
            Step::Elect { epoch, leader } => {
                broker.handle(&mut disk, T0, CONTROLLER, states(epoch, leader))
            }
        }
        assert_eq!(broker.halted(), None);
        let got: Vec<(u64, Answer)> = broker
            .drain_outbox()
            .filter_map(|(to, msg)| match msg {
                Msg::FetchResponse { correlation, result, .. } if to == FOLLOWER => {
                    let answer = match result {
                        Ok(data) if data.batches.is_empty() => Answer::Empty,
                        Ok(_) => Answer::Data,
                        Err(code) => Answer::Refused(code),
                    };
                    Some((correlation, answer))
                }
                _ => None,
            })
            .collect();
        assert_eq!(got, *want, "step {index} ({step:?})");
    }
}

#[test]
fn a_leader_holds_a_fetch_at_its_log_end_until_there_is_something_to_say() {
    use Answer::*;
    use Step::*;
    let at_end = |correlation| Fetch { correlation, offset: 0 };
    type Case<'a> = (&'a str, u64, Vec<(Step, &'a [(u64, Answer)])>);
    let cases: Vec<Case> = vec![
        ("no wait: answered at once (the old behaviour)", 0, vec![(at_end(1), &[(1, Empty)])]),
        (
            "behind the log end: answered at once",
            WAIT_NS,
            vec![(Produce, &[]), (Fetch { correlation: 1, offset: 0 }, &[(1, Data)])],
        ),
        ("a produce appends", WAIT_NS, vec![(at_end(1), &[]), (Produce, &[(1, Data)])]),
        ("a marker appends", WAIT_NS, vec![(at_end(1), &[]), (Marker, &[(1, Data)])]),
        (
            "the wait ends: answered empty on a tick, once",
            WAIT_NS,
            vec![
                (at_end(1), &[]),
                (Tick { after_ns: WAIT_NS - MS }, &[]),
                (Tick { after_ns: WAIT_NS }, &[(1, Empty)]),
                (Tick { after_ns: 2 * WAIT_NS }, &[]),
                (Produce, &[]),
            ],
        ),
        (
            "answered by the append, not again by the wait",
            WAIT_NS,
            vec![(at_end(1), &[]), (Produce, &[(1, Data)]), (Tick { after_ns: WAIT_NS }, &[])],
        ),
        (
            "a newer fetch of the follower takes the held one's place",
            WAIT_NS,
            vec![(at_end(1), &[]), (at_end(2), &[]), (Produce, &[(2, Data)])],
        ),
        (
            "an older copy arriving late is answered at once; the newer one stays",
            WAIT_NS,
            vec![(at_end(2), &[]), (at_end(1), &[(1, Empty)]), (Produce, &[(2, Data)])],
        ),
        (
            "leadership moves away: refused as a fresh fetch would be",
            WAIT_NS,
            vec![
                (at_end(1), &[]),
                (Elect { epoch: 2, leader: 2 }, &[(1, Refused(ErrorCode::NotLeader))]),
            ],
        ),
        (
            "a new epoch under the same leader: fenced",
            WAIT_NS,
            vec![
                (at_end(1), &[]),
                (Elect { epoch: 2, leader: 0 }, &[(1, Refused(ErrorCode::FencedLeaderEpoch))]),
                (Produce, &[]),
            ],
        ),
    ];
    for (name, wait_ns, steps) in cases {
        println!("case: {name}");
        check(wait_ns, &steps);
    }
}

/// Three brokers on real files, wired without a network: every message arrives at once,
/// every sync completes at once. Broker 0 leads partition 0.
struct Cluster {
    now_ns: u64,
    brokers: Vec<Broker>,
    disks: Vec<FsStorage>,
    /// Messages to the controller (which is not there) and to the client.
    to_controller: Vec<Msg>,
    to_client: Vec<Msg>,
    /// Follower fetches sent, by follower.
    fetches: [u64; 3],
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    fn new(configure: impl Fn(NodeId) -> BrokerConfig) -> Cluster {
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut cluster = Cluster {
            now_ns: T0,
            brokers: (0..3).map(|id| Broker::new(configure(id), 1)).collect(),
            disks: dirs.iter().map(|dir| FsStorage::new(dir.path())).collect(),
            to_controller: Vec::new(),
            to_client: Vec::new(),
            fetches: [0; 3],
            _dirs: dirs,
        };
        for id in 0..3 {
            cluster.deliver(CONTROLLER, id, states(1, 0));
        }
        cluster.settle();
        cluster
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, msg: Msg) {
        match to {
            CONTROLLER => self.to_controller.push(msg),
            CLIENT => self.to_client.push(msg),
            to => {
                let to = to as usize;
                self.brokers[to].handle(&mut self.disks[to], self.now_ns, from, msg);
                assert_eq!(self.brokers[to].halted(), None);
            }
        }
    }

    /// Delivers and completes everything until all is quiet.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut sent = Vec::new();
            for id in 0..3 {
                for (ticket, result) in self.disks[id].take_completed() {
                    self.brokers[id].on_synced(&mut self.disks[id], self.now_ns, ticket, result);
                }
                let from = id as NodeId;
                sent.extend(self.brokers[id].drain_outbox().map(|(to, msg)| (from, to, msg)));
            }
            if sent.is_empty() {
                return;
            }
            for (from, to, msg) in sent {
                if let Msg::Fetch { replica: Some(_), .. } = msg {
                    self.fetches[from as usize] += 1;
                }
                self.deliver(from, to, msg);
            }
        }
        panic!("the cluster never quietened");
    }

    /// Ticks every broker every `TICK_NS` up to `until_ns`.
    fn run_until(&mut self, until_ns: u64) {
        while self.now_ns + TICK_NS <= until_ns {
            self.now_ns += TICK_NS;
            for id in 0..3 {
                self.brokers[id].tick(&mut self.disks[id], self.now_ns);
            }
            self.settle();
        }
    }

    fn high_watermarks(&self) -> Vec<u64> {
        self.brokers.iter().map(|broker| broker.high_watermark(0).unwrap()).collect()
    }

    fn isr_changes(&self) -> usize {
        self.to_controller.iter().filter(|msg| matches!(msg, Msg::AlterIsr { .. })).count()
    }
}

#[test]
fn a_quiet_partition_keeps_its_isr_while_its_fetches_are_held() {
    // The leader holds a fetch longer than a follower may lag (300 ms), and the
    // follower waits for it: only counting a follower held at the log end as caught up
    // keeps it in the ISR.
    let mut cluster = Cluster::new(|id| BrokerConfig {
        request_timeout_ns: 1_000 * MS,
        ..config(id, 400 * MS, FlushPolicy::Never)
    });
    cluster.deliver(CLIENT, 0, produce(1, Acks::All));
    cluster.settle();
    let fetched = cluster.fetches;
    cluster.run_until(T0 + 3_000 * MS);
    assert_eq!(cluster.isr_changes(), 0, "no follower left the ISR of a quiet partition");
    // Held, not answered at every tick: about one fetch per wait.
    for (follower, (now, then)) in cluster.fetches.iter().zip(fetched).enumerate().skip(1) {
        let fetches = now - then;
        assert!((6..=9).contains(&fetches), "follower {follower}: {fetches} fetches in 3 s");
    }
}

#[test]
fn the_high_watermark_reaches_followers_and_produces_do_not_wait_for_the_poll() {
    for flush in [FlushPolicy::Never, FlushPolicy::EveryAppend] {
        let mut cluster = Cluster::new(|id| config(id, WAIT_NS, flush));
        cluster.run_until(T0 + 20 * MS); // the followers' fetches are held
        assert!(cluster.fetches[1] > 0 && cluster.fetches[2] > 0);
        let start_ns = cluster.now_ns;
        cluster.deliver(CLIENT, 0, produce(1, Acks::All));
        cluster.settle();
        // Committed without a tick: the held fetches were answered at the append, and
        // (with durable acknowledgements) the followers fetched again once their copy
        // was on disk.
        assert_eq!(cluster.now_ns, start_ns);
        let acked = cluster
            .to_client
            .iter()
            .any(|msg| matches!(msg, Msg::ProduceResponse { correlation: 1, result: Ok(0), .. }));
        assert!(acked, "{flush:?}: acknowledged at once: {:?}", cluster.to_client);
        assert_eq!(cluster.high_watermarks()[0], 1, "{flush:?}");
        // The followers learn it with their next answer: at the latest when the wait
        // of the fetch the leader now holds ends.
        cluster.run_until(start_ns + WAIT_NS + TICK_NS);
        assert_eq!(cluster.high_watermarks(), [1, 1, 1], "{flush:?}");
        assert_eq!(cluster.isr_changes(), 0, "{flush:?}");
    }
}
