//! A user's own aggregate on the simulated log (issue 20 part 2): seat reservations
//! for concerts, none of the four built-in domains, run through `logjam_sim::user`
//! under crashes and partitions, and judged with the domain-independent event-store
//! checks plus its own fold and invariants, and with its own read model under
//! projections that crash. Planted bugs in the aggregate and the read model are
//! caught, each as the named anomaly with its witness.

use logjam_eventstore::Aggregate;
use logjam_eventstore::schema::{NoUpcaster, Schema};
use logjam_eventstore::snapshot::Snapshotted;
use logjam_sim::run::{RunResult, RunVerdict};
use logjam_sim::user::{Draw, EsDomain, EsReadModel, EsSuite, Invariant, ReadModelOf, Work};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Seats of one concert.
const CAPACITY: u32 = 6;

/// The bugs a row plants.
const CORRECT: u8 = 0;
/// `handle` forgets the capacity; `validate` still knows it: stored events it refuses.
const HANDLER_OVERBOOKS: u8 = 1;
/// `handle` and `validate` both allow one seat too many: the invariant breaks.
const ONE_SEAT_TOO_MANY: u8 = 2;
/// `handle` cancels a booking without checking it is there.
const CANCELS_UNKNOWN: u8 = 3;
/// The read model keeps what a cancel frees outside its checkpoint: after a
/// projection restarts, a cancel of an earlier booking frees nothing.
const PROJECTION_FORGETS_BOOKINGS: u8 = 4;

/// One concert's bookings: booking id to seats.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Concert<const BUG: u8> {
    bookings: BTreeMap<u64, u32>,
}

impl<const BUG: u8> Concert<BUG> {
    fn taken(&self) -> u32 {
        self.bookings.values().sum()
    }

