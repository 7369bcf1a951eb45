//! Property tests of windowing and aggregation through `CoreAggregator`'s public interface:
//! what goes in at arrival time t comes out in window [truncate(t, r), +r) stamped with its end.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sheaf_shard_core::*;

const R: i64 = 10_000_000_000;

fn options() -> AggregatorOptions {
    AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap(), "1m:40d".parse().unwrap()])
}

fn collect(out: &mut FlushCollector, into: &mut BTreeMap<(String, String, i64), f64>) {
    for batch in out.take(true) {
        for v in batch.iter() {
            let key = (v.id_string(), v.policy.to_string(), v.time_nanos);
            assert!(into.insert(key.clone(), v.value).is_none(), "window emitted twice: {key:?}");
        }
    }
}

proptest! {
    #[test]
    fn counters_sum_exactly_per_window_and_policy(
        writes in prop::collection::vec((0usize..5, 0i64..200_000_000_000, -1000i64..1000), 1..400),
        flush_every in 1usize..50,
    ) {
        let base = 1_700_000_000_000_000_000i64;
        let mut writes = writes;
        writes.sort_by_key(|w| w.1);
        let mut agg = CoreAggregator::new(options(), 4);
        let mut out = FlushCollector::new(options().naming, 0, 64);
        let mut got = BTreeMap::new();
        let mut want: BTreeMap<(String, String, i64), f64> = BTreeMap::new();
        for (i, (series, offset, value)) in writes.iter().enumerate() {
            let now = base + offset;
            let id = format!("c{series}");
            let mut batch = SampleBatch::default();
            batch.push((*series % 4) as u32, *series as u64, id.as_bytes(), MetricType::Counter, UNTIMED, SampleValue::Number(*value as f64), DEFAULT_SPEC);
            agg.apply(&batch, now);
            for (policy, r) in [("10s:2d", R), ("1m:40d", 6 * R)] {
                *want.entry((id.clone(), policy.to_string(), now - now.rem_euclid(r) + r)).or_default() += *value as f64;
            }
            if i % flush_every == 0 {
                for r in agg.resolutions().collect::<Vec<_>>() {
                    agg.begin_flush(r, now);
                    for shard in 0..4 { agg.flush_shard(shard, r, now, &mut out); }
                }
                collect(&mut out, &mut got);
            }
        }
        for shard in 0..4 { agg.flush_shard_all(shard, base, &mut out); }
        collect(&mut out, &mut got);
        prop_assert_eq!(got, want);
    }

    /// A StatsD gauge delta applies to the gauge's latest value, also once the window holding
    /// that value has been flushed; a set replaces it; a first delta starts from 0. Counters
    /// sharing the shard (and their ids' arena) do not disturb it.
    #[test]
    fn gauge_deltas_apply_to_the_latest_value_across_flushes(
        writes in prop::collection::vec((0usize..6, any::<bool>(), -50i64..50, 0i64..30_000_000_000), 1..200),
    ) {
        let base = 1_700_000_000_000_000_000i64;
        let mut writes = writes;
        writes.sort_by_key(|w| w.3);
        let mut agg = CoreAggregator::new(options(), 1);
        let mut out = FlushCollector::new(options().naming, 0, 64);
        let mut latest: BTreeMap<usize, f64> = BTreeMap::new();
        let mut got = BTreeMap::new();
        let mut want = BTreeMap::new();
        for (series, delta, value, offset) in writes {
            let now = base + offset;
            let (id, value) = (format!("g{series}"), value as f64);
            let mut batch = SampleBatch::default();
            let sample = if delta { SampleValue::GaugeDelta(value) } else { SampleValue::Number(value) };
            batch.push(0, series as u64, id.as_bytes(), MetricType::Gauge, UNTIMED, sample, DEFAULT_SPEC);
            batch.push(0, 100 + series as u64, format!("c{series}").as_bytes(), MetricType::Counter, UNTIMED, SampleValue::Number(1.0), DEFAULT_SPEC);
            agg.apply(&batch, now);
            let v = if delta { latest.get(&series).copied().unwrap_or(0.0) + value } else { value };
            latest.insert(series, v);
            want.insert((id, "10s:2d".to_string(), now - now.rem_euclid(R) + R), v);
            agg.begin_flush(R, now);
            agg.flush_shard(0, R, now, &mut out);
            for batch in out.take(true) {
                for v in batch.iter().filter(|v| v.series_id.starts_with(b"g") && v.policy.to_string() == "10s:2d") {
                    got.insert((v.id_string(), v.policy.to_string(), v.time_nanos), v.value);
                }
            }
        }
        agg.flush_shard_all(0, base, &mut out);
        for batch in out.take(true) {
            for v in batch.iter().filter(|v| v.series_id.starts_with(b"g") && v.policy.to_string() == "10s:2d") {
                got.insert((v.id_string(), v.policy.to_string(), v.time_nanos), v.value);
            }
        }
        prop_assert_eq!(got, want);
    }

    #[test]
    fn timed_values_land_in_their_own_window_and_wait_for_the_buffer(
        points in prop::collection::vec((0i64..50_000_000_000, 0.0f64..100.0), 1..100),
    ) {
        let now = 1_700_000_100_000_000_000i64;
        let mut agg = CoreAggregator::new(options(), 1);
        let mut batch = SampleBatch::default();
        let spec = batch.add_spec(&[ElemSpec::new(AggTypes::of(&[AggType::Max]), "10s:2d".parse().unwrap())]);
        for (ago, v) in &points {
            batch.push(0, 1, b"t", MetricType::Gauge, now - ago, SampleValue::Number(*v), spec);
        }
        agg.apply(&batch, now);
        let mut out = FlushCollector::new(options().naming, 0, 1024);
        // Nothing is due before the past buffer has passed.
        agg.begin_flush(R, now);
        agg.flush_shard(0, R, now, &mut out);
        prop_assert_eq!(out.take(true).len(), 0);
        let later = now + 60_000_000_000 + R;
        agg.begin_flush(R, later);
        agg.flush_shard(0, R, later, &mut out);
        let mut got = BTreeMap::new();
        collect(&mut out, &mut got);
        let mut want: BTreeMap<(String, String, i64), f64> = BTreeMap::new();
        for (ago, v) in &points {
            let t = now - ago;
            let e = want.entry(("t".to_string(), "10s:2d".to_string(), t - t.rem_euclid(R) + R)).or_insert(f64::MIN);
            *e = e.max(*v);
        }
        prop_assert_eq!(got, want);
    }
}

