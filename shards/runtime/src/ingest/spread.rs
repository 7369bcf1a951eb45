//! Spreading accepted TCP connections (m3msg, StatsD over TCP) over the shard cores.
//!
//! Every core listens on the same port (SO_REUSEPORT) and the kernel picks a core per
//! connection by a hash of its addresses, so a producer with two connections lands both on
//! one core half of the time: that core then decodes everything, and the rest only apply what
//! it hands them. Here the core that accepted a connection keeps it only if no other core
//! serves fewer; otherwise it passes the accepted socket to the core that serves the fewest,
//! which adopts it (glommio's `shared_accept` / `bind_to_executor`).
//!
//! The counts are one atomic per core, read by any core and changed by the core that reserves
//! a slot (accepting, or handing over) and by the core whose connection ends. The hand-over
//! queue is flume's: connections arrive seldom, and nothing on the per-value path uses it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use glommio::net::AcceptedTcpStream;

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    M3msg,
    StatsdTcp,
}

/// A connection on its way to the core that will serve it.
pub(crate) struct Adoption {
    pub(crate) stream: AcceptedTcpStream,
    pub(crate) kind: Listener,
    pub(crate) slot: ConnectionSlot,
}

/// One connection counted against a core while it lives.
pub(crate) struct ConnectionSlot {
    counts: Arc<[AtomicUsize]>,
    core: usize,
}

impl ConnectionSlot {
    pub(crate) fn core(&self) -> usize {
        self.core
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.counts[self.core].fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection counts and every core's hand-over queue; one per pool, shared by the cores.
pub(crate) struct ConnectionSpread {
    counts: Arc<[AtomicUsize]>,
    queues: Vec<flume::Sender<Adoption>>,
}

impl std::fmt::Debug for ConnectionSpread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSpread").field("counts", &self.counts).finish()
    }
}

impl ConnectionSpread {
    /// The spread over `cores` cores, and the receiving end of each core's queue.
    pub(crate) fn new(cores: usize) -> (Arc<Self>, Vec<flume::Receiver<Adoption>>) {
        let (queues, receivers) = (0..cores).map(|_| flume::unbounded()).unzip();
        let counts = (0..cores).map(|_| AtomicUsize::new(0)).collect();
        (Arc::new(Self { counts, queues }), receivers)
    }

    /// Reserves a slot for a connection accepted on core `here`: on `here` unless another
    /// core serves fewer connections, then on the one that serves the fewest.
    pub(crate) fn place(&self, here: usize) -> ConnectionSlot {
        let load = |core: usize| self.counts.get(core).map_or(usize::MAX, |c| c.load(Ordering::Relaxed));
        let least = (0..self.counts.len()).min_by_key(|&core| load(core)).unwrap_or(here);
        let core = if load(least) < load(here) { least } else { here };
        self.reserve(core)
    }

    /// Counts one more connection against `core`.
    pub(crate) fn reserve(&self, core: usize) -> ConnectionSlot {
        let core = core.min(self.counts.len().saturating_sub(1));
        self.counts[core].fetch_add(1, Ordering::Relaxed);
        ConnectionSlot { counts: self.counts.clone(), core }
    }

    /// Hands a connection to the core its slot is on; gives it back if that core is gone.
    pub(crate) fn hand_over(&self, adoption: Adoption) -> Result<(), Adoption> {
        match self.queues.get(adoption.slot.core) {
            Some(queue) => queue.send(adoption).map_err(|e| e.into_inner()),
            None => Err(adoption),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_core_that_serves_the_fewest() {
        let (spread, _queues) = ConnectionSpread::new(3);
        // Everything arrives on core 0, as when the kernel hashes every flow there.
        let slots: Vec<ConnectionSlot> = (0..6).map(|_| spread.place(0)).collect();
        let mut per_core = [0; 3];
        for s in &slots {
            per_core[s.core()] += 1;
        }
        assert_eq!(per_core, [2, 2, 2]);
        // A tie stays where it was accepted.
        let tie = spread.place(2);
        assert_eq!(tie.core(), 2);
        // Ended connections free their slots.
        drop(slots);
        let first = spread.place(1);
        assert_eq!(first.core(), 1);
        assert_eq!(spread.place(1).core(), 0, "core 1 and core 2 serve one each, core 0 none");
        drop((tie, first));
    }
}
