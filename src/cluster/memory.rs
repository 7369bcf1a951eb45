//! An in-memory etcd for tests: the [`ClusterStore`] semantics the agent relies on, without a
//! server. One [`MemoryEtcd`] is the server; each node gets its own [`MemoryStore`] client, so
//! a test can cut one node off (`cut`/`restore`) or stop the whole server (`stop`/`start`).
//!
//! - Every write bumps one global revision; keys carry create/mod revisions and a version.
//! - A watch replays the changes after its start revision from the history, then delivers new
//!   ones in order; an outage ends it with an error.
//! - Leases expire `ttl` after their last renewal (on the tokio clock), deleting their keys;
//!   a stopped server lets none expire and restarts them in full, as etcd does.
//! - An election is etcd's recipe: each candidate puts `{name}/{lease:x}` bound to its lease,
//!   and the one with the lowest create revision leads.
//!
//! It runs on whatever tokio runtime the test uses; all state sits behind one mutex that no
//! `.await` holds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::store::{Changes, ClusterStore, Connect, Leadership, LeaseId, StoreError, Versioned};

/// The server: what every client sees.
#[derive(Clone)]
pub struct MemoryEtcd {
    shared: Arc<Shared>,
}

/// One client's connection to a [`MemoryEtcd`].
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
    client: u64,
}

struct Shared {
    state: Mutex<State>,
    /// Bumped at every change (writes, expiries, outages) to wake campaigns.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    revision: i64,
    kvs: BTreeMap<String, Entry>,
    /// Every change in revision order, for watches that start in the past.
    history: Vec<(String, Versioned)>,
    leases: HashMap<LeaseId, Lease>,
    next_lease: LeaseId,
    watchers: Vec<Watcher>,
    next_client: u64,
    stopped: bool,
    cut: HashSet<u64>,
}

struct Entry {
    value: Vec<u8>,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    lease: Option<LeaseId>,
}

struct Lease {
    ttl: Duration,
    deadline: Instant,
}

struct Watcher {
    client: u64,
    key: String,
    tx: mpsc::UnboundedSender<Result<Versioned, StoreError>>,
}

impl MemoryEtcd {
    pub fn new() -> Self {
        let shared = Shared { state: Mutex::new(State::default()), changed: watch::channel(0).0 };
        Self { shared: Arc::new(shared) }
    }

    /// A new client connection.
    pub fn client(&self) -> MemoryStore {
        let mut state = self.shared.lock();
        state.next_client += 1;
        MemoryStore { shared: self.shared.clone(), client: state.next_client }
    }

    /// Stops the server: every request fails, every watch ends, no lease expires meanwhile.
    pub fn stop(&self) {
        let mut state = self.shared.lock();
        state.stopped = true;
        for w in std::mem::take(&mut state.watchers) {
            let _ = w.tx.send(Err(StoreError::Unreachable));
        }
        drop(state);
        self.shared.bump();
    }

