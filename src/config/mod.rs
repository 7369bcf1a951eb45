//! The YAML config of `sheaf run --config FILE`. Keys follow m3aggregator's config (in
//! snake_case) where the concept is the same; `tuning/config-template.yaml` documents each.
//! Unknown keys and invalid values are refused at start with a message naming the key.
//!
//! Parsed and checked once, on the main thread, at start and by `sheaf check-config`; read-only
//! afterwards. Boot copies what the shard cores need into their settings, each sink thread gets
//! its handler's section, and the control thread owns the [`Config`] itself. One file per
//! section; this one holds the top-level keys and the order of the checks.

mod aggregator;
mod checkpoint;
mod cluster;
mod cores;
mod data_plane;
mod duration;
mod error;
mod flush;
mod http;
mod logging;
pub mod m3;
mod m3msg;
mod metrics;
mod rate_limits;
mod rules;
mod statsd;
#[cfg(test)]
mod tests;

use std::path::Path;

use serde::Deserialize;
use sheaf_shard_core::StoragePolicy;

pub use aggregator::Aggregator;
pub use checkpoint::Checkpoint;
pub use cluster::{ClusterConfig, ETCD_PASSWORD_ENV, ElectionConfig, EtcdConfig};
pub use cores::{Cores, online_cpus};
pub use data_plane::DataPlane;
#[cfg(test)]
pub use duration::Dur;
pub use error::ConfigError;
pub use flush::{Handler, M3msgHandler};
pub use http::{ADMIN_TOKEN_ENV, Http, HttpTls};
pub use logging::Logging;
pub use m3msg::M3msg;
pub use metrics::Metrics;
pub use rate_limits::RateLimits;
pub use rules::{MAX_RULES, RulesConfig, aggregation_names};
pub use statsd::{Statsd, UdpDistribution};

