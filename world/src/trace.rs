//! The run's fingerprint: every event that happens in the world is folded into a running
//! xxh3-64 hash over a fixed canonical encoding. The full trace is kept only on request,
//! in a bounded window of the most recent events, and dumps human-readably.

use std::collections::VecDeque;
use std::fmt;

use crate::NodeId;
use crate::disk::CrashDamage;
use crate::limits::Limit;
use crate::process::TimerId;
use crate::time::format_ns;

/// Why a message did not arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The network's random drop.
    Random,
    /// The link was cut by a partition (at send or while in flight).
    Partitioned,
    /// The receiver was crashed when the message arrived (or was in its paused backlog).
    NodeDown,
    /// The sender's message was refused because the in-flight limit was reached.
    LimitReached,
    /// The link's own loss took it (a lossy link, a burst).
    LinkLoss,
    /// Its connection closed while it was in flight (a crash of either end, a cut).
    ConnectionClosed,
}

/// One thing that happened in the world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// A process was built and started: at boot, or recovering after a crash.
    Start {
        /// The node started.
        node: NodeId,
    },
    /// A process sent a message (recorded before the network decides its fate).
    Send {
        /// The sender.
        from: NodeId,
        /// The receiver.
        to: NodeId,
        /// The message's number: unique in the run, in send order (a duplicate keeps
        /// its original's).
        msg_id: u64,
        /// xxh3-64 of the message's `Hash` encoding.
        digest: u64,
    },
    /// A message reached its receiver's process.
    Deliver {
        /// The sender.
        from: NodeId,
        /// The receiver.
        to: NodeId,
        /// The message's number, as sent.
        msg_id: u64,
        /// xxh3-64 of the message's `Hash` encoding, as sent.
        digest: u64,
    },
    /// A message was lost, as it was sent or when it arrived.
    Drop {
        /// The sender.
        from: NodeId,
        /// The receiver it never reached.
        to: NodeId,
        /// The message's number, as sent.
        msg_id: u64,
        /// Why it was lost.
        reason: DropReason,
    },
    /// The network made a second copy of the message.
    Duplicate {
        /// The sender.
        from: NodeId,
        /// The receiver.
        to: NodeId,
        /// The message's number, shared by both copies.
        msg_id: u64,
    },
    /// A pending timer fired into its process.
    TimerFired {
        /// The node whose timer it was.
        node: NodeId,
        /// The timer, as `Context::set_timer` returned it.
        timer: TimerId,
    },
    /// A process crashed, by a fault or by halting itself; a `DiskCrash` follows.
    Crash {
        /// The node crashed.
        node: NodeId,
    },
    /// A process paused: its messages and timers wait for it.
    Pause {
        /// The node paused.
        node: NodeId,
    },
    /// A paused process resumed and takes up its backlog.
    Resume {
        /// The node resumed.
        node: NodeId,
    },
    /// The set of cut links changed; `links_cut` is how many directed links are cut now
    /// and `links_digest` a hash of exactly which.
    Partition {
        /// How many directed links are cut now.
        links_cut: u32,
        /// xxh3-64 of which links are cut (one byte per directed link, in order).
        links_digest: u64,
    },
    /// An operator's command reached the node's process.
    Operator {
        /// The node whose process took the command.
        node: NodeId,
        /// The command, as `Fault::Operator` gave it.
        action: u64,
    },
    /// A link loses messages sent on it with `loss_ppm` until `until_ns`.
    LinkLoss {
        /// The sending end of the link.
        from: NodeId,
        /// The receiving end of the link.
        to: NodeId,
        /// When the loss ends, in simulated ns.
        until_ns: u64,
        /// How likely each message is to be lost, in parts per million.
        loss_ppm: u32,
    },
    /// A link was clogged: it delivers nothing before `until_ns`, then all it held.
    Clog {
        /// The sending end of the link.
        from: NodeId,
        /// The receiving end of the link.
        to: NodeId,
        /// When this clog ends, in simulated ns.
        until_ns: u64,
    },
    /// A node's clock stepped forward.
    ClockJump {
        /// The node whose clock jumped.
        node: NodeId,
        /// How far, in ns.
        forward_ns: u64,
    },
    /// The network's drop and duplicate probabilities changed (in parts per million).
    NetworkFaults {
        /// The new random drop probability, in parts per million.
        drop_ppm: u32,
        /// The new duplicate probability, in parts per million.
        duplicate_ppm: u32,
    },
    /// A fault that had nothing to act on (restart of a node that is up, ...).
    Ignored {
        /// The node the fault named.
        node: NodeId,
        /// The fault's kind, as `Fault::tag` numbers it.
        fault_tag: u64,
    },
    /// A limit stopped the run: the last event a stopped run records.
    LimitReached {
        /// Which limit, with its bound.
        limit: Limit,
    },
    /// A sync completed, successfully or not.
    SyncDone {
        /// The node whose disk synced.
        node: NodeId,
        /// The sync's ticket number (`SyncTicket`'s).
        ticket: u64,
        /// Whether it succeeded.
        ok: bool,
    },
    /// What a crash did to the node's unsynced disk state.
    DiskCrash {
        /// The node crashed.
        node: NodeId,
        /// The unsynced writes and name changes it lost, tore and kept.
        damage: CrashDamage,
    },
    /// A disk fault struck; `detail` says where.
    DiskFault {
        /// The node whose disk was struck.
        node: NodeId,
        /// The disk fault's kind: a stable number per `DiskFault` variant.
        fault_tag: u64,
        /// Where it struck, as `SimDisk::inject` returns it (`u64::MAX`: it found
        /// nothing to strike).
        detail: u64,
    },
}

