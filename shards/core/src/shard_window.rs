//! `ShardWindow`: when one shard may be written and which of its windows may be emitted,
//! from the placement's cutover and cutoff in cluster mode.
//!
//! A plain value. The control plane sends it to the core that holds the shard, which keeps it
//! beside the shard's series (`CoreAggregator::set_shard_window`); only that core reads it,
//! in `apply` and in its flushes.

use crate::time::UnixNanos;

/// When one shard may be written and which of its windows may be emitted; set from the
/// placement's cutover and cutoff in cluster mode. The default is open at both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardWindow {
    /// First instant a write is accepted (cutover − `buffer_before_cutover`).
    pub accept_from: UnixNanos,
    /// First instant a write is refused again (cutoff + `buffer_after_cutoff`); from then on
    /// the shard is closed and its memory freed.
    pub accept_until: UnixNanos,
    /// Windows starting before this are discarded, not emitted.
    pub cutover: UnixNanos,
    /// Windows ending after this are discarded, not emitted.
    pub cutoff: UnixNanos,
}

impl ShardWindow {
    pub const OPEN: Self = Self {
        accept_from: UnixNanos::MIN,
        accept_until: UnixNanos::MAX,
        cutover: UnixNanos::MIN,
        cutoff: UnixNanos::MAX,
    };

    /// A shard this core's node does not hold: refuses writes, emits nothing, closed at once.
    pub const CLOSED: Self = Self {
        accept_from: UnixNanos::MAX,
        accept_until: UnixNanos::MIN,
        cutover: UnixNanos::MAX,
        cutoff: UnixNanos::MIN,
    };

    /// A shard before the first placement: refuses writes, emits nothing, but is kept (what a
    /// checkpoint loaded into it waits for the placement to say whether this node holds it).
    pub const PENDING: Self = Self {
        accept_from: UnixNanos::MAX,
        accept_until: UnixNanos::MAX,
        cutover: UnixNanos::MAX,
        cutoff: UnixNanos::MIN,
    };

    pub(crate) fn accepts(&self, now: UnixNanos) -> bool {
        self.accept_from <= now && now < self.accept_until
    }

    pub(crate) fn emits(&self, start: UnixNanos, end: UnixNanos) -> bool {
        self.cutover <= start && end <= self.cutoff
    }
}

impl Default for ShardWindow {
    fn default() -> Self {
        Self::OPEN
    }
}
