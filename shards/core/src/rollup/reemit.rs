//! [`Reemits`]: on the core that owns a rolled-up series, the forwarded windows a
//! resend-enabled source wrote to, kept once emitted until a correction can no longer come,
//! and emitted again with the corrected value when one does. Owned by that core's
//! `CoreAggregator`: `watch` and `correct` run in its apply, `emitted` and `emit_corrected`
//! in its flush.
//!
//! A correction (a resent forwarded sample: values and the `prev_values` they replace) that
//! comes after its window was emitted updates the kept window (sum, sum of squares and count
//! swap the old contribution for the new one; min and max take the new value in beside the
//! old, as M3's `UpdatePrevious` does) and the next flush of the shard emits the window again,
//! once per correction. Only windows of resend-enabled sources are kept; none allocates
//! otherwise.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashMap};

use crate::aggregation::{AggTypes, MetricType};
use crate::batch::ForwardedFrom;
use crate::flush_collector::FlushCollector;
use crate::policy::StoragePolicy;
use crate::spec::PolicyIdx;
use crate::time::UnixNanos;
use crate::window::{Moments, WindowMut};

/// (shard, hash of the series, element policy, element aggregations, window start).
type Key = (u32, u64, PolicyIdx, AggTypes, UnixNanos);

/// An emitted window kept for corrections.
#[derive(Debug)]
struct Kept {
    id: Box<[u8]>,
    metric_type: MetricType,
    /// The aggregations emitted (resolved), whether with suffixes, and how.
    aggs: AggTypes,
    suffix: bool,
    timed: bool,
    policy: StoragePolicy,
    time: UnixNanos,
    moments: Moments,
    /// The (source shard, version) pairs taken in since the window was emitted.
    taken: Vec<(u32, u32)>,
    /// Corrected since it was last emitted.
    dirty: bool,
    expires: UnixNanos,
}

/// One emitted forwarded window, as the flush describes it to [`Reemits::emitted`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct EmittedWindow<'a> {
    pub(crate) shard: u32,
    pub(crate) metric_type: MetricType,
    pub(crate) id: &'a [u8],
    pub(crate) elem_policy: PolicyIdx,
    pub(crate) elem_aggs: AggTypes,
    pub(crate) start: UnixNanos,
    pub(crate) aggs: AggTypes,
    pub(crate) suffix: bool,
    pub(crate) timed: bool,
    pub(crate) policy: StoragePolicy,
    pub(crate) time: UnixNanos,
}

/// The forwarded windows of resend-enabled sources: watched while open, kept once emitted.
#[derive(Debug)]
pub(crate) struct Reemits {
    hasher: DefaultHashBuilder,
    /// Open windows a resend-enabled source wrote to, and until when a correction may come.
    watched: HashMap<Key, UnixNanos>,
    kept: HashMap<Key, Kept>,
    /// Kept windows corrected since they were last emitted.
    dirty: usize,
    /// When the expired windows were last forgotten.
    swept: UnixNanos,
}

/// How often the windows no correction may reach are forgotten (a flush runs per shard).
const SWEEP_EVERY: UnixNanos = 1_000_000_000;

impl Default for Reemits {
    fn default() -> Self {
        let (dirty, swept) = (0, UnixNanos::MIN);
        Self { hasher: DefaultHashBuilder::default(), watched: HashMap::new(), kept: HashMap::new(), dirty, swept }
    }
}

impl Reemits {
    fn key(
        &self,
        shard: u32,
        metric_type: MetricType,
        id: &[u8],
        policy: PolicyIdx,
        aggs: AggTypes,
        start: UnixNanos,
    ) -> Key {
        (shard, self.hasher.hash_one((metric_type, id)), policy, aggs, start)
    }

