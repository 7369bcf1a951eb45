//! The cluster placement: which shard set owns which shards, and from when to when. It plays
//! the part of M3's *mirrored, staged* m3aggregator placement (shared/reference/m3-aggregator.md
//! §2.9, §2.10, §3 `placementpb`, §4 m3coordinator API), and is pure: no I/O, no etcd, no clock
//! (every operation takes `now_nanos`).
//!
//! - Mirrored: instances form *shard sets* of exactly `replication_factor` instances, one per
//!   isolation group and of equal weight; every instance of a set holds the same shards, and one
//!   election per `shard_set_id` picks the instance that emits.
//! - Staged: a shard that changes hands is not switched at once. The giving instances keep it as
//!   `LEAVING` with `cutoff_nanos = T` and the receiving ones get it as `INITIALIZING` with
//!   `cutover_nanos = T`, where T is the first whole minute strictly after `now + warmup`
//!   ([`next_cutover`]); [`cleanup`] later marks cut-over shards `AVAILABLE` and drops the
//!   cut-off ones. Cutover 0 means "since always" and cutoff 0 means "never" (+∞), as in the proto.
//!
//! An instance whose shards are all `LEAVING` is *leaving* (removed or replaced): it keeps its
//! `shard_set_id`, and so its place in its set's election, until its shards are cut off and
//! [`cleanup`] drops it. Every other instance is *active*. The operations keep every active
//! shard set owning at least one shard, so "leaving" is never confused with "owns nothing".
//!
//! - [`algo`]: the operations ([`init`], [`add`], [`remove`], [`replace`], [`cleanup`]) and the
//!   invariant checker [`validate`].
//! - [`json`]: the m3coordinator HTTP bodies (requests in, jsonpb-shaped placement out).
//! - [`proto`]: conversion to and from `sheaf_proto::placementpb` and the etcd value bytes.

// The control plane (placement HTTP handlers, etcd watch, elections) wires this module next;
// until then most of it (and so its re-exports) is used by its tests only.
#![allow(dead_code, unused_imports)]

mod algo;
mod json;
mod proto;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

pub use algo::{MAX_NUM_SHARDS, add, cleanup, init, next_cutover, remove, replace, validate};
pub use json::{
    AddRequest, InitRequest, InstanceRequest, RemoveRequest, ReplaceRequest, parse_request, placement_from_json,
    placement_to_json, to_response_json,
};
pub use proto::{decode_snapshots, encode_snapshots, from_proto, to_proto};

/// One minute in nanoseconds: cutovers land on whole minutes.
pub const NANOS_PER_MINUTE: i64 = 60_000_000_000;

/// Why a placement operation, a decode or a validation failed. Messages are meant for the
/// operator (they end up in HTTP error bodies and logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// The request itself is malformed (zero shards, an empty id, counts that do not match…).
    #[error("{0}")]
    Request(String),
    /// The request names an instance the placement does not hold.
    #[error("instance {0} is not in the placement")]
    UnknownInstance(String),
    /// The request adds an instance the placement already holds (possibly as leaving).
    #[error("instance {0} is already in the placement")]
    DuplicateInstance(String),
    /// The new instances cannot be grouped into mirrored shard sets.
    #[error("cannot form shard sets: {0}")]
    ShardSets(String),
    /// The operation is well-formed but would break a placement rule.
    #[error("{0}")]
    Refused(String),
    /// A placement (stored, decoded or computed) breaks an invariant; see [`validate`].
    #[error("invalid placement: {0}")]
    Invalid(String),
    /// The stored bytes or JSON do not decode as a placement.
    #[error("decoding the placement: {0}")]
    Decode(String),
    /// The stored value uses M3's zstd compression.
    #[error("zstd-compressed placements are not supported")]
    Zstd,
    /// The placement uses an M3 feature sheaf does not implement.
    #[error("{0}")]
    Unsupported(String),
}

/// Settings of the mutating operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How long a moved shard's receivers get before they take over: the cutover is the first
    /// multiple of `alignment` strictly after `now + warmup`.
    pub warmup: Duration,
    /// What cutovers are aligned to: one minute, as in m3 (a multiple of every resolution in
    /// use, so no window straddles a cutover).
    pub alignment: Duration,
}

impl Options {
    /// `warmup` with m3's one-minute alignment.
    pub fn new(warmup: Duration) -> Self {
        Options { warmup, alignment: Duration::from_secs(60) }
    }

    /// The cutover for shards moved at `now_nanos` ([`next_cutover`]).
    pub fn cutover(&self, now_nanos: i64) -> i64 {
        next_cutover(now_nanos, self.warmup, self.alignment)
    }
}

/// A shard's state on one instance (placementpb `ShardState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShardState {
    /// Owned from `cutover_nanos` on (not yet marked available by [`cleanup`]).
    Initializing,
    /// Owned.
    Available,
    /// Owned until `cutoff_nanos` only; another shard set takes it over then.
    Leaving,
}

impl ShardState {
    /// The proto enum name (`INITIALIZING`, `AVAILABLE`, `LEAVING`), as jsonpb writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ShardState::Initializing => "INITIALIZING",
            ShardState::Available => "AVAILABLE",
            ShardState::Leaving => "LEAVING",
        }
    }
}

