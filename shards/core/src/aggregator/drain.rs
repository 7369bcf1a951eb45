//! The flush of one shard: every window a flush, discard or final flush has reached is
//! emitted to the collector, forwarded to its rollup target (gathered in the core's outbox,
//! across shards until the flush task takes them) or dropped; idle series expire. Same core as
//! [`CoreAggregator`]; split from `aggregator.rs` by concept.
//!
//! #[PerformanceCriticalPath]: runs per series per flush round.

use super::{CoreAggregator, Fate, FlushCollector};
use crate::batch::{NO_ROLLUP, RollupRef};
use crate::rollup::{EmittedWindow, ResendWindow};
use crate::series::Series;
use crate::spec::{SpecId, SpecTable};
use crate::time::UnixNanos;
use crate::transform::Datapoint;
use crate::transform_states::ElemAt;

/// The rollup target of the `i`-th key of spec `spec`.
#[inline]
fn series_rollup(spec: Option<SpecId>, i: usize, specs: &SpecTable) -> RollupRef {
    spec.and_then(|spec| specs.key(spec, i)).map_or(NO_ROLLUP, |k| k.rollup)
}

impl CoreAggregator {
    pub(super) fn drain_shard(
        &mut self,
        shard: u32,
        now: UnixNanos,
        out: &mut FlushCollector,
        fate: impl Fn(i64, bool, u8, UnixNanos, UnixNanos) -> Fate,
    ) {
        let Some(slot) = self.shards.get_mut(shard as usize).filter(|slot| slot.held) else {
            return;
        };
        self.outbox.begin_source(shard, &mut self.rollups);
        let (map, states) = (&mut slot.map, &mut slot.transform_states);
        let specs = &mut self.specs;
        let counters = &mut self.counters;
        let outbox = &mut self.outbox;
        let (rollups, resends, reemits) = (&self.rollups, &mut self.resends, &mut self.reemits);
        let past = self.options.timed_buffer_past;
        let options = &self.options;
        let now_secs = now / 1_000_000_000;
        let ttl_secs = options.entry_ttl / 1_000_000_000;
        let mut held = 0u64;
        let mut follow_rates = self.rates.follow_retain(shard, map.len());
        // What the flush reads of a series' spec, and the heap state of its oldest window (a
        // timer's or a set's), asked for a few series ahead (a hint: the table does not move
        // during the flush, and a prefetch never faults).
        let heads = specs.heads_address();
        let ahead = |series: &Series| {
            if let Some(spec) = series.spec_id() {
                crate::paged::prefetch_address(heads.wrapping_add(spec as usize * SpecTable::HEAD_SIZE));
            }
            series.prefetch_flush_state();
        };
        let expired = map.retain(ahead, |series, series_id| {
            let mut id: Option<(u64, (u32, u32))> = None;
            let mut windows = 0;
            let series_spec = series.spec_id();
            let spec_len = series_spec.map_or(0, |spec| specs.key_count(spec));
            for (i, elem) in series.elems.iter_mut().enumerate() {
                let policy = specs.policy(elem.policy);
                let r = policy.resolution_nanos;
                // The spec's elements come first, in its order (see `Series::elems_for`).
                let rollup = if i < spec_len { series_rollup(series_spec, i, specs) } else { NO_ROLLUP };
                // An element of the series' previous metadata that rolled up: its target is no
                // longer known, and its values must not come out as the series' own.
                let lost_rollup = rollup == NO_ROLLUP && specs.rolls_up(elem.policy);
                // A forwarded window waits `L(r, n)` past its start and is emitted at its start.
                let forwarded = specs.forwarded(elem.policy);
                let span = if forwarded > 0 { options.forwarded_lateness(r, u32::from(forwarded)) } else { r };
                // A resend-enabled rollup flushes timed windows at their end, as untimed ones,
                // and corrects them when a late value comes (`rollup/resend.rs`).
                let resend = rollup != NO_ROLLUP && rollups.resends(rollup);
                let timed = elem.timed && !resend;
                let (aggs, suffix) = (elem.aggs.resolve(series.metric_type), elem.with_suffix(series.metric_type));
                let at = ElemAt::of(series.metric_type, series_id, elem, specs);
                // Windows are kept in start order, so the ones a flush has reached are a prefix.
                elem.take_front_while(
                    |start| {
                        Some(fate(r, timed, forwarded, start, start.saturating_add(span))).filter(|&f| f != Fate::Keep)
                    },
                    |start, mut window, fate| {
                        if fate == Fate::Discard {
                            counters.windows_discarded += 1;
                            return;
                        }
                        if lost_rollup {
                            counters.windows_discarded += 1;
                            counters.rollup_target_unknown += 1;
                            return;
                        }
                        counters.windows_flushed += 1;
                        let time_nanos = if forwarded > 0 { start } else { start + r };
                        if resend && at.chain.is_empty() {
                            let next = forwarded.saturating_add(1);
                            let w = ResendWindow {
                                shard,
                                metric_type: at.metric_type,
                                id: series_id,
                                elem_policy: at.policy,
                                elem_aggs: at.aggs,
                                aggs,
                                start,
                                target: rollup,
                                policy,
                                forwarded: next,
                                time: time_nanos,
                                expires: start.saturating_add(r).saturating_add(past),
                            };
                            counters.values_rolled_up += resends.flush(w, &mut window, outbox);
                            return;
                        }
                        if rollup != NO_ROLLUP {
                            if aggs.len() > 1 {
                                window.prepare_reads();
                            }
                            for (index, agg) in aggs.iter().enumerate() {
                                let mut forward = |p: Datapoint| {
                                    if !p.value.is_finite() && options.discard_nan {
                                        counters.nan_discarded += 1;
                                        return;
                                    }
                                    counters.values_rolled_up += 1;
                                    let next = forwarded.saturating_add(1);
                                    outbox.add(shard, rollup, policy, next, at.metric_type, p.time_nanos, p.value);
                                };
                                let value = Datapoint { time_nanos, value: window.value_of(agg) };
                                states.run(at, index, aggs.len() as usize, value, r, &mut forward);
                            }
                            return;
                        }
                        let (batch, generation) = out.batch(aggs.len() as usize * at.chain.max_fanout());
                        let id = match id {
                            Some((g, handle)) if g == generation => handle,
                            _ => {
                                let handle = batch.intern_id(series_id);
                                id = Some((generation, handle));
                                handle
                            }
                        };
                        if aggs.len() > 1 {
                            window.prepare_reads();
                        }
                        for (index, agg) in aggs.iter().enumerate() {
                            let mut emit = |p: Datapoint| {
                                // A sum or a gauge delta can overflow to ±inf, which no output
                                // format can carry: it goes with the NaNs.
                                if !p.value.is_finite() && options.discard_nan {
                                    counters.nan_discarded += 1;
                                    return;
                                }
                                counters.values_flushed += 1;
                                batch.push(id, at.metric_type, agg, suffix, timed, policy, p.time_nanos, p.value);
                            };
                            let value = Datapoint { time_nanos, value: window.value_of(agg) };
                            states.run(at, index, aggs.len() as usize, value, r, &mut emit);
                        }
                        if forwarded > 0 && reemits.watching() && at.chain.is_empty() {
                            let (elem_policy, elem_aggs, metric_type) = (at.policy, at.aggs, at.metric_type);
                            let (id, time) = (series_id, time_nanos);
                            let w = EmittedWindow {
                                shard,
                                metric_type,
                                id,
                                elem_policy,
                                elem_aggs,
                                start,
                                aggs,
                                suffix,
                                timed,
                                policy,
                                time,
                            };
                            reemits.emitted(w, &window);
                        }
                    },
                );
                windows += elem.window_count();
            }
            // One element with windows left has nothing stale to drop.
            if series.elems.len() > 1 || windows == 0 {
                let metric_type = series.metric_type;
                series.drop_stale_elems(specs, |e, chain| {
                    states.forget(ElemAt::of_chain(metric_type, series_id, e, chain))
                });
            }
            held += windows as u64;
            let keep = windows > 0 || now_secs - i64::from(series.last_write_secs) <= ttl_secs;
            if !keep {
                series.elems.iter().for_each(|e| states.forget(ElemAt::of(series.metric_type, series_id, e, specs)));
                series.release_elems(specs);
            }
            follow_rates.step(keep);
            keep
        });
        // Corrections go out with the shard's flush, after the values of its earlier flushes
        // (`begin_source` sealed those); its first flushes stay gathered until the seal.
        self.resends.seal(now, &mut self.rollups, self.outbox.sealed_batch());
        let (emitted, nan) = self.reemits.emit_corrected(shard, now, self.options.discard_nan, out);
        self.counters.values_flushed += emitted;
        self.counters.nan_discarded += nan;
        if expired > 0 {
            slot.sync = None;
        }
        self.series_held -= expired;
        self.counters.series_expired += expired as u64;
        if let Some(slot) = self.windows_held.get_mut(shard as usize) {
            *slot = held;
        }
    }
}
