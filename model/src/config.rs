//! The configuration a history was recorded under, and what it promises.
//!
//! Every knob here is one a user turns to trade safety for speed, and each is known to
//! give up a guarantee. `Config::promises` is the contract the checkers hold a history
//! to: a broken invariant whose guarantee the configuration does not promise is
//! reported as expected under that configuration, not as a violation.
//!
//! Omitted fields default to the strongest setting, so leaving a field out can only
//! make the checker stricter, never more lenient.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::invariant::Guarantee;

/// How many replicas must have a record before the producer is told it is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Acks {
    /// Fire and forget: the producer learns nothing, not even the offset.
    #[serde(rename = "0")]
    None,
    /// The leader alone has it.
    #[serde(rename = "1")]
    Leader,
    /// Every in-sync replica has it, and there are at least `min_insync_replicas`.
    #[default]
    #[serde(rename = "all")]
    All,
}

/// When a replica syncs its log to disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Flush {
    /// Before a batch counts as written: a crash loses nothing acknowledged locally.
    #[default]
    #[serde(rename = "every-batch")]
    EveryBatch,
    /// On a timer: a crash loses up to that window.
    #[serde(rename = "every_ms")]
    EveryMs(u64),
    /// Never; durability relies on replication alone.
    #[serde(rename = "never")]
    Never,
}

/// Where a replica that becomes a follower truncates its log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Truncation {
    /// To the end offset of its epoch on the leader (KIP-101/KIP-279).
    #[default]
    #[serde(rename = "leader-epoch")]
    LeaderEpoch,
    /// KIP-101 alone: one question, cut where the leader's answer says, whatever epoch
    /// it names; logs can stay apart for good after fast leader changes (KIP-279).
    #[serde(rename = "kip-101")]
    Kip101,
    /// To its own high watermark (the legacy rule, which can lose committed data).
    #[serde(rename = "high-watermark")]
    HighWatermark,
}

/// Whom the controller elects when no in-sync replica is alive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Election {
    /// KIP-966: Eligible Leader Replicas; a restarted broker leaves ISR and ELR.
    #[default]
    #[serde(rename = "kip-966")]
    Kip966,
    /// Before KIP-966: the last ISR member is elected again after a restart that lost
    /// its unsynced records, and the others truncate to it.
    #[serde(rename = "pre-kip-966")]
    PreKip966,
}

impl Election {
    fn is_default(&self) -> bool {
        *self == Election::default()
    }
}

/// The transaction protocol between producers, the coordinator and partition leaders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transactions {
    /// KIP-890: the producer epoch is bumped for every transaction and partition
    /// leaders verify a partition was added before accepting transactional data, so a
    /// late produce cannot join the next transaction.
    #[default]
    #[serde(rename = "kip-890")]
    Kip890,
    /// The legacy protocol: one epoch per producer session and partitions added without
    /// verification, so a late (retried) produce can land in, or be deduplicated into,
    /// the next transaction (a hanging or wrongly committed transaction; an
    /// acknowledged send that vanishes).
    #[serde(rename = "pre-kip-890")]
    PreKip890,
}

impl Transactions {
    fn is_default(&self) -> bool {
        *self == Transactions::default()
    }
}

/// What a replica's log recovery checks at a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recovery {
    /// Every batch of every segment is validated: corruption at rest is cut at open.
    #[default]
    #[serde(rename = "verify-all")]
    VerifyAll,
    /// The segments below the recovery point are trusted and not rescanned (Kafka's
    /// way; reads still validate what they serve): corruption at rest there stays in
    /// the recovered log, so with disk faults `recovered-prefix` is not promised.
    #[serde(rename = "trust-recovery-point")]
    TrustRecoveryPoint,
}

impl Recovery {
    fn is_default(&self) -> bool {
        *self == Recovery::default()
    }
}

/// The faults the run was allowed to inject: the budget a durability promise is made
/// within. A crash loses a replica's unsynced writes; a disk fault can lose synced ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultBudget {
    /// The most replicas of one partition that may be crashed at once.
    #[serde(default)]
    pub crashes_max: u32,
    /// The most replicas of one partition whose disks may lose or corrupt synced data.
    #[serde(default)]
    pub disk_faults_max: u32,
}

/// The configuration stated by a history's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub acks: Acks,
    #[serde(default = "min_insync_replicas_default")]
    pub min_insync_replicas: u32,
    #[serde(default)]
    pub unclean_leader_election: bool,
    #[serde(default)]
    pub flush: Flush,
    #[serde(default)]
    pub truncation: Truncation,
    /// The election rule. Written only when weaker than the default.
    #[serde(default, skip_serializing_if = "Election::is_default")]
    pub election: Election,
    /// Producers deduplicate their own retries (producer id and sequence numbers).
    #[serde(default = "idempotent_default")]
    pub idempotent: bool,
    #[serde(default)]
    pub fault_budget: FaultBudget,
    /// The transaction protocol. Written only when weaker than the default, so the
    /// header of a history without transactions reads as it always did.
    #[serde(default, skip_serializing_if = "Transactions::is_default")]
    pub transactions: Transactions,
    /// What log recovery checks at a restart. Written only when weaker than the
    /// default.
    #[serde(default, skip_serializing_if = "Recovery::is_default")]
    pub recovery: Recovery,
}

