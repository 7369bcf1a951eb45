//! `StatsdDecoder`: StatsD lines into samples. A malformed line is counted by reason and
//! skipped; its neighbours are unaffected.

use sheaf_shard_core::murmur3::ShardOf;
use sheaf_shard_core::statsd::{self, StatsdError, StatsdLine};
use sheaf_shard_core::{DEFAULT_SPEC, UNTIMED};

use super::{DecodeTally, SampleRouter};

/// Decodes StatsD lines into samples; holds the reused id buffer.
pub struct StatsdDecoder {
    id: Vec<u8>,
    shard_of: ShardOf,
    max_line: usize,
    tally: DecodeTally,
}

impl StatsdDecoder {
    /// For a pool of `num_shards` shards; lines longer than `max_line` bytes are refused.
    pub fn new(num_shards: u32, max_line: usize) -> Self {
        Self {
            id: Vec::with_capacity(256),
            shard_of: ShardOf::new(num_shards),
            max_line,
            tally: DecodeTally::default(),
        }
    }

    /// The longest line accepted.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Decodes every line of `buf` (newline-separated; the last may lack its newline) into
    /// the batches `router` picks.
    pub fn lines(&mut self, buf: &[u8], router: &mut impl SampleRouter) {
        let mut ingested = 0u64;
        statsd::for_each_line(buf, self.max_line, |line| match line.and_then(|l| self.line(l, router)) {
            Ok(()) => ingested += 1,
            Err(e) => self.tally.reject(e.reason()),
        });
        self.tally.ingested += ingested;
    }

    /// Counts a refusal the caller made (a line it could not even cut out of its stream).
    pub fn reject(&mut self, reason: &'static str) {
        self.tally.reject(reason);
    }

    /// What was accepted and refused since the tally was last emptied.
    pub fn tally(&mut self) -> &mut DecodeTally {
        &mut self.tally
    }

    #[inline]
    fn line(&mut self, line: StatsdLine<'_>, router: &mut impl SampleRouter) -> Result<(), StatsdError> {
        let (id, metric_type, value) = line.sample(&mut self.id)?;
        let (shard, hash) = self.shard_of.shard_and_hash(metric_type, id);
        router.batch_for(shard).push(shard, hash, id, metric_type, UNTIMED, value, DEFAULT_SPEC);
        Ok(())
    }
}
