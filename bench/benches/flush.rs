//! Flush: with N series resident, each holding one closed 10 s window, one round of
//! `begin_flush` + `flush_shard` over all 64 shards into a `FlushCollector` (batches of 4096,
//! sheaf's default), whose batches are then dropped: a null sink. Refilling the windows
//! between rounds is not timed. Throughput is in aggregated values emitted.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sheaf_bench::workload::{Generator, Mix, SeriesSpace, push_sample};
use sheaf_shard_core::{AggregatorOptions, CoreAggregator, FlushCollector, SampleBatch};

/// The allocator sheaf runs with, so that series and window memory is laid out as in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SHARDS: u32 = 64;
const R: i64 = 10_000_000_000;
const BASE: i64 = 1_700_000_000_000_000_000;
const FLUSH_BATCH: usize = 4096;

fn options() -> AggregatorOptions {
    AggregatorOptions::with_policies(vec!["10s:2d".parse().expect("policy")])
}

/// One value for every series, in batches of 1024.
fn batches(series: u64, mix: Mix) -> Vec<SampleBatch> {
    let space = SeriesSpace::new(series, mix);
    let mut generator = Generator::new(mix, space, 0, 1);
    let mut out = Vec::new();
    let mut batch = SampleBatch::with_capacity(1024);
    let mut id = Vec::with_capacity(32);
    for _ in 0..space.total() {
        let s = generator.next_sample();
        push_sample(&mut batch, &s, SHARDS, &mut id);
        if batch.len() == 1024 {
            out.push(std::mem::take(&mut batch));
        }
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

/// Resident series and the round they are at.
struct Resident {
    agg: CoreAggregator,
    batches: Vec<SampleBatch>,
    out: FlushCollector,
    round: i64,
}

impl Resident {
    fn new(series: u64, mix: Mix) -> Self {
        let options = options();
        let out = FlushCollector::new(options.naming.clone(), 0, FLUSH_BATCH);
        Self { agg: CoreAggregator::new(options, SHARDS), batches: batches(series, mix), out, round: 0 }
    }

    /// Fills one window per series (untimed), then times the flush of that window.
    fn round(&mut self) -> (Duration, u64) {
        let now = BASE + self.round * R + 1_000_000_000;
        for b in &self.batches {
            self.agg.apply(b, now);
        }
        let flush_at = now + R;
        let before = self.agg.counters.values_flushed;
        let start = Instant::now();
        self.agg.begin_flush(R, flush_at);
        for shard in 0..SHARDS {
            self.agg.flush_shard(shard, R, flush_at, &mut self.out);
        }
        let flushed = self.out.take(true);
        let elapsed = start.elapsed();
        drop(flushed);
        self.round += 1;
        (elapsed, self.agg.counters.values_flushed - before)
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("flush");
    group.sample_size(10);
    for (label, series, mix) in [
        ("counters", 100_000u64, Mix { weights: [100, 0, 0] }),
        ("mix_60_20_20", 100_000, Mix::default()),
        ("counters", 1_000_000, Mix { weights: [100, 0, 0] }),
        ("mix_60_20_20", 1_000_000, Mix::default()),
    ] {
        let mut resident = Resident::new(series, mix);
        let (_, values) = resident.round();
        assert_eq!(resident.agg.series_count() as u64, series);
        eprintln!("flush/{label}/{series}: {values} values per round");
        group.throughput(Throughput::Elements(values));
        group.bench_function(BenchmarkId::new(label, series), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| resident.round().0).sum())
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
