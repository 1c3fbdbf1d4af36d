//! Sweeps across seeds: one run per thread, threads taking the next seed as they finish
//! (work stealing over a shared counter). A sweep keeps only its tally and its failures
//! (`SweepResult`), never the runs, so its memory does not grow with its seed count; the
//! tally does not depend on the order seeds finish in, so the output is the same
//! whatever the thread count.
//!
//! Three shapes: a seed range; one shard of it (`--shard K/N`, JSON Lines for `report
//! merge`); and a time budget from a random start seed, writing each failure to a
//! directory.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use logjam_sim::run::{SweepResult, run_seed, schedule_for};
use logjam_sim::scenario::Scenario;
use logjam_sim::schedule_file::{Expectation, FORMAT, ScheduleFile, primary_anomaly};
use serde::{Deserialize, Serialize};

/// Which seeds of `start..start + seeds` a sweep runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    pub start: u64,
    pub seeds: u64,
    /// Shard `index` of `count` runs the seeds `start + i` with `i % count == index`.
    pub shard: Option<(u64, u64)>,
}

impl Slice {
    /// The `n`-th seed of this slice, if the slice has one.
    fn nth(&self, n: u64) -> Option<u64> {
        let (index, count) = self.shard.unwrap_or((0, 1));
        let i = n.checked_mul(count)?.checked_add(index)?;
        (i < self.seeds).then(|| self.start + i)
    }
}

/// How a sweep ends besides running out of seeds.
pub struct Budget {
    pub deadline: Option<std::time::Instant>,
}

/// Where the failures of a long run go, one file each.
pub struct FailureSink {
    pub dir: PathBuf,
}

/// Runs the slice on `jobs` threads and returns its tally (finished: judged).
pub fn run(
    scenario: &Scenario,
    slice: Slice,
    jobs: usize,
    budget: &Budget,
    failures: Option<&FailureSink>,
) -> SweepResult {
    let next = AtomicU64::new(0);
    let result = Mutex::new(SweepResult::new(scenario, slice.start));
    let total = slice.shard.map_or(slice.seeds, |(index, count)| {
        slice.seeds / count + u64::from(index < slice.seeds % count)
    });
    // A time budget's sweep has no known length: a spinner instead of a bar.
    let progress = progress_bar(if budget.deadline.is_some() { None } else { Some(total) });
    let worker = || {
        loop {
            #[allow(clippy::disallowed_methods)] // the budget is wall time, outside any run
            let over =
                budget.deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline);
            // Over budget: stop before taking a seed, so that every seed taken is run
            // and the seeds run are consecutive (a later `--start --seeds` repeats them).
            if over {
                break;
            }
            let Some(seed) = slice.nth(next.fetch_add(1, Ordering::Relaxed)) else { break };
            // An assertion firing in simulation is a found bug: that seed fails, the
            // sweep goes on.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_seed(scenario, seed, 0).0
            }));
            let mut tally = result.lock().expect("no worker panics holding the lock");
            match outcome {
                Ok(run) => {
                    let before = tally.unexpected_total;
                    tally.add(scenario, &run);
                    if tally.unexpected_total > before {
                        if let Some(sink) = failures {
                            sink.write_failure(scenario, seed, Some(&run));
                        }
                    }
                }
                Err(payload) => {
                    let message = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "a panic without a message".to_owned());
                    tally.add_panic(seed, &message);
                    if let Some(sink) = failures {
                        sink.write_failure(scenario, seed, None);
                    }
                }
            }
            drop(tally);
            progress.inc(1);
        }
    };
    // Threads run whole seeds, never parts of one run.
    #[allow(clippy::disallowed_methods)]
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(worker);
        }
    });
    progress.finish_and_clear();
    let mut result = result.into_inner().expect("workers finished");
    result.finish(scenario);
    result
}

fn progress_bar(total: Option<u64>) -> indicatif::ProgressBar {
    // Progress only on a terminal: scripts and CI logs get the summary alone.
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(total) => {
            (indicatif::ProgressBar::new(total), "{bar:40} {pos}/{len} seeds {per_sec} eta {eta}")
        }
        None => {
            (indicatif::ProgressBar::new_spinner(), "{spinner} {pos} seeds {per_sec} {elapsed}")
        }
    };
    let style = indicatif::ProgressStyle::with_template(template);
    bar.set_style(style.unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

impl FailureSink {
    /// One file per failing seed: a schedule file (replayable, shrinkable) for a broken
    /// invariant, a text file for a panic.
    fn write_failure(
        &self,
        scenario: &Scenario,
        seed: u64,
        run: Option<&logjam_sim::run::RunResult>,
    ) {
        let replay = logjam_sim::run::replay_command(scenario, seed);
        let (path, text) = match run {
            Some(run) => {
                let anomaly = primary_anomaly(scenario, run).unwrap_or_else(|| "limit".to_owned());
                let file = ScheduleFile {
                    format: FORMAT.to_owned(),
                    scenario: scenario.path.clone(),
                    anomaly,
                    expect: Expectation::Holds,
                    note: format!(
                        "seed {seed} broke the scenario's expectation (trace hash {:016x}); replay: {replay}",
                        run.trace_hash
                    ),
                    origin: None,
                    schedule: schedule_for(scenario, seed),
                };
                (self.dir.join(format!("{}-{seed}.json", scenario.name)), file.to_json())
            }
            None => (
                self.dir.join(format!("{}-{seed}.txt", scenario.name)),
                format!("seed {seed} panicked\nreplay: {replay}\n"),
            ),
        };
        if let Err(error) = std::fs::write(&path, text) {
            eprintln!("logjam: {}: cannot write: {error}", path.display());
        }
    }
}

/// The first line of a shard's JSON Lines: which sweep and which part of it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShardHeader {
    schema: String,
    shard: u64,
    shards: u64,
    /// The whole sweep's seeds (`start..start + seeds`), not this shard's.
    seeds: u64,
    /// xxh3-64 of the scenario file the shard ran: a merge refuses shards of another
    /// version of the file, or a file edited since.
    scenario_digest: String,
    /// The shard's tally (its failures follow, one per line).
    tally: SweepResult,
}

