//! The cluster agent: a task on the control thread that turns the placement, the shard set's
//! election and the leader's flush times into commands on the cores' queues, and persists the
//! flush times while this node leads. It is the only code that reads or writes cluster state
//! in etcd for a running node; the cores never wait on it.
//!
//! Steps, as they happen:
//! 1. Connect to etcd (retrying forever: aggregation goes on meanwhile) and watch the placement.
//! 2. Each placement: this node's shards become `SetShardWindows` (cutover/cutoff and the
//!    write buffers) and `SetRoutes` (what is aggregated here, what is forwarded to whom);
//!    the shard set's election is (re)started and its flush times watched.
//! 3. Elected: read the flush times afresh, hand them to the cores, then `SetRole(Leader)`:
//!    the cores drop what those times cover and emit exactly what follows.
//! 4. Leading: every check, collect the cores' round reports whose batches every sink has
//!    written, advance the shard set's flush times, and persist them (with retries).
//! 5. Following: each flush-time update goes to the cores (they discard what it covers); no
//!    update for `max_buffer_size` switches the cores to forced flush until the next one.
//! 6. Lease lost or resigned: `SetRole(Follower)` before anything else.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sheaf_shard_core::ShardWindow;
use sheaf_shard_runtime::{
    Commander, FlushReport, FlushReports, FlushRole, FollowerFlush, Routes, ShardCommand, SinkQueue,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::campaign::{self, Campaign};
use super::election::{Election, ElectionState};
use super::etcd::{Backoff, Keys, Store, Versioned};
use super::flush_times::ShardSetTimes;
use super::placement::{self, Placement};
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
pub struct ClusterHandle {
    pub requests: mpsc::Sender<Request>,
    /// The agent's view for `/status`, refreshed at every change and check.
    pub status: watch::Receiver<Value>,
    /// The etcd store once connected (the placement API uses it).
    pub store: watch::Receiver<Option<Store>>,
    pub keys: Keys,
    pub config: ClusterConfig,
}

pub struct Agent {
    config: ClusterConfig,
    keys: Keys,
    host_id: String,
    num_shards: u32,
    commander: Commander,
    owners: Arc<[u16]>,
    sinks: Vec<Arc<SinkQueue>>,
    reports: Arc<FlushReports>,
    started_nanos: i64,
}

/// Mutable state of the running agent.
struct Running {
    store: Option<Store>,
    placement: Option<(Placement, i64)>,
    placement_error: Option<String>,
    shard_set: Option<u32>,
    owned: Vec<u32>,
    election: Option<Election>,
    members: watch::Sender<Vec<String>>,
    state: ElectionState,
    times_rx: Option<mpsc::Receiver<Versioned>>,
    /// Leader: what has been persisted (or read at promotion) plus what is waiting to be.
    leader_times: ShardSetTimes,
    dirty: bool,
    pending: Vec<FlushReport>,
    /// Follower: the leader's times as last seen, and when.
    follower_times: ShardSetTimes,
    last_update: Instant,
    seen_update: bool,
    forced: bool,
    forced_entered: u64,
    persisted: u64,
    persist_failures: u64,
    etcd_ok: bool,
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
        Self { config, keys, host_id, num_shards, commander, owners, sinks, reports, started_nanos }
    }

    /// Starts the agent task; the cores start as followers that own nothing until the
    /// placement says otherwise.
    pub async fn start(self) -> ClusterHandle {
        self.set_role(FlushRole::Follower).await;
        self.commander.send_all(|| ShardCommand::SetShardWindows(not_owned(self.num_shards)));
        self.commander.send_all(|| ShardCommand::SetRoutes(Arc::new(Routes::default())));
        let (requests, rx) = mpsc::channel(8);
        let (status_tx, status) = watch::channel(json!({}));
        let (store_tx, store) = watch::channel(None);
        let handle = ClusterHandle { requests, status, store, keys: self.keys.clone(), config: self.config.clone() };
        tokio::spawn(self.run(rx, status_tx, store_tx));
        handle
    }

    async fn set_role(&self, role: FlushRole) {
        self.commander.invoke_all(|reply| ShardCommand::SetRole { role, reply }).await;
    }

    async fn run(
        self,
        mut requests: mpsc::Receiver<Request>,
        status: watch::Sender<Value>,
        store_tx: watch::Sender<Option<Store>>,
    ) {
        let (members, _) = watch::channel(Vec::new());
        let mut r = Running {
            store: None,
            placement: None,
            placement_error: None,
            shard_set: None,
            owned: Vec::new(),
            election: None,
            members,
            state: ElectionState::PendingFollower,
            times_rx: None,
            leader_times: ShardSetTimes::default(),
            dirty: false,
            pending: Vec::new(),
            follower_times: ShardSetTimes::default(),
            last_update: Instant::now(),
            seen_update: false,
            forced: false,
            forced_entered: 0,
            persisted: 0,
            persist_failures: 0,
            etcd_ok: false,
        };
        let mut placement_rx: Option<mpsc::Receiver<Versioned>> = None;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut tick = tokio::time::interval(self.config.check_interval.0);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_connect = tokio::time::Instant::now();
        loop {
            if r.store.is_none() && tokio::time::Instant::now() >= next_connect {
                match Store::connect(&self.config.etcd.endpoints, self.config.etcd.request_timeout.0).await {
                    Ok(store) => {
                        tracing::info!(endpoints = ?self.config.etcd.endpoints, "connected to etcd");
                        placement_rx = Some(super::watch::spawn(store.clone(), self.keys.placement()));
                        store_tx.send_replace(Some(store.clone()));
                        r.store = Some(store);
                        r.etcd_ok = true;
                    }
                    Err(e) => {
                        let delay = backoff.next_delay();
                        tracing::warn!(error = %e, ?delay, "cannot reach etcd; aggregating meanwhile");
                        next_connect = tokio::time::Instant::now() + delay;
                    }
                }
            }
            let election_changed = async {
                match r.election.as_mut() {
                    Some(e) => e.state.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(v) = recv(&mut placement_rx) => self.on_placement(&mut r, v).await,
                Some(v) = recv(&mut r.times_rx) => self.on_flush_times(&mut r, v),
                true = election_changed => self.on_election(&mut r).await,
                req = requests.recv() => match req {
                    Some(Request::Resign(reply)) => {
                        if r.state == ElectionState::Leader {
                            // A graceful hand-over: stop emitting, persist what was emitted,
                            // then let go, so the next leader repeats nothing.
                            self.set_role(FlushRole::Follower).await;
                            self.persist_emitted(&mut r).await;
                        }
                        if let Some(e) = &r.election {
                            e.resign().await;
                        }
                        self.on_election(&mut r).await;
                        let _ = reply.send(Ok(()));
                    }
                    Some(Request::Shutdown(reply)) => {
                        self.shutdown(&mut r).await;
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
                _ = tick.tick() => self.check(&mut r).await,
            }
            status.send_replace(self.status(&r));
        }
    }

    async fn on_placement(&self, r: &mut Running, v: Versioned) {
        let Some(bytes) = v.value else {
            r.placement = None;
            r.placement_error = Some("no placement in etcd yet".into());
            return;
        };
        let p = match placement::decode_snapshots(&bytes) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "placement in etcd cannot be read; keeping the last one");
                r.placement_error = Some(e.to_string());
                return;
            }
        };
        if p.num_shards != self.num_shards {
            let msg = format!("placement has {} shards, this node's num_shards is {}", p.num_shards, self.num_shards);
            tracing::error!("{msg}; ignoring the placement");
            r.placement_error = Some(msg);
            return;
        }
        r.placement_error = None;
        let me = p.instance(&self.host_id).cloned();
        let windows = shard_windows(&self.config, self.num_shards, me.as_ref());
        let routes = routes(&p, &self.host_id, self.num_shards);
        self.commander.send_all(|| ShardCommand::SetShardWindows(windows.clone()));
        self.commander.send_all(|| ShardCommand::SetRoutes(routes.clone()));
        r.owned = me.as_ref().map(|m| m.shards.iter().map(|s| s.id).collect()).unwrap_or_default();
        let shard_set = me.as_ref().map(|m| m.shard_set_id);
        let members: Vec<String> = match &me {
            Some(m) => {
                p.instances.values().filter(|i| i.shard_set_id == m.shard_set_id).map(|i| i.id.clone()).collect()
            }
            None => Vec::new(),
        };
        r.members.send_replace(members);
        tracing::info!(version = v.version, shard_set = ?shard_set, shards = r.owned.len(), "placement applied");
        r.placement = Some((p, v.version));
        if shard_set != r.shard_set {
            self.leave_election(r).await;
            r.shard_set = shard_set;
            r.times_rx = None;
            r.seen_update = false;
            if let (Some(set), Some(store)) = (shard_set, r.store.clone()) {
                r.times_rx = Some(super::watch::spawn(store, self.keys.flush_times(set)));
                r.last_update = Instant::now();
            }
        }
        self.gate(r).await;
    }

    /// Joins or leaves the shard set's election as [`campaign::decide`] says.
    async fn gate(&self, r: &mut Running) {
        let (Some((p, _)), Some(set), Some(store)) = (r.placement.as_ref(), r.shard_set, r.store.clone()) else {
            self.leave_election(r).await;
            return;
        };
        let flushed = if r.state == ElectionState::Leader { &r.leader_times } else { &r.follower_times };
        match campaign::decide(p, &self.host_id, flushed, sheaf_shard_core::time::now_nanos()) {
            Campaign::On if r.election.is_none() => {
                tracing::info!(shard_set = set, "campaigning for the shard set's leadership");
                r.election = Some(Election::start(
                    store.client(),
                    self.keys.election(set),
                    self.host_id.clone(),
                    self.config.election.clone(),
                    r.members.subscribe(),
                ));
            }
            Campaign::Off(reason) if r.election.is_some() => {
                tracing::info!(shard_set = set, reason, "leaving the shard set's election");
                self.leave_election(r).await;
            }
            _ => {}
        }
    }

    /// Stops campaigning (resigning a held leadership, revoking the lease) and makes the cores
    /// followers if they led.
    async fn leave_election(&self, r: &mut Running) {
        if let Some(e) = r.election.take() {
            e.stop().await;
            self.on_election(r).await;
        }
    }

    fn on_flush_times(&self, r: &mut Running, v: Versioned) {
        let times = match v.value.as_deref().map(ShardSetTimes::decode) {
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                tracing::error!(error = %e, "flush times in etcd cannot be read");
                return;
            }
            None => ShardSetTimes::default(),
        };
        r.follower_times = times;
        if v.value.is_some() {
            r.last_update = Instant::now();
            r.seen_update = true;
        }
        if r.state != ElectionState::Leader {
            r.forced = false;
            self.send_follower_flush(r);
        }
    }

    fn send_follower_flush(&self, r: &Running) {
        let follower = Arc::new(FollowerFlush {
            times: r.follower_times.to_runtime(self.num_shards),
            forced_horizon: r.forced.then_some(self.config.max_buffer_size.0.as_nanos() as i64),
        });
        self.commander.send_all(|| ShardCommand::SetFollowerFlush(follower.clone()));
    }

    async fn on_election(&self, r: &mut Running) {
        let state = r.election.as_ref().map_or(ElectionState::PendingFollower, |e| *e.state.borrow());
        if state == r.state {
            return;
        }
        let was_leader = r.state == ElectionState::Leader;
        r.state = state;
        if state == ElectionState::Leader {
            // Promotion: start from what the old leader persisted, read now, not from the watch.
            let Some(store) = r.store.clone() else { return };
            let Some(set) = r.shard_set else { return };
            let times = match store.get(&self.keys.flush_times(set)).await {
                Ok(v) => v.value.as_deref().map(ShardSetTimes::decode).transpose().unwrap_or_else(|e| {
                    tracing::error!(error = %e, "flush times unreadable at promotion; starting from none");
                    None
                }),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read flush times at promotion; resigning");
                    if let Some(el) = &r.election {
                        el.resign().await;
                    }
                    r.state = ElectionState::PendingFollower;
                    return;
                }
            };
            let times = times.unwrap_or_default();
            r.follower_times = times.clone();
            r.forced = false;
            self.send_follower_flush(r);
            r.leader_times = times;
            r.pending.clear();
            r.dirty = false;
            // Reports from rounds run as follower say nothing: drop them.
            while self.reports.pop().is_some() {}
            self.set_role(FlushRole::Leader).await;
            tracing::info!(shard_set = set, "leading: emitting from the persisted flush times on");
        } else if was_leader {
            self.set_role(FlushRole::Follower).await;
            r.last_update = Instant::now();
            tracing::info!(state = ?state, "no longer leader: emitting nothing");
        }
    }

    async fn check(&self, r: &mut Running) {
        self.gate(r).await;
        match r.state {
            ElectionState::Leader => {
                self.collect_reports(r);
                if r.dirty {
                    self.persist(r).await;
                }
            }
            _ => {
                while self.reports.pop().is_some() {}
                if !r.forced && r.shard_set.is_some() && r.last_update.elapsed() >= self.config.max_buffer_size.0 {
                    tracing::warn!(
                        max_buffer_size = ?self.config.max_buffer_size.0,
                        "no flush-time update from the leader; forced flush mode"
                    );
                    r.forced = true;
                    r.forced_entered += 1;
                    self.send_follower_flush(r);
                }
            }
        }
    }

    /// Moves the reports whose batches every sink has written into the leader's flush times.
    fn collect_reports(&self, r: &mut Running) {
        while let Some(report) = self.reports.pop() {
            r.pending.push(report);
        }
        let sinks = &self.sinks;
        let done = |rep: &FlushReport| sinks.iter().all(|s| s.written(rep.core) >= rep.seq);
        let (ready, waiting): (Vec<_>, Vec<_>) = r.pending.drain(..).partition(|rep| done(rep));
        r.pending = waiting;
        for rep in ready {
            for &shard in &r.owned {
                if usize::from(self.owners.get(shard as usize).copied().unwrap_or(u16::MAX)) == rep.core {
                    r.dirty |= r.leader_times.advance(shard, rep.resolution, rep.standard, rep.timed);
                }
            }
        }
    }

    async fn persist(&self, r: &mut Running) {
        let (Some(store), Some(set)) = (r.store.clone(), r.shard_set) else { return };
        let key = self.keys.flush_times(set);
        let value = r.leader_times.encode();
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for attempt in 0..=self.config.flush_times_persist_retries {
            // A leader that lost its lease meanwhile must not write over its successor's times.
            if r.election.as_ref().is_none_or(|e| *e.state.borrow() != ElectionState::Leader) {
                return;
            }
            match store.put(&key, value.clone()).await {
                Ok(()) => {
                    r.dirty = false;
                    r.persisted += 1;
                    r.etcd_ok = true;
                    return;
                }
                Err(e) => {
                    r.persist_failures += 1;
                    r.etcd_ok = false;
                    tracing::warn!(attempt, error = %e, "persisting flush times failed");
                    if attempt < self.config.flush_times_persist_retries {
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                }
            }
        }
    }

    async fn shutdown(&self, r: &mut Running) {
        if r.state == ElectionState::Leader {
            self.persist_emitted(r).await;
        }
        self.leave_election(r).await;
    }

    /// Leader, no longer emitting: waits (up to 10s) for the sinks to write the rounds already
    /// emitted and persists their flush times.
    async fn persist_emitted(&self, r: &mut Running) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.collect_reports(r);
            if r.pending.is_empty() || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if r.dirty {
            self.persist(r).await;
        }
    }

    fn status(&self, r: &Running) -> Value {
        let can_lead = r.state == ElectionState::Leader || self.can_lead(r);
        let leader = r.election.as_ref().and_then(|e| e.leader.borrow().clone());
        let shard_sets: Vec<Value> = r
            .shard_set
            .map(|set| {
                json!({
                    "shardSetId": set,
                    "electionState": r.state,
                    "canLead": can_lead,
                    "leader": leader,
                    "shards": r.owned,
                    "forcedFlush": r.forced,
                    "lastFlushTimesUpdateMsAgo": r.seen_update.then(|| r.last_update.elapsed().as_millis() as u64),
                })
            })
            .into_iter()
            .collect();
        json!({
            "hostId": self.host_id,
            "etcd": if r.store.is_some() && r.etcd_ok { "connected" } else { "unreachable" },
            "placementVersion": r.placement.as_ref().map(|(_, v)| *v),
            "placementError": r.placement_error,
            "electionState": r.state,
            "canLead": can_lead,
            "shardSets": shard_sets,
            "forcedFlushEntered": r.forced_entered,
            "flushTimesPersisted": r.persisted,
            "flushTimesPersistFailures": r.persist_failures,
            "pendingFlushReports": r.pending.len(),
        })
    }

    /// Whether this node could lead now without losing anything ([`campaign::can_lead`]);
    /// only a campaigning node can.
    fn can_lead(&self, r: &Running) -> bool {
        let me = r.placement.as_ref().and_then(|(p, _)| p.instance(&self.host_id));
        match (me, &r.election) {
            (Some(me), Some(_)) => campaign::can_lead(me, &r.follower_times, self.started_nanos),
            _ => false,
        }
    }
}

