//! A library's loans, event-sourced on a Kafka-style log: the code a team would own,
//! tested under logjam's simulated faults from its own `cargo test`.
//!
//! - [`Book`] is the aggregate, one stream per book (`book-3`): members borrow one of
//!   its [`COPIES`] copies and return it. Its rules: a member holds at most one copy of
//!   a book, and no more copies are out than the library has.
//! - [`Shelf`] is the read model a projection keeps: which books each member holds,
//!   and how many copies of each book are on the shelf.
//! - [`Library`] tells logjam how to run them: which command an operation of the
//!   simulated workload stands for, the invariants to judge every state by, and the
//!   read model of its projections.
//!
//! `tests/` holds the two tests a team writes first: the library holds under crashes,
//! partitions and disk faults (`tests/under_faults.rs`), and a planted bug in a read
//! model is caught, with the seed, the witness, how to replay it and the shrunk
//! schedule (`tests/planted_bug.rs`).

use std::collections::{BTreeMap, BTreeSet};

use logjam_sim::eventstore::Aggregate;
use logjam_sim::eventstore::schema::{NoUpcaster, Schema};
use logjam_sim::eventstore::snapshot::Snapshotted;
use logjam_sim::user::{Draw, EsDomain, EsReadModel, Invariant, ReadModelOf, Work};
use serde::{Deserialize, Serialize};

/// Copies the library has of every book.
pub const COPIES: usize = 2;
/// Members of the library, numbered `0..MEMBERS`.
pub const MEMBERS: u32 = 4;

/// One book: the members holding a copy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Book {
    /// Members holding a copy now.
    pub holders: BTreeSet<u32>,
}

/// What a member asks of a book.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LoanCommand {
    /// Take a copy home.
    Borrow {
        /// Who.
        member: u32,
    },
    /// Bring it back.
    Return {
        /// Who.
        member: u32,
    },
}

/// What happened to a book.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LoanEvent {
    /// A copy went out.
    Borrowed {
        /// To whom.
        member: u32,
    },
    /// A copy came back.
    Returned {
        /// From whom.
        member: u32,
    },
}

impl Aggregate for Book {
    type Command = LoanCommand;
    type Event = LoanEvent;
    type Error = String;

    fn handle(&self, command: &LoanCommand) -> Result<Vec<LoanEvent>, String> {
        let event = match *command {
            LoanCommand::Borrow { member } => LoanEvent::Borrowed { member },
            LoanCommand::Return { member } => LoanEvent::Returned { member },
        };
        // The rules are the events' own: a command is refused exactly when its event
        // could not follow this state.
        self.validate(&event)?;
        Ok(vec![event])
    }

    fn apply(&mut self, event: &LoanEvent) {
        match *event {
            LoanEvent::Borrowed { member } => assert!(self.holders.insert(member)),
            LoanEvent::Returned { member } => assert!(self.holders.remove(&member)),
        }
    }

    fn validate(&self, event: &LoanEvent) -> Result<(), String> {
        match *event {
            LoanEvent::Borrowed { member } if self.holders.contains(&member) => {
                Err(format!("member {member} already holds a copy"))
            }
            LoanEvent::Borrowed { .. } if self.holders.len() >= COPIES => {
                Err(format!("all {COPIES} copies are out"))
            }
            LoanEvent::Returned { member } if !self.holders.contains(&member) => {
                Err(format!("member {member} holds no copy"))
            }
            _ => Ok(()),
        }
    }
}

impl Schema for Book {
    /// Bump it when `LoanEvent` changes shape (and give an upcaster for the old one).
    const SCHEMA_VERSION: u16 = 1;
    type Upcaster = NoUpcaster<LoanEvent>;
}

impl Snapshotted for Book {
    const STATE_SCHEMA_VERSION: u16 = 1;
}

