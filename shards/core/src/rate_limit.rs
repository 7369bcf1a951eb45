//! M3's write rate limits (its runtime options): values per second per series, and new series
//! per second per shard, the latter skipped for a warm-up after a shard's first series.
//!
//! `RateLimitSettings` (in `aggregator_options`) is built on the control thread (from the
//! config, or from the runtime options key in etcd) and reaches each core by value.
//! `RateLimiter` lives inside one core's `CoreAggregator` and is touched only by that core.
//!
//! Windows are whole seconds of the core's clock (the arrival time of a batch), as M3's
//! limiter truncates its clock to the second. A value is accepted when the values accepted
//! in its window, itself included, stay within the limit: a timer batch counts as its length
//! and is accepted or refused whole, and a refused value uses none of the window's budget.
//! A per-series limit turned on counts from then on (what its series took earlier in the
//! same second is not known); one changed from one non-zero value to another keeps counting.
//! The new-series count and each shard's first series are tracked whether or not that limit
//! is on (per series created, not per value), so turning it on later honours the warm-up.
//!
//! Cost: with both limits at 0 (the default) a value pays one predictable branch per limit
//! and no memory. With the per-series limit on, each series of a shard has a `u32` in a side
//! table indexed by its position in the shard (the second it belongs to is the series' own
//! `last_write_secs`): 4 bytes per series and the table's growth slack (an eighth), freed when
//! the limit is turned off.
//!
//! #[PerformanceCriticalPath]: `may_create` and `allow_values` run per value.

use crate::aggregator_options::{AggregatorCounters, RateLimitSettings};
use crate::batch::SampleValue;
use crate::time::UnixNanos;

const SECOND: i64 = 1_000_000_000;

/// The rate state of one shard.
#[derive(Debug, Default)]
struct ShardRates {
    /// When the shard's first series was created (`None` before it).
    first_insert: Option<UnixNanos>,
    /// The second `new_series` counts, and the series created in it.
    new_series_second: i64,
    new_series: u32,
    /// Per series position: values accepted in the second of the series' `last_write_secs`.
    /// Empty while the per-series limit is off; shorter than the shard when series were
    /// created before it was turned on (a missing entry reads as 0).
    values_in_second: Vec<u32>,
}

/// The rate limits of one core, per shard.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    settings: RateLimitSettings,
    shards: Vec<ShardRates>,
}

impl RateLimiter {
    pub(crate) fn new(settings: RateLimitSettings, num_shards: u32) -> Self {
        Self { settings, shards: (0..num_shards).map(|_| ShardRates::default()).collect() }
    }

    /// Applies new settings; turning the per-series limit off frees its tables.
    pub(crate) fn set(&mut self, settings: RateLimitSettings) {
        if settings.values_per_series_per_second == 0 {
            for shard in &mut self.shards {
                shard.values_in_second = Vec::new();
            }
        }
        self.settings = settings;
    }

    /// Whether `shard` may create a series at `now`.
    #[inline(always)]
    pub(crate) fn may_create(&self, shard: u32, now: UnixNanos) -> bool {
        let limit = self.settings.new_series_per_shard_per_second;
        limit == 0 || self.may_create_limited(shard, now, limit)
    }

    fn may_create_limited(&self, shard: u32, now: UnixNanos, limit: u32) -> bool {
        let Some(s) = self.shards.get(shard as usize) else { return true };
        let warming = s.first_insert.is_none_or(|first| now.saturating_sub(first) < self.settings.new_series_warmup);
        warming || s.new_series_second != now.div_euclid(SECOND) || s.new_series < limit
    }

    /// `shard` created a series at `now`.
    #[inline]
    pub(crate) fn created(&mut self, shard: u32, now: UnixNanos) {
        let Some(s) = self.shards.get_mut(shard as usize) else { return };
        s.first_insert.get_or_insert(now);
        let second = now.div_euclid(SECOND);
        if s.new_series_second == second {
            s.new_series = s.new_series.saturating_add(1);
        } else {
            (s.new_series_second, s.new_series) = (second, 1);
        }
    }

    /// Whether the series at `position` of `shard`, last written in second `last_write_secs`,
    /// may take `value` (a timer batch: all its values) in second `now_secs`; if so, counts
    /// its values against the limit, else counts them in `counters.value_rate_limited`.
    #[inline(always)]
    pub(crate) fn allow_values(
        &mut self,
        shard: u32,
        position: usize,
        last_write_secs: u32,
        now_secs: u32,
        value: SampleValue,
        counters: &mut AggregatorCounters,
    ) -> bool {
        let limit = self.settings.values_per_series_per_second;
        if limit == 0 || self.allow_values_limited(shard, position, last_write_secs != now_secs, value.count(), limit) {
            return true;
        }
        counters.value_rate_limited += value.count();
        false
    }

