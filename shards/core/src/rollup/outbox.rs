//! [`RollupOutbox`]: the values a core's flushes forward to rollup targets, gathered per
//! (target, window) across the source shards flushed until the flush task takes them. Owned
//! by one core's `CoreAggregator`, filled by its flushes, sealed when taken.
//!
//! #[PerformanceCriticalPath]: `add` runs per rolled-up value a flush forwards.

use super::RollupTargets;
use super::nested::{NestedGroup, seal_nested};
use crate::aggregation::MetricType;
use crate::batch::{ElemSpec, NO_ROLLUP, RollupRef, SampleBatch, SpecRef};
use crate::murmur3::ShardOf;
use crate::policy::StoragePolicy;
use crate::time::UnixNanos;

/// The window a flushed value belongs to, whatever its target: a round flushes a few.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WindowKey {
    policy: StoragePolicy,
    /// The forward count of the value (the source element's, plus one).
    forwarded: u8,
    metric_type: MetricType,
    /// The source window's timestamp.
    time: UnixNanos,
}

/// One forwarded window of a rolled-up series: its target and its window in
/// `RollupOutbox::windows`.
#[derive(Debug, Clone, Copy)]
struct Group {
    target: RollupRef,
    window: u32,
    /// The next group of the same target, + 1 (0: none).
    next_of_target: u32,
}

/// One value the flushes added: its group in `RollupOutbox::groups` and its source shard.
#[derive(Debug, Clone, Copy)]
struct Entry {
    value: f64,
    group: u32,
    source: u32,
}

/// How many groups ahead `seal` asks for a group's target.
const SEAL_TARGETS_AHEAD: usize = 8;

/// The values the flushes of one core forward, gathered per (rollup target, window) across the
/// source shards flushed since the last seal: one forwarded sample per key carries the values
/// of every source series of those shards, in one run per source shard, so that the receiver
/// takes a whole round's values for a window in one sample while still admitting each
/// (source shard, version) once, as M3's forwarded writer and de-duplication do per shard.
///
/// A target's groups are found from its reference (targets are numbered densely), not by
/// hashing the key; values lie in one list in the order they came, put in group order at the
/// seal by counting (no pointer chase per value). Every list keeps its capacity from one seal
/// to the next, so a steady flush allocates nothing.
#[derive(Debug)]
pub(crate) struct RollupOutbox {
    shard_of: ShardOf,
    /// The windows of the values since the last seal, and the last one found.
    windows: Vec<WindowKey>,
    last_window: Option<(WindowKey, u32)>,
    /// By `RollupRef − 1`: the target's latest group in `groups` + 1 (0: none) in the low
    /// half, its window in the high half.
    latest_group: Vec<u64>,
    /// In the order their keys first came.
    groups: Vec<Group>,
    /// By group: how many values it has; at the seal, where the next of them goes.
    counts: Vec<u32>,
    entries: Vec<Entry>,
    /// By source shard: whether the outbox holds values of it (a shard flushed again before
    /// the seal seals first, so that each group has one run per source shard).
    pending: Vec<bool>,
    /// At the seal: the values and their source shards, group after group.
    sorted_values: Vec<f64>,
    sorted_sources: Vec<u32>,
    /// One group's runs, while it is sealed.
    runs: Vec<(u32, u32)>,
    /// The last element spec sealed and its reference in `sealed` (checked before reuse: the
    /// caller empties `sealed` at will).
    last_spec: Option<(ElemSpec, SpecRef)>,
    /// What the seals since the last `take` forward.
    sealed: SampleBatch,
}

impl RollupOutbox {
    pub(crate) fn new(num_shards: u32) -> Self {
        Self {
            shard_of: ShardOf::new(num_shards),
            windows: Vec::new(),
            last_window: None,
            latest_group: Vec::new(),
            groups: Vec::new(),
            counts: Vec::new(),
            entries: Vec::new(),
            pending: vec![false; num_shards as usize],
            sorted_values: Vec::new(),
            sorted_sources: Vec::new(),
            runs: Vec::new(),
            last_spec: None,
            sealed: SampleBatch::default(),
        }
    }

    /// Called before the flush of `source_shard` adds its values: seals first if the outbox
    /// may already hold values of that shard.
    pub(crate) fn begin_source(&mut self, source_shard: u32, targets: &mut RollupTargets) {
        if self.pending.get(source_shard as usize).copied().unwrap_or(false) {
            self.seal(targets);
        }
        if let Some(p) = self.pending.get_mut(source_shard as usize) {
            *p = true;
        }
    }

