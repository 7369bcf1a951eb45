//! The whole user-space StatsD path of one shard core, without the kernel: datagrams as
//! `sheaf-load` sends them (100k series, 60/20/20) are split into lines, each line's id,
//! shard and series hash computed and the sample pushed into a batch (what `LineDecoder`
//! does per line), and the batch applied to an aggregator that already holds every series.
//! Every shard is local, so nothing is handed off. Throughput is in lines.
//!
//! The steps have their own benchmarks (`statsd`, `shard_hash`, `map_upsert`); this one
//! measures them together, with the cache pressure each puts on the other.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sheaf_bench::workload::{Generator, MAX_DATAGRAM_BYTES, Mix, SeriesSpace, StatsdWriter};
use sheaf_shard_core::murmur3::ShardOf;
use sheaf_shard_core::statsd::for_each_line;
use sheaf_shard_core::{AggregatorOptions, CoreAggregator, DEFAULT_SPEC, SampleBatch, UNTIMED, series_hash_from_murmur};

/// The allocator sheaf runs with, so that series memory is laid out as in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SHARDS: u32 = 64;
const NOW: i64 = 1_700_000_000_000_000_000;
/// Lines per datagram, as `sheaf-load` packs them.
const LINES_PER_DATAGRAM: usize = 87;
/// Datagrams decoded before the batch is applied: about one hand-off batch (1024 values).
const DATAGRAMS_PER_BATCH: usize = 12;

/// Enough datagrams to visit every series twice, in the order `sheaf-load` sends them.
fn datagrams(series: u64, mix: Mix) -> (Vec<Vec<u8>>, u64) {
    let mut writer = StatsdWriter::new(Generator::new(mix, SeriesSpace::new(series, mix), 0, 1));
    let (mut out, mut lines) = (Vec::new(), 0);
    while lines < 2 * series {
        let mut buf = Vec::new();
        lines += writer.fill(&mut buf, LINES_PER_DATAGRAM, MAX_DATAGRAM_BYTES).lines;
        out.push(buf);
    }
    (out, lines)
}

struct Core {
    shard_of: ShardOf,
    id: Vec<u8>,
    batch: SampleBatch,
    agg: CoreAggregator,
}

impl Core {
    fn new() -> Self {
        let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().expect("policy")]);
        Self {
            shard_of: ShardOf::new(SHARDS),
            id: Vec::with_capacity(256),
            batch: SampleBatch::with_capacity(1024),
            agg: CoreAggregator::new(options, SHARDS),
        }
    }

    /// Decodes `datagrams` into the batch, then applies it.
    fn ingest(&mut self, datagrams: &[Vec<u8>]) {
        for datagram in datagrams {
            for_each_line(datagram, 64 * 1024, |line| {
                let Ok((id, metric_type, value)) = line.and_then(|l| l.sample(&mut self.id)) else { return };
                let (shard, murmur) = self.shard_of.of_with_hash(id);
                let hash = series_hash_from_murmur(metric_type, murmur);
                self.batch.push(shard, hash, id, metric_type, UNTIMED, value, DEFAULT_SPEC);
            });
        }
        self.agg.apply(&self.batch, NOW);
        self.batch.clear();
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("statsd_ingest");
    for series in [100_000u64] {
        let (datagrams, lines) = datagrams(series, Mix::default());
        let mut core = Core::new();
        for chunk in datagrams.chunks(DATAGRAMS_PER_BATCH) {
            core.ingest(chunk);
        }
        assert_eq!(core.agg.series_count() as u64, series);
        assert_eq!(core.agg.counters.values_applied, lines);
        let chunks: Vec<&[Vec<u8>]> = datagrams.chunks_exact(DATAGRAMS_PER_BATCH).collect();
        let per_chunk = lines as f64 / datagrams.len() as f64 * DATAGRAMS_PER_BATCH as f64;
        group.throughput(Throughput::Elements(per_chunk.round() as u64));
        let mut i = 0;
        group.bench_function(BenchmarkId::new("decode_and_apply_60_20_20", series), |b| {
            b.iter(|| {
                core.ingest(black_box(chunks[i % chunks.len()]));
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
