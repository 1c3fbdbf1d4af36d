//! Transactions end to end on real files, without a network: one broker leading two
//! partitions, the transaction coordinator, a transactional producer and consumers,
//! wired by a router that can hold a message back (a late produce).
//!
//! The KIP-890 defence is shown both ways: under KIP-890 a produce of an aborted
//! transaction that arrives late is fenced; under the legacy protocol the same late
//! produce opens a transaction nobody will end (the last stable offset hangs), or, when
//! the producer writes to that partition again, passes for the next transaction's
//! batch and is committed with it.

mod support;

use logjam_broker::broker::{Broker, BrokerConfig};
use logjam_broker::client::{Consumer, ConsumerConfig, Outcome};
use logjam_broker::coordinator::{Coordinator, CoordinatorConfig, PRODUCER_EPOCH_MAX};
use logjam_broker::log::{FlushPolicy, LogConfig};
use logjam_broker::protocol::{ErrorCode, Isolation, Msg, NodeId, PartitionState};
use logjam_broker::storage::FsStorage;
use logjam_broker::txn::TxnProtocol;
use logjam_broker::txn_producer::{TxnProducer, TxnProducerConfig, TxnRecord};
use support::{CONTROLLER, MS, broker_config};

const BROKER: NodeId = 0;
const PRODUCER: NodeId = 5;
const CONSUMER: NodeId = 6;
const COORDINATOR: NodeId = 8;

fn log_config(flush: FlushPolicy) -> LogConfig {
    LogConfig {
        segment_bytes_max: 1 << 20,
        index_interval_bytes: 4096,
        flush,
        verify_on_open: true,
    }
}

fn states() -> Vec<PartitionState> {
    (0..2)
        .map(|partition| PartitionState {
            partition,
            replicas: vec![BROKER],
            leader: Some(BROKER),
            leader_epoch: 1,
            isr: vec![BROKER],
            partition_epoch: 1,
        })
        .collect()
}

fn coordinator_config(protocol: TxnProtocol) -> CoordinatorConfig {
    CoordinatorConfig {
        id: COORDINATOR,
        controller: CONTROLLER,
        protocol,
        partitions: 2,
        txn_timeout_ns: 1_000 * MS,
        request_timeout_ns: 100 * MS,
        txn_ids_max: 16,
        producer_epoch_max: PRODUCER_EPOCH_MAX,
        log: log_config(FlushPolicy::EveryAppend),
    }
}

fn producer_config(txn_id: &str, attempts_max: u32) -> TxnProducerConfig {
    TxnProducerConfig {
        controller: CONTROLLER,
        coordinator: COORDINATOR,
        partitions: 2,
        txn_id: txn_id.to_owned(),
        request_timeout_ns: 100 * MS,
        retry_backoff_ns: 10 * MS,
        attempts_max,
        delivery_timeout_ns: 250 * MS,
    }
}

