//! What the sender threads of `sheaf-load` share: the plan they send by (mix, series, rate,
//! deadline) and the totals they count into (atomics; the ack-latency sketch behind a mutex,
//! touched once per ack frame).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sheaf_bench::workload::{Mix, SeriesSpace};
use sheaf_shard_core::QuantileSketch;

/// Counters shared by the sender threads.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    /// Values sent (a timer batch of k values counts k).
    pub(crate) values: AtomicU64,
    /// Counter increments sent (each adds 1 to a counter sum).
    pub(crate) counter_values: AtomicU64,
    /// Datagrams (StatsD) or messages (m3msg) sent.
    pub(crate) units: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) send_errors: AtomicU64,
    /// m3msg: messages acknowledged.
    pub(crate) acked: AtomicU64,
    /// m3msg: ack frames read, the largest (body bytes, metadata entries), and how many
    /// exceeded the 4 MiB an M3 producer accepts.
    pub(crate) ack_frames: AtomicU64,
    pub(crate) max_ack_frame_bytes: AtomicU64,
    pub(crate) max_ack_metadata: AtomicU64,
    pub(crate) ack_frames_over_4mib: AtomicU64,
    /// m3msg: time from `sent_at_nanos` to the ack that echoes it, in milliseconds.
    pub(crate) ack_latency_ms: Mutex<QuantileSketch>,
}

impl Totals {
    /// Counts what one write or datagram carried.
    pub(crate) fn add_sent(&self, values: u64, counter_values: u64, units: u64, bytes: usize) {
        self.values.fetch_add(values, Relaxed);
        self.counter_values.fetch_add(counter_values, Relaxed);
        self.units.fetch_add(units, Relaxed);
        self.bytes.fetch_add(bytes as u64, Relaxed);
    }
}

/// What every sender thread needs.
#[derive(Debug, Clone)]
pub(crate) struct SendPlan {
    pub(crate) mix: Mix,
    pub(crate) space: SeriesSpace,
    pub(crate) threads: usize,
    /// Values per second for each thread; 0 = unlimited.
    pub(crate) rate_per_thread: f64,
    pub(crate) deadline: Instant,
    pub(crate) totals: Arc<Totals>,
    pub(crate) stop: Arc<AtomicBool>,
}

impl SendPlan {
    /// Sleeps until `sent` values are due at this thread's rate since `start`.
    pub(crate) fn pace(&self, start: Instant, sent: u64) {
        if self.rate_per_thread <= 0.0 {
            return;
        }
        let due = start + Duration::from_secs_f64(sent as f64 / self.rate_per_thread);
        let now = Instant::now();
        if due > now {
            std::thread::sleep((due - now).min(self.deadline.saturating_duration_since(now)));
        }
    }

    pub(crate) fn running(&self) -> bool {
        !self.stop.load(Relaxed) && Instant::now() < self.deadline
    }
}
