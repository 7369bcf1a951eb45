//! The flush loop of one core: each resolution flushes at `truncate(now, r) + offset(r)`,
//! shard by shard, yielding between shards so ingest on this core keeps running during a
//! long flush. Results go to every sink's lock-free queue; a full sink is waited on for a
//! bounded time (the flush task waits, ingest does not) and then counted as dropped.
//!
//! #[PerformanceCriticalPath]: the per-series work is in `CoreAggregator::flush_shard`.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sheaf_shard_core::time::{now_nanos, truncate};
use sheaf_shard_core::{FlushBatch, FlushCollector};

use crate::cluster::{FlushReport, FlushRole};
use crate::core_loop::CoreCtx;

struct Due {
    resolution: i64,
    at: i64,
}

pub(crate) async fn run(ctx: Rc<CoreCtx>) {
    let mut schedule: Vec<Due> = Vec::new();
    loop {
        let now = now_nanos();
        let resolutions: Vec<i64> = ctx.aggregator.borrow().resolutions().collect();
        for r in resolutions {
            if !schedule.iter().any(|d| d.resolution == r) {
                schedule.push(Due { resolution: r, at: next_flush(&ctx, r, now) });
            }
        }
        let wake = schedule.iter().map(|d| d.at).min().unwrap_or(now + 1_000_000_000);
        // Wake at least every second to pick up resolutions first seen in metadata.
        let sleep = (wake - now).clamp(0, 1_000_000_000) as u64;
        if ctx.sleep_unless_stopped(Duration::from_nanos(sleep)).await {
            // The final flush is driven by the FinalFlush command.
            return;
        }
        let now = now_nanos();
        for due in schedule.iter_mut().filter(|d| d.at <= now) {
            flush_round(&ctx, due.resolution, due.at).await;
            due.at = next_flush(&ctx, due.resolution, now_nanos());
        }
    }
}

/// A collector for this core, stocked with the batches the sinks handed back.
fn collector(ctx: &CoreCtx) -> FlushCollector {
    let mut out = FlushCollector::new(ctx.config.aggregator.naming.clone(), ctx.index, ctx.config.flush_batch_values);
    restock(ctx, &mut out);
    out
}

/// Gives `out` the batches the sinks have handed back since it was last stocked, so that a
/// round larger than the pool reuses the batches its own sinks have finished with (their
/// memory is already resident) instead of allocating one per `flush_batch_values` values.
fn restock(ctx: &CoreCtx, out: &mut FlushCollector) {
    while let Some(batch) = ctx.config.flush_batches.take(ctx.index) {
        out.add_spare(batch);
    }
}

/// Puts back the batches a round did not need, up to the pool's size; the rest are freed.
fn return_spares(ctx: &CoreCtx, out: FlushCollector) {
    for batch in out.into_spares() {
        ctx.config.flush_batches.keep(batch);
    }
}

/// The first flush time of resolution `r` after `now`.
fn next_flush(ctx: &CoreCtx, r: i64, now: i64) -> i64 {
    let at = truncate(now, r) + ctx.config.flush.offset(r);
    if at <= now { at + r } else { at }
}

async fn flush_round(ctx: &Rc<CoreCtx>, resolution: i64, scheduled: i64) {
    match ctx.role.get() {
        FlushRole::Leader => leader_round(ctx, resolution, scheduled).await,
        FlushRole::Follower => follower_round(ctx, resolution).await,
    }
    let closed = ctx.aggregator.borrow_mut().close_cut_off_shards(now_nanos());
    if !closed.is_empty() {
        tracing::info!(core = ctx.index, ?closed, "closed cut-off shards");
    }
    if let Some(release) = ctx.config.release_memory {
        release();
    }
}

