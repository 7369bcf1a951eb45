//! The cluster placement: which shard set owns which shards, and from when to when. It plays
//! the part of M3's *mirrored, staged* m3aggregator placement (placementpb, and the
//! m3coordinator placement API), and is pure: no I/O, no etcd, no clock (every operation takes
//! `now_nanos`). Its callers run on the control thread: the cluster agent decodes the
//! placement it watches in etcd, and the placement API (or `sheaf placement`, on the main
//! thread) decodes it, changes it and writes it back. A [`Placement`] is a plain value that no
//! other thread sees.
//!
//! - Mirrored: instances form *shard sets* of exactly `replication_factor` instances, one per
//!   isolation group and of equal weight; every instance of a set holds the same shards, and one
//!   election per `shard_set_id` picks the instance that emits.
//! - Staged: a shard that changes hands is not switched at once. The giving instances keep it as
//!   `LEAVING` with `cutoff_nanos = T` and the receiving ones get it as `INITIALIZING` with
//!   `cutover_nanos = T`, where T is the first multiple of the cutover alignment
//!   (`cluster.shard_cutover_alignment`, one minute by default) strictly after `now + warmup`
//!   ([`next_cutover`](cutover::next_cutover)); [`cleanup`] later marks cut-over shards
//!   `AVAILABLE` and drops the cut-off ones. Cutover 0 means "since always" and cutoff 0 means
//!   "never" (+∞), as in the proto.
//!
//! An instance whose shards are all `LEAVING` is *leaving* (removed or replaced): it keeps its
//! `shard_set_id`, and so its place in its set's election, until its shards are cut off and
//! [`cleanup`] drops it. Every other instance is *active*. The operations keep every active
//! shard set owning at least one shard, so "leaving" is never confused with "owns nothing".
//!
//! - [`model`]: the data ([`Placement`], [`Instance`], [`Shard`](model::Shard)); [`error`]:
//!   [`PlacementError`].
//! - [`operations`]: `init`, `add`, `remove`, `replace` and [`cleanup`]; [`balance`]: how they
//!   group instances into shard sets and spread and move shards; [`cutover`]: when moved
//!   shards change hands.
//! - [`invariants`]: the checker [`validate`], applied to every placement read or computed.
//! - [`json`]: the m3coordinator HTTP bodies (requests in, jsonpb-shaped placement out).
//! - [`proto`]: conversion to and from `sheaf_proto::placementpb` and the etcd value bytes.

mod balance;
mod cutover;
mod error;
mod invariants;
mod json;
mod model;
mod operations;
mod proto;
#[cfg(test)]
mod tests;

pub use cutover::Options;
pub use error::PlacementError;
pub use invariants::validate;
pub use json::{
    AddRequest, InitRequest, InstanceRequest, RemoveRequest, ReplaceRequest, proto_to_json, to_response_json,
};
pub use model::{Instance, Placement, Shard, ShardState};
pub use operations::cleanup;
#[cfg(test)]
pub use operations::{add, init, remove, replace};
pub use proto::{decode_snapshots, encode_snapshots};
