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
//! - `pause`: how long a core leaves its datagram socket alone after a light wake-up.
//! - `read_buffer`, `recv_batch`: the buffers a stream or a datagram socket reads into, and
//!   the per-core budget (`StreamBudgets`) for stream frames larger than a read buffer.
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
mod pause;
mod read_buffer;
mod recv_batch;
mod reroute;
mod router;
mod source;
mod spread;
mod statsd;
pub(crate) mod ticks;
mod udp_spread;
pub(crate) mod unix_socket;

use std::rc::Rc;

pub(crate) use listeners::start;
pub(crate) use router::{Router, RouterParts};
pub(crate) use source::Source;
pub(crate) use spread::{Adoption, ConnectionSpread};

use crate::config::IngestConfig;
use crate::core::{CoreState, IngestLifecycle, TaskQueues};
use crate::decode::DecodeTally;
use crate::stats::{ConnectionRefusal, Protocol};
use read_buffer::BufferBudget;

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
    pub(crate) budgets: StreamBudgets,
}

/// This core's budgets for the bytes its stream connections hold beyond their base read
/// buffers, one per protocol (see `read_buffer::BufferBudget`).
pub(crate) struct StreamBudgets {
    m3msg: Rc<BufferBudget>,
    statsd_tcp: Rc<BufferBudget>,
}

impl StreamBudgets {
    pub(crate) fn new(config: &IngestConfig) -> Self {
        Self {
            m3msg: BufferBudget::new(config.m3msg_limits.max_buffered_bytes_per_core),
            statsd_tcp: BufferBudget::new(config.statsd_tcp_limits.max_buffered_bytes_per_core),
        }
    }
}

impl IngestContext {
    /// Adds what a decoder counted to this core's counters and empties its tally.
    fn record(&self, protocol: Protocol, tally: &mut DecodeTally) {
        if !tally.is_empty() {
            self.state.stats.borrow_mut().record(protocol, tally);
        }
    }

    /// Counts a connection of `protocol` this core closed for `reason`.
    fn refused(&self, protocol: Protocol, reason: ConnectionRefusal) {
        self.state.stats.borrow_mut().refused(protocol, reason);
    }
}
