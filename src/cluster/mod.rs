//! Cluster mode on etcd (control thread only): the placement and its HTTP/CLI front, the
//! shard set's election, the flush times, and the agent that turns them into core commands.
//! Nothing here runs on a shard core; the cores only see `ShardCommand`s.
//!
//! - [`store`]: what cluster mode needs of etcd, as a trait; [`etcd`] implements it over
//!   `etcd_client` (and names the keys), `memory` in memory for tests.
//! - [`health`]: whether etcd answers, from the outcome of every request ([`tracked`]).
//! - [`node`]: the agent task (I/O), driving [`state`] (its decisions) and [`election`],
//!   [`watch`]; [`plan`] and [`campaign`] are pure helpers; [`cores`] is where commands go.
//! - [`runtime_options`]: M3's runtime options (the write rate limits), watched in etcd.
//! - [`sync_ids`]: the idle shards' `sync_id`s beside the flush times; `sync_task` publishes
//!   them (leader) or compares this node's with them (follower).

pub mod api;
pub(crate) mod campaign;
pub mod cli;
pub mod cores;
pub mod election;
pub mod etcd;
pub mod flush_times;
pub mod headers;
pub mod health;
#[cfg(test)]
pub(crate) mod memory;
pub mod node;
#[cfg(test)]
mod node_tests;
pub(crate) mod peer_recovery;
pub mod placement;
pub mod plan;
pub mod runtime_options;
pub mod state;
#[cfg(test)]
mod state_tests;
pub mod stateless;
pub mod store;
#[cfg(test)]
mod store_contract;
pub mod sync_ids;
pub(crate) mod sync_task;
#[cfg(test)]
mod testing;
pub mod tracked;
pub mod watch;