/// Switches between emitting and discarding. Promotion first drops every window the leader's
/// last known flush times cover, so the first leader round emits exactly what came after.
pub(crate) async fn set_role(ctx: &Rc<CoreCtx>, role: FlushRole) {
    while ctx.flush_in_progress.get() {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    if role == FlushRole::Leader && ctx.role.get() == FlushRole::Follower {
        let resolutions: Vec<i64> = ctx.aggregator.borrow().resolutions().collect();
        for r in resolutions {
            discard_as_follower(ctx, r, false).await;
        }
    }
    ctx.role.set(role);
    ctx.stats.borrow_mut().leader = role == FlushRole::Leader;
    ctx.publish_stats();
}

/// A follower round: nothing is emitted; windows the leader has emitted are dropped.
async fn follower_round(ctx: &Rc<CoreCtx>, resolution: i64) {
    ctx.flush_in_progress.set(true);
    discard_as_follower(ctx, resolution, true).await;
    ctx.stats.borrow_mut().follower_rounds += 1;
    ctx.flush_in_progress.set(false);
    ctx.publish_stats();
}

async fn discard_as_follower(ctx: &Rc<CoreCtx>, resolution: i64, forced_too: bool) {
    let follower = ctx.follower.borrow().clone();
    let now = now_nanos();
    let shards: Vec<u32> = ctx.aggregator.borrow().shards_held().collect();
    if forced_too && follower.forced_horizon.is_some() {
        ctx.stats.borrow_mut().forced_flush_rounds += 1;
    }
    for shard in shards {
        {
            let mut agg = ctx.aggregator.borrow_mut();
            for f in follower.times.of(shard).iter().filter(|f| f.resolution == resolution) {
                agg.discard_shard(shard, resolution, f.standard, f.timed, now);
            }
            if forced_too && let Some(horizon) = follower.forced_horizon {
                agg.discard_all_before(shard, now - horizon, now);
            }
        }
        glommio::yield_if_needed().await;
    }
}

async fn leader_round(ctx: &Rc<CoreCtx>, resolution: i64, scheduled: i64) {
    ctx.flush_in_progress.set(true);
    let started = Instant::now();
    let now = now_nanos();
    ctx.aggregator.borrow_mut().begin_flush(resolution, now);
    let shards: Vec<u32> = ctx.aggregator.borrow().shards_held().collect();
    let mut out = collector(ctx);
    let mut stalled = Stalled::new(ctx);
    for shard in shards {
        ctx.aggregator.borrow_mut().flush_shard(shard, resolution, now, &mut out);
        for batch in out.take(false) {
            push_to_sinks(ctx, batch, &mut stalled).await;
        }
        restock(ctx, &mut out);
        glommio::yield_if_needed().await;
    }
    for batch in out.take(true) {
        push_to_sinks(ctx, batch, &mut stalled).await;
    }
    return_spares(ctx, out);
    let elapsed = started.elapsed().as_nanos() as u64;
    {
        let mut stats = ctx.stats.borrow_mut();
        stats.flush_rounds += 1;
        stats.last_flush_duration_ns = elapsed;
        stats.flush_duration_ns_total += elapsed;
        stats.last_flush_lag_ns = (now_nanos() - scheduled).max(0) as u64;
    }
    report_round(ctx, resolution);
    ctx.flush_in_progress.set(false);
    ctx.publish_stats();
}

/// Flushes everything at shutdown, once every peer's hand-offs have been taken in and a
/// periodic round still pushing to a full sink has finished (its values are already out of
/// the aggregator; the executor must not be left while they are in flight).
pub(crate) async fn final_flush(ctx: &Rc<CoreCtx>, include_open: bool) {
    while ctx.flush_in_progress.get() {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    // A follower emits nothing, not even at shutdown: its leader (or its successor) does.
    if ctx.role.get() == FlushRole::Follower {
        return;
    }
    let started = Instant::now();
    loop {
        let pending = (0..ctx.cores)
            .filter(|from| *from != ctx.index)
            .any(|from| ctx.stats.borrow().handoff_batches_received[from] < ctx.ledger.sent(from, ctx.index));
        if !pending {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            tracing::error!(core = ctx.index, "hand-off batches still in flight after 30s; flushing without them");
            break;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    let now = now_nanos();
    let shards: Vec<u32> = ctx.aggregator.borrow().shards_held().collect();
    let resolutions: Vec<i64> = ctx.aggregator.borrow().resolutions().collect();
    let mut out = collector(ctx);
    let mut stalled = Stalled::new(ctx);
    for r in &resolutions {
        ctx.aggregator.borrow_mut().begin_flush(*r, now);
    }
    for shard in shards {
        {
            let mut agg = ctx.aggregator.borrow_mut();
            if include_open {
                agg.flush_shard_all(shard, now, &mut out);
            } else {
                for r in &resolutions {
                    agg.flush_shard(shard, *r, now, &mut out);
                }
            }
        }
        for batch in out.take(false) {
            push_to_sinks(ctx, batch, &mut stalled).await;
        }
        restock(ctx, &mut out);
    }
    for batch in out.take(true) {
        push_to_sinks(ctx, batch, &mut stalled).await;
    }
    return_spares(ctx, out);
    for r in resolutions {
        report_round(ctx, r);
    }
    ctx.publish_stats();
}

/// Cluster mode: tells the control thread how far this core's leader rounds of `resolution`
/// have emitted, and up to which batch the sinks must have written for that to hold.
fn report_round(ctx: &CoreCtx, resolution: i64) {
    if !ctx.cluster_mode.get() {
        return;
    }
    let (standard, timed) = ctx.aggregator.borrow().flushed_through(resolution);
    let seq = ctx.last_seq.get();
    ctx.config.flush_reports.push(FlushReport { core: ctx.index, resolution, standard, timed, seq });
}

/// Which sinks of this core have already timed out during the current round: the rest of
/// the round's batches for them are dropped at once (if there is still no room) instead of
/// each waiting `sink_enqueue_timeout` again, so one dead sink cannot hold up the others.
struct Stalled(Vec<bool>);

impl Stalled {
    fn new(ctx: &CoreCtx) -> Self {
        Self(vec![false; ctx.config.sinks.len()])
    }
}

async fn push_to_sinks(ctx: &CoreCtx, mut batch: FlushBatch, stalled: &mut Stalled) {
    if batch.is_empty() {
        return;
    }
    let seq = ctx.last_seq.get() + 1;
    ctx.last_seq.set(seq);
    batch.seq = seq;
    let batch = Arc::new(batch);
    for (i, sink) in ctx.config.sinks.iter().enumerate() {
        let started = Instant::now();
        loop {
            match sink.try_push(batch.clone()) {
                Ok(()) => {
                    stalled.0[i] = false;
                    break;
                }
                Err(_) if stalled.0[i] || started.elapsed() >= ctx.config.sink_enqueue_timeout => {
                    sink.count_dropped(batch.len());
                    sink.mark_written(ctx.index, seq);
                    if !stalled.0[i] {
                        tracing::warn!(sink = sink.name(), "sink queue full, dropping flush batches (counted)");
                    }
                    stalled.0[i] = true;
                    break;
                }
                Err(_) => glommio::timer::sleep(Duration::from_millis(1)).await,
            }
        }
    }
}
