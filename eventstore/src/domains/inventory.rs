//! Inventory reservation, one stream per sku (`sku-N`).
//!
//! Invariants: what is reserved never exceeds what is stocked; quantities are
//! positive; an order holds at most one live reservation per sku, and only a live
//! reservation can be released.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::aggregate::Aggregate;
use crate::schema::{NoUpcaster, Schema};
use crate::snapshot::Snapshotted;

/// The most live reservations one sku holds: bounds the state.
pub const RESERVATIONS_MAX: usize = 10_000;

/// The stream of sku `n`.
pub fn sku_stream(n: u64) -> String {
    format!("sku-{n}")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryEvent {
    Stocked { qty: u32 },
    Reserved { order: u64, qty: u32 },
    Released { order: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryCommand {
    Stock { qty: u32 },
    Reserve { order: u64, qty: u32 },
    Release { order: u64 },
}

/// One sku's stock and its live reservations (`reserved` is their sum).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub stocked: u32,
    pub reserved: u32,
    pub reservations: BTreeMap<u64, u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum InventoryError {
    #[error("quantities must be positive")]
    ZeroQuantity,
    #[error("{available} available, cannot reserve {qty}")]
    Unavailable { available: u32, qty: u32 },
    #[error("order {order} already holds a reservation")]
    AlreadyReserved { order: u64 },
    #[error("order {order} holds no reservation")]
    NoReservation { order: u64 },
    #[error("stock overflows")]
    Overflow,
    #[error("too many reservations ({RESERVATIONS_MAX})")]
    TooManyReservations,
}

impl Inventory {
    pub fn available(&self) -> u32 {
        self.stocked - self.reserved
    }
}

impl Aggregate for Inventory {
    type Command = InventoryCommand;
    type Event = InventoryEvent;
    type Error = InventoryError;

    fn handle(&self, command: &InventoryCommand) -> Result<Vec<InventoryEvent>, InventoryError> {
        let event = match *command {
            InventoryCommand::Stock { qty } => InventoryEvent::Stocked { qty },
            InventoryCommand::Reserve { order, qty } => InventoryEvent::Reserved { order, qty },
            InventoryCommand::Release { order } => InventoryEvent::Released { order },
        };
        self.validate(&event)?;
        Ok(vec![event])
    }

    fn validate(&self, event: &InventoryEvent) -> Result<(), InventoryError> {
        match *event {
            InventoryEvent::Stocked { qty: 0 } | InventoryEvent::Reserved { qty: 0, .. } => {
                Err(InventoryError::ZeroQuantity)
            }
            InventoryEvent::Stocked { qty } => match self.stocked.checked_add(qty) {
                Some(_) => Ok(()),
                None => Err(InventoryError::Overflow),
            },
            InventoryEvent::Reserved { order, qty } => {
                if self.reservations.contains_key(&order) {
                    return Err(InventoryError::AlreadyReserved { order });
                }
                if self.reservations.len() >= RESERVATIONS_MAX {
                    return Err(InventoryError::TooManyReservations);
                }
                let available = self.available();
                if available < qty {
                    Err(InventoryError::Unavailable { available, qty })
                } else {
                    Ok(())
                }
            }
            InventoryEvent::Released { order } => match self.reservations.contains_key(&order) {
                true => Ok(()),
                false => Err(InventoryError::NoReservation { order }),
            },
        }
    }

    fn apply(&mut self, event: &InventoryEvent) {
        match *event {
            InventoryEvent::Stocked { qty } => {
                self.stocked = self.stocked.checked_add(qty).expect("stock overflows");
            }
            InventoryEvent::Reserved { order, qty } => {
                assert!(qty > 0, "a zero reservation");
                assert!(
                    self.reservations.insert(order, qty).is_none(),
                    "order {order} reserved twice"
                );
                self.reserved += qty;
            }
            InventoryEvent::Released { order } => {
                let qty = self.reservations.remove(&order);
                self.reserved -= qty.expect("released a reservation that is not live");
            }
        }
        assert!(self.reserved <= self.stocked, "reserved exceeds stocked");
        debug_assert_eq!(self.reserved, self.reservations.values().sum::<u32>());
    }
}

impl Schema for Inventory {
    const SCHEMA_VERSION: u16 = 1;
    type Upcaster = NoUpcaster<InventoryEvent>;
}

impl Snapshotted for Inventory {
    const STATE_SCHEMA_VERSION: u16 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{execute, fold};

    use InventoryCommand::*;

    fn check(
        commands: &[(InventoryCommand, Result<(), InventoryError>)],
        stocked: u32,
        reserved: u32,
    ) {
        let mut sku = Inventory::default();
        let mut events = Vec::new();
        for (command, expected) in commands {
            let result = execute(&sku, command).map(|(next, new)| {
                sku = next;
                events.extend(new);
            });
            assert_eq!(result, *expected, "{command:?}");
        }
        assert_eq!((sku.stocked, sku.reserved), (stocked, reserved));
        assert_eq!(fold::<Inventory>(&events), sku);
    }

    #[test]
    fn reserved_never_exceeds_stocked() {
        check(
            &[
                (
                    Reserve { order: 1, qty: 1 },
                    Err(InventoryError::Unavailable { available: 0, qty: 1 }),
                ),
                (Stock { qty: 5 }, Ok(())),
                (Reserve { order: 1, qty: 3 }, Ok(())),
                (
                    Reserve { order: 2, qty: 3 },
                    Err(InventoryError::Unavailable { available: 2, qty: 3 }),
                ),
                (Reserve { order: 1, qty: 1 }, Err(InventoryError::AlreadyReserved { order: 1 })),
                (Reserve { order: 2, qty: 2 }, Ok(())),
                (Reserve { order: 3, qty: 0 }, Err(InventoryError::ZeroQuantity)),
                (Stock { qty: 0 }, Err(InventoryError::ZeroQuantity)),
            ],
            5,
            5,
        );
    }

    #[test]
    fn only_live_reservations_are_released() {
        check(
            &[
                (Stock { qty: 4 }, Ok(())),
                (Release { order: 1 }, Err(InventoryError::NoReservation { order: 1 })),
                (Reserve { order: 1, qty: 4 }, Ok(())),
                (Release { order: 1 }, Ok(())),
                (Release { order: 1 }, Err(InventoryError::NoReservation { order: 1 })),
                (Reserve { order: 1, qty: 2 }, Ok(())),
                (Stock { qty: u32::MAX }, Err(InventoryError::Overflow)),
            ],
            4,
            2,
        );
    }
}