struct Cluster {
    now_ns: u64,
    broker: Broker,
    broker_disk: FsStorage,
    coordinator: Coordinator,
    coordinator_disk: FsStorage,
    producer: TxnProducer,
    consumers: Vec<Consumer>,
    /// Produces to this partition are held back instead of delivered, while set.
    hold_produces_to: Option<u32>,
    /// Transaction markers are lost on their way, while set.
    drop_markers: bool,
    /// This many answers to markers are lost on their way.
    drop_marker_answers: u32,
    /// The coordinator's answers to commits and aborts are lost, while set.
    drop_end_txn_answers: bool,
    coordinator_config: CoordinatorConfig,
    held: Vec<(NodeId, NodeId, Msg)>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Cluster {
    fn new(protocol: TxnProtocol) -> Cluster {
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut broker_disk = FsStorage::new(dirs.0.path());
        let mut coordinator_disk = FsStorage::new(dirs.1.path());
        let mut broker = Broker::new(
            BrokerConfig {
                txn_coordinator: Some(COORDINATOR),
                txn_protocol: protocol,
                ..broker_config(BROKER)
            },
            1,
        );
        let ack = Msg::HeartbeatAck { states: states(), registration: Some((1, 1)) };
        broker.handle(&mut broker_disk, 0, CONTROLLER, ack);
        broker.drain_outbox().for_each(drop);
        let coordinator_config = coordinator_config(protocol);
        let coordinator =
            Coordinator::open(&mut coordinator_disk, coordinator_config.clone(), 0).unwrap();
        let producer = TxnProducer::new(producer_config("t", 3));
        let consumers = [Isolation::ReadCommitted, Isolation::ReadUncommitted]
            .into_iter()
            .map(|isolation| {
                Consumer::new(ConsumerConfig {
                    controller: CONTROLLER,
                    partitions: vec![0, 1],
                    request_timeout_ns: 100 * MS,
                    max_bytes: 1 << 20,
                    isolation,
                })
            })
            .collect();
        let mut cluster = Cluster {
            now_ns: 0,
            broker,
            broker_disk,
            coordinator,
            coordinator_disk,
            producer,
            consumers,
            hold_produces_to: None,
            drop_markers: false,
            drop_marker_answers: 0,
            drop_end_txn_answers: false,
            coordinator_config,
            held: Vec::new(),
            _dirs: dirs,
        };
        cluster.settle();
        cluster
    }

    /// Delivers everything in flight (but what is held back) until all is quiet.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut sent: Vec<(NodeId, NodeId, Msg)> = Vec::new();
            sent.extend(self.broker.drain_outbox().map(|(to, m)| (BROKER, to, m)));
            sent.extend(self.coordinator.drain_outbox().map(|(to, m)| (COORDINATOR, to, m)));
            sent.extend(self.producer.drain_outbox().map(|(to, m)| (PRODUCER, to, m)));
            for (i, consumer) in self.consumers.iter_mut().enumerate() {
                let from = CONSUMER + 10 * i as u32;
                sent.extend(consumer.drain_outbox().map(|(to, m)| (from, to, m)));
            }
            for (ticket, result) in self.coordinator_disk.take_completed() {
                self.coordinator.on_synced(&mut self.coordinator_disk, ticket, result);
            }
            for (ticket, result) in self.broker_disk.take_completed() {
                self.broker.on_synced(&mut self.broker_disk, self.now_ns, ticket, result);
            }
            if sent.is_empty() {
                return;
            }
            for (from, to, msg) in sent {
                if self.drop_markers && matches!(msg, Msg::WriteTxnMarker { .. }) {
                    continue;
                }
                if self.drop_end_txn_answers && matches!(msg, Msg::EndTxnResponse { .. }) {
                    continue;
                }
                if self.drop_marker_answers > 0 && matches!(msg, Msg::WriteTxnMarkerResponse { .. })
                {
                    self.drop_marker_answers -= 1;
                    continue;
                }
                if let (Msg::Produce { partition, .. }, Some(held)) = (&msg, self.hold_produces_to)
                {
                    if *partition == held {
                        self.held.push((from, to, msg));
                        continue;
                    }
                }
                self.deliver(from, to, msg);
            }
        }
        panic!("the cluster never quietened");
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, msg: Msg) {
        let now = self.now_ns;
        match to {
            BROKER => self.broker.handle(&mut self.broker_disk, now, from, msg),
            COORDINATOR => self.coordinator.handle(&mut self.coordinator_disk, now, from, msg),
            PRODUCER => self.producer.handle(now, msg),
            CONTROLLER => {
                if let Msg::Metadata { correlation } = msg {
                    let answer = Msg::MetadataResponse { correlation, states: states() };
                    self.deliver(CONTROLLER, from, answer);
                }
            }
            consumer => self.consumers[((consumer - CONSUMER) / 10) as usize].handle(now, msg),
        }
        assert_eq!(self.broker.halted(), None);
        assert_eq!(self.coordinator.halted(), None);
    }

    /// Lets time pass in steps, ticking everyone.
    fn advance(&mut self, by_ns: u64) {
        let end = self.now_ns + by_ns;
        while self.now_ns < end {
            self.now_ns += 10 * MS;
            let now = self.now_ns;
            self.broker.tick(&mut self.broker_disk, now);
            self.coordinator.tick(&mut self.coordinator_disk, now);
            self.producer.tick(now);
            self.consumers.iter_mut().for_each(|c| c.tick(now));
            self.settle();
        }
    }

    fn init(&mut self) {
        self.producer.init(self.now_ns);
        self.advance(100 * MS);
        let outcomes: Vec<_> = self.producer.drain_init().collect();
        assert_eq!(outcomes, vec![Outcome::Ok(())]);
    }

    fn transact(&mut self, records: &[(u32, &str)]) -> Outcome<Vec<u64>> {
        self.transact_records(txn_records(records))
    }

    fn transact_records(&mut self, records: Vec<TxnRecord>) -> Outcome<Vec<u64>> {
        self.producer.transact(self.now_ns, records);
        for _ in 0..200 {
            self.advance(10 * MS);
            if let Some(outcome) = self.producer.drain_txn().next() {
                return outcome;
            }
        }
        panic!("the transaction never ended");
    }

    /// Every value consumer `index` reads, per partition, from where it stands.
    fn read(&mut self, index: usize) -> [Vec<String>; 2] {
        let mut values = [Vec::new(), Vec::new()];
        for _ in 0..20 {
            while !self.consumers[index].poll(self.now_ns) {
                self.advance(10 * MS);
            }
            self.settle();
            for result in self.consumers[index].drain_done().collect::<Vec<_>>() {
                if let Outcome::Ok(records) = &result.outcome {
                    let partition = result.partition as usize;
                    values[partition].extend(records.iter().map(|r| r.value.clone()));
                }
            }
        }
        values
    }

    fn last_stable_offset(&mut self, partition: u32) -> u64 {
        let fetch = Msg::Fetch {
            partition,
            correlation: 1,
            leader_epoch: 1,
            fetch_offset: 0,
            replica: None,
            durable_offset: 0,
            max_bytes: 1 << 20,
            isolation: Isolation::ReadCommitted,
        };
        self.broker.handle(&mut self.broker_disk, self.now_ns, CONSUMER, fetch);
        let answer = self.broker.drain_outbox().find_map(|(_, msg)| match msg {
            Msg::FetchResponse { result: Ok(data), .. } => Some(data),
            _ => None,
        });
        let data = answer.expect("the leader answers");
        data.last_stable_offset
    }
}

