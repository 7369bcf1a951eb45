//! Rollups on the core that owns the source series: the rollup targets its elements name
//! ([`RollupTargets`]), the values a flush forwards to them ([`RollupOutbox`]), and on the core
//! that owns a rolled-up series, the sources each forwarded window has taken in
//! ([`ForwardedWindows`]).
//!
//! All three belong to one core's `CoreAggregator` and are touched only by that core. The
//! outbox is filled during the flush of one shard and sealed at its end into a
//! [`SampleBatch`] of forwarded samples, which the core's flush task routes like any batch
//! (applied here, or handed off to the core owning the rolled-up series).

use hashbrown::{Equivalent, HashMap};

use crate::aggregation::{AggTypes, MetricType};
use crate::batch::{ElemSpec, ForwardedFrom, NO_ROLLUP, RollupRef, SampleBatch};
use crate::murmur3::ShardOf;
use crate::pipeline::ForwardedSources;
use crate::policy::StoragePolicy;
use crate::spec::PolicyIdx;
use crate::time::UnixNanos;
use crate::transform::TransformChain;

/// Distinct rollup targets one core keeps: metadata from the network must not grow the table
/// without bound (a metric naming one more is refused as `metadata_rejected`).
pub(crate) const MAX_ROLLUP_TARGETS: usize = 1 << 20;

/// Where an element's flushed values go: the rolled-up series and how it aggregates them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RollupTarget {
    pub(crate) id: Box<[u8]>,
    pub(crate) aggs: AggTypes,
    /// The transformations after the rollup op: the rolled-up series runs them at its flush.
    pub(crate) transforms: TransformChain,
}

/// A [`RollupTarget`] looked up without copying its id: hashes as the target does (a
/// `Box<[u8]>` hashes as its bytes), so a lookup that finds it allocates nothing.
#[derive(Hash)]
struct RollupTargetRef<'a> {
    id: &'a [u8],
    aggs: AggTypes,
    transforms: TransformChain,
}

impl Equivalent<RollupTarget> for RollupTargetRef<'_> {
    fn equivalent(&self, key: &RollupTarget) -> bool {
        *self.id == *key.id && self.aggs == key.aggs && self.transforms == key.transforms
    }
}

/// The rollup targets of a core, interned: an element key names one by its [`RollupRef`].
#[derive(Debug, Default)]
pub(crate) struct RollupTargets {
    /// By `RollupRef − 1`.
    targets: Vec<RollupTarget>,
    index: HashMap<RollupTarget, RollupRef>,
}

impl RollupTargets {
    /// The reference of `target`, added on first sight; `None` once the table is full.
    pub(crate) fn intern(&mut self, id: &[u8], aggs: AggTypes, transforms: TransformChain) -> Option<RollupRef> {
        if let Some(&r) = self.index.get(&RollupTargetRef { id, aggs, transforms }) {
            return Some(r);
        }
        if self.targets.len() >= MAX_ROLLUP_TARGETS {
            return None;
        }
        let target = RollupTarget { id: id.into(), aggs, transforms };
        self.targets.push(target.clone());
        let r = self.targets.len() as RollupRef;
        self.index.insert(target, r);
        Some(r)
    }

    pub(crate) fn get(&self, r: RollupRef) -> Option<&RollupTarget> {
        self.targets.get(r.checked_sub(1)? as usize)
    }

    pub(crate) fn len(&self) -> usize {
        self.targets.len()
    }
}

/// One forwarded window of a rolled-up series, as a source shard sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct OutboxKey {
    target: RollupRef,
    policy: StoragePolicy,
    /// The forward count of the value (the source element's, plus one).
    forwarded: u8,
    metric_type: MetricType,
    /// The source window's timestamp.
    time: UnixNanos,
}

/// The values one shard's flush forwards, gathered per (rollup target, window) as M3's
/// forwarded writer does: one forwarded sample per key carries the values of every source
/// series of the shard, so the receiver's one admit per (source shard, version) takes them all.
/// Its maps and lists are reused from one flush to the next.
#[derive(Debug)]
pub(crate) struct RollupOutbox {
    shard_of: ShardOf,
    /// Key → index in `values`, for the shard being flushed.
    gathered: HashMap<OutboxKey, usize>,
    values: Vec<Vec<f64>>,
    /// What the flushes since the last `take` forward.
    sealed: SampleBatch,
}

