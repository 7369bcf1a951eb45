//! Per-core plumbing of sheaf's data plane: one pinned glommio executor per configured CPU,
//! the ingest sockets each of them reads, the lock-free hand-off of decoded values to the core
//! that owns their shard, and the flush schedule. Nothing here knows tokio or etcd: the
//! control thread talks to the cores only through their flume command queues.
//!
//! Public API: [`ShardPool`] (start, command, read stats, stop) with its [`PoolConfig`]
//! (plain settings) and [`PoolServices`] (the sink queues and other live objects it is
//! wired to), [`ShardCommand`], [`CoreStats`], and the sans-IO per-value decoders in
//! [`decode`].
//!
//! Layers, each using only those above it in this list:
//! 1. plain types and queues: `config`, `routes`, `flush_role`, `stats`, `decode`, `error`,
//!    `sync`, `shard_stats`, `output::sink_queue`, `services`, `ingest::unix_socket` (the shared socket
//!    the pool binds), `command`, `checkpoint::files`;
//! 2. `core`: the floor of one core (its state, ingest lifecycle, route table, task queues);
//! 3. `handoff`, `output::forward`: one core's links to its peers and to other nodes;
//! 4. the rest of `ingest`, `checkpoint::on_core`, then `flush` (which routes what rollups forward through an
//!    ingest `Router`), then `idle` (idle shards, synced flush): the tasks of a core;
//! 5. `core_main` (one core's start and command loop) and `pool` (all cores).
//!
//! ARCHITECTURE.md says which thread runs each file.

mod checkpoint;
mod command;
mod config;
mod core;
mod core_main;
pub mod decode;
mod error;
mod flush;
mod flush_role;
mod handoff;
mod idle;
mod ingest;
mod output;
mod pool;
mod routes;
mod services;
mod shard_stats;
mod stats;
mod sync;
#[cfg(any(test, feature = "shuttle"))]
mod tests;

pub use checkpoint::{CheckpointConfig, DataDirError, DataDirScan, prepare_data_dir};
pub use command::{BoundAddrs, FinalPhase, ShardCommand};
pub use config::{FlushSchedule, IngestConfig, PoolConfig, StreamLimits};
pub use error::{BindError, PoolError};
pub use flush_role::{FlushReport, FlushReports, FlushRole, FlushTimes, FollowerFlush, ResolutionFlushed};
pub use ingest::unix_socket::{MAX_DGRAM_QLEN_SYSCTL, MIN_QUEUE_FOR_PAUSE, SharedUnixSocket, max_dgram_qlen};
pub use output::{FlushBatchPool, SinkQueue};
pub use pool::{Commander, ShardPool, StatsReader};
pub use routes::{Peer, Routes};
pub use services::PoolServices;
pub use shard_stats::{LeaderSyncs, ShardActivity, ShardStat, ShardSync, SyncOutcome};
pub use stats::{
    CHECKPOINT_LOAD_FAILURE_REASONS, CheckpointStats, ConnectionRefusal, CoreStats, Protocol, RejectCount,
};
