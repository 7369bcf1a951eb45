//! The plain settings a pool is started with (numbers, addresses, durations; no live
//! objects: those are `PoolServices`). Built by the binary from its YAML config on the
//! control thread, then shared read-only (`Arc`) by every core.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sheaf_shard_core::AggregatorOptions;

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub m3msg: Option<SocketAddr>,
    pub statsd_udp: Option<SocketAddr>,
    pub statsd_tcp: Option<SocketAddr>,
    /// The Unix datagram socket every core reads StatsD from (see `ingest::unix_socket`).
    pub statsd_unix: Option<PathBuf>,
    /// Largest m3msg frame accepted; a larger one closes the connection.
    pub max_frame_size: usize,
    /// Longest StatsD line accepted; longer lines are rejected one by one.
    pub max_line_size: usize,
    /// SO_RCVBUF asked for on each StatsD UDP socket.
    pub udp_recv_buffer: usize,
    /// StatsD datagrams go to the socket of the core on the CPU that received them, rather
    /// than by the kernel's hash of the sender's address (see `ingest::udp_spread`).
    pub udp_by_cpu: bool,
    /// How long a StatsD UDP socket's core waits after a drain that emptied the socket with
    /// fewer datagrams than one `recvmmsg` takes, before it looks again (0: no pause).
    pub udp_small_read_pause: Duration,
    /// How long a StatsD TCP connection waits after a read of less than half its read size
    /// before it reads again (0: no pause).
    pub tcp_small_read_pause: Duration,
    /// As `udp_small_read_pause`, for the StatsD Unix socket; skipped when the socket queues
    /// fewer than `MIN_QUEUE_FOR_PAUSE` datagrams (a queue that shallow fills within it).
    pub unix_small_read_pause: Duration,
    /// m3msg acks are sent at least this often while messages arrive.
    pub ack_interval: Duration,
    /// How long an m3msg ack may wait for later ones to join its frame (0: sent after the
    /// read that brought its message).
    pub ack_delay: Duration,
    /// The grid an m3msg connection waits on after a read that emptied its socket, before it
    /// reads again (0: no pause).
    pub small_read_pause: Duration,
    /// At most this many message ids per m3msg `Ack` frame.
    pub max_acks_per_frame: usize,
    /// Bounds on m3msg connections.
    pub m3msg_limits: StreamLimits,
    /// Bounds on StatsD TCP connections.
    pub statsd_tcp_limits: StreamLimits,
}

/// What one stream protocol's connections (m3msg, StatsD over TCP) may hold.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    /// Connections served at once on the whole node; one more is closed as soon as it is
    /// accepted (counted, `connection_limit`).
    pub max_connections: usize,
    /// A connection on which nothing arrives for this long while it is read is closed
    /// (counted, `read_timeout`); `None` waits for ever.
    pub read_timeout: Option<Duration>,
    /// Bytes each core may hold, over all its connections of the protocol, for frames (or
    /// lines) larger than the read buffer every connection starts with
    /// (`ingest::read_buffer::BASE_BYTES`); a connection whose frame would go over it is
    /// closed (counted, `buffer_budget`).
    pub max_buffered_bytes_per_core: usize,
}

/// When each resolution flushes: at `truncate(now, r) + offset(r)`.
#[derive(Debug, Clone)]
pub struct FlushSchedule {
    /// M3's `maxJitters` table: (flush interval, max jitter percent as a fraction).
    pub max_jitters: Vec<(Duration, f64)>,
    pub jitter_enabled: bool,
    /// Seed for the offsets, so every core of a process draws the same offset per resolution.
    pub seed: u64,
    /// Added to every offset (cluster mode): values a peer forwarded just before a window
    /// ended get this long to arrive before the window is flushed.
    pub min_offset: Duration,
}

impl FlushSchedule {
    /// How long after its end a window is flushed at the earliest (`cluster.flush_delay`; 0 on
    /// a single node): the part of every offset that jitter does not draw.
    pub fn delay_nanos(&self) -> i64 {
        self.min_offset.as_nanos() as i64
    }

