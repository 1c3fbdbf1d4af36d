//! The storage engine in lockstep with the sequential reference log: random sequences
//! of append, read, truncate, roll, retention, flush and crash+recover run on the real
//! `PartitionLog` and on the model's `PartitionLog`, and every result is compared.
//!
//! - Without crashes every result matches, on the simulated disk and on real files.
//! - After a crash the recovered log is a prefix of what was written that holds
//!   everything synced: nothing invented, no gap, no corrupt record served.
//! - With corruption faults (bit rot, latent sector errors, misdirected writes) a read
//!   returns the right records or a clear error, never wrong ones: every record served
//!   was written at that offset (values are unique), at consecutive offsets.
//!
//! Truncation and retention are followed by a flush, as the replica does: an unsynced
//! truncation may legitimately be undone by a crash, and that is the replica's problem
//! (it truncates again), not the storage engine's.

use std::collections::{BTreeMap, BTreeSet};

use logjam_broker::batch::{ProducerStamp, Record};
use logjam_broker::log::{FlushPolicy, LogConfig, LogError, PartitionLog};
use logjam_broker::storage::{FsStorage, Storage, SyncResult, SyncTicket};
use logjam_model::PartitionLog as ModelLog;
use logjam_sim::{DiskFault, LogDisk, NodeId, SimDisk, StreamId, broker_disk_config, stream};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Records with these value sizes, in the current epoch (bumped first if asked).
    Append {
        sizes: Vec<u16>,
        new_epoch: bool,
    },
    Read {
        from: prop::sample::Index,
        max_bytes: u16,
    },
    Truncate {
        to: prop::sample::Index,
    },
    Roll,
    Retention {
        before: prop::sample::Index,
    },
    Flush,
    Crash,
    Fault(DiskFault),
}

fn op(crashes: bool, corruption: bool) -> impl Strategy<Value = Op> {
    let append = (proptest::collection::vec(0u16..600, 1..5), proptest::bool::weighted(0.1))
        .prop_map(|(sizes, new_epoch)| Op::Append { sizes, new_epoch });
    let read = (any::<prop::sample::Index>(), 1u16..3000)
        .prop_map(|(from, max_bytes)| Op::Read { from, max_bytes });
    let fault = prop_oneof![
        Just(DiskFault::BitRot),
        Just(DiskFault::LatentSectorError),
        Just(DiskFault::MisdirectWrite),
    ];
    prop_oneof![
        8 => append,
        4 => read,
        1 => any::<prop::sample::Index>().prop_map(|to| Op::Truncate { to }),
        1 => Just(Op::Roll),
        1 => any::<prop::sample::Index>().prop_map(|before| Op::Retention { before }),
        2 => Just(Op::Flush),
        (if crashes { 1 } else { 0 }) => Just(Op::Crash),
        (if corruption { 1 } else { 0 }) => fault.prop_map(Op::Fault),
    ]
}

fn config() -> LogConfig {
    // Small segments and index intervals, so rolls, index lookups and retention happen.
    LogConfig {
        segment_bytes_max: 1 << 20,
        index_interval_bytes: 300,
        flush: FlushPolicy::Never,
        verify_on_open: false,
    }
}

/// A storage under test, and how its sync completions come back.
trait Harness: Storage {
    fn completions(&mut self) -> Vec<(SyncTicket, SyncResult)>;
}

impl Harness for LogDisk {
    fn completions(&mut self) -> Vec<(SyncTicket, SyncResult)> {
        self.complete_all_syncs()
    }
}

impl Harness for FsStorage {
    fn completions(&mut self) -> Vec<(SyncTicket, SyncResult)> {
        self.take_completed()
    }
}

fn complete<S: Harness>(storage: &mut S, log: &mut PartitionLog) {
    loop {
        let done = storage.completions();
        if done.is_empty() {
            return;
        }
        for (ticket, result) in done {
            if log.owns(ticket) {
                log.on_synced(storage, ticket, result).expect("syncs succeed without FailSync");
            }
        }
    }
}

fn flush<S: Harness>(storage: &mut S, log: &mut PartitionLog) {
    log.flush(storage, 0).expect("flush");
    complete(storage, log);
}

