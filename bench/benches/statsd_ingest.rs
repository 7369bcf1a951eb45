//! The whole user-space StatsD path of one shard core, without the kernel: datagrams as
//! `sheaf-load` sends them (100k series, 60/20/20) are split into lines, each line's id,
//! shard and series hash computed and the sample pushed into a batch (the runtime's own
//! `StatsdDecoder`, through `sheaf_bench::ingest_path`), and the batch applied to an
//! aggregator that already holds every series.
//! Every shard is local, so nothing is handed off. Throughput is in lines.
//!
//! The steps have their own benchmarks (`statsd`, `shard_hash`, `map_upsert`); this one
//! measures them together, with the cache pressure each puts on the other.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sheaf_bench::ingest_path::{DATAGRAMS_PER_BATCH, StatsdCore, statsd_datagrams};
use sheaf_bench::workload::Mix;

/// The allocator sheaf runs with, so that series memory is laid out as in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("statsd_ingest");
    for series in [100_000u64] {
        let (datagrams, lines) = statsd_datagrams(series, Mix::default());
        let mut core = StatsdCore::default();
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
