//! [`Tracked`]: the node agent's store, every request's outcome recorded in its
//! [`EtcdHealth`]. Control thread only, like the store it wraps: the agent, its watch tasks
//! and its election task call it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::health::EtcdHealth;
use super::store::{Changes, ClusterStore, Leadership, LeaseId, StoreError, Versioned};

/// A request abandoned by its caller (a caller-side timeout) after waiting this long counts
/// as unanswered. Shorter waits are dropped for other reasons (a task ending) and say nothing.
pub const UNANSWERED_AFTER: Duration = Duration::from_millis(500);

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

    async fn compare_and_delete(&self, key: &str, mod_revision: i64) -> Result<(), StoreError> {
        self.track(self.inner.compare_and_delete(key, mod_revision)).await
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