/// Records of key `k`, each (partition, value), without expected versions.
fn txn_records(records: &[(u32, &str)]) -> Vec<TxnRecord> {
    records
        .iter()
        .map(|&(partition, value)| TxnRecord {
            partition,
            key: b"k".to_vec(),
            value: value.as_bytes().to_vec(),
            expected_version: None,
        })
        .collect()
}

#[test]
fn committed_is_seen_whole_and_aborted_only_by_read_uncommitted() {
    let mut cluster = Cluster::new(TxnProtocol::Kip890);
    cluster.init();
    assert!(matches!(cluster.transact(&[(0, "a"), (1, "b")]), Outcome::Ok(_)));
    // A transaction whose batch to p1 is never acknowledged is aborted.
    cluster.hold_produces_to = Some(1);
    let outcome = cluster.transact(&[(0, "c"), (1, "d")]);
    assert!(matches!(outcome, Outcome::Fail(_)), "{outcome:?}");
    cluster.held.clear(); // lost in the network
    cluster.hold_produces_to = None;
    assert!(matches!(cluster.transact(&[(0, "e"), (1, "f")]), Outcome::Ok(_)));
    let [p0, p1] = cluster.read(0);
    assert_eq!(p0, ["a", "e"], "read_committed drops the aborted c");
    assert_eq!(p1, ["b", "f"]);
    assert_eq!(cluster.read(1)[0], ["a", "c", "e"], "read_uncommitted sees it");
}

#[test]
fn an_open_transaction_holds_the_stable_offset_until_its_marker() {
    let mut cluster = Cluster::new(TxnProtocol::Kip890);
    cluster.init();
    assert!(matches!(cluster.transact(&[(0, "a")]), Outcome::Ok(_)));
    let stable = cluster.last_stable_offset(0);
    assert_eq!(stable, 2, "a record and its marker");
    // A transaction left open (its producer goes silent) holds the stable offset
    // until the coordinator's timeout aborts it.
    cluster.hold_produces_to = Some(0);
    cluster.producer.transact(
        cluster.now_ns,
        vec![TxnRecord {
            partition: 0,
            key: b"k".to_vec(),
            value: b"b".to_vec(),
            expected_version: None,
        }],
    );
    cluster.advance(30 * MS); // added, its batch in flight
    cluster.hold_produces_to = None;
    // The producer dies; its batch arrives after.
    cluster.producer = TxnProducer::new(producer_config("other", 3));
    let (from, to, msg) = cluster.held.remove(0);
    cluster.deliver(from, to, msg);
    cluster.settle();
    assert_eq!(cluster.last_stable_offset(0), 2, "b is undecided");
    cluster.advance(1_200 * MS);
    assert_eq!(cluster.last_stable_offset(0), 4, "the timeout aborted it");
    assert_eq!(cluster.read(0)[0], ["a"]);
}