#[test]
fn timer_defaults_emit_m3_suffixes_and_too_old_timed_values_are_counted() {
    let now = 1_700_000_000_000_000_000i64;
    let mut agg = CoreAggregator::new(options(), 1);
    let mut batch = SampleBatch::default();
    batch.push_timer(0, 9, b"lat", UNTIMED, &[1.0, 2.0, 3.0, 4.0], DEFAULT_SPEC);
    batch.push(0, 9, b"old", MetricType::Counter, now - 3_600_000_000_000, SampleValue::Number(1.0), DEFAULT_SPEC);
    agg.apply(&batch, now);
    assert_eq!(agg.counters.timed_too_late, 1);
    let mut out = FlushCollector::new(options().naming, 0, 1024);
    agg.flush_shard_all(0, now, &mut out);
    let mut ids: Vec<_> = out
        .take(true)
        .iter()
        .flat_map(|b| b.iter().map(|v| (v.id_string(), v.agg.name(), v.value)).collect::<Vec<_>>())
        .collect();
    ids.sort_by(|a, b| a.0.cmp(&b.0));
    let tens = &ids;
    assert!(tens.iter().any(|(id, agg, v)| id == "lat.sum" && *agg == "sum" && *v == 10.0));
    assert!(tens.iter().any(|(id, agg, v)| id == "lat.upper" && *agg == "max" && *v == 4.0));
    assert!(tens.iter().any(|(id, _, v)| id == "lat.count" && *v == 4.0));
    assert_eq!(ids.len(), 22, "11 aggregations x 2 default policies: {ids:?}");
}

