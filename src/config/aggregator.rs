//! The `aggregator:` section: name prefixes, default storage policies, timed-metric buffers,
//! series TTL and flush jitter, and (in [`super::flush`]) where flushed values go. Read at
//! start, on the main thread, into the settings the shard cores get; the cores read only that
//! copy.

use std::time::Duration;

use serde::Deserialize;
use sheaf_shard_core::StoragePolicy;

use super::duration::Dur;
use super::error::{ConfigError, invalid};
use super::flush::Flush;
use super::rate_limits::RateLimits;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Aggregator {
    pub metric_prefix: String,
    pub counter_prefix: String,
    pub timer_prefix: String,
    pub gauge_prefix: String,
    /// Policies applied to every untimed metric whose metadata names none (and no rule
    /// matched); empty: such values are dropped, counted as `no_storage_policy`.
    pub default_storage_policies: Vec<String>,
    pub discard_nan_aggregated_values: bool,
    pub buffer_duration_for_future_timed_metric: Dur,
    pub buffer_duration_for_past_timed_metric: Dur,
    /// A series with no write and no open window for this long is forgotten.
    pub entry_ttl: Dur,
    pub flush_manager: FlushManager,
    pub flush: Flush,
    /// At shutdown, also emit windows that have not ended yet (a single node has no
    /// replica to emit them later).
    pub shutdown_flush_open_windows: bool,
    /// The finest storage resolution accepted, from the config or from a metric's metadata;
    /// a finer one is refused (and counted) rather than aggregated, since every resolution
    /// costs its core a flush round per period.
    pub min_storage_resolution: Dur,
    /// Series the node holds at most, split evenly over its cores (each gets
    /// `ceil(max_series / cores)`); a value for a new series on a core at its share is refused
    /// and counted, existing series keep aggregating. 0: no limit.
    pub max_series: usize,
    /// Values per series and new series per second (M3's runtime options); in cluster mode
    /// the runtime options key in etcd replaces them while it exists.
    pub rate_limits: RateLimits,
    pub forwarding: Forwarding,
}

/// Rollups: how long a rolled-up series waits for the values its sources forward.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Forwarding {
    /// A forwarded window of resolution `r`, forwarded `n` times, is flushed
    /// `max_const_delay + r·n` after its start (M3's `forwarding.maxConstDelay`); unset:
    /// `r·n`, M3's code default.
    pub max_const_delay: Option<Dur>,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self {
            metric_prefix: String::new(),
            counter_prefix: String::new(),
            timer_prefix: String::new(),
            gauge_prefix: String::new(),
            default_storage_policies: vec!["10s:2d".into()],
            discard_nan_aggregated_values: true,
            buffer_duration_for_future_timed_metric: Dur(Duration::from_secs(60)),
            buffer_duration_for_past_timed_metric: Dur(Duration::from_secs(60)),
            entry_ttl: Dur(Duration::from_secs(3600)),
            flush_manager: FlushManager::default(),
            flush: Flush::default(),
            shutdown_flush_open_windows: true,
            min_storage_resolution: Dur(Duration::from_secs(1)),
            max_series: 10_000_000,
            rate_limits: RateLimits::default(),
            forwarding: Forwarding::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlushManager {
    pub jitter_enabled: bool,
    /// First row with flush_interval ≥ the resolution gives the offset's upper bound.
    pub max_jitters: Vec<MaxJitter>,
}

impl Default for FlushManager {
    fn default() -> Self {
        let row = |secs, pct| MaxJitter { flush_interval: Dur(Duration::from_secs(secs)), max_jitter_percent: pct };
        Self {
            jitter_enabled: true,
            max_jitters: vec![row(5, 1.0), row(10, 0.5), row(60, 0.5), row(600, 0.5), row(3600, 0.25)],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxJitter {
    pub flush_interval: Dur,
    pub max_jitter_percent: f64,
}

impl Aggregator {
    /// The default storage policies, parsed, then the jitter rows and the flush handlers.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.storage_policies()?;
        for (i, row) in self.flush_manager.max_jitters.iter().enumerate() {
            if !(0.0..=1.0).contains(&row.max_jitter_percent) {
                return Err(invalid(
                    format!("aggregator.flush_manager.max_jitters[{i}].max_jitter_percent"),
                    "must be between 0.0 and 1.0",
                ));
            }
        }
        self.flush.validate()
    }

    /// `default_storage_policies`, parsed, none listed twice. Empty means what it means in
    /// M3: values without metadata are aggregated only when a rule matches their series.
    pub fn storage_policies(&self) -> Result<Vec<StoragePolicy>, ConfigError> {
        let policies = &self.default_storage_policies;
        let mut out = Vec::new();
        for (i, p) in policies.iter().enumerate() {
            let policy: StoragePolicy = p.parse().map_err(|e: sheaf_shard_core::PolicyError| {
                invalid(format!("aggregator.default_storage_policies[{i}]"), e.to_string())
            })?;
            if policy.resolution_nanos < self.min_storage_resolution.0.as_nanos() as i64 {
                return Err(invalid(
                    format!("aggregator.default_storage_policies[{i}]"),
                    format!("{p} is finer than aggregator.min_storage_resolution"),
                ));
            }
            if out.contains(&policy) {
                return Err(invalid(
                    format!("aggregator.default_storage_policies[{i}]"),
                    format!("{p} is listed twice"),
                ));
            }
            out.push(policy);
        }
        Ok(out)
    }
}
