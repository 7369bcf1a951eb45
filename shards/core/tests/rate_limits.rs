//! The rate limits (values per series per second, new series per shard per second with a
//! warm-up) through `CoreAggregator`'s public interface, against a model of M3's limiter:
//! per whole second of arrival time, a value (a timer batch: all its values) is accepted when
//! the values accepted in that second, itself included, stay within the limit.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sheaf_shard_core::*;

const SECOND: i64 = 1_000_000_000;
const BASE: i64 = 1_700_000_000 * SECOND;
const SHARDS: u32 = 2;

/// What the model keeps: per series the second and count accepted in it; per shard the first
/// series' creation time and the second and count of series created in it.
#[derive(Default)]
struct Model {
    series: BTreeMap<u8, (i64, u64)>,
    shards: BTreeMap<u32, (i64, i64, u32)>,
    accepted: BTreeMap<u8, u64>,
    value_refused: u64,
    series_refused: u64,
}

impl Model {
    fn write(&mut self, limits: RateLimitSettings, series: u8, now: i64, values: u64) {
        let (shard, second) = (u32::from(series) % SHARDS, now.div_euclid(SECOND));
        if !self.series.contains_key(&series) {
            let limit = limits.new_series_per_shard_per_second;
            let state = self.shards.get(&shard).copied();
            let warming = state.is_none_or(|(first, ..)| now - first < limits.new_series_warmup);
            let created_now = state.filter(|s| s.1 == second).map_or(0, |s| s.2);
            if limit != 0 && !warming && created_now >= limit {
                self.series_refused += 1;
                return;
            }
            let first = state.map_or(now, |s| s.0);
            self.shards.insert(shard, (first, second, created_now + 1));
            self.series.insert(series, (i64::MIN, 0));
        }
        let (last, count) = self.series[&series];
        let before = if last == second { count } else { 0 };
        let limit = u64::from(limits.values_per_series_per_second);
        if limit != 0 && before + values > limit {
            self.value_refused += values;
            return;
        }
        self.series.insert(series, (second, before + values));
        *self.accepted.entry(series).or_default() += values;
    }
}

fn write(agg: &mut CoreAggregator, series: u8, now: i64, values: u64) {
    let id = format!("s{series}");
    let mut batch = SampleBatch::default();
    let hash = series_hash(MetricType::Timer, id.as_bytes());
    let timer: Vec<f64> = (0..values).map(|_| 1.0).collect();
    batch.push_timer(u32::from(series) % SHARDS, hash, id.as_bytes(), UNTIMED, &timer, DEFAULT_SPEC);
    agg.apply(&batch, now);
}

/// Count of every flushed timer series (`<id>.count`), by series number.
fn flushed_counts(agg: &mut CoreAggregator, now: i64) -> BTreeMap<u8, u64> {
    let mut out = FlushCollector::new(agg.options().naming.clone(), 0, 256);
    for r in agg.resolutions().collect::<Vec<_>>() {
        agg.begin_flush(r, now);
        for shard in 0..SHARDS {
            agg.flush_shard(shard, r, now, &mut out);
        }
    }
    let mut counts = BTreeMap::new();
    for batch in out.take(true) {
        for v in batch.iter() {
            if let Some(series) = v.id_string().strip_prefix('s').and_then(|s| s.strip_suffix(".count")) {
                *counts.entry(series.parse().unwrap()).or_default() += v.value as u64;
            }
        }
    }
    counts
}

fn limits() -> impl Strategy<Value = RateLimitSettings> {
    (0u32..6, 0u32..3, 0i64..3).prop_map(|(values, series, warmup)| RateLimitSettings {
        values_per_series_per_second: values,
        new_series_per_shard_per_second: series,
        new_series_warmup: warmup * SECOND,
    })
}

proptest! {
    /// Any writes (series, time steps within and across seconds, timer batches of 1 to 4
    /// values), with the limits changed part way: every value is accepted or refused as the
    /// model says, the counters say how many of each, and the flushed windows hold exactly the
    /// accepted values.
    #[test]
    fn limits_accept_and_refuse_exactly_as_the_model(
        writes in prop::collection::vec((0u8..8, 0i64..700, 1u64..5), 1..200),
        first in limits(),
        second in limits(),
        switch_at in 0usize..200,
    ) {
        let mut options = AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]);
        options.rate_limits = first;
        let mut agg = CoreAggregator::new(options, SHARDS);
        let (mut model, mut now, mut limits) = (Model::default(), BASE, first);
        for (i, &(series, step_ms, values)) in writes.iter().enumerate() {
            if i == switch_at {
                agg.set_rate_limits(second);
                // A per-series limit turned on (or off) starts counting afresh.
                if limits.values_per_series_per_second == 0 || second.values_per_series_per_second == 0 {
                    model.series.values_mut().for_each(|s| s.1 = 0);
                }
                limits = second;
            }
            now += step_ms * 1_000_000;
            write(&mut agg, series, now, values);
            model.write(limits, series, now, values);
            prop_assert_eq!(agg.counters.value_rate_limited, model.value_refused);
            prop_assert_eq!(agg.counters.new_series_rate_limited, model.series_refused);
        }
        prop_assert_eq!(agg.options().rate_limits, limits);
        let accepted: u64 = model.accepted.values().sum();
        prop_assert_eq!(agg.counters.values_applied, accepted);
        prop_assert_eq!(flushed_counts(&mut agg, now + 3600 * SECOND), model.accepted);
    }
}

/// A burst of 1000 values on one series within one second: the first 100 are accepted, the
/// rest refused; another series in the same shard is not affected; the next second takes 100
/// more.
#[test]
fn a_burst_on_one_series_is_cut_at_the_limit_and_others_are_not() {
    let mut options = AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]);
    options.rate_limits.values_per_series_per_second = 100;
    let mut agg = CoreAggregator::new(options, SHARDS);
    for i in 0..1000 {
        write(&mut agg, 0, BASE + i * 100_000, 1);
    }
    for i in 0..50 {
        write(&mut agg, 2, BASE + i * 100_000, 1);
    }
    write(&mut agg, 0, BASE + SECOND, 1);
    assert_eq!((agg.counters.values_applied, agg.counters.value_rate_limited), (151, 900));
    assert_eq!(flushed_counts(&mut agg, BASE + 3600 * SECOND), BTreeMap::from([(0, 101), (2, 50)]));
}
