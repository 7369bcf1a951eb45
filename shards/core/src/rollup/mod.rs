//! Rollups on the core that owns the source series: the rollup targets its elements name
//! ([`RollupTargets`]), the values a flush forwards to them ([`RollupOutbox`], `outbox.rs`),
//! and on the core that owns a rolled-up series, the sources each forwarded window has taken
//! in ([`ForwardedWindows`], `windows.rs`).
//!
//! All three belong to one core's `CoreAggregator` and are touched only by that core. The
//! outbox is filled by the flushes of a round, gathered per (target, window) across source
//! shards, and sealed when the core's flush task takes it into a
//! [`SampleBatch`](crate::batch::SampleBatch) of forwarded samples, which that task routes
//! like any batch (applied here, or handed off to the core owning the rolled-up series). In
//! steady state none of them allocates: their tables and lists keep their capacity from one
//! flush to the next.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::aggregation::{AggTypes, MetricType};
use crate::batch::{NO_ROLLUP, RollupRef};
use crate::murmur3::ShardOf;
use crate::transform::TransformChain;

pub(crate) mod nested;
mod outbox;
mod reemit;
mod resend;
mod windows;

pub(crate) use outbox::RollupOutbox;
pub(crate) use reemit::{EmittedWindow, Reemits};
pub(crate) use resend::{ResendLog, ResendWindow};
pub(crate) use windows::ForwardedWindows;

/// Distinct rollup targets one core keeps at a time: metadata from the network must not grow
/// the table without bound (a metric naming one more is refused as `metadata_rejected`).
/// Targets no spec names any more are pruned ([`RollupTargets::retain`]) and their slots reused.
pub(crate) const MAX_ROLLUP_TARGETS: usize = 1 << 20;

/// Where an element's flushed values go: the rolled-up series and how it aggregates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RollupTarget<'a> {
    pub(crate) id: &'a [u8],
    pub(crate) aggs: AggTypes,
    /// The transformations after the rollup op: the rolled-up series runs them at its flush.
    pub(crate) transforms: TransformChain,
    /// M3's `resend_enabled`: a source window flushed again (a late value) forwards its
    /// corrected values with the ones they replace (see `resend.rs`).
    pub(crate) resend: bool,
    /// The target the rolled-up series rolls up into next (nested rollups), or `NO_ROLLUP`.
    pub(crate) next: RollupRef,
}

/// A target as the table stores it: its id in the table's arena, and where its forwarded
/// samples go (computed at the first, for the metric type of the last).
#[derive(Debug, Clone, Copy)]
struct Stored {
    id_start: u32,
    id_len: u32,
    aggs: AggTypes,
    transforms: TransformChain,
    resend: bool,
    next: RollupRef,
    /// False once pruned (the slot waits in `RollupTargets::free`).
    live: bool,
    /// The metric type `shard` and `hash` are for, + 1 (0: not computed yet).
    routed_type: u8,
    shard: u32,
    hash: u64,
}

/// The rollup targets of a core, interned: an element key names one by its [`RollupRef`].
/// Ids lie back to back in one arena, so that reading a target (at a flush, or to compare a
/// value's metadata with its series') follows no pointer of its own.
#[derive(Debug, Default)]
pub(crate) struct RollupTargets {
    /// By `RollupRef − 1`.
    targets: Vec<Stored>,
    ids: Vec<u8>,
    /// Pruned slots, for the next targets.
    free: Vec<RollupRef>,
    /// Bytes of `ids` that no live target uses (compacted when they pass half).
    dead_bytes: usize,
    /// Every reference, by the hash of its target.
    index: HashTable<RollupRef>,
    hasher: DefaultHashBuilder,
}

impl RollupTargets {
    /// The reference of `target`, added on first sight; `None` once the table is full (or
    /// its id arena would pass 4 GiB).
    pub(crate) fn intern(&mut self, id: &[u8], aggs: AggTypes, transforms: TransformChain) -> Option<RollupRef> {
        self.intern_with(id, aggs, transforms, false, NO_ROLLUP)
    }

    /// [`RollupTargets::intern`], with M3's `resend_enabled` and the target the rolled-up
    /// series rolls up into next (`NO_ROLLUP`: none).
    pub(crate) fn intern_with(
        &mut self,
        id: &[u8],
        aggs: AggTypes,
        transforms: TransformChain,
        resend: bool,
        next: RollupRef,
    ) -> Option<RollupRef> {
        let wanted = RollupTarget { id, aggs, transforms, resend, next };
        let hash = self.hasher.hash_one((id, aggs, transforms));
        let (targets, ids) = (&self.targets, &self.ids);
        if let Some(&r) = self.index.find(hash, |&r| view(targets, ids, r) == Some(wanted)) {
            return Some(r);
        }
        if self.len() >= MAX_ROLLUP_TARGETS || self.ids.len() + id.len() > u32::MAX as usize {
            return None;
        }
        let id_start = self.ids.len() as u32;
        let (id_len, live) = (id.len() as u32, true);
        let stored =
            Stored { id_start, id_len, aggs, transforms, resend, next, live, routed_type: 0, shard: 0, hash: 0 };
        self.ids.extend_from_slice(id);
        let r = match self.free.pop() {
            Some(r) => {
                self.targets[r as usize - 1] = stored;
                r
            }
            None => {
                self.targets.push(stored);
                self.targets.len() as RollupRef
            }
        };
        let (targets, ids, hasher) = (&self.targets, &self.ids, &self.hasher);
        self.index.insert_unique(hash, r, |&r| {
            view(targets, ids, r).map_or(0, |t| hasher.hash_one((t.id, t.aggs, t.transforms)))
        });
        Some(r)
    }

