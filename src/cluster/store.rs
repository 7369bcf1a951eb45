//! What cluster mode needs of etcd, as a trait: keys to read and write (compare-and-set for
//! the placement), a watch on one key, leases, and one election per name. Two stores implement
//! it: [`etcd::Store`](super::etcd::Store) over `etcd_client`, and, for tests, the in-memory
//! `memory::MemoryStore` with the same semantics (revisions, ordered watches, expiring leases,
//! one leader at a time with a queue of candidates) and outages a test can switch on and off.
//!
//! Every future here runs on the control thread's tokio runtime: the node agent, its watch
//! tasks, the election task and the placement API call these methods; no shard core does.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::health::EtcdHealth;

/// Why a store operation failed; every variant is retryable except `Conflict`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd request timed out after {0:?}")]
    Timeout(Duration),
    #[error("the value changed since it was read (version {expected}); read it again")]
    Conflict { expected: i64 },
    #[error("etcd is unreachable")]
    Unreachable,
    /// A watch or an election ended in a way the caller can only answer by starting over.
    #[error("{0}")]
    Interrupted(&'static str),
}

impl StoreError {
    /// Whether this error says etcd did not answer (a refusal such as a conflict is an answer).
    pub fn is_unanswered(&self) -> bool {
        !matches!(self, StoreError::Conflict { .. })
    }
}

/// A value and the etcd version it was read at (0: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Option<Vec<u8>>,
    /// The key's mod revision, for compare-and-set (0: absent).
    pub mod_revision: i64,
    /// How many times the key was written since it was created (M3's placement version).
    pub version: i64,
    /// The store's revision when this was read: a watch from here misses no later change.
    /// For a change delivered by a watch, its own mod revision.
    pub read_at: i64,
}

/// An etcd lease id.
pub type LeaseId = i64;

/// Proof of leadership in one election, as `campaign` returns it; `resign` takes it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    /// The election's name (the prefix its candidates' keys live under).
    pub name: String,
    /// This candidate's key.
    pub key: Vec<u8>,
    /// The key's create revision.
    pub rev: i64,
    pub lease: LeaseId,
}

/// The changes of one watched key, in revision order. `None` once the watch has ended; an
/// error item ends it too. Dropping it cancels the watch.
pub struct Changes {
    changes: mpsc::UnboundedReceiver<Result<Versioned, StoreError>>,
    /// Where each change (etcd answered) and error (it did not) is recorded, if anywhere.
    health: Option<Arc<EtcdHealth>>,
}

impl Changes {
    pub(crate) fn new(changes: mpsc::UnboundedReceiver<Result<Versioned, StoreError>>) -> Self {
        Self { changes, health: None }
    }

    /// The same changes, each one's outcome recorded in `health`.
    pub(crate) fn tracked(self, health: Arc<EtcdHealth>) -> Self {
        Self { health: Some(health), ..self }
    }

    pub async fn next(&mut self) -> Option<Result<Versioned, StoreError>> {
        let change = self.changes.recv().await;
        if let (Some(health), Some(c)) = (&self.health, &change) {
            health.record(!c.as_ref().is_err_and(StoreError::is_unanswered));
        }
        change
    }
}

/// The store operations cluster mode uses. Implementations are cheap handles (`Clone`) onto
/// one connection; every method may fail with a retryable [`StoreError`].
pub trait ClusterStore: Clone + Send + Sync + 'static {
    fn get(&self, key: &str) -> impl Future<Output = Result<Versioned, StoreError>> + Send;

    fn put(&self, key: &str, value: Vec<u8>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes `value` only if the key is still at `mod_revision` (0: only if absent).
    fn compare_and_set(
        &self,
        key: &str,
        mod_revision: i64,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes `key` only if it is still at `mod_revision`.
    fn compare_and_delete(&self, key: &str, mod_revision: i64) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every change of `key` after revision `after` (a delete arrives as an absent value).
    fn watch(&self, key: &str, after: i64) -> impl Future<Output = Result<Changes, StoreError>> + Send;

    /// A lease that expires `ttl` after its last renewal (etcd rounds up to whole seconds).
    fn grant_lease(&self, ttl: Duration) -> impl Future<Output = Result<LeaseId, StoreError>> + Send;

    /// Renews `lease` for another TTL; false if it is gone (expired or revoked).
    fn renew_lease(&self, lease: LeaseId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Ends `lease` now, deleting the keys bound to it.
    fn revoke_lease(&self, lease: LeaseId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Joins election `name` as a candidate with `value`, bound to `lease`, and resolves once
    /// this candidate leads: candidates are served in the order they joined.
    fn campaign(
        &self,
        name: &str,
        value: &str,
        lease: LeaseId,
    ) -> impl Future<Output = Result<Leadership, StoreError>> + Send;

    /// Gives a leadership up; the next candidate in line leads.
    fn resign(&self, leadership: Leadership) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The value of election `name`'s current leader (None: nobody leads).
    fn leader(&self, name: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

/// How the node agent gets its store. Connecting may fail (etcd down); the agent retries it
/// with backoff while the cores aggregate on.
pub trait Connect: Send + Sync + 'static {
    type Store: ClusterStore;

    fn connect(&self) -> impl Future<Output = Result<Self::Store, StoreError>> + Send;
}

/// Exponential backoff for retries: `initial`, doubling, capped at `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    next: Duration,
    initial: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { next: initial, initial, max }
    }

    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}
