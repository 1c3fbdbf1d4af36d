//! Bank accounts, one stream per account (`acct-N`).
//!
//! Invariants: a balance never goes below zero (withdrawals and debits need the money);
//! every amount is positive; a transfer is debited at most once on its source, credited
//! at most once on its destination, and refunded at most once, only where it was
//! debited. A transfer is a saga across two streams: `Debit` on the source, then
//! `Credit` on the destination, or `Refund` on the source if the credit cannot be made;
//! so money is conserved: the sum of balances plus the transfers debited and not yet
//! credited or refunded equals deposits minus withdrawals.
//!
//! The state records which transfers it saw, not their amounts, so a `Refund` is
//! trusted to carry the amount its `Debit` took (the saga passes it along).
//!
//! Schema 2 is current. Schema 1 (before transfers) had only `Deposited` and
//! `Withdrawn`, with `u32` amounts; `BankUpcaster` lifts it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::aggregate::Aggregate;
use crate::schema::{Schema, Upcaster, decode_payload};
use crate::snapshot::Snapshotted;

/// The stream of account `n`.
pub fn account_stream(n: u64) -> String {
    format!("acct-{n}")
}

/// What happened to an account (schema 2). Serde's default (externally tagged) form:
/// `{"Deposited":{"amount":5}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BankEvent {
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
    TransferDebited { transfer: u64, to: String, amount: u64 },
    TransferCredited { transfer: u64, from: String, amount: u64 },
    TransferRefunded { transfer: u64, amount: u64 },
}

/// What a client asks of an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BankCommand {
    Deposit { amount: u64 },
    Withdraw { amount: u64 },
    Debit { transfer: u64, to: String, amount: u64 },
    Credit { transfer: u64, from: String, amount: u64 },
    Refund { transfer: u64, amount: u64 },
}

/// An account: its balance and the transfers it took part in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub balance: u64,
    pub debited: BTreeSet<u64>,
    pub credited: BTreeSet<u64>,
    pub refunded: BTreeSet<u64>,
}

/// Why a command is refused (or a stored event is impossible).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BankError {
    #[error("insufficient funds: balance {balance}, amount {amount}")]
    Insufficient { balance: u64, amount: u64 },
    #[error("amounts must be positive")]
    ZeroAmount,
    #[error("balance {balance} plus {amount} overflows")]
    Overflow { balance: u64, amount: u64 },
    #[error("transfer {transfer} already debited")]
    AlreadyDebited { transfer: u64 },
    #[error("transfer {transfer} already credited")]
    AlreadyCredited { transfer: u64 },
    #[error("transfer {transfer} was not debited here")]
    NotDebited { transfer: u64 },
    #[error("transfer {transfer} already refunded")]
    AlreadyRefunded { transfer: u64 },
}

impl BankCommand {
    /// The one event this command records if it is accepted.
    fn event(&self) -> BankEvent {
        match self.clone() {
            BankCommand::Deposit { amount } => BankEvent::Deposited { amount },
            BankCommand::Withdraw { amount } => BankEvent::Withdrawn { amount },
            BankCommand::Debit { transfer, to, amount } => {
                BankEvent::TransferDebited { transfer, to, amount }
            }
            BankCommand::Credit { transfer, from, amount } => {
                BankEvent::TransferCredited { transfer, from, amount }
            }
            BankCommand::Refund { transfer, amount } => {
                BankEvent::TransferRefunded { transfer, amount }
            }
        }
    }
}

impl BankEvent {
    pub fn amount(&self) -> u64 {
        match self {
            BankEvent::Deposited { amount }
            | BankEvent::Withdrawn { amount }
            | BankEvent::TransferDebited { amount, .. }
            | BankEvent::TransferCredited { amount, .. }
            | BankEvent::TransferRefunded { amount, .. } => *amount,
        }
    }
}

impl Account {
    fn credit(&self, amount: u64) -> Result<(), BankError> {
        match self.balance.checked_add(amount) {
            Some(_) => Ok(()),
            None => Err(BankError::Overflow { balance: self.balance, amount }),
        }
    }

    fn debit(&self, amount: u64) -> Result<(), BankError> {
        if self.balance < amount {
            return Err(BankError::Insufficient { balance: self.balance, amount });
        }
        Ok(())
    }
}

