//! Shard checkpoints through `CoreAggregator`'s public interface: a core that checkpoints its
//! shards, is replaced by a fresh one that loads them, and goes on, emits exactly what a core
//! that never stopped emits, for every kind of window state.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sheaf_shard_core::checkpoint::{decode, encode};
use sheaf_shard_core::*;

const R: i64 = 10_000_000_000;
const BASE: i64 = 1_700_000_000_000_000_000;
const SHARDS: u32 = 3;

fn options() -> AggregatorOptions {
    AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap(), "1m:40d".parse().unwrap()])
}

/// One write: (kind, series, value, offset in ns from BASE).
type Write = (u8, u8, i32, i64);

fn batch_of(w: &Write, now: i64) -> SampleBatch {
    let (kind, series, value, _) = *w;
    let v = f64::from(value);
    let mut b = SampleBatch::default();
    let shard = u32::from(series) % SHARDS;
    let id = format!("s{kind}.{series}");
    let (t, sample, spec) = match kind {
        0 => (MetricType::Counter, SampleValue::Number(v), DEFAULT_SPEC),
        1 => (MetricType::Gauge, SampleValue::Number(v), DEFAULT_SPEC),
        2 => (MetricType::Gauge, SampleValue::GaugeDelta(v), DEFAULT_SPEC),
        3 => (MetricType::Timer, SampleValue::Number(v), DEFAULT_SPEC),
        4 => (MetricType::Set, SampleValue::Member(u64::from(value.unsigned_abs() % 7)), DEFAULT_SPEC),
        5 => {
            // Every aggregation (quantiles too) and a stateful transformation.
            let mut e = ElemSpec::new(
                AggTypes::of(&[AggType::Sum, AggType::Max, AggType::P99, AggType::Last, AggType::Stdev]),
                "10s:2d".parse().unwrap(),
            );
            e.transforms = TransformChain::new(&[TransformType::Increase]).unwrap();
            let spec = b.add_spec(&[e]);
            (MetricType::Timer, SampleValue::Number(v), spec)
        }
        _ => {
            // A timed gauge with its own timestamp, a little in the past.
            let spec =
                b.add_spec(&[ElemSpec::new(AggTypes::of(&[AggType::Last, AggType::Min]), "10s:2d".parse().unwrap())]);
            let time = now - i64::from(value.unsigned_abs() % 5) * 1_000_000_000;
            b.push(
                shard,
                series_hash(MetricType::Gauge, id.as_bytes()),
                id.as_bytes(),
                MetricType::Gauge,
                time,
                SampleValue::Number(v),
                spec,
            );
            return b;
        }
    };
    b.push(shard, series_hash(t, id.as_bytes()), id.as_bytes(), t, UNTIMED, sample, spec);
    b
}

/// What a core emitted: per (id, policy, time), every value, in order (compared whole, so a
/// window emitted twice by both cores compares equal, and one emitted twice by only one does not).
type Emitted = BTreeMap<(String, String, i64), Vec<u64>>;

fn flush(agg: &mut CoreAggregator, now: i64, all: bool, got: &mut Emitted) {
    let mut out = FlushCollector::new(options().naming, 0, 64);
    for r in agg.resolutions().collect::<Vec<_>>() {
        agg.begin_flush(r, now);
        for shard in 0..SHARDS {
            agg.flush_shard(shard, r, now, &mut out);
        }
    }
    if all {
        for shard in 0..SHARDS {
            agg.flush_shard_all(shard, now, &mut out);
        }
    }
    for batch in out.take(true) {
        for v in batch.iter() {
            got.entry((v.id_string(), v.policy.to_string(), v.time_nanos)).or_default().push(v.value.to_bits());
        }
    }
}

/// Checkpoints every shard of `agg` to bytes and loads them into a fresh core.
fn restart(agg: &CoreAggregator) -> CoreAggregator {
    // Another core's ids: metadata interned in another order before the load, by a series of
    // a shard that is never flushed here.
    let mut fresh = CoreAggregator::new(options(), SHARDS + 1);
    let mut other = SampleBatch::default();
    let spec = other.add_spec(&[ElemSpec::new(AggTypes::of(&[AggType::Max]), "1m:40d".parse().unwrap())]);
    other.push(
        SHARDS,
        series_hash(MetricType::Gauge, b"other"),
        b"other",
        MetricType::Gauge,
        UNTIMED,
        SampleValue::Number(1.0),
        spec,
    );
    fresh.apply(&other, BASE);
    for shard in 0..SHARDS {
        let Some(ck) = agg.checkpoint_shard(shard) else { continue };
        let bytes = encode(&ck, SHARDS, shard, 1, BASE).unwrap();
        let (_, back) = decode(&bytes).unwrap();
        assert_eq!(encode(&back, SHARDS, shard, 1, BASE).unwrap(), bytes);
        fresh.restore_shard(shard, &back).unwrap();
    }
    fresh
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn a_restart_from_checkpoints_emits_what_no_restart_emits(
        writes in prop::collection::vec((0u8..7, 0u8..12, -300i32..300, 0i64..90_000_000_000), 1..300),
        flush_every in 1usize..40,
        restart_at in 0usize..300,
    ) {
        let mut writes = writes;
        writes.sort_by_key(|w| w.3);
        let mut steady = CoreAggregator::new(options(), SHARDS);
        let mut restarted = CoreAggregator::new(options(), SHARDS);
        let (mut want, mut got) = (Emitted::new(), Emitted::new());
        let mut now = BASE;
        for (i, w) in writes.iter().enumerate() {
            now = BASE + w.3;
            if i == restart_at % writes.len() {
                restarted = restart(&restarted);
            }
            steady.apply(&batch_of(w, now), now);
            restarted.apply(&batch_of(w, now), now);
            if i % flush_every == 0 {
                flush(&mut steady, now, false, &mut want);
                flush(&mut restarted, now, false, &mut got);
            }
        }
        let later = now + 120 * R;
        flush(&mut steady, later, true, &mut want);
        flush(&mut restarted, later, true, &mut got);
        prop_assert_eq!(got, want);
    }
}
