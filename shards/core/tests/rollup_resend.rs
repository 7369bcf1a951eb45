//! Resend-enabled rollups (M3's `resend_enabled`) through `CoreAggregator`'s public interface:
//! a source window opened again by a late timed value is flushed again and forwards its
//! corrected values with the ones they replace, one version further; the rolled-up series
//! swaps the old contribution for the new one and emits the window once.

use std::collections::BTreeMap;

use sheaf_shard_core::murmur3::ShardOf;
use sheaf_shard_core::*;

mod common;
use common::{BASE, R, SHARDS, flush, options, take_outbox};

/// Timed counters `src.a` and `src.b`, rolled up into `rolled` with Sum (resend as given).
fn timed_batch(resend: bool, values: &[(&str, i64, f64)]) -> SampleBatch {
    let shard_of = ShardOf::new(SHARDS);
    let mut batch = SampleBatch::default();
    let sum = AggTypes::of(&[AggType::Sum]);
    let rollup = batch.add_rollup_with(b"rolled", sum, TransformChain::NONE, resend);
    let spec = batch.add_spec(&[ElemSpec { rollup, ..ElemSpec::new(sum, "10s:2d".parse().unwrap()) }]);
    for (id, t, v) in values {
        let (shard, hash) = shard_of.shard_and_hash(MetricType::Counter, id.as_bytes());
        batch.push(shard, hash, id.as_bytes(), MetricType::Counter, BASE + t, SampleValue::Number(*v), spec);
    }
    batch
}

/// (version, values, previous values) of every forwarded sample of `batch`.
fn origins(batch: &SampleBatch) -> Vec<(u32, Vec<f64>, Vec<f64>)> {
    let mut all: Vec<_> = (0..batch.len())
        .map(|i| {
            let s = &batch.samples()[i];
            let from = batch.forwarded_from(i).unwrap();
            (from.version, batch.timer_values_of(s).to_vec(), batch.forwarded_prev_values(i).to_vec())
        })
        .collect();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    all
}

#[test]
fn a_late_value_corrects_the_rolled_up_window_instead_of_adding_a_partial_one() {
    let mut src = CoreAggregator::new(options(), SHARDS);
    let mut dst = CoreAggregator::new(options(), SHARDS);
    src.apply(&timed_batch(true, &[("src.a", 1, 1.0), ("src.a", 2, 2.0), ("src.b", 3, 10.0)]), BASE + 4);
    // Flushed at its end like an untimed window, not after the timed buffer past.
    assert!(flush(&mut src, BASE + R + 1).is_empty());
    let first = take_outbox(&mut src);
    assert!(origins(&first).iter().all(|(version, _, prev)| *version == 0 && prev.is_empty()));
    dst.apply(&first, BASE + R + 2);
    assert_eq!(src.resend_windows_kept(), 2);

    // A late value of `src.a` opens its window again: the flush forwards the corrected value
    // with the one it replaces, version 1.
    src.apply(&timed_batch(true, &[("src.a", 5, 5.0)]), BASE + R + 3);
    assert!(flush(&mut src, BASE + R + 4).is_empty());
    let resent = take_outbox(&mut src);
    assert_eq!(origins(&resent), vec![(1, vec![8.0], vec![3.0])]);
    dst.apply(&resent, BASE + R + 5);
    // The same (source shard, version) again is a duplicate.
    dst.apply(&resent, BASE + R + 6);
    assert_eq!(dst.counters.forwarded_duplicate, 1);

    // Another late value: version 2 replaces the corrected value.
    src.apply(&timed_batch(true, &[("src.a", 6, 1.0)]), BASE + R + 7);
    flush(&mut src, BASE + R + 8);
    let again = take_outbox(&mut src);
    assert_eq!(origins(&again), vec![(2, vec![9.0], vec![8.0])]);
    dst.apply(&again, BASE + R + 9);

    assert_eq!(flush(&mut dst, BASE + 2 * R + 1), BTreeMap::from([(("rolled".to_string(), R), 19.0)]));
    // Kept until no value may reach the window: its end plus the timed buffer past.
    flush(&mut src, BASE + R + options().timed_buffer_past + 1);
    assert_eq!(src.resend_windows_kept(), 0);
}

#[test]
fn without_resend_a_timed_window_waits_for_the_buffer_past_and_is_forwarded_once() {
    let mut src = CoreAggregator::new(options(), SHARDS);
    src.apply(&timed_batch(false, &[("src.a", 1, 1.0)]), BASE + 4);
    flush(&mut src, BASE + R + 1);
    assert!(take_outbox(&mut src).is_empty());
    assert_eq!(src.resend_windows_kept(), 0);
}

