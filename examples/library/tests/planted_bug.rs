//! A planted bug in the library's code is caught. The bug: a read model that keeps a
//! count in memory and not in its checkpoint (`#[serde(skip)]`). It is right until its
//! projection restarts from a checkpoint; then the count starts again from zero and
//! the shelf shows copies that are out. projection-equivalence compares every
//! checkpoint with the read model folded from scratch, and says where they part.

use std::collections::BTreeMap;

use library_loans::{Book, COPIES, Library, LoanEvent};
use logjam_sim::user::{Draw, EsDomain, EsReadModel, EsSuite, Invariant, ReadModelOf, Work};
use serde::{Deserialize, Serialize};

/// The shelf with the bug.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct CountingShelf {
    available: BTreeMap<String, usize>,
    /// Copies out per book, kept to compute `available`. The bug: not checkpointed.
    #[serde(skip)]
    out: BTreeMap<String, usize>,
}

impl EsReadModel for CountingShelf {
    type Aggregate = Book;

    fn apply(&mut self, book: &str, _offset: u64, event: &LoanEvent) -> Result<(), String> {
        let out = self.out.entry(book.to_owned()).or_default();
        match event {
            LoanEvent::Borrowed { .. } => *out += 1,
            LoanEvent::Returned { .. } => *out = out.saturating_sub(1),
        }
        self.available.insert(book.to_owned(), COPIES.saturating_sub(*out));
        Ok(())
    }
}

/// The library with its read model swapped for the buggy one.
struct BuggyLibrary;

impl EsDomain for BuggyLibrary {
    type Aggregate = Book;
    fn name(&self) -> &str {
        "library"
    }
    fn work(&self, draw: &Draw) -> Work<Book> {
        Library.work(draw)
    }
    fn invariants(&self) -> Vec<Invariant<Book>> {
        Library.invariants()
    }
    fn projection(&self) -> Option<ReadModelOf<Book>> {
        Some(ReadModelOf::new::<CountingShelf>())
    }
}

fn suite() -> EsSuite {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/loans-under-faults.toml");
    EsSuite::load(BuggyLibrary, std::path::Path::new(scenario))
        .unwrap_or_else(|error| panic!("{error}"))
}

/// The sweep that holds for the correct library fails for the buggy one. Its panic
/// message (run it without `should_panic` to read it) names the seed, the invariant,
/// the witness, the replay command and the shrunk schedule.
#[test]
#[should_panic(expected = "invariant: projection-equivalence")]
fn a_read_model_that_leaves_a_count_out_of_its_checkpoint_is_caught() {
    suite().assert_holds(0..40);
}

/// The same bug, as "caught within 40 seeds": the seed that catches it.
#[test]
fn the_bug_is_caught_within_40_seeds() {
    let seed = suite().assert_caught("projection-equivalence", 0..40);
    assert!(seed < 40);
}

/// The regression committed from this bug's shrunk schedule
/// (`regressions/shelf-count-outside-checkpoint.json`: one crash of a projection and
/// two loans) fails again when the bug comes back.
#[test]
#[should_panic(expected = "1 of 1 regressions failed")]
fn the_committed_regression_fails_when_the_bug_comes_back() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/regressions");
    suite().assert_regressions(std::path::Path::new(dir));
}
