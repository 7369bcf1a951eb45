//! The etcd keys sheaf uses (m3aggregator's layout, so M3 tools read them) and the
//! [`ClusterStore`] over `etcd_client`, with a timeout on every request but a campaign (which
//! waits as long as it must), over TLS and as an etcd user when the config says so. Control thread only: the node agent, its watch and election
//! tasks, the placement API and `sheaf placement` use it.

use std::time::Duration;

use std::path::Path;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity, LeaderKey, ResignOptions,
    TlsOptions, Txn, TxnOp, WatchOptions,
};
use tokio::sync::mpsc;

use super::store::{Changes, ClusterStore, Connect, Leadership, LeaseId, StoreError, Versioned};
use crate::config::{ETCD_PASSWORD_ENV, EtcdConfig};

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

    /// A shard set's `sync_id`s (sheaf's own, JSON: `sync_ids::SyncRecord`).
    pub fn sync_ids(&self, shard_set: u32) -> String {
        format!("_kv/{}/sheaf/shardset/{shard_set}/sync", self.environment)
    }

    /// The runtime options (M3's runtime options KV): JSON with the keys of
    /// `aggregator.rate_limits`, replacing that section on every node while it exists.
    pub fn runtime_options(&self) -> String {
        format!("_kv/{}/{}/runtime-options", self.environment, self.service)
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
    pub async fn connect(etcd: &Endpoints) -> Result<Self, StoreError> {
        let timeout = etcd.timeout;
        // No per-request deadline on the client: a campaign waits as long as it must. The
        // store's other requests are bounded one by one (`bounded`).
        let mut options =
            ConnectOptions::new().with_connect_timeout(timeout).with_keep_alive(Duration::from_secs(2), timeout);
        if let Some(tls) = &etcd.tls {
            options = options.with_tls(tls.clone());
        }
        if let Some((user, password)) = &etcd.user {
            options = options.with_user(user.clone(), password.clone());
        }
        let client = tokio::time::timeout(timeout, Client::connect(&etcd.endpoints, Some(options)))
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

/// Where etcd is and how to log in, with the files the config names read once.
#[derive(Clone)]
pub struct Endpoints {
    pub endpoints: Vec<String>,
    pub timeout: Duration,
    tls: Option<TlsOptions>,
    /// (user, password)
    user: Option<(String, String)>,
}

/// An etcd credential the config names that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{key}: reading {path}: {error}")]
    Read { key: &'static str, path: String, error: std::io::Error },
    #[error("{key}: {path} is empty")]
    Empty { key: &'static str, path: String },
    #[error("cluster.etcd.username is set but no password: set ${ETCD_PASSWORD_ENV} or cluster.etcd.password_file")]
    NoPassword,
}

impl Endpoints {
    /// Plain endpoints: no TLS, no user.
    pub fn plain(endpoints: Vec<String>, timeout: Duration) -> Self {
        Self { endpoints, timeout, tls: None, user: None }
    }

    /// Reads the TLS files and the password `etcd` names (`$SHEAF_ETCD_PASSWORD` wins over
    /// `password_file`).
    pub fn from_config(etcd: &EtcdConfig) -> Result<Self, CredentialError> {
        let mut access = Self::plain(etcd.endpoints.clone(), etcd.request_timeout.0);
        if let Some(tls) = &etcd.tls {
            let mut options = TlsOptions::new()
                .ca_certificate(Certificate::from_pem(read("cluster.etcd.tls.ca_file", &tls.ca_file)?));
            if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
                let cert = read("cluster.etcd.tls.cert_file", cert)?;
                options = options.identity(Identity::from_pem(cert, read("cluster.etcd.tls.key_file", key)?));
            }
            access.tls = Some(options);
        }
        if let Some(user) = &etcd.username {
            let password = match std::env::var(ETCD_PASSWORD_ENV) {
                Ok(p) if !p.trim().is_empty() => p.trim().to_string(),
                _ => match &etcd.password_file {
                    Some(path) => {
                        let text =
                            String::from_utf8_lossy(&read("cluster.etcd.password_file", path)?).trim().to_string();
                        if text.is_empty() {
                            return Err(CredentialError::Empty {
                                key: "cluster.etcd.password_file",
                                path: path.display().to_string(),
                            });
                        }
                        text
                    }
                    None => return Err(CredentialError::NoPassword),
                },
            };
            access.user = Some((user.clone(), password));
        }
        Ok(access)
    }
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, CredentialError> {
    std::fs::read(path).map_err(|error| CredentialError::Read { key, path: path.display().to_string(), error })
}

impl Connect for Endpoints {
    type Store = Store;

    async fn connect(&self) -> Result<Store, StoreError> {
        Store::connect(self).await
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

    async fn compare_and_delete(&self, key: &str, mod_revision: i64) -> Result<(), StoreError> {
        let mut kv = self.client.kv_client();
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, mod_revision)])
            .and_then([TxnOp::delete(key, None)]);
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
