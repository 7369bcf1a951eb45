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
//! a slot (accepting, or handing over) and by the core whose connection ends. The same slot
//! holds one of its protocol's `max_connections` (one atomic per protocol for the node): a
//! connection over the limit gets no slot, and the accepting core closes it. The hand-over
//! queue is flume's: connections arrive seldom, and nothing on the per-value path uses it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use glommio::net::AcceptedTcpStream;

use crate::stats::Protocol;

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    M3msg = 0,
    StatsdTcp = 1,
}

impl Listener {
    pub(crate) fn protocol(self) -> Protocol {
        match self {
            Self::M3msg => Protocol::M3msg,
            Self::StatsdTcp => Protocol::StatsdTcp,
        }
    }
}

/// The protocol already serves its `max_connections`.
#[derive(Debug)]
pub(crate) struct AtLimit;

/// A connection on its way to the core that will serve it.
pub(crate) struct Adoption {
    pub(crate) stream: AcceptedTcpStream,
    pub(crate) kind: Listener,
    pub(crate) slot: ConnectionSlot,
}

/// Connections served per core (any protocol), and per protocol on the node with its limit.
#[derive(Debug)]
struct Counts {
    per_core: Box<[AtomicUsize]>,
    per_protocol: [AtomicUsize; 2],
    limits: [usize; 2],
}

/// One connection counted against a core, and against its protocol's limit, while it lives.
pub(crate) struct ConnectionSlot {
    counts: Arc<Counts>,
    core: usize,
    kind: Listener,
}

impl ConnectionSlot {
    pub(crate) fn core(&self) -> usize {
        self.core
    }

    /// Counts the connection against `core` instead (it is served there after all).
    pub(crate) fn move_to(&mut self, core: usize) {
        let core = core.min(self.counts.per_core.len() - 1);
        self.counts.per_core[core].fetch_add(1, Ordering::Relaxed);
        self.counts.per_core[self.core].fetch_sub(1, Ordering::Relaxed);
        self.core = core;
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.counts.per_core[self.core].fetch_sub(1, Ordering::Relaxed);
        self.counts.per_protocol[self.kind as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection counts and every core's hand-over queue; one per pool, shared by the cores.
pub(crate) struct ConnectionSpread {
    counts: Arc<Counts>,
    queues: Vec<flume::Sender<Adoption>>,
}

impl std::fmt::Debug for ConnectionSpread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSpread").field("counts", &self.counts).finish()
    }
}

impl ConnectionSpread {
    /// The spread over `cores` cores (at least 1), with at most `max_m3msg` m3msg and
    /// `max_statsd_tcp` StatsD TCP connections on the node, and the receiving end of each
    /// core's queue.
    pub(crate) fn new(
        cores: usize,
        max_m3msg: usize,
        max_statsd_tcp: usize,
    ) -> (Arc<Self>, Vec<flume::Receiver<Adoption>>) {
        let cores = cores.max(1);
        let (queues, receivers) = (0..cores).map(|_| flume::unbounded()).unzip();
        let counts = Counts {
            per_core: (0..cores).map(|_| AtomicUsize::new(0)).collect(),
            per_protocol: [AtomicUsize::new(0), AtomicUsize::new(0)],
            limits: [max_m3msg, max_statsd_tcp],
        };
        (Arc::new(Self { counts: Arc::new(counts), queues }), receivers)
    }

    /// Reserves a slot for a `kind` connection accepted on core `here`: on `here` unless
    /// another core serves fewer connections, then on the one that serves the fewest.
    /// `AtLimit` when the node already serves `max_connections` of the protocol.
    pub(crate) fn place(&self, here: usize, kind: Listener) -> Result<ConnectionSlot, AtLimit> {
        let limit = self.counts.limits[kind as usize];
        self.counts.per_protocol[kind as usize]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < limit).then_some(n + 1))
            .map_err(|_| AtLimit)?;
        let per_core = &self.counts.per_core;
        let here = here.min(per_core.len() - 1);
        let load = |core: usize| per_core[core].load(Ordering::Relaxed);
        let least = (0..per_core.len()).min_by_key(|&core| load(core)).unwrap_or(here);
        let core = if load(least) < load(here) { least } else { here };
        per_core[core].fetch_add(1, Ordering::Relaxed);
        Ok(ConnectionSlot { counts: self.counts.clone(), core, kind })
    }

    /// Hands a connection to the core its slot is on; gives it back if that core is gone.
    pub(crate) fn hand_over(&self, adoption: Adoption) -> Result<(), Adoption> {
        match self.queues.get(adoption.slot.core()) {
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
        let (spread, _queues) = ConnectionSpread::new(3, 100, 100);
        let place = |core| spread.place(core, Listener::M3msg).unwrap();
        // Everything arrives on core 0, as when the kernel hashes every flow there.
        let slots: Vec<ConnectionSlot> = (0..6).map(|_| place(0)).collect();
        let mut per_core = [0; 3];
        for s in &slots {
            per_core[s.core()] += 1;
        }
        assert_eq!(per_core, [2, 2, 2]);
        // A tie stays where it was accepted.
        let tie = place(2);
        assert_eq!(tie.core(), 2);
        // Ended connections free their slots.
        drop(slots);
        let first = place(1);
        assert_eq!(first.core(), 1);
        assert_eq!(place(1).core(), 0, "core 1 and core 2 serve one each, core 0 none");
        drop((tie, first));
    }

    #[test]
    fn each_protocol_is_held_to_its_limit_on_the_node() {
        let (spread, _queues) = ConnectionSpread::new(2, 3, 1);
        let m3msg: Vec<ConnectionSlot> = (0..3).map(|i| spread.place(i % 2, Listener::M3msg).unwrap()).collect();
        assert!(spread.place(0, Listener::M3msg).is_err(), "a fourth m3msg connection");
        let mut statsd = spread.place(1, Listener::StatsdTcp).expect("the other protocol has its own limit");
        assert!(spread.place(1, Listener::StatsdTcp).is_err());
        statsd.move_to(0);
        drop(statsd);
        assert!(spread.place(0, Listener::StatsdTcp).is_ok(), "an ended connection frees its place");
        drop(m3msg);
        let counts = &spread.counts;
        assert_eq!(counts.per_core.iter().map(|c| c.load(Ordering::Relaxed)).sum::<usize>(), 0);
        assert_eq!(counts.per_protocol[0].load(Ordering::Relaxed), 0);
    }
}
