//! The reference folds of the example domains, over the events' JSON.
//!
//! Written from the domains' rules, not from the event store's code, so the two can
//! disagree and the checkers notice. A fold is lenient: it applies every event (a
//! balance may go negative) and reports the first rule an event breaks, so one bad event
//! is reported once and the fold goes on.
//!
//! Two kinds of rule. An *invariant* must hold on every prefix of every stream (a
//! balance is never negative). A *decision* rule is one a handler must also respect
//! when it decides (a transfer is credited once per account); the log can only be
//! held to it through the command that decided.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;

/// The example domains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Domain {
    Bank,
    Cart,
    Inventory,
    /// A database table whose row changes are published (change data capture).
    Table,
}

impl Domain {
    pub(super) fn from_name(name: &str) -> Option<Domain> {
        match name {
            "bank" => Some(Domain::Bank),
            "cart" => Some(Domain::Cart),
            "inventory" => Some(Domain::Inventory),
            "table" => Some(Domain::Table),
            _ => None,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Domain::Bank => "bank",
            Domain::Cart => "cart",
            Domain::Inventory => "inventory",
            Domain::Table => "table",
        }
    }

    /// Parses an event of this domain (serde's externally tagged JSON; unknown fields,
    /// such as a schema version, are ignored).
    pub(super) fn parse(self, event: &serde_json::Value) -> Result<Event, String> {
        let parsed = Event::deserialize(event).map_err(|_| self.not_ours(event))?;
        if parsed.domain() == self { Ok(parsed) } else { Err(self.not_ours(event)) }
    }

    fn not_ours(self, event: &serde_json::Value) -> String {
        format!("{event} is not a {} event", self.name())
    }

    /// The state of a stream before its first event.
    pub(super) fn initial(self) -> State {
        match self {
            Domain::Bank => State::Bank(Account::default()),
            Domain::Cart => State::Cart(Cart::default()),
            Domain::Inventory => State::Inventory(Stock::default()),
            Domain::Table => State::Table(Rows::default()),
        }
    }
}

/// Every domain event, as the domains serialize them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(super) enum Event {
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
    TransferDebited { transfer: u64, to: String, amount: u64 },
    TransferCredited { transfer: u64, from: String, amount: u64 },
    TransferRefunded { transfer: u64, amount: u64 },
    ItemAdded { sku: u32, qty: u32 },
    ItemRemoved { sku: u32, qty: u32 },
    CheckedOut,
    Stocked { qty: u32 },
    Reserved { order: u64, qty: u32 },
    Released { order: u64 },
    RowInserted { key: u64, value: i64 },
    RowUpdated { key: u64, value: i64 },
    RowDeleted { key: u64 },
}

impl Event {
    fn domain(&self) -> Domain {
        match self {
            Event::Deposited { .. }
            | Event::Withdrawn { .. }
            | Event::TransferDebited { .. }
            | Event::TransferCredited { .. }
            | Event::TransferRefunded { .. } => Domain::Bank,
            Event::ItemAdded { .. } | Event::ItemRemoved { .. } | Event::CheckedOut => Domain::Cart,
            Event::Stocked { .. } | Event::Reserved { .. } | Event::Released { .. } => {
                Domain::Inventory
            }
            Event::RowInserted { .. } | Event::RowUpdated { .. } | Event::RowDeleted { .. } => {
                Domain::Table
            }
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Deposited { amount } => write!(f, "Deposited {amount}"),
            Event::Withdrawn { amount } => write!(f, "Withdrawn {amount}"),
            Event::TransferDebited { transfer, to, amount } => {
                write!(f, "TransferDebited {amount} to {to} (transfer {transfer})")
            }
            Event::TransferCredited { transfer, from, amount } => {
                write!(f, "TransferCredited {amount} from {from} (transfer {transfer})")
            }
            Event::TransferRefunded { transfer, amount } => {
                write!(f, "TransferRefunded {amount} (transfer {transfer})")
            }
            Event::ItemAdded { sku, qty } => write!(f, "ItemAdded {qty} of sku {sku}"),
            Event::ItemRemoved { sku, qty } => write!(f, "ItemRemoved {qty} of sku {sku}"),
            Event::CheckedOut => f.write_str("CheckedOut"),
            Event::Stocked { qty } => write!(f, "Stocked {qty}"),
            Event::Reserved { order, qty } => write!(f, "Reserved {qty} for order {order}"),
            Event::Released { order } => write!(f, "Released order {order}"),
            Event::RowInserted { key, value } => write!(f, "RowInserted {key} = {value}"),
            Event::RowUpdated { key, value } => write!(f, "RowUpdated {key} = {value}"),
            Event::RowDeleted { key } => write!(f, "RowDeleted {key}"),
        }
    }
}

