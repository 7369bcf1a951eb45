//! What the admin API reads: the cores' published stats, the sinks' counters, the cluster
//! agent's handle, what ingest bound, and the cores' command queues (for what they answer
//! themselves: shard stats, synced flush). Built once on the control thread before the server
//! starts and shared (`Arc`) by the handlers, which only read it.

use std::sync::Arc;
use std::time::Instant;

use sheaf_shard_runtime::{BoundAddrs, Commander, StatsReader};

use crate::sinks::SinkMetrics;

/// A sink as the admin API sees it.
pub struct SinkView {
    pub name: String,
    pub kind: &'static str,
    pub queue: Arc<sheaf_shard_runtime::SinkQueue>,
    pub metrics: Arc<SinkMetrics>,
}

pub struct AdminState {
    pub stats: StatsReader,
    /// Cluster mode's agent, for `/status`; None on the embedded single node.
    pub cluster: Option<crate::cluster::node::ClusterHandle>,
    pub sinks: Vec<SinkView>,
    pub ingest: BoundAddrs,
    pub shard_owners: Arc<[u16]>,
    pub started: Instant,
    /// The token mutations need, and the refusals counted.
    pub auth: Arc<super::AdminAuth>,
    /// Cluster mode: the runtime options task (where the rate limits come from).
    pub runtime_options: Option<Arc<crate::cluster::runtime_options::RuntimeOptionsView>>,
    /// Whether the API is served over HTTPS.
    pub tls: bool,
    /// The rule set (`/api/v1/rules`).
    pub rules: Arc<crate::rules::Rules>,
    /// Where the shard checkpoints are written (`data_dir`), if anywhere.
    pub data_dir: Option<std::path::PathBuf>,
    /// The cores, for what only they can answer (`/_stats/shards`, `/_flush/synced`).
    pub cores: Commander,
}