/// Records read, with their offsets, from `from` on.
fn records_from(batches: &[logjam_broker::batch::RecordBatch], from: u64) -> Vec<(u64, Vec<u8>)> {
    batches
        .iter()
        .flat_map(|b| {
            b.records
                .iter()
                .enumerate()
                .map(move |(i, r)| (b.base_offset + i as u64, r.value.clone()))
        })
        .filter(|(offset, _)| *offset >= from)
        .collect()
}

/// What the log must agree with: exactly the model while the disk is healthy; once a
/// corruption fault struck, only that every record served is one that was written at
/// that offset (values are unique), at consecutive offsets.
struct Oracle {
    model: ModelLog<Vec<u8>>,
    written: BTreeMap<u64, BTreeSet<Vec<u8>>>,
    corrupted: bool,
}

impl Oracle {
    fn check_read(&self, from: u64, got: &[(u64, Vec<u8>)]) -> Result<(), TestCaseError> {
        for (i, (offset, value)) in got.iter().enumerate() {
            prop_assert_eq!(*offset, from + i as u64, "read from {} has a gap", from);
            let ever = self.written.get(offset).is_some_and(|values| values.contains(value));
            prop_assert!(ever, "offset {} served a value never written there", offset);
        }
        if !self.corrupted {
            let want = self.model.read(from, got.len()).expect("model reads");
            let want: Vec<(u64, Vec<u8>)> = want.iter().map(|(o, v)| (o, v.clone())).collect();
            prop_assert_eq!(got, &want[..], "read from {} differs from the model", from);
        }
        Ok(())
    }
}

/// Runs the ops against a fresh log on `storage`.
fn run<S: Harness>(
    storage: &mut S,
    ops: &[Op],
    mut crash: impl FnMut(&mut S),
    mut inject: impl FnMut(&mut S, DiskFault),
) -> Result<(), TestCaseError> {
    let (mut log, _) = PartitionLog::open(storage, "p0", config()).expect("opens");
    let mut oracle = Oracle { model: ModelLog::new(), written: BTreeMap::new(), corrupted: false };
    let mut epoch = 1u32;
    let mut value_seq = 0u64;
    for op in ops {
        let (start, end) = (log.start_offset(), log.end_offset());
        if !oracle.corrupted {
            let model = &oracle.model;
            prop_assert_eq!(
                (start, end),
                (model.log_start_offset(), model.log_end_offset()),
                "before {:?}",
                op
            );
        }
        match op {
            Op::Append { sizes, new_epoch } => {
                if *new_epoch {
                    epoch += 1;
                }
                let records: Vec<Record> = sizes
                    .iter()
                    .map(|&size| {
                        value_seq += 1;
                        let mut value = value_seq.to_le_bytes().to_vec();
                        value.resize(8 + size as usize, (value_seq % 251) as u8);
                        Record { timestamp_ns: value_seq, key: vec![], value }
                    })
                    .collect();
                match log.append(storage, 0, epoch, ProducerStamp::NONE, records.clone()) {
                    Ok(appended) => {
                        prop_assert_eq!(appended.base_offset, end);
                        for (i, record) in records.into_iter().enumerate() {
                            oracle
                                .written
                                .entry(end + i as u64)
                                .or_default()
                                .insert(record.value.clone());
                            if !oracle.corrupted {
                                oracle
                                    .model
                                    .append(u64::from(epoch), record.value)
                                    .expect("model appends");
                            }
                        }
                    }
                    Err(error) => {
                        prop_assert!(oracle.corrupted, "append failed on a healthy disk: {error}")
                    }
                }
            }
            Op::Read { from, max_bytes } => {
                let from = start + from.index((end - start + 1) as usize) as u64;
                match log.read(storage, from, usize::from(*max_bytes)) {
                    Ok(batches) => {
                        let got = records_from(&batches, from);
                        prop_assert!(
                            from == end || !got.is_empty(),
                            "read at {} of [{}, {}) returned nothing",
                            from,
                            start,
                            end
                        );
                        oracle.check_read(from, &got)?;
                    }
                    Err(LogError::Corrupt { .. } | LogError::Storage(_)) if oracle.corrupted => {}
                    Err(error) => prop_assert!(false, "read from {from} failed: {error}"),
                }
            }
            Op::Truncate { to } => {
                let to = start + to.index((end - start + 1) as usize) as u64;
                match log.truncate_to(storage, to) {
                    Ok(new_end) => {
                        prop_assert!(
                            new_end <= to && new_end >= start,
                            "truncate to {} ended at {}",
                            to,
                            new_end
                        );
                        if !oracle.corrupted {
                            oracle.model.truncate(new_end).expect("model truncates");
                        }
                        flush(storage, &mut log);
                    }
                    Err(error) => {
                        prop_assert!(oracle.corrupted, "truncate failed on a healthy disk: {error}")
                    }
                }
            }
            Op::Roll => log.roll(storage).expect("roll"),
            Op::Retention { before } => {
                let before = start + before.index((end - start + 1) as usize) as u64;
                let new_start = log.delete_segments_before(storage, before).expect("retention");
                prop_assert!(new_start <= before.max(start) && new_start >= start);
                if !oracle.corrupted {
                    oracle.model.advance_high_watermark(end).expect("model hw");
                    oracle.model.delete_before(new_start).expect("model retention");
                }
                flush(storage, &mut log);
            }
            Op::Flush => flush(storage, &mut log),
            Op::Crash => {
                let synced = log.recovery_point();
                crash(storage);
                let (recovered, _report) =
                    PartitionLog::open(storage, "p0", config()).expect("recovery opens");
                log = recovered;
                let (new_start, new_end) = (log.start_offset(), log.end_offset());
                if !oracle.corrupted {
                    prop_assert!(
                        new_end >= synced,
                        "recovery lost synced records: end {} < synced {}",
                        new_end,
                        synced
                    );
                    prop_assert!(
                        new_end <= end,
                        "recovery invented records: end {} > written {}",
                        new_end,
                        end
                    );
                    prop_assert_eq!(new_start, start, "recovery moved the start");
                    oracle.model.truncate(new_end).expect("model truncates");
                }
                epoch = epoch.max(log.leader_epochs().last().map_or(1, |&(e, _)| e));
                // Everything recovered reads back as written, or fails clearly.
                match log.read(storage, new_start, usize::MAX) {
                    Ok(batches) => {
                        oracle.check_read(new_start, &records_from(&batches, new_start))?
                    }
                    Err(error) => {
                        prop_assert!(oracle.corrupted, "recovered log unreadable: {error}")
                    }
                }
            }
            Op::Fault(fault) => {
                inject(storage, *fault);
                oracle.corrupted = true;
            }
        }
    }
    Ok(())
}