/// Which kind of rule an event broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rule {
    /// Must hold on every prefix of the stream.
    Invariant,
    /// Must hold where a handler decided the event.
    Decision,
}

/// A rule an event broke: what, and the version of the earlier event that makes it
/// wrong, if one does (the CheckedOut before an ItemAdded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Broken {
    pub rule: Rule,
    pub what: String,
    pub earlier: Option<u64>,
}

impl Broken {
    fn invariant(what: String, earlier: Option<u64>) -> Broken {
        Broken { rule: Rule::Invariant, what, earlier }
    }

    fn decision(what: String, earlier: Option<u64>) -> Broken {
        Broken { rule: Rule::Decision, what, earlier }
    }
}

/// A bank account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Account {
    pub balance: i128,
    /// Transfers debited from here: id to the version of the debit.
    debited: BTreeMap<u64, u64>,
    /// Transfers credited here, and refunded here: id to version.
    credited: BTreeMap<u64, u64>,
    refunded: BTreeMap<u64, u64>,
}

/// A shopping cart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Cart {
    lines: BTreeMap<u32, i128>,
    /// The version of its CheckedOut.
    checked_out: Option<u64>,
}

/// A table's rows: key to value, and to the version that last wrote it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Rows {
    rows: BTreeMap<u64, (i64, u64)>,
}

impl Rows {
    fn judge(&self, event: &Event) -> Option<Broken> {
        let present = |key: &u64| self.rows.get(key).map(|&(_, version)| version);
        match event {
            Event::RowInserted { key, .. } => present(key).map(|version| {
                Broken::invariant(format!("{event}: key {key} is already present"), Some(version))
            }),
            Event::RowUpdated { key, .. } | Event::RowDeleted { key } => (present(key).is_none())
                .then(|| Broken::invariant(format!("{event}: key {key} is absent"), None)),
            _ => unreachable!("parsing keeps other domains' events out"),
        }
    }

    fn mutate(&mut self, event: &Event, version: u64) {
        match event {
            Event::RowInserted { key, value } | Event::RowUpdated { key, value } => {
                self.rows.insert(*key, (*value, version));
            }
            Event::RowDeleted { key } => {
                self.rows.remove(key);
            }
            _ => unreachable!("parsing keeps other domains' events out"),
        }
    }
}

/// One sku's inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Stock {
    stocked: i128,
    /// Live reservations: order to quantity.
    reserved: BTreeMap<u64, i128>,
    /// Orders released: order to the version of the release.
    released: BTreeMap<u64, u64>,
}

impl Stock {
    fn reserved_total(&self) -> i128 {
        self.reserved.values().sum()
    }
}

/// The fold of one stream so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum State {
    Bank(Account),
    Cart(Cart),
    Inventory(Stock),
    Table(Rows),
}

/// A stream's state as a read model shows it: named quantities, zeros left out. Bank:
/// `balance`; inventory: `available`; cart: one entry per sku, nothing once checked out;
/// table: one entry per row key.
pub(super) type Projected = BTreeMap<String, i128>;

impl State {
    /// Applies `event` (at `version`) whatever it breaks, and says what it broke first.
    pub(super) fn apply(&mut self, event: &Event, version: u64) -> Option<Broken> {
        let broken = self.judge(event);
        match self {
            State::Bank(account) => account.mutate(event, version),
            State::Cart(cart) => cart.mutate(event, version),
            State::Inventory(stock) => stock.mutate(event, version),
            State::Table(rows) => rows.mutate(event, version),
        }
        broken
    }

