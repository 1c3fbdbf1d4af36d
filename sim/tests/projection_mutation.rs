//! The mutation check of the projection checkpoint: a bank projection folds a log of
//! events on a `SimDisk`, checkpointing as it goes, and crashes at every point of its
//! checkpoint protocol. Every (offset, read model) it restores, and the one it ends
//! with, goes to the model's projection-equivalence check. The correct order (offset
//! and model in one atomic checkpoint) is never caught; the broken order (model first,
//! then the offset, behind the test-only `broken_checkpoint_order` switch) is caught as
//! a double count.

use logjam_eventstore::command::{CommandLoop, run_command};
use logjam_eventstore::domains::bank::{Account, BankCommand, account_stream};
use logjam_eventstore::projection::{BankBalances, Projection, ProjectionConfig};
use logjam_eventstore::schema::decode_event;
use logjam_eventstore::store::InMemoryStore;
use logjam_model::es::{self, EsHistory, EsInvariant, ProjectionCheckpoint, ReplicaStreams};
use logjam_sim::log_disk::{sync_result, sync_ticket};
use logjam_sim::{LogDisk, SimDisk, StreamId, stream};

const EVENTS: u64 = 12;

/// A record of the log as a consumer gets it: offset, key, value.
type LogRecord = (u64, Vec<u8>, Vec<u8>);

/// A bank log: deposits to two accounts, through the command loop of an in-memory
/// store. Returns the records as (offset, key, value) and as the model sees them.
fn bank_log() -> (Vec<LogRecord>, Vec<es::StoredEvent>) {
    let mut store = InMemoryStore::new();
    let mut next_request = 0;
    for i in 0..EVENTS {
        let stream = account_stream(i % 2);
        let command = BankCommand::Deposit { amount: 10 + i };
        let decision = run_command(
            &mut store,
            0,
            &mut next_request,
            CommandLoop::<Account>::new(&stream, i + 1, command),
        );
        assert_eq!(decision.outcome.kind(), "appended");
    }
    let mut records = Vec::new();
    let mut events = Vec::new();
    for (offset, record) in store.log().iter().enumerate() {
        let offset = offset as u64;
        records.push((offset, record.stream.clone().into_bytes(), record.envelope.encode()));
        let event = decode_event::<Account>(&record.stream, offset, &record.envelope).unwrap();
        events.push(es::StoredEvent {
            offset,
            stream: record.stream.clone(),
            version: record.envelope.stream_version,
            command_id: record.envelope.command_id,
            event: serde_json::to_value(&event).unwrap(),
        });
    }
    (records, events)
}

/// Hands every completed sync back to the projection until nothing is pending, or
/// only `rounds` rounds of completions when given. Returns false if it stopped early.
fn settle(
    disk: &mut SimDisk,
    projection: &mut Projection<BankBalances>,
    rounds: Option<u32>,
) -> bool {
    let mut done = 0;
    loop {
        if rounds.is_some_and(|max| done >= max) {
            return false;
        }
        let completed = disk.complete_all_syncs();
        if completed.is_empty() {
            return true;
        }
        for (ticket, result) in completed {
            let (ticket, result) = (sync_ticket(ticket), sync_result(result));
            if projection.owns(ticket) {
                projection.on_synced(&mut LogDisk(&mut *disk), ticket, result).unwrap();
            }
        }
        done += 1;
    }
}

fn checkpoint_of(projection: &Projection<BankBalances>, t_ns: u64) -> ProjectionCheckpoint {
    ProjectionCheckpoint {
        consumer: 9,
        t_ns,
        partition: 0,
        offset: projection.next_offset(),
        read_model: serde_json::to_value(&projection.model().balances).unwrap(),
        read_uncommitted: false,
    }
}

/// Runs the projection over the log, crashing once: after applying `crash_at` records
/// and `rounds` rounds of sync completions of the checkpoint that follows. Returns
/// every checkpoint it restored or ended with.
fn run_with_a_crash(
    broken: bool,
    crash_at: u64,
    rounds: u32,
    seed: u64,
) -> Vec<ProjectionCheckpoint> {
    let (records, _) = bank_log();
    let config =
        ProjectionConfig { broken_checkpoint_order: broken, ..ProjectionConfig::new("proj") };
    let mut disk = SimDisk::default();
    let mut rng = stream(seed, StreamId::Disk(logjam_sim::NodeId(0)));
    let mut projection =
        Projection::<BankBalances>::open(&mut LogDisk(&mut disk), &config).unwrap();
    let mut checkpoints = Vec::new();
    for (offset, key, value) in &records[..crash_at as usize] {
        projection.apply(*offset, key, value).unwrap();
        projection.checkpoint(&mut LogDisk(&mut disk)).unwrap();
        settle(&mut disk, &mut projection, None);
    }
    // One more record and a checkpoint cut short by the crash.
    if let Some((offset, key, value)) = records.get(crash_at as usize) {
        projection.apply(*offset, key, value).unwrap();
        projection.checkpoint(&mut LogDisk(&mut disk)).unwrap();
        settle(&mut disk, &mut projection, Some(rounds));
    }
    disk.crash(&mut rng);
    let mut projection =
        Projection::<BankBalances>::open(&mut LogDisk(&mut disk), &config).unwrap();
    checkpoints.push(checkpoint_of(&projection, 1));
    // The consumer resumes where the restored offset says.
    for (offset, key, value) in &records[projection.next_offset() as usize..] {
        projection.apply(*offset, key, value).unwrap();
    }
    projection.checkpoint(&mut LogDisk(&mut disk)).unwrap();
    settle(&mut disk, &mut projection, None);
    checkpoints.push(checkpoint_of(&projection, 2));
    checkpoints
}

/// How many of a history's checkpoints the model calls a violation.
fn caught(checkpoints: Vec<ProjectionCheckpoint>) -> (u64, Vec<String>) {
    let (_, events) = bank_log();
    let history = EsHistory {
        domain: "bank".to_owned(),
        expected_versions: true,
        commands: Vec::new(),
        replicas: vec![ReplicaStreams { node: 0, partition: 0, events }],
        projections: checkpoints,
        lossy_log: false,
        atomic_transfers: false,
        projections_settled: false,
    };
    let verdict = es::check(&history);
    let check = verdict.check(EsInvariant::ProjectionEquivalence);
    let explanations = verdict
        .anomalies
        .iter()
        .filter(|a| a.invariant == EsInvariant::ProjectionEquivalence)
        .map(|a| a.explanation.clone())
        .collect();
    (check.violations, explanations)
}

#[test]
fn the_broken_checkpoint_order_is_caught_as_a_double_count_and_the_correct_one_never() {
    let (mut broken_caught, mut correct_caught) = (0, 0);
    let mut example = None;
    for crash_at in 0..EVENTS {
        for rounds in 0..5 {
            let seed = crash_at * 10 + u64::from(rounds);
            let (violations, _) = caught(run_with_a_crash(false, crash_at, rounds, seed));
            correct_caught += violations;
            let (violations, explanations) = caught(run_with_a_crash(true, crash_at, rounds, seed));
            if violations > 0 {
                broken_caught += 1;
                example.get_or_insert(explanations);
            }
        }
    }
    assert_eq!(correct_caught, 0, "the correct order was flagged");
    assert!(broken_caught > 0, "no crash point of the broken order was caught");
    let example = example.unwrap().join("; ");
    assert!(example.contains("twice"), "not named a double count: {example}");
}
