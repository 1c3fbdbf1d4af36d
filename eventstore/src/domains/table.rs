//! A database table as an aggregate, for change data capture: each insert, update or
//! delete of a row is a change event on the table's stream (`table-N`), appended with
//! the stream's expected version, so the stream holds every change once, in order. A
//! replica materializes the rows from the stream (`projection::TableRows`); at every
//! offset it has applied it must equal the table as the changes up to there made it.
//!
//! Rules: an insert needs an absent key, an update or a delete a present one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::aggregate::Aggregate;
use crate::schema::{NoUpcaster, Schema};
use crate::snapshot::Snapshotted;

/// The most rows one table holds.
pub const ROWS_MAX: usize = 10_000;

/// The stream of table `n`.
pub fn table_stream(n: u64) -> String {
    format!("table-{n}")
}

/// A row's change, as published. Serde's default form: `{"RowInserted":{"key":3,"value":7}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowEvent {
    RowInserted { key: u64, value: i64 },
    RowUpdated { key: u64, value: i64 },
    RowDeleted { key: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowCommand {
    Insert { key: u64, value: i64 },
    Update { key: u64, value: i64 },
    Delete { key: u64 },
}

/// The table's rows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub rows: BTreeMap<u64, i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TableError {
    #[error("key {key} is already present")]
    Present { key: u64 },
    #[error("key {key} is absent")]
    Absent { key: u64 },
    #[error("the table is full ({ROWS_MAX} rows)")]
    Full,
}

impl Aggregate for Table {
    type Command = RowCommand;
    type Event = RowEvent;
    type Error = TableError;

    fn handle(&self, command: &RowCommand) -> Result<Vec<RowEvent>, TableError> {
        let event = match *command {
            RowCommand::Insert { key, value } => RowEvent::RowInserted { key, value },
            RowCommand::Update { key, value } => RowEvent::RowUpdated { key, value },
            RowCommand::Delete { key } => RowEvent::RowDeleted { key },
        };
        self.validate(&event)?;
        Ok(vec![event])
    }

    fn apply(&mut self, event: &RowEvent) {
        assert!(self.validate(event).is_ok(), "{event:?} on {:?}", self.rows);
        match *event {
            RowEvent::RowInserted { key, value } | RowEvent::RowUpdated { key, value } => {
                self.rows.insert(key, value);
            }
            RowEvent::RowDeleted { key } => {
                self.rows.remove(&key);
            }
        }
    }

    fn validate(&self, event: &RowEvent) -> Result<(), TableError> {
        match *event {
            RowEvent::RowInserted { key, .. } if self.rows.contains_key(&key) => {
                Err(TableError::Present { key })
            }
            RowEvent::RowInserted { .. } if self.rows.len() >= ROWS_MAX => Err(TableError::Full),
            RowEvent::RowUpdated { key, .. } | RowEvent::RowDeleted { key }
                if !self.rows.contains_key(&key) =>
            {
                Err(TableError::Absent { key })
            }
            _ => Ok(()),
        }
    }
}

impl Schema for Table {
    const SCHEMA_VERSION: u16 = 1;
    type Upcaster = NoUpcaster<RowEvent>;
}

impl Snapshotted for Table {
    const STATE_SCHEMA_VERSION: u16 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::execute;

    #[test]
    fn rows_change_only_as_the_rules_allow() {
        use RowCommand::*;
        // (command, refused?) in order, from an empty table.
        let steps = [
            (Insert { key: 1, value: 10 }, false),
            (Insert { key: 1, value: 11 }, true),
            (Update { key: 2, value: 5 }, true),
            (Update { key: 1, value: 12 }, false),
            (Delete { key: 3 }, true),
            (Delete { key: 1 }, false),
            (Update { key: 1, value: 1 }, true),
            (Insert { key: 1, value: 13 }, false),
        ];
        let mut table = Table::default();
        for (index, (command, refused)) in steps.iter().enumerate() {
            match execute(&table, command) {
                Ok((next, _)) => {
                    assert!(!refused, "step {index}: {command:?} was accepted");
                    table = next;
                }
                Err(error) => assert!(refused, "step {index}: {command:?} refused: {error}"),
            }
        }
        assert_eq!(table.rows, BTreeMap::from([(1, 13)]));
    }

    #[test]
    fn events_have_serdes_externally_tagged_json_shape() {
        let json = serde_json::to_string(&RowEvent::RowInserted { key: 3, value: 7 }).unwrap();
        assert_eq!(json, r#"{"RowInserted":{"key":3,"value":7}}"#);
        let json = serde_json::to_string(&RowEvent::RowDeleted { key: 3 }).unwrap();
        assert_eq!(json, r#"{"RowDeleted":{"key":3}}"#);
    }
}
