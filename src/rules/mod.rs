//! The rule set of the series sheaf receives without metadata, on the control thread: where it
//! comes from (the config's `rules:`, `PUT /api/v1/rules`, or in cluster mode the etcd key
//! `_kv/{environment}/sheaf/rules` that every node watches), when a change applies (its
//! cutover), and the `SetRules` command that hands it to every shard core.
//!
//! A change applies to series created from its cutover on: the first boundary of the coarsest
//! resolution (of the default policies and of every policy the old and new rules name) that
//! is at least [`PROPAGATION_MARGIN`] after the change was made. The cutover travels with the
//! rule set (in etcd), so every replica switches at the same instant. A series that exists
//! keeps what the rules gave it when it was created, until it expires (`entry_ttl`).
//!
//! On a single node (no `cluster:`), `PUT` replaces the rule set in memory only: a restart
//! goes back to the config's `rules:`.

pub mod api;
pub mod cli;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sheaf_shard_core::StoragePolicy;
use sheaf_shard_core::rules::{RuleError, RuleSet};
use sheaf_shard_core::time::{UnixNanos, now_nanos, truncate};
use sheaf_shard_runtime::{Commander, ShardCommand};

use crate::cluster::etcd::{Endpoints, Store};
use crate::cluster::store::{Backoff, ClusterStore, StoreError};
use crate::config::RulesConfig;

/// How long after a change its cutover comes, at least: time for etcd to reach every node.
pub const PROPAGATION_MARGIN: Duration = Duration::from_secs(5);

/// The etcd key of an environment's rule set.
pub fn etcd_key(environment: &str) -> String {
    format!("_kv/{environment}/sheaf/rules")
}

/// What the etcd key holds (JSON): the rule set and the instant it applies from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StoredRules {
    pub cutover_nanos: i64,
    pub rules: RulesConfig,
}

/// Where the rule set in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Config,
    Api,
    Etcd,
}

