//! Example domains, each an aggregate with business invariants its `validate` and
//! `apply` enforce: bank accounts (never negative; transfers conserve money), shopping
//! carts, inventory reservation.

pub mod bank;
pub mod cart;
pub mod inventory;
