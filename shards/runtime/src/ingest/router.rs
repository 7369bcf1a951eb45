//! `Router`: one ingest task's per-destination batches. Values for this core's own shards are
//! applied directly; the rest go to their owners through the hand-off channels. In cluster
//! mode, values for shards this node does not own are forwarded to the nodes that do, and
//! (for sources that do not replicate themselves, i.e. StatsD) values for shards it owns are
//! also copied to the other replicas; untimed values are then stamped with one arrival time,
//! so that every replica puts them in the same window.

use std::rc::Rc;
use std::sync::Arc;

use sheaf_shard_core::SampleBatch;
use sheaf_shard_core::time::now_nanos;

use super::forward::Chunk;
use crate::cluster::Routes;
use crate::core_loop::{CoreCtx, take_in_handed_batches};
use crate::handoff::PeerSender;

/// Whether the source already sends each value to every replica (an M3 producer with a
/// replicated topic) or only to this node (StatsD), which must then copy it to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Replicated,
    Single,
}

pub(crate) struct Router {
    ctx: Rc<CoreCtx>,
    owners: Arc<[u16]>,
    routes: Option<Arc<Routes>>,
    source: Source,
    batches: Vec<SampleBatch>,
    /// Values for shards this node does not own (cluster mode).
    remote: SampleBatch,
}

impl Router {
    pub(crate) fn new(ctx: Rc<CoreCtx>, source: Source) -> Self {
        let owners = ctx.owners.borrow().clone();
        let routes = ctx.routes.borrow().clone();
        let batches = (0..ctx.cores).map(|_| SampleBatch::with_capacity(ctx.config.handoff_batch_values)).collect();
        Self { ctx, owners, routes, source, batches, remote: SampleBatch::default() }
    }

    pub(crate) fn ctx(&self) -> &CoreCtx {
        &self.ctx
    }

    /// The batch for the core owning `shard`.
    #[inline]
    pub(crate) fn batch_for(&mut self, shard: u32) -> &mut SampleBatch {
        if let Some(routes) = &self.routes
            && !routes.is_local(shard)
        {
            return &mut self.remote;
        }
        let owner = self.owners.get(shard as usize).map_or(self.ctx.index, |o| usize::from(*o));
        &mut self.batches[owner.min(self.ctx.cores - 1)]
    }

    /// Whether a batch has reached `handoff_batch_values` (checked per read or message, not
    /// per value).
    pub(crate) fn is_full(&self) -> bool {
        let limit = self.ctx.config.handoff_batch_values;
        self.remote.len() >= limit || self.batches.iter().any(|b| b.len() >= limit)
    }

    /// Whether values for other cores wait in this router.
    pub(crate) fn has_remote(&self) -> bool {
        !self.remote.is_empty()
            || (self.routes.is_some() && !self.batches[self.ctx.index].is_empty())
            || self.batches.iter().enumerate().any(|(core, b)| core != self.ctx.index && !b.is_empty())
    }

    /// Cluster mode: encodes what goes to peer nodes, stamps the arrival time, and hands the
    /// chunks to the forwarders (waiting while one is behind).
    async fn forward(&mut self, routes: &Routes) {
        let now = now_nanos();
        let forwarders = self.ctx.forwarders.borrow().clone();
        let mut chunks: Vec<Chunk> =
            forwarders.iter().map(|_| Chunk { frames: Vec::new(), last_id: 0, values: 0 }).collect();
        let mut unowned = 0;
        for s in self.remote.samples() {
            if routes.is_local(s.shard()) {
                // Routed while the routes said "not here", before a placement change reached
                // this reader: aggregate it here after all (and replicate it below, as any).
                let owner = self.owners.get(s.shard() as usize).map_or(self.ctx.index, |o| usize::from(*o));
                self.batches[owner.min(self.ctx.cores - 1)].copy_from(&self.remote, s);
                continue;
            }
            let peers = routes.remote(s.shard());
            // A value a peer forwarded is never forwarded again (no loops between nodes whose
            // placements disagree for a moment).
            if peers.is_empty() || s.stamped() {
                unowned += 1;
                continue;
            }
            for &p in peers {
                if let (Some(f), Some(chunk)) = (forwarders.get(usize::from(p)), chunks.get_mut(usize::from(p))) {
                    f.encode(&self.remote, s, now, chunk);
                }
            }
        }
        if self.source == Source::Single {
            for batch in &self.batches {
                for s in batch.samples() {
                    for &p in routes.remote(s.shard()) {
                        if let (Some(f), Some(chunk)) = (forwarders.get(usize::from(p)), chunks.get_mut(usize::from(p)))
                        {
                            f.encode(batch, s, now, chunk);
                        }
                    }
                }
            }
        }
        self.remote.clear();
        for batch in &mut self.batches {
            batch.stamp_untimed(now);
        }
        if unowned > 0 {
            self.ctx.stats.borrow_mut().unowned_values += unowned;
        }
        for (f, chunk) in forwarders.iter().zip(chunks) {
            if chunk.values > 0 {
                f.send(chunk).await;
            }
        }
    }

    /// Applies the values for this core's own shards now (no hand-off, never waits).
    /// In cluster mode this waits for `dispatch`, which also copies them to the other replicas.
    pub(crate) fn apply_local(&mut self) {
        if self.routes.is_some() {
            return;
        }
        let local = &mut self.batches[self.ctx.index];
        if !local.is_empty() {
            self.ctx.aggregator.borrow_mut().apply(local, now_nanos());
            local.clear();
        }
    }

    /// Applies the local batch and sends the others, waiting for room if a peer is behind.
    pub(crate) async fn dispatch(&mut self) {
        // New routes first: values read before a placement change reached this reader are
        // re-routed by `forward`.
        {
            let routes = self.ctx.routes.borrow();
            if routes.as_ref().map(Arc::as_ptr) != self.routes.as_ref().map(Arc::as_ptr) {
                self.routes = routes.clone();
            }
        }
        if let Some(routes) = self.routes.clone() {
            self.forward(&routes).await;
        }
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
                Some(peer) => send_or_take_in(&self.ctx, &peer, batch).await,
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
        take_in_handed_batches(&self.ctx).await;
        // Pick up a new shard map between reads (new routes are picked up above).
        let owners = self.ctx.owners.borrow();
        if !Arc::ptr_eq(&owners, &self.owners) {
            self.owners = owners.clone();
        }
    }
}

/// Hands `batch` to `peer`. While the peer's channel is full, this core first takes in what
/// peers handed it (the peer may be waiting on exactly that), and waits for room only when
/// there is nothing to take in.
async fn send_or_take_in(ctx: &CoreCtx, peer: &PeerSender, mut batch: SampleBatch) -> Result<(), SampleBatch> {
    loop {
        match peer.try_send(batch) {
            None => return Ok(()),
            Some(back) => batch = back,
        }
        if !take_in_handed_batches(ctx).await {
            return peer.send(batch).await;
        }
    }
}
