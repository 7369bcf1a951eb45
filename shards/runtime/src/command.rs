//! Commands from the control thread to one core, carried by that core's flume queue.
//! Startup is the first batch of them; a core applies each in its command loop
//! (`core_main`), between its other tasks' steps. Sent from the control thread, applied on
//! the core; the payloads are shared read-only (`Arc`).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use sheaf_shard_core::rules::RuleSet;
use sheaf_shard_core::time::UnixNanos;
use sheaf_shard_core::{RateLimitSettings, ShardWindow};

use crate::error::BindError;
use crate::flush_role::{FlushRole, FollowerFlush};
use crate::ingest::unix_socket::SharedUnixSocket;
use crate::routes::Routes;
use crate::stats::CheckpointStats;

/// The ingest addresses a core actually bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoundAddrs {
    pub m3msg: Option<SocketAddr>,
    pub statsd_udp: Option<SocketAddr>,
    pub statsd_tcp: Option<SocketAddr>,
    /// The StatsD Unix socket's path (one socket, bound by the pool and read by every core).
    pub statsd_unix: Option<PathBuf>,
}

/// One command to one core.
pub enum ShardCommand {
    /// Which core owns each shard (index = shard id, value = core index).
    SetShardOwners(Arc<[u16]>),
    /// Cluster mode: when each shard this core holds may be written and which windows emitted
    /// (index = shard id).
    SetShardWindows(Arc<[ShardWindow]>),
    /// Cluster mode: which shards this node owns and which peers to forward the others to.
    SetRoutes(Arc<Routes>),
    /// Cluster mode: the leader's flush times (and forced mode) for the follower rounds.
    SetFollowerFlush(Arc<FollowerFlush>),
    /// Cluster mode: emit (leader) or discard (follower). Becoming leader first discards what
    /// the last `SetFollowerFlush` covers, so nothing the old leader emitted goes out again.
    SetRole { role: FlushRole, reply: flume::Sender<()> },
    /// The write rate limits (M3's runtime options), changed at runtime in cluster mode.
    SetRateLimits(RateLimitSettings),
    /// Bind these ingest addresses (SO_REUSEPORT) and start reading; replies with what was
    /// bound (the first core resolves port 0, the others bind the port it got).
    /// `unix` is the StatsD Unix socket every core reads, when one is configured.
    StartIngest {
        bind: BoundAddrs,
        unix: Option<Arc<SharedUnixSocket>>,
        reply: flume::Sender<Result<BoundAddrs, BindError>>,
    },
    /// Stop accepting and reading, hand every decoded value to its owner, then reply.
    StopIngest { reply: flume::Sender<()> },
    /// After every core stopped ingest: take in all handed-off values, flush every window
    /// (open ones too when `include_open`), queue the results on the sinks, then reply.
    FinalFlush { include_open: bool, phase: FinalPhase, reply: flume::Sender<()> },
    /// Match series created (without metadata) from `cutover` on against `rules`; those
    /// created before keep what the rules in force then gave them.
    SetRules { rules: Arc<RuleSet>, cutover: UnixNanos },
    /// Load the checkpoints of the shards `owners` gives this core (before ingest starts);
    /// replies with what was loaded. Nothing happens without `data_dir`.
    LoadCheckpoints { owners: Arc<[u16]>, reply: flume::Sender<CheckpointStats> },
    /// Write the checkpoint of every shard this core owns now, and reply once written.
    Checkpoint { reply: flume::Sender<()> },
    /// Leave the executor.
    Exit,
}

impl fmt::Display for ShardCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SetShardOwners(o) => write!(f, "set_shard_owners({} shards)", o.len()),
            Self::SetShardWindows(w) => write!(f, "set_shard_windows({} shards)", w.len()),
            Self::SetRoutes(r) => write!(f, "set_routes({} peers)", r.peers.len()),
            Self::SetFollowerFlush(ff) => write!(f, "set_follower_flush(forced={:?})", ff.forced_horizon),
            Self::SetRole { role, .. } => write!(f, "set_role({role:?})"),
            Self::SetRateLimits(limits) => write!(f, "set_rate_limits({limits:?})"),
            Self::StartIngest { .. } => f.write_str("start_ingest"),
            Self::StopIngest { .. } => f.write_str("stop_ingest"),
            Self::FinalFlush { include_open, phase, .. } => {
                write!(f, "final_flush(include_open={include_open}, phase={phase:?})")
            }
            Self::SetRules { rules, cutover } => write!(
                f,
                "set_rules({} mapping, {} rollup, cutover {cutover})",
                rules.mapping_rules.len(),
                rules.rollup_rules.len()
            ),
            Self::LoadCheckpoints { .. } => f.write_str("load_checkpoints"),
            Self::Checkpoint { .. } => f.write_str("checkpoint"),
            Self::Exit => f.write_str("exit"),
        }
    }
}

/// The phases of the final flush, each run by every core before the next begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalPhase {
    /// The windows of values received from clients; what they roll up is routed to the
    /// cores owning the rolled-up series.
    Sources,
    /// The forwarded windows of a forward count below `below`: what those of them that roll
    /// up again (nested rollups) forward is routed on, as after `Sources`.
    Nested { below: u8 },
    /// The rest: the forwarded windows, now that every rolled-up value has been sent.
    Forwarded,
}

impl FinalPhase {
    /// Every phase, in order: the sources, one per level of nested rollups, the rest.
    pub fn all() -> impl Iterator<Item = FinalPhase> {
        let nested = (2..=sheaf_shard_core::pipeline::MAX_ROLLUP_DEPTH as u8).map(|below| FinalPhase::Nested { below });
        std::iter::once(FinalPhase::Sources).chain(nested).chain(std::iter::once(FinalPhase::Forwarded))
    }
}
