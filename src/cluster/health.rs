//! Whether etcd answers, judged by every request the node agent and its tasks make: the
//! reads and writes, the watches' events and errors, the election's lease renewals and leader
//! queries, and the connection attempts. [`Tracked`] wraps the agent's store and records each
//! outcome in the shared [`EtcdHealth`]; the last outcome wins, so `/status` says
//! `unreachable` from the first failed or unanswered request and `connected` again from the
//! first answered one.
//!
//! Control thread only: the agent, its watch and election tasks record; the admin API (same
//! thread) reads. The flag is an atomic only because those are separate tokio tasks.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::store::{Changes, ClusterStore, Leadership, LeaseId, StoreError, Versioned};

/// A request abandoned by its caller (a caller-side timeout) after waiting this long counts
/// as unanswered. Shorter waits are dropped for other reasons (a task ending) and say nothing.
pub const UNANSWERED_AFTER: Duration = Duration::from_millis(500);

/// etcd's reachability as last observed, and how many requests failed.
#[derive(Debug, Default)]
pub struct EtcdHealth {
    reachable: AtomicBool,
    failures: AtomicU64,
}

impl EtcdHealth {
    /// Unreachable until the first answer.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Records one request's outcome: answered (`true`) or failed / unanswered.
    pub fn record(&self, answered: bool) {
        if !answered {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        let was = self.reachable.swap(answered, Ordering::Relaxed);
        if was != answered {
            if answered {
                tracing::info!("etcd answers again");
            } else {
                tracing::warn!("etcd does not answer");
            }
        }
    }

    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// `/status`'s `etcd` field.
    pub fn describe(&self) -> &'static str {
        if self.reachable() { "connected" } else { "unreachable" }
    }

    /// Requests that failed or went unanswered since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// A store whose every request's outcome is recorded in an [`EtcdHealth`].
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    health: Arc<EtcdHealth>,
}

impl<S: ClusterStore> Tracked<S> {
    pub fn new(inner: S, health: Arc<EtcdHealth>) -> Self {
        Self { inner, health }
    }

    /// The store without tracking.
    #[cfg(test)]
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Runs `request`, recording its outcome; also when it is abandoned after
    /// [`UNANSWERED_AFTER`] without an answer.
    async fn track<T>(&self, request: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        let mut pending = Pending { health: &self.health, since: Instant::now(), settled: false };
        let result = request.await;
        pending.settled = true;
        self.health.record(!result.as_ref().is_err_and(StoreError::is_unanswered));
        result
    }
}

/// A request in flight; dropped unsettled, it was abandoned.
struct Pending<'a> {
    health: &'a EtcdHealth,
    since: Instant,
    settled: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.settled && self.since.elapsed() >= UNANSWERED_AFTER {
            self.health.record(false);
        }
    }
}

impl<S: ClusterStore> ClusterStore for Tracked<S> {
    async fn get(&self, key: &str) -> Result<Versioned, StoreError> {
        self.track(self.inner.get(key)).await
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.track(self.inner.put(key, value)).await
    }

    async fn compare_and_set(&self, key: &str, mod_revision: i64, value: Vec<u8>) -> Result<(), StoreError> {
        self.track(self.inner.compare_and_set(key, mod_revision, value)).await
    }

    async fn watch(&self, key: &str, after: i64) -> Result<Changes, StoreError> {
        let changes = self.track(self.inner.watch(key, after)).await?;
        Ok(changes.tracked(self.health.clone()))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.track(self.inner.grant_lease(ttl)).await
    }

    async fn renew_lease(&self, lease: LeaseId) -> Result<bool, StoreError> {
        self.track(self.inner.renew_lease(lease)).await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.track(self.inner.revoke_lease(lease)).await
    }

    /// A campaign waits as long as another candidate leads, so only its outcome says anything.
    async fn campaign(&self, name: &str, value: &str, lease: LeaseId) -> Result<Leadership, StoreError> {
        let result = self.inner.campaign(name, value, lease).await;
        self.health.record(!result.as_ref().is_err_and(StoreError::is_unanswered));
        result
    }

    async fn resign(&self, leadership: Leadership) -> Result<(), StoreError> {
        self.track(self.inner.resign(leadership)).await
    }

    async fn leader(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.track(self.inner.leader(name)).await
    }
}
