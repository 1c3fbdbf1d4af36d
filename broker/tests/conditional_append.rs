//! Conditional append by key: a produce that carries an expected version appends only
//! if the key holds exactly that many records in the leader's log. The per-key index
//! is derived from the log: after a role change or a restart it is rebuilt, never
//! trusted from memory.

mod support;

use logjam_broker::batch::{ProducerStamp, Record};
use logjam_broker::broker::{Broker, BrokerConfig};
use logjam_broker::protocol::{Acks, ErrorCode, Msg, PartitionState};
use logjam_broker::storage::FsStorage;
use support::{CONTROLLER, broker_config};

const CLIENT: u32 = 5;

fn config() -> BrokerConfig {
    broker_config(0)
}

/// The controller's word: this broker (alone) leads partition 0 in `epoch`, or follows
/// broker 1.
fn states(epoch: u32, leads: bool) -> Msg {
    let leader = if leads { 0 } else { 1 };
    let state = PartitionState {
        partition: 0,
        replicas: vec![0, 1],
        leader: Some(leader),
        leader_epoch: epoch,
        isr: vec![0],
        partition_epoch: epoch,
    };
    Msg::HeartbeatAck { states: vec![state], registration: Some((1, 1)) }
}

fn produce(
    correlation: u64,
    epoch: u32,
    keys: &[&str],
    expected_version: Option<u64>,
    sequence: i32,
) -> Msg {
    Msg::Produce {
        partition: 0,
        correlation,
        leader_epoch: Some(epoch),
        acks: Acks::Leader,
        producer: ProducerStamp { producer_id: 7, producer_epoch: 0, base_sequence: sequence },
        records: keys
            .iter()
            .map(|key| Record {
                timestamp_ns: 0,
                key: key.as_bytes().to_vec(),
                value: b"v".to_vec(),
            })
            .collect(),
        expected_version,
        transactional: false,
    }
}

/// Sends one produce and returns the answer.
fn answer(broker: &mut Broker, storage: &mut FsStorage, msg: Msg) -> Result<u64, ErrorCode> {
    broker.handle(storage, 0, CLIENT, msg);
    assert_eq!(broker.halted(), None);
    let answers: Vec<Result<u64, ErrorCode>> = broker
        .drain_outbox()
        .filter_map(|(to, msg)| match msg {
            Msg::ProduceResponse { result, .. } if to == CLIENT => Some(result),
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 1, "one answer per produce");
    answers[0]
}

fn leader(storage: &mut FsStorage, epoch: u32) -> Broker {
    let mut broker = Broker::new(config(), 1);
    broker.handle(storage, 0, CONTROLLER, states(epoch, true));
    assert!(broker.is_leader(0));
    broker.drain_outbox().for_each(drop);
    broker
}

#[test]
fn appends_only_at_the_expected_version_of_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = FsStorage::new(dir.path());
    let mut broker = leader(&mut storage, 1);
    let wrong = Err(ErrorCode::WrongExpectedVersion);
    // (keys, expected version, sequence, answer): one broker, one partition, in order.
    type Case<'a> = (&'a [&'a str], Option<u64>, i32, Result<u64, ErrorCode>);
    let cases: Vec<Case> = vec![
        (&["a"], Some(0), 0, Ok(0)),      // a new stream
        (&["a"], Some(0), 1, wrong),      // someone else got there first
        (&["a"], Some(1), 1, Ok(1)),      // the next version
        (&["a"], None, 2, Ok(2)),         // unconditional appends count too
        (&["a"], Some(2), 3, wrong),      // a holds 3 now
        (&["b"], Some(0), 3, Ok(3)),      // keys are independent
        (&["b", "a"], Some(1), 4, wrong), // a conditional batch must have one key
        (&["a"], Some(0), 0, Ok(0)),      // a retry of the first batch: deduplicated first
        (&["a", "a"], Some(3), 4, Ok(4)), // two records of one key
        (&["a"], Some(5), 6, Ok(6)),
    ];
    for (index, (keys, expected, sequence, want)) in cases.into_iter().enumerate() {
        let got =
            answer(&mut broker, &mut storage, produce(index as u64, 1, keys, expected, sequence));
        assert_eq!(got, want, "case {index}: {keys:?} expecting {expected:?}");
    }

    // A role change drops the index; leading again rebuilds it from the log.
    broker.handle(&mut storage, 0, CONTROLLER, states(2, false));
    broker.handle(&mut storage, 0, CONTROLLER, states(3, true));
    broker.drain_outbox().for_each(drop);
    assert_eq!(answer(&mut broker, &mut storage, produce(20, 3, &["a"], Some(5), 7)), wrong);
    assert_eq!(answer(&mut broker, &mut storage, produce(21, 3, &["a"], Some(6), 7)), Ok(7));
    assert_eq!(answer(&mut broker, &mut storage, produce(22, 3, &["b"], Some(1), 8)), Ok(8));

    // So does a restart: a new life reads the key counts off its disk.
    drop(broker);
    let mut broker = leader(&mut storage, 4);
    assert_eq!(answer(&mut broker, &mut storage, produce(30, 4, &["a"], Some(7), 9)), Ok(9));
    assert_eq!(answer(&mut broker, &mut storage, produce(31, 4, &["b"], Some(1), 10)), wrong);
}
