//! The etcd keys sheaf uses (m3aggregator's layout, so M3 tools read them) and the
//! [`ClusterStore`] over `etcd_client`, with a timeout on every request but a campaign (which
//! waits as long as it must). Control thread only: the node agent, its watch and election
//! tasks, the placement API and `sheaf placement` use it.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, LeaderKey, ResignOptions, Txn, TxnOp,
    WatchOptions,
};
use tokio::sync::mpsc;

use super::store::{Changes, ClusterStore, Connect, Leadership, LeaseId, StoreError, Versioned};

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

/// A connection to etcd (a cheap handle: clones share it).
#[derive(Clone)]
pub struct Store {
    client: Client,
    timeout: Duration,
}

impl Store {
    pub async fn connect(endpoints: &[String], timeout: Duration) -> Result<Self, StoreError> {
        // No per-request deadline on the client: a campaign waits as long as it must. The
        // store's other requests are bounded one by one (`bounded`).
        let options =
            ConnectOptions::new().with_connect_timeout(timeout).with_keep_alive(Duration::from_secs(2), timeout);
        let client = tokio::time::timeout(timeout, Client::connect(endpoints, Some(options)))
            .await
            .map_err(|_| StoreError::Timeout(timeout))??;
        Ok(Self { client, timeout })
    }

    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        Ok(tokio::time::timeout(self.timeout, f).await.map_err(|_| StoreError::Timeout(self.timeout))??)
    }
}

/// Connects to the configured endpoints, for the node agent.
pub struct Endpoints {
    pub endpoints: Vec<String>,
    pub timeout: Duration,
}

impl Connect for Endpoints {
    type Store = Store;

    async fn connect(&self) -> Result<Store, StoreError> {
        Store::connect(&self.endpoints, self.timeout).await
    }
}

impl ClusterStore for Store {
    async fn get(&self, key: &str) -> Result<Versioned, StoreError> {
        let mut kv = self.client.kv_client();
        let resp = self.bounded(kv.get(key, None::<GetOptions>)).await?;
        let read_at = resp.header().map_or(0, |h| h.revision());
        Ok(match resp.kvs().first() {
            Some(kv) => Versioned {
                value: Some(kv.value().to_vec()),
                mod_revision: kv.mod_revision(),
                version: kv.version(),
                read_at,
            },
            None => Versioned { value: None, mod_revision: 0, version: 0, read_at },
        })
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let mut kv = self.client.kv_client();
        self.bounded(kv.put(key, value, None)).await?;
        Ok(())
    }

    async fn compare_and_set(&self, key: &str, mod_revision: i64, value: Vec<u8>) -> Result<(), StoreError> {
        let mut kv = self.client.kv_client();
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, mod_revision)])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = self.bounded(kv.txn(txn)).await?;
        if resp.succeeded() { Ok(()) } else { Err(StoreError::Conflict { expected: mod_revision }) }
    }

    async fn watch(&self, key: &str, after: i64) -> Result<Changes, StoreError> {
        let mut client = self.client.clone();
        let options = if after > 0 { WatchOptions::new().with_start_revision(after + 1) } else { WatchOptions::new() };
        let mut stream = self.bounded(client.watch(key, Some(options))).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        // Pumps etcd's stream into `Changes` until either side ends; dropping the stream
        // cancels the watch in etcd.
        tokio::spawn(async move {
            loop {
                let resp = tokio::select! {
                    r = stream.message() => r,
                    _ = tx.closed() => return,
                };
                let resp = match resp {
                    Ok(Some(resp)) => resp,
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e.into()));
                        return;
                    }
                };
                if resp.canceled() {
                    let _ = tx.send(Err(StoreError::Interrupted("etcd canceled the watch")));
                    return;
                }
                for event in resp.events() {
                    let Some(kv) = event.kv() else { continue };
                    let revision = kv.mod_revision();
                    let change = match event.event_type() {
                        EventType::Put => Versioned {
                            value: Some(kv.value().to_vec()),
                            mod_revision: revision,
                            version: kv.version(),
                            read_at: revision,
                        },
                        EventType::Delete => {
                            Versioned { value: None, mod_revision: revision, version: 0, read_at: revision }
                        }
                    };
                    if tx.send(Ok(change)).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Changes::new(rx))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let seconds = ttl.as_secs_f64().ceil().max(1.0) as i64;
        Ok(self.bounded(self.client.clone().lease_grant(seconds, None)).await?.id())
    }

    async fn renew_lease(&self, lease: LeaseId) -> Result<bool, StoreError> {
        let mut client = self.client.clone();
        // Opening the keep-alive stream sends one keep-alive and waits for its answer: that is
        // the renewal. etcd answers a lease it no longer has with TTL 0, which etcd_client
        // turns into this error.
        match self.bounded(client.lease_keep_alive(lease)).await {
            Ok(_) => Ok(true),
            Err(StoreError::Etcd(etcd_client::Error::LeaseKeepAliveError(e))) if e == "lease not found" => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.bounded(self.client.clone().lease_revoke(lease)).await?;
        Ok(())
    }

    async fn campaign(&self, name: &str, value: &str, lease: LeaseId) -> Result<Leadership, StoreError> {
        let mut election = self.client.election_client();
        let resp = election.campaign(name, value, lease).await?;
        let key = resp.leader().ok_or(StoreError::Interrupted("etcd answered a campaign without a leader key"))?;
        Ok(Leadership {
            name: String::from_utf8_lossy(key.name()).into_owned(),
            key: key.key().to_vec(),
            rev: key.rev(),
            lease: key.lease(),
        })
    }

    async fn resign(&self, leadership: Leadership) -> Result<(), StoreError> {
        let key = LeaderKey::new()
            .with_name(leadership.name)
            .with_key(leadership.key)
            .with_rev(leadership.rev)
            .with_lease(leadership.lease);
        let mut election = self.client.election_client();
        self.bounded(election.resign(Some(ResignOptions::new().with_leader(key)))).await?;
        Ok(())
    }

    async fn leader(&self, name: &str) -> Result<Option<String>, StoreError> {
        let mut election = self.client.election_client();
        match self.bounded(election.leader(name)).await {
            Ok(resp) => Ok(resp.kv().and_then(|kv| kv.value_str().ok().map(str::to_string))),
            // etcd answers an election without candidates with this error.
            Err(StoreError::Etcd(etcd_client::Error::GRpcStatus(s))) if s.message().contains("no leader") => Ok(None),
            Err(e) => Err(e),
        }
    }
}
