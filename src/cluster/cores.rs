//! What the node agent tells the shard cores, and the seam it tells them through: [`Cores`]
//! is the runtime's [`Commander`] in production and a recorder in tests. Called on the control
//! thread only; the commands travel on each core's queue and the cores apply them between
//! their other tasks' steps.

use std::future::Future;
use std::sync::Arc;

use sheaf_shard_core::{RateLimitSettings, ShardWindow};
use sheaf_shard_runtime::{Commander, FlushRole, FollowerFlush, Routes, ShardCommand};

/// The cluster-mode commands, as the agent decides them.
#[derive(Debug, Clone)]
pub enum CoreCommand {
    /// `ShardCommand::SetShardWindows`.
    Windows(Arc<[ShardWindow]>),
    /// `ShardCommand::SetRoutes`.
    Routes(Arc<Routes>),
    /// `ShardCommand::SetFollowerFlush`.
    FollowerFlush(Arc<FollowerFlush>),
    /// `ShardCommand::SetRole`, answered by every core once applied.
    Role(FlushRole),
    /// `ShardCommand::SetRateLimits`.
    RateLimits(RateLimitSettings),
}

/// Where the agent's commands go: every core, in core order.
pub trait Cores: Send + Sync + 'static {
    /// Sends `command` to every core; a role change resolves once every core has applied it
    /// (so "stop emitting" is done before the agent goes on), the rest once queued.
    fn apply(&self, command: CoreCommand) -> impl Future<Output = ()> + Send;
}

impl Cores for Commander {
    async fn apply(&self, command: CoreCommand) {
        match command {
            CoreCommand::Windows(w) => self.send_all(|| ShardCommand::SetShardWindows(w.clone())),
            CoreCommand::Routes(r) => self.send_all(|| ShardCommand::SetRoutes(r.clone())),
            CoreCommand::FollowerFlush(f) => self.send_all(|| ShardCommand::SetFollowerFlush(f.clone())),
            CoreCommand::Role(role) => self.invoke_all(|reply| ShardCommand::SetRole { role, reply }).await,
            CoreCommand::RateLimits(limits) => self.send_all(|| ShardCommand::SetRateLimits(limits)),
        }
    }
}
