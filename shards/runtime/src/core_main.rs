//! One shard core's main: builds the core's floor (`core`), connects its end of the
//! hand-off, starts its tasks, then applies the control thread's commands until `Exit`.
//!
//! Tasks on a core, by task queue (see `core::TaskQueues`):
//! - `ingest`: one accept loop per TCP ingest port, one adopt loop, one read loop per
//!   datagram socket, one task per connection, one hand-off drain per peer core, one
//!   forwarder (and its ack reader) per peer node, the re-route task of held values;
//! - `flush`: the flush schedule and its rounds, and the flush work commands ask for (a
//!   promotion's discard, the final flush); with `data_dir`, the checkpoint task and the
//!   checkpoint load and final pass; the idle-shard task and synced flushes;
//! - `control`: this command loop and the stats publisher.
//!
//! Shutdown, in order: (1) `StopIngest`: every ingest task is told to stop, every
//! connection's reads end, each task dispatches and acks what it decoded and ends; the reply
//! goes once all have; (2) `FinalFlush`, once every core has done (1), in phases each run
//! by every core before the next: wait until every batch peers sent has been taken in (the
//! hand-off ledger), flush (the source windows, routing what they roll up; then the
//! forwarded windows one forward count at a time, routing what nested rollups forward again;
//! then the rest), queue on the sinks; with `data_dir`, (2b) `Checkpoint`: every shard
//! written, waited for; (3) `Exit`.

use std::rc::Rc;
use std::sync::Arc;

use sheaf_shard_core::Published;

use crate::checkpoint::{self, Checkpointer};
use crate::command::ShardCommand;
use crate::config::PoolConfig;
use crate::core::{CoreState, IngestLifecycle, RouteTable, TaskQueues, spawn_into};
use crate::flush::{self, Flusher};
use crate::handoff::{self, CoreLinks};
use crate::idle::{self, Syncer};
use crate::ingest::held::HeldValues;
use crate::ingest::{self, Adoption, ConnectionSpread, IngestContext, RouterParts, StreamBudgets};
use crate::output::forward::Forwarders;
use crate::services::PoolServices;
use crate::stats::CoreStats;

/// What a core thread is started with.
pub(crate) struct CoreSetup {
    pub(crate) index: usize,
    pub(crate) cpu: usize,
    pub(crate) config: Arc<PoolConfig>,
    pub(crate) services: Arc<PoolServices>,
    pub(crate) commands: flume::Receiver<ShardCommand>,
    pub(crate) published: Arc<Published<CoreStats>>,
    pub(crate) links: CoreLinks,
    pub(crate) spread: Arc<ConnectionSpread>,
    /// Connections other cores accepted and handed to this one.
    pub(crate) adoptions: flume::Receiver<Adoption>,
}

pub(crate) async fn run_core(setup: CoreSetup) {
    let queues = TaskQueues::create();
    let state = Rc::new(CoreState::new(setup.index, setup.cpu, setup.config, setup.published));
    let routing = Rc::new(RouteTable::new());
    let lifecycle = Rc::new(IngestLifecycle::new(state.clone()));
    let handoff = handoff::connect(state.clone(), setup.links, queues.ingest).await;
    let forwarders = Rc::new(Forwarders::new(state.clone(), queues.ingest));
    let held = Rc::new(HeldValues::new(state.config.unowned_hold, state.config.unowned_hold_max_values));
    let router =
        RouterParts { state: state.clone(), routing: routing.clone(), handoff: handoff.clone(), forwarders, held };
    let checkpointer = Checkpointer::new(state.clone()).map(Rc::new);
    let flusher = Rc::new(Flusher::new(state.clone(), setup.services, router.clone(), checkpointer.clone()));
    let ingest = Rc::new(IngestContext {
        state: state.clone(),
        lifecycle: lifecycle.clone(),
        router,
        queues,
        spread: setup.spread,
        adoptions: setup.adoptions,
        budgets: StreamBudgets::new(&state.config.ingest),
    });
    spawn_into(queues.flush, flush::run(flusher.clone(), lifecycle.clone()));
    spawn_into(queues.flush, flush::run_passthrough(flusher.clone(), lifecycle.clone()));
    spawn_into(queues.control, publish_loop(state.clone()));
    if let Some(c) = &checkpointer {
        spawn_into(queues.flush, checkpoint::run(c.clone(), lifecycle.clone()));
    }
    let syncer = Rc::new(Syncer::new(state.clone(), flusher.clone(), checkpointer.clone()));
    spawn_into(queues.flush, idle::run(syncer.clone(), lifecycle.clone()));
    let commands =
        CommandLoop { state: state.clone(), routing, lifecycle, flusher, ingest, queues, checkpointer, syncer };
    let run = glommio::spawn_local_into(commands.run(setup.commands), queues.control);
    match run {
        Ok(task) => task.await,
        Err(e) => tracing::error!(core = state.index, error = %e, "could not start the command loop"),
    }
    state.publish_stats();
    // Dropping the senders ends the peers' take-in tasks.
    handoff.disconnect();
}

