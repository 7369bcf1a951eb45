//! The `cluster:` section of the config: where etcd is and how the node takes part in its
//! shard set. Absent, sheaf runs as the embedded single node (owns every shard, always leads).
//! Read by the control thread (the cluster agent, its elections and the placement API) and by
//! `sheaf placement`, which only needs where etcd is.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::Dur;
use super::error::{ConfigError, invalid};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    pub etcd: EtcdConfig,
    /// The service name in etcd keys (M3's `serviceID.name`).
    pub service: String,
    pub election: ElectionConfig,
    /// Follower flush: how long without a flush-time update before forced flush mode, and
    /// how often forced flush discards then (M3's `maxBufferSize`, `forcedFlushWindowSize`).
    pub max_buffer_size: Dur,
    pub forced_flush_window_size: Dur,
    /// A shard accepts writes from `cutover − buffer_before_cutover` to
    /// `cutoff + buffer_after_cutoff`.
    pub buffer_before_cutover: Dur,
    pub buffer_after_cutoff: Dur,
    /// New or moved shards cut over at the first multiple of `shard_cutover_alignment` after
    /// now + this: long enough for every node's placement watch to deliver the change first.
    pub shard_cutover_warmup: Dur,
    /// What cutovers are aligned to (1m, as in m3). Keep it a multiple of every resolution in
    /// use; shorter values are for tests and demos that want a hand-off within seconds.
    pub shard_cutover_alignment: Dur,
    /// Persisting the flush times after a leader round: tries, with backoff from 100ms to 2s.
    pub flush_times_persist_retries: u32,
    /// Each flush round runs this long after its window ends (plus jitter), so values a peer
    /// forwarded just before the end are in every replica's window when it is flushed.
    pub flush_delay: Dur,
    /// How often the control thread checks flush reports, forced mode and the lease.
    pub check_interval: Dur,
    /// Forwarding to peers: frames kept unacknowledged per peer and core before the oldest
    /// is dropped (counted).
    pub forward_max_buffered_messages: usize,
    /// Values for shards no node owns by this node's placement (a peer forwarded them under a
    /// newer one this node's watch has not delivered yet) wait this long for it, at most
    /// `unowned_hold_max_values` per core; the rest are counted as unowned.
    pub unowned_hold: Dur,
    pub unowned_hold_max_values: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            etcd: EtcdConfig::default(),
            service: "m3aggregator".into(),
            election: ElectionConfig::default(),
            max_buffer_size: Dur(Duration::from_secs(300)),
            forced_flush_window_size: Dur(Duration::from_secs(10)),
            buffer_before_cutover: Dur(Duration::from_secs(600)),
            buffer_after_cutoff: Dur(Duration::from_secs(600)),
            shard_cutover_warmup: Dur(Duration::from_secs(10)),
            shard_cutover_alignment: Dur(Duration::from_secs(60)),
            flush_times_persist_retries: 3,
            check_interval: Dur(Duration::from_millis(100)),
            flush_delay: Dur(Duration::from_millis(500)),
            forward_max_buffered_messages: 1 << 20,
            unowned_hold: Dur(Duration::from_secs(5)),
            unowned_hold_max_values: 100_000,
        }
    }
}

impl ClusterConfig {
    /// At least one etcd endpoint, an election TTL of at least 1s, and etcd credentials that go
    /// together.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.etcd.endpoints.is_empty() {
            return Err(invalid("cluster.etcd.endpoints", "needs at least one endpoint"));
        }
        if self.election.ttl.0 < Duration::from_secs(1) {
            return Err(invalid("cluster.election.ttl", "must be at least 1s"));
        }
        self.etcd.validate()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdConfig {
    /// `host:port` of each etcd member.
    pub endpoints: Vec<String>,
    /// The environment in every key (`/placement/{env}/…`, `_kv/{env}/…`, `_ld/{env}/…`).
    pub environment: String,
    /// Bound on each etcd request; a slower one counts as a failure and is retried.
    pub request_timeout: Dur,
    /// etcd user (etcd's `--auth`); its password comes from `$SHEAF_ETCD_PASSWORD` or, when
    /// that is unset or empty, from `password_file` (trimmed).
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Connect over TLS (endpoints without a scheme become `https://`).
    pub tls: Option<EtcdTls>,
}

/// The environment variable holding the etcd password; it wins over `password_file`.
pub const ETCD_PASSWORD_ENV: &str = "SHEAF_ETCD_PASSWORD";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdTls {
    /// PEM CA certificates that signed etcd's server certificate.
    pub ca_file: PathBuf,
    /// PEM client certificate and key, for etcd's `--client-cert-auth`; both or neither.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl EtcdConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.password_file.is_some() && self.username.is_none() {
            return Err(invalid("cluster.etcd.password_file", "needs cluster.etcd.username"));
        }
        if let Some(tls) = &self.tls
            && tls.cert_file.is_some() != tls.key_file.is_some()
        {
            return Err(invalid("cluster.etcd.tls", "cert_file and key_file go together"));
        }
        Ok(())
    }
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["127.0.0.1:2379".into()],
            environment: "default_env".into(),
            request_timeout: Dur(Duration::from_secs(5)),
            username: None,
            password_file: None,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ElectionConfig {
    /// etcd lease TTL of the campaign: a leader that cannot renew it for this long stops
    /// emitting (M3's `ttlSeconds`).
    pub ttl: Dur,
    /// Backoff between campaign attempts after an error.
    pub campaign_initial_backoff: Dur,
    pub campaign_max_backoff: Dur,
    /// How long `POST /resign` waits for the node to become follower.
    pub resign_timeout: Dur,
    /// After resigning, wait this long before campaigning again, so another replica wins.
    pub recampaign_delay: Dur,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        Self {
            ttl: Dur(Duration::from_secs(10)),
            campaign_initial_backoff: Dur(Duration::from_millis(100)),
            campaign_max_backoff: Dur(Duration::from_secs(2)),
            resign_timeout: Dur(Duration::from_secs(10)),
            recampaign_delay: Dur(Duration::from_secs(1)),
        }
    }
}
