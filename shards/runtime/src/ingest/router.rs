//! `Router`: one ingest task's per-destination batches. Values for this core's own shards are
//! applied directly; the rest go to their owners through the hand-off channels.

use std::rc::Rc;
use std::sync::Arc;

use sheaf_shard_core::SampleBatch;
use sheaf_shard_core::time::now_nanos;

use crate::core_loop::CoreCtx;

pub(crate) struct Router {
    ctx: Rc<CoreCtx>,
    owners: Arc<[u16]>,
    batches: Vec<SampleBatch>,
    largest: usize,
}

impl Router {
    pub(crate) fn new(ctx: Rc<CoreCtx>) -> Self {
        let owners = ctx.owners.borrow().clone();
        let batches = (0..ctx.cores).map(|_| SampleBatch::with_capacity(ctx.config.handoff_batch_values)).collect();
        Self { ctx, owners, batches, largest: 0 }
    }

    pub(crate) fn ctx(&self) -> &CoreCtx {
        &self.ctx
    }

    /// The batch for the core owning `shard`.
    #[inline]
    pub(crate) fn batch_for(&mut self, shard: u32) -> &mut SampleBatch {
        let owner = self.owners.get(shard as usize).map_or(self.ctx.index, |o| usize::from(*o));
        let batch = &mut self.batches[owner.min(self.ctx.cores - 1)];
        self.largest = self.largest.max(batch.len() + 1);
        batch
    }

    pub(crate) fn is_full(&self) -> bool {
        self.largest >= self.ctx.config.handoff_batch_values
    }

    /// Whether values for other cores wait in this router.
    pub(crate) fn has_remote(&self) -> bool {
        self.batches.iter().enumerate().any(|(core, b)| core != self.ctx.index && !b.is_empty())
    }

    /// Applies the values for this core's own shards now (no hand-off, never waits).
    pub(crate) fn apply_local(&mut self) {
        let local = &mut self.batches[self.ctx.index];
        if !local.is_empty() {
            self.ctx.aggregator.borrow_mut().apply(local, now_nanos());
            local.clear();
        }
    }

    /// Applies the local batch and sends the others, waiting for room if a peer is behind.
    pub(crate) async fn dispatch(&mut self) {
        self.largest = 0;
        let me = self.ctx.index;
        for core in 0..self.batches.len() {
            if self.batches[core].is_empty() {
                continue;
            }
            if core == me {
                self.ctx.aggregator.borrow_mut().apply(&self.batches[core], now_nanos());
                self.batches[core].clear();
                continue;
            }
            let peer = self.ctx.peer(core);
            let fresh = peer.as_ref().map_or_else(SampleBatch::default, |p| p.fresh_batch());
            let batch = std::mem::replace(&mut self.batches[core], fresh);
            let values = batch.len() as u64;
            let sent = match peer {
                Some(peer) => peer.send(batch).await,
                None => Err(batch),
            };
            match sent {
                Ok(()) => {
                    self.ctx.ledger.record_sent(me, core);
                    let mut stats = self.ctx.stats.borrow_mut();
                    stats.handed_off_values += values;
                    stats.handoff_batches_sent[core] += 1;
                }
                // The peer is gone only if its executor died; keep the values here rather
                // than lose them (the shard's state splits, the sums stay exact).
                Err(batch) => {
                    tracing::error!(core, "hand-off peer unavailable, applying its batch locally");
                    self.ctx.aggregator.borrow_mut().apply(&batch, now_nanos());
                }
            }
        }
        // Pick up a new shard map between reads.
        let owners = self.ctx.owners.borrow();
        if !Arc::ptr_eq(&owners, &self.owners) {
            self.owners = owners.clone();
        }
    }
}
