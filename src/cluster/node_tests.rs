//! The whole agent (its task, the election tasks and the watches) on the in-memory store, in
//! real time, with recorders for cores: what the table rows of `state_tests` cannot show,
//! that the pieces are wired to each other. Each wait polls the agents' `/status` view until
//! a condition holds, with a generous deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sheaf_shard_runtime::FlushReports;

use super::memory::{MemoryEtcd, MemoryStore};
use super::node::{self, ClusterHandle, Request};
use super::placement;
use super::store::ClusterStore;
use super::testing::{Recorder, SHARDS, init, settings};

struct Agent {
    handle: ClusterHandle<MemoryStore>,
    cores: Recorder,
    /// Its connection, to cut and restore.
    link: MemoryStore,
}

impl Agent {
    async fn start(etcd: &MemoryEtcd, host: &str) -> Self {
        let link = etcd.client();
        let cores = Recorder::default();
        let reports = Arc::new(FlushReports::new(16));
        let handle = node::start(settings(host), link.clone(), cores.clone(), reports).await;
        Self { handle, cores, link }
    }

    fn status(&self) -> Value {
        self.handle.status.borrow().clone()
    }

    fn election(&self) -> String {
        self.status()["electionState"].as_str().unwrap_or("").to_string()
    }

    async fn request(&self, make: impl FnOnce(tokio::sync::oneshot::Sender<()>) -> Request) {
        let (reply, done) = tokio::sync::oneshot::channel();
        self.handle.requests.send(make(reply)).await.unwrap_or_else(|_| panic!("the agent has ended"));
        done.await.unwrap();
    }

    async fn resign(&self) {
        let (reply, done) = tokio::sync::oneshot::channel();
        self.handle.requests.send(Request::Resign(reply)).await.unwrap_or_else(|_| panic!("the agent has ended"));
        done.await.unwrap().unwrap();
    }
}

/// Polls `cond` every 20ms until it holds; fails after 20s with `what` and `diag()`.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool, diag: impl Fn() -> String) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < Duration::from_secs(20), "{what}: not after 20s\n{}", diag());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until one of `a`, `b` leads and the other follows; returns (leader, follower).
async fn pair<'a>(a: &'a Agent, b: &'a Agent) -> (&'a Agent, &'a Agent) {
    let states = || (a.election(), b.election());
    let settled =
        || matches!(states(), (x, y) if (x == "leader" && y == "follower") || (x == "follower" && y == "leader"));
    wait_for("one leader, one follower", settled, || format!("{:?}", states())).await;
    if a.election() == "leader" { (a, b) } else { (b, a) }
}

async fn with_placement(ids: &[&str]) -> MemoryEtcd {
    let etcd = MemoryEtcd::new();
    let p = init(SHARDS, ids);
    etcd.client().put("/placement/e/s", placement::encode_snapshots(&p)).await.unwrap();
    etcd
}

#[tokio::test]
async fn a_resign_hands_leadership_over_and_a_shutdown_lets_the_other_lead() {
    let etcd = with_placement(&["a", "b"]).await;
    let (a, b) = (Agent::start(&etcd, "a").await, Agent::start(&etcd, "b").await);
    let (old, new) = pair(&a, &b).await;
    assert_eq!(old.cores.lines().last().map(String::as_str), Some("role leader"));
    old.resign().await;
    // Answered once the cores stopped emitting.
    assert_eq!(old.cores.lines().last().map(String::as_str), Some("role follower"));
    let (leader, _) = pair(&a, &b).await;
    assert!(std::ptr::eq(leader, new), "the other member took over");
    assert_eq!(new.cores.lines().last().map(String::as_str), Some("role leader"));
    // A shutdown leaves the election at once: the other leads well within the lease TTL.
    new.request(Request::Shutdown).await;
    wait_for("the old leader leads again", || old.election() == "leader", || old.status().to_string()).await;
}

#[tokio::test]
async fn a_leader_cut_off_from_etcd_stops_emitting_and_follows_once_back() {
    let etcd = with_placement(&["a", "b"]).await;
    let (a, b) = (Agent::start(&etcd, "a").await, Agent::start(&etcd, "b").await);
    let (old, new) = pair(&a, &b).await;
    old.link.cut();
    // Its lease cannot be renewed: after a TTL it steps down, and etcd lets the other lead.
    wait_for("the cut-off leader steps down", || old.election() != "leader", || old.status().to_string()).await;
    assert_eq!(old.cores.lines().last().map(String::as_str), Some("role follower"));
    wait_for("the other takes over", || new.election() == "leader", || new.status().to_string()).await;
    old.link.restore();
    let (leader, _) = pair(&a, &b).await;
    assert!(std::ptr::eq(leader, new));
}

#[tokio::test]
async fn with_etcd_stopped_nobody_leads_and_once_it_is_back_one_does() {
    let etcd = with_placement(&["a", "b"]).await;
    let (a, b) = (Agent::start(&etcd, "a").await, Agent::start(&etcd, "b").await);
    let (old, _) = pair(&a, &b).await;
    etcd.stop();
    let states = || (a.election(), b.election());
    wait_for("no leader", || states().0 != "leader" && states().1 != "leader", || format!("{:?}", states())).await;
    assert_eq!(old.cores.lines().last().map(String::as_str), Some("role follower"));
    etcd.start();
    pair(&a, &b).await;
}

#[tokio::test]
async fn an_agent_without_etcd_at_start_keeps_its_cores_idle_and_joins_once_it_is_back() {
    let etcd = with_placement(&["a", "b"]).await;
    let link = etcd.client();
    link.cut();
    let cores = Recorder::default();
    let handle = node::start(settings("a"), link.clone(), cores.clone(), Arc::new(FlushReports::new(16))).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handle.status.borrow()["etcd"], "unreachable");
    assert_eq!(cores.lines(), ["role follower", "windows none", "routes here none"]);
    link.restore();
    // Alone in its shard set, it leads.
    let status = || handle.status.borrow().clone();
    wait_for("connected and leading", || status()["electionState"] == "leader", || status().to_string()).await;
    assert_eq!(status()["etcd"], "connected");
    assert_eq!(status()["placementVersion"], 1);
    let lines = cores.lines();
    assert!(lines.contains(&"windows 0, 1, 2, 3".to_string()), "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("role leader"));
}
