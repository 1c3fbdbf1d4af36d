//! An idempotent producer's batch has one fate, whichever copy of its produce asks: a
//! copy of a batch the leader holds (a retry, or a copy the network duplicated) gets
//! that batch's answer, never a refusal that says nothing was appended. (Found by the
//! `long-poll` scenario, seed 1821: a duplicated copy refused as NotEnoughReplicas after
//! the first copy was appended; its producer took the refusal as final and reused the
//! sequence, and the next send was answered with the first copy's offset.)

use logjam_broker::batch::{ProducerStamp, Record};
mod support;

use logjam_broker::broker::{Broker, BrokerConfig};
use logjam_broker::client::{Outcome, Producer, ProducerConfig};
use logjam_broker::protocol::{Acks, ErrorCode, Msg, NodeId, PartitionState};
use logjam_broker::storage::FsStorage;
use support::{CONTROLLER, MS, broker_config};

const CLIENT: NodeId = 5;
const T0: u64 = 1_000 * MS;
const PRODUCER_ID: i64 = 7;

fn config(pending_produce_max: usize) -> BrokerConfig {
    BrokerConfig { min_insync_replicas: 2, pending_produce_max, ..broker_config(0) }
}

/// The controller's word: broker 0 leads partition 0 in epoch 1 with this ISR.
fn states(partition_epoch: u32, isr: Vec<NodeId>) -> Msg {
    let state = PartitionState {
        partition: 0,
        replicas: vec![0, 1, 2],
        leader: Some(0),
        leader_epoch: 1,
        isr,
        partition_epoch,
    };
    Msg::HeartbeatAck { states: vec![state], registration: Some((1, 1)) }
}

fn produce(correlation: u64, sequence: i32) -> Msg {
    Msg::Produce {
        partition: 0,
        correlation,
        leader_epoch: Some(1),
        acks: Acks::All,
        producer: ProducerStamp {
            producer_id: PRODUCER_ID,
            producer_epoch: 0,
            base_sequence: sequence,
        },
        records: vec![Record { timestamp_ns: 0, key: b"k".to_vec(), value: b"v".to_vec() }],
        expected_version: None,
        transactional: false,
    }
}

