//! The prefetch stages of `CoreAggregator::apply`: which cache lines of later values to start
//! loading, and how far ahead. Runs on the core that owns the aggregator, inside `apply`.

use crate::aggregation::MetricType;
use crate::batch::{DEFAULT_SPEC, Sample, SampleBatch, SampleValue};
use crate::shard_map::ShardMap;

/// How many values ahead `apply` prefetches a value's index slot, then its series record
/// (once the slot has arrived), then the series' id and window state (once the record has
/// arrived). Each stage's distance is a time: its cache line must arrive before `apply`
/// reaches the value, so the less time `apply` takes per value, the further ahead a stage
/// starts. bench/README.md has the measurements behind these distances.
pub(super) const PREFETCH_SLOTS_AHEAD: usize = 24;
pub(super) const PREFETCH_SERIES_AHEAD: usize = 12;
pub(super) const PREFETCH_IDS_AHEAD: usize = 6;
/// Timers only: where the value lands in the window's sketch (once the window state has arrived).
pub(super) const PREFETCH_SKETCH_AHEAD: usize = 2;
/// Entries of the ring that carries where each record prefetch found its series to the later
/// stages: a power of two, so that a sample's entry is its index masked.
pub(super) const FOUND_RING: usize = PREFETCH_SERIES_AHEAD.next_power_of_two();
/// In the prefetch ring: the record prefetch found no series (positions are below 2^24).
pub(super) const NOT_FOUND: u32 = u32::MAX;

/// The prefetch stages of `apply` at sample `i`: `ahead(k)` is sample `i + k`, if any;
/// `found` holds where the record stage found each of the last samples' series; `map_of` is
/// the map of a sample's shard.
#[inline(always)]
pub(super) fn prefetch_ahead<'b, 'm>(
    batch: &SampleBatch,
    found: &mut [u32; FOUND_RING],
    i: usize,
    ahead: impl Fn(usize) -> Option<&'b Sample>,
    map_of: impl Fn(&Sample) -> Option<&'m ShardMap>,
) {
    if let Some(s) = ahead(PREFETCH_SLOTS_AHEAD)
        && let Some(map) = map_of(s)
    {
        map.prefetch_slot(s.hash);
    }
    if let Some(s) = ahead(PREFETCH_SERIES_AHEAD) {
        found[(i + PREFETCH_SERIES_AHEAD) % FOUND_RING] =
            map_of(s).and_then(|map| map.prefetch_series(s.hash)).map_or(NOT_FOUND, |p| p as u32);
    }
    // The record found six values ago has arrived by now: start on its id and, for the
    // types whose window state is on the heap, on that state. Counters and gauges with the
    // default aggregations keep theirs inline, so for them the record is not read for it.
    if let Some(s) = ahead(PREFETCH_IDS_AHEAD)
        && let Some(map) = map_of(s)
        && let position = found[(i + PREFETCH_IDS_AHEAD) % FOUND_RING]
        && position != NOT_FOUND
    {
        let heap_state = s.spec != DEFAULT_SPEC || matches!(s.metric_type, MetricType::Timer | MetricType::Set);
        map.prefetch_record_targets(position as usize, heap_state);
    }
    if let Some(s) = ahead(PREFETCH_SKETCH_AHEAD)
        && s.metric_type == MetricType::Timer
        && let Some(map) = map_of(s)
        && let position = found[(i + PREFETCH_SKETCH_AHEAD) % FOUND_RING]
        && position != NOT_FOUND
    {
        let first = match s.value() {
            SampleValue::Number(v) => Some(v),
            SampleValue::Timer { start, len } => batch.timer_values(start, len).first().copied(),
            _ => None,
        };
        if let Some(v) = first {
            map.prefetch_add(position as usize, v);
        }
    }
}