/// The digest a shard records of its scenario file (16 hex digits), if it can be read.
pub fn scenario_digest(path: &str) -> Option<String> {
    std::fs::read(path).ok().map(|bytes| format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)))
}

const SHARD_SCHEMA: &str = "logjam.shard.v1";

/// A shard's result as JSON Lines: a header with the tally, then one line per failure.
pub fn shard_jsonl(result: &SweepResult, slice: Slice) -> String {
    let (shard, shards) = slice.shard.expect("a shard");
    let mut tally = result.clone();
    let failures = std::mem::take(&mut tally.unexpected);
    let scenario_digest = scenario_digest(&tally.path).unwrap_or_default();
    let header = ShardHeader {
        schema: SHARD_SCHEMA.to_owned(),
        shard,
        shards,
        seeds: slice.seeds,
        scenario_digest,
        tally,
    };
    let mut out = serde_json::to_string(&header).expect("a shard header serializes");
    out.push('\n');
    for failure in failures {
        out.push_str(&serde_json::to_string(&failure).expect("a failure serializes"));
        out.push('\n');
    }
    out
}

/// Merges shard files into the sweep they are parts of (not yet finished: the caller
/// judges it against its scenario), checking that they are the shards of one sweep,
/// each exactly once, and that together they ran every seed. Errors name the file and
/// line.
pub fn merge(paths: &[PathBuf]) -> Result<(SweepResult, String), String> {
    let mut merged: Option<SweepResult> = None;
    // path, start, seeds, shards, scenario digest
    let mut plan: Option<(String, u64, u64, u64, String)> = None;
    let mut seen = std::collections::BTreeSet::new();
    for path in paths {
        let (header, failures) = read_shard(path)?;
        let shown = path.display();
        let this = (
            header.tally.path.clone(),
            header.tally.start,
            header.seeds,
            header.shards,
            header.scenario_digest.clone(),
        );
        match &plan {
            None => plan = Some(this.clone()),
            Some(plan) if *plan != this => {
                return Err(format!(
                    "{shown}: a shard of another sweep ({} seeds {}..{} in {} shards; the first file is {} seeds {}..{} in {} shards)",
                    this.0,
                    this.1,
                    this.1 + this.2,
                    this.3,
                    plan.0,
                    plan.1,
                    plan.1 + plan.2,
                    plan.3
                ));
            }
            Some(_) => {}
        }
        if header.shard >= header.shards || !seen.insert(header.shard) {
            return Err(format!(
                "{shown}: shard {}/{} is out of range or given twice",
                header.shard, header.shards
            ));
        }
        let mut part = header.tally;
        part.unexpected = failures;
        match &mut merged {
            None => merged = Some(part),
            Some(merged) => merged.merge(part),
        }
    }
    let (Some(merged), Some((_, _, seeds, shards, digest))) = (merged, plan) else {
        return Err("no shard files given".to_owned());
    };
    if seen.len() as u64 != shards {
        let missing: Vec<String> =
            (0..shards).filter(|k| !seen.contains(k)).map(|k| format!("{k}/{shards}")).collect();
        return Err(format!("shards missing: {}", missing.join(", ")));
    }
    if merged.seeds != seeds {
        return Err(format!("the shards ran {} seeds of the sweep's {seeds}", merged.seeds));
    }
    Ok((merged, digest))
}

fn read_shard(path: &Path) -> Result<(ShardHeader, Vec<logjam_sim::run::Unexpected>), String> {
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|error| format!("{shown}: cannot read: {error}"))?;
    let mut lines = text.lines().enumerate();
    let Some((_, first)) = lines.next() else {
        return Err(format!("{shown}: empty; expected a {SHARD_SCHEMA} header line"));
    };
    let header: ShardHeader = serde_json::from_str(first)
        .map_err(|error| format!("{shown}:1:{}: {error}", error.column()))?;
    if header.schema != SHARD_SCHEMA {
        return Err(format!(
            "{shown}:1: schema `{}`; this logjam reads `{SHARD_SCHEMA}`",
            header.schema
        ));
    }
    let mut failures = Vec::new();
    for (index, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let failure = serde_json::from_str(line)
            .map_err(|error| format!("{shown}:{}:{}: {error}", index + 1, error.column()))?;
        failures.push(failure);
    }
    if failures.len() as u64
        != header.tally.unexpected_total.min(logjam_sim::run::UNEXPECTED_KEPT_MAX as u64)
    {
        return Err(format!(
            "{shown}: the header counts {} failures but {} lines follow",
            header.tally.unexpected_total,
            failures.len()
        ));
    }
    Ok((header, failures))
}
