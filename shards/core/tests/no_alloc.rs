//! Steady-state ingest allocates nothing per value: parsing a StatsD datagram into series
//! ids, and applying a batch of values to series and windows that already exist, are
//! checked with a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use sheaf_shard_core::statsd::{self, MetricKind};
use sheaf_shard_core::*;

struct Counting;

std::thread_local! {
    /// Allocations made by this thread. Counted per thread, so that the test harness's own
    /// threads (printing another test's result, say) never add to a measurement.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: a thread being torn down has no slot left, and its allocations are not ours.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts (a thread-local
// `Cell<u64>` with a const initialiser, which itself never allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn datagram() -> Vec<u8> {
    let mut d = String::new();
    for i in 0..60 {
        d.push_str(&format!("svc.req.c{i}:1|c|#env:prod,az:b\n"));
    }
    for i in 0..20 {
        d.push_str(&format!("svc.mem.g{i}:{i}.5|g\nsvc.lat.t{i}:{i}|ms\n"));
    }
    d.into_bytes()
}

/// Decodes a datagram into a batch, as an ingest core does.
fn decode_into(buf: &[u8], id: &mut Vec<u8>, batch: &mut SampleBatch) {
    statsd::for_each_line(buf, 1024, |line| {
        let line = line.unwrap();
        id.clear();
        line.write_series_id(id).unwrap();
        let (t, v) = match line.kind {
            MetricKind::Counter => (MetricType::Counter, line.value),
            MetricKind::Gauge => (MetricType::Gauge, line.value),
            _ => (MetricType::Timer, line.value),
        };
        let shard = murmur3::shard_for(id, 64);
        batch.push(shard, series_hash(t, id), id, t, UNTIMED, SampleValue::Number(v), DEFAULT_SPEC);
    });
}

#[test]
fn steady_state_ingest_does_not_allocate_per_value() {
    let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap(), "1m:40d".parse().unwrap()]);
    let mut agg = CoreAggregator::new(options, 64);
    let buf = datagram();
    let mut id = Vec::with_capacity(256);
    let mut batch = SampleBatch::with_capacity(1024);
    let now = 1_700_000_000_000_000_000;
    // Warm up: series, windows, sketches and buffers come into being. A timer window keeps its
    // first 128 values in a list that doubles as it grows (4 allocations per window), and
    // builds its sketch at its 129th: allocations per window, not per value.
    for _ in 0..130 {
        decode_into(&buf, &mut id, &mut batch);
        agg.apply(&batch, now);
        batch.clear();
    }

    let values = 100 * 100;
    let n = allocations_during(|| {
        for round in 0..100 {
            decode_into(&buf, &mut id, &mut batch);
            agg.apply(&batch, now + round);
            batch.clear();
        }
    });

    assert_eq!(n, 0, "{n} allocations for {values} values");
}

/// Applies one value to each of 200 counters with `transforms` and flushes their window,
/// for `windows` windows from `first`; returns the allocations of the last `measured` ones.
fn flush_cycles(transforms: TransformChain, windows: i64, measured: i64) -> u64 {
    const R: i64 = 10_000_000_000;
    let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]);
    let mut agg = CoreAggregator::new(options.clone(), 1);
    let mut out = FlushCollector::new(options.naming, 0, 4096);
    let mut batch = SampleBatch::with_capacity(1024);
    let ids: Vec<Vec<u8>> = (0..200).map(|i| format!("cumulative.{i}").into_bytes()).collect();
    let first = 1_700_000_000_000_000_000;
    let mut total = 0;
    for w in 0..windows {
        let mut cycle = || {
            batch.clear();
            let spec = batch
                .add_spec(&[ElemSpec { transforms, ..ElemSpec::new(AggTypes::DEFAULT, "10s:2d".parse().unwrap()) }]);
            for id in &ids {
                let value = SampleValue::Number((w * 3) as f64);
                batch.push(0, series_hash(MetricType::Counter, id), id, MetricType::Counter, UNTIMED, value, spec);
            }
            let now = first + w * R + 1;
            agg.apply(&batch, now);
            agg.begin_flush(R, now + R);
            agg.flush_shard(0, R, now + R, &mut out);
            for mut spent in out.take(true) {
                spent.clear();
                out.add_spare(spent);
            }
        };
        if w >= windows - measured {
            total += allocations_during(cycle);
        } else {
            cycle();
        }
    }
    total
}

/// A transformation chain with state (Increase, Add) costs no allocation per flushed window
/// once its element exists: a flush with it allocates exactly what one without it does.
#[test]
fn steady_state_transformations_do_not_allocate_per_window() {
    use TransformType::{Add, Increase};
    let plain = flush_cycles(TransformChain::NONE, 20, 10);
    let chained = flush_cycles(TransformChain::new(&[Increase, Add]).unwrap(), 20, 10);
    assert_eq!(chained, plain, "{chained} allocations with transformations, {plain} without");
}

