//! Forwarded samples gathered over a flush round: what the flushes of several source shards
//! forward to one window travels as one sample (a run of values per source shard), and the
//! core owning the rolled-up series still admits each (source shard, version) once, so that
//! a source shard's values sent again (a fail-over, or the same shard routed after each flush)
//! are never counted twice, whichever of the two forms came first.

use std::collections::BTreeMap;

use sheaf_shard_core::murmur3::ShardOf;
use sheaf_shard_core::*;

const R: i64 = 10_000_000_000;
const BASE: i64 = 1_700_000_000_000_000_000;

fn options() -> AggregatorOptions {
    AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()])
}

/// 40 hosts on 2 routes, rolled up by route with Sum and Count; host h counts `h + 1`.
fn source_batch(shards: u32) -> SampleBatch {
    let shard_of = ShardOf::new(shards);
    let aggs = AggTypes::of(&[AggType::Sum, AggType::Count]);
    let mut batch = SampleBatch::default();
    for k in 0..2 {
        let rollup = batch.add_rollup(format!("req+route=r{k}").as_bytes(), aggs, TransformChain::NONE);
        let elem = ElemSpec { rollup, ..ElemSpec::new(AggTypes::of(&[AggType::Sum]), "10s:2d".parse().unwrap()) };
        let spec = batch.add_spec(&[elem]);
        for h in 0..40 {
            let id = format!("req+host=h{h},route=r{k}");
            let (shard, hash) = shard_of.shard_and_hash(MetricType::Counter, id.as_bytes());
            let value = SampleValue::Number(f64::from(h + 1));
            batch.push(shard, hash, id.as_bytes(), MetricType::Counter, UNTIMED, value, spec);
        }
    }
    batch
}

/// Moves what `agg`'s flushes forwarded into a batch of its own.
fn take(agg: &mut CoreAggregator, into: &mut SampleBatch) {
    let outbox = agg.rollup_outbox();
    for s in outbox.samples() {
        into.copy_from(outbox, s);
    }
    outbox.clear();
}

/// The source windows of one cycle, forwarded: gathered over the round, and routed after each
/// shard's flush.
fn forwarded(shards: u32) -> (SampleBatch, SampleBatch) {
    let mut out = FlushCollector::new(options().naming, 0, 64);
    let (mut gathered, mut per_shard) = (SampleBatch::default(), SampleBatch::default());
    for (batch, after_each) in [(&mut gathered, false), (&mut per_shard, true)] {
        let mut agg = CoreAggregator::new(options(), shards);
        agg.apply(&source_batch(shards), BASE + 1);
        agg.begin_flush(R, BASE + R + 1);
        for shard in 0..shards {
            agg.flush_shard(shard, R, BASE + R + 1, &mut out);
            if after_each {
                take(&mut agg, batch);
            }
        }
        take(&mut agg, batch);
        assert!(out.take(true).is_empty(), "source windows are forwarded, not emitted");
    }
    (gathered, per_shard)
}

/// Flushes the rolled-up windows: (id, suffix-free value) by id.
fn flush_targets(agg: &mut CoreAggregator, shards: u32) -> BTreeMap<String, f64> {
    let mut out = FlushCollector::new(options().naming, 0, 64);
    agg.begin_flush(R, BASE + 2 * R + 1);
    for shard in 0..shards {
        agg.flush_shard(shard, R, BASE + 2 * R + 1, &mut out);
    }
    let mut got = BTreeMap::new();
    for batch in out.take(true) {
        for v in batch.iter() {
            assert!(got.insert(v.id_string(), v.value).is_none(), "emitted twice: {}", v.id_string());
        }
    }
    got
}

fn expected() -> BTreeMap<String, f64> {
    let sum = f64::from((1..=40).sum::<i32>());
    let mut expected = BTreeMap::new();
    for k in 0..2 {
        expected.insert(format!("req+route=r{k}.sum"), sum);
        expected.insert(format!("req+route=r{k}.count"), 40.0);
    }
    expected
}

