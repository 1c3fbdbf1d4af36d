//! The catalogue: every invariant logjam checks, by one kebab-case name, and the
//! guarantees a configuration can promise.
//!
//! An anomaly's kind is the invariant it breaks, so `lost-write` names both the check
//! ("no acknowledged write is lost") and what it finds. Checkers, verdicts, reports and
//! scenario files all use these names; this enum is their single source.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an invariant is judged from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// From what clients saw: sends, polls, and the final log read as one more poll.
    Client,
    /// From replicas' final logs and their protocol events.
    Replica,
    /// From what is still unfinished or unequal at the end of the run.
    Liveness,
}

macro_rules! catalogue {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $name:literal, $level:ident, $guarantee:ident, $promise:literal;
    )*) => {
        /// One named invariant. The order of the variants is the order of a verdict.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Invariant {
            $(
                $(#[doc = $doc])*
                #[serde(rename = $name)]
                $variant,
            )*
        }

        impl Invariant {
            /// Every invariant, in catalogue order.
            pub const ALL: &'static [Invariant] = &[$(Invariant::$variant),*];

            /// The kebab-case name used in verdicts, reports and scenario files.
            pub fn name(self) -> &'static str {
                match self { $(Invariant::$variant => $name),* }
            }

            /// Whether it is judged from clients, replicas or what is left at the end.
            pub fn level(self) -> Level {
                match self { $(Invariant::$variant => Level::$level),* }
            }

            /// The guarantee an anomaly of this kind breaks. Two kinds vary: an
            /// `inconsistent-offsets` breaks `acked-durable` when an acknowledgement is
            /// involved and `committed-stable` otherwise, a `g1c` breaks `transactional`
            /// when its cycle is of reads alone and `write-isolation` when it needs the
            /// write order (each anomaly says which).
            pub fn guarantee(self) -> Guarantee {
                match self { $(Invariant::$variant => Guarantee::$guarantee),* }
            }

            /// What the invariant demands, in one line.
            pub fn promise(self) -> &'static str {
                match self { $(Invariant::$variant => $promise),* }
            }
        }
    };
}

