//! [`ForwardedWindows`]: on the core that owns a rolled-up series, the (source shard,
//! version) pairs each of its open forwarded windows has taken in. Owned by that core's
//! `CoreAggregator`; `admit` runs in its apply, `forget_due` at each flush round.
//!
//! #[PerformanceCriticalPath]: `admit` runs per forwarded sample.

use std::hash::{Hash, Hasher};

use hashbrown::HashMap;

use crate::aggregation::AggTypes;
use crate::batch::ForwardedFrom;
use crate::pipeline::ForwardedSources;
use crate::spec::PolicyIdx;
use crate::time::UnixNanos;

/// One forwarded window of one element of a rolled-up series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WindowKey {
    shard: u32,
    hash: u64,
    policy: PolicyIdx,
    aggs: AggTypes,
    start: UnixNanos,
}

/// Hashed as one word: `hash` is already the series' hash, the rest only tells its windows
/// and elements apart (equal keys hash equally, as every field goes in).
impl Hash for WindowKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (start, rest) = (self.start as u64, u64::from(self.shard) << 48 | u64::from(self.policy) << 32);
        state.write_u64(self.hash ^ start.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (rest | self.aggs.to_m3_id()));
    }
}

/// The sources one window has taken in. Almost every source is a shard below 64 sending
/// version 0 (a value's first flush): those are bits of `first`; any other pair goes to a list
/// in the arena of [`ForwardedWindows`].
#[derive(Debug, Clone, Copy, Default)]
struct Sources {
    /// Bit `s`: version 0 of source shard `s` was taken in.
    first: u64,
    /// The window's list in `ForwardedWindows::lists`, + 1 (0: none).
    list: u32,
}

/// The (source shard, version) pairs each open forwarded window of a core has taken in.
/// Lists of the rare pairs beyond `Sources::first` are reused from one window to the next,
/// and the table keeps its capacity, so a steady flow of windows allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct ForwardedWindows {
    open: HashMap<WindowKey, Sources>,
    lists: Vec<ForwardedSources>,
    /// Lists (indexes into `lists`) of forgotten windows, cleared, for the next ones.
    free_lists: Vec<u32>,
}

impl ForwardedWindows {
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
        let key = WindowKey { shard, hash, policy, aggs, start };
        let sources = self.open.entry(key).or_default();
        if from.version == 0 && from.source < u64::BITS {
            let bit = 1u64 << from.source;
            let fresh = sources.first & bit == 0;
            sources.first |= bit;
            return fresh;
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
        self.lists[sources.list as usize - 1].admit(from.source, from.version)
    }

    /// Forgets the windows a flush has reached (`due(policy, start)`): no value is admitted to
    /// them any more.
    pub(crate) fn forget_due(&mut self, mut due: impl FnMut(PolicyIdx, UnixNanos) -> bool) {
        let (lists, free_lists) = (&mut self.lists, &mut self.free_lists);
        self.open.retain(|k, sources| {
            if !due(k.policy, k.start) {
                return true;
            }
            if let Some(list) = sources.list.checked_sub(1) {
                lists[list as usize].clear();
                free_lists.push(list);
            }
            false
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.open.len()
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
        w.forget_due(|_, start| start == 10);
        assert_eq!(w.len(), 1);
        assert!(admit(&mut w, 10, from(64, 0)), "a forgotten window starts afresh, its list reused cleared");
        assert!(!admit(&mut w, 20, from(64, 0)));
        assert_eq!(w.lists.len(), 2);
    }
}