    /// The first rule `event` would break if applied now.
    pub(super) fn judge(&self, event: &Event) -> Option<Broken> {
        match self {
            State::Bank(account) => account.judge(event),
            State::Cart(cart) => cart.judge(event),
            State::Inventory(stock) => stock.judge(event),
            State::Table(rows) => rows.judge(event),
        }
    }

    /// What a read model shows of it.
    pub(super) fn projected(&self) -> Projected {
        let mut shown = Projected::new();
        match self {
            State::Bank(account) => {
                shown.insert("balance".to_string(), account.balance);
            }
            State::Cart(cart) if cart.checked_out.is_none() => {
                shown.extend(cart.lines.iter().map(|(sku, qty)| (sku.to_string(), *qty)));
            }
            State::Cart(_) => {}
            State::Inventory(stock) => {
                shown.insert("available".to_string(), stock.stocked - stock.reserved_total());
            }
            State::Table(rows) => {
                shown.extend(
                    rows.rows.iter().map(|(key, (value, _))| (key.to_string(), i128::from(*value))),
                );
            }
        }
        shown.retain(|_, quantity| *quantity != 0);
        shown
    }

    /// The bank balance (zero for other domains).
    pub(super) fn balance(&self) -> i128 {
        match self {
            State::Bank(account) => account.balance,
            State::Cart(_) | State::Inventory(_) | State::Table(_) => 0,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Bank(account) => write!(f, "balance {}", account.balance),
            State::Cart(cart) => {
                f.write_str("lines {")?;
                for (i, (sku, qty)) in cart.lines.iter().enumerate() {
                    let comma = if i == 0 { "" } else { ", " };
                    write!(f, "{comma}{sku}: {qty}")?;
                }
                match cart.checked_out {
                    Some(version) => write!(f, "}}, checked out at version {version}"),
                    None => f.write_str("}, open"),
                }
            }
            State::Inventory(stock) => write!(
                f,
                "stocked {}, reserved {} for {} orders",
                stock.stocked,
                stock.reserved_total(),
                stock.reserved.len()
            ),
            State::Table(rows) => {
                f.write_str("rows {")?;
                for (i, (key, (value, _))) in rows.rows.iter().enumerate() {
                    let comma = if i == 0 { "" } else { ", " };
                    write!(f, "{comma}{key}: {value}")?;
                }
                f.write_str("}")
            }
        }
    }
}

impl Account {
    fn judge(&self, event: &Event) -> Option<Broken> {
        let again = |what: &str, earlier: Option<&u64>| {
            earlier.map(|&v| Broken::decision(format!("{event}: {what}"), Some(v)))
        };
        match event {
            Event::Deposited { .. } => None,
            Event::Withdrawn { amount } => self.overdraft(event, *amount),
            Event::TransferDebited { transfer, amount, .. } => self
                .overdraft(event, *amount)
                .or_else(|| again("debited again", self.debited.get(transfer))),
            Event::TransferCredited { transfer, .. } => {
                again("credited again", self.credited.get(transfer))
            }
            Event::TransferRefunded { transfer, .. } => {
                again("refunded again", self.refunded.get(transfer)).or_else(|| {
                    (!self.debited.contains_key(transfer))
                        .then(|| Broken::decision(format!("{event}, never debited here"), None))
                })
            }
            _ => unreachable!("parsing keeps other domains' events out"),
        }
    }

    fn overdraft(&self, event: &Event, amount: u64) -> Option<Broken> {
        let after = self.balance - i128::from(amount);
        (after < 0).then(|| {
            let what = format!("{event} from a balance of {} leaves {after}", self.balance);
            Broken::invariant(what, None)
        })
    }