/// The (source shard, values) pairs of every forwarded sample of `batch`, by target id.
fn parts(batch: &SampleBatch) -> BTreeMap<(Vec<u8>, u32), Vec<u64>> {
    let mut parts = BTreeMap::new();
    for (i, s) in batch.samples().iter().enumerate() {
        for (from, values) in batch.forwarded_parts(i) {
            assert_eq!((from.version, from.times), (0, 1));
            let values = values.iter().map(|v| v.to_bits()).collect();
            assert!(parts.insert((batch.id(s).to_vec(), from.source), values).is_none(), "one run per source");
        }
    }
    parts
}

#[test]
fn a_round_forwards_one_sample_per_window_with_each_source_shards_values() {
    for shards in [8, 128] {
        let (gathered, per_shard) = forwarded(shards);
        assert_eq!(gathered.len(), 2, "{shards} shards: one sample per rolled-up window");
        assert!(per_shard.len() > 2);
        // Split per source shard (as a peer is sent them), the two forms carry the same.
        assert_eq!(parts(&gathered), parts(&per_shard));
        for batch in [&gathered, &per_shard] {
            let mut agg = CoreAggregator::new(options(), shards);
            agg.apply(batch, BASE + R + 2);
            assert_eq!(flush_targets(&mut agg, shards), expected(), "{shards} shards");
            assert_eq!(agg.counters.forwarded_accepted, per_shard.len() as u64);
        }
    }
}

#[test]
fn each_source_shard_of_a_gathered_sample_is_admitted_once_whatever_came_before() {
    for shards in [8, 128] {
        let (gathered, per_shard) = forwarded(shards);
        // Some source shards' samples first (another node's flush before a fail-over), then
        // the gathered samples, then everything again: each source shard is counted once.
        let mut agg = CoreAggregator::new(options(), shards);
        let mut some = SampleBatch::default();
        for s in per_shard.samples().iter().step_by(3) {
            some.copy_from(&per_shard, s);
        }
        agg.apply(&some, BASE + R + 2);
        agg.apply(&gathered, BASE + R + 3);
        assert_eq!(agg.counters.forwarded_duplicate, some.len() as u64);
        agg.apply(&per_shard, BASE + R + 4);
        agg.apply(&gathered, BASE + R + 5);
        let pairs = per_shard.len() as u64;
        assert_eq!(agg.counters.forwarded_accepted, pairs);
        assert_eq!(agg.counters.forwarded_duplicate, some.len() as u64 + 2 * pairs);
        assert_eq!(flush_targets(&mut agg, shards), expected(), "{shards} shards");
    }
}

#[test]
fn windows_of_one_target_flushed_in_one_round_stay_apart() {
    let shards = 8;
    let mut out = FlushCollector::new(options().naming, 0, 64);
    let mut agg = CoreAggregator::new(options(), shards);
    // Two windows of every source series, flushed by one round, each series' two values
    // forwarded one after the other.
    agg.apply(&source_batch(shards), BASE + 1);
    agg.apply(&source_batch(shards), BASE + R + 1);
    agg.begin_flush(R, BASE + 2 * R + 1);
    for shard in 0..shards {
        agg.flush_shard(shard, R, BASE + 2 * R + 1, &mut out);
    }
    let mut gathered = SampleBatch::default();
    take(&mut agg, &mut gathered);
    assert_eq!(gathered.len(), 4, "one sample per (target, window)");
    // Late enough for the first window's values to be in time only with a longer bound.
    let mut target = CoreAggregator::new(AggregatorOptions { forwarding_max_const_delay: 3 * R, ..options() }, shards);
    target.apply(&gathered, BASE + 2 * R + 2);
    target.begin_flush(R, BASE + 6 * R);
    for shard in 0..shards {
        target.flush_shard(shard, R, BASE + 6 * R, &mut out);
    }
    let mut got = BTreeMap::new();
    for batch in out.take(true) {
        for v in batch.iter() {
            assert!(got.insert((v.id_string(), v.time_nanos - BASE), v.value).is_none());
        }
    }
    let mut want = BTreeMap::new();
    for (id, value) in expected() {
        for time in [R, 2 * R] {
            want.insert((id.clone(), time), value);
        }
    }
    assert_eq!(got, want);
    assert_eq!(target.counters.forwarded_duplicate, 0);
}

