//! `SinkMetrics`: the counters a sink thread keeps, read by the admin API on the control
//! thread (atomics, no lock). A topic sink also keeps [`ConsumerMetrics`] per consumer
//! instance, republishing their list (`Published`, lock-free) when its routes change.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sheaf_shard_core::Published;

/// Counters a sink thread keeps; read by the admin API (atomics, no lock).
#[derive(Debug)]
pub struct SinkMetrics {
    pub written_values: AtomicU64,
    pub acked_values: AtomicU64,
    pub retried_messages: AtomicU64,
    pub expired_messages: AtomicU64,
    pub overflow_values: AtomicU64,
    pub unacked_messages: AtomicU64,
    pub write_errors: AtomicU64,
    pub connected: AtomicU64,
    /// A topic sink's consumer instances (empty for the other sinks).
    pub consumers: Published<Vec<Arc<ConsumerMetrics>>>,
}

impl Default for SinkMetrics {
    fn default() -> Self {
        Self {
            written_values: AtomicU64::new(0),
            acked_values: AtomicU64::new(0),
            retried_messages: AtomicU64::new(0),
            expired_messages: AtomicU64::new(0),
            overflow_values: AtomicU64::new(0),
            unacked_messages: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            consumers: Published::new(Vec::new()),
        }
    }
}

impl SinkMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// One consumer instance of a topic sink (a consumer service's endpoint; `endpoint` is empty
/// for the service's messages that no instance owns yet). Written by the sink thread.
#[derive(Debug, Default)]
pub struct ConsumerMetrics {
    pub service: String,
    pub endpoint: String,
    /// Messages written to the instance, first sends and retries.
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub retried: AtomicU64,
    /// Messages dropped after the consumer service's `messageTtlNanos`.
    pub dropped_ttl: AtomicU64,
    /// Messages held for the instance until acknowledged (a gauge).
    pub queued: AtomicU64,
    /// 1 while connected.
    pub connected: AtomicU64,
}

impl ConsumerMetrics {
    pub fn new(service: &str, endpoint: &str) -> Self {
        Self { service: service.to_string(), endpoint: endpoint.to_string(), ..Self::default() }
    }
}
