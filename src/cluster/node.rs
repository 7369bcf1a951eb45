//! The cluster agent: a task on the control thread that turns the placement, the shard set's
//! election and the leader's flush times into commands on the cores' queues, and persists the
//! flush times while this node leads. It is the only code that reads or writes cluster state
//! for a running node; the cores never wait on it. The admin API (same thread) reads its
//! `/status` view from a watch channel and sends it [`Request`]s.
//!
//! Steps, as they happen:
//! 1. Connect to etcd (retrying forever: aggregation goes on meanwhile) and watch the placement.
//! 2. Each placement: this node's shards become `SetShardWindows` (cutover/cutoff and the
//!    write buffers) and `SetRoutes` (what is aggregated here, what is forwarded to whom);
//!    the shard set's election is (re)started and its flush times watched. Peer endpoints that
//!    are host names are looked up here; one that does not resolve is tried again with backoff
//!    (its values wait in the forwarders' buffers) and listed in `/status`.
//! 3. Elected: read the flush times afresh, hand them to the cores, then `SetRole(Leader)`:
//!    the cores drop what those times cover and emit exactly what follows.
//! 4. Leading: every check, collect the cores' round reports whose batches every sink has
//!    written, advance the shard set's flush times, and persist them (with retries).
//! 5. Following: each flush-time update goes to the cores (they discard what it covers); no
//!    update for `max_buffer_size` switches the cores to forced flush until the next one.
//! 6. Lease lost or resigned: `SetRole(Follower)` before anything else. Leaving the election
//!    for any other reason first stops emitting and persists what was emitted.
//!
//! Every etcd request and watch event records whether etcd answered (`health.rs`), which is
//! what `/status` and `sheaf_cluster_etcd_connected` report.
//!
//! The decisions are [`AgentState`]'s (`state.rs`); this file is the I/O around it: the store,
//! the watches, the election task, the cores, the timers and the requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sheaf_shard_runtime::{Commander, FlushReport, FlushReports, FlushRole, Routes, SinkQueue};
use tokio::sync::{mpsc, oneshot, watch};

use super::cores::{CoreCommand, Cores};
use super::election::{Election, ElectionState};
use super::etcd::{Endpoints, Keys, Store};
use super::health::EtcdHealth;
use super::peer_recovery::PeerRecovery;
use super::plan::{self, before_placement};
use super::state::{AgentState, DRAIN_LIMIT, Effect, Execute, Input, Now, RecoveryView, Settings, SyncView};
use super::store::{Backoff, ClusterStore, Connect, StoreError, Versioned};
use super::sync_task::SyncTask;
use super::tracked::Tracked;
use crate::config::ClusterConfig;

/// Requests from the admin API and the shutdown path.
pub enum Request {
    /// Give leadership up and answer once the cores are followers.
    Resign(oneshot::Sender<Result<(), String>>),
    /// Persist what the final flush emitted, give leadership up, stop.
    Shutdown(oneshot::Sender<()>),
}

/// What the admin API holds of the agent.
#[derive(Clone)]
pub struct ClusterHandle<S = Store> {
    pub requests: mpsc::Sender<Request>,
    /// The agent's view for `/status`, refreshed at every change and check.
    pub status: watch::Receiver<Value>,
    /// The store once connected (the placement API uses it).
    pub store: watch::Receiver<Option<S>>,
    /// Whether etcd answers the agent's requests, as of the last one.
    pub etcd: Arc<EtcdHealth>,
    pub keys: Keys,
    pub config: ClusterConfig,
    /// What the `sync_id` task needs of the agent, and where it says which shards are synced.
    pub(crate) sync_view: watch::Receiver<SyncView>,
    pub(crate) recovery: Arc<watch::Sender<RecoveryView>>,
}

impl<S> ClusterHandle<S> {
    /// The agent's `/status` view, its `etcd` field as of now (the view itself is refreshed
    /// between the agent's steps, and a step may wait on etcd).
    pub fn status_view(&self) -> Value {
        let mut view = self.status.borrow().clone();
        if let Some(fields) = view.as_object_mut() {
            fields.insert("etcd".into(), self.etcd.describe().into());
            fields.insert("etcdRequestFailures".into(), self.etcd.failures().into());
        }
        view
    }
}