fn sim_disk_run(ops: &[Op], seed: u64) -> Result<(), TestCaseError> {
    let mut disk = LogDisk(SimDisk::new(broker_disk_config()));
    let mut crash_rng = stream(seed, StreamId::Disk(NodeId(0)));
    let mut fault_rng = stream(seed, StreamId::Nemesis);
    run(
        &mut disk,
        ops,
        |disk| {
            disk.0.crash(&mut crash_rng);
        },
        |disk, fault| {
            disk.0.inject(fault, &mut fault_rng);
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // A fixed seed: `cargo test` runs the same cases every time.
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        rng_seed: proptest::test_runner::RngSeed::Fixed(4),
        ..ProptestConfig::default()
    })]

    #[test]
    fn simdisk_without_crashes_matches_the_model(ops in proptest::collection::vec(op(false, false), 1..120)) {
        sim_disk_run(&ops, 0)?;
    }

    #[test]
    fn simdisk_with_crashes_recovers_a_synced_prefix(ops in proptest::collection::vec(op(true, false), 1..120), seed in any::<u64>()) {
        sim_disk_run(&ops, seed)?;
    }

    #[test]
    fn simdisk_with_corruption_never_serves_wrong_records(ops in proptest::collection::vec(op(true, true), 1..120), seed in any::<u64>()) {
        sim_disk_run(&ops, seed)?;
    }
}

proptest! {
    // Real files are slower: fewer cases.
    #![proptest_config(ProptestConfig {
        cases: 32,
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        rng_seed: proptest::test_runner::RngSeed::Fixed(5),
        ..ProptestConfig::default()
    })]

    #[test]
    fn real_files_match_the_model(ops in proptest::collection::vec(op(false, false), 1..80)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut storage = FsStorage::new(dir.path());
        run(&mut storage, &ops, |_| unreachable!("no crashes on real files"), |_, _| unreachable!("no faults on real files"))?;
    }
}
