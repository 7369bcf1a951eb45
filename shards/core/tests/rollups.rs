//! Rollups through `CoreAggregator`'s public interface: elements whose spec names a rollup
//! forward their flushed values (gathered per source shard into the core's outbox) instead of
//! emitting them; the forwarded samples, applied on the owner of the rolled-up series, are
//! aggregated once per (source shard, version) and emitted at their window's start after the
//! lateness bound.

use std::collections::BTreeMap;

use sheaf_shard_core::murmur3::ShardOf;
use sheaf_shard_core::*;

mod common;
use common::{BASE, R, SHARDS, flush, options, take_outbox};

/// `http.requests` of 6 hosts on 3 routes, each rolled up by route with Sum; host h on route k
/// counts `h * 10 + k`.
fn source_batch() -> SampleBatch {
    let shard_of = ShardOf::new(SHARDS);
    let mut batch = SampleBatch::default();
    for k in 0..3 {
        let rollup = batch.add_rollup(
            format!("http.requests+route=r{k}").as_bytes(),
            AggTypes::of(&[AggType::Sum]),
            TransformChain::NONE,
        );
        let elem = ElemSpec { rollup, ..ElemSpec::new(AggTypes::of(&[AggType::Sum]), "10s:2d".parse().unwrap()) };
        let spec = batch.add_spec(&[elem]);
        for h in 0..6 {
            let id = format!("http.requests+host=h{h},route=r{k}");
            let (shard, hash) = shard_of.shard_and_hash(MetricType::Counter, id.as_bytes());
            let value = SampleValue::Number(f64::from(h * 10 + k));
            batch.push(shard, hash, id.as_bytes(), MetricType::Counter, UNTIMED, value, spec);
        }
    }
    batch
}

#[test]
fn source_windows_roll_up_into_exact_sums_once() {
    let mut agg = CoreAggregator::new(options(), SHARDS);
    agg.apply(&source_batch(), BASE + 1);
    // The source windows are forwarded, not emitted.
    assert!(flush(&mut agg, BASE + R + 1).is_empty());
    assert_eq!(agg.counters.values_rolled_up, 18);
    let forwarded = take_outbox(&mut agg);
    assert!(!forwarded.is_empty() && forwarded.samples().iter().all(|s| s.forwarded()));
    // One forwarded sample per rolled-up window, carrying each source shard's values.
    assert_eq!(forwarded.len(), 3);
    let pairs: usize = (0..forwarded.len()).map(|i| forwarded.forwarded_parts(i).count()).sum();
    assert!((3..=3 * SHARDS as usize).contains(&pairs));
    agg.apply(&forwarded, BASE + R + 2);
    // The same (source shard, version) again: counted, not aggregated.
    agg.apply(&forwarded, BASE + R + 3);
    assert_eq!(agg.counters.forwarded_duplicate, pairs as u64);
    // Not flushed before `L(r, 1) = r` has passed since the window's start.
    assert!(flush(&mut agg, BASE + R + R / 2).is_empty());
    let got = flush(&mut agg, BASE + 2 * R + 1);
    let sum = |k: i32| f64::from((0..6).map(|h| h * 10 + k).sum::<i32>());
    let expected: BTreeMap<(String, i64), f64> =
        (0..3).map(|k| ((format!("http.requests+route=r{k}"), R), sum(k))).collect();
    assert_eq!(got, expected);
    assert!(take_outbox(&mut agg).is_empty());
    assert_eq!(agg.forwarded_windows_open(), 0);
}

#[test]
fn a_forwarded_value_after_its_window_flushed_is_counted_late() {
    let mut agg = CoreAggregator::new(options(), SHARDS);
    let shard_of = ShardOf::new(SHARDS);
    let mut batch = SampleBatch::default();
    let elem = ElemSpec { forwarded: 1, ..ElemSpec::new(AggTypes::of(&[AggType::Sum]), "10s:2d".parse().unwrap()) };
    let spec = batch.add_spec(&[elem]);
    let (shard, hash) = shard_of.shard_and_hash(MetricType::Counter, b"total");
    let from = ForwardedFrom { source: 3, version: 0, times: 1 };
    batch.push_forwarded(shard, hash, b"total", MetricType::Counter, BASE + R, &[1.0, 2.0], spec, from);
    agg.apply(&batch, BASE + R + 1);
    assert_eq!(flush(&mut agg, BASE + 2 * R + 1), BTreeMap::from([(("total".to_string(), R), 3.0)]));
    agg.apply(&batch, BASE + 2 * R + 2);
    assert_eq!(agg.counters.forwarded_too_late, 1);
    assert!(flush(&mut agg, BASE + 3 * R + 1).is_empty());
}