    /// Starts it again with its data; leases get their whole TTL again.
    pub fn start(&self) {
        let mut state = self.shared.lock();
        state.stopped = false;
        let now = Instant::now();
        for lease in state.leases.values_mut() {
            lease.deadline = now + lease.ttl;
        }
        drop(state);
        self.shared.bump();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

impl MemoryStore {
    /// Cuts this client off: its requests fail and its watches end until [`Self::restore`];
    /// the server goes on (its leases expire).
    pub fn cut(&self) {
        let mut state = self.shared.lock();
        state.cut.insert(self.client);
        let (ended, kept): (Vec<Watcher>, Vec<Watcher>) =
            std::mem::take(&mut state.watchers).into_iter().partition(|w| w.client == self.client);
        state.watchers = kept;
        for w in ended {
            let _ = w.tx.send(Err(StoreError::Unreachable));
        }
        drop(state);
        self.shared.bump();
    }

    pub fn restore(&self) {
        self.shared.lock().cut.remove(&self.client);
        self.shared.bump();
    }

    /// The state, once this client can reach the server; leases past their deadline are
    /// expired first.
    fn reach(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        let mut state = self.shared.lock();
        if state.stopped || state.cut.contains(&self.client) {
            return Err(StoreError::Unreachable);
        }
        if state.expire(Instant::now()) {
            self.shared.bump();
        }
        Ok(state)
    }

    /// Runs `f` once this client reaches the server, and again at each change (or lease
    /// deadline) until it returns `Some`.
    async fn wait_for<T>(
        &self,
        mut f: impl FnMut(&mut State) -> Result<Option<T>, StoreError>,
    ) -> Result<T, StoreError> {
        loop {
            let mut changed = self.shared.changed.subscribe();
            let next_deadline = {
                let mut state = self.reach()?;
                if let Some(done) = f(&mut state)? {
                    return Ok(done);
                }
                state.leases.values().map(|l| l.deadline).min()
            };
            let expiry = async {
                match next_deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = changed.changed() => {}
                _ = expiry => {}
            }
        }
    }
}

impl State {
    fn write(&mut self, key: &str, value: Option<Vec<u8>>, lease: Option<LeaseId>) {
        self.revision += 1;
        let revision = self.revision;
        let change = match value {
            Some(value) => {
                let entry = self.kvs.entry(key.to_string()).or_insert(Entry {
                    value: Vec::new(),
                    create_revision: revision,
                    mod_revision: 0,
                    version: 0,
                    lease,
                });
                entry.value = value;
                entry.mod_revision = revision;
                entry.version += 1;
                Versioned {
                    value: Some(entry.value.clone()),
                    mod_revision: revision,
                    version: entry.version,
                    read_at: revision,
                }
            }
            None => {
                self.kvs.remove(key);
                Versioned { value: None, mod_revision: revision, version: 0, read_at: revision }
            }
        };
        self.watchers.retain(|w| w.key != key || w.tx.send(Ok(change.clone())).is_ok());
        self.history.push((key.to_string(), change));
    }

    /// Expires the leases past their deadline; true if any did.
    fn expire(&mut self, now: Instant) -> bool {
        let expired: Vec<LeaseId> = self.leases.iter().filter(|(_, l)| l.deadline <= now).map(|(id, _)| *id).collect();
        for id in &expired {
            self.drop_lease(*id);
        }
        !expired.is_empty()
    }

    fn drop_lease(&mut self, id: LeaseId) {
        self.leases.remove(&id);
        let keys: Vec<String> = self.kvs.iter().filter(|(_, e)| e.lease == Some(id)).map(|(k, _)| k.clone()).collect();
        for key in keys {
            self.write(&key, None, None);
        }
    }

    fn read(&self, key: &str) -> Versioned {
        match self.kvs.get(key) {
            Some(e) => Versioned {
                value: Some(e.value.clone()),
                mod_revision: e.mod_revision,
                version: e.version,
                read_at: self.revision,
            },
            None => Versioned { value: None, mod_revision: 0, version: 0, read_at: self.revision },
        }
    }

    /// The candidates of election `name`, first in line first: (key, create revision).
    fn candidates(&self, name: &str) -> Vec<(&String, &Entry)> {
        let prefix = format!("{name}/");
        let mut all: Vec<_> = self.kvs.iter().filter(|(k, _)| k.starts_with(&prefix)).collect();
        all.sort_by_key(|(_, e)| e.create_revision);
        all
    }
}

impl Connect for MemoryStore {
    type Store = MemoryStore;

    async fn connect(&self) -> Result<MemoryStore, StoreError> {
        drop(self.reach()?);
        Ok(self.clone())
    }
}

impl ClusterStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Versioned, StoreError> {
        Ok(self.reach()?.read(key))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.reach()?.write(key, Some(value), None);
        self.shared.bump();
        Ok(())
    }

    async fn compare_and_set(&self, key: &str, mod_revision: i64, value: Vec<u8>) -> Result<(), StoreError> {
        let mut state = self.reach()?;
        if state.read(key).mod_revision != mod_revision {
            return Err(StoreError::Conflict { expected: mod_revision });
        }
        state.write(key, Some(value), None);
        drop(state);
        self.shared.bump();
        Ok(())
    }

    async fn compare_and_delete(&self, key: &str, mod_revision: i64) -> Result<(), StoreError> {
        let mut state = self.reach()?;
        if state.read(key).mod_revision != mod_revision {
            return Err(StoreError::Conflict { expected: mod_revision });
        }
        state.write(key, None, None);
        drop(state);
        self.shared.bump();
        Ok(())
    }

    async fn watch(&self, key: &str, after: i64) -> Result<Changes, StoreError> {
        let mut state = self.reach()?;
        let (tx, rx) = mpsc::unbounded_channel();
        if after > 0 {
            for (_, change) in state.history.iter().filter(|(k, c)| k == key && c.mod_revision > after) {
                let _ = tx.send(Ok(change.clone()));
            }
        }
        state.watchers.push(Watcher { client: self.client, key: key.to_string(), tx });
        Ok(Changes::new(rx))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let mut state = self.reach()?;
        state.next_lease += 1;
        let id = state.next_lease;
        state.leases.insert(id, Lease { ttl, deadline: Instant::now() + ttl });
        Ok(id)
    }

    async fn renew_lease(&self, lease: LeaseId) -> Result<bool, StoreError> {
        let mut state = self.reach()?;
        match state.leases.get_mut(&lease) {
            Some(l) => {
                l.deadline = Instant::now() + l.ttl;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.reach()?.drop_lease(lease);
        self.shared.bump();
        Ok(())
    }

    async fn campaign(&self, name: &str, value: &str, lease: LeaseId) -> Result<Leadership, StoreError> {
        let key = format!("{name}/{lease:x}");
        {
            let mut state = self.reach()?;
            if !state.leases.contains_key(&lease) {
                return Err(StoreError::Interrupted("campaign on a lease that is gone"));
            }
            if !state.kvs.contains_key(&key) {
                state.write(&key, Some(value.as_bytes().to_vec()), Some(lease));
            }
        }
        self.shared.bump();
        self.wait_for(|state| {
            let Some(mine) = state.kvs.get(&key) else {
                return Err(StoreError::Interrupted("the candidacy's lease expired"));
            };
            let first = state.candidates(name).first().map(|(_, e)| e.create_revision);
            Ok((first == Some(mine.create_revision)).then(|| Leadership {
                name: name.to_string(),
                key: key.clone().into_bytes(),
                rev: mine.create_revision,
                lease,
            }))
        })
        .await
    }

    async fn resign(&self, leadership: Leadership) -> Result<(), StoreError> {
        let mut state = self.reach()?;
        let key = String::from_utf8_lossy(&leadership.key).into_owned();
        if state.kvs.get(&key).is_some_and(|e| e.create_revision == leadership.rev) {
            state.write(&key, None, None);
        }
        drop(state);
        self.shared.bump();
        Ok(())
    }

    async fn leader(&self, name: &str) -> Result<Option<String>, StoreError> {
        let state = self.reach()?;
        Ok(state.candidates(name).first().map(|(_, e)| String::from_utf8_lossy(&e.value).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watches_replay_then_follow_in_order_and_end_on_an_outage() {
        let etcd = MemoryEtcd::new();
        let store = etcd.client();
        store.put("k", b"1".to_vec()).await.unwrap();
        let first = store.get("k").await.unwrap();
        store.put("k", b"2".to_vec()).await.unwrap();
        let mut changes = store.watch("k", first.read_at).await.unwrap();
        store.put("other", b"x".to_vec()).await.unwrap();
        store.put("k", b"3".to_vec()).await.unwrap();
        let got: Vec<Option<Vec<u8>>> =
            [changes.next().await, changes.next().await].into_iter().map(|c| c.unwrap().unwrap().value).collect();
        assert_eq!(got, [Some(b"2".to_vec()), Some(b"3".to_vec())]);
        store.cut();
        assert!(matches!(changes.next().await, Some(Err(StoreError::Unreachable))));
        assert!(changes.next().await.is_none());
        assert!(matches!(store.get("k").await, Err(StoreError::Unreachable)));
        store.restore();
        assert_eq!(store.get("k").await.unwrap().version, 3);
        assert!(matches!(
            store.compare_and_set("k", first.mod_revision, vec![]).await,
            Err(StoreError::Conflict { .. })
        ));
    }

    #[tokio::test]
    async fn one_leader_at_a_time_in_campaign_order_and_an_expired_lease_hands_over() {
        let etcd = MemoryEtcd::new();
        let (a, b) = (etcd.client(), etcd.client());
        let ttl = Duration::from_millis(500);
        let (la, lb) = (a.grant_lease(ttl).await.unwrap(), b.grant_lease(ttl).await.unwrap());
        let won = a.campaign("e", "a", la).await.unwrap();
        assert_eq!(a.leader("e").await.unwrap().as_deref(), Some("a"));
        let b_campaign = tokio::spawn({
            let b = b.clone();
            async move { b.campaign("e", "b", lb).await }
        });
        // b queues behind a; a resigns and b leads.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!b_campaign.is_finished());
        b.renew_lease(lb).await.unwrap();
        a.resign(won).await.unwrap();
        let b_won = b_campaign.await.unwrap().unwrap();
        assert_eq!(b.leader("e").await.unwrap().as_deref(), Some("b"));
        // a queues again; b's link is cut, its lease expires and a leads.
        a.renew_lease(la).await.unwrap();
        let a_campaign = tokio::spawn({
            let a = a.clone();
            async move {
                loop {
                    // Keeps a's lease alive while it waits.
                    let _ = a.renew_lease(la).await;
                    if let Ok(Ok(won)) = tokio::time::timeout(Duration::from_millis(50), a.campaign("e", "a", la)).await
                    {
                        return won;
                    }
                }
            }
        });
        b.cut();
        let a_won = a_campaign.await.unwrap();
        assert_eq!(a_won.lease, la);
        assert_eq!(a.leader("e").await.unwrap().as_deref(), Some("a"));
        b.restore();
        assert!(!b.renew_lease(b_won.lease).await.unwrap(), "b's lease is gone");
    }
}