    fn mutate(&mut self, event: &Event, version: u64) {
        match event {
            Event::Deposited { amount } => self.balance += i128::from(*amount),
            Event::Withdrawn { amount } => self.balance -= i128::from(*amount),
            Event::TransferDebited { transfer, amount, .. } => {
                self.balance -= i128::from(*amount);
                self.debited.entry(*transfer).or_insert(version);
            }
            Event::TransferCredited { transfer, amount, .. } => {
                self.balance += i128::from(*amount);
                self.credited.entry(*transfer).or_insert(version);
            }
            Event::TransferRefunded { transfer, amount } => {
                self.balance += i128::from(*amount);
                self.refunded.entry(*transfer).or_insert(version);
            }
            _ => unreachable!("parsing keeps other domains' events out"),
        }
    }
}

impl Cart {
    fn judge(&self, event: &Event) -> Option<Broken> {
        if let Some(checked_out) = self.checked_out {
            return Some(Broken::invariant(format!("{event} after CheckedOut"), Some(checked_out)));
        }
        match event {
            Event::ItemAdded { .. } | Event::CheckedOut => None,
            Event::ItemRemoved { sku, qty } => {
                let line = self.lines.get(sku).copied().unwrap_or(0);
                (line < i128::from(*qty))
                    .then(|| Broken::invariant(format!("{event} from a line of {line}"), None))
            }
            _ => unreachable!("parsing keeps other domains' events out"),
        }
    }

    fn mutate(&mut self, event: &Event, version: u64) {
        match event {
            Event::ItemAdded { sku, qty } => {
                *self.lines.entry(*sku).or_default() += i128::from(*qty)
            }
            Event::ItemRemoved { sku, qty } => {
                let line = self.lines.entry(*sku).or_default();
                *line -= i128::from(*qty);
                if *line == 0 {
                    self.lines.remove(sku);
                }
            }
            Event::CheckedOut => {
                self.checked_out.get_or_insert(version);
            }
            _ => unreachable!("parsing keeps other domains' events out"),
        }
    }
}

impl Stock {
    fn judge(&self, event: &Event) -> Option<Broken> {
        match event {
            Event::Stocked { .. } => None,
            Event::Reserved { order, qty } => {
                let reserved = self.reserved_total() + i128::from(*qty);
                if reserved > self.stocked {
                    let what = format!(
                        "{event} brings reservations to {reserved} of {} stocked",
                        self.stocked
                    );
                    Some(Broken::invariant(what, None))
                } else if self.reserved.contains_key(order) {
                    Some(Broken::decision(
                        format!("{event}: order {order} is already reserved"),
                        None,
                    ))
                } else {
                    None
                }
            }
            Event::Released { order } if !self.reserved.contains_key(order) => {
                let earlier = self.released.get(order).copied();
                let why = if earlier.is_some() { "already released" } else { "never reserved" };
                Some(Broken::invariant(format!("{event}, which was {why}"), earlier))
            }
            Event::Released { .. } => None,
            _ => unreachable!("parsing keeps other domains' events out"),
        }
    }

    fn mutate(&mut self, event: &Event, version: u64) {
        match event {
            Event::Stocked { qty } => self.stocked += i128::from(*qty),
            Event::Reserved { order, qty } => {
                *self.reserved.entry(*order).or_default() += i128::from(*qty);
                self.released.remove(order);
            }
            Event::Released { order } => {
                if self.reserved.remove(order).is_some() {
                    self.released.insert(*order, version);
                }
            }
            _ => unreachable!("parsing keeps other domains' events out"),
        }
    }
}

/// Every sku with a change, `after - before`, zeros left out.
pub(super) fn difference(after: &Projected, before: &Projected) -> Projected {
    let keys: BTreeSet<&String> = after.keys().chain(before.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let change =
                after.get(key).copied().unwrap_or(0) - before.get(key).copied().unwrap_or(0);
            (change != 0).then(|| (key.clone(), change))
        })
        .collect()
}

/// `-change`.
pub(super) fn negated(change: &Projected) -> Projected {
    change.iter().map(|(key, quantity)| (key.clone(), -quantity)).collect()
}
