//! MurmurHash3 x86 32-bit and M3-compatible shard selection.
//!
//! **Runs on:** any shard core (and the ingress path that routes series to
//! shards). These are pure functions with no state.
//!
//! **Hot path:** called once per series id to pick its shard, so no
//! allocation and no logging; the hash reads the input in place.
//!
//! - `hash.rs`: [`murmur3_x86_32`], bit-for-bit Go's `murmur3.Sum32WithSeed`, which M3
//!   shards with: `murmur3.Sum32(id) % numShards` (seed 0).
//! - `shard.rs`: [`shard_for`] and [`ShardOf`], that remainder.
//!
//! The two sit on different floors of the crate: `hash.rs` uses nothing, and the series hash
//! of `aggregation` is built on it; `shard.rs` uses that series hash, for
//! [`ShardOf::shard_and_hash`].

pub(crate) mod hash;
mod shard;

pub use hash::murmur3_x86_32;
pub use shard::{ShardOf, shard_for};
