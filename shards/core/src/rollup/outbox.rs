//! [`RollupOutbox`]: the values one shard's flush forwards to rollup targets, gathered per
//! (target, window). Owned by one core's `CoreAggregator`, filled and sealed by its flush.
//!
//! #[PerformanceCriticalPath]: `add` runs per rolled-up value a flush forwards.

use super::RollupTargets;
use super::nested::{NestedGroup, seal_nested};
use crate::aggregation::MetricType;
use crate::batch::{ElemSpec, ForwardedFrom, NO_ROLLUP, RollupRef, SampleBatch, SpecRef};
use crate::murmur3::ShardOf;
use crate::policy::StoragePolicy;
use crate::time::UnixNanos;

/// One forwarded window of a rolled-up series, as a source shard sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OutboxKey {
    target: RollupRef,
    policy: StoragePolicy,
    /// The forward count of the value (the source element's, plus one).
    forwarded: u8,
    metric_type: MetricType,
    /// The source window's timestamp.
    time: UnixNanos,
}

/// The values gathered for one key: a chain through `RollupOutbox::values`.
#[derive(Debug, Clone, Copy)]
struct Group {
    key: OutboxKey,
    /// The next group of the same target, + 1 (0: none).
    next_of_target: u32,
    /// The first and last entries of the chain in `values`.
    head: u32,
    tail: u32,
}

/// How many groups ahead `seal` asks for a group's target.
const SEAL_TARGETS_AHEAD: usize = 8;

/// No next entry in a chain of `RollupOutbox::values`.
const END: u32 = u32::MAX;

/// The values one shard's flush forwards, gathered per (rollup target, window) as M3's
/// forwarded writer does: one forwarded sample per key carries the values of every source
/// series of the shard, so the receiver's one admit per (source shard, version) takes them all.
///
/// A target's groups are found from its reference (targets are numbered densely), not by
/// hashing the key; values lie in one list, each group a chain through it. Every list keeps
/// its capacity from one flush to the next, so a steady flush allocates nothing.
#[derive(Debug)]
pub(crate) struct RollupOutbox {
    shard_of: ShardOf,
    /// By `RollupRef − 1`: the target's latest group in `groups`, + 1 (0: none), for the
    /// shard being flushed.
    latest_group: Vec<u32>,
    /// In the order their keys first came.
    groups: Vec<Group>,
    /// (value, next entry of its group or `END`).
    values: Vec<(f64, u32)>,
    /// One group's values, contiguous, while it is sealed.
    scratch: Vec<f64>,
    /// The last element spec sealed and its reference in `sealed` (checked before reuse: the
    /// caller empties `sealed` at will).
    last_spec: Option<(ElemSpec, SpecRef)>,
    /// What the flushes since the last `take` forward.
    sealed: SampleBatch,
}

impl RollupOutbox {
    pub(crate) fn new(num_shards: u32) -> Self {
        Self {
            shard_of: ShardOf::new(num_shards),
            latest_group: Vec::new(),
            groups: Vec::new(),
            values: Vec::new(),
            scratch: Vec::new(),
            last_spec: None,
            sealed: SampleBatch::default(),
        }
    }

    /// Adds a flushed `value` of the window at `time` for `target` (not [`NO_ROLLUP`]).
    #[inline]
    pub(crate) fn add(
        &mut self,
        target: RollupRef,
        policy: StoragePolicy,
        forwarded: u8,
        metric_type: MetricType,
        time: UnixNanos,
        value: f64,
    ) {
        let Some(t) = target.checked_sub(1).map(|t| t as usize) else {
            return;
        };
        if self.latest_group.len() <= t {
            self.latest_group.resize(t + 1, 0);
        }
        let key = OutboxKey { target, policy, forwarded, metric_type, time };
        let entry = self.values.len() as u32;
        self.values.push((value, END));
        let mut g = self.latest_group[t];
        while let Some(group) = g.checked_sub(1).and_then(|g| self.groups.get_mut(g as usize)) {
            if group.key == key {
                let tail = std::mem::replace(&mut group.tail, entry);
                self.values[tail as usize].1 = entry;
                return;
            }
            g = group.next_of_target;
        }
        self.groups.push(Group { key, next_of_target: self.latest_group[t], head: entry, tail: entry });
        self.latest_group[t] = self.groups.len() as u32;
    }

    /// Turns what the flush of `source_shard` gathered into forwarded samples (version 0).
    pub(crate) fn seal(&mut self, source_shard: u32, targets: &mut RollupTargets) {
        for (g, group) in self.groups.iter().enumerate() {
            // The targets of later groups: their entries, then (once in) their ids.
            if let Some(later) = self.groups.get(g + SEAL_TARGETS_AHEAD) {
                targets.prefetch(later.key.target, false);
            }
            if let Some(later) = self.groups.get(g + SEAL_TARGETS_AHEAD / 2) {
                targets.prefetch(later.key.target, true);
            }
            let key = group.key;
            let t = key.target as usize - 1;
            self.latest_group[t] = 0;
            let Some((target, shard, hash)) = targets.routed(key.target, key.metric_type, &self.shard_of) else {
                continue;
            };
            self.scratch.clear();
            let mut at = group.head;
            while let Some(&(value, next)) = self.values.get(at as usize) {
                self.scratch.push(value);
                at = next;
            }
            if target.next != NO_ROLLUP {
                let (target, policy, forwarded, metric_type, time) =
                    (key.target, key.policy, key.forwarded, key.metric_type, key.time);
                let g = NestedGroup { target, policy, forwarded, metric_type, time, shard, hash };
                let from = ForwardedFrom { source: source_shard, version: 0, times: forwarded };
                seal_nested(&mut self.sealed, targets, g, &self.scratch, from);
                continue;
            }
            let elem = ElemSpec {
                aggs: target.aggs,
                policy: key.policy,
                transforms: target.transforms,
                rollup: NO_ROLLUP,
                forwarded: key.forwarded,
            };
            let spec = match self.last_spec {
                Some((last, spec)) if last == elem && self.sealed.spec(spec) == [elem] => spec,
                _ => {
                    let spec = self.sealed.add_spec(&[elem]);
                    self.last_spec = Some((elem, spec));
                    spec
                }
            };
            let from = ForwardedFrom { source: source_shard, version: 0, times: key.forwarded };
            self.sealed.push_forwarded(shard, hash, target.id, key.metric_type, key.time, &self.scratch, spec, from);
            if target.resend {
                self.sealed.mark_last_resend();
            }
        }
        self.groups.clear();
        self.values.clear();
    }

    /// The forwarded samples sealed since the last call, to be routed and then cleared.
    pub(crate) fn sealed(&mut self) -> &mut SampleBatch {
        &mut self.sealed
    }
}