use error::invalid;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub logging: Logging,
    /// CPUs that run a shard executor each: `all` or a list of CPU ids.
    pub cores: Cores,
    /// Pin each executor to its CPU. Off, the list only sets how many executors run.
    pub pin_cores: bool,
    /// CPU for the control thread and the sink threads (unset: they float).
    pub control_cpu: Option<usize>,
    /// Aggregation shards: `murmur3_32(id) % num_shards`.
    pub num_shards: u32,
    pub http: Http,
    pub m3msg: M3msg,
    pub statsd: Statsd,
    pub aggregator: Aggregator,
    pub data_plane: DataPlane,
    /// This node's instance id in the placement (M3's `hostID`); when unset, read from the
    /// environment variable named by `host_id_env`.
    pub host_id: Option<String>,
    pub host_id_env: String,
    /// Cluster mode on etcd; absent: the embedded single node.
    pub cluster: Option<ClusterConfig>,
    /// Mapping and rollup rules for series without metadata (m3coordinator's schema); in
    /// cluster mode, what a node uses until etcd holds a rule set.
    pub rules: RulesConfig,
    /// A second, metrics-only HTTP listener (`GET /metrics`, as M3's `metrics.prometheus`).
    pub metrics: Metrics,
    /// Where shard checkpoints live (single node); unset: nothing is persisted, and a
    /// restart starts empty.
    pub data_dir: Option<std::path::PathBuf>,
    /// How often the shards are checkpointed to `data_dir`.
    pub checkpoint: Checkpoint,
    /// A shard with no write for this long and no unflushed window is idle: it gets a
    /// `sync_id` (synced flush) and flush rounds pass it by (Elasticsearch's inactive time).
    pub idle_shard_after: duration::Dur,
    /// Set when the file was an m3aggregator config: what each of its keys became.
    #[serde(skip)]
    pub m3_notes: Option<Vec<m3::KeyNote>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            logging: Logging::default(),
            cores: Cores::All,
            pin_cores: true,
            control_cpu: None,
            num_shards: 64,
            http: Http::default(),
            m3msg: M3msg::default(),
            statsd: Statsd::default(),
            aggregator: Aggregator::default(),
            data_plane: DataPlane::default(),
            host_id: None,
            host_id_env: "SHEAF_HOST_ID".into(),
            cluster: None,
            rules: RulesConfig::default(),
            metrics: Metrics::default(),
            data_dir: None,
            checkpoint: Checkpoint::default(),
            idle_shard_after: duration::Dur(std::time::Duration::from_secs(300)),
            m3_notes: None,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    /// Reads sheaf's own config, or an m3aggregator config unchanged (see [`m3`]).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            // A tree serde_json cannot hold (a non-string key) is no m3aggregator config.
            let tree = serde_saphyr::from_str::<serde_json::Value>(text).ok();
            if let Some(tree) = tree.filter(m3::looks_like_m3) {
                let translation = m3::translate(&tree)?;
                let mut config: Config = serde_json::from_value(translation.tree)
                    .map_err(|e| ConfigError::Parse(format!("the m3aggregator config, read as sheaf's: {e}")))?;
                config.m3_notes = Some(translation.notes);
                config
            } else {
                serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// The instance id: `host_id`, else the variable `host_id_env` names.
    pub fn resolved_host_id(&self) -> Result<String, ConfigError> {
        if let Some(id) = &self.host_id {
            return Ok(id.clone());
        }
        match std::env::var(&self.host_id_env) {
            Ok(id) if !id.is_empty() => Ok(id),
            _ => Err(invalid("host_id", format!("not set, and ${} is empty or unset", self.host_id_env))),
        }
    }

    /// Checks what serde cannot: ranges, policies, cross-field rules. The first failing check
    /// is the one reported, so the order below is part of what `sheaf check-config` prints.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(cluster) = &self.cluster {
            self.resolved_host_id()?;
            cluster.validate()?;
        }
        if self.num_shards == 0 || self.num_shards > u32::from(u16::MAX) {
            return Err(invalid("num_shards", "must be between 1 and 65535"));
        }
        self.cores.validate()?;
        if let Some(c) = self.control_cpu
            && !online_cpus().contains(&c)
        {
            return Err(invalid("control_cpu", format!("cpu {c} is not available to this process")));
        }
        if self.http.header_read_timeout.0.is_zero() {
            return Err(invalid("http.header_read_timeout", "must be above 0"));
        }
        self.aggregator.validate()?;
        let topics = self.aggregator.flush.handlers.iter().enumerate().filter_map(|(i, h)| match h {
            Handler::M3msg(m) => m.topic.as_ref().map(|_| i),
            _ => None,
        });
        if let Some(i) = topics.into_iter().next()
            && self.cluster.is_none()
        {
            return Err(invalid(
                format!("aggregator.flush.handlers[{i}].m3msg.topic"),
                "needs cluster mode: the topic and its consumers are read from etcd",
            ));
        }
        self.data_plane.validate()?;
        self.checkpoint.validate()?;
        if self.idle_shard_after.0 < std::time::Duration::from_millis(100) {
            return Err(invalid("idle_shard_after", "must be at least 100ms"));
        }
        self.statsd.validate_sizes()?;
        self.m3msg.server.validate()?;
        self.statsd.unix.validate()?;
        self.rules.compile(self.min_resolution_nanos()).map_err(|e| invalid("rules", e.to_string()))?;
        Ok(())
    }

    /// `aggregator.min_storage_resolution` in nanoseconds.
    pub fn min_resolution_nanos(&self) -> i64 {
        i64::try_from(self.aggregator.min_storage_resolution.0.as_nanos()).unwrap_or(i64::MAX)
    }

    /// `aggregator.default_storage_policies`, parsed.
    pub fn storage_policies(&self) -> Result<Vec<StoragePolicy>, ConfigError> {
        self.aggregator.storage_policies()
    }

    /// The CPU ids that run shard executors.
    pub fn cpus(&self) -> Result<Vec<usize>, ConfigError> {
        self.cores.cpus(self.pin_cores)
    }
}
