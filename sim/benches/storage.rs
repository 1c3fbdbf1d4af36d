//! Storage throughput: appending 1 KiB records in 16 KiB batches, reading them back, and
//! the recovery scan, on the simulated disk and on real files (no sync), beside a raw
//! `std::fs::File::write_all` of the same bytes. Run:
//! `cargo bench -p logjam-sim --bench storage`.

use std::io::Write;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use logjam_broker::batch::{ProducerStamp, Record, RecordBatch};
use logjam_broker::log::{FlushPolicy, LogConfig, PartitionLog};
use logjam_broker::storage::{FsStorage, Storage};
use logjam_sim::{LogDisk, SimDisk, broker_disk_config};

const TOTAL_BYTES: usize = 32 << 20;
const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 16;

/// Encoded batches at consecutive offsets, ~32 MiB in all.
fn batches() -> Vec<Vec<u8>> {
    let batch_count = TOTAL_BYTES / (RECORD_BYTES * RECORDS_PER_BATCH);
    (0..batch_count)
        .map(|i| {
            let records = (0..RECORDS_PER_BATCH)
                .map(|r| Record {
                    timestamp_ns: r as u64,
                    key: vec![],
                    value: vec![(i + r) as u8; RECORD_BYTES],
                })
                .collect();
            let base_offset = (i * RECORDS_PER_BATCH) as u64;
            let batch = RecordBatch {
                base_offset,
                leader_epoch: 1,
                attributes: 0,
                producer: ProducerStamp::NONE,
                records,
            };
            batch.encode().expect("fits")
        })
        .collect()
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 256 << 20,
        index_interval_bytes: 4096,
        flush: FlushPolicy::Never,
        verify_on_open: true,
    }
}

fn fill<S: Storage>(storage: &mut S, batches: &[Vec<u8>]) -> PartitionLog {
    let (mut log, _) = PartitionLog::open(storage, "p0", config()).expect("opens");
    for batch in batches {
        log.append_encoded(storage, 0, batch).expect("appends");
    }
    log
}

fn read_all<S: Storage>(storage: &mut S, log: &PartitionLog) -> usize {
    let mut offset = 0;
    let mut records = 0;
    while offset < log.end_offset() {
        let batches = log.read(storage, offset, 1 << 20).expect("reads");
        offset = batches.last().expect("some").end_offset();
        records += batches.iter().map(|b| b.records.len()).sum::<usize>();
    }
    records
}

fn storage(c: &mut Criterion) {
    let batches = batches();
    let bytes: usize = batches.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("storage");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes as u64));

    group.bench_function("append/simdisk", |b| {
        b.iter_batched(
            || SimDisk::new(broker_disk_config()),
            |mut disk| fill(&mut LogDisk(&mut disk), &batches),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("append/fs", |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("tempdir"),
            |dir| {
                fill(&mut FsStorage::new(dir.path()), &batches);
                dir
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("append/raw_write_all", |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("tempdir"),
            |dir| {
                let mut file = std::fs::File::create(dir.path().join("raw")).expect("creates");
                for batch in &batches {
                    file.write_all(batch).expect("writes");
                }
                dir
            },
            BatchSize::PerIteration,
        )
    });

    let mut disk = SimDisk::new(broker_disk_config());
    let log = fill(&mut LogDisk(&mut disk), &batches);
    group.bench_function("read/simdisk", |b| b.iter(|| read_all(&mut LogDisk(&mut disk), &log)));
    group.bench_function("recover/simdisk", |b| {
        b.iter(|| {
            PartitionLog::open(&mut LogDisk(&mut disk), "p0", config())
                .expect("recovers")
                .0
                .end_offset()
        })
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let mut fs = FsStorage::new(dir.path());
    let log = fill(&mut fs, &batches);
    group.bench_function("read/fs", |b| b.iter(|| read_all(&mut fs, &log)));
    group.bench_function("recover/fs", |b| {
        b.iter(|| PartitionLog::open(&mut fs, "p0", config()).expect("recovers").0.end_offset())
    });
    group.finish();
}

criterion_group!(benches, storage);
criterion_main!(benches);
