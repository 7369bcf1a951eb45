//! The node agent's decisions, apart from its I/O: a state machine that takes what happened
//! ([`Input`]: etcd reached, a placement or flush-time value, an election outcome, a check
//! tick, a resign or shutdown request, and the results of its own reads and writes) and says
//! what to do ([`Effect`]: commands to the cores, watches, election moves, store reads and
//! writes), in order. The driver in `node.rs` carries the effects out one by one; an effect
//! that reads or writes the store hands its result back as the next input before the
//! following effect runs. There is no clock and no I/O here: each input comes with [`Now`].
//!
//! Owned by the agent task on the control thread and touched by nothing else. Its only shared
//! reads are the sinks' write progress (atomics the sink threads advance) when leader reports
//! are collected.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sheaf_shard_runtime::{FlushReport, FlushRole, FollowerFlush, SinkQueue};

use super::campaign::{self, Campaign};
use super::cores::CoreCommand;
use super::election::ElectionState;
use super::etcd::Keys;
use super::flush_times::ShardSetTimes;
use super::placement::{self, Placement};
use super::plan::Assignment;
use super::store::{StoreError, Versioned};
use crate::config::ClusterConfig;

mod recovery;
pub use recovery::{RecoveryView, SyncView};

/// What the agent is given at start and never changes.
pub struct Settings {
    pub config: ClusterConfig,
    pub keys: Keys,
    pub host_id: String,
    pub num_shards: u32,
    /// Which core owns each shard (index = shard id).
    pub owners: Arc<[u16]>,
    /// A leader report counts once every sink has written its batches.
    pub sinks: Vec<Arc<SinkQueue>>,
    /// When this node started (wall clock), for [`campaign::can_lead`].
    pub started_nanos: i64,
}

/// The time an input happened: monotonic for timeouts, wall clock for cutovers and cutoffs.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub wall_nanos: i64,
}

impl Now {
    pub fn current() -> Self {
        Self { at: Instant::now(), wall_nanos: sheaf_shard_core::time::now_nanos() }
    }
}

#[derive(Debug)]
pub enum Input {
    /// The store is reachable (once, at start).
    Connected,
    /// The placement key's value (absent: no placement yet).
    Placement(Versioned),
    /// The shard set's flush-time key's value, as the leader last wrote it.
    FlushTimes(Versioned),
    /// The running election's state changed (PendingFollower also once it stopped).
    Election(ElectionState),
    /// Answer to [`Effect::ReadFlushTimes`].
    PromotionRead(Result<Versioned, StoreError>),
    /// The periodic check, with the leader reports the cores pushed since the last one.
    Tick(Vec<FlushReport>),
    /// The wait of [`Effect::DrainEmitted`] is over: persist what it collected.
    Drained,
    /// Answer to [`Effect::Persist`]: how many tries failed, and whether one succeeded.
    Persisted { failures: u32, written: bool },
    /// `POST /resign`: stop emitting, persist what was emitted, give leadership up.
    Resign,
    /// Shutdown, after the cores' final flush: persist it (if leading), leave the election.
    Shutdown,
}

#[derive(Debug, Clone)]
pub enum Effect {
    /// Send to every core (a role change waits for every core to apply it).
    Cores(CoreCommand),
    /// Start following the placement key.
    WatchPlacement,
    /// Follow this flush-time key instead of the current one (None: none).
    WatchFlushTimes(Option<String>),
    /// The shard set's members as of this placement (the election confirms a leader among them).
    Members(Vec<String>),
    /// Campaign in this election.
    StartElection(String),
    /// Leave the election: resign a held leadership, revoke the lease.
    StopElection,
    /// Give a held leadership up and campaign again later; answered by [`Input::Election`].
    ResignElection,
    /// Read this flush-time key at promotion; answered by [`Input::PromotionRead`].
    ReadFlushTimes(String),
    /// Drop the leader reports the cores have queued (they came from follower rounds).
    DiscardReports,
    /// Wait (up to [`DRAIN_LIMIT`]) for the sinks to write what was emitted, handing the
    /// reports in meanwhile ([`AgentState::collect`]), then answer [`Input::Drained`].
    DrainEmitted,
    /// Write the flush times while still leader (with retries); answered by [`Input::Persisted`].
    Persist { key: String, value: Vec<u8> },
}

