//! `SinkMetrics`: the counters a sink thread keeps, read by the admin API on the control
//! thread (atomics, no lock).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters a sink thread keeps; read by the admin API (atomics, no lock).
#[derive(Debug, Default)]
pub struct SinkMetrics {
    pub written_values: AtomicU64,
    pub acked_values: AtomicU64,
    pub retried_messages: AtomicU64,
    pub expired_messages: AtomicU64,
    pub overflow_values: AtomicU64,
    pub unacked_messages: AtomicU64,
    pub write_errors: AtomicU64,
    pub connected: AtomicU64,
}

impl SinkMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
