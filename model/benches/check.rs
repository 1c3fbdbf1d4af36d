//! The checkers' cost as histories grow: `check` on generated histories of 10k, 100k
//! and 1M operations (2 partitions, 3 replicas, faults and indeterminate operations on,
//! final logs and protocol events included), and parsing a 100k-operation history; the
//! same for issue 19's wide shape (4 partitions, 8 producers, 4 consumers), whose 1M
//! figure `examples/check_scale.rs` measures with peak memory.
//! Run: `cargo bench -p logjam-model --bench check`.

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use logjam_model::testkit::{GenConfig, generate};
use logjam_model::{check, parse_history_str};

const SEED: u64 = 42;

fn checking(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    // Flat sampling: a 1M-operation check takes seconds, so every sample runs it once.
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    for ops in [10_000, 100_000, 1_000_000] {
        let history = generate(&GenConfig::new(SEED, ops));
        assert!(check(&history).holds(), "a generated history passes");
        group.throughput(Throughput::Elements(ops as u64));
        group.bench_with_input(BenchmarkId::from_parameter(ops), &history, |b, history| {
            b.iter(|| check(history))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("parse");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    let ops = 100_000;
    for (shape, setup) in [("narrow", GenConfig::new(SEED, ops)), ("wide", wide(ops))] {
        let text = generate(&setup).to_jsonl();
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::new(shape, ops), &text, |b, text| {
            b.iter(|| parse_history_str(text).expect("a generated history parses"))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("check-wide");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    let history = generate(&wide(ops));
    assert!(check(&history).holds(), "a generated history passes");
    group.throughput(Throughput::Elements(ops as u64));
    group.bench_with_input(BenchmarkId::from_parameter(ops), &history, |b, history| {
        b.iter(|| check(history))
    });
    group.finish();
}

/// Issue 19's target shape: 4 partitions, 8 producers, 4 consumers, 3 replicas.
fn wide(ops: usize) -> GenConfig {
    GenConfig {
        partitions: 4,
        producers: 8,
        consumers: 4,
        replicas: 3,
        ..GenConfig::new(SEED, ops)
    }
}

criterion_group!(benches, checking);
criterion_main!(benches);