catalogue! {
    /// An acknowledged send is in the log at its offset once the log has moved past it.
    LostWrite = "lost-write", Client, AckedDurable,
        "an acknowledged send stays readable once reads or the final log pass its offset";
    /// An acknowledged send was read by someone, or is in the final committed log.
    Unseen = "unseen", Client, AckedDurable,
        "every acknowledged send is read by someone or found in the final committed log";
    /// A value sits at one offset only.
    Duplicate = "duplicate", Client, NoDuplicates,
        "a value appears at one offset only";
    /// An offset holds one value only.
    InconsistentOffsets = "inconsistent-offsets", Client, CommittedStable,
        "sends, polls and the final log agree on the value at every offset";
    /// Nothing is read that was never sent (with that key, before the read).
    Phantom = "phantom", Client, Integrity,
        "every record read was sent, with that key, before it was read";
    /// Nothing is read whose send definitely failed.
    AbortedRead = "aborted-read", Client, Integrity,
        "no record is read whose send definitely failed";
    /// Nothing of a transaction that definitely aborted is visible to read_committed.
    TxnAbortedRead = "txn-aborted-read", Client, Transactional,
        "no record of an aborted transaction is read at read_committed or in the final read_committed view";
    /// What a read_uncommitted poll may see: records of open or aborted transactions.
    DirtyRead = "dirty-read", Client, ReadCommittedOnly,
        "a read_uncommitted poll sees only records of committed transactions (never promised)";
    /// read_committed reads stop at the last stable offset.
    ReadPastLso = "read-past-lso", Client, Transactional,
        "a read_committed poll returns only records below the last stable offset, of decided transactions";
    /// A transaction's sends become visible all together or not at all.
    AtomicVisibility = "atomic-visibility", Client, Transactional,
        "a transaction's sends are all in the final read_committed view or none are, and no reader sees part of one";
    /// A transaction never reads its own sends: they are invisible until it commits.
    PrecommittedRead = "precommitted-read", Client, Transactional,
        "a read_committed read never returns a record of a transaction before it commits (a transaction reading its own sends)";
    /// No cycle of write-write dependencies between transactions (Adya's G0).
    G0 = "g0", Client, WriteIsolation,
        "no transactions' sends interleave on partitions into a cycle of write order (Adya's G0)";
    /// No cycle of write-read (and write-write) dependencies (Adya's G1c). A cycle of
    /// reads alone breaks `transactional`; one that needs the write order breaks
    /// `write-isolation` (each anomaly says which).
    G1c = "g1c", Client, Transactional,
        "no transactions read each other's writes in a cycle (Adya's G1c; through the write order only under write-isolation)";
    /// A fenced producer's later transactions never take effect.
    ZombieWrite = "zombie-write", Client, Transactional,
        "a transaction invoked after another process took its transactional id never becomes visible";
    /// Consume-transform-produce processes every input once.
    ExactlyOnce = "exactly-once", Client, Transactional,
        "the input ranges committed by committed transactions of a group tile its input without overlaps or gaps";
    /// A consumer never reads backwards or the same offset twice between assigns.
    NonmonotonicPoll = "nonmonotonic-poll", Client, CommittedStable,
        "a consumer's reads of a partition move strictly forward between assigns";
    /// A consumer never steps over a record others saw.
    PollSkip = "poll-skip", Client, CommittedStable,
        "a consumer never skips over an offset that holds a record";
    /// Inside one operation, reads of a partition move strictly forward.
    IntNonmonotonicPoll = "int-nonmonotonic-poll", Client, CommittedStable,
        "inside one poll or transaction, the records read from a partition have strictly increasing offsets";
    /// Inside one operation, reads of a partition never step over a record.
    IntPollSkip = "int-poll-skip", Client, CommittedStable,
        "inside one poll or transaction, reads of a partition never skip an offset that holds a record";
    /// One producer's sends land in the order it made them.
    NonmonotonicSend = "nonmonotonic-send", Client, AckedDurable,
        "a producer's later send lands after its earlier acknowledged send";
    /// Inside one transaction, sends to a partition land in the order they were made.
    IntNonmonotonicSend = "int-nonmonotonic-send", Client, AckedDurable,
        "inside one transaction, a later send to a partition lands after the earlier ones";
    /// Inside one transaction, sends to a partition land next to each other.
    IntSendSkip = "int-send-skip", Client, WriteIsolation,
        "inside one transaction, no other record lands between two successive sends to a partition";
    /// A send acknowledged before another began lands before it.
    RealtimeOrder = "realtime-order", Client, AckedDurable,
        "a send acknowledged before another send began lands before it";
    /// What was read below the high watermark stays there.
    CommittedReadChanged = "committed-read-changed", Client, CommittedStable,
        "a record once read below the high watermark is still there, unchanged, later";
    /// A replica's log is well formed.
    ReplicaLogOrder = "replica-log-order", Replica, Integrity,
        "a replica's offsets strictly increase and its high watermark is within its log";
    /// Committed prefixes of replicas are identical.
    Divergence = "divergence", Replica, CommittedStable,
        "any two replicas hold identical records below both their high watermarks";
    /// One leader per partition and epoch.
    MultipleLeaders = "multiple-leaders", Replica, Integrity,
        "at most one node leads a partition in any one epoch";
    /// A node's epoch for a partition never goes backwards within one lifetime.
    EpochRegression = "epoch-regression", Replica, Integrity,
        "a node's leader epoch for a partition never decreases within one lifetime";
    /// A node's high watermark never goes backwards within one lifetime.
    HwRegression = "hw-regression", Replica, CommittedStable,
        "a node's high watermark for a partition never decreases within one lifetime";
    /// No replica truncates what it knew to be committed.
    TruncationBelowHw = "truncation-below-hw", Replica, CommittedStable,
        "no replica truncates its log below the high watermark it reported in that lifetime";
    /// Recovery keeps only what the replica wrote.
    RecoveryPrefix = "recovery-prefix", Replica, RecoveredPrefix,
        "a replica's log recovered at a restart holds only batches it had itself written at those offsets";
    /// Every operation finishes.
    StillPending = "still-pending", Liveness, Liveness,
        "every operation completes (ok, fail or info) before the history ends";
    /// Replicas end identical.
    NotConverged = "not-converged", Liveness, Liveness,
        "after the quiet phase every replica of a partition holds the same log and high watermark";
    /// Every transaction is decided once faults heal.
    HangingTransaction = "hanging-transaction", Liveness, Transactional,
        "after the quiet phase no partition's last stable offset is below its high watermark";
    /// Consume-transform-produce groups finish their input once faults heal.
    ProcessingProgress = "processing-progress", Liveness, Liveness,
        "after the quiet phase every consume-transform-produce group has committed its input past its last record in the final read_committed view";
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name is not in the catalogue.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown invariant `{0}`")]
pub struct UnknownName(pub String);

impl FromStr for Invariant {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Invariant::ALL
            .iter()
            .copied()
            .find(|invariant| invariant.name() == name)
            .ok_or_else(|| UnknownName(name.to_string()))
    }
}

