//! The per-value decode path, sans-IO: bytes as they came off a socket in, samples pushed
//! into the batch of the core (or node) that owns their shard out. No socket, executor,
//! clock or counter of a core is touched here, so the benches run exactly this code.
//!
//! - [`StatsdDecoder`]: StatsD / DogStatsD lines, several per datagram or read.
//! - [`M3msgDecoder`]: m3msg `Message` payloads holding a `metricpb.MetricWithMetadatas`.
//!
//! A decoder lives with the ingest task (connection or socket loop) that owns it, on that
//! task's shard core; nothing else touches it. What it accepted and refused is kept in its
//! [`DecodeTally`] until the task hands that to the core's counters.
//!
//! #[PerformanceCriticalPath]: no allocation, logging or lock per value.

mod m3msg;
mod statsd;
#[cfg(test)]
mod tests;

pub use m3msg::M3msgDecoder;
use sheaf_shard_core::SampleBatch;
pub use statsd::StatsdDecoder;

/// Where decoded samples go: the batch for the owner of a shard. The runtime's router
/// answers with the batch of the owning core (or of the peer nodes, in cluster mode).
pub trait SampleRouter {
    /// The batch that a value of `shard` is pushed into.
    fn batch_for(&mut self, shard: u32) -> &mut SampleBatch;
}

/// One batch for every shard (a single core, as in the benches).
impl SampleRouter for SampleBatch {
    #[inline]
    fn batch_for(&mut self, _shard: u32) -> &mut SampleBatch {
        self
    }
}

/// What a decoder accepted and refused since its tally was last taken.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DecodeTally {
    /// Values pushed into batches.
    pub ingested: u64,
    /// Values refused, by reason (a label of `sheaf_rejected_values_total`).
    pub rejected: Vec<(&'static str, u64)>,
}

impl DecodeTally {
    #[inline]
    fn reject(&mut self, reason: &'static str) {
        match self.rejected.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.rejected.push((reason, 1)),
        }
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.ingested == 0 && self.rejected.is_empty()
    }
}