proptest! {
    /// Client timestamps are arbitrary: extreme ones are refused and counted, never a panic.
    #[test]
    fn any_timed_timestamp_is_accepted_or_counted(times in prop::collection::vec(prop_oneof![
        Just(i64::MIN + 1), Just(i64::MAX), Just(0i64), any::<i64>(),
        (-120_000_000_000i64..120_000_000_000).prop_map(|d| 1_700_000_000_000_000_000 + d),
    ], 1..50)) {
        let now = 1_700_000_000_000_000_000i64;
        let mut agg = CoreAggregator::new(options(), 1);
        let mut batch = SampleBatch::default();
        for t in &times {
            batch.push(0, 1, b"t", MetricType::Counter, *t, SampleValue::Number(1.0), DEFAULT_SPEC);
        }
        agg.apply(&batch, now);
        let c = &agg.counters;
        prop_assert_eq!(c.values_applied + c.timed_too_early + c.timed_too_late, times.len() as u64);
        let mut out = FlushCollector::new(options().naming, 0, 1024);
        agg.flush_shard_all(0, now, &mut out);
    }
}

#[test]
fn metadata_naming_an_element_twice_emits_each_value_once() {
    let now = 1_700_000_000_000_000_000i64;
    let mut agg = CoreAggregator::new(options(), 1);
    let mut batch = SampleBatch::default();
    let e = ElemSpec::new(AggTypes::DEFAULT, "10s:2d".parse().unwrap());
    let spec = batch.add_spec(&[e, e]);
    batch.push(0, 1, b"twice", MetricType::Counter, UNTIMED, SampleValue::Number(5.0), spec);
    agg.apply(&batch, now);
    let mut out = FlushCollector::new(options().naming, 0, 64);
    agg.flush_shard_all(0, now, &mut out);
    let values: Vec<f64> = out.take(true).iter().flat_map(|b| b.iter().map(|v| v.value).collect::<Vec<_>>()).collect();
    assert_eq!(values, vec![5.0]);
}

proptest! {
    /// Promotion without loss or re-emission: two replicas see the same stamped writes; the
    /// leader emits the windows up to its flush time T, the follower discards exactly those and
    /// then, promoted, emits the rest. Together they emit each window once, with the sums a
    /// single aggregator would give.
    #[test]
    fn a_promoted_follower_emits_exactly_the_windows_after_the_leaders_flush_time(
        writes in prop::collection::vec((0usize..4, 0i64..120_000_000_000, -100i64..100), 1..200),
        handover in 0i64..120_000_000_000,
    ) {
        let base = 1_700_000_000_000_000_000i64;
        let mut writes = writes;
        writes.sort_by_key(|w| w.1);
        let (mut leader, mut follower, mut single) =
            (CoreAggregator::new(options(), 4), CoreAggregator::new(options(), 4), CoreAggregator::new(options(), 4));
        let handover = base + handover;
        let mut out = FlushCollector::new(options().naming, 0, 64);
        let (mut got, mut want) = (BTreeMap::new(), BTreeMap::new());
        for (series, offset, value) in &writes {
            let now = base + offset;
            let mut batch = SampleBatch::default();
            let id = format!("c{series}");
            batch.push((*series % 4) as u32, *series as u64, id.as_bytes(), MetricType::Counter, UNTIMED, SampleValue::Number(*value as f64), DEFAULT_SPEC);
            batch.stamp_untimed(now);
            // The follower applies later than the leader (a peer hop): the stamp decides the window.
            follower.apply(&batch, now + 3_000_000);
            single.apply(&batch, now);
            if now < handover { leader.apply(&batch, now); }
        }
        // The leader flushed (and persisted) everything ending at or before the hand-over.
        for r in leader.resolutions().collect::<Vec<_>>() {
            leader.begin_flush(r, handover);
            for shard in 0..4 {
                leader.flush_shard(shard, r, handover, &mut out);
                let t = handover - handover.rem_euclid(r);
                follower.discard_shard(shard, r, t, t, &[], handover);
            }
        }
        collect(&mut out, &mut got);
        let end = base + 10 * 60 * R;
        for shard in 0..4 {
            follower.flush_shard_all(shard, end, &mut out);
        }
        collect(&mut out, &mut got);
        for shard in 0..4 { single.flush_shard_all(shard, end, &mut out); }
        collect(&mut out, &mut want);
        prop_assert_eq!(got, want);
    }
}