/// The command loop's hold on the core: every piece a command may change.
struct CommandLoop {
    state: Rc<CoreState>,
    routing: Rc<RouteTable>,
    lifecycle: Rc<IngestLifecycle>,
    flusher: Rc<Flusher>,
    ingest: Rc<IngestContext>,
    queues: TaskQueues,
    /// With `data_dir`: the core's checkpoints.
    checkpointer: Option<Rc<Checkpointer>>,
    /// Idle shards and synced flush.
    syncer: Rc<Syncer>,
}

impl CommandLoop {
    /// Applies commands in order until `Exit` (or the control thread drops the queue).
    async fn run(self, commands: flume::Receiver<ShardCommand>) {
        while let Ok(cmd) = commands.recv_async().await {
            tracing::debug!(core = self.state.index, %cmd, "command");
            if !self.apply(cmd).await {
                break;
            }
        }
    }

    /// Applies one command; false for `Exit`.
    async fn apply(&self, cmd: ShardCommand) -> bool {
        match cmd {
            ShardCommand::SetShardOwners(owners) => self.routing.set_owners(owners),
            ShardCommand::SetShardWindows(windows) => {
                self.flusher.enter_cluster_mode();
                let mut agg = self.state.aggregator.borrow_mut();
                for (shard, w) in windows.iter().enumerate() {
                    agg.set_shard_window(shard as u32, *w);
                }
            }
            ShardCommand::SetRoutes(routes) => {
                self.flusher.enter_cluster_mode();
                self.ingest.router.forwarders.set_routes(&routes);
                self.routing.set_routes(routes);
            }
            ShardCommand::SetFollowerFlush(follower) => self.flusher.set_follower_flush(follower),
            ShardCommand::SetRateLimits(limits) => self.state.aggregator.borrow_mut().set_rate_limits(limits),
            ShardCommand::SetRole { role, reply } => {
                let flusher = self.flusher.clone();
                self.in_flush_queue(async move { flusher.set_role(role).await }).await;
                let _ = reply.send(());
            }
            ShardCommand::StartIngest { bind, unix, reply } => {
                let _ = reply.send(ingest::start(&self.ingest, &bind, unix.as_deref()));
            }
            ShardCommand::StopIngest { reply } => {
                self.lifecycle.stop().await;
                let _ = reply.send(());
            }
            ShardCommand::FinalFlush { include_open, phase, reply } => {
                let flusher = self.flusher.clone();
                self.in_flush_queue(async move { flusher.final_flush(include_open, phase).await }).await;
                let _ = reply.send(());
            }
            ShardCommand::SetRules { rules, cutover } => {
                let now = sheaf_shard_core::time::now_nanos();
                self.state.aggregator.borrow_mut().set_rules(rules, cutover, now);
            }
            ShardCommand::LoadCheckpoints { owners, reply } => {
                let loaded = match self.checkpointer.clone() {
                    Some(c) => {
                        let (tx, rx) = flume::bounded(1);
                        self.in_flush_queue(async move {
                            let _ = tx.send(c.load(&owners).await);
                        })
                        .await;
                        rx.try_recv().unwrap_or_default()
                    }
                    None => Default::default(),
                };
                let _ = reply.send(loaded);
            }
            ShardCommand::Checkpoint { reply } => {
                if let Some(c) = self.checkpointer.clone() {
                    self.in_flush_queue(async move { c.write_all().await }).await;
                }
                let _ = reply.send(());
            }
            ShardCommand::SyncedFlush { reply } => {
                let (syncer, tx) = (self.syncer.clone(), reply);
                self.in_flush_queue(async move {
                    let _ = tx.send(syncer.synced_flush().await);
                })
                .await;
            }
            ShardCommand::ShardStats { reply } => {
                let _ = reply.send(self.syncer.shard_stats());
            }
            ShardCommand::SetLeaderSyncs(syncs) => self.syncer.set_leader_syncs(syncs),
            ShardCommand::ShardCheckpointBytes { shard, reply } => {
                let _ = reply.send(self.syncer.checkpoint_file(shard));
            }
            ShardCommand::RecoverShard { shard, file, from, reply } => {
                let _ = reply.send(self.syncer.recover(shard, &file, from));
            }
            ShardCommand::Exit => return false,
        }
        true
    }
}

impl CommandLoop {
    /// Runs flush work a command asks for (a promotion's discard, the final flush) in the
    /// core's `flush` queue, at the flush's priority rather than the command loop's, and
    /// waits for it.
    async fn in_flush_queue(&self, work: impl std::future::Future<Output = ()> + 'static) {
        match glommio::spawn_local_into(work, self.queues.flush) {
            Ok(task) => task.await,
            Err(e) => tracing::error!(core = self.state.index, error = %e, "could not run flush work"),
        }
    }
}

/// Publishes the core's stats every `stats_interval`; while nothing moves (an idle core), at
/// twice and then four times that spacing, so that an idle core wakes up less.
async fn publish_loop(state: Rc<CoreState>) {
    let mut last = None;
    let mut unchanged = 0u32;
    loop {
        state.publish_stats();
        let activity = state.activity();
        unchanged = if last == Some(activity) { (unchanged + 1).min(2) } else { 0 };
        last = Some(activity);
        glommio::timer::sleep(state.config.stats_interval * (1 << unchanged)).await;
    }
}
