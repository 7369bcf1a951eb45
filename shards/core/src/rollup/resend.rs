//! [`ResendLog`]: on the core that owns a source series, what its resend-enabled rollups
//! (M3's `resend_enabled`) forwarded of each flushed window, kept until no value may reach
//! that window any more (its end plus the timed buffer past). Owned by that core's
//! `CoreAggregator`; written by the flush of a shard, its corrections sealed at that flush's
//! end (first flushes go through the outbox, gathered over the round).
//!
//! A timed value for a window already flushed opens it again; its next flush merges the
//! window with what was kept and forwards the corrected values with the values they replace
//! (`prev_values`), one version further per (source shard, target window), so that the
//! rolled-up series swaps the old contribution for the new one instead of adding a second,
//! partial value. Resends are rare: this log may allocate.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashMap};

use super::{RollupOutbox, RollupTargets};
use crate::aggregation::{AggTypes, MetricType};
use crate::batch::{ElemSpec, ForwardedFrom, NO_ROLLUP, RollupRef, SampleBatch};
use crate::murmur3::ShardOf;
use crate::policy::StoragePolicy;
use crate::spec::PolicyIdx;
use crate::time::UnixNanos;
use crate::window::{Moments, WindowMut};

/// One window of one source element: (shard, hash of the series, element policy, element
/// aggregations, start).
type SourceKey = (u32, u64, PolicyIdx, AggTypes, UnixNanos);

/// One forwarded window of a target, as one source shard sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TargetKey {
    shard: u32,
    target: RollupRef,
    policy: StoragePolicy,
    forwarded: u8,
    metric_type: MetricType,
    time: UnixNanos,
}

#[derive(Debug)]
struct Kept {
    id: Box<[u8]>,
    moments: Moments,
    /// The values forwarded last, one per aggregation (NaN: none was).
    sent: Vec<f64>,
    expires: UnixNanos,
}

/// A correction waiting for the end of the shard's flush.
#[derive(Debug)]
struct Resend {
    key: TargetKey,
    version: u32,
    values: Vec<f64>,
    prev: Vec<f64>,
}

/// Where a flushed window of a resend-enabled element goes, and until when it is kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResendWindow<'a> {
    pub(crate) shard: u32,
    pub(crate) metric_type: MetricType,
    pub(crate) id: &'a [u8],
    pub(crate) elem_policy: PolicyIdx,
    /// The element's aggregations as its key names them, and resolved.
    pub(crate) elem_aggs: AggTypes,
    pub(crate) aggs: AggTypes,
    pub(crate) start: UnixNanos,
    pub(crate) target: RollupRef,
    pub(crate) policy: StoragePolicy,
    /// The forward count of the values (the element's, plus one).
    pub(crate) forwarded: u8,
    /// The forwarded window's timestamp.
    pub(crate) time: UnixNanos,
    pub(crate) expires: UnixNanos,
}

/// What a core's resend-enabled rollups forwarded, by source window, and the versions each
/// (source shard, target window) has sent.
#[derive(Debug)]
pub(crate) struct ResendLog {
    shard_of: ShardOf,
    hasher: DefaultHashBuilder,
    kept: HashMap<SourceKey, Kept>,
    versions: HashMap<TargetKey, (u32, UnixNanos)>,
    pending: Vec<Resend>,
    /// When the expired windows were last forgotten (at most once a second: a flush runs
    /// per shard).
    swept: UnixNanos,
}

impl ResendLog {
    pub(crate) fn new(num_shards: u32) -> Self {
        Self {
            shard_of: ShardOf::new(num_shards),
            hasher: DefaultHashBuilder::default(),
            kept: HashMap::new(),
            versions: HashMap::new(),
            pending: Vec::new(),
            swept: UnixNanos::MIN,
        }
    }

