//! `HeldValues`: values for shards that, by the routes this node has applied, nobody it knows
//! of owns (cluster mode). Most are copies a peer forwarded because its placement is newer than
//! ours: the placement change reaches each node through its own etcd watch, so a new owner may
//! hear of its shards a moment after its peers started sending them. Such values are held for
//! up to `unowned_hold` (at most `unowned_hold_max_values` per core) and routed again as soon
//! as new routes arrive; what is still unowned when its time is up, or does not fit, is
//! counted as `unowned_values`.
//!
//! One per shard core, shared (`Rc`) by that core's routers, which hold values here, and its
//! re-route task (`reroute::run`, an ingest task in the core's `ingest` queue), which routes
//! them again.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use sheaf_shard_core::SampleBatch;

use super::source::Source;

/// Values held together: what one dispatch could not route, from one kind of source.
pub(super) struct Held {
    pub(super) until: Instant,
    pub(super) source: Source,
    pub(super) batch: SampleBatch,
}

pub(crate) struct HeldValues {
    hold: Duration,
    max_values: usize,
    chunks: RefCell<VecDeque<Held>>,
    values: Cell<usize>,
    /// Set once the re-route task has ended (shutdown): nothing more is held.
    pub(super) closed: Cell<bool>,
    /// Wakes the re-route task when the first values are held.
    wake: LocalSender<()>,
    pub(super) woken: RefCell<Option<LocalReceiver<()>>>,
}

impl HeldValues {
    pub(crate) fn new(hold: Duration, max_values: usize) -> Self {
        let (wake, woken) = local_channel::new_bounded(1);
        Self {
            hold,
            max_values,
            chunks: RefCell::default(),
            values: Cell::new(0),
            closed: Cell::new(false),
            wake,
            woken: RefCell::new(Some(woken)),
        }
    }

    /// Holds `batch` (its values unowned now) until `until`, or for `unowned_hold` from now
    /// if None. Returns how many values it could not hold (expired, or over the limit): the
    /// caller counts them as unowned.
    pub(crate) fn hold(&self, batch: SampleBatch, source: Source, until: Option<Instant>) -> u64 {
        let n = batch.len();
        let now = Instant::now();
        let until = until.unwrap_or(now + self.hold);
        if n == 0 || until <= now || self.closed.get() || self.values.get() + n > self.max_values {
            return n as u64;
        }
        self.values.set(self.values.get() + n);
        self.chunks.borrow_mut().push_back(Held { until, source, batch });
        let _ = self.wake.try_send(());
        0
    }

    pub(super) fn take_all(&self) -> Vec<Held> {
        self.values.set(0);
        self.chunks.borrow_mut().drain(..).collect()
    }

    /// Drops what is past its time; returns how many values that was.
    pub(super) fn expire(&self, now: Instant) -> u64 {
        let mut chunks = self.chunks.borrow_mut();
        let before = chunks.len();
        let mut expired = 0;
        chunks.retain(|h| {
            let keep = h.until > now;
            if !keep {
                expired += h.batch.len();
            }
            keep
        });
        if chunks.len() != before {
            self.values.set(self.values.get() - expired);
        }
        expired as u64
    }

    pub(super) fn is_empty(&self) -> bool {
        self.chunks.borrow().is_empty()
    }
}
