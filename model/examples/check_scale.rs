//! Checks one large generated history and prints how long each stage took, so peak
//! memory can be measured around it with `/usr/bin/time -v`:
//!
//! ```sh
//! cargo build --release -p logjam-model --example check_scale
//! /usr/bin/time -v target/release/examples/check_scale 1000000          # built in memory
//! /usr/bin/time -v target/release/examples/check_scale 1000000 --jsonl  # written, parsed back
//! # the shape of issue 19's target: 4 partitions, 8 producers, 4 consumers, 3 replicas
//! /usr/bin/time -v target/release/examples/check_scale 1000000 --jsonl --wide
//! # the same history as a file, for `logjam check` (nothing is checked)
//! target/release/examples/check_scale 1000000 --wide --write /tmp/wide-1m.jsonl
//! # a file streamed through `parse_history`, as `logjam check` reads it
//! /usr/bin/time -v target/release/examples/check_scale --read /tmp/wide-1m.jsonl
//! ```
//!
//! A measuring tool, outside any simulated run: it reads the wall clock on purpose.

use std::time::{Duration, Instant};

use logjam_model::testkit::{GenConfig, generate};
use logjam_model::{check, parse_history, parse_history_str};

/// Wall time, and the CPU time this process spent (Linux's `/proc/self/schedstat`,
/// nanoseconds on a CPU; absent elsewhere): on a machine shared with other work, the
/// CPU time is the figure that does not depend on the neighbours.
#[allow(clippy::disallowed_methods)] // measuring is the point; nothing here is simulated
fn timed<T>(what: &str, work: impl FnOnce() -> T) -> (T, Duration) {
    let cpu_started = cpu_ns();
    let started = Instant::now();
    let result = work();
    let took = started.elapsed();
    match (cpu_started, cpu_ns()) {
        (Some(before), Some(after)) => eprintln!(
            "{what:<10} {:>8.3} s wall {:>8.3} s cpu",
            took.as_secs_f64(),
            (after - before) as f64 / 1e9
        ),
        _ => eprintln!("{what:<10} {:>8.3} s wall", took.as_secs_f64()),
    }
    (result, took)
}

fn cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, path] = args.as_slice() {
        if flag == "--read" {
            return read(path);
        }
    }
    let mut args = args.into_iter();
    let ops: usize = args
        .next()
        .map_or(1_000_000, |n| n.parse().expect("usage: check_scale [OPS] [--jsonl] [--wide]"));
    let flags: Vec<String> = args.collect();
    let write_to = flags.iter().position(|flag| flag == "--write").map(|at| {
        flags.get(at + 1).expect("usage: check_scale [OPS] [--wide] --write FILE").clone()
    });
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
    if let Some(path) = write_to {
        let file = std::fs::File::create(&path).expect("the output file can be created");
        let mut out = std::io::BufWriter::new(file);
        timed("write", || history.write_jsonl(&mut out).expect("the history is written"));
        std::io::Write::flush(&mut out).expect("the history is written");
        return;
    }
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

/// Parses a history file as `logjam check` does (streamed, line by line) and checks it.
fn read(path: &str) {
    let file = std::fs::File::open(path).expect("the history file can be read");
    let (history, _) = timed("parse", || {
        parse_history(std::io::BufReader::new(file)).expect("the history parses")
    });
    eprintln!("history    {} operations, {} events", history.ops().len(), history.events().len());
    let (verdict, _) = timed("check", || check(&history));
    print!("{verdict}");
}
