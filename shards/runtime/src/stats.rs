//! `CoreStats`: what one core counts, published through an epoch cell for the admin API.
//!
//! The core mutates its own copy as plain fields (no atomics on the hot path) and
//! publishes a clone every `stats_interval` and after each flush round; the control
//! thread reads the published clones (`StatsReader`).

use sheaf_shard_core::{AggregatorCounters, RateLimitSettings};

use crate::decode::DecodeTally;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    M3msg = 0,
    StatsdUdp = 1,
    StatsdTcp = 2,
    StatsdUnix = 3,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [Protocol::M3msg, Protocol::StatsdUdp, Protocol::StatsdTcp, Protocol::StatsdUnix];
    pub fn name(self) -> &'static str {
        match self {
            Self::M3msg => "m3msg",
            Self::StatsdUdp => "statsd_udp",
            Self::StatsdTcp => "statsd_tcp",
            Self::StatsdUnix => "statsd_unix",
        }
    }
}

/// Why a core closed an ingest connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionRefusal {
    /// Over the protocol's `max_connections`: closed as soon as it was accepted.
    ConnectionLimit = 0,
    /// Nothing arrived on it for the protocol's `read_timeout`.
    ReadTimeout = 1,
    /// Its partial frame (or line) would have taken the core over its buffered-bytes budget.
    BufferBudget = 2,
}

