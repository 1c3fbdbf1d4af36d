//! Small systems written as sans-IO processes, to show how any protocol runs in the
//! world and to exercise it: a ping-pong pair, an all-to-all broadcast and a replicated
//! log (a client, a leader and two followers) for the event-loop benches, and a gossiped
//! counter (the smoke scenario's system).

mod broadcast;
mod counter;
mod ping_pong;
mod replicated_log;

pub use broadcast::{Broadcast, RoundMsg};
pub use counter::{CounterMsg, GossipCounter};
pub use ping_pong::{PingPong, PingPongMsg};
pub use replicated_log::{LogMsg, Record, ReplicatedLog};