    /// The flush offset of resolution `r`: drawn from `[0, pct × r)` with pct from the first
    /// row whose interval is ≥ r (else the last row); 0 when jitter is off or no row exists.
    pub fn offset(&self, resolution_nanos: i64) -> i64 {
        self.min_offset.as_nanos() as i64 + self.jitter(resolution_nanos)
    }

    fn jitter(&self, resolution_nanos: i64) -> i64 {
        if !self.jitter_enabled || self.max_jitters.is_empty() {
            return 0;
        }
        let pct = self
            .max_jitters
            .iter()
            .find(|(interval, _)| interval.as_nanos() as i64 >= resolution_nanos)
            .or(self.max_jitters.last())
            .map_or(0.0, |(_, pct)| *pct);
        let max = (pct.clamp(0.0, 1.0) * resolution_nanos as f64) as i64;
        if max <= 0 {
            return 0;
        }
        // splitmix64 of (seed, resolution): deterministic per process, uniform enough.
        let mut z = self.seed ^ (resolution_nanos as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % max as u64) as i64
    }
}

/// How the pool runs: its cores, shards, aggregation options, ingest and flush settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// CPU ids, one executor each.
    pub cpus: Vec<usize>,
    /// Pin each executor to its CPU (off: the CPU ids only name the cores).
    pub pin: bool,
    pub num_shards: u32,
    pub aggregator: AggregatorOptions,
    pub ingest: IngestConfig,
    pub flush: FlushSchedule,
    /// Values per hand-off batch before it is sent without waiting for the read to finish.
    pub handoff_batch_values: usize,
    /// Batches in flight per core pair; a full queue stops the sender reading its sockets.
    pub handoff_queue_batches: usize,
    /// How long UDP values for another core may wait for more company before they are handed
    /// off (a full batch goes at once). Zero hands off after every burst.
    pub handoff_linger: Duration,
    /// While a peer keeps handing batches over, they are taken in at the instants of this grid
    /// (`ingest::ticks`), one wake-up for all of them, or sooner once its mailbox is half
    /// full. Zero: every batch that finds the core asleep wakes it.
    pub handoff_tick: Duration,
    /// Values per flushed batch handed to the sinks.
    pub flush_batch_values: usize,
    /// How long a flush waits for room on a full sink before counting the batch as dropped.
    pub sink_enqueue_timeout: Duration,
    /// Log a backtrace when a task queue runs 50 ms past its time slice (glommio's stall
    /// detector; see `core::queues::StallWarning` for its cost).
    pub detect_stalls: bool,
    /// A leader round drains its next shard once every sink has fewer than this many batches
    /// per core queued (0: it never waits); see `flush::to_sinks::SinkWriter::wait_for_room`.
    pub flush_ahead_batches: usize,
    /// Forwarding to a peer node: values kept unacknowledged per (core, peer) before the
    /// oldest are dropped (counted).
    pub forward_max_buffered_values: usize,
    /// Cluster mode: values for shards no node owns by this node's routes wait this long for
    /// a placement that routes them (a peer's may be newer), at most this many per core.
    pub unowned_hold: Duration,
    pub unowned_hold_max_values: usize,
    /// How often each core publishes its stats.
    pub stats_interval: Duration,
    /// How long an idle core spins before it parks (glommio `spin_before_park`). Parking
    /// costs a membarrier IPI and a wake-up; under steady load a short spin avoids both.
    pub spin_before_park: Option<Duration>,
    /// io_uring registered buffer memory per core (glommio `io_memory`).
    pub io_memory_bytes: usize,
    /// Shard checkpoints in `data_dir` (single node); `None`: nothing is persisted.
    pub checkpoint: Option<crate::checkpoint::CheckpointConfig>,
    /// A shard with no write for this long and no window held is idle: it gets a `sync_id`
    /// and flush rounds pass it by.
    pub idle_shard_after: Duration,
}