/// A batch of 1000 counters, each with its own rollup metadata (as an M3 coordinator sends a
/// rollup rule's pipeline with every metric), rolled up into 10 targets.
fn rollup_batch(batch: &mut SampleBatch, value: f64) {
    batch.clear();
    let policy = "10s:2d".parse().unwrap();
    for i in 0..1000 {
        let rollup = batch.add_rollup(
            format!("by.route;route=/r{}", i % 10).as_bytes(),
            AggTypes::DEFAULT,
            TransformChain::NONE,
        );
        let spec = batch.add_spec(&[ElemSpec { rollup, ..ElemSpec::new(AggTypes::DEFAULT, policy) }]);
        let id = format!("requests;host=h{i};route=/r{}", i % 10);
        let (shard, hash) = murmur3::ShardOf::new(64).shard_and_hash(MetricType::Counter, id.as_bytes());
        batch.push(shard, hash, id.as_bytes(), MetricType::Counter, UNTIMED, SampleValue::Number(value), spec);
    }
}

/// Values of series rolled up (their metadata naming a rollup) are applied without an
/// allocation once their series, windows and rollup targets exist.
#[test]
fn steady_state_rollup_sources_do_not_allocate_per_value() {
    let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]);
    let mut agg = CoreAggregator::new(options, 64);
    let now = 1_700_000_000_000_000_000;
    let mut batches: Vec<SampleBatch> = (0..10).map(|_| SampleBatch::with_capacity(1024)).collect();
    for (i, batch) in batches.iter_mut().enumerate() {
        rollup_batch(batch, i as f64);
    }
    for batch in &batches {
        agg.apply(batch, now);
    }
    let n = allocations_during(|| {
        for (round, batch) in batches.iter().enumerate() {
            agg.apply(batch, now + round as i64);
        }
    });
    assert_eq!(n, 0, "{n} allocations for 10,000 rolled-up values");
    assert_eq!(agg.rollup_target_count(), 10);
}

/// The allocations of the last `measured` of `windows` full rollup cycles of `series` counters
/// rolled up into `series / 100` targets, 8 shards: each value carries its own rollup metadata,
/// every shard is flushed, and what the flush forwards is applied to the targets (whose windows
/// the next cycle flushes), as one core does when it owns every shard.
fn rollup_cycles(series: usize, windows: i64, measured: i64) -> u64 {
    const R: i64 = 10_000_000_000;
    const SHARDS: u32 = 8;
    let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]);
    let mut agg = CoreAggregator::new(options.clone(), SHARDS);
    let mut out = FlushCollector::new(options.naming, 0, 4096);
    let shard_of = murmur3::ShardOf::new(SHARDS);
    let policy = "10s:2d".parse().unwrap();
    let sum = AggTypes::of(&[AggType::Sum]);
    let batches: Vec<SampleBatch> = (0..series)
        .collect::<Vec<_>>()
        .chunks(1024)
        .map(|chunk| {
            let mut batch = SampleBatch::with_capacity(1024);
            for &i in chunk {
                let route = i % (series / 100);
                let rollup =
                    batch.add_rollup(format!("by.route;route=/r{route}").as_bytes(), sum, TransformChain::NONE);
                let spec = batch.add_spec(&[ElemSpec { rollup, ..ElemSpec::new(sum, policy) }]);
                let id = format!("requests;host=h{i};route=/r{route}");
                let (shard, hash) = shard_of.shard_and_hash(MetricType::Counter, id.as_bytes());
                batch.push(shard, hash, id.as_bytes(), MetricType::Counter, UNTIMED, SampleValue::Number(1.0), spec);
            }
            batch
        })
        .collect();
    let mut routed = SampleBatch::default();
    let first = 1_700_000_000_000_000_000;
    let mut total = 0;
    for w in 0..windows {
        let mut cycle = || {
            let now = first + w * R + 1;
            for batch in &batches {
                agg.apply(batch, now);
            }
            agg.begin_flush(R, now + R);
            for shard in 0..SHARDS {
                agg.flush_shard(shard, R, now + R, &mut out);
                for mut spent in out.take(true) {
                    spent.clear();
                    out.add_spare(spent);
                }
                std::mem::swap(agg.rollup_outbox(), &mut routed);
                agg.apply(&routed, now + R);
                routed.clear();
            }
        };
        if w >= windows - measured {
            total += allocations_during(cycle);
        } else {
            cycle();
        }
    }
    assert!(agg.counters.forwarded_accepted > 0 && agg.counters.forwarded_duplicate == 0);
    assert_eq!(agg.rollup_target_count(), series / 100);
    total
}

/// The whole rollup path (source values with their own metadata, the flush gathering them per
/// target and window, the forwarded values applied and de-duplicated) allocates nothing per
/// value once its series, windows, targets and buffers exist: twice the values, the same
/// allocations. What is left is the flush collector's list of ready batches, taken once per
/// flushed shard whose rolled-up windows it emitted (at most one per shard and cycle).
#[test]
fn steady_state_rollup_cycles_do_not_allocate_per_value() {
    let (small, large) = (rollup_cycles(4_000, 6, 3), rollup_cycles(8_000, 6, 3));
    assert_eq!(small, large, "allocations in 3 cycles: {small} with 4,000 series, {large} with 8,000");
    assert!(large <= 3 * 8, "{large} allocations in 3 cycles of 8 shards");
}
