//! `CoreAggregator::apply`: batches of 1024 samples (as the hand-off delivers them) onto
//! series that already exist (the steady state: a lookup in the shard's map and an add to the
//! open window), and onto an empty aggregator (every sample creates its series).
//! Steady state at 100k, 1M and 10M series; the 10M case takes ~15 s to set up and ~2.5 GB of
//! memory, and `SHEAF_BENCH_10M=0` skips it.
//! Throughput is in samples.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use sheaf_bench::workload::{Generator, Mix, SeriesSpace, push_sample};
use sheaf_shard_core::{AggregatorOptions, CoreAggregator, SampleBatch};

const BATCH: usize = 1024;
const SHARDS: u32 = 64;
const NOW: i64 = 1_700_000_000_000_000_000;

/// The largest steady-state case: ~15 s of setup and 2.5 GB resident on the 2-vCPU dev box.
/// `SHEAF_BENCH_10M=0` leaves it out (e.g. on a machine with less memory).
const HUGE: u64 = 10_000_000;

fn huge_enabled() -> bool {
    std::env::var_os("SHEAF_BENCH_10M").is_none_or(|v| v != "0")
}

fn options() -> AggregatorOptions {
    AggregatorOptions::with_policies(vec!["10s:2d".parse().expect("policy")])
}

/// One sample per series (each series once), shuffled, in batches of 1024.
fn batches(series: u64, mix: Mix) -> Vec<SampleBatch> {
    let space = SeriesSpace::new(series, mix);
    let mut generator = Generator::new(mix, space, 0, 1);
    let mut samples: Vec<_> = (0..space.total()).map(|_| generator.next_sample()).collect();
    samples.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7));
    let mut id = Vec::with_capacity(32);
    samples
        .chunks(BATCH)
        .map(|chunk| {
            let mut batch = SampleBatch::with_capacity(chunk.len());
            for s in chunk {
                push_sample(&mut batch, s, SHARDS, &mut id);
            }
            batch
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let counters = Mix { weights: [100, 0, 0] };
    let mut group = c.benchmark_group("map_upsert");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut cases = vec![
        ("counters", 100_000u64, counters),
        ("mix_60_20_20", 100_000, Mix::default()),
        ("counters", 1_000_000, counters),
    ];
    if huge_enabled() {
        cases.push(("counters", HUGE, counters));
    }
    for (label, series, mix) in cases {
        if series == HUGE {
            // criterion's minimum of 10 samples over 2 s: plenty at ~0.5 ms per batch.
            group.sample_size(10).measurement_time(Duration::from_secs(2));
        }
        let batches = batches(series, mix);
        let mut agg = CoreAggregator::new(options(), SHARDS);
        for b in &batches {
            agg.apply(b, NOW);
        }
        assert_eq!(agg.series_count() as u64, series);
        let mut i = 0;
        group.bench_function(BenchmarkId::new(format!("existing_{label}"), series), |b| {
            b.iter(|| {
                agg.apply(black_box(&batches[i % batches.len()]), NOW);
                i += 1;
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("map_insert");
    group.sample_size(10);
    let series = 100_000u64;
    let batches = batches(series, counters);
    group.throughput(Throughput::Elements(series));
    group.bench_function(BenchmarkId::new("new_counters", series), |b| {
        b.iter_batched(
            || CoreAggregator::new(options(), SHARDS),
            |mut agg| {
                for batch in &batches {
                    agg.apply(black_box(batch), NOW);
                }
                agg
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
