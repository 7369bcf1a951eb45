//! `Flusher`: one core's flush rounds (leader and follower), the switch between the two, and
//! the final flush at shutdown, and the writing of passthrough points. A round holds the round
//! permit from its first step to its last push, so a role switch, the final flush or a
//! passthrough push waits for the round in progress instead of cutting into it (and the
//! core's batches reach the sinks in the order of their sequence numbers).
//!
//! What a leader round forwards to rolled-up series (the aggregator's rollup outbox) is
//! routed after each shard, through a `Router` of this core: applied here, or handed off to
//! the core owning the rolled-up series. Follower rounds discard, so they forward nothing.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::sync::{Permit, Semaphore};
use sheaf_shard_core::time::now_nanos;

use super::to_sinks::{SinkWriter, Stalled};
use crate::checkpoint::Checkpointer;
use crate::command::FinalPhase;
use crate::config::FlushSchedule;
use crate::core::CoreState;
use crate::flush_role::{FlushReport, FlushRole, FollowerFlush};
use crate::handoff::Handoff;
use crate::ingest::{Router, RouterParts, Source};
use crate::services::PoolServices;

/// The latest window end a round at `now` may flush: `now − flush_delay`.
pub(crate) fn flush_horizon(flush: &FlushSchedule, now: i64) -> i64 {
    now - flush.delay_nanos()
}

/// How long the final flush waits for batches peers sent before it flushes without them.
const HANDOFF_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Flusher {
    state: Rc<CoreState>,
    sinks: SinkWriter,
    handoff: Rc<Handoff>,
    /// One permit: held by a round from `begin_flush` to its last push to the sinks.
    round: Semaphore,
    /// Whether rounds emit or discard (always `Leader` on a single node).
    role: Cell<FlushRole>,
    /// Set by the first cluster command: leader rounds are then reported for flush times.
    cluster_mode: Cell<bool>,
    /// The leader's flush times (and forced mode), for follower rounds.
    follower: RefCell<Arc<FollowerFlush>>,
    /// Routes the rollup outbox; taken out while a round routes (never borrowed across an
    /// `.await`).
    rollups: Cell<Option<Router>>,
    /// With `data_dir`: where each round records how far it emits before it does.
    checkpointer: Option<Rc<Checkpointer>>,
}

impl Flusher {
    pub(crate) fn new(
        state: Rc<CoreState>,
        services: Arc<PoolServices>,
        parts: RouterParts,
        checkpointer: Option<Rc<Checkpointer>>,
    ) -> Self {
        let handoff = parts.handoff.clone();
        Self {
            rollups: Cell::new(Some(Router::new(parts, Source::Single))),
            sinks: SinkWriter::new(state.clone(), services),
            state,
            handoff,
            round: Semaphore::new(1),
            role: Cell::new(FlushRole::Leader),
            cluster_mode: Cell::new(false),
            follower: RefCell::default(),
            checkpointer,
        }
    }

    /// Whether this core's rounds emit (a single node, or a cluster leader).
    pub(crate) fn is_leader(&self) -> bool {
        self.role.get() == FlushRole::Leader
    }

    pub(crate) fn state(&self) -> &CoreState {
        &self.state
    }

    /// From now on leader rounds are reported to the control thread (cluster mode).
    pub(crate) fn enter_cluster_mode(&self) {
        self.cluster_mode.set(true);
    }

    pub(crate) fn set_follower_flush(&self, follower: Arc<FollowerFlush>) {
        *self.follower.borrow_mut() = follower;
    }

