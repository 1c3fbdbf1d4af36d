//! Shopping carts, one stream per cart (`cart-N`).
//!
//! Invariants: a line's quantity never goes below zero (a line at zero is gone);
//! quantities are positive; nothing changes after checkout; an empty cart cannot be
//! checked out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::aggregate::Aggregate;
use crate::schema::{NoUpcaster, Schema};
use crate::snapshot::Snapshotted;

/// The most distinct lines a cart holds: bounds the state and the read model.
pub const CART_LINES_MAX: usize = 1_000;

/// The stream of cart `n`.
pub fn cart_stream(n: u64) -> String {
    format!("cart-{n}")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CartEvent {
    ItemAdded { sku: u32, qty: u32 },
    ItemRemoved { sku: u32, qty: u32 },
    CheckedOut,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CartCommand {
    AddItem { sku: u32, qty: u32 },
    RemoveItem { sku: u32, qty: u32 },
    CheckOut,
}

/// A cart: quantity per sku (no zero lines) and whether it is checked out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    pub lines: BTreeMap<u32, u32>,
    pub checked_out: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CartError {
    #[error("quantities must be positive")]
    ZeroQuantity,
    #[error("the cart is checked out")]
    CheckedOut,
    #[error("sku {sku}: {have} in the cart, cannot remove {qty}")]
    NotEnough { sku: u32, have: u32, qty: u32 },
    #[error("sku {sku}: quantity overflows")]
    Overflow { sku: u32 },
    #[error("the cart is full ({CART_LINES_MAX} lines)")]
    Full,
    #[error("an empty cart cannot be checked out")]
    Empty,
}

impl Cart {
    fn quantity(&self, sku: u32) -> u32 {
        self.lines.get(&sku).copied().unwrap_or(0)
    }
}

impl Aggregate for Cart {
    type Command = CartCommand;
    type Event = CartEvent;
    type Error = CartError;

    fn handle(&self, command: &CartCommand) -> Result<Vec<CartEvent>, CartError> {
        let event = match *command {
            CartCommand::AddItem { sku, qty } => CartEvent::ItemAdded { sku, qty },
            CartCommand::RemoveItem { sku, qty } => CartEvent::ItemRemoved { sku, qty },
            CartCommand::CheckOut => CartEvent::CheckedOut,
        };
        self.validate(&event)?;
        Ok(vec![event])
    }

    fn validate(&self, event: &CartEvent) -> Result<(), CartError> {
        if self.checked_out {
            return Err(CartError::CheckedOut);
        }
        match *event {
            CartEvent::ItemAdded { qty: 0, .. } | CartEvent::ItemRemoved { qty: 0, .. } => {
                Err(CartError::ZeroQuantity)
            }
            CartEvent::ItemAdded { sku, qty } => {
                if !self.lines.contains_key(&sku) && self.lines.len() >= CART_LINES_MAX {
                    return Err(CartError::Full);
                }
                match self.quantity(sku).checked_add(qty) {
                    Some(_) => Ok(()),
                    None => Err(CartError::Overflow { sku }),
                }
            }
            CartEvent::ItemRemoved { sku, qty } => {
                let have = self.quantity(sku);
                if have < qty { Err(CartError::NotEnough { sku, have, qty }) } else { Ok(()) }
            }
            CartEvent::CheckedOut if self.lines.is_empty() => Err(CartError::Empty),
            CartEvent::CheckedOut => Ok(()),
        }
    }

    fn apply(&mut self, event: &CartEvent) {
        assert!(!self.checked_out, "a cart changed after checkout");
        match *event {
            CartEvent::ItemAdded { sku, qty } => {
                assert!(qty > 0, "a zero quantity added");
                let line = self.lines.entry(sku).or_insert(0);
                *line = line.checked_add(qty).expect("a cart line overflows");
            }
            CartEvent::ItemRemoved { sku, qty } => {
                assert!(qty > 0, "a zero quantity removed");
                let have = self.quantity(sku);
                let left = have.checked_sub(qty).expect("a cart line goes below zero");
                if left == 0 {
                    self.lines.remove(&sku);
                } else {
                    self.lines.insert(sku, left);
                }
            }
            CartEvent::CheckedOut => {
                assert!(!self.lines.is_empty(), "an empty cart checked out");
                self.checked_out = true;
            }
        }
        assert!(self.lines.values().all(|&qty| qty > 0), "no zero lines");
    }
}

impl Schema for Cart {
    const SCHEMA_VERSION: u16 = 1;
    type Upcaster = NoUpcaster<CartEvent>;
}

impl Snapshotted for Cart {
    const STATE_SCHEMA_VERSION: u16 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{execute, fold};

    use CartCommand::*;

    fn check(
        commands: &[(CartCommand, Result<(), CartError>)],
        lines: &[(u32, u32)],
        checked_out: bool,
    ) {
        let mut cart = Cart::default();
        let mut events = Vec::new();
        for (command, expected) in commands {
            let result = execute(&cart, command).map(|(next, new)| {
                cart = next;
                events.extend(new);
            });
            assert_eq!(result, *expected, "{command:?}");
        }
        assert_eq!(cart.lines, lines.iter().copied().collect::<BTreeMap<_, _>>());
        assert_eq!(cart.checked_out, checked_out);
        assert_eq!(fold::<Cart>(&events), cart);
    }

    #[test]
    fn lines_never_go_below_zero() {
        check(
            &[
                (AddItem { sku: 1, qty: 2 }, Ok(())),
                (
                    RemoveItem { sku: 1, qty: 3 },
                    Err(CartError::NotEnough { sku: 1, have: 2, qty: 3 }),
                ),
                (
                    RemoveItem { sku: 2, qty: 1 },
                    Err(CartError::NotEnough { sku: 2, have: 0, qty: 1 }),
                ),
                (RemoveItem { sku: 1, qty: 2 }, Ok(())),
                (AddItem { sku: 3, qty: 0 }, Err(CartError::ZeroQuantity)),
                (AddItem { sku: 3, qty: u32::MAX }, Ok(())),
                (AddItem { sku: 3, qty: 1 }, Err(CartError::Overflow { sku: 3 })),
            ],
            &[(3, u32::MAX)],
            false,
        );
    }

    #[test]
    fn checkout_needs_items_and_freezes_the_cart() {
        check(
            &[
                (CheckOut, Err(CartError::Empty)),
                (AddItem { sku: 1, qty: 1 }, Ok(())),
                (CheckOut, Ok(())),
                (AddItem { sku: 1, qty: 1 }, Err(CartError::CheckedOut)),
                (RemoveItem { sku: 1, qty: 1 }, Err(CartError::CheckedOut)),
                (CheckOut, Err(CartError::CheckedOut)),
            ],
            &[(1, 1)],
            true,
        );
    }

    #[test]
    fn a_cart_holds_at_most_cart_lines_max_lines() {
        let mut cart = Cart::default();
        for sku in 0..CART_LINES_MAX as u32 {
            cart = execute(&cart, &AddItem { sku, qty: 1 }).unwrap().0;
        }
        assert_eq!(
            execute(&cart, &AddItem { sku: u32::MAX, qty: 1 }).unwrap_err(),
            CartError::Full
        );
        assert!(execute(&cart, &AddItem { sku: 0, qty: 1 }).is_ok(), "an existing line grows");
    }
}