impl ConnectionRefusal {
    pub const ALL: [ConnectionRefusal; 3] =
        [ConnectionRefusal::ConnectionLimit, ConnectionRefusal::ReadTimeout, ConnectionRefusal::BufferBudget];
    pub fn name(self) -> &'static str {
        match self {
            Self::ConnectionLimit => "connection_limit",
            Self::ReadTimeout => "read_timeout",
            Self::BufferBudget => "buffer_budget",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectCount {
    pub protocol: Protocol,
    pub reason: &'static str,
    pub count: u64,
}

#[derive(Debug, Clone, Default)]
pub struct CoreStats {
    pub core: usize,
    pub cpu: usize,
    /// Values decoded off this core's sockets, by protocol.
    pub ingested: [u64; Protocol::ALL.len()],
    /// m3msg messages acknowledged.
    pub acked_messages: u64,
    pub rejected: Vec<RejectCount>,
    /// Values this core decoded for shards another core owns.
    pub handed_off_values: u64,
    /// Batches sent to each core (index = destination core).
    pub handoff_batches_sent: Vec<u64>,
    /// Batches received from each core (index = source core).
    pub handoff_batches_received: Vec<u64>,
    pub open_connections: u64,
    /// Connections this core closed itself, by protocol and reason (index =
    /// `[Protocol as usize][ConnectionRefusal as usize]`; only the stream protocols count).
    pub refused_connections: [[u64; ConnectionRefusal::ALL.len()]; Protocol::ALL.len()],
    /// Datagrams the kernel dropped because this core's StatsD UDP socket's receive buffer
    /// was full (its `SO_MEMINFO` drop counter, read at each publish).
    pub udp_dropped_datagrams: u64,
    pub series: u64,
    /// Series this core may hold (its share of `max_series`; 0: no limit).
    pub series_limit: u64,
    /// The write rate limits this core applies.
    pub rate_limits: RateLimitSettings,
    /// Storage policies this core holds: the defaults and those some series uses.
    pub storage_policies: u64,
    /// Resolutions the flush schedule runs rounds for.
    pub flush_schedules: u64,
    /// Windows held in memory (as counted at the last flush or discard of each shard).
    pub windows_held: u64,
    pub aggregation: AggregatorCounters,
    pub flush_rounds: u64,
    pub last_flush_duration_ns: u64,
    pub flush_duration_ns_total: u64,
    /// How long after its scheduled time the last value of the last round was queued.
    pub last_flush_lag_ns: u64,
    /// Forwarded samples (one source shard's values for one window of a rolled-up series)
    /// this core's flushes routed to the cores owning the rolled-up series.
    pub rollup_forwarded: u64,
    /// Rolled-up values a peer node should have had but that m3msg cannot carry (a set's):
    /// counted and dropped.
    pub rollup_remote_unsupported: u64,
    /// Values sent to peer nodes (cluster mode forwarding).
    pub forwarded_values: u64,
    /// Values given up on because a peer stayed unreachable past the forwarding buffer.
    pub forward_dropped_values: u64,
    /// Values given up on because a peer's endpoint did not resolve for as long as the
    /// forwarding buffer could keep them.
    pub forward_unresolved_dropped_values: u64,
    /// Values for shards no node owns (no placement yet, or a peer's stale view), given up
    /// on after `unowned_hold` or beyond `unowned_hold_max_values`.
    pub unowned_values: u64,
    /// Values held for a placement to come (routed again when it does, or counted above).
    pub unowned_held_values: u64,
    /// Whether this core's rounds emit (always on a single node).
    pub leader: bool,
    /// Markers given to idle shards (idle time or synced flush).
    pub shards_synced: u64,
    /// Rounds run as a follower (discarding what the leader emitted).
    pub follower_rounds: u64,
    /// Follower rounds in forced flush mode (no flush-time update for `max_buffer_size`).
    pub forced_flush_rounds: u64,
    /// Shard checkpoints (`data_dir`): what was loaded at start and what has been written.
    pub checkpoint: CheckpointStats,
}

/// Why a checkpoint file could not be loaded (the `reason` label of
/// `sheaf_checkpoint_load_failures_total`): the core crate's `CheckpointError::reason`, and
/// `io` for a file that could not be read at all.
pub const CHECKPOINT_LOAD_FAILURE_REASONS: [&str; 6] = ["truncated", "corrupt", "version", "invalid", "foreign", "io"];

/// One core's shard checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Shards loaded at start, and their series.
    pub loaded_shards: u64,
    pub loaded_series: u64,
    /// When the oldest checkpoint loaded was written (Unix nanoseconds; 0: none loaded).
    pub loaded_written_at: i64,
    /// When the load ended (Unix nanoseconds; 0: no load): `loaded_at − loaded_written_at`
    /// is how old the checkpoint was when it was loaded.
    pub loaded_at: i64,
    /// How long the load took, reads and decoding included.
    pub load_ns: u64,
    /// The highest generation among the checkpoints loaded.
    pub loaded_generation: u64,
    /// Files not loaded, by reason (index into `CHECKPOINT_LOAD_FAILURE_REASONS`).
    pub load_failures: [u64; CHECKPOINT_LOAD_FAILURE_REASONS.len()],
    /// Checkpoint files written, their bytes, and the time from serialising to the rename.
    pub writes: u64,
    pub bytes: u64,
    pub write_ns_total: u64,
    pub last_write_ns: u64,
    pub write_failures: u64,
    /// When the last pass that wrote every shard began (Unix nanoseconds; 0: none yet).
    pub last_written_at: i64,
    /// The highest generation written.
    pub generation: u64,
    /// Flush marks that could not be written.
    pub marks_failures: u64,
}

impl CheckpointStats {
    pub(crate) fn loaded(&mut self, series: u64, written_at: i64, generation: u64) {
        self.loaded_shards += 1;
        self.loaded_series += series;
        if self.loaded_written_at == 0 || written_at < self.loaded_written_at {
            self.loaded_written_at = written_at;
        }
        self.loaded_generation = self.loaded_generation.max(generation);
        self.generation = self.generation.max(generation);
    }

    pub(crate) fn load_failed(&mut self, reason: &str) {
        let i = CHECKPOINT_LOAD_FAILURE_REASONS.iter().position(|r| *r == reason).unwrap_or(5);
        self.load_failures[i] += 1;
    }
}

impl CoreStats {
    pub fn new(core: usize, cpu: usize, cores: usize) -> Self {
        Self {
            core,
            cpu,
            handoff_batches_sent: vec![0; cores],
            handoff_batches_received: vec![0; cores],
            leader: true,
            ..Self::default()
        }
    }

    /// Counts one connection of `protocol` closed for `reason`.
    pub fn refused(&mut self, protocol: Protocol, reason: ConnectionRefusal) {
        self.refused_connections[protocol as usize][reason as usize] += 1;
    }

    /// Adds what a decoder of `protocol` counted, and empties its tally.
    pub fn record(&mut self, protocol: Protocol, tally: &mut DecodeTally) {
        self.ingested[protocol as usize] += std::mem::take(&mut tally.ingested);
        for (reason, count) in tally.rejected.drain(..) {
            match self.rejected.iter_mut().find(|r| r.protocol == protocol && r.reason == reason) {
                Some(r) => r.count += count,
                None => self.rejected.push(RejectCount { protocol, reason, count }),
            }
        }
    }
}