#[test]
fn a_resent_sample_keeps_its_previous_values_when_copied() {
    let shard_of = ShardOf::new(SHARDS);
    let mut batch = SampleBatch::default();
    let spec =
        batch.add_spec(&[ElemSpec { forwarded: 1, ..ElemSpec::new(AggTypes::DEFAULT, "10s:2d".parse().unwrap()) }]);
    let (shard, hash) = shard_of.shard_and_hash(MetricType::Counter, b"t");
    let from = ForwardedFrom { source: 2, version: 3, times: 1 };
    batch.push_resent(shard, hash, b"t", MetricType::Counter, BASE, (&[4.0, 5.0], &[1.0]), spec, from);
    let mut copy = SampleBatch::default();
    copy.copy_from(&batch, &batch.samples()[0]);
    assert_eq!(origins(&copy), vec![(3, vec![4.0, 5.0], vec![1.0])]);
}

#[test]
fn a_correction_after_the_rolled_up_window_was_emitted_emits_it_again_once() {
    let mut src = CoreAggregator::new(options(), SHARDS);
    let mut dst = CoreAggregator::new(options(), SHARDS);
    src.apply(&timed_batch(true, &[("src.a", 1, 1.0), ("src.a", 2, 2.0), ("src.b", 3, 10.0)]), BASE + 4);
    flush(&mut src, BASE + R + 1);
    dst.apply(&take_outbox(&mut src), BASE + R + 2);
    assert_eq!(flush(&mut dst, BASE + 2 * R + 1), BTreeMap::from([(("rolled".to_string(), R), 13.0)]));
    assert_eq!(dst.reemit_windows_kept(), 1);

    src.apply(&timed_batch(true, &[("src.a", 5, 5.0)]), BASE + 2 * R + 2);
    flush(&mut src, BASE + 2 * R + 3);
    let resent = take_outbox(&mut src);
    dst.apply(&resent, BASE + 2 * R + 4);
    assert_eq!(dst.counters.forwarded_too_late, 0);
    // Emitted again with the corrected value, once.
    assert_eq!(flush(&mut dst, BASE + 2 * R + 5), BTreeMap::from([(("rolled".to_string(), R), 18.0)]));
    assert!(flush(&mut dst, BASE + 3 * R + 1).is_empty());
    dst.apply(&resent, BASE + 3 * R + 2);
    assert_eq!(dst.counters.forwarded_duplicate, 1);
    assert!(flush(&mut dst, BASE + 3 * R + 3).is_empty());
    // Forgotten once no correction may come.
    flush(&mut dst, BASE + 3 * R + options().timed_buffer_past);
    assert_eq!(dst.reemit_windows_kept(), 0);
}

#[test]
fn a_first_flush_after_the_rolled_up_window_was_emitted_is_late_not_a_correction() {
    let mut src = CoreAggregator::new(options(), SHARDS);
    let mut dst = CoreAggregator::new(options(), SHARDS);
    src.apply(&timed_batch(true, &[("src.a", 1, 1.0)]), BASE + 4);
    flush(&mut src, BASE + R + 1);
    let first = take_outbox(&mut src);
    dst.apply(&first, BASE + R + 2);
    flush(&mut dst, BASE + 2 * R + 1);
    dst.apply(&first, BASE + 2 * R + 2);
    assert_eq!(dst.counters.forwarded_too_late, 1);
    assert!(flush(&mut dst, BASE + 2 * R + 3).is_empty());
}

#[test]
fn a_checkpoint_keeps_a_rollups_resend() {
    use sheaf_shard_core::checkpoint::{decode, encode};
    let mut src = CoreAggregator::new(options(), SHARDS);
    src.apply(&timed_batch(true, &[("src.a", 1, 1.0)]), BASE + 4);
    let mut back = CoreAggregator::new(options(), SHARDS);
    for shard in 0..SHARDS {
        let Some(ck) = src.checkpoint_shard(shard) else { continue };
        let (_, ck) = decode(&encode(&ck, SHARDS, shard, 1, BASE).unwrap()).unwrap();
        back.restore_shard(shard, &ck).unwrap();
    }
    // Still resend-enabled: flushed at the window's end, marked for the receiver.
    flush(&mut back, BASE + R + 1);
    let first = take_outbox(&mut back);
    assert_eq!(origins(&first), vec![(0, vec![1.0], vec![])]);
    assert!(first.forwarded_resend(0));
}
