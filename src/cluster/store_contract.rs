//! One contract for both stores: the same checks of keys, watches, leases and elections run
//! against the in-memory store and against etcd (a real `etcd` from PATH, started on free
//! loopback ports; the etcd half is skipped, saying so, where there is none). Tests only.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::etcd::{Endpoints, Store};
use super::memory::MemoryEtcd;
use super::store::{ClusterStore, StoreError};

const WAIT: Duration = Duration::from_secs(10);

async fn contract<S: ClusterStore>(a: S, b: S) {
    // Keys: versions, the read revision, compare-and-set.
    let key = "contract/key";
    assert_eq!(a.get(key).await.unwrap().value, None);
    a.compare_and_set(key, 0, b"1".to_vec()).await.unwrap();
    assert!(matches!(a.compare_and_set(key, 0, b"x".to_vec()).await, Err(StoreError::Conflict { .. })));
    let one = a.get(key).await.unwrap();
    assert_eq!((one.value.as_deref(), one.version), (Some(&b"1"[..]), 1));
    assert!(one.read_at >= one.mod_revision);
    // A watch from the read revision sees the next write, and only it.
    let mut changes = b.watch(key, one.read_at).await.unwrap();
    a.put(key, b"2".to_vec()).await.unwrap();
    let two = tokio::time::timeout(WAIT, changes.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((two.value.as_deref(), two.version), (Some(&b"2"[..]), 2));
    assert!(two.mod_revision > one.mod_revision);
    // Leases: renewed while they exist, gone once revoked.
    let ttl = Duration::from_secs(2);
    let lease = a.grant_lease(ttl).await.unwrap();
    assert!(a.renew_lease(lease).await.unwrap());
    a.revoke_lease(lease).await.unwrap();
    assert!(!a.renew_lease(lease).await.unwrap(), "a revoked lease is gone");
    // Elections: one leader, the others queued in order; resigning or losing the lease
    // hands over.
    let name = "contract/election";
    assert_eq!(a.leader(name).await.unwrap(), None);
    let (la, lb) = (a.grant_lease(ttl).await.unwrap(), b.grant_lease(ttl).await.unwrap());
    let won = a.campaign(name, "a", la).await.unwrap();
    assert_eq!(b.leader(name).await.unwrap().as_deref(), Some("a"));
    let queued = tokio::spawn({
        let b = b.clone();
        async move { b.campaign(name, "b", lb).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!queued.is_finished(), "b waits behind a");
    a.resign(won).await.unwrap();
    tokio::time::timeout(WAIT, queued).await.unwrap().unwrap().unwrap();
    assert_eq!(a.leader(name).await.unwrap().as_deref(), Some("b"));
    let queued = tokio::spawn({
        let a = a.clone();
        async move { a.campaign(name, "a", la).await }
    });
    b.revoke_lease(lb).await.unwrap();
    tokio::time::timeout(WAIT, queued).await.unwrap().unwrap().unwrap();
    assert_eq!(b.leader(name).await.unwrap().as_deref(), Some("a"));
}

#[tokio::test]
async fn the_in_memory_store_keeps_the_contract() {
    let etcd = MemoryEtcd::new();
    contract(etcd.client(), etcd.client()).await;
}

#[tokio::test]
async fn etcd_keeps_the_contract() {
    let Some(etcd) = EtcdProcess::start() else {
        eprintln!("skipped: no `etcd` on PATH");
        return;
    };
    ready(&etcd.endpoint).await;
    let endpoints = Endpoints::plain(vec![etcd.endpoint.clone()], Duration::from_secs(2));
    let (a, b) = (Store::connect(&endpoints).await.unwrap(), Store::connect(&endpoints).await.unwrap());
    contract(a, b).await;
}

/// A throwaway etcd: its own data directory, killed and removed on drop.
struct EtcdProcess {
    child: Child,
    dir: PathBuf,
    endpoint: String,
}

impl EtcdProcess {
    fn start() -> Option<Self> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
        let dir = std::env::temp_dir().join(format!("sheaf-store-contract-{}-{nanos}", std::process::id()));
        let port = || TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        let (client, peer) =
            (format!("http://127.0.0.1:{}", port().ok()?), format!("http://127.0.0.1:{}", port().ok()?));
        let child = Command::new("etcd")
            .args(["--name", "contract", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("contract={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let endpoint = client.trim_start_matches("http://").to_string();
        Some(Self { child, dir, endpoint })
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until etcd answers (it takes a moment to start).
async fn ready(endpoint: &str) {
    let started = Instant::now();
    loop {
        if let Ok(store) = Store::connect(&Endpoints::plain(vec![endpoint.to_string()], Duration::from_secs(1))).await
            && store.get("ready").await.is_ok()
        {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "etcd at {endpoint} did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