    fn allow_values_limited(&mut self, shard: u32, position: usize, new_second: bool, values: u64, limit: u32) -> bool {
        let Some(s) = self.shards.get_mut(shard as usize) else { return true };
        let table = &mut s.values_in_second;
        if table.len() <= position {
            // Grown by an eighth at a time, as the shard's id arena: little slack at 1M series.
            if table.capacity() <= position {
                table.reserve_exact((position + 1 - table.len()).max(table.capacity() / 8).max(64));
            }
            table.resize(position + 1, 0);
        }
        let count = &mut table[position];
        let before = if new_second { 0 } else { u64::from(*count) };
        let after = before + values;
        if after > u64::from(limit) {
            return false;
        }
        *count = after as u32;
        true
    }

    /// Follows a `ShardMap::retain` of `shard`, which holds `len` series, so that the table
    /// moves its entries as the map moves its series.
    pub(crate) fn follow_retain(&mut self, shard: u32, len: usize) -> RetainFollower<'_> {
        let table = self.shards.get_mut(shard as usize).map(|s| &mut s.values_in_second).filter(|t| !t.is_empty());
        RetainFollower { table, position: 0, len }
    }

    /// `shard` was closed and its series freed.
    pub(crate) fn closed(&mut self, shard: u32) {
        if let Some(s) = self.shards.get_mut(shard as usize) {
            s.values_in_second = Vec::new();
        }
    }
}

/// The position a `ShardMap::retain` has reached, and the shard's length.
pub(crate) struct RetainFollower<'a> {
    table: Option<&'a mut Vec<u32>>,
    position: usize,
    len: usize,
}

impl RetainFollower<'_> {
    /// The series at the current position was kept, or removed with the shard's last series
    /// moved into its place (`swap_remove`).
    #[inline]
    pub(crate) fn step(&mut self, kept: bool) {
        if kept {
            self.position += 1;
            return;
        }
        self.len -= 1;
        let Some(table) = self.table.as_deref_mut() else { return };
        if self.len < table.len() {
            table.swap_remove(self.position);
        } else if self.position < table.len() {
            table[self.position] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_shard_share_rounds_up_and_zero_stays_unlimited() {
        assert_eq!(RateLimitSettings::per_shard_new_series(0, 64, 2), 0);
        assert_eq!(RateLimitSettings::per_shard_new_series(1000, 64, 2), 8);
        assert_eq!(RateLimitSettings::per_shard_new_series(1, 64, 2), 1);
        assert_eq!(RateLimitSettings::per_shard_new_series(128, 64, 2), 1);
        assert_eq!(RateLimitSettings::per_shard_new_series(129, 64, 2), 2);
        assert_eq!(RateLimitSettings::per_shard_new_series(100, 4, 0), 25);
    }

    proptest::proptest! {
        /// Whatever a retain removes, and however much of the shard the table covers, each
        /// series kept has the entry it had before (0 for one the table did not cover).
        #[test]
        fn the_table_follows_the_series_through_a_retain(
            keep in proptest::collection::vec(proptest::bool::ANY, 0..40),
            covered in 0usize..40,
        ) {
            let mut rates = RateLimiter::new(RateLimitSettings { values_per_series_per_second: 1, ..Default::default() }, 1);
            let covered = covered.min(keep.len());
            rates.shards[0].values_in_second = (0..covered as u32).map(|i| i + 1).collect();
            // The map: series `i` holds entry `i + 1` when covered; retain as `ShardMap` does it.
            let mut map: Vec<usize> = (0..keep.len()).collect();
            let mut follow = rates.follow_retain(0, map.len());
            let mut i = 0;
            while i < map.len() {
                let kept = keep[map[i]];
                follow.step(kept);
                if kept { i += 1 } else { map.swap_remove(i); }
            }
            let table = &rates.shards[0].values_in_second;
            for (position, series) in map.iter().enumerate() {
                let want = if *series < covered { *series as u32 + 1 } else { 0 };
                proptest::prop_assert_eq!(table.get(position).copied().unwrap_or(0), want);
            }
        }
    }

    #[test]
    fn warmup_skips_the_new_series_limit_after_the_first_insert() {
        let settings = RateLimitSettings {
            new_series_per_shard_per_second: 1,
            new_series_warmup: 10 * SECOND,
            ..RateLimitSettings::default()
        };
        let mut rates = RateLimiter::new(settings, 1);
        let t0 = 1_700_000_000 * SECOND;
        for i in 0..5 {
            assert!(rates.may_create(0, t0 + i));
            rates.created(0, t0 + i);
        }
        let after = t0 + 10 * SECOND;
        assert!(rates.may_create(0, after));
        rates.created(0, after);
        assert!(!rates.may_create(0, after + 1));
        assert!(rates.may_create(0, after + SECOND));
    }
}
