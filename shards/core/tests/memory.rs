//! Bytes held per series, measured by a global allocator that tracks live heap bytes:
//! counters, gauges, timers, and counters with a second policy. Prints the figures (run with
//! `--nocapture`) and bounds the counter case, the one the targets name.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use sheaf_shard_core::*;

struct Tracking;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

const SERIES: usize = 200_000;

/// Live bytes per series after `SERIES` series of `metric_type` got one value each, ids of
/// ~20 bytes, with `policies` default policies.
fn bytes_per_series(metric_type: MetricType, policies: &[&str]) -> f64 {
    let options = AggregatorOptions::with_policies(policies.iter().map(|p| p.parse().unwrap()).collect());
    let now = 1_700_000_000_000_000_000;
    let mut batch = SampleBatch::with_capacity(4096);
    let before = LIVE.load(Ordering::Relaxed);
    let mut agg = CoreAggregator::new(options, 64);
    for chunk in (0..SERIES).collect::<Vec<_>>().chunks(4096) {
        for i in chunk {
            let id = format!("svc.requests.{i:08}");
            let shard = murmur3::shard_for(id.as_bytes(), 64);
            let hash = series_hash(metric_type, id.as_bytes());
            batch.push(shard, hash, id.as_bytes(), metric_type, UNTIMED, SampleValue::Number(1.0), DEFAULT_SPEC);
        }
        agg.apply(&batch, now);
        batch.clear();
    }
    drop(batch);
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(agg.series_count(), SERIES);
    let per = (after - before) as f64 / SERIES as f64;
    drop(agg);
    per
}

#[test]
fn heap_bytes_per_series() {
    let counters = bytes_per_series(MetricType::Counter, &["10s:2d"]);
    let gauges = bytes_per_series(MetricType::Gauge, &["10s:2d"]);
    let timers = bytes_per_series(MetricType::Timer, &["10s:2d"]);
    let counters_two_policies = bytes_per_series(MetricType::Counter, &["10s:2d", "1m:40d"]);
    eprintln!(
        "heap bytes per series (20-byte ids, {SERIES} series): counter {counters:.0}, gauge {gauges:.0}, \
         timer {timers:.0}, counter with 2 policies {counters_two_policies:.0}"
    );
    // Vec and table growth leave between 0% and 100% slack, so allow for it.
    assert!(counters < 200.0, "{counters} bytes per counter series");
}
