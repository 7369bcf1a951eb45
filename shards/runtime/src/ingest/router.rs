//! `Router`: one ingest task's per-destination batches. Values for this core's own shards are
//! applied directly; the rest go to their owners through the hand-off. In cluster mode,
//! values for shards this node does not own are forwarded to the nodes that do, and (for
//! sources that do not replicate themselves, i.e. StatsD) values for shards it owns are also
//! copied to the other replicas; untimed values are then stamped with one arrival time, so
//! that every replica puts them in the same window.
//!
//! A router belongs to one ingest task on one shard core; the `RouterParts` it is built from
//! are that core's, shared with its other ingest tasks.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use sheaf_shard_core::SampleBatch;
use sheaf_shard_core::time::now_nanos;

use super::held::HeldValues;
use super::source::Source;
use crate::core::{CoreState, RouteTable};
use crate::decode::SampleRouter;
use crate::handoff::Handoff;
use crate::output::forward::{Chunk, Forwarders};
use crate::routes::Routes;

/// What a core's routers send through: its aggregator, its route table, its end of the
/// hand-off, its forwarders to peer nodes and where values nobody owns yet wait.
#[derive(Clone)]
pub(crate) struct RouterParts {
    pub(crate) state: Rc<CoreState>,
    pub(crate) routing: Rc<RouteTable>,
    pub(crate) handoff: Rc<Handoff>,
    pub(crate) forwarders: Rc<Forwarders>,
    pub(crate) held: Rc<HeldValues>,
}

pub(crate) struct Router {
    parts: RouterParts,
    /// This core's index, and the batch size limit (copied: read per value or per read).
    me: usize,
    batch_limit: usize,
    owners: Arc<[u16]>,
    routes: Option<Arc<Routes>>,
    source: Source,
    batches: Vec<SampleBatch>,
    /// Values for shards this node does not own (cluster mode).
    remote: SampleBatch,
    /// Values no node owns by the routes in force, on their way to `HeldValues`.
    unowned: SampleBatch,
    /// Re-routing held values: hold what is still unowned until this time, not for a new
    /// `unowned_hold`.
    hold_until: Option<Instant>,
}

impl Router {
    pub(crate) fn new(parts: RouterParts, source: Source) -> Self {
        let owners = parts.routing.owners();
        let routes = parts.routing.routes();
        let (me, cores) = (parts.state.index, parts.state.cores);
        let batch_limit = parts.state.config.handoff_batch_values;
        let batches = (0..cores).map(|_| SampleBatch::with_capacity(batch_limit)).collect();
        let (remote, unowned) = (SampleBatch::default(), SampleBatch::default());
        Self { parts, me, batch_limit, owners, routes, source, batches, remote, unowned, hold_until: None }
    }

    /// A router for values that were held: what is still unowned is held again until `until`.
    pub(crate) fn holding_until(mut self, until: Instant) -> Self {
        self.hold_until = Some(until);
        self
    }

    /// Picks up the shard owners and routes in force now: a router kept from one use to the
    /// next (the flush task's) calls this before it takes values in.
    pub(crate) fn catch_up(&mut self) {
        if !self.parts.routing.owners_are(&self.owners) {
            self.owners = self.parts.routing.owners();
        }
        if !self.parts.routing.routes_are(&self.routes) {
            self.routes = self.parts.routing.routes();
        }
    }

    /// Takes in every value of `batch`, as a decoder would.
    pub(crate) fn take(&mut self, batch: &SampleBatch) {
        for s in batch.samples() {
            self.batch_for(s.shard()).copy_from(batch, s);
        }
    }

    /// The core that owns `shard` on this node.
    #[inline]
    fn owner(&self, shard: u32) -> usize {
        let owner = self.owners.get(shard as usize).map_or(self.me, |o| usize::from(*o));
        owner.min(self.batches.len() - 1)
    }

    /// Whether a batch has reached `handoff_batch_values` (checked per read or message, not
    /// per value).
    pub(crate) fn is_full(&self) -> bool {
        let limit = self.batch_limit;
        self.remote.len() >= limit || self.batches.iter().any(|b| b.len() >= limit)
    }

    /// Whether values for other cores wait in this router.
    pub(crate) fn has_remote(&self) -> bool {
        !self.remote.is_empty()
            || (self.routes.is_some() && !self.batches[self.me].is_empty())
            || self.batches.iter().enumerate().any(|(core, b)| core != self.me && !b.is_empty())
    }

