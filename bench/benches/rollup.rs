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

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sheaf_bench::rollup_cycle::{RollupCycle, series};

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
        let mut row = RollupCycle::new(series, rollup, per_shard);
        // Warm up: series, windows and targets exist before the timing.
        for _ in 0..2 {
            row.run();
        }
        group.bench_function(name, |b| b.iter(|| row.run()));
        if rollup {
            assert!(row.agg.counters.forwarded_accepted > 0 && row.agg.counters.forwarded_duplicate == 0);
        }
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(20))
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
