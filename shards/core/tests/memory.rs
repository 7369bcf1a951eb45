//! Bytes held per series, measured by a global allocator that tracks live heap bytes:
//! counters, gauges, timers, and counters with a second policy. Prints the figures (run with
//! `--nocapture`) and bounds the counter case, the one the targets name; and checks that
//! every window state is freed exactly once.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use sheaf_shard_core::*;

struct Tracking;

thread_local! {
    /// Live bytes allocated by this thread (less what it freed): the test harness's other
    /// threads allocate too, and each test does all its work on its own thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn live() -> isize {
    LIVE.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.with(|l| l.set(l.get() + layout.size() as isize));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.with(|l| l.set(l.get() - layout.size() as isize));
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
    bytes_per_series_with(metric_type, policies, RateLimitSettings::default())
}

fn bytes_per_series_with(metric_type: MetricType, policies: &[&str], rate_limits: RateLimitSettings) -> f64 {
    let mut options = AggregatorOptions::with_policies(policies.iter().map(|p| p.parse().unwrap()).collect());
    options.rate_limits = rate_limits;
    let now = 1_700_000_000_000_000_000;
    let mut batch = SampleBatch::with_capacity(4096);
    let before = live();
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
    let after = live();
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
    // A 64-byte record, a 20-byte id and a 4-byte index slot; the index's power-of-two sizing
    // and the id arena's growth step leave some slack on top.
    assert!(counters < 130.0, "{counters} bytes per counter series");
}

/// The rate limits cost no memory per series while off, and a 4-byte count (plus an eighth
/// of growth slack) per series with the per-series limit on.
#[test]
fn heap_bytes_per_series_of_the_rate_limits() {
    let off = bytes_per_series(MetricType::Counter, &["10s:2d"]);
    let limited = |values, series| RateLimitSettings {
        values_per_series_per_second: values,
        new_series_per_shard_per_second: series,
        new_series_warmup: 0,
    };
    let new_series_only = bytes_per_series_with(MetricType::Counter, &["10s:2d"], limited(0, 1_000_000));
    let per_series = bytes_per_series_with(MetricType::Counter, &["10s:2d"], limited(1_000, 0));
    eprintln!(
        "heap bytes per counter series: limits off {off:.2}, new-series limit on {new_series_only:.2}, \
         per-series limit on {per_series:.2} (+{:.2})",
        per_series - off
    );
    assert_eq!(new_series_only, off);
    assert!((4.0..=5.0).contains(&(per_series - off)), "{} bytes per series for the limit", per_series - off);
}

/// Every window state is freed exactly once: timers and sets (whose states own heap memory)
/// in timed windows that spill past the two inline ones, part of them flushed, the rest
/// dropped with the aggregator, leave no live byte behind.
#[test]
fn window_states_are_all_freed() {
    let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]);
    let now: i64 = 1_700_000_000_000_000_000;
    let before = live();
    let mut agg = CoreAggregator::new(options.clone(), 4);
    let mut out = FlushCollector::new(options.naming.clone(), 0, 64);
    let mut batch = SampleBatch::with_capacity(1024);
    for i in 0..200 {
        let (metric_type, id) = match i % 4 {
            0 => (MetricType::Timer, format!("t{i}")),
            1 => (MetricType::Set, format!("s{i}")),
            2 => (MetricType::Gauge, format!("g{i}")),
            _ => (MetricType::Counter, format!("c{i}")),
        };
        let shard = murmur3::shard_for(id.as_bytes(), 4);
        let hash = series_hash(metric_type, id.as_bytes());
        // Five 10 s windows in the last 50 s, and one untimed value.
        for back in 0..5i64 {
            let value = if metric_type == MetricType::Set {
                SampleValue::Member(back as u64)
            } else {
                SampleValue::Number(back as f64)
            };
            batch.push(shard, hash, id.as_bytes(), metric_type, now - back * 10_000_000_000, value, DEFAULT_SPEC);
        }
        batch.push(shard, hash, id.as_bytes(), metric_type, UNTIMED, SampleValue::Number(1.0), DEFAULT_SPEC);
    }
    agg.apply(&batch, now);
    assert_eq!(agg.counters.values_applied, 1200);
    // The two oldest timed windows are due once the past buffer has passed them.
    let at = now + 60_000_000_000 - 30_000_000_000;
    agg.begin_flush(10_000_000_000, at);
    for shard in 0..4 {
        agg.flush_shard(shard, 10_000_000_000, at, &mut out);
    }
    assert!(agg.counters.windows_flushed > 0 && agg.windows_held() > 0);
    drop((batch, out.take(true), out, agg));
    assert_eq!(live() - before, 0, "bytes left behind");
}

/// One step of `window_states_freed_through_any_sequence`.
#[derive(Debug, Clone)]
enum Step {
    /// `values` values for series `series` (its type from `series % 4`), `back` windows in the
    /// past (timed), or untimed when `back` is 0.
    Write { series: u8, back: u8, values: u8 },
    /// A flush round `advance` windows after the start.
    Flush { advance: u8 },
    /// Windows of a shard up to `advance` windows after the start dropped unflushed.
    Discard { shard: u8, advance: u8 },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        6 => (0u8..24, 0u8..6, 1u8..20).prop_map(|(series, back, values)| Step::Write { series, back, values }),
        1 => (0u8..12).prop_map(|advance| Step::Flush { advance }),
        1 => (0u8..4, 0u8..12).prop_map(|(shard, advance)| Step::Discard { shard, advance }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(64))]
    /// Whatever the order of writes (timed and untimed, into up to 6 windows per series, timers
    /// past the switch to a sketch), flushes and discards, dropping the aggregator afterwards
    /// leaves no live byte: no window state is leaked (and a double free would abort).
    #[test]
    fn window_states_freed_through_any_sequence(steps in proptest::collection::vec(step(), 1..80)) {
        const R: i64 = 10_000_000_000;
        let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]);
        let start: i64 = 1_700_000_000_000_000_000;
        let before = live();
        let mut agg = CoreAggregator::new(options.clone(), 4);
        let mut out = FlushCollector::new(options.naming.clone(), 0, 16);
        let mut batch = SampleBatch::with_capacity(64);
        for step in &steps {
            match *step {
                Step::Write { series, back, values } => {
                    let metric_type = [MetricType::Timer, MetricType::Set, MetricType::Gauge, MetricType::Counter][usize::from(series % 4)];
                    let id = format!("series.{series}");
                    let shard = murmur3::shard_for(id.as_bytes(), 4);
                    let hash = series_hash(metric_type, id.as_bytes());
                    let time = if back == 0 { UNTIMED } else { start - i64::from(back) * R };
                    for v in 0..values {
                        let value = if metric_type == MetricType::Set { SampleValue::Member(u64::from(v)) } else { SampleValue::Number(f64::from(v)) };
                        batch.push(shard, hash, id.as_bytes(), metric_type, time, value, DEFAULT_SPEC);
                    }
                    agg.apply(&batch, start);
                    batch.clear();
                }
                Step::Flush { advance } => {
                    let at = start + i64::from(advance) * R;
                    agg.begin_flush(R, at);
                    for shard in 0..4 {
                        agg.flush_shard(shard, R, at, &mut out);
                    }
                    drop(out.take(true));
                }
                Step::Discard { shard, advance } => {
                    let at = start + i64::from(advance) * R;
                    agg.discard_all_before(u32::from(shard), at, at);
                }
            }
        }
        drop((batch, out.take(true), out, agg));
        proptest::prop_assert_eq!(live() - before, 0, "bytes left behind");
    }
}