impl TraceEvent {
    /// The canonical encoding: a tag and three words. Never reorder tags: every recorded
    /// trace hash depends on them.
    fn encode(&self) -> [u64; 4] {
        let n = |node: &NodeId| u64::from(node.0);
        let link = |from: &NodeId, to: &NodeId| (n(from) << 32) | n(to);
        match self {
            TraceEvent::Start { node } => [1, n(node), 0, 0],
            TraceEvent::Send { from, to, msg_id, digest } => [2, link(from, to), *msg_id, *digest],
            TraceEvent::Deliver { from, to, msg_id, digest } => {
                [3, link(from, to), *msg_id, *digest]
            }
            TraceEvent::Drop { from, to, msg_id, reason } => {
                [4, link(from, to), *msg_id, *reason as u64]
            }
            TraceEvent::Duplicate { from, to, msg_id } => [5, link(from, to), *msg_id, 0],
            TraceEvent::TimerFired { node, timer } => [6, n(node), timer.to_u64(), 0],
            TraceEvent::Crash { node } => [7, n(node), 0, 0],
            TraceEvent::Pause { node } => [8, n(node), 0, 0],
            TraceEvent::Resume { node } => [9, n(node), 0, 0],
            TraceEvent::Partition { links_cut, links_digest } => {
                [10, u64::from(*links_cut), *links_digest, 0]
            }
            TraceEvent::Clog { from, to, until_ns } => [11, link(from, to), *until_ns, 0],
            TraceEvent::LinkLoss { from, to, until_ns, loss_ppm } => {
                [19, link(from, to), *until_ns, u64::from(*loss_ppm)]
            }
            TraceEvent::Operator { node, action } => [20, n(node), *action, 0],
            TraceEvent::ClockJump { node, forward_ns } => [12, n(node), *forward_ns, 0],
            TraceEvent::NetworkFaults { drop_ppm, duplicate_ppm } => {
                [13, u64::from(*drop_ppm), u64::from(*duplicate_ppm), 0]
            }
            TraceEvent::Ignored { node, fault_tag } => [14, n(node), *fault_tag, 0],
            TraceEvent::LimitReached { limit } => [15, limit.tag(), 0, 0],
            TraceEvent::SyncDone { node, ticket, ok } => [16, n(node), *ticket, u64::from(*ok)],
            TraceEvent::DiskCrash { node, damage } => [
                17,
                n(node),
                (damage.writes_lost << 32) | damage.writes_torn,
                (damage.writes_kept << 32) | damage.name_changes_lost,
            ],
            TraceEvent::DiskFault { node, fault_tag, detail } => [18, n(node), *fault_tag, *detail],
        }
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceEvent::Start { node } => write!(f, "{node} start"),
            TraceEvent::Send { from, to, msg_id, digest } => {
                write!(f, "{from}->{to} send #{msg_id} ({digest:016x})")
            }
            TraceEvent::Deliver { from, to, msg_id, digest } => {
                write!(f, "{from}->{to} deliver #{msg_id} ({digest:016x})")
            }
            TraceEvent::Drop { from, to, msg_id, reason } => {
                write!(f, "{from}->{to} drop #{msg_id} ({reason:?})")
            }
            TraceEvent::Duplicate { from, to, msg_id } => {
                write!(f, "{from}->{to} duplicate #{msg_id}")
            }
            TraceEvent::TimerFired { node, timer } => write!(f, "{node} timer {timer}"),
            TraceEvent::Crash { node } => write!(f, "{node} crash"),
            TraceEvent::Pause { node } => write!(f, "{node} pause"),
            TraceEvent::Resume { node } => write!(f, "{node} resume"),
            TraceEvent::Partition { links_cut, links_digest } => {
                write!(f, "network partition: {links_cut} links cut ({links_digest:016x})")
            }
            TraceEvent::Clog { from, to, until_ns } => {
                write!(f, "{from}->{to} clogged until {}", format_ns(*until_ns))
            }
            TraceEvent::Operator { node, action } => {
                write!(f, "{node} takes operator command {action}")
            }
            TraceEvent::LinkLoss { from, to, until_ns, loss_ppm } => write!(
                f,
                "{from}->{to} loses {loss_ppm}ppm of its messages until {}",
                format_ns(*until_ns)
            ),
            TraceEvent::ClockJump { node, forward_ns } => {
                write!(f, "{node} clock jumps forward {forward_ns}ns")
            }
            TraceEvent::NetworkFaults { drop_ppm, duplicate_ppm } => {
                write!(f, "network faults: drop {drop_ppm}ppm, duplicate {duplicate_ppm}ppm")
            }
            TraceEvent::Ignored { node, fault_tag } => {
                write!(f, "{node} fault #{fault_tag} ignored (nothing to act on)")
            }
            TraceEvent::LimitReached { limit } => write!(f, "limit reached: {limit}"),
            TraceEvent::SyncDone { node, ticket, ok } => {
                write!(f, "{node} sync#{ticket} {}", if *ok { "done" } else { "FAILED" })
            }
            TraceEvent::DiskCrash { node, damage } => write!(
                f,
                "{node} disk after crash: {} unsynced writes lost, {} torn, {} kept; {} name changes lost",
                damage.writes_lost,
                damage.writes_torn,
                damage.writes_kept,
                damage.name_changes_lost
            ),
            TraceEvent::DiskFault { node, fault_tag, detail } => {
                write!(f, "{node} disk fault #{fault_tag} ({detail:#x})")
            }
        }
    }
}

