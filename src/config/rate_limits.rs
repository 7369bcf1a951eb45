//! `aggregator.rate_limits`: M3's write rate limits (its runtime options). Read from the config
//! at start on the main thread; in cluster mode the same fields, as JSON in the runtime options
//! key, replace them at runtime (`cluster::runtime_options`, control thread). The cores get
//! `RateLimitSettings`, the per-shard form, by value.

use std::time::Duration;

use serde::Deserialize;
use sheaf_shard_core::RateLimitSettings;

use super::duration::Dur;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// Values one series may take per second, a timer batch counting as its length
    /// (M3 `write-values-per-metric-limit-per-second`). 0: no limit.
    pub values_per_series_per_second: u32,
    /// New series the whole cluster may create per second; each shard gets
    /// `ceil(limit / (num_shards × replication factor))` (M3
    /// `write-new-metric-limit-cluster-per-second`). 0: no limit.
    pub new_series_per_second: u64,
    /// How long after a shard's first series the new-series limit is not applied (M3
    /// `writeNewMetricNoLimitWarmupDuration`).
    pub new_series_warmup: Dur,
}

/// No limit, as M3: both limits 0 and no warm-up.
impl Default for RateLimits {
    fn default() -> Self {
        Self { values_per_series_per_second: 0, new_series_per_second: 0, new_series_warmup: Dur(Duration::ZERO) }
    }
}

impl RateLimits {
    /// What each core applies, with `replication_factor` copies of each of `num_shards` shards
    /// (1 on a single node).
    pub fn for_cores(&self, num_shards: u32, replication_factor: u32) -> RateLimitSettings {
        RateLimitSettings {
            values_per_series_per_second: self.values_per_series_per_second,
            new_series_per_shard_per_second: RateLimitSettings::per_shard_new_series(
                self.new_series_per_second,
                num_shards,
                replication_factor,
            ),
            new_series_warmup: i64::try_from(self.new_series_warmup.0.as_nanos()).unwrap_or(i64::MAX),
        }
    }
}