/// 40 hosts on 2 routes, summed by route (resend-enabled, or rolling up again into
/// `req.total`); host h counts `h + 1`.
fn chained_batch(shards: u32, resend: bool, nested: bool) -> SampleBatch {
    let shard_of = ShardOf::new(shards);
    let sum = AggTypes::of(&[AggType::Sum]);
    let mut batch = SampleBatch::default();
    for k in 0..2 {
        let next = if nested { batch.add_rollup(b"req.total", sum, TransformChain::NONE) } else { NO_ROLLUP };
        let id = format!("req+route=r{k}");
        let rollup = batch.add_nested_rollup(id.as_bytes(), sum, TransformChain::NONE, resend, next);
        let spec = batch.add_spec(&[ElemSpec { rollup, ..ElemSpec::new(sum, "10s:2d".parse().unwrap()) }]);
        for h in 0..40 {
            let id = format!("req+host=h{h},route=r{k}");
            let (shard, hash) = shard_of.shard_and_hash(MetricType::Counter, id.as_bytes());
            let value = SampleValue::Number(f64::from(h + 1));
            batch.push(shard, hash, id.as_bytes(), MetricType::Counter, UNTIMED, value, spec);
        }
    }
    batch
}

#[test]
fn gathered_samples_keep_their_sources_resend_and_next_rollup() {
    let shards = 8;
    let sum = f64::from((1..=40).sum::<i32>());
    for (resend, nested) in [(true, false), (false, true)] {
        let mut out = FlushCollector::new(options().naming, 0, 64);
        let mut agg = CoreAggregator::new(options(), shards);
        agg.apply(&chained_batch(shards, resend, nested), BASE + 1);
        let (mut now, mut emitted, mut rounds) = (BASE + R + 1, BTreeMap::new(), 0);
        for _ in 0..6 {
            agg.begin_flush(R, now);
            for shard in 0..shards {
                agg.flush_shard(shard, R, now, &mut out);
            }
            for batch in out.take(true) {
                for v in batch.iter() {
                    assert!(emitted.insert(v.id_string(), v.value).is_none(), "emitted twice");
                }
            }
            let mut gathered = SampleBatch::default();
            take(&mut agg, &mut gathered);
            for (i, s) in gathered.samples().iter().enumerate() {
                assert!(gathered.gathered_runs(i).is_some_and(|runs| runs.len() > 1), "gathered");
                assert_eq!(gathered.forwarded_resend(i), resend);
                assert!(gathered.forwarded_prev_values(i).is_empty());
                let next = gathered.spec(s.spec)[0].rollup;
                let last_hop = gathered.id(s) == b"req.total";
                let want: Option<&[u8]> = (nested && !last_hop).then_some(b"req.total");
                assert_eq!(gathered.rollup(next).map(|r| gathered.rollup_id(r)), want);
            }
            if !gathered.is_empty() {
                rounds += 1;
                agg.apply(&gathered, now + 1);
            }
            now += R;
        }
        let want = if nested {
            assert_eq!(rounds, 2, "by route, then the total");
            BTreeMap::from([("req.total".to_string(), 2.0 * sum)])
        } else {
            (0..2).map(|k| (format!("req+route=r{k}"), sum)).collect()
        };
        assert_eq!(emitted, want, "resend {resend}, nested {nested}");
        assert_eq!((agg.counters.forwarded_duplicate, agg.counters.metadata_rejected), (0, 0));
    }
}
