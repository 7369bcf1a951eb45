//! Steady-state ingest allocates nothing per value: parsing a StatsD datagram into series
//! ids, and applying a batch of values to series and windows that already exist, are
//! checked with a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use sheaf_shard_core::statsd::{self, MetricKind};
use sheaf_shard_core::*;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    f();
    ALLOCATIONS.load(Ordering::Relaxed) - before
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