/// The rule set the cores were last given.
#[derive(Debug, Clone)]
pub struct Current {
    pub config: RulesConfig,
    pub compiled: Arc<RuleSet>,
    pub cutover: UnixNanos,
    pub source: Source,
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("invalid rule set: {0}")]
    Invalid(#[from] RuleError),
    #[error("storing the rule set in etcd: {0}")]
    Store(#[from] StoreError),
}

/// The node's rule set and its way to the cores. Shared (`Arc`) by the admin handlers and the
/// etcd watch task, all on the control thread; the mutex guards control-plane state only and is
/// never held across an `.await`.
pub struct Rules {
    current: Mutex<Current>,
    cores: Commander,
    min_resolution: i64,
    default_policies: Vec<StoragePolicy>,
    /// Cluster mode: where the rule set lives.
    store: Option<RulesStore>,
}

/// Cluster mode: the etcd key of the rule set, and a connection made on first use (etcd may be
/// down when the node starts; the cores then keep the config's rules until it answers).
pub struct RulesStore {
    endpoints: Endpoints,
    key: String,
    connected: tokio::sync::OnceCell<Store>,
}

impl RulesStore {
    pub fn new(endpoints: Endpoints, environment: &str) -> Self {
        Self { endpoints, key: etcd_key(environment), connected: tokio::sync::OnceCell::new() }
    }

    async fn store(&self) -> Result<&Store, StoreError> {
        self.connected.get_or_try_init(|| Store::connect(&self.endpoints)).await
    }
}

impl Rules {
    /// Starts with the config's rules (already checked when the config loaded), in force at once.
    pub fn new(
        config: RulesConfig,
        min_resolution: i64,
        default_policies: Vec<StoragePolicy>,
        cores: Commander,
        store: Option<RulesStore>,
    ) -> Result<Arc<Self>, RulesError> {
        let compiled = Arc::new(config.compile(min_resolution)?);
        let current = Current { config, compiled, cutover: UnixNanos::MIN, source: Source::Config };
        let rules = Arc::new(Self { current: Mutex::new(current), cores, min_resolution, default_policies, store });
        rules.send_to_cores();
        Ok(rules)
    }

    /// The rule set in force (or coming into force at its cutover).
    pub fn current(&self) -> Current {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `/status`'s `rules`: how many rules of each kind, from when, from where.
    pub fn status_view(&self) -> serde_json::Value {
        let c = self.current();
        serde_json::json!({
            "mapping_rules": c.compiled.mapping_rules.len(),
            "rollup_rules": c.compiled.rollup_rules.len(),
            "cutover_nanos": c.cutover,
            "source": c.source,
        })
    }

    pub fn cluster_mode(&self) -> bool {
        self.store.is_some()
    }

    /// Replaces the rule set: checked whole, then (cluster mode) written to etcd for every node
    /// to pick up, and applied here. Returns its cutover.
    pub async fn replace(&self, config: RulesConfig) -> Result<UnixNanos, RulesError> {
        let compiled = config.compile(self.min_resolution)?;
        let old = self.current();
        let policies = compiled.policies().chain(old.compiled.policies()).chain(self.default_policies.iter().copied());
        let cutover = cutover_after(now_nanos(), policies);
        let source = match &self.store {
            Some(at) => {
                let stored = StoredRules { cutover_nanos: cutover, rules: config.clone() };
                let value = serde_json::to_vec(&stored).expect("the rule schema serializes");
                at.store().await?.put(&at.key, value).await?;
                Source::Etcd
            }
            None => Source::Api,
        };
        self.install(Current { config, compiled: Arc::new(compiled), cutover, source });
        Ok(cutover)
    }

    /// Cluster mode: reads the etcd key once, so that the cores match with the cluster's rule
    /// set (not the config's) from their first value; an unreachable etcd is logged and left to
    /// the watch.
    pub async fn read_stored(&self) {
        let Some(at) = &self.store else { return };
        let key = &at.key;
        match async { at.store().await?.get(key).await }.await {
            Ok(current) => {
                if let Some(value) = current.value {
                    self.apply_stored(key, &value);
                }
            }
            Err(e) => tracing::warn!(%key, error = %e, "rule set not read from etcd yet; the watch will retry"),
        }
    }

    /// Applies a rule set read from etcd; an invalid one (written by hand) is logged and ignored.
    fn apply_stored(&self, key: &str, value: &[u8]) {
        match serde_json::from_slice::<StoredRules>(value) {
            Ok(stored) => match stored.rules.compile(self.min_resolution) {
                Ok(compiled) => self.install(Current {
                    config: stored.rules,
                    compiled: Arc::new(compiled),
                    cutover: stored.cutover_nanos,
                    source: Source::Etcd,
                }),
                Err(e) => tracing::error!(%key, error = %e, "rule set in etcd refused; keeping the one in force"),
            },
            Err(e) => tracing::error!(%key, error = %e, "rule set in etcd unreadable; keeping the one in force"),
        }
    }

    /// Cluster mode: follows the etcd key, applying each valid rule set it holds; an invalid
    /// one (written by hand) is logged and ignored. Returns at once on a single node.
    pub fn spawn_watch(self: &Arc<Self>) {
        if self.store.is_none() {
            return;
        }
        let rules = Arc::clone(self);
        tokio::spawn(async move {
            let Some(at) = &rules.store else { return };
            let key = at.key.clone();
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
            let store = loop {
                match at.store().await {
                    Ok(store) => break store.clone(),
                    Err(e) => {
                        let delay = backoff.next_delay();
                        tracing::debug!(%key, error = %e, ?delay, "etcd not reached for the rules; trying again");
                        tokio::time::sleep(delay).await;
                    }
                }
            };
            let mut changes = crate::cluster::watch::spawn(store, key.clone());
            while let Some(change) = changes.recv().await {
                if let Some(value) = change.value {
                    rules.apply_stored(&key, &value);
                }
            }
        });
    }

    fn install(&self, next: Current) {
        {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            if current.config == next.config && current.cutover == next.cutover {
                return;
            }
            tracing::info!(
                mapping_rules = next.compiled.mapping_rules.len(),
                rollup_rules = next.compiled.rollup_rules.len(),
                cutover = next.cutover,
                source = ?next.source,
                "rule set replaced"
            );
            *current = next;
        }
        self.send_to_cores();
    }

    fn send_to_cores(&self) {
        let Current { compiled, cutover, .. } = self.current();
        self.cores.send_all(|| ShardCommand::SetRules { rules: Arc::clone(&compiled), cutover });
    }
}

/// The first boundary of the coarsest of `policies`' resolutions (1 minute when there is none)
/// at least `PROPAGATION_MARGIN` after `now`.
pub fn cutover_after(now: UnixNanos, policies: impl Iterator<Item = StoragePolicy>) -> UnixNanos {
    let coarsest = policies.map(|p| p.resolution_nanos).max().unwrap_or(60_000_000_000).max(1);
    let earliest = now.saturating_add(PROPAGATION_MARGIN.as_nanos() as i64);
    let boundary = truncate(earliest, coarsest);
    if boundary == earliest { boundary } else { boundary.saturating_add(coarsest) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutover_is_the_next_coarsest_boundary_after_the_margin() {
        let p = |s: &str| s.parse::<StoragePolicy>().unwrap();
        let s = 1_000_000_000;
        assert_eq!(cutover_after(100 * s, [p("10s:2d"), p("1m:40d")].into_iter()), 120 * s);
        assert_eq!(cutover_after(116 * s, [p("10s:2d"), p("1m:40d")].into_iter()), 180 * s);
        assert_eq!(cutover_after(55 * s, [p("10s:2d")].into_iter()), 60 * s);
        assert_eq!(cutover_after(0, std::iter::empty()), 60 * s);
    }
}