/// One shard on one instance (placementpb `Shard`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: u32,
    pub state: ShardState,
    /// The instance this one takes the shard over from ("" when none).
    pub source_id: String,
    /// Owned from this time on (ns); 0 means since always.
    pub cutover_nanos: i64,
    /// Owned until this time (ns); 0 means never cut off (+∞). See [`Shard::cutoff`].
    pub cutoff_nanos: i64,
}

impl Shard {
    /// An available shard owned since always and never cut off (what an initial placement holds).
    pub fn available(id: u32) -> Self {
        Shard { id, state: ShardState::Available, source_id: String::new(), cutover_nanos: 0, cutoff_nanos: 0 }
    }

    /// The cutoff with the proto's 0 read as +∞ (`i64::MAX`).
    pub fn cutoff(&self) -> i64 {
        if self.cutoff_nanos == 0 { i64::MAX } else { self.cutoff_nanos }
    }

    /// The cutover (0 = since always, i.e. before any real time).
    pub fn cutover(&self) -> i64 {
        self.cutover_nanos
    }

    /// Whether the shard is owned at `now_nanos`: `cutover ≤ now < cutoff`.
    pub fn is_active_at(&self, now_nanos: i64) -> bool {
        self.cutover_nanos <= now_nanos && now_nanos < self.cutoff()
    }

    pub fn is_leaving(&self) -> bool {
        self.state == ShardState::Leaving
    }
}

/// One aggregator instance (placementpb `Instance`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Instance {
    /// The aggregator's `host_id` (or `host:port` in M3's legacy scheme).
    pub id: String,
    pub isolation_group: String,
    pub zone: String,
    pub weight: u32,
    /// Where m3msg producers send this instance's shards.
    pub endpoint: String,
    pub hostname: String,
    pub port: u32,
    /// The mirrored set this instance belongs to (1-based; 0 before an operation assigns it).
    pub shard_set_id: u32,
    /// Sorted by id, one entry per shard id.
    pub shards: Vec<Shard>,
}

impl Instance {
    /// An instance with no shards and no shard set yet, as requests describe them.
    pub fn new(id: impl Into<String>, isolation_group: impl Into<String>, weight: u32) -> Self {
        Instance { id: id.into(), isolation_group: isolation_group.into(), weight, ..Instance::default() }
    }

    /// This instance's entry for shard `id`, in any state.
    pub fn shard(&self, id: u32) -> Option<&Shard> {
        self.shards.binary_search_by_key(&id, |s| s.id).ok().map(|i| &self.shards[i])
    }

    pub(crate) fn shard_mut(&mut self, id: u32) -> Option<&mut Shard> {
        self.shards.binary_search_by_key(&id, |s| s.id).ok().map(move |i| &mut self.shards[i])
    }

    /// Inserts `shard`, replacing any entry with the same id (keeps `shards` sorted).
    pub(crate) fn put_shard(&mut self, shard: Shard) {
        match self.shards.binary_search_by_key(&shard.id, |s| s.id) {
            Ok(i) => self.shards[i] = shard,
            Err(i) => self.shards.insert(i, shard),
        }
    }

    /// Ids of the shards this instance owns or is taking over (every state but `LEAVING`).
    pub fn owned_shard_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.shards.iter().filter(|s| !s.is_leaving()).map(|s| s.id)
    }

    /// Removed or replaced: it holds shards, all `LEAVING`.
    pub fn is_leaving(&self) -> bool {
        !self.shards.is_empty() && self.shards.iter().all(Shard::is_leaving)
    }

    /// Copies the identity fields (not the shard set or the shards).
    pub(crate) fn identity(&self) -> Instance {
        Instance { shard_set_id: 0, shards: Vec::new(), ..self.clone() }
    }
}

/// The instances holding one shard: `owners` in a non-`LEAVING` state, `leaving` in `LEAVING`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Owners<'a> {
    pub owners: Vec<&'a Instance>,
    pub leaving: Vec<&'a Instance>,
}

/// A mirrored, staged, sharded placement (placementpb `Placement` with `is_sharded` and
/// `is_mirrored` set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub num_shards: u32,
    pub replication_factor: u32,
    /// Keyed by instance id.
    pub instances: BTreeMap<String, Instance>,
    /// The highest shard set id ever handed out (ids are not reused).
    pub max_shard_set_id: u32,
    /// When the latest change takes effect (ns); 0 for an initial placement.
    pub cutover_time: i64,
}

impl Placement {
    pub fn instance(&self, id: &str) -> Option<&Instance> {
        self.instances.get(id)
    }

    /// Every instance, leaving ones included, grouped by `shard_set_id`.
    pub fn shard_sets(&self) -> BTreeMap<u32, Vec<&Instance>> {
        let mut sets: BTreeMap<u32, Vec<&Instance>> = BTreeMap::new();
        for inst in self.instances.values() {
            sets.entry(inst.shard_set_id).or_default().push(inst);
        }
        sets
    }

    /// Who holds `shard`, split into owners (`INITIALIZING`/`AVAILABLE`) and `LEAVING` holders.
    pub fn owners_of(&self, shard: u32) -> Owners<'_> {
        let mut owners = Owners::default();
        for inst in self.instances.values() {
            match inst.shard(shard) {
                Some(s) if s.is_leaving() => owners.leaving.push(inst),
                Some(_) => owners.owners.push(inst),
                None => {}
            }
        }
        owners
    }
}
