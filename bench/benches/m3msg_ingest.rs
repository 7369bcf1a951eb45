//! The whole user-space m3msg path of one shard core, without the kernel: framed messages as
//! `sheaf-load` sends them (one metric per message, M3's default metadata, 60/20/20) are
//! split from the stream, each decoded (`msgpb.Message`, then `MetricWithMetadatas`), its
//! ack entry added to the ack frame, its shard and series hash computed and the sample
//! pushed into a batch (what the runtime's `MetricDecoder` does per message), and the batch
//! applied to an aggregator that already holds every series. Every shard is local, so
//! nothing is handed off. Throughput is in messages (one value each).
//!
//! At 1M series the records, index and ids are far larger than the caches, as on a server
//! taking an M3 coordinator's traffic; at 100k they fit in L3. The m3msg throughput target
//! (5 M values per shard-core CPU-second at 1M series) is measured end to end by
//! `sheaf-load`; this bench shows how much of that time is sheaf's own code.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sheaf_bench::m3msg_path::FrameDecoder;
use sheaf_bench::workload::{Generator, M3msgEncoder, Mix, SeriesSpace, default_staged_metadatas};
use sheaf_proto::output::AckFrame;
use sheaf_shard_core::{AggregatorOptions, CoreAggregator, SampleBatch};

/// The allocator sheaf runs with, so that series memory is laid out as in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SHARDS: u32 = 64;
const NOW: i64 = 1_700_000_000_000_000_000;
/// Messages decoded before the batch is applied: one hand-off batch.
const MESSAGES_PER_BATCH: usize = 1024;

/// Framed messages visiting every series once, in the order `sheaf-load` sends them, and
/// where each batch of `MESSAGES_PER_BATCH` starts.
fn stream(series: u64, mix: Mix) -> (Vec<u8>, Vec<usize>) {
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

struct Core {
    decoder: FrameDecoder,
    acks: AckFrame,
    batch: SampleBatch,
    agg: CoreAggregator,
}

impl Core {
    fn new() -> Self {
        let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().expect("policy")]);
        Self {
            decoder: FrameDecoder::new(SHARDS, NOW),
            acks: AckFrame::default(),
            batch: SampleBatch::with_capacity(MESSAGES_PER_BATCH),
            agg: CoreAggregator::new(options, SHARDS),
        }
    }

    /// Decodes the framed messages in `frames` into the batch, then applies it.
    fn ingest(&mut self, frames: &[u8]) {
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

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("m3msg_ingest");
    for series in [100_000u64, 1_000_000] {
        let (frames, starts) = stream(series, Mix::default());
        let chunks: Vec<&[u8]> = starts.windows(2).map(|w| &frames[w[0]..w[1]]).collect();
        let mut core = Core::new();
        for chunk in &chunks {
            core.ingest(chunk);
        }
        assert_eq!(core.agg.series_count() as u64, series);
        assert_eq!(core.agg.counters.values_applied, series);
        group.throughput(Throughput::Elements(MESSAGES_PER_BATCH as u64));
        // The last chunk may be short: only whole ones are timed.
        let whole = &chunks[..chunks.len() - 1];
        let mut i = 0;
        group.bench_function(BenchmarkId::new("decode_and_apply_60_20_20", series), |b| {
            b.iter(|| {
                core.ingest(black_box(whole[i % whole.len()]));
                i += 1;
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
