//! The example domains' read models: balances per account, open carts, available stock
//! per sku, and the rows of every table (a CDC replica). Each decodes events with the domain's schema (upcasting included) and
//! refuses an event that breaks the domain's invariants.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ReadModel;
use crate::domains::bank::{Account, BankEvent};
use crate::domains::cart::Cart;
use crate::domains::inventory::Inventory;
use crate::domains::table::Table;
use crate::envelope::EnvelopeRef;
use crate::schema::{FoldError, Schema, decode_event_ref};

fn invariant(stream: &str, offset: u64, envelope: EnvelopeRef<'_>, detail: String) -> FoldError {
    let stream = stream.to_owned();
    FoldError::Invariant { stream, offset, stream_version: envelope.stream_version, detail }
}

/// Validates and applies one event to `state`.
fn apply_checked<A: Schema>(
    state: &mut A,
    stream: &str,
    offset: u64,
    envelope: EnvelopeRef<'_>,
) -> Result<(), FoldError> {
    let event = decode_event_ref::<A>(stream, offset, envelope)?;
    state.validate(&event).map_err(|e| invariant(stream, offset, envelope, e.to_string()))?;
    state.apply(&event);
    Ok(())
}

/// The balance of every account (`acct-*`) that has an event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankBalances {
    pub balances: BTreeMap<String, u64>,
}

impl ReadModel for BankBalances {
    fn wants(stream: &str) -> bool {
        stream.starts_with("acct-")
    }

    fn apply(
        &mut self,
        stream: &str,
        offset: u64,
        envelope: EnvelopeRef<'_>,
    ) -> Result<(), FoldError> {
        let event = decode_event_ref::<Account>(stream, offset, envelope)?;
        let balance = self.balances.entry(stream.to_owned()).or_insert(0);
        let amount = event.amount();
        let next = match event {
            BankEvent::Deposited { .. }
            | BankEvent::TransferCredited { .. }
            | BankEvent::TransferRefunded { .. } => balance.checked_add(amount),
            BankEvent::Withdrawn { .. } | BankEvent::TransferDebited { .. } => {
                balance.checked_sub(amount)
            }
        };
        let detail = || format!("balance {balance} cannot take {event:?}");
        *balance = next.ok_or_else(|| invariant(stream, offset, envelope, detail()))?;
        Ok(())
    }
}

/// The carts (`cart-*`) not checked out, with their lines; and the names of those that
/// are, so a later event on one is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenCarts {
    pub open: BTreeMap<String, Cart>,
    pub checked_out: BTreeSet<String>,
}

impl ReadModel for OpenCarts {
    fn wants(stream: &str) -> bool {
        stream.starts_with("cart-")
    }

    fn apply(
        &mut self,
        stream: &str,
        offset: u64,
        envelope: EnvelopeRef<'_>,
    ) -> Result<(), FoldError> {
        if self.checked_out.contains(stream) {
            let detail = "an event after checkout".to_owned();
            return Err(invariant(stream, offset, envelope, detail));
        }
        let cart = self.open.entry(stream.to_owned()).or_default();
        apply_checked(cart, stream, offset, envelope)?;
        if cart.checked_out {
            self.open.remove(stream);
            self.checked_out.insert(stream.to_owned());
        }
        Ok(())
    }
}

/// Every sku's (`sku-*`) stock and live reservations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAvailable {
    pub skus: BTreeMap<String, Inventory>,
}

impl StockAvailable {
    /// What can still be reserved of `sku` (0 for a sku never stocked).
    pub fn available(&self, sku: &str) -> u32 {
        self.skus.get(sku).map_or(0, Inventory::available)
    }
}

impl ReadModel for StockAvailable {
    fn wants(stream: &str) -> bool {
        stream.starts_with("sku-")
    }

    fn apply(
        &mut self,
        stream: &str,
        offset: u64,
        envelope: EnvelopeRef<'_>,
    ) -> Result<(), FoldError> {
        let sku = self.skus.entry(stream.to_owned()).or_default();
        apply_checked(sku, stream, offset, envelope)
    }
}

/// The replica of every table (`table-*`): its rows, materialized from the change
/// stream (change data capture).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    pub tables: BTreeMap<String, Table>,
}

impl ReadModel for TableRows {
    fn wants(stream: &str) -> bool {
        stream.starts_with("table-")
    }

    fn apply(
        &mut self,
        stream: &str,
        offset: u64,
        envelope: EnvelopeRef<'_>,
    ) -> Result<(), FoldError> {
        let table = self.tables.entry(stream.to_owned()).or_default();
        apply_checked(table, stream, offset, envelope)
    }
}