impl Aggregate for Account {
    type Command = BankCommand;
    type Event = BankEvent;
    type Error = BankError;

    fn handle(&self, command: &BankCommand) -> Result<Vec<BankEvent>, BankError> {
        let event = command.event();
        self.validate(&event)?;
        Ok(vec![event])
    }

    fn validate(&self, event: &BankEvent) -> Result<(), BankError> {
        if event.amount() == 0 {
            return Err(BankError::ZeroAmount);
        }
        match event {
            BankEvent::Deposited { amount } => self.credit(*amount),
            BankEvent::Withdrawn { amount } => self.debit(*amount),
            BankEvent::TransferDebited { transfer, amount, .. } => {
                if self.debited.contains(transfer) {
                    return Err(BankError::AlreadyDebited { transfer: *transfer });
                }
                self.debit(*amount)
            }
            BankEvent::TransferCredited { transfer, amount, .. } => {
                if self.credited.contains(transfer) {
                    return Err(BankError::AlreadyCredited { transfer: *transfer });
                }
                self.credit(*amount)
            }
            BankEvent::TransferRefunded { transfer, amount } => {
                if !self.debited.contains(transfer) {
                    return Err(BankError::NotDebited { transfer: *transfer });
                }
                if self.refunded.contains(transfer) {
                    return Err(BankError::AlreadyRefunded { transfer: *transfer });
                }
                self.credit(*amount)
            }
        }
    }

    fn apply(&mut self, event: &BankEvent) {
        let amount = event.amount();
        assert!(amount > 0, "a zero amount in an account's stream");
        match event {
            BankEvent::Deposited { .. } => self.balance = add(self.balance, amount),
            BankEvent::Withdrawn { .. } => self.balance = sub(self.balance, amount),
            BankEvent::TransferDebited { transfer, .. } => {
                assert!(self.debited.insert(*transfer), "transfer {transfer} debited twice");
                self.balance = sub(self.balance, amount);
            }
            BankEvent::TransferCredited { transfer, .. } => {
                assert!(self.credited.insert(*transfer), "transfer {transfer} credited twice");
                self.balance = add(self.balance, amount);
            }
            BankEvent::TransferRefunded { transfer, .. } => {
                assert!(
                    self.debited.contains(transfer),
                    "transfer {transfer} refunded, never debited"
                );
                assert!(self.refunded.insert(*transfer), "transfer {transfer} refunded twice");
                self.balance = add(self.balance, amount);
            }
        }
    }
}

fn add(balance: u64, amount: u64) -> u64 {
    balance.checked_add(amount).expect("a balance overflows u64")
}

fn sub(balance: u64, amount: u64) -> u64 {
    balance.checked_sub(amount).expect("a balance goes below zero")
}

impl Schema for Account {
    const SCHEMA_VERSION: u16 = 2;
    type Upcaster = BankUpcaster;
}

impl Snapshotted for Account {
    const STATE_SCHEMA_VERSION: u16 = 1;
}

/// Schema 1 of the bank's events: before transfers, amounts were `u32`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BankEventV1 {
    Deposited { amount: u32 },
    Withdrawn { amount: u32 },
}

/// Lifts schema 1 to schema 2: the same events, amounts widened to `u64`.
pub struct BankUpcaster;

impl Upcaster for BankUpcaster {
    type Event = BankEvent;
    const READS: &'static [u16] = &[1];