    /// Whether target `r` is resend-enabled.
    #[inline]
    pub(crate) fn resends(&self, r: RollupRef) -> bool {
        r.checked_sub(1).and_then(|i| self.targets.get(i as usize)).is_some_and(|t| t.resend)
    }

    #[inline]
    pub(crate) fn get(&self, r: RollupRef) -> Option<RollupTarget<'_>> {
        view(&self.targets, &self.ids, r)
    }

    /// Target `r` with the shard and map hash of its series of `metric_type`.
    #[inline]
    pub(crate) fn routed(
        &mut self,
        r: RollupRef,
        metric_type: MetricType,
        shard_of: &ShardOf,
    ) -> Option<(RollupTarget<'_>, u32, u64)> {
        let stored = self.targets.get_mut(r.checked_sub(1)? as usize).filter(|t| t.live)?;
        let id = self.ids.get(stored.id_start as usize..stored.id_start as usize + stored.id_len as usize)?;
        let tag = metric_type as u8 + 1;
        if stored.routed_type != tag {
            (stored.shard, stored.hash) = shard_of.shard_and_hash(metric_type, id);
            stored.routed_type = tag;
        }
        let (aggs, transforms, resend, next) = (stored.aggs, stored.transforms, stored.resend, stored.next);
        let target = RollupTarget { id, aggs, transforms, resend, next };
        Some((target, stored.shard, stored.hash))
    }

    /// Asks the CPU to load target `r` (its entry, and its id once the entry is in: call it
    /// for a target again a few steps later with `id`).
    #[inline]
    pub(crate) fn prefetch(&self, r: RollupRef, id: bool) {
        let Some(i) = r.checked_sub(1) else {
            return;
        };
        match self.targets.get(i as usize) {
            Some(t) if id => crate::paged::prefetch_address(self.ids.as_ptr().wrapping_add(t.id_start as usize)),
            Some(_) => crate::paged::prefetch_address(self.targets.as_ptr().wrapping_add(i as usize).cast()),
            None => {}
        }
    }

    /// Live targets.
    pub(crate) fn len(&self) -> usize {
        self.targets.len() - self.free.len()
    }

    /// Slots, live or pruned: every reference is at most `slots()`.
    pub(crate) fn slots(&self) -> usize {
        self.targets.len()
    }

    /// Prunes the targets `keep` refuses (no spec names them any more); their references may
    /// be given to new targets. Returns how many were pruned.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(RollupRef) -> bool) -> usize {
        let mut pruned = 0;
        for i in 0..self.targets.len() {
            let r = i as RollupRef + 1;
            let Some(t) = view(&self.targets, &self.ids, r) else {
                continue;
            };
            if keep(r) {
                continue;
            }
            let hash = self.hasher.hash_one((t.id, t.aggs, t.transforms));
            self.dead_bytes += t.id.len();
            if let Ok(entry) = self.index.find_entry(hash, |&x| x == r) {
                entry.remove();
            }
            self.targets[i].live = false;
            self.free.push(r);
            pruned += 1;
        }
        if self.dead_bytes * 2 > self.ids.len() {
            self.compact();
        }
        pruned
    }

    /// Rewrites the id arena with the live targets' ids only.
    #[cold]
    fn compact(&mut self) {
        let mut ids = Vec::with_capacity(self.ids.len() - self.dead_bytes);
        for t in self.targets.iter_mut().filter(|t| t.live) {
            let start = t.id_start as usize;
            let new_start = ids.len() as u32;
            ids.extend_from_slice(&self.ids[start..start + t.id_len as usize]);
            t.id_start = new_start;
        }
        self.ids = ids;
        self.dead_bytes = 0;
    }
}

#[inline]
fn view<'a>(targets: &[Stored], ids: &'a [u8], r: RollupRef) -> Option<RollupTarget<'a>> {
    let t = targets.get(r.checked_sub(1)? as usize).filter(|t| t.live)?;
    let id = ids.get(t.id_start as usize..t.id_start as usize + t.id_len as usize)?;
    Some(RollupTarget { id, aggs: t.aggs, transforms: t.transforms, resend: t.resend, next: t.next })
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
        let last = AggTypes::of(&[AggType::Last]);
        assert_ne!(targets.intern(b"by.route;route=/a", last, TransformChain::NONE), Some(a));
        assert_eq!(targets.len(), 3);
        assert_eq!(targets.get(b).unwrap().id, b"by.route;route=/b");
        assert_eq!(targets.get(0), None);
    }

    #[test]
    fn pruned_targets_are_forgotten_and_their_slots_reused() {
        let mut targets = RollupTargets::default();
        let sum = AggTypes::of(&[AggType::Sum]);
        let intern = |t: &mut RollupTargets, id: &str| t.intern(id.as_bytes(), sum, TransformChain::NONE).unwrap();
        let refs: Vec<_> = (0..8).map(|i| intern(&mut targets, &format!("t{i}"))).collect();
        assert_eq!(targets.retain(|r| r == refs[3]), 7);
        assert_eq!(targets.len(), 1);
        assert_eq!(targets.get(refs[0]), None);
        // The arena was compacted; the kept target reads the same.
        assert_eq!(targets.get(refs[3]).unwrap().id, b"t3");
        assert_eq!(intern(&mut targets, "t3"), refs[3]);
        let again = intern(&mut targets, "t0");
        assert!(refs.contains(&again), "a pruned slot is reused");
        assert_eq!(targets.slots(), 8);
        assert_eq!(targets.get(again).unwrap().id, b"t0");
    }
}
