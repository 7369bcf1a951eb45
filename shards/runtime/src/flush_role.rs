//! Who emits: a core's flush role (leader or follower of its shard set), the leader's flush
//! times a follower discards by, and the reports a leader's rounds send back.
//!
//! Built on the control thread (from the shard set's election and the flush times in etcd)
//! and handed to every core in `ShardCommand::SetRole` and `SetFollowerFlush`, shared
//! read-only (`Arc`). In the other direction each core pushes a [`FlushReport`] after every
//! leader round onto the lock-free [`FlushReports`] queue (any core pushes, the control
//! thread pops), from which the control thread persists the shard set's flush times.

use sheaf_shard_core::ForwardedUntil;
use sheaf_shard_core::time::UnixNanos;

/// Whether a core's flush rounds emit (leader) or only drop what the leader emitted (follower).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushRole {
    /// Emit every due window (the single-node mode, and the elected leader of a shard set).
    #[default]
    Leader,
    /// Emit nothing; discard windows the leader's flush times cover.
    Follower,
}

/// How far the leader has emitted one resolution of one shard: every window ending at or
/// before these instants is out (the forwarded windows per forward count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolutionFlushed {
    pub resolution: i64,
    pub standard: UnixNanos,
    pub timed: UnixNanos,
    pub forwarded: Vec<ForwardedUntil>,
}

/// The shard set's flush times as a follower last read them (M3's `ShardSetFlushTimes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushTimes {
    /// Index = shard id; empty where the leader has persisted nothing for the shard.
    pub by_shard: Vec<Vec<ResolutionFlushed>>,
}

impl FlushTimes {
    pub fn of(&self, shard: u32) -> &[ResolutionFlushed] {
        self.by_shard.get(shard as usize).map_or(&[], Vec::as_slice)
    }
}

/// What a follower's flush rounds do.
#[derive(Debug, Clone, Default)]
pub struct FollowerFlush {
    pub times: FlushTimes,
    /// Forced flush mode (no flush-time update for `max_buffer_size`): also discard every
    /// window ending at or before `now − horizon`.
    pub forced_horizon: Option<i64>,
}

/// A leader round of one core and resolution, finished: once every sink has written this
/// core's output up to `seq`, the windows ending at or before these instants are out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushReport {
    pub core: usize,
    pub resolution: i64,
    pub standard: UnixNanos,
    pub timed: UnixNanos,
    /// The forwarded windows, per forward count.
    pub forwarded: Vec<ForwardedUntil>,
    /// The sequence number of the last batch this core queued on the sinks (0: none yet).
    pub seq: u64,
}

/// Leader-round reports from every core to the control thread (crossbeam `ArrayQueue`: any
/// core pushes, the control thread pops; no lock). A full queue drops the oldest report,
/// which only delays a flush-time update (a later report of the same core covers it).
#[derive(Debug)]
pub struct FlushReports {
    queue: crossbeam_queue::ArrayQueue<FlushReport>,
}

impl FlushReports {
    pub fn new(capacity: usize) -> Self {
        Self { queue: crossbeam_queue::ArrayQueue::new(capacity.max(1)) }
    }

    pub(crate) fn push(&self, report: FlushReport) {
        let _ = self.queue.force_push(report);
    }

    pub fn pop(&self) -> Option<FlushReport> {
        self.queue.pop()
    }
}
