//! Ingest: the sockets every core reads (SO_REUSEPORT, so the kernel spreads connections and
//! datagrams over the cores; `spread` then evens out the connections) and the decoding of
//! what arrives into `SampleBatch`es.
//!
//! #[PerformanceCriticalPath]: no allocation per value, no logging per value, no locks.

pub(crate) mod forward;
pub(crate) mod m3msg;
mod read_buffer;
mod recv_batch;
mod router;
pub(crate) mod spread;
pub(crate) mod statsd;
pub(crate) mod udp_spread;
pub(crate) mod unix_socket;

pub(crate) use router::Router;
