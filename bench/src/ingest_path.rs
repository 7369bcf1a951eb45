//! One shard core's whole user-space ingest path, without the kernel and with every shard
//! local (nothing handed off), for StatsD and m3msg: the bytes `sheaf-load` sends, decoded
//! into a batch as the runtime's decoders do per value, and the batch applied to an
//! aggregator. Shared by the `statsd_ingest` and `m3msg_ingest` criterion benches and by the
//! `instructions` bench, so that all three run exactly the same path.

use sheaf_proto::output::AckFrame;
use sheaf_shard_core::murmur3::ShardOf;
use sheaf_shard_core::statsd::for_each_line;
use sheaf_shard_core::{AggregatorOptions, CoreAggregator, DEFAULT_SPEC, SampleBatch, UNTIMED};

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
    shard_of: ShardOf,
    id: Vec<u8>,
    batch: SampleBatch,
    pub agg: CoreAggregator,
}

impl Default for StatsdCore {
    fn default() -> Self {
        Self {
            shard_of: ShardOf::new(SHARDS),
            id: Vec::with_capacity(256),
            batch: SampleBatch::with_capacity(1024),
            agg: aggregator(),
        }
    }
}

impl StatsdCore {
    /// Decodes `datagrams` into the batch (what `LineDecoder` does per line), then applies it.
    pub fn ingest(&mut self, datagrams: &[Vec<u8>]) {
        for datagram in datagrams {
            for_each_line(datagram, 64 * 1024, |line| {
                let Ok((id, metric_type, value)) = line.and_then(|l| l.sample(&mut self.id)) else { return };
                let (shard, hash) = self.shard_of.shard_and_hash(metric_type, id);
                self.batch.push(shard, hash, id, metric_type, UNTIMED, value, DEFAULT_SPEC);
            });
        }
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
    acks: AckFrame,
    batch: SampleBatch,
    pub agg: CoreAggregator,
}

impl Default for M3msgCore {
    fn default() -> Self {
        Self {
            decoder: FrameDecoder::new(SHARDS, NOW),
            acks: AckFrame::default(),
            batch: SampleBatch::with_capacity(MESSAGES_PER_BATCH),
            agg: aggregator(),
        }
    }
}

impl M3msgCore {
    /// Decodes the framed messages in `frames` into the batch, adding each one's ack entry,
    /// then applies the batch.
    pub fn ingest(&mut self, frames: &[u8]) {
        let acks = &mut self.acks;
        self.decoder.decode(
            frames,
            usize::MAX,
            |msg| acks.push_message(msg),
            |_| 0,
            std::slice::from_mut(&mut self.batch),
        );
        self.agg.apply(&self.batch, NOW);
        self.batch.clear();
        self.acks.clear();
    }
}
