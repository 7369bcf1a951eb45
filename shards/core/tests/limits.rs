//! The bounds a core keeps on what the network can make it hold, through `CoreAggregator`'s
//! public interface: the series limit (`max_series_per_core`) and the pruning of storage
//! policies, with their flush rounds, once no series uses them.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sheaf_shard_core::*;

const SECOND: i64 = 1_000_000_000;
const BASE: i64 = 1_700_000_000 * SECOND;

fn options(max_series_per_core: usize) -> AggregatorOptions {
    let mut options = AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]);
    options.max_series_per_core = max_series_per_core;
    options.entry_ttl = 30 * SECOND;
    options
}

fn flush_all(agg: &mut CoreAggregator, shards: u32, now: i64, into: &mut BTreeMap<String, f64>) {
    let mut out = FlushCollector::new(agg.options().naming.clone(), 0, 256);
    for r in agg.resolutions().collect::<Vec<_>>() {
        agg.begin_flush(r, now);
        for shard in 0..shards {
            agg.flush_shard(shard, r, now, &mut out);
        }
    }
    for batch in out.take(true) {
        for v in batch.iter() {
            *into.entry(v.id_string()).or_default() += v.value;
        }
    }
}

proptest! {
    /// With a limit of `limit` series, the first `limit` distinct series are created and
    /// aggregate every one of their values exactly; each value of any other series is refused
    /// and counted; the core never holds more than `limit`.
    #[test]
    fn series_past_the_limit_are_refused_and_counted_and_the_others_stay_exact(
        writes in prop::collection::vec((0u32..40, 1i64..100), 1..300),
        limit in 1usize..30,
        batch_size in 1usize..20,
    ) {
        const SHARDS: u32 = 4;
        let mut agg = CoreAggregator::new(options(limit), SHARDS);
        let mut created: BTreeSet<u32> = BTreeSet::new();
        let (mut want, mut refused) = (BTreeMap::new(), 0u64);
        for chunk in writes.chunks(batch_size) {
            let mut batch = SampleBatch::default();
            for &(series, value) in chunk {
                let id = format!("s{series}");
                let hash = series_hash(MetricType::Counter, id.as_bytes());
                batch.push(series % SHARDS, hash, id.as_bytes(), MetricType::Counter, UNTIMED, SampleValue::Number(value as f64), DEFAULT_SPEC);
                if created.contains(&series) || created.len() < limit {
                    created.insert(series);
                    *want.entry(id).or_insert(0.0) += value as f64;
                } else {
                    refused += 1;
                }
            }
            agg.apply(&batch, BASE + SECOND);
            prop_assert!(agg.series_count() <= limit);
        }
        prop_assert_eq!(agg.counters.series_limit_refused, refused);
        prop_assert_eq!(agg.series_count(), created.len());
        let mut got = BTreeMap::new();
        flush_all(&mut agg, SHARDS, BASE + 20 * SECOND, &mut got);
        prop_assert_eq!(got, want);
    }
}

/// Series that expire make room for new ones under the limit.
#[test]
fn expired_series_make_room_under_the_limit() {
    let mut agg = CoreAggregator::new(options(2), 1);
    let mut batch = SampleBatch::default();
    for id in ["a", "b", "c"] {
        batch.push(
            0,
            series_hash(MetricType::Counter, id.as_bytes()),
            id.as_bytes(),
            MetricType::Counter,
            UNTIMED,
            SampleValue::Number(1.0),
            DEFAULT_SPEC,
        );
    }
    agg.apply(&batch, BASE + SECOND);
    assert_eq!((agg.series_count(), agg.counters.series_limit_refused), (2, 1));
    flush_all(&mut agg, 1, BASE + 20 * SECOND, &mut BTreeMap::new());
    flush_all(&mut agg, 1, BASE + 60 * SECOND, &mut BTreeMap::new());
    assert_eq!(agg.series_count(), 0, "expired after entry_ttl");
    agg.apply(&batch, BASE + 61 * SECOND);
    assert_eq!((agg.series_count(), agg.counters.series_limit_refused), (2, 2));
}

/// A policy from metadata (1s:1h beside the default 10s:2d) adds its resolution to the
/// core's flush rounds; once its series has expired, the policy and the resolution are
/// dropped; the default ones never are. A later value with the policy brings it back.
#[test]
fn a_policy_no_series_uses_is_pruned_with_its_resolution() {
    let mut agg = CoreAggregator::new(options(0), 1);
    let one_second: StoragePolicy = "1s:1h".parse().unwrap();
    let write = |agg: &mut CoreAggregator, now: i64| {
        let mut batch = SampleBatch::default();
        let spec = batch.add_spec(&[ElemSpec::new(AggTypes::DEFAULT, one_second)]);
        batch.push(
            0,
            series_hash(MetricType::Counter, b"fine"),
            b"fine",
            MetricType::Counter,
            UNTIMED,
            SampleValue::Number(1.0),
            spec,
        );
        batch.push(
            0,
            series_hash(MetricType::Counter, b"plain"),
            b"plain",
            MetricType::Counter,
            UNTIMED,
            SampleValue::Number(1.0),
            DEFAULT_SPEC,
        );
        agg.apply(&batch, now);
    };
    write(&mut agg, BASE + SECOND / 2);
    assert_eq!(agg.resolutions().collect::<BTreeSet<_>>(), BTreeSet::from([SECOND, 10 * SECOND]));
    assert_eq!(agg.prune_unused_policies(), 0, "the series still uses it");
    let mut got = BTreeMap::new();
    flush_all(&mut agg, 1, BASE + 20 * SECOND, &mut got);
    assert_eq!(got, BTreeMap::from([("fine".into(), 1.0), ("plain".into(), 1.0)]));
    assert_eq!(agg.prune_unused_policies(), 0, "flushed but not expired: still held");
    flush_all(&mut agg, 1, BASE + 60 * SECOND, &mut got);
    assert_eq!(agg.series_count(), 0);
    assert_eq!(agg.prune_unused_policies(), 1);
    assert_eq!(agg.resolutions().collect::<Vec<_>>(), vec![10 * SECOND]);
    assert_eq!(agg.policy_count(), 1);
    assert_eq!(agg.counters.policies_pruned, 1);
    write(&mut agg, BASE + 100 * SECOND + SECOND / 2);
    assert_eq!(agg.resolutions().collect::<BTreeSet<_>>(), BTreeSet::from([SECOND, 10 * SECOND]));
    let (untimed, timed) = agg.flushed_through(SECOND);
    assert_eq!((untimed, timed), (BASE + 60 * SECOND, BASE), "back where the last round reached, not at the start");
    let mut again = BTreeMap::new();
    flush_all(&mut agg, 1, BASE + 120 * SECOND, &mut again);
    assert_eq!(again, BTreeMap::from([("fine".into(), 1.0), ("plain".into(), 1.0)]));
}
