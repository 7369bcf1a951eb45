//! The etcd keys sheaf uses (m3's layout, see `shared/reference/m3-aggregator.md` §3) and a
//! small store over `etcd_client` with a timeout on every request. Control thread only.

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp};

/// Why an etcd operation failed; every variant is retryable except `Conflict`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd request timed out after {0:?}")]
    Timeout(Duration),
    #[error("the value changed since it was read (version {expected}); read it again")]
    Conflict { expected: i64 },
}

/// Where each piece of cluster state lives.
#[derive(Debug, Clone)]
pub struct Keys {
    pub environment: String,
    pub service: String,
}

impl Keys {
    /// The placement: `PlacementSnapshots` proto.
    pub fn placement(&self) -> String {
        format!("/placement/{}/{}", self.environment, self.service)
    }

    /// A shard set's flush times: `ShardSetFlushTimes` proto.
    pub fn flush_times(&self, shard_set: u32) -> String {
        format!("_kv/{}/shardset/{shard_set}/flush", self.environment)
    }

    /// A shard set's election prefix; candidates are lease-bound keys under it.
    pub fn election(&self, shard_set: u32) -> String {
        format!("_ld/{}/{}/shardset/{shard_set}/lock", self.environment, self.service)
    }
}

/// A value and the etcd version it was read at (0: absent).
#[derive(Debug, Clone)]
pub struct Versioned {
    pub value: Option<Vec<u8>>,
    /// The key's mod revision, for compare-and-set.
    pub mod_revision: i64,
    /// How many times the key was written since it was created (M3's placement version).
    pub version: i64,
}

#[derive(Clone)]
pub struct Store {
    client: Client,
    timeout: Duration,
}

impl Store {
    pub async fn connect(endpoints: &[String], timeout: Duration) -> Result<Self, StoreError> {
        // No per-request deadline on the client: a campaign waits as long as it must. The
        // store's own requests are bounded one by one (`bounded`).
        let options =
            ConnectOptions::new().with_connect_timeout(timeout).with_keep_alive(Duration::from_secs(2), timeout);
        let client = tokio::time::timeout(timeout, Client::connect(endpoints, Some(options)))
            .await
            .map_err(|_| StoreError::Timeout(timeout))??;
        Ok(Self { client, timeout })
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        Ok(tokio::time::timeout(self.timeout, f).await.map_err(|_| StoreError::Timeout(self.timeout))??)
    }

    pub async fn get(&self, key: &str) -> Result<Versioned, StoreError> {
        let mut kv = self.client.kv_client();
        let resp = self.bounded(kv.get(key, None::<GetOptions>)).await?;
        Ok(match resp.kvs().first() {
            Some(kv) => {
                Versioned { value: Some(kv.value().to_vec()), mod_revision: kv.mod_revision(), version: kv.version() }
            }
            None => Versioned { value: None, mod_revision: 0, version: 0 },
        })
    }

    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let mut kv = self.client.kv_client();
        self.bounded(kv.put(key, value, None)).await?;
        Ok(())
    }

    /// Writes `value` only if the key is still at `mod_revision` (0: only if absent).
    pub async fn compare_and_set(&self, key: &str, mod_revision: i64, value: Vec<u8>) -> Result<(), StoreError> {
        let mut kv = self.client.kv_client();
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, mod_revision)])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = self.bounded(kv.txn(txn)).await?;
        if resp.succeeded() { Ok(()) } else { Err(StoreError::Conflict { expected: mod_revision }) }
    }
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