    /// Waits for the round in progress, if any, and holds off the next one.
    async fn hold_rounds(&self) -> Option<Permit<'_>> {
        self.round.acquire_permit(1).await.ok()
    }

    /// Runs the round of `resolution` that was due at `scheduled`, as the role says (a leader
    /// flushes the windows ending at or before `horizon`); then closes cut-off shards, drops
    /// the storage policies no series uses any more, and hands freed memory back.
    pub(crate) async fn round(&self, resolution: i64, scheduled: i64, horizon: i64) {
        {
            let _round = self.hold_rounds().await;
            match self.role.get() {
                FlushRole::Leader => self.leader_round(resolution, scheduled, horizon).await,
                FlushRole::Follower => self.follower_round(resolution).await,
            }
        }
        let (closed, pruned) = {
            let mut agg = self.state.aggregator.borrow_mut();
            (agg.close_cut_off_shards(now_nanos()), agg.prune_unused_policies())
        };
        if !closed.is_empty() {
            tracing::info!(core = self.state.index, ?closed, "closed cut-off shards");
        }
        if pruned > 0 {
            tracing::debug!(core = self.state.index, pruned, "dropped storage policies no series uses");
        }
        if let Some(release) = self.sinks.services().release_memory {
            release();
        }
    }

    /// Queues the passthrough points accepted since the last push on the sinks, after the
    /// round in progress, if any.
    pub(crate) async fn push_passthrough(&self) {
        let _round = self.hold_rounds().await;
        self.write_passthrough().await;
    }

    /// Queues the passthrough points accepted so far; the caller holds the round permit.
    async fn write_passthrough(&self) {
        let batches = {
            let passthrough = &mut self.state.aggregator.borrow_mut().passthrough;
            if passthrough.pending() == 0 {
                return;
            }
            // The batch that replaces the one taken: one the sinks handed back, if any.
            if let Some(spare) = self.sinks.services().flush_batches.take(self.state.index) {
                passthrough.add_spare(spare);
            }
            passthrough.take()
        };
        self.sinks.push_batches(batches, &mut Stalled::new(&self.sinks)).await;
    }

    /// Switches between emitting and discarding. Promotion first drops every window the
    /// leader's last known flush times cover, then runs a round of every resolution at once
    /// (as M3's flush manager does when it takes over): the windows the old leader did not
    /// emit come out, and what they roll up is forwarded, without waiting up to a period for
    /// the next scheduled round (a forwarded value later than `L(r, n)` would be refused).
    /// Passthrough points are written from the switch on by a leader only; those a leader
    /// accepted before it stepped down are still written.
    pub(crate) async fn set_role(&self, role: FlushRole) {
        self.cluster_mode.set(true);
        let _round = self.hold_rounds().await;
        self.state.aggregator.borrow_mut().passthrough.set_writes(role == FlushRole::Leader);
        self.write_passthrough().await;
        let promoted = role == FlushRole::Leader && self.role.get() == FlushRole::Follower;
        if promoted {
            let resolutions: Vec<i64> = self.state.aggregator.borrow().resolutions().collect();
            for r in &resolutions {
                self.discard_as_follower(*r, false).await;
            }
            for r in resolutions {
                let now = now_nanos();
                self.leader_round(r, now, flush_horizon(&self.state.config.flush, now)).await;
            }
        }
        self.role.set(role);
        self.state.stats.borrow_mut().leader = role == FlushRole::Leader;
        self.state.publish_stats();
    }

    /// A follower round: nothing is emitted; windows the leader has emitted are dropped.
    async fn follower_round(&self, resolution: i64) {
        self.discard_as_follower(resolution, true).await;
        self.state.stats.borrow_mut().follower_rounds += 1;
        self.state.publish_stats();
    }

    async fn discard_as_follower(&self, resolution: i64, forced_too: bool) {
        let follower = self.follower.borrow().clone();
        let now = now_nanos();
        let shards = self.state.aggregator.borrow().shards_to_flush(now);
        if forced_too && follower.forced_horizon.is_some() {
            self.state.stats.borrow_mut().forced_flush_rounds += 1;
        }
        for shard in shards {
            {
                let mut agg = self.state.aggregator.borrow_mut();
                for f in follower.times.of(shard).iter().filter(|f| f.resolution == resolution) {
                    agg.discard_shard(shard, resolution, f.standard, f.timed, &f.forwarded, now);
                }
                if forced_too && let Some(horizon) = follower.forced_horizon {
                    agg.discard_all_before(shard, now - horizon, now);
                }
            }
            glommio::yield_if_needed().await;
        }
    }

    async fn leader_round(&self, resolution: i64, scheduled: i64, horizon: i64) {
        let started = Instant::now();
        let now = now_nanos();
        self.state.aggregator.borrow_mut().begin_flush(resolution, horizon.min(now));
        self.write_marks().await;
        // Idle shards hold no window: the round passes them by.
        let shards = self.state.aggregator.borrow().shards_to_flush(now);
        let mut out = self.sinks.collector();
        let mut stalled = Stalled::new(&self.sinks);
        for shard in shards {
            self.sinks.wait_for_room(&mut out, &mut stalled).await;
            self.state.aggregator.borrow_mut().flush_shard(shard, resolution, now, &mut out);
            self.sinks.push_ready(&mut out, false, &mut stalled).await;
            self.sinks.restock(&mut out);
            glommio::yield_if_needed().await;
        }
        // Once per round: what the shards forward is gathered per rolled-up window first.
        self.route_rollups().await;
        self.sinks.push_ready(&mut out, true, &mut stalled).await;
        self.sinks.return_spares(out);
        let elapsed = started.elapsed().as_nanos() as u64;
        {
            let mut stats = self.state.stats.borrow_mut();
            stats.flush_rounds += 1;
            stats.last_flush_duration_ns = elapsed;
            stats.flush_duration_ns_total += elapsed;
            stats.last_flush_lag_ns = (now_nanos() - scheduled).max(0) as u64;
        }
        self.report_round(resolution);
        self.state.publish_stats();
    }

    /// Sends what the flushes forwarded to rolled-up series on to the cores that own them
    /// (applied at once on this core): once per round, each rolled-up window's values of
    /// every shard the round flushed in one sample.
    async fn route_rollups(&self) {
        let Some(mut router) = self.rollups.take() else { return };
        let routed = {
            let mut agg = self.state.aggregator.borrow_mut();
            let outbox = agg.rollup_outbox();
            // Counted per source shard and window, however many of those one sample gathers.
            let routed: u64 = (0..outbox.len()).map(|i| outbox.gathered_runs(i).map_or(1, <[_]>::len) as u64).sum();
            router.catch_up();
            router.take(outbox);
            outbox.clear();
            routed
        };
        if routed > 0 {
            self.state.stats.borrow_mut().rollup_forwarded += routed;
            router.dispatch().await;
        }
        self.rollups.set(Some(router));
    }

    /// Flushes everything at shutdown (open windows too with `include_open`), once every
    /// peer's hand-offs have been taken in and a round still pushing to a full sink has
    /// finished (its values are already out of the aggregator; the executor must not be left
    /// while they are in flight). In two phases, each run by every core before the next: the
    /// source windows first (what they roll up is routed to the owning cores), then, once
    /// those values are taken in, the forwarded windows.
    pub(crate) async fn final_flush(&self, include_open: bool, phase: FinalPhase) {
        let _round = self.hold_rounds().await;
        // A follower emits nothing, not even at shutdown: its leader (or its successor) does.
        if self.role.get() == FlushRole::Follower {
            return;
        }
        if !self.handoff.wait_all_taken_in(HANDOFF_DRAIN_TIMEOUT).await {
            tracing::error!(
                core = self.state.index,
                "hand-off batches still in flight after {HANDOFF_DRAIN_TIMEOUT:?}; flushing without them"
            );
        }
        let now = now_nanos();
        let shards: Vec<u32> = self.state.aggregator.borrow().shards_held().collect();
        let resolutions: Vec<i64> = self.state.aggregator.borrow().resolutions().collect();
        let mut out = self.sinks.collector();
        let mut stalled = Stalled::new(&self.sinks);
        for r in &resolutions {
            self.state.aggregator.borrow_mut().begin_flush(*r, now);
        }
        self.write_marks().await;
        for shard in shards {
            {
                let mut agg = self.state.aggregator.borrow_mut();
                if include_open {
                    let below = match phase {
                        FinalPhase::Sources => 1,
                        FinalPhase::Nested { below } => below,
                        FinalPhase::Forwarded => u8::MAX,
                    };
                    agg.flush_shard_all_forwarded_below(shard, below, now, &mut out);
                } else {
                    for r in &resolutions {
                        agg.flush_shard(shard, *r, now, &mut out);
                    }
                }
            }
            self.sinks.push_ready(&mut out, false, &mut stalled).await;
            self.sinks.restock(&mut out);
        }
        self.route_rollups().await;
        self.sinks.push_ready(&mut out, true, &mut stalled).await;
        self.sinks.return_spares(out);
        self.write_passthrough().await;
        if phase != FinalPhase::Forwarded {
            return;
        }
        for r in resolutions {
            self.report_round(r);
        }
        self.state.publish_stats();
    }

    /// With `data_dir`: persists how far the round about to emit reaches, before it emits
    /// (a crash then loses what the round would have emitted rather than emitting it twice).
    async fn write_marks(&self) {
        if let Some(c) = &self.checkpointer {
            c.write_marks().await;
        }
    }

    /// Cluster mode: tells the control thread how far this core's leader rounds of
    /// `resolution` have emitted, and up to which batch the sinks must have written for that
    /// to hold.
    fn report_round(&self, resolution: i64) {
        if !self.cluster_mode.get() {
            return;
        }
        let agg = self.state.aggregator.borrow();
        let (standard, timed) = agg.flushed_through(resolution);
        let forwarded = agg.forwarded_flushed_through(resolution);
        let seq = self.sinks.last_seq();
        let report = FlushReport { core: self.state.index, resolution, standard, timed, forwarded, seq };
        self.sinks.services().flush_reports.push(report);
    }
}