/// An event with the simulated time it happened at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// When it happened, in simulated ns (the world's time, not a node's clock).
    pub at_ns: u64,
    /// What happened.
    pub event: TraceEvent,
    /// A sent or delivered message in words (`Process::describe`); `None` for other
    /// events. Kept with the window only, never hashed.
    pub label: Option<Box<str>>,
}

impl fmt::Display for TraceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.event, &self.label) {
            (
                TraceEvent::Send { from, to, msg_id, digest }
                | TraceEvent::Deliver { from, to, msg_id, digest },
                Some(label),
            ) => {
                let verb =
                    if matches!(self.event, TraceEvent::Send { .. }) { "send" } else { "deliver" };
                write!(
                    f,
                    "{}  {from}->{to} {verb} #{msg_id} {label} ({digest:016x})",
                    format_ns(self.at_ns)
                )
            }
            _ => write!(f, "{}  {}", format_ns(self.at_ns), self.event),
        }
    }
}

/// The running hash, and the window of kept events when asked for.
pub struct Trace {
    hash: u64,
    event_count: u64,
    kept: Option<VecDeque<TraceEntry>>,
    kept_max: usize,
}

/// The hash a trace starts from. Part of the fingerprint: never change it.
const TRACE_HASH_SEED: u64 = 0x6c6f_676a_616d_0001;

/// The first 64 bytes of XXH3's default secret, as the little-endian words it reads.
const XXH3_SECRET: [u64; 8] = {
    const BYTES: [u8; 64] = [
        0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad,
        0x1c, 0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3,
        0x67, 0x1f, 0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc,
        0xff, 0x72, 0x21, 0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6,
        0x81, 0x3a, 0x26, 0x4c,
    ];
    let mut words = [0; 8];
    let mut index = 0;
    while index < 8 {
        let at = index * 8;
        words[index] = u64::from_le_bytes([
            BYTES[at],
            BYTES[at + 1],
            BYTES[at + 2],
            BYTES[at + 3],
            BYTES[at + 4],
            BYTES[at + 5],
            BYTES[at + 6],
            BYTES[at + 7],
        ]);
        index += 1;
    }
    words
};

/// `xxh3_64_with_seed` of the 40 bytes the five words make (little-endian, in order),
/// computed on the words: XXH3's path for inputs of 17 to 128 bytes, at exactly 40 (the
/// test below holds it to the library's function). Every event is hashed so: this skips
/// laying out the bytes and choosing the path by length.
#[inline]
fn xxh3_64_of_words(words: [u64; 5], seed: u64) -> u64 {
    const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
    let mix16 = |lo: u64, hi: u64, secret: usize| {
        let lo = lo ^ XXH3_SECRET[secret].wrapping_add(seed);
        let hi = hi ^ XXH3_SECRET[secret + 1].wrapping_sub(seed);
        let product = u128::from(lo) * u128::from(hi);
        (product as u64) ^ ((product >> 64) as u64)
    };
    let [w0, w1, w2, w3, w4] = words;
    // Bytes 16..32 and 8..24 (len - 32), then 0..16 and 24..40 (len - 16).
    let mut acc = 40u64.wrapping_mul(PRIME64_1);
    acc = acc.wrapping_add(mix16(w2, w3, 4));
    acc = acc.wrapping_add(mix16(w1, w2, 6));
    acc = acc.wrapping_add(mix16(w0, w1, 0));
    acc = acc.wrapping_add(mix16(w3, w4, 2));
    // XXH3's avalanche.
    acc ^= acc >> 37;
    acc = acc.wrapping_mul(0x1656_6791_9E37_79F9);
    acc ^ (acc >> 32)
}

