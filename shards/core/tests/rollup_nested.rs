//! Nested rollups through `CoreAggregator`'s public interface: a pipeline with two rollup ops
//! rolls sources up into an intermediate series, which rolls up again (one forward count
//! further) into the last one; only the last is emitted.

use std::collections::BTreeMap;

use sheaf_shard_core::murmur3::ShardOf;
use sheaf_shard_core::*;

mod common;
use common::{BASE, R, SHARDS, flush, options, take_outbox};

/// `http.requests` of 6 hosts on 3 routes: summed by route, then the routes summed into
/// `http.requests.total`; host h on route k counts `h * 10 + k`.
fn source_batch() -> SampleBatch {
    let shard_of = ShardOf::new(SHARDS);
    let mut batch = SampleBatch::default();
    let sum = AggTypes::of(&[AggType::Sum]);
    for k in 0..3 {
        let total = batch.add_rollup(b"http.requests.total", sum, TransformChain::NONE);
        let by_route = format!("http.requests+route=r{k}");
        let rollup = batch.add_nested_rollup(by_route.as_bytes(), sum, TransformChain::NONE, false, total);
        let spec = batch.add_spec(&[ElemSpec { rollup, ..ElemSpec::new(sum, "10s:2d".parse().unwrap()) }]);
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
fn two_rollup_ops_roll_up_twice_and_emit_only_the_last() {
    let mut agg = CoreAggregator::new(options(), SHARDS);
    agg.apply(&source_batch(), BASE + 1);
    let mut emitted = BTreeMap::new();
    let mut now = BASE + R + 1;
    let mut hops = Vec::new();
    for _ in 0..6 {
        emitted.extend(flush(&mut agg, now));
        let forwarded = take_outbox(&mut agg);
        if !forwarded.is_empty() {
            let times: std::collections::BTreeSet<u8> =
                (0..forwarded.len()).map(|i| forwarded.forwarded_from(i).unwrap().times).collect();
            hops.push(times);
            agg.apply(&forwarded, now + 1);
        }
        now += R;
    }
    assert_eq!(hops, vec![[1].into(), [2].into()], "by route (once forwarded), then the total (twice)");
    let total = f64::from((0..3).map(|k| (0..6).map(|h| h * 10 + k).sum::<i32>()).sum::<i32>());
    assert_eq!(emitted, BTreeMap::from([(("http.requests.total".to_string(), R), total)]));
    assert_eq!(agg.counters.metadata_rejected, 0);
}

#[test]
fn a_chain_deeper_than_the_bound_is_refused() {
    let mut agg = CoreAggregator::new(options(), SHARDS);
    let mut batch = SampleBatch::default();
    let sum = AggTypes::of(&[AggType::Sum]);
    let mut next = 0;
    for level in 0..=pipeline::MAX_ROLLUP_DEPTH {
        next = batch.add_nested_rollup(format!("level{level}").as_bytes(), sum, TransformChain::NONE, false, next);
    }
    let spec = batch.add_spec(&[ElemSpec { rollup: next, ..ElemSpec::new(sum, "10s:2d".parse().unwrap()) }]);
    let (shard, hash) = ShardOf::new(SHARDS).shard_and_hash(MetricType::Counter, b"src");
    batch.push(shard, hash, b"src", MetricType::Counter, UNTIMED, SampleValue::Number(1.0), spec);
    agg.apply(&batch, BASE + 1);
    assert_eq!(agg.counters.metadata_rejected, 1);
}
