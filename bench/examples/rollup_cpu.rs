//! The cycles of `benches/rollup.rs` (same series, same cycle), timed in this thread's CPU
//! time rather than wall time, the rows interleaved cycle by cycle in one process: on a
//! machine shared with other work, the CPU a cycle costs is steadier than its wall time.
//! Prints, per row, the minimum and median CPU milliseconds per cycle and their ratio to the
//! plain row.
//!
//! `cargo run --release -p sheaf-bench --example rollup_cpu [cycles]` (default 15);
//! `SHEAF_BENCH_ROLLUP_SERIES` as for the bench.

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

fn options() -> AggregatorOptions {
    AggregatorOptions::with_policies(vec!["10s:2d".parse().expect("policy")])
}

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

struct Row {
    name: &'static str,
    per_shard: bool,
    batches: Vec<SampleBatch>,
    agg: CoreAggregator,
    out: FlushCollector,
    routed: SampleBatch,
    window: i64,
    cpu_ms: Vec<f64>,
}

impl Row {
    fn new(name: &'static str, series: usize, rollup: bool, per_shard: bool) -> Self {
        let (agg, out) = (CoreAggregator::new(options(), SHARDS), FlushCollector::new(options().naming, 0, 4096));
        let batches = batches(series, rollup);
        Self { name, per_shard, batches, agg, out, routed: SampleBatch::default(), window: 0, cpu_ms: Vec::new() }
    }

    fn cycle(&mut self) {
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

    fn route(&mut self, now: i64) {
        std::mem::swap(self.agg.rollup_outbox(), &mut self.routed);
        if !self.routed.is_empty() {
            self.agg.apply(&self.routed, now);
            self.routed.clear();
        }
    }
}

fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn main() {
    let cycles: usize = std::env::args().nth(1).and_then(|c| c.parse().ok()).unwrap_or(15);
    let series = std::env::var("SHEAF_BENCH_ROLLUP_SERIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let mut rows = vec![
        Row::new("plain_1m_series", series, false, false),
        Row::new("rolled_up_into_10k", series, true, false),
        Row::new("rolled_up_into_10k_routed_per_shard", series, true, true),
    ];
    for _ in 0..2 {
        rows.iter_mut().for_each(Row::cycle);
    }
    for _ in 0..cycles {
        for row in &mut rows {
            let start = thread_cpu_ms();
            row.cycle();
            row.cpu_ms.push(thread_cpu_ms() - start);
        }
    }
    let stats = |row: &Row| {
        let mut v = row.cpu_ms.clone();
        v.sort_by(f64::total_cmp);
        (v[0], v[v.len() / 2])
    };
    let (plain_min, plain_median) = stats(&rows[0]);
    for row in &rows {
        let (min, median) = stats(row);
        println!(
            "{:<40} CPU ms/cycle min {min:7.1} median {median:7.1}   ÷ plain: min {:.2}× median {:.2}×",
            row.name,
            min / plain_min,
            median / plain_median
        );
    }
}
