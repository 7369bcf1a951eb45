//! `SinkWriter`: carries a flush round's batches from the core to every sink's queue, and
//! recycles the batches the sinks hand back. Lives on its shard core, used by its flush
//! rounds only.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sheaf_shard_core::{FlushBatch, FlushCollector};

use crate::core::CoreState;
use crate::services::PoolServices;

pub(crate) struct SinkWriter {
    state: Rc<CoreState>,
    services: Arc<PoolServices>,
    /// Sequence number of the last batch this core queued on the sinks (0: none yet).
    last_seq: Cell<u64>,
}

impl SinkWriter {
    pub(crate) fn new(state: Rc<CoreState>, services: Arc<PoolServices>) -> Self {
        Self { state, services, last_seq: Cell::new(0) }
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq.get()
    }

    pub(crate) fn services(&self) -> &PoolServices {
        &self.services
    }

    /// A collector for this core, stocked with the batches the sinks handed back.
    pub(crate) fn collector(&self) -> FlushCollector {
        let config = &self.state.config;
        let mut out =
            FlushCollector::new(config.aggregator.naming.clone(), self.state.index, config.flush_batch_values);
        self.restock(&mut out);
        out
    }

    /// Gives `out` the batches the sinks have handed back since it was last stocked, so
    /// that a round larger than the pool reuses the batches its own sinks have finished
    /// with (their memory is already resident) instead of allocating one per
    /// `flush_batch_values` values.
    pub(crate) fn restock(&self, out: &mut FlushCollector) {
        while let Some(batch) = self.services.flush_batches.take(self.state.index) {
            out.add_spare(batch);
        }
    }

    /// Puts back the batches a round did not need, up to the pool's size; the rest are freed.
    pub(crate) fn return_spares(&self, out: FlushCollector) {
        for batch in out.into_spares() {
            self.services.flush_batches.keep(batch);
        }
    }

    /// Before a leader round drains its next shard: waits while a sink has
    /// `flush_ahead_batches` batches per core (of this pool) or more still queued, refilling
    /// `out` with the batches the sinks hand back meanwhile. A round then goes at its sinks'
    /// pace and writes into batches whose memory is resident, rather than allocating (and
    /// page-faulting) a batch for every `flush_batch_values` values of a large round while
    /// the sink thread falls behind. Ingest on this core runs while the round waits. A sink
    /// that keeps the round waiting `sink_enqueue_timeout` is not waited for again this round.
    pub(crate) async fn wait_for_room(&self, out: &mut FlushCollector, stalled: &mut Stalled) {
        let config = &self.state.config;
        let limit = (config.flush_ahead_batches * config.flush_batch_values * self.state.cores) as u64;
        if limit == 0 {
            return;
        }
        for (i, sink) in self.services.sinks.iter().enumerate() {
            let started = Instant::now();
            while !stalled.behind[i] && sink.backlog_values.load(Ordering::Relaxed) >= limit {
                if started.elapsed() >= config.sink_enqueue_timeout {
                    stalled.behind[i] = true;
                    break;
                }
                glommio::timer::sleep(SINK_POLL).await;
                self.restock(out);
            }
        }
    }

    /// Queues every batch `out` has ready (with `all`, also its last partial one).
    pub(crate) async fn push_ready(&self, out: &mut FlushCollector, all: bool, stalled: &mut Stalled) {
        for batch in out.take(all) {
            self.push(batch, stalled).await;
        }
    }

    /// Queues `batches` (passthrough points, built outside a round) in order.
    pub(crate) async fn push_batches(&self, batches: Vec<FlushBatch>, stalled: &mut Stalled) {
        for batch in batches {
            self.push(batch, stalled).await;
        }
    }

    async fn push(&self, mut batch: FlushBatch, stalled: &mut Stalled) {
        if batch.is_empty() {
            return;
        }
        let seq = self.last_seq.get() + 1;
        self.last_seq.set(seq);
        batch.seq = seq;
        let batch = Arc::new(batch);
        let timeout = self.state.config.sink_enqueue_timeout;
        for (i, sink) in self.services.sinks.iter().enumerate() {
            let started = Instant::now();
            loop {
                match sink.try_push(batch.clone()) {
                    Ok(()) => {
                        stalled.full[i] = false;
                        break;
                    }
                    Err(_) if stalled.full[i] || started.elapsed() >= timeout => {
                        sink.count_dropped(batch.len());
                        sink.mark_written(self.state.index, seq);
                        if !stalled.full[i] {
                            tracing::warn!(sink = sink.name(), "sink queue full, dropping flush batches (counted)");
                        }
                        stalled.full[i] = true;
                        break;
                    }
                    Err(_) => glommio::timer::sleep(SINK_POLL).await,
                }
            }
        }
    }
}

/// How often a round waiting on a sink (for room in its full queue, or for its backlog to
/// shrink) looks again.
const SINK_POLL: Duration = Duration::from_millis(1);

/// Which sinks have already timed out during the current round, so one dead or slow sink
/// cannot hold up the others for `sink_enqueue_timeout` per batch or per shard.
pub(crate) struct Stalled {
    /// Found full for `sink_enqueue_timeout`: the rest of the round's batches for it are
    /// dropped at once while it is still full. Cleared by a push that finds room.
    full: Vec<bool>,
    /// Kept a round waiting in `wait_for_room` for `sink_enqueue_timeout`: not waited for
    /// again this round.
    behind: Vec<bool>,
}

impl Stalled {
    pub(crate) fn new(writer: &SinkWriter) -> Self {
        let sinks = writer.services.sinks.len();
        Self { full: vec![false; sinks], behind: vec![false; sinks] }
    }
}
