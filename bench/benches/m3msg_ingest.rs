//! The whole user-space m3msg path of one shard core, without the kernel: framed messages as
//! `sheaf-load` sends them (one metric per message, M3's default metadata, 60/20/20) are
//! split from the stream, each decoded (`msgpb.Message`, then `MetricWithMetadatas`), its
//! ack entry added to the ack frame, its shard and series hash computed and the sample
//! pushed into a batch (the runtime's own `M3msgDecoder`, through `sheaf_bench::ingest_path`), and the batch
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
use sheaf_bench::ingest_path::{M3msgCore, MESSAGES_PER_BATCH, m3msg_stream};
use sheaf_bench::workload::Mix;

/// The allocator sheaf runs with, so that series memory is laid out as in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("m3msg_ingest");
    for series in [100_000u64, 1_000_000] {
        let (frames, starts) = m3msg_stream(series, Mix::default());
        let chunks: Vec<&[u8]> = starts.windows(2).map(|w| &frames[w[0]..w[1]]).collect();
        let mut core = M3msgCore::default();
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