    /// Cluster mode: encodes what goes to peer nodes, stamps the arrival time, and hands the
    /// chunks to the forwarders (waiting while one is behind).
    async fn forward(&mut self, routes: &Routes) {
        let now = now_nanos();
        let forwarders = self.parts.forwarders.current();
        let mut chunks: Vec<Chunk> =
            forwarders.iter().map(|_| Chunk { frames: Vec::new(), last_id: 0, values: 0 }).collect();
        for s in self.remote.samples() {
            if routes.is_local(s.shard()) {
                // Routed while the routes said "not here", before a placement change reached
                // this reader: aggregate it here after all (and replicate it below, as any).
                let owner = self.owner(s.shard());
                self.batches[owner].copy_from(&self.remote, s);
                continue;
            }
            let peers = routes.remote(s.shard());
            // A value a peer forwarded is never forwarded again (no loops between nodes whose
            // placements disagree for a moment): it waits for this node's placement to catch up.
            // Nor is a forwarded (rolled-up) value this node received rather than produced.
            if peers.is_empty() || s.stamped() || (s.forwarded() && self.source == Source::Replicated) {
                self.unowned.copy_from(&self.remote, s);
                continue;
            }
            for &p in peers {
                if let (Some(f), Some(chunk)) = (forwarders.get(usize::from(p)), chunks.get_mut(usize::from(p)))
                    && !f.encode(&self.remote, s, now, chunk)
                    && s.forwarded()
                {
                    self.parts.state.stats.borrow_mut().rollup_remote_unsupported += 1;
                }
            }
        }
        if self.source == Source::Single {
            for batch in &self.batches {
                for s in batch.samples() {
                    for &p in routes.remote(s.shard()) {
                        if let (Some(f), Some(chunk)) = (forwarders.get(usize::from(p)), chunks.get_mut(usize::from(p)))
                            && !f.encode(batch, s, now, chunk)
                            && s.forwarded()
                        {
                            self.parts.state.stats.borrow_mut().rollup_remote_unsupported += 1;
                        }
                    }
                }
            }
        }
        self.remote.clear();
        for batch in &mut self.batches {
            batch.stamp_untimed(now);
        }
        if !self.unowned.is_empty() {
            let held = std::mem::take(&mut self.unowned);
            let n = held.len() as u64;
            let missed = self.parts.held.hold(held, self.source, self.hold_until);
            let mut stats = self.parts.state.stats.borrow_mut();
            if self.hold_until.is_none() {
                stats.unowned_held_values += n - missed;
            }
            stats.unowned_values += missed;
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
        let local = &mut self.batches[self.me];
        if !local.is_empty() {
            self.parts.state.aggregator.borrow_mut().apply(local, now_nanos());
            local.clear();
        }
    }

    /// Applies the local batch and sends the others, waiting for room if a peer is behind.
    pub(crate) async fn dispatch(&mut self) {
        // New routes first: values read before a placement change reached this reader are
        // re-routed by `forward`.
        if !self.parts.routing.routes_are(&self.routes) {
            self.routes = self.parts.routing.routes();
        }
        if let Some(routes) = self.routes.clone() {
            self.forward(&routes).await;
        }
        let handoff = &self.parts.handoff;
        for core in 0..self.batches.len() {
            if self.batches[core].is_empty() {
                continue;
            }
            if core == self.me {
                self.parts.state.aggregator.borrow_mut().apply(&self.batches[core], now_nanos());
                self.batches[core].clear();
                continue;
            }
            handoff.send(core, &mut self.batches[core]).await;
        }
        handoff.take_in_sent().await;
        // Pick up a new shard map between reads (new routes are picked up above).
        if !self.parts.routing.owners_are(&self.owners) {
            self.owners = self.parts.routing.owners();
        }
    }
}

impl SampleRouter for Router {
    /// The batch for the core owning `shard` (or for peer nodes, when this node does not own it).
    #[inline]
    fn batch_for(&mut self, shard: u32) -> &mut SampleBatch {
        if let Some(routes) = &self.routes
            && !routes.is_local(shard)
        {
            return &mut self.remote;
        }
        let owner = self.owner(shard);
        &mut self.batches[owner]
    }
}
