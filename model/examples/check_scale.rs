//! Checks one large generated history and prints how long each stage took, so peak
//! memory can be measured around it with `/usr/bin/time -v`:
//!
//! ```sh
//! cargo build --release -p logjam-model --example check_scale
//! /usr/bin/time -v target/release/examples/check_scale 1000000          # built in memory
//! /usr/bin/time -v target/release/examples/check_scale 1000000 --jsonl  # written, parsed back
//! # the shape of issue 19's target: 4 partitions, 8 producers, 4 consumers, 3 replicas
//! /usr/bin/time -v target/release/examples/check_scale 1000000 --jsonl --wide
//! ```
//!
//! A measuring tool, outside any simulated run: it reads the wall clock on purpose.

use std::time::{Duration, Instant};

use logjam_model::testkit::{GenConfig, generate};
use logjam_model::{check, parse_history_str};

#[allow(clippy::disallowed_methods)] // measuring is the point; nothing here is simulated
fn timed<T>(what: &str, work: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let result = work();
    let took = started.elapsed();
    eprintln!("{what:<10} {:>8.3} s", took.as_secs_f64());
    (result, took)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let ops: usize = args
        .next()
        .map_or(1_000_000, |n| n.parse().expect("usage: check_scale [OPS] [--jsonl] [--wide]"));
    let flags: Vec<String> = args.collect();
    let via_jsonl = flags.iter().any(|flag| flag == "--jsonl");
    let mut setup = GenConfig::new(42, ops);
    if flags.iter().any(|flag| flag == "--wide") {
        setup = GenConfig { partitions: 4, producers: 8, consumers: 4, replicas: 3, ..setup };
    }

    let (mut history, _) = timed("generate", || generate(&setup));
    eprintln!(
        "history    {} operations, {} events, {} closing lines",
        history.ops().len(),
        history.events().len(),
        history.closing().len()
    );
    if via_jsonl {
        let (text, _) = timed("write", || history.to_jsonl());
        eprintln!("jsonl      {} MiB", text.len() >> 20);
        drop(history);
        (history, _) =
            timed("parse", || parse_history_str(&text).expect("a generated history parses"));
    }
    let (verdict, _) = timed("check", || check(&history));
    print!("{verdict}");
    assert!(verdict.holds(), "a generated history passes");
}
