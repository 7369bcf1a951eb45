//! Cluster mode on etcd (control thread only): the placement and its HTTP/CLI front, the
//! shard set's election, the flush times, and the agent that turns them into core commands.
//! Nothing here runs on a shard core; the cores only see `ShardCommand`s.

pub mod api;
pub(crate) mod campaign;
pub mod cli;
pub mod election;
pub mod etcd;
pub mod flush_times;
pub mod node;
pub(crate) mod placement;
pub mod watch;