    /// Seats `handle` and `validate` let be taken (one too many under the bug).
    fn room(&self) -> u32 {
        let capacity = if BUG == ONE_SEAT_TOO_MANY { CAPACITY + 1 } else { CAPACITY };
        capacity.saturating_sub(self.taken())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum SeatCommand {
    Reserve { booking: u64, seats: u32 },
    Cancel { booking: u64 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum SeatEvent {
    Reserved { booking: u64, seats: u32 },
    Cancelled { booking: u64 },
}

impl<const BUG: u8> Aggregate for Concert<BUG> {
    type Command = SeatCommand;
    type Event = SeatEvent;
    type Error = String;

    fn handle(&self, command: &SeatCommand) -> Result<Vec<SeatEvent>, String> {
        match *command {
            SeatCommand::Reserve { booking, .. } if self.bookings.contains_key(&booking) => {
                Err(format!("booking {booking} exists"))
            }
            SeatCommand::Reserve { seats, .. }
                if BUG != HANDLER_OVERBOOKS && seats > self.room() =>
            {
                Err(format!("{seats} seats asked, {} left", self.room()))
            }
            SeatCommand::Reserve { booking, seats } => {
                Ok(vec![SeatEvent::Reserved { booking, seats }])
            }
            SeatCommand::Cancel { booking }
                if BUG != CANCELS_UNKNOWN && !self.bookings.contains_key(&booking) =>
            {
                Err(format!("no booking {booking}"))
            }
            SeatCommand::Cancel { booking } => Ok(vec![SeatEvent::Cancelled { booking }]),
        }
    }

    fn apply(&mut self, event: &SeatEvent) {
        match *event {
            SeatEvent::Reserved { booking, seats } => {
                self.bookings.insert(booking, seats);
            }
            SeatEvent::Cancelled { booking } => {
                self.bookings.remove(&booking).expect("validate checked the booking");
            }
        }
    }

    fn validate(&self, event: &SeatEvent) -> Result<(), String> {
        match *event {
            SeatEvent::Reserved { seats, .. } if seats > self.room() => {
                Err(format!("{seats} seats reserved with {} left", self.room()))
            }
            SeatEvent::Reserved { booking, .. } if self.bookings.contains_key(&booking) => {
                Err(format!("booking {booking} reserved twice"))
            }
            SeatEvent::Cancelled { booking } if !self.bookings.contains_key(&booking) => {
                Err(format!("booking {booking} cancelled, never reserved"))
            }
            _ => Ok(()),
        }
    }
}

impl<const BUG: u8> Schema for Concert<BUG> {
    const SCHEMA_VERSION: u16 = 1;
    type Upcaster = NoUpcaster<SeatEvent>;
}

impl<const BUG: u8> Snapshotted for Concert<BUG> {
    const STATE_SCHEMA_VERSION: u16 = 1;
}

struct Concerts<const BUG: u8>;

impl<const BUG: u8> EsDomain for Concerts<BUG> {
    type Aggregate = Concert<BUG>;

    fn name(&self) -> &str {
        "concerts"
    }

    fn work(&self, draw: &Draw) -> Work<Concert<BUG>> {
        // Few booking ids per concert, so cancels meet bookings and reserves meet full
        // houses.
        let booking = (draw.hash >> 8) % 5;
        let command = match draw.hash % 10 {
            0..=6 => SeatCommand::Reserve { booking, seats: 1 + ((draw.hash >> 16) % 3) as u32 },
            _ => SeatCommand::Cancel { booking },
        };
        Work::Command { stream: format!("concert-{}", draw.aggregate), command }
    }

    fn projection(&self) -> Option<ReadModelOf<Concert<BUG>>> {
        Some(match BUG {
            PROJECTION_FORGETS_BOOKINGS => ReadModelOf::new::<Forgetful<BUG>>(),
            _ => ReadModelOf::new::<Taken<BUG>>(),
        })
    }

    fn invariants(&self) -> Vec<Invariant<Concert<BUG>>> {
        vec![Invariant::new("never-oversold", |concert: &Concert<BUG>| {
            let taken = concert.taken();
            if taken <= CAPACITY {
                Ok(())
            } else {
                Err(format!("{taken} of {CAPACITY} seats taken"))
            }
        })]
    }
}

/// The seats each concert has taken, as a box office's query reads them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Taken<const BUG: u8> {
    taken: BTreeMap<String, u32>,
    /// (concert, booking) to seats: what a cancel frees.
    bookings: BTreeMap<String, u32>,
}

/// `Taken` with the bug: its bookings are not in the checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Forgetful<const BUG: u8> {
    taken: BTreeMap<String, u32>,
    #[serde(skip)]
    bookings: BTreeMap<String, u32>,
}

/// The fold both read models share.
fn take_seats(
    taken: &mut BTreeMap<String, u32>,
    bookings: &mut BTreeMap<String, u32>,
    stream: &str,
    event: &SeatEvent,
) {
    let seats = taken.entry(stream.to_owned()).or_insert(0);
    match *event {
        SeatEvent::Reserved { booking, seats: asked } => {
            *seats += asked;
            bookings.insert(format!("{stream}/{booking}"), asked);
        }
        SeatEvent::Cancelled { booking } => {
            // A booking it does not know of frees nothing (the bug's symptom).
            *seats -= bookings.remove(&format!("{stream}/{booking}")).unwrap_or(0);
        }
    }
}

impl<const BUG: u8> EsReadModel for Taken<BUG> {
    type Aggregate = Concert<BUG>;
    fn apply(&mut self, stream: &str, _offset: u64, event: &SeatEvent) -> Result<(), String> {
        take_seats(&mut self.taken, &mut self.bookings, stream, event);
        Ok(())
    }
}

impl<const BUG: u8> EsReadModel for Forgetful<BUG> {
    type Aggregate = Concert<BUG>;
    fn apply(&mut self, stream: &str, _offset: u64, event: &SeatEvent) -> Result<(), String> {
        take_seats(&mut self.taken, &mut self.bookings, stream, event);
        Ok(())
    }
}

/// Three brokers, RF 3, min ISR 2, acks all: crashes of the servers and partitions.
const SCENARIO: &str = r#"
name = "concerts-under-faults"
about = "seat reservations on the log: crashes and partitions"
system = "event-store"

[cluster]
brokers = 3
partitions = 2
replication_factor = 3
min_insync_replicas = 2
acks = "all"
flush = "every-batch"

[eventstore]
aggregates = 3

[workload]
producers = 3
consumers = 0
ops_per_s = 30

[faults]
swarm = false
crash = { every = ["300ms", "1s"], down_for = ["50ms", "400ms"], max_down = 1 }
partition = { kinds = ["isolate", "split", "one-way"], every = ["500ms", "2s"], heal_after = ["200ms", "1s"] }
drop = [0.0, 0.03]

[phases]
chaos = "4s"
quiet = "4s"

[expect]
all_hold = true
"#;

fn suite<const BUG: u8>() -> EsSuite {
    EsSuite::new(Concerts::<BUG>, SCENARIO).expect("the scenario checks")
}

/// `SCENARIO` with a projection per partition (they crash too).
fn projected<const BUG: u8>() -> EsSuite {
    let text = SCENARIO.replace("consumers = 0", "consumers = 2");
    EsSuite::new(Concerts::<BUG>, &text).expect("the scenario checks")
}

fn failure(run: &RunResult) -> String {
    run.violations()
        .map(|check| {
            format!(
                "{}: {}\n  {}",
                check.invariant,
                check.witness.as_deref().unwrap_or(""),
                check.witness_lines.join("\n  ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_correct_user_aggregate_holds_under_crashes_and_partitions() {
    let suite = suite::<CORRECT>();
    let mut crashes = 0;
    for seed in 0..24 {
        let run = suite.run_seed(seed);
        assert_eq!(suite.verdict(&run), RunVerdict::Held, "seed {seed}:\n{}", failure(&run));
        let check = |name: &str| run.checks.iter().find(|c| c.invariant == name).expect(name);
        // The checks that need a fold ran, with the user's own.
        for name in ["replay-equivalence", "folds-agree", "business-rules"] {
            let checked = &check(name).checked;
            assert!(checked.contains("the user's"), "seed {seed} {name}: {checked}");
        }
        assert!(run.ops_started > 20, "seed {seed}: {} commands", run.ops_started);
        crashes += run.reached.get("crash").copied().unwrap_or(0);
    }
    assert!(crashes > 0, "the faults struck");
}

/// A planted bug, the check that must catch it, and words its witness must hold.
struct Row {
    name: &'static str,
    run: fn(u64) -> RunResult,
    invariant: &'static str,
    mentions: &'static [&'static str],
}

const ROWS: &[Row] = &[
    Row {
        name: "handler overbooks, validate refuses the stored event",
        run: |seed| suite::<HANDLER_OVERBOOKS>().run_seed(seed),
        invariant: "business-rules",
        mentions: &["concert-", "version", "offset", "validate refuses", "seats reserved with"],
    },
    Row {
        name: "one seat too many: the user's invariant breaks",
        run: |seed| suite::<ONE_SEAT_TOO_MANY>().run_seed(seed),
        invariant: "business-rules",
        mentions: &[
            "invariant `never-oversold` broken",
            "7 of 6 seats taken",
            "Concert {",
            "offset",
        ],
    },
    Row {
        name: "a cancel of an unknown booking",
        run: |seed| suite::<CANCELS_UNKNOWN>().run_seed(seed),
        invariant: "business-rules",
        mentions: &["cancelled, never reserved"],
    },
    Row {
        name: "the read model's checkpoint leaves out what a cancel frees",
        run: |seed| projected::<PROJECTION_FORGETS_BOOKINGS>().run_seed(seed),
        invariant: "projection-equivalence",
        mentions: &[
            "checkpoint #",
            "folded from scratch",
            "taken.concert-",
            "in the checkpoint but",
        ],
    },
];

#[test]
fn a_user_read_model_holds_under_projection_crashes_and_is_judged_with_its_own_fold() {
    let suite = projected::<CORRECT>();
    let mut restarts = 0;
    for seed in 0..12 {
        let run = suite.run_seed(seed);
        assert_eq!(suite.verdict(&run), RunVerdict::Held, "seed {seed}:\n{}", failure(&run));
        let check = run.checks.iter().find(|c| c.invariant == "projection-equivalence");
        let checked = &check.expect("projection-equivalence").checked;
        assert!(checked.contains("the user's read model"), "seed {seed}: {checked}");
        restarts += run.reached.get("projection-restart").copied().unwrap_or(0);
    }
    assert!(restarts > 0, "projections restarted");
}

#[test]
fn a_domain_without_a_read_model_says_its_projections_are_not_checked() {
    struct Bare;
    impl EsDomain for Bare {
        type Aggregate = Concert<CORRECT>;
        fn name(&self) -> &str {
            "concerts"
        }
        fn work(&self, draw: &Draw) -> Work<Concert<CORRECT>> {
            EsDomain::work(&Concerts::<CORRECT>, draw)
        }
    }
    let run = EsSuite::new(Bare, SCENARIO).expect("checks").run_seed(2);
    let check = run.checks.iter().find(|c| c.invariant == "projection-equivalence");
    let checked = &check.expect("projection-equivalence").checked;
    assert!(checked.starts_with("not checked"), "{checked}");
    // Asking for projections of it is refused, saying why.
    let text = SCENARIO.replace("consumers = 0", "consumers = 2");
    let error = EsSuite::new(Bare, &text).err().expect("refused").to_string();
    assert!(
        error.contains("has no read model") && error.contains("EsDomain::projection"),
        "{error}"
    );
}

#[test]
fn planted_bugs_in_the_user_aggregate_are_caught_with_a_named_witness() {
    for row in ROWS {
        let caught = (0..20).find_map(|seed| {
            let run = (row.run)(seed);
            let caught = run.violations().any(|c| c.invariant == row.invariant);
            caught.then_some((seed, run))
        });
        let Some((seed, run)) = caught else { panic!("{}: not caught in 20 seeds", row.name) };
        let check = run.violations().find(|c| c.invariant == row.invariant).expect("found above");
        let shown = format!(
            "{}\n  {}",
            check.witness.as_deref().unwrap_or(""),
            check.witness_lines.join("\n  ")
        );
        eprintln!("{} (seed {seed}): {}", row.name, shown);
        for words in row.mentions {
            assert!(shown.contains(words), "{} (seed {seed}): no `{words}` in\n{shown}", row.name);
        }
        assert!(!check.witness_lines.is_empty(), "{}: a witness line", row.name);
    }
}

#[test]
fn a_user_scenario_names_its_domain_or_leaves_it_out_and_a_stranger_is_refused() {
    let named = SCENARIO.replace("[eventstore]\n", "[eventstore]\ndomain = \"concerts\"\n");
    let a = EsSuite::new(Concerts::<CORRECT>, &named).expect("named").run_seed(3);
    let b = suite::<CORRECT>().run_seed(3);
    assert_eq!(a.trace_hash, b.trace_hash);
    let stranger = SCENARIO.replace("[eventstore]\n", "[eventstore]\ndomain = \"ledger\"\n");
    let error = EsSuite::new(Concerts::<CORRECT>, &stranger).err().expect("refused").to_string();
    assert!(error.contains("`ledger` is not a domain") && error.contains("concerts"), "{error}");
    // Without the user's domain, the scenario does not check.
    let error = logjam_sim::scenario::Scenario::parse(SCENARIO, "x.toml").expect_err("refused");
    assert!(error.to_string().contains("eventstore.domain: missing"), "{error}");
}

#[test]
fn a_user_run_is_deterministic() {
    let suite = suite::<CORRECT>();
    for seed in [0, 7] {
        assert_eq!(suite.run_seed(seed).trace_hash, suite.run_seed(seed).trace_hash);
    }
}

#[test]
fn the_test_helpers_say_holds_caught_and_on_failure_everything_to_replay_it() {
    suite::<CORRECT>().assert_holds(0..8);
    let seed = suite::<ONE_SEAT_TOO_MANY>().assert_caught("business-rules", 0..50);
    assert!(seed < 50);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let buggy = suite::<ONE_SEAT_TOO_MANY>().with_regressions_dir(dir.path());
    let panic =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| buggy.assert_holds(0..50)))
            .expect_err("the planted bug fails the sweep");
    let message = panic.downcast_ref::<String>().expect("a formatted panic");
    eprintln!("{message}");
    let written = dir.path().join(format!("concerts-under-faults-seed-{seed}.json"));
    for words in [
        &format!("seed {seed}") as &str,
        "invariant: business-rules",
        "never-oversold",
        &format!("suite.run_seed({seed})"),
        "shrunk:",
        &written.display().to_string(),
    ] {
        assert!(message.contains(words), "no `{words}` in\n{message}");
    }
    // The shrunk schedule still fails, and is no bigger than the seed's.
    let text = std::fs::read_to_string(&written).expect("the schedule file");
    let file = logjam_sim::schedule_file::ScheduleFile::parse(&text, "x.json").expect("parses");
    let run = buggy.run_schedule(&file.schedule);
    assert!(run.violations().any(|c| c.invariant == "business-rules"));
    let origin = file.origin.expect("an origin");
    assert!(file.schedule.ops.len() <= origin.ops);
}

#[test]
fn a_sweep_report_is_a_snapshot_that_changes_only_with_a_verdict() {
    let report = projected::<CORRECT>().report(0..6);
    // The same whatever the thread count (the sweep runs in parallel).
    assert_eq!(report, projected::<CORRECT>().report(0..6));
    insta::assert_snapshot!("concerts_projected_report", report);
    let buggy = projected::<PROJECTION_FORGETS_BOOKINGS>().report(0..6);
    let row = buggy.lines().find(|line| line.starts_with("projection-equivalence")).expect("a row");
    assert!(row.contains("(seed 0)"), "{buggy}");
    assert!(buggy.contains("first unexpected: seed 0"), "{buggy}");
}
