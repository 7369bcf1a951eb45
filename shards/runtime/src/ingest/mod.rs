//! Ingest: the sockets every core reads (SO_REUSEPORT, so the kernel spreads connections and
//! datagrams over the cores; `spread` then evens out the connections), the tasks that read
//! them, and the router that sends what they decode to the owning core or node.
//!
//! - `listeners`: binds the sockets and runs the accept loops (`start`).
//! - `statsd`, `m3msg`: the per-connection and per-socket read loops; the decoding itself is
//!   the sans-IO `crate::decode`.
//! - `router`: per-destination batches, hand-off and forwarding.
//! - `held`, `reroute`: values no node owns yet by this node's routes, held until its
//!   placement catches up, and the task that routes them again.
//! - `source`: whether a router's values still need copying to the other replicas.
//! - `read_buffer`, `recv_batch`: the buffers a stream or a datagram socket reads into.
//! - `spread`, `udp_spread`, `unix_socket`: how connections, UDP datagrams and the shared
//!   Unix socket are spread over the cores.
//!
//! Every task here runs in its core's `ingest` queue and is counted by its
//! `IngestLifecycle`; `IngestContext` is what each is handed.
//!
//! #[PerformanceCriticalPath]: no allocation per value, no logging per value, no locks.

pub(crate) mod held;
mod listeners;
mod m3msg;
mod read_buffer;
mod recv_batch;
mod reroute;
mod router;
mod source;
mod spread;
mod statsd;
mod udp_spread;
pub(crate) mod unix_socket;

use std::rc::Rc;

pub(crate) use listeners::start;
pub(crate) use router::RouterParts;
pub(crate) use spread::{Adoption, ConnectionSpread};

use crate::core::{CoreState, IngestLifecycle, TaskQueues};
use crate::decode::DecodeTally;
use crate::stats::Protocol;

/// What a core's ingest tasks are handed: the core's state, its ingest lifecycle, what its
/// routers send through, and the connection spread shared with the other cores.
pub(crate) struct IngestContext {
    pub(crate) state: Rc<CoreState>,
    pub(crate) lifecycle: Rc<IngestLifecycle>,
    pub(crate) router: RouterParts,
    pub(crate) queues: TaskQueues,
    pub(crate) spread: std::sync::Arc<ConnectionSpread>,
    /// Connections other cores accepted and handed to this one.
    pub(crate) adoptions: flume::Receiver<Adoption>,
}

impl IngestContext {
    /// Adds what a decoder counted to this core's counters and empties its tally.
    fn record(&self, protocol: Protocol, tally: &mut DecodeTally) {
        if !tally.is_empty() {
            self.state.stats.borrow_mut().record(protocol, tally);
        }
    }
}
