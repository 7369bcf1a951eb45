//! The placement's data: [`Placement`], its [`Instance`]s and their [`Shard`]s, as placementpb
//! has them. Plain values: the cluster agent keeps the current placement on the control thread,
//! and each placement API request decodes its own copy, changes it and writes it back to etcd.

use std::collections::BTreeMap;

/// A shard's state on one instance (placementpb `ShardState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShardState {
    /// Owned from `cutover_nanos` on (not yet marked available by `cleanup`).
    Initializing,
    /// Owned.
    Available,
    /// Owned until `cutoff_nanos` only; another shard set takes it over then.
    Leaving,
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
    #[cfg(test)]
    pub fn new(id: impl Into<String>, isolation_group: impl Into<String>, weight: u32) -> Self {
        Instance { id: id.into(), isolation_group: isolation_group.into(), weight, ..Instance::default() }
    }

    /// This instance's entry for shard `id`, in any state.
    pub fn shard(&self, id: u32) -> Option<&Shard> {
        self.shards.binary_search_by_key(&id, |s| s.id).ok().map(|i| &self.shards[i])
    }

    pub(super) fn shard_mut(&mut self, id: u32) -> Option<&mut Shard> {
        self.shards.binary_search_by_key(&id, |s| s.id).ok().map(move |i| &mut self.shards[i])
    }

    /// Inserts `shard`, replacing any entry with the same id (keeps `shards` sorted).
    pub(super) fn put_shard(&mut self, shard: Shard) {
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
    pub(super) fn identity(&self) -> Instance {
        Instance { shard_set_id: 0, shards: Vec::new(), ..self.clone() }
    }
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
}
