//! `FlushCollector`: what one core's flush rounds emit, gathered into `FlushBatch`es of
//! bounded size.
//!
//! Owned by one shard core and filled by its `CoreAggregator` during a flush; the full
//! batches it hands out (`take`) go to the sinks, which hand emptied ones back
//! (`add_spare`).

use std::sync::Arc;

use crate::flush::{FlushBatch, Naming};

/// Flush output of one core, in batches of bounded size.
#[derive(Debug)]
pub struct FlushCollector {
    naming: Arc<Naming>,
    core: usize,
    capacity: usize,
    current: FlushBatch,
    /// Bumped each time `current` is replaced, so id handles of the old batch are not reused.
    generation: u64,
    ready: Vec<FlushBatch>,
    /// Emptied batches handed back by the sinks, used before allocating new ones (fresh
    /// memory costs a page fault per 4 KiB on first write).
    spare: Vec<FlushBatch>,
}

impl FlushCollector {
    pub fn new(naming: Arc<Naming>, core: usize, capacity: usize) -> Self {
        let current = FlushBatch::new(naming.clone(), core, capacity);
        Self { naming, core, capacity, current, generation: 0, ready: Vec::new(), spare: Vec::new() }
    }

    /// Gives the collector an emptied batch to fill before it allocates another.
    pub fn add_spare(&mut self, batch: FlushBatch) {
        debug_assert!(batch.is_empty());
        self.spare.push(batch);
    }

    /// The emptied batches not used this round, for the next one.
    pub fn into_spares(self) -> Vec<FlushBatch> {
        self.spare
    }

    fn fresh(&mut self) -> FlushBatch {
        self.spare.pop().unwrap_or_else(|| FlushBatch::new(self.naming.clone(), self.core, self.capacity))
    }

    /// The batch to write `room` more values into.
    #[inline]
    pub(crate) fn batch(&mut self, room: usize) -> (&mut FlushBatch, u64) {
        if !self.current.is_empty() && self.current.len() + room > self.capacity {
            let fresh = self.fresh();
            let full = std::mem::replace(&mut self.current, fresh);
            self.ready.push(full);
            self.generation += 1;
        }
        (&mut self.current, self.generation)
    }

    /// Full batches, and with `all` the partly filled one too.
    pub fn take(&mut self, all: bool) -> Vec<FlushBatch> {
        if all && !self.current.is_empty() {
            let fresh = self.fresh();
            let last = std::mem::replace(&mut self.current, fresh);
            self.ready.push(last);
            self.generation += 1;
        }
        std::mem::take(&mut self.ready)
    }
}
