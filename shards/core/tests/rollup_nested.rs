//! Nested rollups through `CoreAggregator`'s public interface: a pipeline with two rollup ops
//! rolls sources up into an intermediate series, which rolls up again (one forward count
//! further) into the last one; only the last is emitted.

use std::collections::BTreeMap;

use sheaf_shard_core::murmur3::ShardOf;
use sheaf_shard_core::*;

const R: i64 = 10_000_000_000;
const BASE: i64 = 1_700_000_000_000_000_000;
const SHARDS: u32 = 8;

fn options() -> AggregatorOptions {
    AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()])
}

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

fn flush(agg: &mut CoreAggregator, horizon: i64) -> BTreeMap<(String, i64), f64> {
    let mut out = FlushCollector::new(options().naming, 0, 64);
    agg.begin_flush(R, horizon);
    for shard in 0..SHARDS {
        agg.flush_shard(shard, R, horizon, &mut out);
    }
    let mut got = BTreeMap::new();
    for batch in out.take(true) {
        for v in batch.iter() {
            let key = (v.id_string(), v.time_nanos - BASE);
            assert!(got.insert(key.clone(), v.value).is_none(), "emitted twice: {key:?}");
        }
    }
    got
}

/// What the flushes forwarded, copied into a batch of its own (as the flush task routes it).
fn take_outbox(agg: &mut CoreAggregator) -> SampleBatch {
    let mut routed = SampleBatch::default();
    let outbox = agg.rollup_outbox();
    for s in outbox.samples() {
        routed.copy_from(outbox, s);
    }
    outbox.clear();
    routed
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
