//! The rollup workload of `benches/rollup.rs` and `examples/rollup_cpu.rs`: 1M source series
//! (`requests;host=…;route=…`, one counter value each per window) rolled up by route into 10k
//! targets with Sum, or the same series aggregated plainly, and one window's full cycle on one
//! core. Each rolled-up value carries its own rollup metadata, as an M3 coordinator sends it;
//! the plain ones share one spec per batch.

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

/// Source series: `SHEAF_BENCH_ROLLUP_SERIES`, default 1,000,000.
pub fn series() -> usize {
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

/// One row of the comparison: its batches, its core, and the window its next cycle fills.
pub struct RollupCycle {
    batches: Vec<SampleBatch>,
    pub agg: CoreAggregator,
    out: FlushCollector,
    routed: SampleBatch,
    per_shard: bool,
    window: i64,
}

impl RollupCycle {
    /// `rollup`: the values roll up by route; `per_shard`: what the flushes forward is routed
    /// after each shard's flush (one forwarded sample per source shard and target) instead of
    /// once per round, as the flush task does.
    pub fn new(series: usize, rollup: bool, per_shard: bool) -> Self {
        Self {
            batches: batches(series, rollup),
            agg: CoreAggregator::new(options(), SHARDS),
            out: FlushCollector::new(options().naming, 0, 4096),
            routed: SampleBatch::default(),
            per_shard,
            window: 0,
        }
    }

    /// One window's cycle: apply, flush every shard, route and apply what rollups forward.
    pub fn run(&mut self) {
        let now = BASE + self.window * R + 1;
        self.window += 1;
        for b in &self.batches {
            self.agg.apply(b, now);
        }
        let horizon = now + R;
        self.agg.begin_flush(R, horizon);
        for shard in 0..SHARDS {
            self.agg.flush_shard(shard, R, horizon, &mut self.out);
            for mut spent in self.out.take(true) {
                spent.clear();
                self.out.add_spare(spent);
            }
            if self.per_shard {
                self.route(horizon);
            }
        }
        self.route(horizon);
    }

    /// Applies what the flushes forwarded (every target is on this core).
    fn route(&mut self, now: i64) {
        std::mem::swap(self.agg.rollup_outbox(), &mut self.routed);
        if !self.routed.is_empty() {
            self.agg.apply(&self.routed, now);
            self.routed.clear();
        }
    }
}