#[test]
fn a_shard_accepts_writes_only_in_its_range_and_emits_only_inside_cutover_and_cutoff() {
    let base = 1_700_000_000_000_000_000i64 / R * R;
    let mut agg = CoreAggregator::new(AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]), 1);
    agg.set_shard_window(
        0,
        ShardWindow { accept_from: base, accept_until: base + 5 * R, cutover: base + R, cutoff: base + 3 * R },
    );
    let mut out = FlushCollector::new(options().naming, 0, 64);
    for i in -1..6 {
        let mut batch = SampleBatch::default();
        batch.push(0, 1, b"c", MetricType::Counter, UNTIMED, SampleValue::Number(1.0), DEFAULT_SPEC);
        agg.apply(&batch, base + i * R + 1);
    }
    assert_eq!(agg.counters.shard_not_writable, 2, "before accept_from and at accept_until");
    agg.begin_flush(R, base + 6 * R);
    agg.flush_shard(0, R, base + 6 * R, &mut out);
    let ends: Vec<i64> =
        out.take(true).iter().flat_map(|b| b.iter().map(|v| v.time_nanos).collect::<Vec<_>>()).collect();
    assert_eq!(ends, vec![base + 2 * R, base + 3 * R], "only the windows inside [cutover, cutoff)");
    assert_eq!(agg.counters.windows_discarded, 3);
    assert_eq!(agg.close_cut_off_shards(base + 6 * R), vec![0]);
    assert_eq!(agg.series_count(), 0);
}

/// A shard number too large for a sample (over 16 bits; sheaf's config allows at most 65,535
/// shards) is refused and counted, never aggregated into some other shard.
#[test]
fn a_shard_beyond_16_bits_is_refused_not_misplaced() {
    let now = 1_700_000_000_000_000_000;
    let mut agg = CoreAggregator::new(options(), 64);
    let mut batch = SampleBatch::with_capacity(4);
    let id = b"svc.requests";
    let hash = series_hash(MetricType::Counter, id);
    for shard in [70_000, 65_536 + 3] {
        batch.push(shard, hash, id, MetricType::Counter, UNTIMED, SampleValue::Number(1.0), DEFAULT_SPEC);
    }
    assert_eq!(batch.samples()[0].shard(), batch::NO_SHARD);
    agg.apply(&batch, now);
    assert_eq!(agg.counters.shard_not_writable, 2);
    assert_eq!(agg.series_count(), 0);
}

/// An id longer than `MAX_ID_LEN` creates no series and is counted; other values go on.
#[test]
fn an_id_longer_than_the_limit_is_refused_and_counted() {
    let now = 1_700_000_000_000_000_000;
    let mut agg = CoreAggregator::new(options(), 64);
    let mut batch = SampleBatch::with_capacity(4);
    for id in [vec![b'x'; MAX_ID_LEN + 1], b"svc.requests".to_vec()] {
        let shard = murmur3::shard_for(&id, 64);
        let hash = series_hash(MetricType::Counter, &id);
        batch.push(shard, hash, &id, MetricType::Counter, UNTIMED, SampleValue::Number(1.0), DEFAULT_SPEC);
    }
    agg.apply(&batch, now);
    assert_eq!(agg.counters.id_too_long, 1);
    assert_eq!(agg.series_count(), 1);
}