/// The shelf, as the library's front desk reads it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Shelf {
    /// Member (`member-2`) to the books they hold.
    pub loans: BTreeMap<String, BTreeSet<String>>,
    /// Book to the copies on the shelf (a book never lent is not listed).
    pub available: BTreeMap<String, usize>,
}

impl Shelf {
    /// Folds one loan event of `book`: the one rule every read model of the library
    /// shares. Err: the event cannot follow what the shelf holds.
    pub fn take(&mut self, book: &str, event: &LoanEvent) -> Result<(), String> {
        let available = self.available.entry(book.to_owned()).or_insert(COPIES);
        match *event {
            LoanEvent::Borrowed { member } => {
                *available = available.checked_sub(1).ok_or("no copy on the shelf")?;
                self.loans.entry(format!("member-{member}")).or_default().insert(book.to_owned());
            }
            LoanEvent::Returned { member } => {
                let held = self.loans.get_mut(&format!("member-{member}"));
                if !held.is_some_and(|books| books.remove(book)) {
                    return Err(format!("member {member} returned {book}, which they do not hold"));
                }
                *available += 1;
            }
        }
        Ok(())
    }
}

impl EsReadModel for Shelf {
    type Aggregate = Book;

    fn apply(&mut self, stream: &str, _offset: u64, event: &LoanEvent) -> Result<(), String> {
        self.take(stream, event)
    }
}

/// The library's domain, as logjam runs it.
pub struct Library;

impl EsDomain for Library {
    type Aggregate = Book;

    fn name(&self) -> &str {
        "library"
    }

    /// An operation of the workload: a member borrows or returns a copy of one book.
    /// Drawn from the operation's own hash, so shrinking one operation away leaves the
    /// others as they were.
    fn work(&self, draw: &Draw) -> Work<Book> {
        let member = ((draw.hash >> 8) % u64::from(MEMBERS)) as u32;
        let command = match draw.hash % 2 {
            0 => LoanCommand::Borrow { member },
            _ => LoanCommand::Return { member },
        };
        Work::Command { stream: format!("book-{}", draw.aggregate), command }
    }

    fn invariants(&self) -> Vec<Invariant<Book>> {
        vec![Invariant::new("copies-never-exceeded", |book: &Book| {
            if book.holders.len() <= COPIES {
                Ok(())
            } else {
                Err(format!("{} of {COPIES} copies out", book.holders.len()))
            }
        })]
    }

    fn projection(&self) -> Option<ReadModelOf<Book>> {
        Some(ReadModelOf::new::<Shelf>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules, without the simulator: what the aggregate and the shelf say to a
    /// table of loans.
    #[test]
    fn a_book_lends_its_copies_once_each_and_the_shelf_agrees() {
        let steps: &[(LoanCommand, Result<(), &str>)] = &[
            (LoanCommand::Borrow { member: 0 }, Ok(())),
            (LoanCommand::Borrow { member: 0 }, Err("member 0 already holds a copy")),
            (LoanCommand::Borrow { member: 1 }, Ok(())),
            (LoanCommand::Borrow { member: 2 }, Err("all 2 copies are out")),
            (LoanCommand::Return { member: 2 }, Err("member 2 holds no copy")),
            (LoanCommand::Return { member: 0 }, Ok(())),
            (LoanCommand::Borrow { member: 2 }, Ok(())),
        ];
        let (mut book, mut shelf) = (Book::default(), Shelf::default());
        for (command, expected) in steps {
            let outcome = book.handle(command);
            assert_eq!(outcome.as_ref().map(|_| ()).map_err(String::as_str), *expected);
            for event in outcome.unwrap_or_default() {
                book.apply(&event);
                shelf.take("book-0", &event).expect("the shelf takes what the book allows");
            }
        }
        assert_eq!(book.holders, BTreeSet::from([1, 2]));
        assert_eq!(shelf.available["book-0"], 0);
        assert!(shelf.loans["member-0"].is_empty());
    }
}