/// The agent as the control thread builds it: over etcd and the cores' [`Commander`].
pub struct Agent {
    settings: Settings,
    commander: Commander,
    reports: Arc<FlushReports>,
}

impl Agent {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: ClusterConfig,
        host_id: String,
        num_shards: u32,
        commander: Commander,
        owners: Arc<[u16]>,
        sinks: Vec<Arc<SinkQueue>>,
        reports: Arc<FlushReports>,
    ) -> Self {
        let keys = Keys { environment: config.etcd.environment.clone(), service: config.service.clone() };
        let started_nanos = sheaf_shard_core::time::now_nanos();
        let settings = Settings { config, keys, host_id, num_shards, owners, sinks, started_nanos };
        Self { settings, commander, reports }
    }

    /// Starts the agent task; the cores start as followers that own nothing until the
    /// placement says otherwise. `admin` is where this node's admin API answers its peers and
    /// `token` what it presents to theirs (peer recovery).
    /// `loaded` turns true once the cores have loaded their checkpoints: only then does this
    /// node know which of its shards are synced with the leader.
    pub async fn start(
        self,
        etcd: Endpoints,
        admin: Option<String>,
        token: Option<String>,
        loaded: watch::Receiver<bool>,
    ) -> ClusterHandle {
        let (host_id, owners) = (self.settings.host_id.clone(), self.settings.owners.clone());
        let flush_delay = self.settings.config.flush_delay.0;
        let handle = start(self.settings, etcd, self.commander.clone(), self.reports).await;
        let task = SyncTask {
            store: handle.store.clone(),
            keys: handle.keys.clone(),
            cores: self.commander.clone(),
            view: handle.sync_view.clone(),
            recovery_view: handle.recovery.clone(),
            host_id,
            admin,
            recovery: PeerRecovery::new(token, owners, self.commander, flush_delay),
            loaded,
        };
        tokio::spawn(task.run());
        handle
    }
}

/// Starts an agent over any store and cores (what [`Agent::start`] does with etcd's).
pub(crate) async fn start<C: Connect, K: Cores>(
    settings: Settings,
    connect: C,
    cores: K,
    reports: Arc<FlushReports>,
) -> ClusterHandle<C::Store> {
    cores.apply(CoreCommand::Role(FlushRole::Follower)).await;
    cores.apply(CoreCommand::Windows(before_placement(settings.num_shards))).await;
    cores.apply(CoreCommand::Routes(Arc::new(Routes::default()))).await;
    let (requests, requests_rx) = mpsc::channel(8);
    let (status_tx, status) = watch::channel(json!({}));
    let (store_tx, store) = watch::channel(None);
    let etcd = EtcdHealth::new();
    let (sync_view_tx, sync_view) = watch::channel(SyncView::default());
    let recovery = Arc::new(watch::channel(RecoveryView::default()).0);
    let recovery_rx = recovery.subscribe();
    let handle = ClusterHandle {
        sync_view,
        recovery,
        requests,
        status,
        store,
        etcd: etcd.clone(),
        keys: settings.keys.clone(),
        config: settings.config.clone(),
    };
    let io = Io {
        connect,
        health: etcd,
        cores,
        reports,
        store: None,
        store_tx,
        placement_rx: None,
        times_rx: None,
        election: None,
        members: watch::channel(Vec::new()).0,
        routes: None,
        resolve_backoff: Backoff::new(RESOLVE_INITIAL_BACKOFF, RESOLVE_MAX_BACKOFF),
        next_resolve: tokio::time::Instant::now(),
    };
    let node =
        Node { state: AgentState::new(settings, Instant::now()), io, sync_view: sync_view_tx, recovery: recovery_rx };
    tokio::spawn(node.run(requests_rx, status_tx));
    handle
}

/// The agent task: its decisions and everything it talks to.
struct Node<C: Connect, K> {
    state: AgentState,
    io: Io<C, K>,
    sync_view: watch::Sender<SyncView>,
    recovery: watch::Receiver<RecoveryView>,
}

