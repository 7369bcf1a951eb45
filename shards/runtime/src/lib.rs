//! Per-core plumbing of sheaf's data plane: one pinned glommio executor per configured CPU,
//! the ingest sockets each of them reads, the lock-free hand-off of decoded values to the core
//! that owns their shard, and the flush schedule. See ARCHITECTURE.md.
//!
//! Public API: [`ShardPool`] (start, command, read stats, stop), [`ShardCommand`], [`PoolConfig`],
//! [`SinkQueue`] (where flushed batches go) and [`CoreStats`]. Nothing here knows tokio or etcd:
//! the control thread talks to the cores only through their flume command queues.

mod cluster;
mod command;
mod config;
mod core_loop;
mod flush_loop;
mod handoff;
mod ingest;
mod pool;
mod sink;
mod stats;
mod sync;
#[cfg(any(test, feature = "shuttle"))]
mod tests;

pub use cluster::{FlushReport, FlushReports, FlushRole, FlushTimes, FollowerFlush, ResolutionFlushed, Routes};
pub use command::{BoundAddrs, ShardCommand};
pub use config::{FlushSchedule, IngestConfig, PoolConfig};
pub use ingest::unix_socket::{MAX_DGRAM_QLEN_SYSCTL, MIN_QUEUE_FOR_PAUSE, SharedUnixSocket, max_dgram_qlen};
pub use pool::{Commander, PoolError, ShardPool, StatsReader};
pub use sink::{FlushBatchPool, SinkQueue};
pub use stats::{CoreStats, Protocol, RejectCount};