#[test]
fn a_copied_batch_keeps_its_rollups_and_origins() {
    let batch = source_batch();
    let mut copy = SampleBatch::default();
    for s in batch.samples() {
        copy.copy_from(&batch, s);
    }
    for (a, b) in batch.samples().iter().zip(copy.samples()) {
        let (ea, eb) = (batch.spec(a.spec)[0], copy.spec(b.spec)[0]);
        let (ra, rb) = (batch.rollup(ea.rollup).unwrap(), copy.rollup(eb.rollup).unwrap());
        assert_eq!(batch.rollup_id(ra), copy.rollup_id(rb));
        assert_eq!((ra.aggs, ra.transforms), (rb.aggs, rb.transforms));
    }
}

#[test]
fn an_emitted_element_and_a_rolled_up_one_of_the_same_policy_are_both_kept() {
    let mut agg = CoreAggregator::new(options(), SHARDS);
    let shard_of = ShardOf::new(SHARDS);
    let mut batch = SampleBatch::default();
    let plain = ElemSpec::new(AggTypes::DEFAULT, "10s:2d".parse().unwrap());
    let rollup = batch.add_rollup(b"rolled", AggTypes::DEFAULT, TransformChain::NONE);
    let spec = batch.add_spec(&[plain, ElemSpec { rollup, ..plain }]);
    let (shard, hash) = shard_of.shard_and_hash(MetricType::Counter, b"source");
    batch.push(shard, hash, b"source", MetricType::Counter, UNTIMED, SampleValue::Number(7.0), spec);
    agg.apply(&batch, BASE + 1);
    assert_eq!(agg.counters.metadata_rejected, 0);
    assert_eq!(flush(&mut agg, BASE + R + 1), BTreeMap::from([(("source".to_string(), R), 7.0)]));
    let forwarded = take_outbox(&mut agg);
    agg.apply(&forwarded, BASE + R + 2);
    assert_eq!(flush(&mut agg, BASE + 2 * R + 1), BTreeMap::from([(("rolled".to_string(), R), 7.0)]));
}

#[test]
fn a_rolled_up_element_left_by_a_metadata_change_is_dropped_and_counted_not_emitted() {
    let mut agg = CoreAggregator::new(options(), SHARDS);
    let shard_of = ShardOf::new(SHARDS);
    let (shard, hash) = shard_of.shard_and_hash(MetricType::Counter, b"source");
    let plain = ElemSpec::new(AggTypes::DEFAULT, "10s:2d".parse().unwrap());
    let mut rolled = SampleBatch::default();
    let rollup = rolled.add_rollup(b"rolled", AggTypes::DEFAULT, TransformChain::NONE);
    let spec = rolled.add_spec(&[ElemSpec { rollup, ..plain }]);
    rolled.push(shard, hash, b"source", MetricType::Counter, UNTIMED, SampleValue::Number(5.0), spec);
    agg.apply(&rolled, BASE + 1);
    // The same series, now with metadata that names no rollup.
    let mut mapped = SampleBatch::default();
    let spec = mapped.add_spec(&[plain]);
    mapped.push(shard, hash, b"source", MetricType::Counter, UNTIMED, SampleValue::Number(2.0), spec);
    agg.apply(&mapped, BASE + 2);
    assert_eq!(flush(&mut agg, BASE + R + 1), BTreeMap::from([(("source".to_string(), R), 2.0)]));
    assert_eq!(agg.counters.rollup_target_unknown, 1);
    assert!(take_outbox(&mut agg).is_empty());
}

