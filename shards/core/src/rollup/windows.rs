//! [`ForwardedWindows`]: on the core that owns a rolled-up series, the (source shard,
//! version) pairs each of its open forwarded windows has taken in. Owned by that core's
//! `CoreAggregator`; `admit` runs in its apply, `forget_due` at each flush round.
//!
//! #[PerformanceCriticalPath]: `admit` runs per forwarded sample.

use crate::aggregation::AggTypes;
use crate::batch::ForwardedFrom;
use crate::pipeline::ForwardedSources;
use crate::spec::PolicyIdx;
use crate::time::UnixNanos;

/// One forwarded window of one element of a rolled-up series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct WindowKey {
    shard: u32,
    hash: u64,
    policy: PolicyIdx,
    aggs: AggTypes,
    start: UnixNanos,
}

/// The sources one window has taken in. Almost every source is a shard below 64 sending
/// version 0 (a value's first flush): those are bits of `first`; any other pair goes to a list
/// in the arena of [`ForwardedWindows`]. Never both zero once the window has taken a source
/// in: a slot whose sources are empty is free.
#[derive(Debug, Clone, Copy, Default)]
struct Sources {
    /// Bit `s`: version 0 of source shard `s` was taken in.
    first: u64,
    /// The window's list in `ForwardedWindows::lists`, + 1 (0: none).
    list: u32,
}

impl Sources {
    fn is_empty(&self) -> bool {
        self.first == 0 && self.list == 0
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    key: WindowKey,
    sources: Sources,
}

/// The (source shard, version) pairs each open forwarded window of a core has taken in.
///
/// An open-addressing table (linear probing, at most half full) whose home slot depends on
/// the series alone (its shard and hash), so that `apply` can prefetch it from a sample a few
/// values ahead, before it knows the element and window; a series' few open windows share
/// one probe run. Lists of the rare pairs beyond `Sources::first` are reused from one window
/// to the next, and the table keeps its size, so a steady flow of windows allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct ForwardedWindows {
    /// A power of two long, or empty.
    slots: Vec<Slot>,
    len: usize,
    lists: Vec<ForwardedSources>,
    /// Lists (indexes into `lists`) of forgotten windows, cleared, for the next ones.
    free_lists: Vec<u32>,
    /// The windows `forget_due` keeps, while it rebuilds the table.
    kept: Vec<Slot>,
    /// See [`Self::fresh`].
    fresh: Vec<bool>,
}

impl ForwardedWindows {
    /// The home slot of the windows of series (`shard`, `hash`).
    #[inline]
    fn home(&self, shard: u32, hash: u64) -> usize {
        let mixed = (hash ^ u64::from(shard)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed >> 32) as usize & (self.slots.len().wrapping_sub(1))
    }

    /// Asks the CPU to load the home slot of the windows of series (`shard`, `hash`).
    #[inline]
    pub(crate) fn prefetch(&self, shard: u32, hash: u64) {
        if !self.slots.is_empty() {
            crate::paged::prefetch_address(self.slots.as_ptr().wrapping_add(self.home(shard, hash)).cast());
        }
    }

    /// Records `from` for the window at `start` of an element; `false` if it was already taken
    /// in (the values must then be dropped).
    #[inline]
    pub(crate) fn admit(
        &mut self,
        shard: u32,
        hash: u64,
        policy: PolicyIdx,
        aggs: AggTypes,
        start: UnixNanos,
        from: ForwardedFrom,
    ) -> bool {
        let i = self.slot_of(WindowKey { shard, hash, policy, aggs, start });
        self.admit_at(i, from.source, from.version)
    }

    /// Records version 0 of every source shard of `runs` (a gathered sample's) for the window
    /// at `start` of an element; returns how many were fresh, and which in [`Self::fresh`].
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn admit_gathered(
        &mut self,
        shard: u32,
        hash: u64,
        policy: PolicyIdx,
        aggs: AggTypes,
        start: UnixNanos,
        runs: &[(u32, u32)],
    ) -> usize {
        let i = self.slot_of(WindowKey { shard, hash, policy, aggs, start });
        self.fresh.clear();
        let mut fresh = 0;
        for &(source, _) in runs {
            let admitted = self.admit_at(i, source, 0);
            fresh += usize::from(admitted);
            self.fresh.push(admitted);
        }
        fresh
    }

    /// By run of the last [`Self::admit_gathered`]: whether its source was fresh.
    pub(crate) fn fresh(&self) -> &[bool] {
        &self.fresh
    }