#[test]
fn a_copy_of_a_held_batch_is_never_refused_as_not_appended() {
    // (case, pending_produce_max, the produce after the ISR fell below min ISR,
    //  the answers the client gets to it: (correlation, result))
    type Case = (&'static str, usize, Msg, Vec<(u64, Result<u64, ErrorCode>)>);
    let cases: Vec<Case> = vec![
        ("a copy of the appended batch waits with it", 10, produce(1, 0), vec![]),
        ("a retry of the appended batch waits with it", 10, produce(2, 0), vec![]),
        (
            "with no room to wait, its fate is open, not refused",
            1,
            produce(2, 0),
            vec![(2, Err(ErrorCode::NotEnoughReplicasAfterAppend))],
        ),
        (
            "a new batch is refused: nothing appended",
            10,
            produce(3, 1),
            vec![(3, Err(ErrorCode::NotEnoughReplicas))],
        ),
    ];
    for (case, pending_produce_max, late, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut disk = FsStorage::new(dir.path());
        let mut broker = Broker::new(config(pending_produce_max), 1);
        broker.handle(&mut disk, T0, CONTROLLER, states(1, vec![0, 1, 2]));
        assert!(broker.is_leader(0), "{case}");
        // The first copy is appended and waits for the followers.
        broker.handle(&mut disk, T0, CLIENT, produce(1, 0));
        // The ISR falls below min_insync_replicas (a partition cut the followers off).
        broker.handle(&mut disk, T0, CONTROLLER, states(2, vec![0]));
        broker.drain_outbox().for_each(drop);
        broker.handle(&mut disk, T0, CLIENT, late);
        let got: Vec<(u64, Result<u64, ErrorCode>)> = broker
            .drain_outbox()
            .filter_map(|(to, msg)| match msg {
                Msg::ProduceResponse { correlation, result, .. } if to == CLIENT => {
                    Some((correlation, result))
                }
                _ => None,
            })
            .collect();
        assert_eq!(got, want, "{case}");
    }
}

/// The producer's side: a send that ends without an answer that says it landed leaves
/// its sequence unresolved, so the next send starts over with a new producer id (Kafka
/// bumps the epoch) instead of reusing it, whatever the refusals said: a copy of an
/// attempt the network duplicated or held back may still land.
#[test]
fn a_send_that_did_not_land_retires_its_producer_id() {
    // (case, the broker's answer to every attempt, how the send ends, a new id after)
    type Case = (&'static str, Option<Result<u64, ErrorCode>>, &'static str, bool);
    let cases: [Case; 4] = [
        ("acknowledged: the sequence moves on", Some(Ok(0)), "ok", false),
        ("refused as not appended", Some(Err(ErrorCode::NotEnoughReplicas)), "fail", true),
        ("appended, fate open", Some(Err(ErrorCode::NotEnoughReplicasAfterAppend)), "info", true),
        ("never answered", None, "info", true),
    ];
    for (case, answer, ends, new_id) in cases {
        let mut producer = Producer::new(ProducerConfig {
            controller: CONTROLLER,
            partitions: 1,
            acks: Acks::All,
            idempotent: true,
            request_timeout_ns: 100 * MS,
            retry_backoff_ns: 10 * MS,
            attempts_max: 3,
            delivery_timeout_ns: 10_000 * MS,
            refusals_definite: true,
        });
        let mut now_ns = T0;
        let mut init_requests = 0;
        let mut sequences = Vec::new();
        let mut outcomes = Vec::new();
        // Two sends; every request is answered at once (or never, for produces).
        for value in ["a", "b"] {
            producer.send(now_ns, 0, "k".to_owned(), value.to_owned());
            loop {
                if let Some(outcome) = producer.drain_done().next() {
                    outcomes.push(outcome);
                    break;
                }
                let requests: Vec<(NodeId, Msg)> = producer.drain_outbox().collect();
                for (_, msg) in requests {
                    let reply = match msg {
                        Msg::InitProducerId { correlation } => {
                            init_requests += 1;
                            Some(Msg::InitProducerIdResponse {
                                correlation,
                                producer_id: init_requests,
                            })
                        }
                        Msg::Metadata { correlation } => Some(Msg::MetadataResponse {
                            correlation,
                            states: vec![PartitionState {
                                partition: 0,
                                replicas: vec![0],
                                leader: Some(0),
                                leader_epoch: 1,
                                isr: vec![0],
                                partition_epoch: 1,
                            }],
                        }),
                        Msg::Produce { correlation, producer: stamp, .. } => {
                            sequences.push((value, stamp.producer_id, stamp.base_sequence));
                            let result = if value == "a" { answer } else { Some(Ok(1)) };
                            result.map(|result| Msg::ProduceResponse {
                                partition: 0,
                                correlation,
                                result,
                            })
                        }
                        other => panic!("{case}: unexpected request {other:?}"),
                    };
                    if let Some(reply) = reply {
                        producer.handle(now_ns, reply);
                    }
                }
                now_ns += 10 * MS;
                producer.tick(now_ns);
            }
        }
        let first = sequences.iter().find(|(value, ..)| *value == "a").expect("a was sent");
        let second = sequences.iter().find(|(value, ..)| *value == "b").expect("b was sent");
        let kind = |outcome: &Outcome<u64>| match outcome {
            Outcome::Ok(_) => "ok",
            Outcome::Fail(_) => "fail",
            Outcome::Info(_) => "info",
        };
        assert_eq!(kind(&outcomes[0]), ends, "{case}: {outcomes:?}");
        assert_eq!(outcomes[1], Outcome::Ok(1), "{case}");
        assert_eq!(second.1 != first.1, new_id, "{case}: {sequences:?}");
        if !new_id {
            assert_eq!(second.2, first.2 + 1, "{case}: the sequence moves on");
        }
    }
}