    /// Adds a flushed `value` of the window at `time` for `target` (not [`NO_ROLLUP`]), from
    /// the flush of `source_shard`.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add(
        &mut self,
        source_shard: u32,
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
        let window = self.window_of(WindowKey { policy, forwarded, metric_type, time });
        let latest = self.latest_group[t];
        let mut g = (latest & u64::from(u32::MAX)) as u32;
        if g == 0 || (latest >> 32) as u32 != window {
            // Not the target's latest window: another of its groups, or a new one.
            while let Some(group) = g.checked_sub(1).and_then(|g| self.groups.get(g as usize)) {
                if group.window == window {
                    break;
                }
                g = group.next_of_target;
            }
            if g == 0 {
                // The new head of the target's chain.
                self.groups.push(Group { target, window, next_of_target: latest as u32 });
                self.counts.push(0);
                g = self.groups.len() as u32;
                self.latest_group[t] = u64::from(g) | u64::from(window) << 32;
            }
        }
        self.counts[g as usize - 1] += 1;
        self.entries.push(Entry { value, group: g - 1, source: source_shard });
    }

    /// The index of `key` in `windows`, added on first sight.
    #[inline]
    fn window_of(&mut self, key: WindowKey) -> u32 {
        if let Some((last, w)) = self.last_window
            && last == key
        {
            return w;
        }
        let w = match self.windows.iter().position(|w| *w == key) {
            Some(w) => w as u32,
            None => {
                self.windows.push(key);
                self.windows.len() as u32 - 1
            }
        };
        self.last_window = Some((key, w));
        w
    }

    /// Turns what the flushes gathered since the last seal into forwarded samples (version 0):
    /// one per key, its values in one run per source shard.
    pub(crate) fn seal(&mut self, targets: &mut RollupTargets) {
        if self.groups.is_empty() {
            return;
        }
        // Each group's place in `sorted_*`, then every value put there in the order it came.
        let mut at = 0u32;
        for count in &mut self.counts {
            at += std::mem::replace(count, at);
        }
        self.sorted_values.resize(self.entries.len(), 0.0);
        self.sorted_sources.resize(self.entries.len(), 0);
        for e in &self.entries {
            let at = &mut self.counts[e.group as usize];
            self.sorted_values[*at as usize] = e.value;
            self.sorted_sources[*at as usize] = e.source;
            *at += 1;
        }
        let mut start = 0usize;
        for (g, group) in self.groups.iter().enumerate() {
            // The targets of later groups: their entries, then (once in) their ids.
            if let Some(later) = self.groups.get(g + SEAL_TARGETS_AHEAD) {
                targets.prefetch(later.target, false);
            }
            if let Some(later) = self.groups.get(g + SEAL_TARGETS_AHEAD / 2) {
                targets.prefetch(later.target, true);
            }
            let (key, end) = (self.windows[group.window as usize], self.counts[g] as usize);
            let (values, sources) = (&self.sorted_values[start..end], &self.sorted_sources[start..end]);
            start = end;
            self.latest_group[group.target as usize - 1] = 0;
            let Some((target, shard, hash)) = targets.routed(group.target, key.metric_type, &self.shard_of) else {
                continue;
            };
            self.runs.clear();
            for &source in sources {
                match self.runs.last_mut() {
                    Some((s, n)) if *s == source => *n += 1,
                    _ => self.runs.push((source, 1)),
                }
            }
            if target.next != NO_ROLLUP {
                let (policy, forwarded, metric_type, time) = (key.policy, key.forwarded, key.metric_type, key.time);
                let g = NestedGroup { target: group.target, policy, forwarded, metric_type, time, shard, hash };
                seal_nested(&mut self.sealed, targets, g, values, &self.runs);
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
            let (id, times) = (target.id, key.forwarded);
            self.sealed.push_gathered(shard, hash, id, key.metric_type, key.time, values, spec, times, &self.runs);
            if target.resend {
                self.sealed.mark_last_resend();
            }
        }
        self.groups.clear();
        self.counts.clear();
        self.windows.clear();
        self.last_window = None;
        self.entries.clear();
        self.pending.iter_mut().for_each(|p| *p = false);
    }

    /// The forwarded samples sealed since the last call (what is gathered sealed first), to be
    /// routed and then cleared.
    pub(crate) fn sealed(&mut self, targets: &mut RollupTargets) -> &mut SampleBatch {
        self.seal(targets);
        &mut self.sealed
    }

    /// The forwarded samples sealed so far, without sealing what is gathered (for the
    /// corrections a shard's flush resends, which go out at once).
    pub(crate) fn sealed_batch(&mut self) -> &mut SampleBatch {
        &mut self.sealed
    }
}
