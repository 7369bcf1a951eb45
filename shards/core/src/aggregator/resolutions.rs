//! What a core's aggregator says about itself (options, series, windows, policies, shards
//! held) and its bookkeeping per resolution: how far the flush rounds of each resolution of a
//! live policy have reached, and where an untimed value arriving now lands. Same core as
//! [`CoreAggregator`]; split from `aggregator.rs` by concept.

use super::{AggregatorOptions, CoreAggregator, FlushedUntil, ForwardedUntil, RateLimitSettings};
use crate::rules::RuleSet;
use crate::spec::SpecTable;
use crate::time::{UnixNanos, truncate};

impl CoreAggregator {
    pub fn options(&self) -> &AggregatorOptions {
        &self.options
    }

    /// Replaces the rate limits (`options().rate_limits` shows the ones in effect).
    pub fn set_rate_limits(&mut self, settings: RateLimitSettings) {
        self.options.rate_limits = settings;
        self.rates.set(settings);
    }

    /// Windows held in memory, all shards together, as counted at each shard's last flush or
    /// discard: what a follower that is not discarding (no flush times) grows without bound.
    pub fn windows_held(&self) -> u64 {
        self.windows_held.iter().sum()
    }

    /// Number of series held, all shards together.
    pub fn series_count(&self) -> usize {
        self.series_held
    }

    /// The resolutions this core may have windows for: those of the default policies and of
    /// the policies in metadata that some series still uses.
    pub fn resolutions(&self) -> impl Iterator<Item = i64> + '_ {
        self.flushed.iter().map(|f| f.resolution)
    }

    /// Storage policies this core holds (the defaults and those some series uses).
    pub fn policy_count(&self) -> usize {
        self.specs.live_storage_policy_count()
    }

    /// Drops the storage policies no series uses any more (their series expired or moved to
    /// other metadata), but the default ones, and the resolutions only they had: the flush
    /// schedule then runs no more rounds for those. Returns how many policies were dropped.
    pub fn prune_unused_policies(&mut self) -> usize {
        let pruned = self.specs.prune_unused();
        if pruned > 0 {
            self.counters.policies_pruned += pruned as u64;
            self.track_resolutions();
            self.prune_rollup_targets();
        }
        pruned
    }

    /// Drops the rollup targets no spec names any more (their last spec was pruned with its
    /// policies), but those a resend-enabled window still forwards to.
    fn prune_rollup_targets(&mut self) {
        // What the outbox gathered names targets by reference: sealed before a slot is reused.
        self.outbox.seal(&mut self.rollups);
        let mut named = vec![false; self.rollups.slots() + 1];
        for r in self.specs.rollups_named().chain(self.resends.targets()) {
            if let Some(n) = named.get_mut(r as usize) {
                *n = true;
            }
        }
        crate::rollup::nested::mark_chains(&self.rollups, &mut named);
        let pruned = self.rollups.retain(|r| named.get(r as usize).copied().unwrap_or(true));
        self.counters.rollup_targets_pruned += pruned as u64;
    }

    /// Shards this core holds state for.
    pub fn shards_held(&self) -> impl Iterator<Item = u32> + '_ {
        self.shards.iter().enumerate().filter(|(_, slot)| slot.held).map(|(i, _)| i as u32)
    }

    /// Makes `rules` the rule set that series created from `cutover` on are matched against
    /// (at once if `cutover` is not after `now`). Series that exist keep what their rules gave
    /// them until they expire.
    pub fn set_rules(&mut self, rules: std::sync::Arc<RuleSet>, cutover: UnixNanos, now: UnixNanos) {
        self.rules.replace(rules, cutover, now);
    }

    /// Keeps one `FlushedUntil` per resolution of a live policy: adds the new ones, drops those
    /// no live policy has (no window of theirs is left).
    pub(super) fn track_resolutions(&mut self) {
        let past = self.options.timed_buffer_past;
        Self::track_resolutions_of(&self.specs, &mut self.flushed, self.latest_horizon, past);
    }

    /// `track_resolutions` on borrowed parts, for `apply` while it holds a series.
    pub(super) fn track_resolutions_of(
        specs: &SpecTable,
        flushed: &mut Vec<FlushedUntil>,
        horizon: UnixNanos,
        past: i64,
    ) {
        flushed.retain(|f| specs.live_policies().any(|p| p.resolution_nanos == f.resolution));
        for p in specs.live_policies() {
            let r = p.resolution_nanos;
            if !flushed.iter().any(|f| f.resolution == r) {
                let (untimed, timed) = if horizon == UnixNanos::MIN {
                    (UnixNanos::MIN, UnixNanos::MIN)
                } else {
                    (truncate(horizon, r), truncate(horizon.saturating_sub(past), r))
                };
                flushed.push(FlushedUntil { resolution: r, untimed, timed });
            }
        }
    }

    /// How far the flush rounds of `resolution` have reached: (untimed, timed) window ends.
    pub fn flushed_through(&self, resolution: i64) -> (UnixNanos, UnixNanos) {
        let f = self.flushed_until(resolution);
        (f.untimed, f.timed)
    }

    /// How far the flush rounds of `resolution` have reached for forwarded windows, per
    /// forward count some live policy of the resolution has: a forwarded window is flushed
    /// `L(r, n)` past its start, so every one ending at or before `untimed − L(r, n) + r` is
    /// out. Empty before the first round.
    pub fn forwarded_flushed_through(&self, resolution: i64) -> Vec<ForwardedUntil> {
        let untimed = self.flushed_until(resolution).untimed;
        if untimed == UnixNanos::MIN {
            return Vec::new();
        }
        let mut counts: Vec<u8> = self.specs.live_forward_counts(resolution).filter(|&n| n > 0).collect();
        counts.sort_unstable();
        counts.dedup();
        let flushed =
            |n: u8| untimed.saturating_sub(self.options.forwarded_lateness(resolution, u32::from(n))) + resolution;
        counts.into_iter().map(|times| ForwardedUntil { times, until: flushed(times) }).collect()
    }

    pub(super) fn flushed_until(&self, resolution: i64) -> FlushedUntil {
        self.flushed.iter().find(|f| f.resolution == resolution).copied().unwrap_or(FlushedUntil {
            resolution,
            untimed: UnixNanos::MIN,
            timed: UnixNanos::MIN,
        })
    }

    /// The window start of an untimed value arriving at `now`, per policy: `truncate(now, r)`,
    /// or the end of what is already flushed if a clock step moved `now` behind it.
    pub(super) fn refresh_untimed_starts(&mut self, now: UnixNanos) {
        Self::refresh_untimed_starts_of(&self.specs, &self.flushed, &mut self.untimed_start, now);
    }

    /// `refresh_untimed_starts` on borrowed parts, for `apply` while it holds a series.
    pub(super) fn refresh_untimed_starts_of(
        specs: &SpecTable,
        flushed: &[FlushedUntil],
        starts: &mut Vec<UnixNanos>,
        now: UnixNanos,
    ) {
        starts.clear();
        starts.extend(specs.policies().iter().map(|p| {
            let r = p.resolution_nanos;
            let until = flushed.iter().find(|f| f.resolution == r).map_or(UnixNanos::MIN, |f| f.untimed);
            truncate(now, r).max(until)
        }));
    }
}