/// A leader and a follower take in the same forwarded windows; the leader flushes one and
/// reports how far its forwarded windows are out; the follower discards by that time alone
/// (no standard time), then, promoted, emits exactly the window the leader did not.
#[test]
fn a_follower_discards_the_forwarded_windows_the_leaders_forwarded_times_cover() {
    let shard_of = ShardOf::new(SHARDS);
    let (shard, hash) = shard_of.shard_and_hash(MetricType::Counter, b"total");
    let (mut leader, mut follower) = (CoreAggregator::new(options(), SHARDS), CoreAggregator::new(options(), SHARDS));
    let forwarded_batch = |time: i64, values: &[f64], source: u32| {
        let mut batch = SampleBatch::default();
        let elem = ElemSpec { forwarded: 1, ..ElemSpec::new(AggTypes::of(&[AggType::Sum]), "10s:2d".parse().unwrap()) };
        let spec = batch.add_spec(&[elem]);
        let from = ForwardedFrom { source, version: 0, times: 1 };
        batch.push_forwarded(shard, hash, b"total", MetricType::Counter, time, values, spec, from);
        batch
    };
    for (time, values) in [(BASE + R, &[1.0, 2.0][..]), (BASE + 2 * R, &[4.0][..])] {
        let batch = forwarded_batch(time, values, 3);
        leader.apply(&batch, time + 1);
        follower.apply(&batch, time + 1);
    }
    assert!(leader.forwarded_flushed_through(R).is_empty(), "nothing flushed yet");
    assert_eq!(flush(&mut leader, BASE + 2 * R + 1), BTreeMap::from([(("total".to_string(), R), 3.0)]));
    // Windows forwarded once are flushed `L(r, 1) = r` past their start: the one ending at 2R is out.
    let forwarded = leader.forwarded_flushed_through(R);
    assert_eq!(forwarded, vec![ForwardedUntil { times: 1, until: BASE + 2 * R }]);
    let now = BASE + 2 * R + 2;
    // Without forwarded times (and no standard time) the follower keeps both windows.
    follower.discard_shard(shard, R, i64::MIN, i64::MIN, &[], now);
    assert_eq!(follower.counters.windows_discarded, 0);
    assert_eq!(follower.forwarded_windows_open(), 2);
    follower.discard_shard(shard, R, i64::MIN, i64::MIN, &forwarded, now);
    assert_eq!(follower.counters.windows_discarded, 1);
    // The discarded window's sources are forgotten (a follower runs no flush rounds), and a
    // source sending it again (a promoted source leader) is late, not a new window.
    assert_eq!(follower.forwarded_windows_open(), 1);
    follower.apply(&forwarded_batch(BASE + R, &[8.0], 4), BASE + R + 2);
    assert_eq!(follower.counters.forwarded_too_late, 1);
    assert_eq!(follower.forwarded_windows_open(), 1);
    // Promoted: only the window the leader did not emit comes out.
    assert_eq!(flush(&mut follower, BASE + 3 * R + 1), BTreeMap::from([(("total".to_string(), 2 * R), 4.0)]));
}

#[test]
fn max_const_delay_holds_forwarded_windows_and_admits_values_that_long() {
    let options = AggregatorOptions { forwarding_max_const_delay: 3 * R, ..options() };
    let mut agg = CoreAggregator::new(options, SHARDS);
    let shard_of = ShardOf::new(SHARDS);
    let mut batch = SampleBatch::default();
    let elem = ElemSpec { forwarded: 1, ..ElemSpec::new(AggTypes::of(&[AggType::Sum]), "10s:2d".parse().unwrap()) };
    let spec = batch.add_spec(&[elem]);
    let (shard, hash) = shard_of.shard_and_hash(MetricType::Counter, b"total");
    let from = |source| ForwardedFrom { source, version: 0, times: 1 };
    batch.push_forwarded(shard, hash, b"total", MetricType::Counter, BASE + R, &[1.0], spec, from(3));
    agg.apply(&batch, BASE + R + 1);
    // `L = maxConstDelay + r·n = 4r`: r past the start is not enough any more.
    assert!(flush(&mut agg, BASE + 2 * R + 1).is_empty());
    // A source 3r late is still in time.
    let mut late = SampleBatch::default();
    let spec = late.add_spec(&[elem]);
    late.push_forwarded(shard, hash, b"total", MetricType::Counter, BASE + R, &[2.0], spec, from(4));
    agg.apply(&late, BASE + 4 * R);
    assert_eq!(agg.counters.forwarded_too_late, 0);
    assert!(flush(&mut agg, BASE + 4 * R + 1).is_empty());
    assert_eq!(flush(&mut agg, BASE + 5 * R + 1), BTreeMap::from([(("total".to_string(), R), 3.0)]));
}
