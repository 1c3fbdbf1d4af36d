//! Example domains, each an aggregate with business invariants its `validate` and
//! `apply` enforce: bank accounts (never negative; transfers conserve money), shopping
//! carts, inventory reservation, and a database table whose row changes are
//! published for change data capture.

pub mod bank;
pub mod cart;
pub mod inventory;
pub mod table;
