//! Transformations through `CoreAggregator`'s public interface: an element whose spec has a
//! transformation chain emits each flushed value through it, with the state kept per element
//! from one window to the next.

use std::collections::BTreeMap;

use sheaf_shard_core::*;

const R: i64 = 10_000_000_000;
const BASE: i64 = 1_700_000_000_000_000_000;

fn options() -> AggregatorOptions {
    AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()])
}

/// Writes one gauge value per window (`values[i]` in window i) for each id, with `chain` and
/// aggregation Last, flushing after each window; returns what came out per (id, time).
fn run(chain: &[TransformType], series: &[(&str, &[f64])]) -> BTreeMap<(String, i64), f64> {
    let mut agg = CoreAggregator::new(options(), 1);
    let mut out = FlushCollector::new(options().naming, 0, 64);
    let mut got = BTreeMap::new();
    let windows = series.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    for w in 0..windows as i64 {
        let now = BASE + w * R + 1;
        let mut batch = SampleBatch::default();
        let mut spec = ElemSpec::new(AggTypes::of(&[AggType::Last]), "10s:2d".parse().unwrap());
        spec.transforms = TransformChain::new(chain).unwrap();
        let spec = batch.add_spec(&[spec]);
        for (i, (id, values)) in series.iter().enumerate() {
            if let Some(v) = values.get(w as usize) {
                batch.push(0, i as u64, id.as_bytes(), MetricType::Gauge, UNTIMED, SampleValue::Number(*v), spec);
            }
        }
        agg.apply(&batch, now);
        let later = now + R;
        agg.begin_flush(R, later);
        agg.flush_shard(0, R, later, &mut out);
        for batch in out.take(true) {
            for v in batch.iter() {
                let key = (v.id_string(), (v.time_nanos - BASE) / 1_000_000_000);
                assert!(got.insert(key.clone(), v.value).is_none(), "emitted twice: {key:?}");
            }
        }
    }
    got
}

fn expect(points: &[(&str, i64, f64)]) -> BTreeMap<(String, i64), f64> {
    points.iter().map(|(id, t, v)| ((id.to_string(), *t), *v)).collect()
}

#[test]
fn increase_of_a_cumulative_counter_with_a_reset() {
    let got = run(&[TransformType::Increase], &[("c", &[100.0, 150.0, 20.0, 120.0])]);
    assert_eq!(got, expect(&[("c", 20, 50.0), ("c", 30, 20.0), ("c", 40, 100.0)]));
}

#[test]
fn per_second_of_a_cumulative_counter_with_a_reset() {
    let got = run(&[TransformType::PerSecond], &[("c", &[100.0, 150.0, 20.0, 120.0])]);
    assert_eq!(got, expect(&[("c", 20, 5.0), ("c", 40, 10.0)]));
}

#[test]
fn each_series_keeps_its_own_state() {
    let got = run(&[TransformType::Add], &[("a", &[1.0, 2.0, 3.0]), ("b", &[10.0, 20.0])]);
    assert_eq!(got, expect(&[("a", 10, 1.0), ("a", 20, 3.0), ("a", 30, 6.0), ("b", 10, 10.0), ("b", 20, 30.0)]));
}

#[test]
fn reset_and_absolute_need_no_state() {
    let got = run(&[TransformType::Absolute, TransformType::Reset], &[("g", &[-4.0])]);
    assert_eq!(got, expect(&[("g", 10, 4.0), ("g", 15, 0.0)]));
}

#[test]
fn the_same_aggregation_with_and_without_a_chain_are_two_elements() {
    let mut agg = CoreAggregator::new(options(), 1);
    let mut out = FlushCollector::new(options().naming, 0, 64);
    let policy = "10s:2d".parse().unwrap();
    let plain = ElemSpec::new(AggTypes::of(&[AggType::Last]), policy);
    let abs = ElemSpec { transforms: TransformChain::new(&[TransformType::Absolute]).unwrap(), ..plain };
    let mut batch = SampleBatch::default();
    let spec = batch.add_spec(&[plain, abs]);
    batch.push(0, 1, b"g", MetricType::Gauge, UNTIMED, SampleValue::Number(-3.0), spec);
    agg.apply(&batch, BASE + 1);
    agg.begin_flush(R, BASE + 2 * R);
    agg.flush_shard(0, R, BASE + 2 * R, &mut out);
    let mut values: Vec<f64> =
        out.take(true).iter().flat_map(|b| b.iter().map(|v| v.value).collect::<Vec<_>>()).collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, vec![-3.0, 3.0]);
}

/// A series that expires takes its transformation state with it: written again later, it
/// starts afresh (its first Increase emits nothing), rather than against its old value.
#[test]
fn an_expired_series_starts_its_transformations_afresh() {
    let mut options = options();
    options.entry_ttl = 60 * 1_000_000_000;
    let mut agg = CoreAggregator::new(options.clone(), 1);
    let mut out = FlushCollector::new(options.naming.clone(), 0, 64);
    let mut got = Vec::new();
    let mut write_and_flush = |agg: &mut CoreAggregator, at: i64, value: f64| {
        let mut batch = SampleBatch::default();
        let mut spec = ElemSpec::new(AggTypes::of(&[AggType::Last]), "10s:2d".parse().unwrap());
        spec.transforms = TransformChain::new(&[TransformType::Increase]).unwrap();
        let spec = batch.add_spec(&[spec]);
        batch.push(0, 1, b"c", MetricType::Gauge, UNTIMED, SampleValue::Number(value), spec);
        agg.apply(&batch, at);
        agg.begin_flush(R, at + R);
        agg.flush_shard(0, R, at + R, &mut out);
        got.extend(out.take(true).iter().flat_map(|b| b.iter().map(|v| v.value).collect::<Vec<_>>()));
    };
    write_and_flush(&mut agg, BASE + 1, 100.0);
    write_and_flush(&mut agg, BASE + R + 1, 150.0);
    // A flush long after the last write lets the series expire.
    let idle = BASE + 100 * R;
    let mut idle_out = FlushCollector::new(options.naming.clone(), 0, 64);
    agg.begin_flush(R, idle);
    agg.flush_shard(0, R, idle, &mut idle_out);
    assert_eq!(agg.series_count(), 0);
    write_and_flush(&mut agg, idle + 1, 200.0);
    assert_eq!(got, vec![50.0]);
}