    /// Forwards the flushed window `w`: the first time through `outbox` (version 0), and kept;
    /// again (opened by a late value), merged with what was kept, as a correction. Returns the
    /// values forwarded or corrected.
    pub(crate) fn flush(&mut self, w: ResendWindow<'_>, window: &mut WindowMut<'_>, outbox: &mut RollupOutbox) -> u64 {
        let hash = self.hasher.hash_one((w.metric_type, w.id));
        let source = (w.shard, hash, w.elem_policy, w.elem_aggs, w.start);
        let key = TargetKey {
            shard: w.shard,
            target: w.target,
            policy: w.policy,
            forwarded: w.forwarded,
            metric_type: w.metric_type,
            time: w.time,
        };
        let Some(moments) = window.moments() else {
            // Neither mergeable nor replaceable: forwarded once, as without resend.
            window.prepare_reads();
            return forward_first(w, |agg| window.value_of(agg), outbox);
        };
        match self.kept.get_mut(&source).filter(|k| *k.id == *w.id) {
            None => {
                let mut sent = Vec::with_capacity(w.aggs.len() as usize);
                let n = forward_first(w, |agg| moments.value_of(agg), outbox);
                sent.extend(w.aggs.iter().map(|agg| finite(moments.value_of(agg))));
                self.kept.insert(source, Kept { id: w.id.into(), moments, sent, expires: w.expires });
                self.versions.entry(key).or_insert((0, w.expires));
                n
            }
            Some(kept) => {
                kept.moments.merge(&moments);
                let (mut values, mut prev, mut added) = (Vec::new(), Vec::new(), Vec::new());
                for (i, agg) in w.aggs.iter().enumerate() {
                    let Some(v) = Some(kept.moments.value_of(agg)).filter(|v| v.is_finite()) else {
                        continue;
                    };
                    match kept.sent.get(i).copied().filter(|p| !p.is_nan()) {
                        Some(p) => {
                            values.push(v);
                            prev.push(p);
                        }
                        None => added.push(v),
                    }
                    if let Some(s) = kept.sent.get_mut(i) {
                        *s = v;
                    }
                }
                values.extend(added);
                if values.is_empty() {
                    return 0;
                }
                let version = self.versions.entry(key).or_insert((0, w.expires));
                version.0 += 1;
                let n = values.len() as u64;
                self.pending.push(Resend { key, version: version.0, values, prev });
                n
            }
        }
    }

    /// Seals the corrections pending into `sealed` (after the samples of the shard's earlier
    /// flushes) and forgets the windows no value may reach any more (`expires <= now`).
    pub(crate) fn seal(&mut self, now: UnixNanos, targets: &mut RollupTargets, sealed: &mut SampleBatch) {
        for r in self.pending.drain(..) {
            let k = r.key;
            let Some((target, shard, hash)) = targets.routed(k.target, k.metric_type, &self.shard_of) else {
                continue;
            };
            let elem = ElemSpec {
                aggs: target.aggs,
                policy: k.policy,
                transforms: target.transforms,
                rollup: NO_ROLLUP,
                forwarded: k.forwarded,
            };
            let spec = sealed.add_spec(&[elem]);
            let from = ForwardedFrom { source: k.shard, version: r.version, times: k.forwarded };
            sealed.push_resent(shard, hash, target.id, k.metric_type, k.time, (&r.values, &r.prev), spec, from);
            sealed.mark_last_resend();
        }
        if !self.kept.is_empty() && now.saturating_sub(self.swept) >= 1_000_000_000 {
            self.swept = now;
            self.kept.retain(|_, k| k.expires > now);
            self.versions.retain(|_, (_, expires)| *expires > now);
        }
    }

    /// The targets of the windows kept (not to be pruned while kept).
    pub(crate) fn targets(&self) -> impl Iterator<Item = RollupRef> + '_ {
        self.versions.keys().map(|k| k.target)
    }

    /// Source windows kept for corrections.
    pub(crate) fn len(&self) -> usize {
        self.kept.len()
    }
}

fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { f64::NAN }
}

/// Forwards a window's first flush through the outbox, as a rollup without resend does.
fn forward_first(
    w: ResendWindow<'_>,
    value_of: impl Fn(crate::aggregation::AggType) -> f64,
    outbox: &mut RollupOutbox,
) -> u64 {
    let mut n = 0;
    for agg in w.aggs.iter() {
        let v = value_of(agg);
        if v.is_finite() {
            outbox.add(w.shard, w.target, w.policy, w.forwarded, w.metric_type, w.time, v);
            n += 1;
        }
    }
    n
}
