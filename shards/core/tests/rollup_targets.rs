//! Rollup targets are pruned once no metadata of the core names them: when the last series
//! whose spec named a target has expired and its policies were pruned, the target goes (and
//! its slot is reused), so that a stream of new rollup ids does not fill the table.

use sheaf_shard_core::murmur3::ShardOf;
use sheaf_shard_core::*;

const SECOND: i64 = 1_000_000_000;
const BASE: i64 = 1_700_000_000 * SECOND;

fn options() -> AggregatorOptions {
    let mut options = AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]);
    options.entry_ttl = 30 * SECOND;
    options
}

/// `n` series under 1s:1h, each rolled up into a target of its own named after `round`.
fn write(agg: &mut CoreAggregator, round: u32, n: u32, now: i64) {
    let shard_of = ShardOf::new(1);
    let mut batch = SampleBatch::default();
    for i in 0..n {
        let target = format!("rolled.{round}.{i}");
        let rollup = batch.add_rollup(target.as_bytes(), AggTypes::of(&[AggType::Sum]), TransformChain::NONE);
        let elem = ElemSpec { rollup, ..ElemSpec::new(AggTypes::DEFAULT, "1s:1h".parse().unwrap()) };
        let spec = batch.add_spec(&[elem]);
        let id = format!("src.{i}");
        let (shard, hash) = shard_of.shard_and_hash(MetricType::Counter, id.as_bytes());
        batch.push(shard, hash, id.as_bytes(), MetricType::Counter, UNTIMED, SampleValue::Number(1.0), spec);
    }
    agg.apply(&batch, now);
}

fn flush_all(agg: &mut CoreAggregator, now: i64) {
    let mut out = FlushCollector::new(agg.options().naming.clone(), 0, 256);
    for r in agg.resolutions().collect::<Vec<_>>() {
        agg.begin_flush(r, now);
        agg.flush_shard(0, r, now, &mut out);
    }
    agg.rollup_outbox().clear();
}

#[test]
fn targets_no_spec_names_are_pruned_with_their_last_series() {
    let mut agg = CoreAggregator::new(options(), 1);
    write(&mut agg, 0, 10, BASE + SECOND);
    assert_eq!(agg.rollup_target_count(), 10);
    flush_all(&mut agg, BASE + 20 * SECOND);
    agg.prune_unused_policies();
    assert_eq!(agg.rollup_target_count(), 10, "its series still live");
    flush_all(&mut agg, BASE + 60 * SECOND);
    assert_eq!(agg.series_count(), 0);
    assert_eq!(agg.prune_unused_policies(), 1);
    assert_eq!(agg.rollup_target_count(), 0);
    assert_eq!(agg.counters.rollup_targets_pruned, 10);
    // New targets take the pruned slots, and roll up as before.
    write(&mut agg, 1, 10, BASE + 61 * SECOND);
    assert_eq!(agg.rollup_target_count(), 10);
    assert_eq!(agg.counters.metadata_rejected, 0);
    let mut out = FlushCollector::new(agg.options().naming.clone(), 0, 256);
    agg.begin_flush(SECOND, BASE + 63 * SECOND);
    agg.flush_shard(0, SECOND, BASE + 63 * SECOND, &mut out);
    let forwarded = agg.rollup_outbox();
    let ids: std::collections::BTreeSet<_> =
        forwarded.samples().iter().map(|s| String::from_utf8_lossy(forwarded.id(s)).into_owned()).collect();
    assert_eq!(ids, (0..10).map(|i| format!("rolled.1.{i}")).collect());
}

#[test]
fn the_next_target_of_a_nested_rollup_is_kept_with_the_first() {
    let mut agg = CoreAggregator::new(options(), 1);
    let shard_of = ShardOf::new(1);
    let mut batch = SampleBatch::default();
    let sum = AggTypes::of(&[AggType::Sum]);
    let total = batch.add_rollup(b"total", sum, TransformChain::NONE);
    let by = batch.add_nested_rollup(b"by.route", sum, TransformChain::NONE, false, total);
    let elem = ElemSpec { rollup: by, ..ElemSpec::new(AggTypes::DEFAULT, "10s:2d".parse().unwrap()) };
    let spec = batch.add_spec(&[elem]);
    let (shard, hash) = shard_of.shard_and_hash(MetricType::Counter, b"src");
    batch.push(shard, hash, b"src", MetricType::Counter, UNTIMED, SampleValue::Number(1.0), spec);
    // Another series whose policy goes away, so that a prune runs while `src` lives.
    write(&mut agg, 0, 1, BASE + SECOND);
    agg.apply(&batch, BASE + 40 * SECOND);
    assert_eq!(agg.rollup_target_count(), 3);
    flush_all(&mut agg, BASE + 45 * SECOND);
    agg.apply(&batch, BASE + 46 * SECOND);
    flush_all(&mut agg, BASE + 60 * SECOND);
    assert_eq!(agg.prune_unused_policies(), 1);
    assert_eq!(agg.counters.rollup_targets_pruned, 1);
    assert_eq!(agg.rollup_target_count(), 2, "`by.route` and its next target `total` stay with `src`");
}
