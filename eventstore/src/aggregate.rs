//! The aggregate: a consistency boundary that decides (`handle`) and remembers (`apply`).
//!
//! `handle` turns a command into the events that record its effect, or refuses it; it
//! is pure (no clock, no I/O, no randomness), so the same state and command always give
//! the same answer, in the simulator and anywhere else. `apply` folds one event into the
//! state; the state of a stream is the fold of its events from `Default`.
//!
//! An event in a stream was accepted by `handle` against the state before it, so
//! `apply` may assert it: an event its handler would never have produced (money
//! withdrawn past zero, a transfer credited twice) is a broken store, and `validate`
//! lets a fold report it as an error instead of finding it in an assertion.

/// An event-sourced aggregate.
pub trait Aggregate: Default + Clone {
    type Command;
    type Event: Clone + serde::Serialize + serde::de::DeserializeOwned;
    type Error: std::fmt::Display;

    /// The events that carry out `command` against this state, or why it is refused.
    /// Pure: reads nothing but `self` and `command`.
    fn handle(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one event into the state. May panic on an event `validate` refuses.
    fn apply(&mut self, event: &Self::Event);

    /// Whether `event` could have been produced against this state: `Ok` for every event
    /// `handle` returns. Folds over stored streams call it before `apply`, so a store
    /// that broke the aggregate's invariants is reported, not panicked on. The default
    /// accepts everything.
    fn validate(&self, event: &Self::Event) -> Result<(), Self::Error> {
        let _ = event;
        Ok(())
    }
}

/// The state after `events`, from the default state. Panics if an event breaks an
/// invariant `apply` asserts; use `schema::fold_stream` for stored bytes.
pub fn fold<'a, A: Aggregate + 'a>(events: impl IntoIterator<Item = &'a A::Event>) -> A {
    let mut state = A::default();
    for event in events {
        state.apply(event);
    }
    state
}

/// `handle` then `apply`: the state after `command`, and its events. For tests and
/// reference runs that need no store.
pub fn execute<A: Aggregate>(
    state: &A,
    command: &A::Command,
) -> Result<(A, Vec<A::Event>), A::Error> {
    let events = state.handle(command)?;
    let mut next = state.clone();
    for event in &events {
        debug_assert!(next.validate(event).is_ok(), "handle produced an event validate refuses");
        next.apply(event);
    }
    Ok((next, events))
}
