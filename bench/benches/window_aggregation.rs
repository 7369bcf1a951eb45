//! Window aggregation per metric type: `WindowAgg::add` / `add_member` of 1024 values into
//! open windows with each type's default aggregations (what `CoreAggregator::apply` does once
//! it has found the series' window; the map lookup is in `map_upsert`).
//!
//! * counter (`Sum`) and gauge (`Last`, untimed): one long-lived window.
//! * timer (count, sum, sum of squares, min, max, last and the quantile sketch): the sketch
//!   keeps a window's first 128 values exactly (8 inline) and builds its buckets at the 129th.
//!   Cases: windows that receive 1, 8, 64 or 1024 values each (fresh windows, opened outside
//!   the timing, so 64 includes the exact list's growth and 1024 the switch to buckets), and
//!   one long-lived window already on buckets.
//! * set (`Distinct`): 1024 distinct member hashes into a fresh window (the member table
//!   grows), and the same 1024 members again into a window that already holds them.
//!
//! Throughput is in values.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use sheaf_shard_core::window::{WindowAgg, WindowKind};
use sheaf_shard_core::{AggType, MetricType};

const VALUES: usize = 1024;
const NOW: i64 = 1_700_000_000_000_000_000;

/// A window as `Elem::window_mut` opens it for an untimed value of `t`.
fn window(t: MetricType) -> WindowAgg {
    WindowAgg::new(t, t.default_aggregations(), false)
}

/// Log-uniform over [0.1, 1000) ms, as in the `quantile` bench.
fn latencies(rng: &mut impl Rng) -> Vec<f64> {
    (0..VALUES).map(|_| 10f64.powf(rng.random_range(-1.0..3.0))).collect()
}

/// Adds `values` to `w`, with arrival times 1 ns apart (what an untimed value gets).
#[inline]
fn add_all(w: &mut WindowAgg, values: &[f64]) {
    for (i, &v) in values.iter().enumerate() {
        w.add(black_box(v), NOW + i as i64);
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let latencies = latencies(&mut rng);
    let increments: Vec<f64> = (0..VALUES).map(|_| f64::from(rng.random_range(1u32..10))).collect();
    let gauges: Vec<f64> = (0..VALUES).map(|_| rng.random_range(0.0..1e6)).collect();
    let members: Vec<u64> = (0..VALUES).map(|_| rng.random()).collect();

    let mut group = c.benchmark_group("window_aggregation");
    group.throughput(Throughput::Elements(VALUES as u64));

    let mut counter = window(MetricType::Counter);
    assert_eq!(counter.kind(), WindowKind::Sum);
    group.bench_function("counter_sum/live_window", |b| b.iter(|| add_all(&mut counter, &increments)));
    black_box(counter.value_of(AggType::Sum));

    let mut gauge = window(MetricType::Gauge);
    assert_eq!(gauge.kind(), WindowKind::Last);
    group.bench_function("gauge_last/live_window", |b| b.iter(|| add_all(&mut gauge, &gauges)));
    black_box(gauge.value_of(AggType::Last));

    // Fresh timer windows of `per_window` values each, 1024 values in all per iteration.
    for per_window in [1usize, 8, 64, VALUES] {
        let windows = VALUES / per_window;
        group.bench_function(BenchmarkId::new("timer_full/values_per_window", per_window), |b| {
            b.iter_batched_ref(
                || (0..windows).map(|_| window(MetricType::Timer)).collect::<Vec<_>>(),
                |ws| {
                    for (w, chunk) in ws.iter_mut().zip(latencies.chunks(per_window)) {
                        add_all(w, chunk);
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    let mut timer = window(MetricType::Timer);
    assert_eq!(timer.kind(), WindowKind::Full { sketch: true });
    add_all(&mut timer, &latencies);
    group.bench_function("timer_full/live_window", |b| b.iter(|| add_all(&mut timer, &latencies)));
    black_box(timer.value_of(AggType::P99));

    let add_members = |w: &mut WindowAgg| {
        for (i, &m) in members.iter().enumerate() {
            w.add_member(black_box(m), NOW + i as i64);
        }
    };
    group.bench_function("set_distinct/new_members_fresh_window", |b| {
        b.iter_batched_ref(|| window(MetricType::Set), add_members, BatchSize::SmallInput)
    });
    let mut set = window(MetricType::Set);
    add_members(&mut set);
    assert_eq!(set.value_of(AggType::Count), VALUES as f64);
    group.bench_function("set_distinct/repeated_members_live_window", |b| b.iter(|| add_members(&mut set)));
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2)).sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