impl Trace {
    /// A trace that keeps the last `kept_max` events when `kept_max > 0`.
    pub(crate) fn new(kept_max: usize) -> Self {
        let kept = (kept_max > 0).then(|| VecDeque::with_capacity(kept_max.min(1 << 16)));
        Trace { hash: TRACE_HASH_SEED, event_count: 0, kept, kept_max }
    }

    #[inline]
    pub(crate) fn record(&mut self, at_ns: u64, event: TraceEvent) {
        self.record_labeled(at_ns, event, None);
    }

    /// `record`, with the event's message in words when the window is kept.
    pub(crate) fn record_labeled(
        &mut self,
        at_ns: u64,
        event: TraceEvent,
        label: Option<Box<str>>,
    ) {
        let [tag, a, b, c] = event.encode();
        self.hash = xxh3_64_of_words([at_ns, tag, a, b, c], self.hash);
        self.event_count += 1;
        if let Some(kept) = &mut self.kept {
            if kept.len() == self.kept_max {
                kept.pop_front();
            }
            kept.push_back(TraceEntry { at_ns, event, label });
        }
    }

    /// Whether the window is kept (so labels are worth making).
    pub(crate) fn keeping(&self) -> bool {
        self.kept.is_some()
    }

    /// The fingerprint of everything recorded so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// How many events were recorded (kept or not).
    pub fn event_count(&self) -> u64 {
        self.event_count
    }

    /// The kept window, oldest first; empty when the trace was not asked for.
    pub fn kept(&self) -> impl Iterator<Item = &TraceEntry> {
        self.kept.iter().flatten()
    }

    /// How many recorded events fell out of the front of the kept window.
    pub fn kept_dropped(&self) -> u64 {
        let kept = self.kept.as_ref().map_or(0, |kept| kept.len() as u64);
        if self.kept.is_some() { self.event_count - kept } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(node: u32) -> TraceEvent {
        TraceEvent::Crash { node: NodeId(node) }
    }

    #[test]
    fn hash_depends_on_every_field_and_order() {
        let hash_of = |events: &[(u64, TraceEvent)]| {
            let mut trace = Trace::new(0);
            for (at_ns, event) in events {
                trace.record(*at_ns, event.clone());
            }
            trace.hash()
        };
        let base = hash_of(&[(1, crash(0)), (2, crash(1))]);
        assert_eq!(base, hash_of(&[(1, crash(0)), (2, crash(1))]));
        assert_ne!(base, hash_of(&[(2, crash(1)), (1, crash(0))]));
        assert_ne!(base, hash_of(&[(1, crash(0)), (3, crash(1))]));
        assert_ne!(base, hash_of(&[(1, crash(0)), (2, crash(2))]));
        assert_ne!(base, hash_of(&[(1, crash(0)), (2, TraceEvent::Pause { node: NodeId(1) })]));
    }

    #[test]
    fn the_word_hash_is_xxh3_of_the_bytes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(40);
        for round in 0..10_000 {
            let mut words: [u64; 5] = std::array::from_fn(|_| rng.random());
            if round % 3 == 0 {
                words = words.map(|word| word % 1000); // small values, as most fields are
            }
            let seed = if round == 0 { TRACE_HASH_SEED } else { rng.random() };
            let mut bytes = [0u8; 40];
            for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
                chunk.copy_from_slice(&word.to_le_bytes());
            }
            let expected = xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, seed);
            assert_eq!(xxh3_64_of_words(words, seed), expected, "{words:?} seed {seed:#x}");
        }
    }

    #[test]
    fn keeps_a_bounded_window() {
        let mut trace = Trace::new(3);
        for at_ns in 0..10 {
            trace.record(at_ns, crash(0));
        }
        let kept: Vec<u64> = trace.kept().map(|entry| entry.at_ns).collect();
        assert_eq!(kept, [7, 8, 9]);
        assert_eq!(trace.kept_dropped(), 7);
        assert_eq!(trace.event_count(), 10);
        assert_eq!(trace.kept().next().unwrap().to_string(), "0.000000007s  n0 crash");
    }
}