/// A late produce of an aborted transaction: fenced under KIP-890; under the legacy
/// protocol it opens a transaction that hangs, or joins the next one.
#[test]
fn a_late_produce_of_an_aborted_transaction() {
    for protocol in [TxnProtocol::Kip890, TxnProtocol::Legacy] {
        for next_writes_there in [false, true] {
            let mut cluster = Cluster::new(protocol);
            cluster.init();
            cluster.hold_produces_to = Some(1);
            let outcome = cluster.transact(&[(0, "a"), (1, "late")]);
            assert!(matches!(outcome, Outcome::Fail(_)), "{outcome:?}");
            cluster.hold_produces_to = None;
            // The first attempt arrives now, after the abort's markers.
            let (from, to, msg) = cluster.held.remove(0);
            cluster.held.clear();
            cluster.deliver(from, to, msg);
            cluster.settle();
            let next: &[(u32, &str)] =
                if next_writes_there { &[(0, "b"), (1, "c")] } else { &[(0, "b")] };
            let outcome = cluster.transact(next);
            cluster.advance(2_000 * MS);
            let what = format!("{protocol:?}, next writes there: {next_writes_there}");
            match (protocol, next_writes_there) {
                (TxnProtocol::Kip890, _) => {
                    assert!(matches!(outcome, Outcome::Ok(_)), "{what}: {outcome:?}");
                    let [_, read] = cluster.read(0);
                    let want: &[&str] = if next_writes_there { &["c"] } else { &[] };
                    assert_eq!(read, want, "{what}: the late produce was fenced");
                    let stable = cluster.last_stable_offset(1);
                    assert!(stable > 0 || !next_writes_there, "{what}");
                }
                (TxnProtocol::Legacy, false) => {
                    assert!(matches!(outcome, Outcome::Ok(_)), "{what}: {outcome:?}");
                    assert_eq!(
                        cluster.last_stable_offset(1),
                        1,
                        "{what}: the late batch opened a transaction that never ends"
                    );
                }
                (TxnProtocol::Legacy, true) => {
                    assert!(matches!(outcome, Outcome::Ok(_)), "{what}: {outcome:?}");
                    // The next transaction's batch reused the sequence of the late one
                    // and was taken for its retry: the aborted record is committed,
                    // and the acknowledged c is nowhere.
                    assert_eq!(cluster.read(0)[1], ["late"], "{what}");
                }
            }
        }
    }
}

#[test]
fn a_new_producer_with_the_same_id_fences_the_old_one() {
    let mut cluster = Cluster::new(TxnProtocol::Kip890);
    cluster.init();
    cluster.hold_produces_to = Some(0);
    cluster.producer.transact(
        cluster.now_ns,
        vec![TxnRecord {
            partition: 0,
            key: b"k".to_vec(),
            value: b"zombie".to_vec(),
            expected_version: None,
        }],
    );
    cluster.advance(20 * MS);
    let zombie =
        std::mem::replace(&mut cluster.producer, TxnProducer::new(producer_config("t", 10)));
    cluster.hold_produces_to = None;
    cluster.init(); // fences the zombie: its transaction is aborted
    let held = std::mem::take(&mut cluster.held);
    for (from, to, msg) in held {
        cluster.deliver(from, to, msg);
    }
    cluster.settle();
    drop(zombie);
    assert!(matches!(cluster.transact(&[(0, "fresh")]), Outcome::Ok(_)));
    assert_eq!(cluster.read(0)[0], ["fresh"], "the zombie's record never becomes visible");
}