/// Who carries the effects out: the agent's I/O (`node.rs`), or a test's recorder.
pub trait Execute: Send {
    /// The time inputs happen at.
    fn now(&self) -> Now;

    /// Carries `effect` out; returns the input that answers it, if any.
    fn execute(&mut self, state: &mut AgentState, effect: Effect) -> impl Future<Output = Option<Input>> + Send;
}

/// The etcd connection as the agent sees it (whether etcd answers is `health.rs`'s).
#[derive(Default)]
struct Link {
    /// A store was obtained: watches and elections can start.
    connected: bool,
}

/// The placement and what it gives this node.
#[derive(Default)]
struct Placed {
    placement: Option<(Placement, i64)>,
    error: Option<String>,
    shard_set: Option<u32>,
    owned: Vec<u32>,
}

/// This node's part in its shard set's election, and what the cores do about it.
struct Candidacy {
    /// An election task runs (campaigning or leading).
    running: bool,
    state: ElectionState,
    /// The cores were last told to lead.
    emitting: bool,
}

/// Leader: the shard set it leads and its shards (kept from the promotion on, so that a
/// placement moving this node elsewhere still persists the set it led), the flush times
/// persisted (or read at promotion) plus what waits to be, and the reports whose batches the
/// sinks have not all written yet.
#[derive(Default)]
struct LeaderProgress {
    shard_set: Option<u32>,
    shards: Vec<u32>,
    times: ShardSetTimes,
    dirty: bool,
    pending: Vec<FlushReport>,
}

/// Follower: the leader's flush times as last seen, and when.
struct FollowerView {
    times: ShardSetTimes,
    last_update: Instant,
    seen_update: bool,
    forced: bool,
}

/// What `/status` counts.
#[derive(Default)]
struct Counters {
    forced_entered: u64,
    persisted: u64,
    persist_failures: u64,
}

/// The agent's state, one part per concern.
pub struct AgentState {
    settings: Settings,
    link: Link,
    placed: Placed,
    candidacy: Candidacy,
    leader: LeaderProgress,
    follower: FollowerView,
    counters: Counters,
    /// Shards synced with the leader or recovered from it since start (`recovery.rs`).
    recovery: RecoveryView,
}

