//! Timer quantiles: `QuantileSketch::add` (exact up to 128 values, then DDSketch-style buckets, 1% relative error) of latency-like
//! values spread over four decades, into one sketch that stays live (as a timer window's
//! does), a fresh sketch per 1024 values, and windows of 32 values each created, filled,
//! read and dropped (a window with few values); plus reading p99.
//! Throughput is in values.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use sheaf_shard_core::QuantileSketch;

const VALUES: usize = 1024;

/// Log-uniform over [0.1, 1000) ms.
fn values() -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    (0..VALUES).map(|_| 10f64.powf(rng.random_range(-1.0..3.0))).collect()
}

fn bench(c: &mut Criterion) {
    let values = values();
    let mut group = c.benchmark_group("quantile");
    group.throughput(Throughput::Elements(VALUES as u64));
    let mut live = QuantileSketch::new();
    group.bench_function("add/live_sketch", |b| {
        b.iter(|| {
            for &v in &values {
                live.add(black_box(v));
            }
        })
    });
    group.bench_function("add/fresh_sketch", |b| {
        b.iter_batched(
            QuantileSketch::new,
            |mut s| {
                for &v in &values {
                    s.add(black_box(v));
                }
                s
            },
            BatchSize::SmallInput,
        )
    });
    // A window that sees a few dozen values (1M series at a few M values/s), created, filled,
    // read at p99 and dropped, as a flush does.
    group.bench_function("add/windows_of_32_values", |b| {
        b.iter(|| {
            let mut acc = 0.0;
            for window in values.chunks(32) {
                let mut s = QuantileSketch::new();
                for &v in window {
                    s.add(black_box(v));
                }
                acc += s.quantile(0.99).unwrap_or(0.0);
            }
            acc
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("quantile_p99", |b| b.iter(|| black_box(&live).quantile(black_box(0.99))));
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2)).sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