/// What a configuration promises. Each invariant depends on one guarantee; a broken
/// invariant whose guarantee is not promised is expected under that configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
    /// An acknowledged send is durable at its acknowledged offset, and acknowledged
    /// sends keep their order.
    AckedDurable,
    /// Data below the high watermark is never lost or rewritten, so reads of it are
    /// stable and every replica's committed prefix agrees.
    CommittedStable,
    /// A send lands at most once.
    NoDuplicates,
    /// Transactions are atomic and isolated at read_committed (KIP-890): nothing of an
    /// aborted or undecided transaction is read, all or none of a committed one is
    /// visible, fenced producers write nothing, offsets commit with their outputs.
    Transactional,
    /// Nothing is made up: no record that was never sent, no aborted record, one leader
    /// per epoch, well-formed logs. No configuration gives this up.
    Integrity,
    /// Once faults heal, operations finish and replicas converge.
    Liveness,
    /// A replica's log recovered at a restart holds only batches it had itself written
    /// there. Promised unless recovery trusts the segments below its recovery point
    /// (`recovery: trust-recovery-point`) while disks may corrupt data at rest.
    RecoveredPrefix,
    /// Adya's PL-1 for transactions on a log: writes are isolated, as if transactions
    /// wrote one at a time (no G0 write cycle, no G1c cycle through the write order, and
    /// no other record between two sends of a transaction to a partition). Kafka does not
    /// promise it (Jepsen: transactions' writes interleave), so no `Config` does; a
    /// header may state it for a system that does.
    WriteIsolation,
    /// Adya's PL-3: transactions are serializable (no G-single or G2 cycle through
    /// anti-dependencies). Kafka does not promise it; a header may state it.
    Serializable,
    /// A read_uncommitted poll sees only committed transactional data. No
    /// configuration promises it, and a header cannot state it: `dirty-read` is always
    /// the expected price of reading uncommitted.
    ReadCommittedOnly,
}

impl Guarantee {
    /// Every guarantee, in order.
    pub const ALL: &'static [Guarantee] = &[
        Guarantee::AckedDurable,
        Guarantee::CommittedStable,
        Guarantee::NoDuplicates,
        Guarantee::Transactional,
        Guarantee::Integrity,
        Guarantee::Liveness,
        Guarantee::RecoveredPrefix,
        Guarantee::WriteIsolation,
        Guarantee::Serializable,
        Guarantee::ReadCommittedOnly,
    ];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Guarantee::AckedDurable => "acked-durable",
            Guarantee::CommittedStable => "committed-stable",
            Guarantee::NoDuplicates => "no-duplicates",
            Guarantee::Transactional => "transactional",
            Guarantee::Integrity => "integrity",
            Guarantee::Liveness => "liveness",
            Guarantee::RecoveredPrefix => "recovered-prefix",
            Guarantee::WriteIsolation => "write-isolation",
            Guarantee::Serializable => "serializable",
            Guarantee::ReadCommittedOnly => "read-committed-only",
        }
    }

    /// Whether a Kafka-style configuration (`Config`) may promise it: the strongest
    /// configuration promises exactly these. `write-isolation` and `serializable` are
    /// not (Kafka gives neither), but a header may state them: see `stateable`.
    pub fn promisable(self) -> bool {
        !matches!(
            self,
            Guarantee::ReadCommittedOnly | Guarantee::WriteIsolation | Guarantee::Serializable
        )
    }

    /// Whether any system may promise it: a header's `promises` may state it (one
    /// that is not is refused). Only `read-committed-only` is never promised.
    pub fn stateable(self) -> bool {
        self != Guarantee::ReadCommittedOnly
    }
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Guarantee {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Guarantee::ALL
            .iter()
            .copied()
            .find(|guarantee| guarantee.name() == name)
            .ok_or_else(|| UnknownName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique_kebab_case() {
        let mut names: Vec<&str> = Invariant::ALL.iter().map(|i| i.name()).collect();
        for invariant in Invariant::ALL {
            assert_eq!(invariant.name().parse::<Invariant>(), Ok(*invariant));
            let json = serde_json::to_string(invariant).unwrap();
            assert_eq!(json, format!("\"{}\"", invariant.name()));
            assert!(
                invariant
                    .name()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{invariant}"
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Invariant::ALL.len());
        for guarantee in Guarantee::ALL {
            assert_eq!(guarantee.name().parse::<Guarantee>(), Ok(*guarantee));
            let json = serde_json::to_string(guarantee).unwrap();
            assert_eq!(json, format!("\"{}\"", guarantee.name()));
        }
        assert_eq!("lost-writes".parse::<Invariant>(), Err(UnknownName("lost-writes".into())));
    }
}