/// Everything [`AgentState`] talks to, carrying its effects out.
struct Io<C: Connect, K> {
    connect: C,
    /// Every request below records its outcome here.
    health: Arc<EtcdHealth>,
    cores: K,
    reports: Arc<FlushReports>,
    store: Option<Tracked<C::Store>>,
    store_tx: watch::Sender<Option<C::Store>>,
    placement_rx: Option<mpsc::Receiver<Versioned>>,
    times_rx: Option<mpsc::Receiver<Versioned>>,
    election: Option<Election>,
    /// The shard set's members, for the election to confirm a leader among them.
    members: watch::Sender<Vec<String>>,
    /// The routes last sent to the cores, and when to try resolving their peers without an
    /// address again.
    routes: Option<Arc<Routes>>,
    resolve_backoff: Backoff,
    next_resolve: tokio::time::Instant,
}

impl<C: Connect, K: Cores> Node<C, K> {
    async fn run(mut self, mut requests: mpsc::Receiver<Request>, status: watch::Sender<Value>) {
        let (state, io, recovery) = (&mut self.state, &mut self.io, &mut self.recovery);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut tick = tokio::time::interval(state.settings().config.check_interval.0);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_connect = tokio::time::Instant::now();
        loop {
            if io.store.is_none() && tokio::time::Instant::now() >= next_connect {
                match io.connect.connect().await {
                    Ok(store) => {
                        tracing::info!("connected to etcd");
                        io.health.record(true);
                        io.store_tx.send_replace(Some(store.clone()));
                        io.store = Some(Tracked::new(store, io.health.clone()));
                        state.step(io, Input::Connected).await;
                    }
                    Err(e) => {
                        io.health.record(false);
                        let delay = backoff.next_delay();
                        tracing::warn!(error = %e, ?delay, "cannot reach etcd; aggregating meanwhile");
                        next_connect = tokio::time::Instant::now() + delay;
                    }
                }
            }
            let election = &mut io.election;
            let election_changed = async move {
                match election.as_mut() {
                    Some(e) => e.state.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(v) = recv(&mut io.placement_rx) => state.step(io, Input::Placement(v)).await,
                Some(v) = recv(&mut io.times_rx) => state.step(io, Input::FlushTimes(v)).await,
                true = election_changed => {
                    let election = io.election_state();
                    state.step(io, Input::Election(election)).await;
                }
                req = requests.recv() => match req {
                    Some(Request::Resign(reply)) => {
                        state.step(io, Input::Resign).await;
                        let _ = reply.send(Ok(()));
                    }
                    Some(Request::Shutdown(reply)) => {
                        state.step(io, Input::Shutdown).await;
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
                _ = tick.tick() => {
                    io.resolve_peers_again().await;
                    let reports = io.take_reports();
                    state.step(io, Input::Tick(reports)).await;
                }
                Ok(()) = recovery.changed() => state.set_recovery(recovery.borrow_and_update().clone()),
            }
            let view = state.sync_view();
            self.sync_view.send_if_modified(|v| {
                let changed = *v != view;
                *v = view;
                changed
            });
            let leader = io.election.as_ref().and_then(|e| e.leader.borrow().clone());
            let mut view = state.status(Instant::now(), leader, io.health.describe());
            if let Some(fields) = view.as_object_mut() {
                fields.insert("unresolvedPeers".into(), io.unresolved_peers());
            }
            status.send_replace(view);
        }
    }
}

impl<C: Connect, K: Cores> Execute for Io<C, K> {
    fn now(&self) -> Now {
        Now::current()
    }

    async fn execute(&mut self, state: &mut AgentState, effect: Effect) -> Option<Input> {
        match effect {
            Effect::Cores(CoreCommand::Routes(routes)) => {
                let routes = self.with_addresses(routes).await;
                self.cores.apply(CoreCommand::Routes(routes)).await;
            }
            Effect::Cores(command) => self.cores.apply(command).await,
            Effect::WatchPlacement => {
                let key = state.settings().keys.placement();
                self.placement_rx = self.store.clone().map(|s| super::watch::spawn(s, key));
            }
            Effect::WatchFlushTimes(key) => {
                self.times_rx = key.zip(self.store.clone()).map(|(key, s)| super::watch::spawn(s, key));
            }
            Effect::Members(members) => {
                self.members.send_replace(members);
            }
            Effect::StartElection(name) => {
                let s = state.settings();
                self.election = self.store.clone().map(|store| {
                    let members = self.members.subscribe();
                    Election::start(store, name, s.host_id.clone(), s.config.election.clone(), members)
                });
            }
            Effect::StopElection => {
                if let Some(e) = self.election.take() {
                    e.stop().await;
                }
            }
            Effect::ResignElection => {
                if let Some(e) = &self.election {
                    e.resign().await;
                }
                return Some(Input::Election(self.election_state()));
            }
            Effect::ReadFlushTimes(key) => {
                let read = match &self.store {
                    Some(store) => store.get(&key).await,
                    None => Err(StoreError::Unreachable),
                };
                return Some(Input::PromotionRead(read));
            }
            Effect::DiscardReports => {
                self.take_reports();
            }
            Effect::DrainEmitted => {
                let deadline = Instant::now() + DRAIN_LIMIT;
                loop {
                    state.collect(self.take_reports());
                    if !state.awaiting_sinks() || Instant::now() > deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                return Some(Input::Drained);
            }
            Effect::Persist { key, value } => {
                let retries = state.settings().config.flush_times_persist_retries;
                return Some(self.persist(&key, value, retries).await);
            }
        }
        None
    }
}

impl<C: Connect, K: Cores> Io<C, K> {
    /// Writes the flush times, retrying with backoff, for as long as this node leads.
    async fn persist(&mut self, key: &str, value: Vec<u8>, retries: u32) -> Input {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut failures = 0;
        let Some(store) = self.store.clone() else { return Input::Persisted { failures, written: false } };
        for attempt in 0..=retries {
            // A leader that lost its lease meanwhile must not write over its successor's times.
            if self.election.as_ref().is_none_or(|e| *e.state.borrow() != ElectionState::Leader) {
                break;
            }
            match store.put(key, value.clone()).await {
                Ok(()) => return Input::Persisted { failures, written: true },
                Err(e) => {
                    failures += 1;
                    tracing::warn!(attempt, error = %e, "persisting flush times failed");
                    if attempt < retries {
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                }
            }
        }
        Input::Persisted { failures, written: false }
    }

    /// Resolves the peers of new routes that have no address (DNS), and schedules retries
    /// for those that do not resolve: their values wait in the forwarders' buffers meanwhile.
    async fn with_addresses(&mut self, routes: Arc<Routes>) -> Arc<Routes> {
        let routes = match plan::resolve(&routes, RESOLVE_TIMEOUT).await {
            Some(found) => Arc::new(found),
            None => routes,
        };
        self.resolve_backoff.reset();
        for peer in routes.unresolved() {
            tracing::warn!(
                instance = %peer.id,
                endpoint = %peer.endpoint,
                "a peer's endpoint does not resolve; its values wait in the forwarding buffer while it is retried"
            );
        }
        self.next_resolve = tokio::time::Instant::now() + self.resolve_backoff.next_delay();
        self.routes = Some(routes.clone());
        routes
    }

    /// Tries the peers without an address again once their backoff is over; sends the cores
    /// the routes with every address found.
    async fn resolve_peers_again(&mut self) {
        let Some(routes) = self.routes.clone() else { return };
        if routes.unresolved().next().is_none() || tokio::time::Instant::now() < self.next_resolve {
            return;
        }
        if let Some(found) = plan::resolve(&routes, RESOLVE_TIMEOUT).await {
            let found = Arc::new(found);
            self.cores.apply(CoreCommand::Routes(found.clone())).await;
            self.routes = Some(found);
        }
        self.next_resolve = tokio::time::Instant::now() + self.resolve_backoff.next_delay();
    }

    /// `/status`'s `unresolvedPeers`: the peers whose endpoint has not resolved yet.
    fn unresolved_peers(&self) -> Value {
        let peers = self.routes.iter().flat_map(|r| r.unresolved());
        peers.map(|p| json!({"id": p.id, "endpoint": p.endpoint})).collect::<Vec<_>>().into()
    }

    fn election_state(&mut self) -> ElectionState {
        self.election.as_mut().map_or(ElectionState::PendingFollower, |e| *e.state.borrow_and_update())
    }

    fn take_reports(&self) -> Vec<FlushReport> {
        std::iter::from_fn(|| self.reports.pop()).collect()
    }
}

/// How long one DNS lookup of a peer's endpoint may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);
/// Retries of endpoints that do not resolve: 200ms, doubling up to 10s.
const RESOLVE_INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const RESOLVE_MAX_BACKOFF: Duration = Duration::from_secs(10);

async fn recv(rx: &mut Option<mpsc::Receiver<Versioned>>) -> Option<Versioned> {
    match rx.as_mut() {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
