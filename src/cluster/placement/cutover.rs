//! When moved shards change hands: [`Options`] (warmup and alignment, from the `cluster:`
//! config) and [`next_cutover`]. Pure.

use std::time::Duration;

/// The alignment used when the configured one does not fit in `i64` nanoseconds.
const NANOS_PER_MINUTE: i64 = 60_000_000_000;

/// Settings of the mutating operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How long a moved shard's receivers get before they take over: the cutover is the first
    /// multiple of `alignment` strictly after `now + warmup` (`cluster.shard_cutover_warmup`).
    pub warmup: Duration,
    /// What cutovers are aligned to (`cluster.shard_cutover_alignment`; one minute in m3). A
    /// multiple of every resolution in use keeps windows from straddling a cutover.
    pub alignment: Duration,
}

impl Options {
    /// The cutover for shards moved at `now_nanos` ([`next_cutover`]).
    pub fn cutover(&self, now_nanos: i64) -> i64 {
        next_cutover(now_nanos, self.warmup, self.alignment)
    }
}

/// The cutover of shards moved at `now_nanos`: the first multiple of `alignment` strictly
/// after `now + warmup`. With a one-minute alignment (the default) this is what m3coordinator
/// uses for m3aggregator placements; a shorter one makes hand-offs quicker to watch in tests.
pub fn next_cutover(now_nanos: i64, warmup: Duration, alignment: Duration) -> i64 {
    let warmup = i64::try_from(warmup.as_nanos()).unwrap_or(i64::MAX);
    let step = i64::try_from(alignment.as_nanos()).unwrap_or(NANOS_PER_MINUTE).max(1);
    let t = now_nanos.saturating_add(warmup);
    t.div_euclid(step).saturating_add(1).saturating_mul(step)
}