async fn recv(rx: &mut Option<mpsc::Receiver<Versioned>>) -> Option<Versioned> {
    match rx.as_mut() {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn not_owned(num_shards: u32) -> Arc<[ShardWindow]> {
    (0..num_shards).map(|_| ShardWindow::CLOSED).collect()
}

fn shard_windows(config: &ClusterConfig, num_shards: u32, me: Option<&placement::Instance>) -> Arc<[ShardWindow]> {
    let before = config.buffer_before_cutover.0.as_nanos() as i64;
    let after = config.buffer_after_cutoff.0.as_nanos() as i64;
    (0..num_shards)
        .map(|id| match me.and_then(|m| m.shard(id)) {
            None => ShardWindow::CLOSED,
            Some(s) => {
                let cutover = if s.cutover_nanos == 0 { i64::MIN } else { s.cutover_nanos };
                let cutoff = if s.cutoff_nanos == 0 { i64::MAX } else { s.cutoff_nanos };
                ShardWindow {
                    accept_from: cutover.saturating_sub(before),
                    accept_until: cutoff.saturating_add(after),
                    cutover,
                    cutoff,
                }
            }
        })
        .collect()
}

fn routes(p: &Placement, host_id: &str, num_shards: u32) -> Arc<Routes> {
    let mut peers: Vec<SocketAddr> = Vec::new();
    let mut peer_index = std::collections::HashMap::new();
    for i in p.instances.values().filter(|i| i.id != host_id) {
        match resolve(&i.endpoint) {
            Some(addr) => {
                peer_index.insert(i.id.clone(), peers.len() as u16);
                peers.push(addr);
            }
            None => tracing::error!(instance = %i.id, endpoint = %i.endpoint, "cannot resolve a peer's endpoint"),
        }
    }
    let mut local = vec![false; num_shards as usize];
    let mut remote = vec![Vec::new(); num_shards as usize];
    for i in p.instances.values() {
        for s in &i.shards {
            let Some(slot) = local.get_mut(s.id as usize) else { continue };
            if i.id == host_id {
                *slot = true;
            } else if let Some(&peer) = peer_index.get(&i.id) {
                remote[s.id as usize].push(peer);
            }
        }
    }
    Arc::new(Routes { peers, local, remote })
}

fn resolve(endpoint: &str) -> Option<SocketAddr> {
    endpoint.to_socket_addrs().ok()?.next()
}