    /// Notes that a resend-enabled source wrote to an open window (kept once emitted).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn watch(
        &mut self,
        shard: u32,
        metric_type: MetricType,
        id: &[u8],
        policy: PolicyIdx,
        aggs: AggTypes,
        start: UnixNanos,
        expires: UnixNanos,
    ) {
        let key = self.key(shard, metric_type, id, policy, aggs, start);
        self.watched.insert(key, expires);
    }

    /// Whether any window is watched (the flush asks nothing more when none is).
    #[inline]
    pub(crate) fn watching(&self) -> bool {
        !self.watched.is_empty()
    }

    /// The flush emitted window `w`: kept if watched (and its values can be corrected).
    pub(crate) fn emitted(&mut self, w: EmittedWindow<'_>, window: &WindowMut<'_>) {
        let key = self.key(w.shard, w.metric_type, w.id, w.elem_policy, w.elem_aggs, w.start);
        let Some(expires) = self.watched.remove(&key) else {
            return;
        };
        let Some(moments) = window.moments() else {
            return;
        };
        let kept = Kept {
            id: w.id.into(),
            metric_type: w.metric_type,
            aggs: w.aggs,
            suffix: w.suffix,
            timed: w.timed,
            policy: w.policy,
            time: w.time,
            moments,
            taken: Vec::new(),
            dirty: false,
            expires,
        };
        self.kept.insert(key, kept);
    }

    /// Applies a correction to an emitted window: `None` if the window is not kept (too late),
    /// `Some(false)` if this (source shard, version) was already taken in.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn correct(
        &mut self,
        (shard, metric_type, id): (u32, MetricType, &[u8]),
        policy: PolicyIdx,
        aggs: AggTypes,
        start: UnixNanos,
        from: ForwardedFrom,
        (values, prev): (&[f64], &[f64]),
        time: UnixNanos,
    ) -> Option<bool> {
        // A first flush (version 0) after its window was emitted is late, not a correction.
        if self.kept.is_empty() || from.version == 0 {
            return None;
        }
        let key = self.key(shard, metric_type, id, policy, aggs, start);
        let kept = self.kept.get_mut(&key).filter(|k| *k.id == *id)?;
        if kept.taken.contains(&(from.source, from.version)) {
            return Some(false);
        }
        kept.taken.push((from.source, from.version));
        for (i, v) in values.iter().enumerate() {
            kept.moments.update(prev.get(i).copied(), *v, time);
        }
        if !kept.dirty {
            kept.dirty = true;
            self.dirty += 1;
        }
        Some(true)
    }

    /// Emits again the corrected windows of `shard`, and forgets the windows no correction
    /// may reach any more (`expires <= now`). Returns the values emitted and those discarded
    /// as NaN.
    pub(crate) fn emit_corrected(
        &mut self,
        shard: u32,
        now: UnixNanos,
        discard_nan: bool,
        out: &mut FlushCollector,
    ) -> (u64, u64) {
        let (mut emitted, mut nan) = (0, 0);
        if self.kept.is_empty() && self.watched.is_empty() {
            return (0, 0);
        }
        let dirty = if self.dirty == 0 { None } else { Some(self.kept.iter_mut()) };
        for (_, k) in dirty.into_iter().flatten().filter(|(key, k)| key.0 == shard && k.dirty) {
            k.dirty = false;
            self.dirty -= 1;
            let (batch, _) = out.batch(k.aggs.len() as usize);
            let id = batch.intern_id(&k.id);
            for agg in k.aggs.iter() {
                let value = k.moments.value_of(agg);
                if !value.is_finite() && discard_nan {
                    nan += 1;
                    continue;
                }
                emitted += 1;
                batch.push(id, k.metric_type, agg, k.suffix, k.timed, k.policy, k.time, value);
            }
        }
        if now.saturating_sub(self.swept) >= SWEEP_EVERY {
            self.swept = now;
            let dirty = &mut self.dirty;
            self.kept.retain(|_, k| {
                let keep = k.expires > now;
                if !keep && k.dirty {
                    *dirty -= 1;
                }
                keep
            });
            self.watched.retain(|_, expires| *expires > now);
        }
        (emitted, nan)
    }

    /// Emitted windows kept for corrections.
    pub(crate) fn len(&self) -> usize {
        self.kept.len()
    }
}
