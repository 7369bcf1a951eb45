//! M3's runtime options in cluster mode: the write rate limits, watched in etcd at
//! `_kv/{environment}/{service}/runtime-options` by every node. A tokio task on the control
//! thread; what it decides reaches the cores as `ShardCommand::SetRateLimits` on their queues.
//!
//! The key holds JSON with the keys of `aggregator.rate_limits`
//! (`{"values_per_series_per_second": 100, "new_series_per_second": 1000,
//! "new_series_warmup": "10m"}`); a key left out is 0. While the key exists it replaces the
//! config's section whole; once deleted, the config's applies again. A value that does not
//! parse is logged and counted, and the limits in effect stay. The cluster-wide new-series
//! limit is divided by the shards and the placement's replication factor, so a placement
//! change updates it too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use sheaf_shard_core::RateLimitSettings;
use tokio::sync::{mpsc, watch};

use super::cores::{CoreCommand, Cores};
use super::etcd::Keys;
use super::placement::decode_snapshots;
use super::store::{ClusterStore, Versioned};
use crate::config::RateLimits;

/// What `/status` and `/metrics` read of the task.
#[derive(Debug, Default)]
pub struct RuntimeOptionsView {
    /// Values of the runtime options key that did not parse (the limits stayed).
    pub invalid_values: AtomicU64,
    /// Whether the limits in effect come from the key (else from the config).
    pub from_etcd: AtomicBool,
}

/// Where the limits in effect come from, and what the placement says.
struct Inputs {
    config: RateLimits,
    /// The key's limits while it exists and parses.
    runtime: Option<RateLimits>,
    replication_factor: u32,
    num_shards: u32,
}

impl Inputs {
    fn settings(&self) -> RateLimitSettings {
        self.runtime.unwrap_or(self.config).for_cores(self.num_shards, self.replication_factor)
    }

    /// Takes a value of the runtime options key; false if it does not parse (nothing changes).
    fn runtime_options(&mut self, value: Option<&[u8]>) -> bool {
        match value.map(serde_json::from_slice::<RateLimits>) {
            None => self.runtime = None,
            Some(Ok(limits)) => self.runtime = Some(limits),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "runtime options key is not valid JSON of aggregator.rate_limits; the limits in effect stay");
                return false;
            }
        }
        true
    }

    /// Takes a placement (its replication factor); an unreadable one changes nothing.
    fn placement(&mut self, value: Option<&[u8]>) {
        if let Some(Ok(p)) = value.map(decode_snapshots) {
            self.replication_factor = p.replication_factor.max(1);
        }
    }
}

/// Starts the task once the agent has a store; it ends when the store is gone for good.
pub fn spawn<S: ClusterStore, K: Cores>(
    mut store: watch::Receiver<Option<S>>,
    keys: Keys,
    config: RateLimits,
    num_shards: u32,
    cores: K,
) -> Arc<RuntimeOptionsView> {
    let view = Arc::new(RuntimeOptionsView::default());
    let counts = view.clone();
    tokio::spawn(async move {
        let Ok(store) = store.wait_for(Option::is_some).await.map(|s| s.clone()) else { return };
        let Some(store) = store else { return };
        let options = super::watch::spawn(store.clone(), keys.runtime_options());
        let placement = super::watch::spawn(store, keys.placement());
        let inputs = Inputs { config, runtime: None, replication_factor: 1, num_shards };
        follow(inputs, options, placement, &cores, &counts).await;
    });
    view
}

async fn follow<K: Cores>(
    mut inputs: Inputs,
    mut options: mpsc::Receiver<Versioned>,
    mut placement: mpsc::Receiver<Versioned>,
    cores: &K,
    view: &RuntimeOptionsView,
) {
    let mut applied = inputs.settings();
    loop {
        tokio::select! {
            Some(v) = options.recv() => {
                if !inputs.runtime_options(v.value.as_deref()) {
                    view.invalid_values.fetch_add(1, Relaxed);
                }
            }
            Some(v) = placement.recv() => inputs.placement(v.value.as_deref()),
            else => return,
        }
        let settings = inputs.settings();
        if settings != applied {
            tracing::info!(?settings, from_etcd = inputs.runtime.is_some(), "rate limits changed");
            cores.apply(CoreCommand::RateLimits(settings)).await;
            applied = settings;
        }
        view.from_etcd.store(inputs.runtime.is_some(), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        let config = RateLimits { values_per_series_per_second: 10, ..RateLimits::default() };
        Inputs { config, runtime: None, replication_factor: 1, num_shards: 8 }
    }

    #[test]
    fn the_key_replaces_the_config_while_it_exists_and_a_bad_value_changes_nothing() {
        let mut i = inputs();
        assert_eq!(i.settings().values_per_series_per_second, 10);
        assert!(i.runtime_options(Some(br#"{"new_series_per_second": 100, "new_series_warmup": "10m"}"#)));
        let s = i.settings();
        assert_eq!(
            (s.values_per_series_per_second, s.new_series_per_shard_per_second, s.new_series_warmup),
            (0, 13, 600_000_000_000)
        );
        i.replication_factor = 2;
        assert_eq!(i.settings().new_series_per_shard_per_second, 7);
        assert!(!i.runtime_options(Some(b"{\"values_per_series\": 5}")));
        assert!(!i.runtime_options(Some(b"not json")));
        assert_eq!(i.settings().new_series_per_shard_per_second, 7);
        assert!(i.runtime_options(None));
        assert_eq!(i.settings().values_per_series_per_second, 10);
    }
}
