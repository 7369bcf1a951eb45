//! Rollup throughput: 1M source series (`requests;host=…;route=…`, one counter value each per
//! window) rolled up into 10k targets (one per route) with Sum, against the same series
//! aggregated plainly. One iteration is one window's full cycle on one core: apply the 1M
//! values, flush every shard; for the rollups also route what the flushes forwarded (gathered
//! per target and window over the round's shards, as the flush task routes it once per round)
//! and apply it to the targets, whose windows the next cycle flushes. A third row routes after
//! each shard's flush instead (one forwarded sample per source shard and target). The two throughputs compare the CPU per value of a rolled-up series with that of
//! a plain one (target: at most 1.5×). Each rolled-up value carries its own rollup metadata,
//! as an M3 coordinator sends it; the plain ones share one spec per batch.
//!
//! `SHEAF_BENCH_ROLLUP_SERIES` sets the number of source series (default 1,000,000; a smaller
//! number for a smoke run, e.g. `cargo test --bench rollup` with 20000). Throughput is in
//! source values.

use std::cell::Cell;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sheaf_shard_core::murmur3::ShardOf;
use sheaf_shard_core::{
    AggType, AggTypes, AggregatorOptions, CoreAggregator, ElemSpec, FlushCollector, MetricType, SampleBatch,
    SampleValue, TransformChain, UNTIMED,
};

const BATCH: usize = 1024;
const SHARDS: u32 = 64;
const TARGETS: usize = 10_000;
const R: i64 = 10_000_000_000;
const BASE: i64 = 1_700_000_000_000_000_000;

fn series() -> usize {
    std::env::var("SHEAF_BENCH_ROLLUP_SERIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

fn options() -> AggregatorOptions {
    AggregatorOptions::with_policies(vec!["10s:2d".parse().expect("policy")])
}

/// The source values in batches of `BATCH`, rolled up by route when `rollup`.
fn batches(series: usize, rollup: bool) -> Vec<SampleBatch> {
    let shard_of = ShardOf::new(SHARDS);
    let sum = AggTypes::of(&[AggType::Sum]);
    let elem = ElemSpec::new(sum, "10s:2d".parse().expect("policy"));
    let mut out = Vec::new();
    for chunk in (0..series).collect::<Vec<_>>().chunks(BATCH) {
        let mut batch = SampleBatch::with_capacity(BATCH);
        let plain_spec = batch.add_spec(&[elem]);
        for &i in chunk {
            let route = i % TARGETS;
            let id = format!("requests;host=h{i};route=/r{route}");
            let spec = if rollup {
                let target =
                    batch.add_rollup(format!("requests;route=/r{route}").as_bytes(), sum, TransformChain::NONE);
                batch.add_spec(&[ElemSpec { rollup: target, ..elem }])
            } else {
                plain_spec
            };
            let (shard, hash) = shard_of.shard_and_hash(MetricType::Counter, id.as_bytes());
            batch.push(shard, hash, id.as_bytes(), MetricType::Counter, UNTIMED, SampleValue::Number(1.0), spec);
        }
        out.push(batch);
    }
    out
}

/// One window's cycle: apply, flush every shard, routing and applying what rollups forward
/// once the round's shards are flushed (as the flush task does), or after each shard's flush
/// when `per_shard` (one forwarded sample per source shard and target).
fn cycle(
    agg: &mut CoreAggregator,
    batches: &[SampleBatch],
    window: i64,
    out: &mut FlushCollector,
    routed: &mut SampleBatch,
    per_shard: bool,
) {
    let now = BASE + window * R + 1;
    for b in batches {
        agg.apply(b, now);
    }
    let horizon = now + R;
    agg.begin_flush(R, horizon);
    for shard in 0..SHARDS {
        agg.flush_shard(shard, R, horizon, out);
        for mut spent in out.take(true) {
            spent.clear();
            out.add_spare(spent);
        }
        if per_shard {
            route(agg, routed, horizon);
        }
    }
    route(agg, routed, horizon);
}

/// Applies what the flushes forwarded (every target is on this core).
fn route(agg: &mut CoreAggregator, routed: &mut SampleBatch, now: i64) {
    std::mem::swap(agg.rollup_outbox(), routed);
    if !routed.is_empty() {
        agg.apply(routed, now);
        routed.clear();
    }
}

fn bench(c: &mut Criterion) {
    let series = series();
    let mut group = c.benchmark_group("rollup");
    group.throughput(Throughput::Elements(series as u64)).sample_size(10);
    let rows = [
        ("plain_1m_series", false, false),
        ("rolled_up_into_10k", true, false),
        ("rolled_up_into_10k_routed_per_shard", true, true),
    ];
    for (name, rollup, per_shard) in rows {
        let batches = batches(series, rollup);
        let mut agg = CoreAggregator::new(options(), SHARDS);
        let mut out = FlushCollector::new(options().naming, 0, 4096);
        let mut routed = SampleBatch::default();
        let window = Cell::new(0);
        // Warm up: series, windows and targets exist before the timing.
        for _ in 0..2 {
            cycle(&mut agg, &batches, window.get(), &mut out, &mut routed, per_shard);
            window.set(window.get() + 1);
        }
        group.bench_function(name, |b| {
            b.iter(|| {
                cycle(&mut agg, &batches, window.get(), &mut out, &mut routed, per_shard);
                window.set(window.get() + 1);
            })
        });
        if rollup {
            assert!(agg.counters.forwarded_accepted > 0 && agg.counters.forwarded_duplicate == 0);
        }
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(20))
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
