//! What the broker's integration tests share.

use logjam_broker::broker::{BrokerConfig, TruncationRule};
use logjam_broker::log::{FlushPolicy, LogConfig};
use logjam_broker::protocol::NodeId;
use logjam_broker::txn::TxnProtocol;

/// Every test's controller.
pub const CONTROLLER: NodeId = 9;
pub const MS: u64 = 1_000_000;

/// A broker of the simulator's timings that never flushes, needs one in-sync replica,
/// answers every fetch at once and has no transaction coordinator: a test changes what
/// it is about with struct update syntax.
pub fn broker_config(id: NodeId) -> BrokerConfig {
    BrokerConfig {
        id,
        controller: CONTROLLER,
        min_insync_replicas: 1,
        truncation: TruncationRule::LeaderEpoch,
        log: LogConfig {
            segment_bytes_max: 1 << 20,
            index_interval_bytes: 4096,
            flush: FlushPolicy::Never,
            verify_on_open: true,
        },
        replica_lag_max_ns: 300 * MS,
        heartbeat_every_ns: 50 * MS,
        request_timeout_ns: 100 * MS,
        replica_fetch_wait_max_ns: 0,
        fetch_max_bytes: 1 << 20,
        pending_produce_max: 100,
        hw_checkpoint_every_ns: 500 * MS,
        txn_coordinator: None,
        txn_protocol: TxnProtocol::Kip890,
    }
}