fn min_insync_replicas_default() -> u32 {
    2
}

fn idempotent_default() -> bool {
    true
}

impl Default for Config {
    /// The strongest configuration: everything promised.
    fn default() -> Self {
        Config {
            acks: Acks::All,
            min_insync_replicas: min_insync_replicas_default(),
            unclean_leader_election: false,
            flush: Flush::EveryBatch,
            truncation: Truncation::LeaderEpoch,
            election: Election::Kip966,
            idempotent: idempotent_default(),
            fault_budget: FaultBudget::default(),
            recovery: Recovery::VerifyAll,
            transactions: Transactions::Kip890,
        }
    }
}

impl Config {
    /// How many replicas of one partition may lose data at once within the budget: a
    /// crash loses unsynced data unless every batch is synced, a disk fault loses any.
    pub fn replicas_lossy_max(&self) -> u32 {
        let crash_losses =
            if self.flush == Flush::EveryBatch { 0 } else { self.fault_budget.crashes_max };
        crash_losses.saturating_add(self.fault_budget.disk_faults_max)
    }

    /// The guarantees this configuration promises, in `Guarantee` order.
    ///
    /// The rules, and why:
    /// - `committed-stable` needs clean elections (an unclean leader rewrites history),
    ///   the leader-epoch truncation rule (the legacy rule drops committed records), and
    ///   fewer replicas able to lose data at once than hold every committed record:
    ///   `min_insync_replicas` with `acks=all`, only one with weaker acks (the high
    ///   watermark can then advance with the leader alone in sync). Before KIP-966 the
    ///   last ISR member is re-elected after any restart, so then no replica may be
    ///   able to lose data at all.
    /// - `acked-durable` needs all of that and `acks=all`: with `acks=1` an
    ///   acknowledgement means only the leader has the record.
    /// - `no-duplicates` needs `committed-stable` and idempotent producers (a retry
    ///   without a sequence number can land twice).
    /// - `transactional` needs the KIP-890 protocol; the legacy one also gives up
    ///   `acked-durable` (a late produce deduplicated into the next transaction makes
    ///   an acknowledged send vanish when that transaction aborts).
    /// - `integrity` and `liveness` are promised by every configuration;
    ///   `read-committed-only` by none.
    pub fn promises(&self) -> Vec<Guarantee> {
        let clean = !self.unclean_leader_election && self.truncation == Truncation::LeaderEpoch;
        let holders_min = if self.acks == Acks::All { self.min_insync_replicas } else { 1 };
        let lossy = self.replicas_lossy_max();
        let election_safe = self.election == Election::Kip966 || lossy == 0;
        let committed_stable = clean && election_safe && lossy < holders_min;
        let kip_890 = self.transactions == Transactions::Kip890;
        let acked_durable = committed_stable && self.acks == Acks::All && kip_890;
        let no_duplicates = committed_stable && self.idempotent;
        let recovered_prefix =
            self.recovery == Recovery::VerifyAll || self.fault_budget.disk_faults_max == 0;
        let mut promises = Vec::with_capacity(Guarantee::ALL.len());
        for (guarantee, promised) in [
            (Guarantee::AckedDurable, acked_durable),
            (Guarantee::CommittedStable, committed_stable),
            (Guarantee::NoDuplicates, no_duplicates),
            (Guarantee::Transactional, kip_890),
            (Guarantee::Integrity, true),
            (Guarantee::Liveness, true),
            (Guarantee::RecoveredPrefix, recovered_prefix),
        ] {
            if promised {
                promises.push(guarantee);
            }
        }
        promises
    }
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        })
    }
}

impl fmt::Display for Flush {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flush::EveryBatch => f.write_str("every-batch"),
            Flush::EveryMs(ms) => write!(f, "every {ms} ms"),
            Flush::Never => f.write_str("never"),
        }
    }
}

impl fmt::Display for Truncation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Truncation::LeaderEpoch => "leader-epoch",
            Truncation::Kip101 => "kip-101",
            Truncation::HighWatermark => "high-watermark",
        })
    }
}

impl fmt::Display for Election {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Election::Kip966 => "kip-966",
            Election::PreKip966 => "pre-kip-966",
        })
    }
}

impl fmt::Display for Transactions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transactions::Kip890 => "kip-890",
            Transactions::PreKip890 => "pre-kip-890",
        })
    }
}