/// A coordinator that crashes after it decided to commit (durably) but before any
/// marker landed finishes the commit when it starts again: what it told the producer
/// holds.
#[test]
fn a_restarted_coordinator_finishes_the_commit_it_prepared() {
    let mut cluster = Cluster::new(TxnProtocol::Kip890);
    cluster.init();
    cluster.drop_markers = true;
    cluster.producer.transact(cluster.now_ns, txn_records(&[(0, "a"), (1, "b")]));
    cluster.advance(50 * MS);
    let outcome: Vec<_> = cluster.producer.drain_txn().collect();
    assert!(matches!(outcome.as_slice(), [Outcome::Ok(_)]), "{outcome:?}");
    assert_eq!(cluster.last_stable_offset(0), 0, "no marker yet: undecided");
    // The coordinator crashes; a new one reads its state back.
    let config = cluster.coordinator_config.clone();
    cluster.coordinator =
        Coordinator::open(&mut cluster.coordinator_disk, config, cluster.now_ns).unwrap();
    cluster.drop_markers = false;
    cluster.advance(300 * MS);
    let [p0, p1] = cluster.read(0);
    assert_eq!((p0, p1), (vec!["a".to_owned()], vec!["b".to_owned()]));
    assert_eq!(cluster.last_stable_offset(0), 2);
}

/// The coordinator writes no marker (and answers nothing) before the record that
/// decided the transaction is durable: a crash before then must not leave one
/// partition acting on a decision the coordinator's next life does not know, which
/// could end the transaction the other way elsewhere.
#[test]
fn no_marker_leaves_before_the_decision_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = FsStorage::new(dir.path());
    let config = coordinator_config(TxnProtocol::Kip890);
    let mut coordinator = Coordinator::open(&mut disk, config, 0).unwrap();
    // Sends a request, lets every sync complete, and returns what came out.
    let exchange = |coordinator: &mut Coordinator, disk: &mut FsStorage, msg: Msg| {
        coordinator.handle(disk, 0, PRODUCER, msg);
        let before_sync: Vec<Msg> = coordinator.drain_outbox().map(|(_, m)| m).collect();
        for (ticket, result) in disk.take_completed() {
            coordinator.on_synced(disk, ticket, result);
        }
        let after_sync: Vec<Msg> = coordinator.drain_outbox().map(|(_, m)| m).collect();
        (before_sync, after_sync)
    };
    let (_, answers) = exchange(
        &mut coordinator,
        &mut disk,
        Msg::InitTxn { correlation: 1, txn_id: "t".to_owned() },
    );
    let Some(Msg::InitTxnResponse { result: Ok((producer_id, producer_epoch)), .. }) =
        answers.into_iter().next()
    else {
        panic!("init answered once durable")
    };
    let add = Msg::AddPartitionsToTxn {
        correlation: 2,
        txn_id: "t".to_owned(),
        producer_id,
        producer_epoch,
        partitions: vec![0, 1],
    };
    exchange(&mut coordinator, &mut disk, add);
    let end = Msg::EndTxn {
        correlation: 3,
        txn_id: "t".to_owned(),
        producer_id,
        producer_epoch,
        commit: true,
    };
    let (before_sync, after_sync) = exchange(&mut coordinator, &mut disk, end);
    assert!(before_sync.is_empty(), "sent before the decision was durable: {before_sync:?}");
    assert!(
        after_sync.iter().any(|m| matches!(m, Msg::EndTxnResponse { .. })),
        "answered once durable: {after_sync:?}"
    );
    // Now it looks for the leaders, and the markers go out.
    let Some(Msg::Metadata { correlation }) =
        after_sync.into_iter().find(|m| matches!(m, Msg::Metadata { .. }))
    else {
        panic!("the coordinator asks where the partitions live")
    };
    coordinator.handle(
        &mut disk,
        0,
        CONTROLLER,
        Msg::MetadataResponse { correlation, states: states() },
    );
    let markers = coordinator
        .drain_outbox()
        .filter(|(_, m)| matches!(m, Msg::WriteTxnMarker { commit: true, .. }))
        .count();
    assert_eq!(markers, 2);
}

