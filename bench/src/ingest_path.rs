//! One shard core's whole user-space ingest path, without the kernel and with every shard
//! local (nothing handed off), for StatsD and m3msg: the bytes `sheaf-load` sends, decoded
//! into a batch by the runtime's own decoders (`sheaf_shard_runtime::decode`), and the batch
//! applied to an aggregator. Shared by the `statsd_ingest` and `m3msg_ingest` criterion benches and by the
//! `instructions` bench, so that all three run exactly the same path.

use sheaf_shard_core::{AggregatorOptions, CoreAggregator, SampleBatch};
use sheaf_shard_runtime::decode::StatsdDecoder;

use crate::m3msg_path::FrameDecoder;
use crate::workload::default_staged_metadatas;
use crate::workload::{Generator, M3msgEncoder, MAX_DATAGRAM_BYTES, Mix, SeriesSpace, StatsdWriter};

/// Shards of the aggregator, as in sheaf's default config.
pub const SHARDS: u32 = 64;
/// The arrival time of every value (all land in one window).
pub const NOW: i64 = 1_700_000_000_000_000_000;
/// Lines per StatsD datagram, as `sheaf-load` packs them.
pub const LINES_PER_DATAGRAM: usize = 87;
/// StatsD datagrams decoded before the batch is applied: about one hand-off batch (1024 values).
pub const DATAGRAMS_PER_BATCH: usize = 12;
/// m3msg messages decoded before the batch is applied: one hand-off batch.
pub const MESSAGES_PER_BATCH: usize = 1024;

fn aggregator() -> CoreAggregator {
    let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().expect("policy")]);
    CoreAggregator::new(options, SHARDS)
}

/// StatsD datagrams that visit every series twice, in the order `sheaf-load` sends them, and
/// how many lines they hold.
pub fn statsd_datagrams(series: u64, mix: Mix) -> (Vec<Vec<u8>>, u64) {
    let mut writer = StatsdWriter::new(Generator::new(mix, SeriesSpace::new(series, mix), 0, 1));
    let (mut out, mut lines) = (Vec::new(), 0);
    while lines < 2 * series {
        let mut buf = Vec::new();
        lines += writer.fill(&mut buf, LINES_PER_DATAGRAM, MAX_DATAGRAM_BYTES).lines;
        out.push(buf);
    }
    (out, lines)
}

/// A shard core taking StatsD datagrams.
pub struct StatsdCore {
    decoder: StatsdDecoder,
    batch: SampleBatch,
    pub agg: CoreAggregator,
}

impl Default for StatsdCore {
    fn default() -> Self {
        Self {
            decoder: StatsdDecoder::new(SHARDS, 64 * 1024),
            batch: SampleBatch::with_capacity(1024),
            agg: aggregator(),
        }
    }
}

impl StatsdCore {
    /// Decodes `datagrams` into the batch with the runtime's decoder, then applies it.
    pub fn ingest(&mut self, datagrams: &[Vec<u8>]) {
        for datagram in datagrams {
            self.decoder.lines(datagram, &mut self.batch);
        }
        std::mem::take(self.decoder.tally());
        self.agg.apply(&self.batch, NOW);
        self.batch.clear();
    }
}

/// One m3msg message per series (one metric each, M3's default metadata), framed as a
/// coordinator sends them, and where each batch of `MESSAGES_PER_BATCH` starts.
pub fn m3msg_stream(series: u64, mix: Mix) -> (Vec<u8>, Vec<usize>) {
    let mut generator = Generator::new(mix, SeriesSpace::new(series, mix), 0, 1);
    let mut encoder = M3msgEncoder::new(default_staged_metadatas(), SHARDS);
    let (mut out, mut starts) = (Vec::new(), Vec::new());
    for seq in 0..series {
        if (seq as usize).is_multiple_of(MESSAGES_PER_BATCH) {
            starts.push(out.len());
        }
        let s = generator.next_sample();
        encoder.encode(&s, &[], seq + 1, NOW as u64, &mut out);
    }
    starts.push(out.len());
    (out, starts)
}

/// A shard core taking framed m3msg messages.
pub struct M3msgCore {
    decoder: FrameDecoder,
    batch: SampleBatch,
    pub agg: CoreAggregator,
}

impl Default for M3msgCore {
    fn default() -> Self {
        Self {
            decoder: FrameDecoder::new(SHARDS, NOW),
            batch: SampleBatch::with_capacity(MESSAGES_PER_BATCH),
            agg: aggregator(),
        }
    }
}

impl M3msgCore {
    /// Decodes the framed messages in `frames` into the batch, gathering each one's ack,
    /// then applies the batch.
    pub fn ingest(&mut self, frames: &[u8]) {
        self.decoder.decode(frames, usize::MAX, &mut self.batch);
        self.agg.apply(&self.batch, NOW);
        self.batch.clear();
    }
}