    fn upcast(schema_version: u16, payload: &[u8]) -> Result<BankEvent, String> {
        assert_eq!(schema_version, 1, "BankUpcaster reads schema 1 only");
        Ok(match decode_payload::<BankEventV1>(payload)? {
            BankEventV1::Deposited { amount } => BankEvent::Deposited { amount: amount.into() },
            BankEventV1::Withdrawn { amount } => BankEvent::Withdrawn { amount: amount.into() },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{execute, fold};
    use crate::envelope::Envelope;
    use crate::schema::{FoldError, encode_payload, envelope_for, fold_stream};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, RngSeed};

    use BankCommand::*;

    /// Runs `commands` on a fresh account and compares each result and the final balance.
    fn check(commands: &[(BankCommand, Result<(), BankError>)], balance: u64) {
        let mut account = Account::default();
        let mut events = Vec::new();
        for (command, expected) in commands {
            match execute(&account, command) {
                Ok((next, new)) => {
                    assert_eq!(Ok(()), *expected, "{command:?} accepted");
                    account = next;
                    events.extend(new);
                }
                Err(error) => assert_eq!(Err(error), *expected, "{command:?}"),
            }
        }
        assert_eq!(account.balance, balance);
        assert_eq!(fold::<Account>(&events), account, "the state is the fold of its events");
    }

    fn to(name: &str) -> String {
        name.to_owned()
    }

    #[test]
    fn deposits_and_withdrawals_never_go_negative() {
        check(
            &[
                (Deposit { amount: 10 }, Ok(())),
                (Withdraw { amount: 11 }, Err(BankError::Insufficient { balance: 10, amount: 11 })),
                (Withdraw { amount: 10 }, Ok(())),
                (Withdraw { amount: 0 }, Err(BankError::ZeroAmount)),
                (Deposit { amount: 0 }, Err(BankError::ZeroAmount)),
                (Deposit { amount: u64::MAX }, Ok(())),
                (Deposit { amount: 1 }, Err(BankError::Overflow { balance: u64::MAX, amount: 1 })),
            ],
            u64::MAX,
        );
    }

    #[test]
    fn transfers_are_debited_credited_and_refunded_once() {
        check(
            &[
                (Deposit { amount: 50 }, Ok(())),
                (
                    Debit { transfer: 1, to: to("acct-2"), amount: 60 },
                    Err(BankError::Insufficient { balance: 50, amount: 60 }),
                ),
                (Debit { transfer: 1, to: to("acct-2"), amount: 30 }, Ok(())),
                (
                    Debit { transfer: 1, to: to("acct-2"), amount: 5 },
                    Err(BankError::AlreadyDebited { transfer: 1 }),
                ),
                (Refund { transfer: 2, amount: 30 }, Err(BankError::NotDebited { transfer: 2 })),
                (Refund { transfer: 1, amount: 30 }, Ok(())),
                (
                    Refund { transfer: 1, amount: 30 },
                    Err(BankError::AlreadyRefunded { transfer: 1 }),
                ),
                (Credit { transfer: 7, from: to("acct-9"), amount: 5 }, Ok(())),
                (
                    Credit { transfer: 7, from: to("acct-9"), amount: 5 },
                    Err(BankError::AlreadyCredited { transfer: 7 }),
                ),
            ],
            55,
        );
    }

    #[test]
    fn events_have_serdes_externally_tagged_json_shape() {
        let cases = [
            (BankEvent::Deposited { amount: 5 }, r#"{"Deposited":{"amount":5}}"#),
            (BankEvent::Withdrawn { amount: 2 }, r#"{"Withdrawn":{"amount":2}}"#),
            (
                BankEvent::TransferDebited { transfer: 1, to: to("acct-2"), amount: 3 },
                r#"{"TransferDebited":{"transfer":1,"to":"acct-2","amount":3}}"#,
            ),
            (
                BankEvent::TransferCredited { transfer: 1, from: to("acct-0"), amount: 3 },
                r#"{"TransferCredited":{"transfer":1,"from":"acct-0","amount":3}}"#,
            ),
            (
                BankEvent::TransferRefunded { transfer: 1, amount: 3 },
                r#"{"TransferRefunded":{"transfer":1,"amount":3}}"#,
            ),
        ];
        for (event, json) in cases {
            assert_eq!(serde_json::to_string(&event).unwrap(), json);
            assert_eq!(serde_json::from_str::<BankEvent>(json).unwrap(), event);
        }
    }

    fn v1(stream_version: u64, event: BankEventV1) -> Vec<u8> {
        Envelope {
            stream_version,
            command_id: 1,
            schema_version: 1,
            payload: encode_payload(&event),
        }
        .encode()
    }

    #[test]
    fn schema_1_is_upcast_and_folds_with_schema_2() {
        let records = [
            (0, v1(0, BankEventV1::Deposited { amount: u32::MAX })),
            (1, v1(1, BankEventV1::Withdrawn { amount: 5 })),
            (2, envelope_for::<Account>(2, 2, &BankEvent::Deposited { amount: 1 << 40 }).encode()),
        ];
        let (account, version) =
            fold_stream::<Account>("acct-1", records.iter().map(|(o, b)| (*o, b.as_slice())))
                .unwrap();
        assert_eq!(version, 3);
        assert_eq!(account.balance, u64::from(u32::MAX) - 5 + (1 << 40));
    }

    #[test]
    fn schema_1_bytes_of_a_later_event_are_an_error_not_a_skip() {
        let transfer = BankEvent::TransferDebited { transfer: 1, to: to("acct-2"), amount: 1 };
        let mut envelope = envelope_for::<Account>(0, 1, &transfer);
        envelope.schema_version = 1;
        let bytes = envelope.encode();
        let error = fold_stream::<Account>("acct-4", [(17, bytes.as_slice())]).unwrap_err();
        assert!(
            matches!(&error, FoldError::Undecodable { stream, offset: 17, schema_version: 1, .. } if stream == "acct-4"),
            "{error}"
        );
        envelope.schema_version = 3;
        let bytes = envelope.encode();
        let error = fold_stream::<Account>("acct-4", [(18, bytes.as_slice())]).unwrap_err();
        assert_eq!(error.to_string(), "acct-4 at offset 18: unknown schema version 3");
    }

    #[test]
    fn a_stored_overdraft_is_reported_by_the_fold() {
        let records = [
            envelope_for::<Account>(0, 1, &BankEvent::Deposited { amount: 5 }).encode(),
            envelope_for::<Account>(1, 2, &BankEvent::Withdrawn { amount: 6 }).encode(),
        ];
        let error = fold_stream::<Account>("acct-1", [(0, &records[0][..]), (1, &records[1][..])])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "acct-1 at offset 1: stream version 1 breaks an invariant: insufficient funds: balance 5, amount 6"
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Deposit { account: usize, amount: u64 },
        Withdraw { account: usize, amount: u64 },
        Transfer { from: usize, to: usize, amount: u64, credit_fails: bool },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, 0..100u64).prop_map(|(account, amount)| Op::Deposit { account, amount }),
            (0..3usize, 0..100u64).prop_map(|(account, amount)| Op::Withdraw { account, amount }),
            (0..3usize, 0..3usize, 0..100u64, any::<bool>()).prop_map(
                |(from, to, amount, credit_fails)| Op::Transfer { from, to, amount, credit_fails }
            ),
        ]
    }

    fn config() -> Config {
        Config {
            cases: 300,
            rng_algorithm: RngAlgorithm::ChaCha,
            rng_seed: RngSeed::Fixed(21),
            failure_persistence: None,
            ..Config::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        /// Transfers as sagas (debit, then credit or refund) conserve money, and every
        /// account equals the fold of its events.
        #[test]
        fn sagas_conserve_money(ops in proptest::collection::vec(op(), 0..60)) {
            let mut accounts = vec![Account::default(); 3];
            let mut streams: Vec<Vec<BankEvent>> = vec![Vec::new(); 3];
            let mut net: u64 = 0;
            let mut run = |accounts: &mut Vec<Account>, i: usize, command: BankCommand| {
                let result = execute(&accounts[i], &command).map(|(next, events)| {
                    accounts[i] = next;
                    streams[i].extend(events);
                });
                result.is_ok()
            };
            for (transfer, op) in ops.into_iter().enumerate() {
                let transfer = transfer as u64;
                match op {
                    Op::Deposit { account, amount } => {
                        if run(&mut accounts, account, Deposit { amount }) { net += amount }
                    }
                    Op::Withdraw { account, amount } => {
                        if run(&mut accounts, account, Withdraw { amount }) { net -= amount }
                    }
                    Op::Transfer { from, to, amount, credit_fails } => {
                        let debit = Debit { transfer, to: account_stream(to as u64), amount };
                        if run(&mut accounts, from, debit) {
                            let credit = Credit { transfer, from: account_stream(from as u64), amount };
                            if credit_fails || !run(&mut accounts, to, credit) {
                                let refunded = run(&mut accounts, from, Refund { transfer, amount });
                                prop_assert!(refunded, "a debited transfer can be refunded");
                            }
                        }
                    }
                }
                let total: u64 = accounts.iter().map(|a| a.balance).sum();
                prop_assert_eq!(total, net, "money is conserved");
            }
            for (account, events) in accounts.iter().zip(&streams) {
                prop_assert_eq!(&fold::<Account>(events), account);
            }
        }
    }
}