impl AgentState {
    pub fn new(settings: Settings, now: Instant) -> Self {
        Self {
            settings,
            link: Link::default(),
            placed: Placed::default(),
            candidacy: Candidacy { running: false, state: ElectionState::PendingFollower, emitting: false },
            leader: LeaderProgress::default(),
            follower: FollowerView {
                times: ShardSetTimes::default(),
                last_update: now,
                seen_update: false,
                forced: false,
            },
            counters: Counters::default(),
            recovery: RecoveryView::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Reports still waiting for the sinks (leader).
    pub fn awaiting_sinks(&self) -> bool {
        !self.leader.pending.is_empty()
    }

    /// Handles `input` and has `exec` carry its effects out in order; an effect's answer is
    /// handled (and its effects carried out) before the next effect.
    pub async fn step<E: Execute>(&mut self, exec: &mut E, input: Input) {
        let mut todo: VecDeque<Effect> = self.handle(input, exec.now()).into();
        while let Some(effect) = todo.pop_front() {
            if let Some(answer) = exec.execute(self, effect).await {
                for e in self.handle(answer, exec.now()).into_iter().rev() {
                    todo.push_front(e);
                }
            }
        }
    }

    /// What to do about `input`, in order.
    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Effect> {
        let mut fx = Vec::new();
        match input {
            Input::Connected => {
                self.link = Link { connected: true };
                fx.push(Effect::WatchPlacement);
            }
            Input::Placement(v) => self.on_placement(v, now, &mut fx),
            Input::FlushTimes(v) => self.on_flush_times(v, now, &mut fx),
            Input::Election(state) => self.on_election(state, now, &mut fx),
            Input::PromotionRead(read) => self.on_promotion_read(read, &mut fx),
            Input::Tick(reports) => self.check(reports, now, &mut fx),
            Input::Drained => self.persist_if_dirty(&mut fx),
            Input::Persisted { failures, written } => {
                self.counters.persist_failures += u64::from(failures);
                if written {
                    self.leader.dirty = false;
                    self.counters.persisted += 1;
                }
            }
            Input::Resign => {
                self.hand_over(&mut fx);
                if self.candidacy.running {
                    fx.push(Effect::ResignElection);
                }
            }
            Input::Shutdown => {
                // The cores have run their final flush and stopped: nothing is emitting.
                self.candidacy.emitting = false;
                self.leave_election(now, &mut fx);
            }
        }
        fx
    }

    fn on_placement(&mut self, v: Versioned, now: Now, fx: &mut Vec<Effect>) {
        let Some(bytes) = v.value else {
            self.placed.placement = None;
            self.placed.error = Some("no placement in etcd yet".into());
            return;
        };
        let p = match placement::decode_snapshots(&bytes) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "placement in etcd cannot be read; keeping the last one");
                self.placed.error = Some(e.to_string());
                return;
            }
        };
        let s = &self.settings;
        if p.num_shards != s.num_shards {
            let msg = format!("placement has {} shards, this node's num_shards is {}", p.num_shards, s.num_shards);
            tracing::error!("{msg}; ignoring the placement");
            self.placed.error = Some(msg);
            return;
        }
        self.placed.error = None;
        let a = Assignment::of(&p, &s.config, &s.host_id, s.num_shards);
        fx.push(Effect::Cores(CoreCommand::Windows(a.windows)));
        fx.push(Effect::Cores(CoreCommand::Routes(Arc::new(a.routes))));
        fx.push(Effect::Members(a.members));
        tracing::info!(version = v.version, shard_set = ?a.shard_set, shards = a.owned.len(), "placement applied");
        if a.shard_set == self.leader.shard_set {
            self.leader.shards.clone_from(&a.owned);
        }
        self.placed.owned = a.owned;
        self.placed.placement = Some((p, v.version));
        if a.shard_set != self.placed.shard_set {
            self.leave_election(now, fx);
            self.placed.shard_set = a.shard_set;
            self.follower.seen_update = false;
            let key = a.shard_set.map(|set| self.settings.keys.flush_times(set));
            if key.is_some() {
                self.follower.last_update = now.at;
            }
            fx.push(Effect::WatchFlushTimes(key));
        }
        self.gate(now, fx);
    }

    /// Joins or leaves the shard set's election as [`campaign::decide`] says.
    fn gate(&mut self, now: Now, fx: &mut Vec<Effect>) {
        let (Some((p, _)), Some(set), true) = (&self.placed.placement, self.placed.shard_set, self.link.connected)
        else {
            self.leave_election(now, fx);
            return;
        };
        let flushed =
            if self.candidacy.state == ElectionState::Leader { &self.leader.times } else { &self.follower.times };
        match campaign::decide(p, &self.settings.host_id, flushed, now.wall_nanos) {
            Campaign::On if !self.candidacy.running => {
                tracing::info!(shard_set = set, "campaigning for the shard set's leadership");
                self.candidacy.running = true;
                fx.push(Effect::StartElection(self.settings.keys.election(set)));
            }
            Campaign::Off(reason) if self.candidacy.running => {
                tracing::info!(shard_set = set, reason, "leaving the shard set's election");
                self.leave_election(now, fx);
            }
            _ => {}
        }
    }

    /// Stops campaigning, whatever the reason (cut off, moved to another shard set, removed,
    /// no placement, shutdown): a leader first hands over ([`Self::hand_over`]), then the
    /// election is left (a held leadership resigned, the lease revoked).
    fn leave_election(&mut self, now: Now, fx: &mut Vec<Effect>) {
        if self.candidacy.running {
            self.hand_over(fx);
            self.candidacy.running = false;
            fx.push(Effect::StopElection);
            self.on_election(ElectionState::PendingFollower, now, fx);
        }
    }

    /// A leader about to let go: stop emitting, then persist what was emitted while the
    /// leadership is still held, so the next leader repeats nothing. Every way out of the
    /// leadership but a lost lease goes through here first.
    fn hand_over(&mut self, fx: &mut Vec<Effect>) {
        if self.candidacy.state == ElectionState::Leader {
            self.set_emitting(false, fx);
            fx.push(Effect::DrainEmitted);
        }
    }

    fn on_flush_times(&mut self, v: Versioned, now: Now, fx: &mut Vec<Effect>) {
        let times = match v.value.as_deref().map(ShardSetTimes::decode) {
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                tracing::error!(error = %e, "flush times in etcd cannot be read");
                return;
            }
            None => ShardSetTimes::default(),
        };
        self.follower.times = times;
        if v.value.is_some() {
            self.follower.last_update = now.at;
            self.follower.seen_update = true;
        }
        if self.candidacy.state != ElectionState::Leader {
            self.follower.forced = false;
            fx.push(self.follower_flush());
        }
    }

    fn follower_flush(&self) -> Effect {
        let max_buffer = self.settings.config.max_buffer_size.0.as_nanos() as i64;
        Effect::Cores(CoreCommand::FollowerFlush(Arc::new(FollowerFlush {
            times: self.follower.times.to_runtime(self.settings.num_shards),
            forced_horizon: self.follower.forced.then_some(max_buffer),
        })))
    }

    fn set_emitting(&mut self, emitting: bool, fx: &mut Vec<Effect>) {
        if self.candidacy.emitting != emitting {
            self.candidacy.emitting = emitting;
            let role = if emitting { FlushRole::Leader } else { FlushRole::Follower };
            fx.push(Effect::Cores(CoreCommand::Role(role)));
        }
    }

    fn on_election(&mut self, state: ElectionState, now: Now, fx: &mut Vec<Effect>) {
        if state == self.candidacy.state {
            return;
        }
        let was_leader = self.candidacy.state == ElectionState::Leader;
        self.candidacy.state = state;
        if state == ElectionState::Leader {
            // Promotion: start from what the old leader persisted, read now, not from the watch.
            if let Some(set) = self.placed.shard_set {
                fx.push(Effect::ReadFlushTimes(self.settings.keys.flush_times(set)));
            }
        } else if was_leader {
            self.set_emitting(false, fx);
            self.follower.last_update = now.at;
            tracing::info!(state = ?state, "no longer leader: emitting nothing");
        }
    }

    fn on_promotion_read(&mut self, read: Result<Versioned, StoreError>, fx: &mut Vec<Effect>) {
        let value = match read {
            Ok(v) => v.value,
            Err(e) => {
                tracing::error!(error = %e, "cannot read flush times at promotion; resigning");
                self.candidacy.state = ElectionState::PendingFollower;
                fx.push(Effect::ResignElection);
                return;
            }
        };
        let times = value.as_deref().map(ShardSetTimes::decode).transpose().unwrap_or_else(|e| {
            tracing::error!(error = %e, "flush times unreadable at promotion; starting from none");
            None
        });
        let times = times.unwrap_or_default();
        self.follower.times = times.clone();
        self.follower.forced = false;
        fx.push(self.follower_flush());
        self.leader = LeaderProgress {
            shard_set: self.placed.shard_set,
            shards: self.placed.owned.clone(),
            times,
            dirty: false,
            pending: Vec::new(),
        };
        // Reports from rounds run as follower say nothing.
        fx.push(Effect::DiscardReports);
        self.set_emitting(true, fx);
        tracing::info!(shard_set = ?self.placed.shard_set, "leading: emitting from the persisted flush times on");
    }

    fn check(&mut self, reports: Vec<FlushReport>, now: Now, fx: &mut Vec<Effect>) {
        // Collected before the gate: a leader it sends away persists these reports too.
        if self.candidacy.state == ElectionState::Leader {
            self.collect(reports);
        }
        self.gate(now, fx);
        if self.candidacy.state == ElectionState::Leader {
            self.persist_if_dirty(fx);
            return;
        }
        let max_buffer = self.settings.config.max_buffer_size.0;
        let silent = now.at.saturating_duration_since(self.follower.last_update);
        if !self.follower.forced && self.placed.shard_set.is_some() && silent >= max_buffer {
            tracing::warn!(?max_buffer, "no flush-time update from the leader; forced flush mode");
            self.follower.forced = true;
            self.counters.forced_entered += 1;
            fx.push(self.follower_flush());
        }
    }

    /// Leader: moves the reports whose batches every sink has written into the flush times;
    /// the others wait for the next call.
    pub fn collect(&mut self, reports: Vec<FlushReport>) {
        self.leader.pending.extend(reports);
        let sinks = &self.settings.sinks;
        let done = |rep: &FlushReport| sinks.iter().all(|s| s.written(rep.core) >= rep.seq);
        let (ready, waiting): (Vec<_>, Vec<_>) = self.leader.pending.drain(..).partition(|rep| done(rep));
        self.leader.pending = waiting;
        let owners = &self.settings.owners;
        for rep in ready {
            for &shard in &self.leader.shards {
                if usize::from(owners.get(shard as usize).copied().unwrap_or(u16::MAX)) == rep.core {
                    let times = &mut self.leader.times;
                    let moved = times.advance(shard, rep.resolution, rep.standard, rep.timed);
                    let forwarded = times.advance_forwarded(shard, rep.resolution, &rep.forwarded);
                    self.leader.dirty |= moved || forwarded;
                }
            }
        }
    }

    fn persist_if_dirty(&self, fx: &mut Vec<Effect>) {
        if let (true, Some(set)) = (self.leader.dirty, self.leader.shard_set) {
            fx.push(Effect::Persist { key: self.settings.keys.flush_times(set), value: self.leader.times.encode() });
        }
    }

    /// `/status`'s `cluster` view; `leader` is the election's last observed leader, `etcd`
    /// whether etcd answers ([`EtcdHealth::describe`](super::health::EtcdHealth::describe)).
    pub fn status(&self, now: Instant, leader: Option<String>, etcd: &str) -> Value {
        let state = self.candidacy.state;
        let can_lead = state == ElectionState::Leader || self.can_lead();
        let ago = |t: Instant| now.saturating_duration_since(t).as_millis() as u64;
        let shard_sets: Vec<Value> = self
            .placed
            .shard_set
            .map(|set| {
                json!({
                    "shardSetId": set,
                    "electionState": state,
                    "canLead": can_lead,
                    "leader": leader,
                    "shards": self.placed.owned,
                    "forcedFlush": self.follower.forced,
                    "lastFlushTimesUpdateMsAgo": self.follower.seen_update.then(|| ago(self.follower.last_update)),
                })
            })
            .into_iter()
            .collect();
        json!({
            "hostId": self.settings.host_id,
            "etcd": etcd,
            "placementVersion": self.placed.placement.as_ref().map(|(_, v)| *v),
            "placementError": self.placed.error,
            "electionState": state,
            "canLead": can_lead,
            "shardSets": shard_sets,
            "forcedFlushEntered": self.counters.forced_entered,
            "flushTimesPersisted": self.counters.persisted,
            "flushTimesPersistFailures": self.counters.persist_failures,
            "pendingFlushReports": self.leader.pending.len(),
            "shardRecovery": self.shard_recovery(),
            "recovery": self.recovery_progress(),
        })
    }

    /// Whether this node could lead now without losing anything ([`campaign::can_lead`]);
    /// only a campaigning node can.
    fn can_lead(&self) -> bool {
        let me = self.placed.placement.as_ref().and_then(|(p, _)| p.instance(&self.settings.host_id));
        match me {
            // A shard still being recovered from the leader is not whole here yet.
            Some(_) if !self.recovery.recovering.is_empty() => false,
            Some(me) if self.candidacy.running => {
                campaign::can_lead(me, &self.follower.times, self.settings.started_nanos, &self.caught_up())
            }
            _ => false,
        }
    }
}

/// How long the driver waits for the sinks at a resign or shutdown ([`Effect::DrainEmitted`]).
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);