    /// The slot of window `key`, taken if it has none yet.
    #[inline]
    fn slot_of(&mut self, key: WindowKey) -> usize {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(key.shard, key.hash);
        while !self.slots[i].sources.is_empty() && self.slots[i].key != key {
            i = (i + 1) & mask;
        }
        if self.slots[i].sources.is_empty() {
            self.slots[i].key = key;
        }
        i
    }

    /// Records (`source`, `version`) in slot `i` (its window's, or free for it); `false` if it
    /// was already taken in.
    #[inline]
    fn admit_at(&mut self, i: usize, source: u32, version: u32) -> bool {
        let slot = &mut self.slots[i];
        let sources = &mut slot.sources;
        if version == 0 && source < u64::BITS {
            let bit = 1u64 << source;
            let fresh = sources.first & bit == 0;
            if sources.is_empty() {
                self.len += 1;
            }
            sources.first |= bit;
            return fresh;
        }
        if sources.is_empty() {
            self.len += 1;
        }
        if sources.list == 0 {
            let list = match self.free_lists.pop() {
                Some(list) => list,
                None => {
                    self.lists.push(ForwardedSources::default());
                    self.lists.len() as u32 - 1
                }
            };
            sources.list = list + 1;
        }
        self.lists[sources.list as usize - 1].admit(source, version)
    }

    /// Doubles the table (from 1,024 slots), placing every window again.
    #[cold]
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(1024);
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); size]);
        self.len = 0;
        for slot in old.into_iter().filter(|s| !s.sources.is_empty()) {
            self.place(slot);
        }
    }

    /// Puts `slot` in the first free slot of its probe run (the table has room).
    fn place(&mut self, slot: Slot) {
        let mask = self.slots.len() - 1;
        let mut i = self.home(slot.key.shard, slot.key.hash);
        while !self.slots[i].sources.is_empty() {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
        self.len += 1;
    }

    /// Forgets the windows a flush or discard has reached (`due(shard, policy, start)`): no
    /// value is admitted to them any more. The table is rebuilt from the windows kept (a probe
    /// run must not have holes).
    pub(crate) fn forget_due(&mut self, mut due: impl FnMut(u32, PolicyIdx, UnixNanos) -> bool) {
        if self.len == 0 {
            return;
        }
        self.kept.clear();
        for slot in self.slots.iter_mut().filter(|s| !s.sources.is_empty()) {
            if due(slot.key.shard, slot.key.policy, slot.key.start) {
                if let Some(list) = slot.sources.list.checked_sub(1) {
                    self.lists[list as usize].clear();
                    self.free_lists.push(list);
                }
            } else {
                self.kept.push(*slot);
            }
            *slot = Slot::default();
        }
        self.len = 0;
        for i in 0..self.kept.len() {
            let slot = self.kept[i];
            self.place(slot);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(source: u32, version: u32) -> ForwardedFrom {
        ForwardedFrom { source, version, times: 1 }
    }

    #[test]
    fn each_source_and_version_is_admitted_once_per_window() {
        let mut w = ForwardedWindows::default();
        let admit = |w: &mut ForwardedWindows, start, f| w.admit(3, 42, 0, AggTypes::DEFAULT, start, f);
        for f in [from(0, 0), from(63, 0), from(64, 0), from(5, 1), from(70_000, 9)] {
            assert!(admit(&mut w, 10, f), "{f:?} first");
            assert!(!admit(&mut w, 10, f), "{f:?} again");
            assert!(admit(&mut w, 20, f), "{f:?} in another window");
        }
        assert_eq!(w.len(), 2);
        w.forget_due(|_, _, start| start == 10);
        assert_eq!(w.len(), 1);
        assert!(admit(&mut w, 10, from(64, 0)), "a forgotten window starts afresh, its list reused cleared");
        assert!(!admit(&mut w, 20, from(64, 0)));
        assert_eq!(w.lists.len(), 2);
    }

    #[test]
    fn windows_survive_growth_and_forgetting_others() {
        let mut w = ForwardedWindows::default();
        // Many series, two windows each, all with the same home slot's neighbours mixed in.
        for series in 0..3000u64 {
            for start in [10, 20] {
                assert!(w.admit(1, series, 0, AggTypes::DEFAULT, start, from(2, 0)));
            }
        }
        assert_eq!(w.len(), 6000);
        w.forget_due(|_, _, start| start == 10);
        assert_eq!(w.len(), 3000);
        for series in 0..3000u64 {
            assert!(!w.admit(1, series, 0, AggTypes::DEFAULT, 20, from(2, 0)), "series {series} kept its window");
            assert!(w.admit(1, series, 0, AggTypes::DEFAULT, 10, from(2, 0)), "series {series} forgot the other");
        }
    }
}