/// A producer fenced by a new one with its transactional id is told so, and never
/// handed the epoch that fenced it; and a transaction of no partitions is refused.
#[test]
fn a_fenced_producer_is_told_it_was_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = FsStorage::new(dir.path());
    let config = coordinator_config(TxnProtocol::Kip890);
    let mut coordinator = Coordinator::open(&mut disk, config, 0).unwrap();
    let mut ask = |msg: Msg| -> Msg {
        coordinator.handle(&mut disk, 0, PRODUCER, msg);
        for (ticket, result) in disk.take_completed() {
            coordinator.on_synced(&mut disk, ticket, result);
        }
        let answers: Vec<Msg> = coordinator
            .drain_outbox()
            .map(|(_, m)| m)
            .filter(|m| !matches!(m, Msg::Metadata { .. }))
            .collect();
        answers.into_iter().next().expect("an answer")
    };
    let txn_id = || "t".to_owned();
    let Msg::InitTxnResponse { result: Ok((producer_id, epoch)), .. } =
        ask(Msg::InitTxn { correlation: 1, txn_id: txn_id() })
    else {
        panic!("init")
    };
    let add = |partitions: Vec<u32>| Msg::AddPartitionsToTxn {
        correlation: 2,
        txn_id: txn_id(),
        producer_id,
        producer_epoch: epoch,
        partitions,
    };
    let refused = ask(add(Vec::new()));
    assert!(
        matches!(
            refused,
            Msg::AddPartitionsToTxnResponse { result: Err(ErrorCode::InvalidTxnState), .. }
        ),
        "{refused:?}"
    );
    assert!(matches!(ask(add(vec![0])), Msg::AddPartitionsToTxnResponse { result: Ok(()), .. }));
    // A new producer takes the id: the old one's transaction is aborted to fence it.
    let fencing = ask(Msg::InitTxn { correlation: 3, txn_id: txn_id() });
    assert!(
        matches!(
            fencing,
            Msg::InitTxnResponse { result: Err(ErrorCode::ConcurrentTransactions), .. }
        ),
        "{fencing:?}"
    );
    let end = Msg::EndTxn {
        correlation: 4,
        txn_id: txn_id(),
        producer_id,
        producer_epoch: epoch,
        commit: false,
    };
    let answer = ask(end);
    assert!(
        matches!(answer, Msg::EndTxnResponse { result: Err(ErrorCode::ProducerFenced), .. }),
        "the zombie must not get the new epoch: {answer:?}"
    );
}

/// A producer whose epochs run out is refused a new transaction; taking its id again
/// gives it a new producer id, and its transactions go on committing.
#[test]
fn an_exhausted_epoch_gets_a_new_producer_id() {
    let mut cluster = Cluster::new(TxnProtocol::Kip890);
    cluster.coordinator_config.producer_epoch_max = 3;
    let config = cluster.coordinator_config.clone();
    cluster.coordinator =
        Coordinator::open(&mut cluster.coordinator_disk, config, cluster.now_ns).unwrap();
    cluster.init();
    let first_id = cluster.producer.ids().expect("initialized").0;
    let mut committed = Vec::new();
    let mut refused = 0;
    for round in 0..6 {
        if cluster.producer.ids().is_none() {
            cluster.init();
        }
        let value = format!("v{round}");
        match cluster.transact(&[(0, &value)]) {
            Outcome::Ok(_) => committed.push(value),
            Outcome::Fail(_) => refused += 1,
            Outcome::Info(why) => panic!("no faults here: {why}"),
        }
    }
    let ids = cluster.producer.ids().expect("initialized");
    assert_ne!(ids.0, first_id, "a new producer id once the epochs ran out");
    assert!(ids.1 <= 3, "never past the limit: {ids:?}");
    assert!(refused >= 1, "a transaction at the limit is refused");
    assert_eq!(cluster.read(0)[0], committed);
}

/// The coordinator's state log stays bounded however many transactions run: it is
/// compacted to the latest state of each id, and a restart reads that back.
#[test]
fn the_state_log_is_compacted_and_survives_a_restart() {
    let mut cluster = Cluster::new(TxnProtocol::Kip890);
    cluster.init();
    for round in 0..80 {
        let value = format!("v{round}");
        let outcome = cluster.transact(&[(round % 2, &value)]);
        assert!(matches!(outcome, Outcome::Ok(_)), "{outcome:?}");
    }
    let (start, end) = cluster.coordinator.state_log_span();
    assert!(start > 0, "compacted: the log starts at {start}");
    assert!(end - start < 2 * 4 * (16 + 16), "bounded: {start}..{end}");
    // A restart reads the compacted state: the producer goes on in its epoch.
    let config = cluster.coordinator_config.clone();
    cluster.coordinator =
        Coordinator::open(&mut cluster.coordinator_disk, config, cluster.now_ns).unwrap();
    assert!(matches!(cluster.transact(&[(0, "after")]), Outcome::Ok(_)));
    assert_eq!(cluster.read(0)[0].last().map(String::as_str), Some("after"));
}

