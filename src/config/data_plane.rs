//! The `data_plane:` section: batch sizes, queue depths and timeouts of the hand-offs between
//! shard cores and from the cores to the sinks. Read at start, on the main thread, into the
//! settings the shard cores and the sink queues get; nothing reads it afterwards.

use std::time::Duration;

use serde::Deserialize;

use super::duration::Dur;
use super::error::{ConfigError, invalid, require_at_least_one};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataPlane {
    /// Values per cross-core batch before it is sent mid-read.
    pub handoff_batch_values: usize,
    /// Batches in flight per pair of cores; full means the sender stops reading. Each pair
    /// holds at most this many queued and 8 emptied ones kept for reuse, of ~70 KB each at
    /// 1024 values (40-byte samples and their ids).
    pub handoff_queue_batches: usize,
    /// How long UDP values for another core may wait to fill a batch before they are handed
    /// off (0s: after every burst).
    pub handoff_linger: Dur,
    /// While another core keeps handing values over, they are taken in at the ticks of this
    /// grid (the one m3msg's acks and pauses use), one wake-up of the core for all of them
    /// rather than one per batch, or sooner once half of `handoff_queue_batches` wait (0s:
    /// every batch that finds the core asleep wakes it).
    pub handoff_tick: Dur,
    /// Values per batch handed from a flush to the sinks.
    pub flush_batch_values: usize,
    /// Batches queued per sink.
    pub sink_queue_batches: usize,
    /// A leader's flush round drains its next shard only while each sink has fewer than this
    /// many batches per shard core queued, so a round goes at its sinks' pace and refills
    /// the batches they hand back instead of allocating a round's worth of new ones (at 1M
    /// series, ~700 batches of ~220 KB every 10 s). A sink that keeps a round waiting
    /// `sink_enqueue_timeout` is not waited for again in that round. 0: never wait.
    pub flush_ahead_batches: usize,
    /// How long a flush waits on a full sink before dropping (counted).
    pub sink_enqueue_timeout: Dur,
    /// How long shutdown waits for the sinks to write out what is queued.
    pub sink_drain_timeout: Dur,
    /// How often each core publishes its stats.
    pub stats_interval: Dur,
    /// Log a warning with a backtrace when a shard core's task queue runs 50 ms past its time
    /// slice without yielding (glommio's stall detector). For development and profiling: the
    /// first backtrace parses the binary's debug info on the core (tens of MiB that stay
    /// resident; seconds in a debug build).
    pub detect_stalls: bool,
    /// How long an idle shard core spins before it sleeps (0s: sleep at once).
    pub spin_before_park: Dur,
    /// Bytes of io_uring registered (locked) buffer memory per shard core (glommio's
    /// `io_memory`, whose own default is 10 MiB). sheaf does no file I/O through it, and
    /// socket reads fall back to ordinary buffers, so a small pool saves resident memory and
    /// RLIMIT_MEMLOCK. glommio rounds it up to at least 64 KiB.
    pub io_memory_bytes: usize,
}

impl Default for DataPlane {
    fn default() -> Self {
        Self {
            handoff_batch_values: 1024,
            handoff_queue_batches: 64,
            handoff_linger: Dur(Duration::from_millis(1)),
            handoff_tick: Dur(Duration::from_millis(50)),
            flush_batch_values: 4096,
            sink_queue_batches: 4096,
            flush_ahead_batches: 8,
            detect_stalls: false,
            sink_enqueue_timeout: Dur(Duration::from_secs(5)),
            sink_drain_timeout: Dur(Duration::from_secs(30)),
            stats_interval: Dur(Duration::from_millis(500)),
            spin_before_park: Dur(Duration::ZERO),
            io_memory_bytes: 1 << 20,
        }
    }
}

impl DataPlane {
    /// A stats interval longer than 0, and batch sizes and queue depths of at least 1.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.stats_interval.0.is_zero() {
            return Err(invalid("data_plane.stats_interval", "must be longer than 0s"));
        }
        require_at_least_one(&[
            ("data_plane.handoff_batch_values", self.handoff_batch_values),
            ("data_plane.handoff_queue_batches", self.handoff_queue_batches),
            ("data_plane.flush_batch_values", self.flush_batch_values),
            ("data_plane.sink_queue_batches", self.sink_queue_batches),
        ])
    }
}
