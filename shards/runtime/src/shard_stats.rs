//! What a core reports of each shard it holds (`GET /_stats/shards`), the outcome of a
//! synced flush per shard (`POST /_flush/synced`), and the markers a cluster leader gave its
//! idle shards (what a follower's identical copy adopts). Plain data: built on the core that
//! owns the shard, read on the control thread.

use std::collections::HashMap;

pub use sheaf_shard_core::{ShardActivity, ShardSync};

/// One shard as its core holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardStat {
    pub core: usize,
    pub activity: ShardActivity,
    /// Generation and write time (Unix nanoseconds) of its last checkpoint; 0 for none.
    pub checkpoint_generation: u64,
    pub checkpoint_written_at: i64,
    /// Per resolution (nanoseconds): the window ends the core's rounds have reached
    /// (untimed, timed).
    pub flushed: Vec<(i64, i64, i64)>,
}

/// One shard's synced flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    Synced { shard: u32, sync_id: Box<str> },
    Failed { shard: u32, reason: String },
}

/// Cluster mode: the markers the leader gave its idle shards, as published in etcd, for the
/// shards whose flush times there equal the ones this node follows (index: shard id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderSyncs(pub HashMap<u32, ShardSync>);