impl fmt::Display for Config {
    /// The default transaction protocol is left out, as in the header.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "acks={} min_insync_replicas={} unclean_leader_election={} flush={} \
             truncation={} idempotent={} fault_budget: crashes_max={} disk_faults_max={}",
            self.acks,
            self.min_insync_replicas,
            self.unclean_leader_election,
            self.flush,
            self.truncation,
            self.idempotent,
            self.fault_budget.crashes_max,
            self.fault_budget.disk_faults_max,
        )?;
        if !self.election.is_default() {
            write!(f, " election={}", self.election)?;
        }
        if !self.transactions.is_default() {
            write!(f, " transactions={}", self.transactions)?;
        }
        if !self.recovery.is_default() {
            let recovery = match self.recovery {
                Recovery::VerifyAll => "verify-all",
                Recovery::TrustRecoveryPoint => "trust-recovery-point",
            };
            write!(f, " recovery={recovery}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promises(json: &str) -> Vec<&'static str> {
        let config: Config = serde_json::from_str(json).unwrap();
        config.promises().into_iter().map(Guarantee::name).collect()
    }

    #[test]
    fn the_strongest_configuration_promises_everything() {
        let promisable = Guarantee::ALL.iter().filter(|g| g.promisable());
        assert_eq!(promises("{}"), promisable.map(|g| g.name()).collect::<Vec<_>>());
        assert_eq!(serde_json::from_str::<Config>("{}").unwrap(), Config::default());
    }

    #[test]
    fn each_weakening_gives_up_what_it_is_known_to() {
        let all = [
            "acked-durable",
            "committed-stable",
            "no-duplicates",
            "transactional",
            "integrity",
            "liveness",
            "recovered-prefix",
        ];
        let weaker = [
            (
                r#"{"acks":"1"}"#,
                vec![
                    "committed-stable",
                    "no-duplicates",
                    "transactional",
                    "integrity",
                    "liveness",
                    "recovered-prefix",
                ],
            ),
            (
                r#"{"acks":"0"}"#,
                vec![
                    "committed-stable",
                    "no-duplicates",
                    "transactional",
                    "integrity",
                    "liveness",
                    "recovered-prefix",
                ],
            ),
            (
                r#"{"unclean_leader_election":true}"#,
                vec!["transactional", "integrity", "liveness", "recovered-prefix"],
            ),
            (
                r#"{"truncation":"high-watermark"}"#,
                vec!["transactional", "integrity", "liveness", "recovered-prefix"],
            ),
            (
                r#"{"truncation":"kip-101"}"#,
                vec!["transactional", "integrity", "liveness", "recovered-prefix"],
            ),
            // Before KIP-966 the last ISR member is re-elected whatever its crash lost...
            (
                r#"{"election":"pre-kip-966","flush":"never","fault_budget":{"crashes_max":1}}"#,
                vec!["transactional", "integrity", "liveness", "recovered-prefix"],
            ),
            // ...which costs nothing when a crash loses nothing.
            (r#"{"election":"pre-kip-966","fault_budget":{"crashes_max":3}}"#, all.to_vec()),
            (
                r#"{"idempotent":false}"#,
                vec![
                    "acked-durable",
                    "committed-stable",
                    "transactional",
                    "integrity",
                    "liveness",
                    "recovered-prefix",
                ],
            ),
            // The legacy transaction protocol: a late produce joins the next transaction.
            (
                r#"{"transactions":"pre-kip-890"}"#,
                vec![
                    "committed-stable",
                    "no-duplicates",
                    "integrity",
                    "liveness",
                    "recovered-prefix",
                ],
            ),
            // Replication alone covers one crash with two in-sync replicas...
            (r#"{"flush":"never","fault_budget":{"crashes_max":1}}"#, all.to_vec()),
            // ...but not two, nor one with a single in-sync replica.
            (
                r#"{"flush":"never","fault_budget":{"crashes_max":2}}"#,
                vec!["transactional", "integrity", "liveness", "recovered-prefix"],
            ),
            (
                r#"{"flush":{"every_ms":100},"min_insync_replicas":1,"fault_budget":{"crashes_max":1}}"#,
                vec!["transactional", "integrity", "liveness", "recovered-prefix"],
            ),
            // Syncing every batch makes crashes harmless; disk faults still count.
            (r#"{"min_insync_replicas":1,"fault_budget":{"crashes_max":3}}"#, all.to_vec()),
            (
                r#"{"min_insync_replicas":1,"fault_budget":{"disk_faults_max":1}}"#,
                vec!["transactional", "integrity", "liveness", "recovered-prefix"],
            ),
            // With acks=1 one lossy replica is too many even with min.insync.replicas=3.
            (
                r#"{"acks":"1","min_insync_replicas":3,"fault_budget":{"disk_faults_max":1}}"#,
                vec!["transactional", "integrity", "liveness", "recovered-prefix"],
            ),
            // Recovery that trusts the segments below its recovery point keeps what a disk
            // corrupted there...
            (
                r#"{"recovery":"trust-recovery-point","fault_budget":{"disk_faults_max":1}}"#,
                all[..6].to_vec(),
            ),
            // ...which costs nothing without disk faults.
            (r#"{"recovery":"trust-recovery-point"}"#, all.to_vec()),
        ];
        for (json, expected) in weaker {
            assert_eq!(promises(json), expected, "{json}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<Config>(r#"{"ack":"all"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `ack`"), "{err}");
        let err = serde_json::from_str::<Config>(r#"{"acks":"2"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant `2`"), "{err}");
    }
}