/// Conditional records in transactions (the event store's multi-stream appends): each
/// record's key must hold exactly its expected version; a refusal aborts the whole
/// transaction and names the record; an aborted record never counts toward a version.
#[test]
fn conditional_records_commit_together_or_not_at_all() {
    let mut cluster = Cluster::new(TxnProtocol::Kip890);
    cluster.init();
    let record = |partition, key: &str, value: &str, expected| TxnRecord {
        partition,
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        expected_version: Some(expected),
    };
    // (records, the record refused (by index), if any)
    let cases: Vec<(Vec<TxnRecord>, Option<usize>)> = vec![
        // Two conditional records to one partition (two batches, in order) and one more.
        (vec![record(0, "a", "a0", 0), record(0, "b", "b0", 0), record(1, "c", "c0", 0)], None),
        // a holds 1 record: expecting 0 is refused, and b's record goes with the abort.
        (vec![record(0, "b", "b1", 1), record(0, "a", "a-stale", 0)], Some(1)),
        // So b still holds 1: the stale one's partner never counted.
        (vec![record(1, "c", "c-stale", 3), record(0, "b", "b1", 1)], Some(0)),
        (vec![record(0, "b", "b1", 1), record(0, "b", "b2", 2), record(1, "c", "c1", 1)], None),
    ];
    for (index, (records, refused)) in cases.into_iter().enumerate() {
        let outcome = cluster.transact_records(records);
        match refused {
            None => assert!(matches!(outcome, Outcome::Ok(_)), "case {index}: {outcome:?}"),
            Some(record) => {
                assert!(matches!(outcome, Outcome::Fail(_)), "case {index}: {outcome:?}");
                assert_eq!(
                    cluster.producer.last_refusal(),
                    Some((ErrorCode::WrongExpectedVersion, record)),
                    "case {index}"
                );
            }
        }
    }
    let [p0, p1] = cluster.read(0);
    assert_eq!(p0, ["a0", "b0", "b1", "b2"]);
    assert_eq!(p1, ["c0", "c1"]);
}

/// A marker's answer is lost; the coordinator asks again, and the partition, which
/// already holds the marker below its high watermark, must answer the retry even
/// though its high watermark never moves again (nobody else writes there). Found by
/// the review of bank-transactions: a projection's output partition stalled.
#[test]
fn a_retried_marker_is_answered_without_a_new_write() {
    let mut cluster = Cluster::new(TxnProtocol::Kip890);
    cluster.init();
    cluster.drop_marker_answers = 1;
    assert!(matches!(cluster.transact(&[(0, "a")]), Outcome::Ok(_)));
    cluster.advance(500 * MS);
    let next = cluster.transact(&[(0, "b")]);
    assert!(matches!(next, Outcome::Ok(_)), "the next transaction: {next:?}");
}

/// A commit whose answer never comes ends `info`, and says where each record was
/// acknowledged: every batch was before the commit was asked. The history records them
/// on the info completion, and the checker believes them once a value is read.
#[test]
fn an_unanswered_commit_ends_info_with_the_offsets_its_records_were_acknowledged_at() {
    let mut cluster = Cluster::new(TxnProtocol::Kip890);
    cluster.init();
    assert!(matches!(cluster.transact(&[(0, "a"), (1, "b")]), Outcome::Ok(_)));
    cluster.drop_end_txn_answers = true;
    cluster.producer.transact(cluster.now_ns, txn_records(&[(0, "c"), (1, "d")]));
    let mut ended = Vec::new();
    for _ in 0..200 {
        cluster.advance(10 * MS);
        ended.extend(cluster.producer.drain_txn_ended());
        if !ended.is_empty() {
            break;
        }
    }
    let [ended] = ended.as_slice() else { panic!("one end: {ended:?}") };
    assert!(matches!(ended.outcome, Outcome::Info(_)), "{ended:?}");
    // "a" and "b" took offset 0 of each partition and their commit marker offset 1.
    assert_eq!(ended.acknowledged, vec![Some(2), Some(2)], "{ended:?}");
}
