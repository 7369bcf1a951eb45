//! What a `CoreAggregator` is configured with (`AggregatorOptions`, the same on every core,
//! built on the control thread and cloned into each) and what it counts
//! (`AggregatorCounters`, plain fields of its own core, copied into the published stats).

use std::sync::Arc;

use crate::flush::Naming;
use crate::policy::StoragePolicy;

/// What a core's aggregation is configured with (the same on every core).
#[derive(Debug, Clone)]
pub struct AggregatorOptions {
    /// Policies for untimed metrics whose metadata names none (`default_storage_policies`).
    pub default_policies: Vec<StoragePolicy>,
    /// Drop NaN and infinite results instead of emitting them (`discard_nan_aggregated_values`).
    pub discard_nan: bool,
    /// How old a timed metric may be when it arrives; its windows flush this much after they end.
    pub timed_buffer_past: i64,
    /// How far in the future a timed metric may be.
    pub timed_buffer_future: i64,
    /// A series with no open window and no write for this long is forgotten (`entry_ttl`).
    pub entry_ttl: i64,
    /// The finest resolution a metric's metadata may ask for (`min_storage_resolution`); a
    /// finer one is refused at decode.
    pub min_resolution: i64,
    /// Series this core may hold (its share of `max_series`); a value for a new series past
    /// it is refused and counted, existing series keep aggregating. 0: no limit.
    pub max_series_per_core: usize,
    /// Values per series and new series per shard, per second (M3's runtime options).
    pub rate_limits: RateLimitSettings,
    pub naming: Arc<Naming>,
    /// Added to `r · n` in the lateness bound of forwarded windows (M3's
    /// `forwarding.maxConstDelay`); 0: M3's code default, `r · n` alone.
    pub forwarding_max_const_delay: i64,
}

impl AggregatorOptions {
    /// `default_policies` with the rest at sheaf's defaults (the same as the config's): NaN
    /// discarded, timed buffers of 1m past and future, entry TTL 1h, no series or rate limit,
    /// no prefixes.
    pub fn with_policies(default_policies: Vec<StoragePolicy>) -> Self {
        Self {
            default_policies,
            discard_nan: true,
            timed_buffer_past: 60_000_000_000,
            timed_buffer_future: 60_000_000_000,
            entry_ttl: 3_600_000_000_000,
            min_resolution: 1_000_000_000,
            max_series_per_core: 0,
            rate_limits: RateLimitSettings::default(),
            naming: Arc::new(Naming::default()),
            forwarding_max_const_delay: 0,
        }
    }

    /// `L(r, n)` with this core's `forwarding_max_const_delay`.
    pub fn forwarded_lateness(&self, resolution_nanos: i64, num_forwarded_times: u32) -> i64 {
        crate::pipeline::forwarded_lateness(resolution_nanos, num_forwarded_times, self.forwarding_max_const_delay)
    }
}

/// The rate limits a core applies; 0 turns a limit off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Values one series may take per second (M3 `write-values-per-metric-limit-per-second`).
    pub values_per_series_per_second: u32,
    /// New series one shard may create per second: the cluster-wide limit divided as M3 does
    /// (`per_shard_new_series`).
    pub new_series_per_shard_per_second: u32,
    /// For this long (nanoseconds) after a shard's first series, the new-series limit is not
    /// applied (M3 `writeNewMetricNoLimitWarmupDuration`).
    pub new_series_warmup: i64,
}

impl RateLimitSettings {
    /// M3's share of a cluster-wide new-series limit that one shard gets:
    /// `ceil(limit / (num_shards × replication_factor))`; 0 stays 0 (no limit).
    pub fn per_shard_new_series(cluster_limit: u64, num_shards: u32, replication_factor: u32) -> u32 {
        if cluster_limit == 0 {
            return 0;
        }
        let copies = u64::from(num_shards.max(1)) * u64::from(replication_factor.max(1));
        u32::try_from(cluster_limit.div_ceil(copies)).unwrap_or(u32::MAX)
    }
}

/// Event counts of one core's aggregation; the runtime adds them to its published stats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AggregatorCounters {
    pub values_applied: u64,
    pub series_created: u64,
    pub series_expired: u64,
    pub timed_too_late: u64,
    pub timed_too_early: u64,
    /// Samples whose metadata would have passed the per-core caps on policies and specs.
    pub metadata_rejected: u64,
    /// NaN or infinite results dropped (`discard_nan`).
    pub nan_discarded: u64,
    pub windows_flushed: u64,
    pub values_flushed: u64,
    /// Windows dropped without being emitted: a follower's windows its leader already
    /// emitted, windows outside a shard's `[cutover, cutoff)`, forced-flush discards.
    pub windows_discarded: u64,
    /// Samples for a shard outside its writable range `[cutover − before, cutoff + after)`.
    pub shard_not_writable: u64,
    /// Shards closed after their cutoff, their memory freed.
    pub shards_closed: u64,
    /// Samples whose id is longer than `MAX_ID_LEN` bytes.
    pub id_too_long: u64,
    /// Samples of a new series in a shard that already holds its maximum (16,777,215).
    pub series_over_shard_limit: u64,
    /// Samples of a new series refused because the core holds `max_series_per_core`.
    pub series_limit_refused: u64,
    /// Values refused by the per-series rate limit (a timer batch counts its values).
    pub value_rate_limited: u64,
    /// Samples of a new series refused by the per-shard new-series rate limit.
    pub new_series_rate_limited: u64,
    /// Storage policies dropped (with their flush schedule) once no series used them.
    pub policies_pruned: u64,
    /// Rollup targets dropped once no metadata of this core named them.
    pub rollup_targets_pruned: u64,
    /// Passthrough points accepted for writing (leader).
    pub passthrough_values: u64,
    /// Passthrough points dropped because this core's shard set follows (its leader writes them).
    pub passthrough_follower_dropped: u64,
    /// Values refused because a mapping rule with `drop` matched their series.
    pub dropped_by_rule: u64,
    /// Values without metadata when `default_policies` is empty and no rule matched their
    /// series: nothing aggregates them (M3's `defaultStoragePolicies: []`).
    pub no_storage_policy: u64,
    /// Series created that a `drop` mapping rule matched.
    pub series_dropped_by_rule: u64,
    /// Series created whose elements mapping rules chose.
    pub series_mapped_by_rule: u64,
    /// Values a flush forwarded to a rolled-up series instead of emitting them.
    pub values_rolled_up: u64,
    /// Windows of a rolled-up element whose series' metadata has since changed, so that its
    /// rollup target is no longer known: dropped (and counted) rather than emitted as the
    /// series' own values.
    pub rollup_target_unknown: u64,
    /// Timer and set series a rollup rule matched: their rollups are left out (not supported).
    pub rollup_type_unsupported: u64,
    /// Forwarded windows taken in (one per source shard, version and window).
    pub forwarded_accepted: u64,
    /// Forwarded windows dropped because the same (source shard, version) was already taken in.
    pub forwarded_duplicate: u64,
    /// Forwarded windows dropped because they came after `L(r, n)` or after their window
    /// was flushed.
    pub forwarded_too_late: u64,
}

impl AggregatorCounters {
    /// Counts a sample of a new series refused: over the core's series limit, or else over
    /// the new-series rate limit.
    #[inline]
    pub(crate) fn refuse_new_series(&mut self, over_series_limit: bool) {
        if over_series_limit {
            self.series_limit_refused += 1;
        } else {
            self.new_series_rate_limited += 1;
        }
    }
}