impl RollupOutbox {
    pub(crate) fn new(num_shards: u32) -> Self {
        Self {
            shard_of: ShardOf::new(num_shards),
            gathered: HashMap::new(),
            values: Vec::new(),
            sealed: SampleBatch::default(),
        }
    }

    /// Adds a flushed `value` of the window at `time` for `target`.
    pub(crate) fn add(
        &mut self,
        target: RollupRef,
        policy: StoragePolicy,
        forwarded: u8,
        metric_type: MetricType,
        time: UnixNanos,
        value: f64,
    ) {
        let key = OutboxKey { target, policy, forwarded, metric_type, time };
        let next = self.gathered.len();
        let at = *self.gathered.entry(key).or_insert(next);
        if at == self.values.len() {
            self.values.push(Vec::new());
        }
        self.values[at].push(value);
    }

    /// Turns what the flush of `source_shard` gathered into forwarded samples (version 0).
    pub(crate) fn seal(&mut self, source_shard: u32, targets: &RollupTargets) {
        for (key, at) in self.gathered.drain() {
            let values = &mut self.values[at];
            if let Some(target) = targets.get(key.target) {
                let elem = ElemSpec {
                    aggs: target.aggs,
                    policy: key.policy,
                    transforms: target.transforms,
                    rollup: NO_ROLLUP,
                    forwarded: key.forwarded,
                };
                let spec = self.sealed.add_spec(&[elem]);
                let (shard, hash) = self.shard_of.shard_and_hash(key.metric_type, &target.id);
                let from = ForwardedFrom { source: source_shard, version: 0, times: key.forwarded };
                self.sealed.push_forwarded(shard, hash, &target.id, key.metric_type, key.time, values, spec, from);
            }
            values.clear();
        }
    }

    /// The forwarded samples sealed since the last call, to be routed and then cleared.
    pub(crate) fn sealed(&mut self) -> &mut SampleBatch {
        &mut self.sealed
    }
}

/// One forwarded window of one element of a rolled-up series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct WindowKey {
    shard: u32,
    hash: u64,
    policy: PolicyIdx,
    aggs: AggTypes,
    start: UnixNanos,
}

/// The (source shard, version) pairs each open forwarded window of a core has taken in.
#[derive(Debug, Default)]
pub(crate) struct ForwardedWindows {
    open: HashMap<WindowKey, ForwardedSources>,
}

impl ForwardedWindows {
    /// Records `from` for the window at `start` of an element; `false` if it was already taken
    /// in (the values must then be dropped).
    pub(crate) fn admit(
        &mut self,
        shard: u32,
        hash: u64,
        policy: PolicyIdx,
        aggs: AggTypes,
        start: UnixNanos,
        from: ForwardedFrom,
    ) -> bool {
        let key = WindowKey { shard, hash, policy, aggs, start };
        self.open.entry(key).or_default().admit(from.source, from.version)
    }

    /// Forgets the windows a flush or discard has reached (`due(shard, policy, start)`): no
    /// value is admitted to them any more.
    pub(crate) fn forget_due(&mut self, mut due: impl FnMut(u32, PolicyIdx, UnixNanos) -> bool) {
        self.open.retain(|k, _| !due(k.shard, k.policy, k.start));
    }

    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregation::AggType;

    #[test]
    fn a_target_is_found_again_by_its_bytes() {
        let mut targets = RollupTargets::default();
        let sum = AggTypes::of(&[AggType::Sum]);
        let a = targets.intern(b"by.route;route=/a", sum, TransformChain::NONE).unwrap();
        let b = targets.intern(b"by.route;route=/b", sum, TransformChain::NONE).unwrap();
        assert_ne!(a, b);
        assert_eq!(targets.intern(b"by.route;route=/a", sum, TransformChain::NONE), Some(a));
        assert_eq!(targets.len(), 2);
        assert_eq!(&*targets.get(b).unwrap().id, b"by.route;route=/b");
    }
}
