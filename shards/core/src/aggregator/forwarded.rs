//! Forwarded values on the core that owns a rolled-up series: a forwarded sample carries the
//! values one source shard's flush gathered for one window of the series (or, gathered, those
//! of several source shards of one core's flush round, in one run per shard); each source is
//! taken in once per (source shard, version) and window, and only while `now − t ≤ L(r, n)` and its window
//! is not flushed yet. Also what the core's flush task reads of the rollups this core forwards.
//! Same core as [`CoreAggregator`]; split from `aggregator.rs` by concept.

use super::{CoreAggregator, forwarded_discarded};
use crate::batch::{Sample, SampleBatch};
use crate::shard_map::Refused;
use crate::time::{UnixNanos, truncate};

impl CoreAggregator {
    /// Applies the forwarded sample `s`, the `index`-th of `batch`, arriving at `now`.
    pub(super) fn apply_forwarded(
        &mut self,
        batch: &SampleBatch,
        index: usize,
        s: &Sample,
        hint: Option<usize>,
        now: UnixNanos,
        now_secs: u32,
    ) {
        let Some(from) = batch.forwarded_from(index) else {
            self.counters.metadata_rejected += 1;
            return;
        };
        let Some(spec) = self.resolve_spec(batch, s, hint, now) else {
            self.counters.metadata_rejected += 1;
            return;
        };
        let Some(slot) = self.shards.get_mut(s.shard() as usize).filter(|slot| slot.window.accepts(now)) else {
            self.counters.shard_not_writable += 1;
            return;
        };
        slot.touch(now);
        let room = self.series_held < self.series_limit && self.rates.may_create(s.shard(), now);
        let discarded_in = &slot.forwarded_discarded;
        let (_, series, _, created) = match slot.map.find_or_insert(s.hash, s.metric_type, batch.id(s), hint, room) {
            Ok(found) => found,
            Err(Refused::IdTooLong) => {
                self.counters.id_too_long += 1;
                return;
            }
            Err(Refused::ShardFull) => {
                self.counters.series_over_shard_limit += 1;
                return;
            }
            Err(Refused::NoRoom) => {
                self.counters.refuse_new_series(self.series_held >= self.series_limit);
                return;
            }
        };
        if created {
            slot.held = true;
            self.series_held += 1;
            self.counters.series_created += 1;
            self.rates.created(s.shard(), now);
        }
        series.last_write_secs = now_secs;
        let values = batch.timer_values_of(s);
        let gathered = batch.gathered_runs(index);
        let flushed = &self.flushed;
        for elem in series.elems_for(spec, false, &mut self.specs) {
            let r = self.specs.policy(elem.policy).resolution_nanos;
            let lateness = self.options.forwarded_lateness(r, u32::from(self.specs.forwarded(elem.policy).max(1)));
            let start = truncate(s.time, r);
            let until = flushed.iter().find(|f| f.resolution == r).map_or(UnixNanos::MIN, |f| f.untimed);
            let discarded = forwarded_discarded(discarded_in, r, self.specs.forwarded(elem.policy));
            if now.saturating_sub(s.time) > lateness
                || start.saturating_add(lateness) <= until
                || start.saturating_add(r) <= discarded
            {
                // A correction of an emitted window of a resend-enabled source (`reemit.rs`).
                let resent = (batch.timer_values_of(s), batch.forwarded_prev_values(index));
                let series = (s.shard(), s.metric_type, batch.id(s));
                match self.reemits.correct(series, elem.policy, elem.aggs, start, from, resent, s.time) {
                    Some(true) => self.counters.forwarded_accepted += 1,
                    Some(false) => self.counters.forwarded_duplicate += 1,
                    None => self.counters.forwarded_too_late += 1,
                }
                continue;
            }
            let windows = &mut self.forwarded_windows;
            // Each source shard of a gathered sample is admitted on its own: only the runs of
            // those not taken in before are aggregated.
            let partial = match gathered {
                None => {
                    if !windows.admit(s.shard(), s.hash, elem.policy, elem.aggs, start, from) {
                        self.counters.forwarded_duplicate += 1;
                        continue;
                    }
                    self.counters.forwarded_accepted += 1;
                    None
                }
                Some(runs) => {
                    let fresh = windows.admit_gathered(s.shard(), s.hash, elem.policy, elem.aggs, start, runs);
                    self.counters.forwarded_accepted += fresh as u64;
                    self.counters.forwarded_duplicate += (runs.len() - fresh) as u64;
                    if fresh == 0 {
                        continue;
                    }
                    (fresh < runs.len()).then_some(runs)
                }
            };
            if batch.forwarded_resend(index) {
                let expires = start.saturating_add(lateness).saturating_add(self.options.timed_buffer_past);
                self.reemits.watch(s.shard(), s.metric_type, batch.id(s), elem.policy, elem.aggs, start, expires);
            }
            // Only a sample from one source carries previous values (a gathered one has none).
            let prev = batch.forwarded_prev_values(index);
            if !prev.is_empty() {
                elem.add_resent(start, values, prev, s.time);
                continue;
            }
            let mut window = elem.window_mut(start);
            let Some(runs) = partial else {
                values.iter().for_each(|v| window.add(*v, s.time));
                continue;
            };
            let mut at = 0usize;
            for (&(_, n), &take) in runs.iter().zip(windows.fresh()) {
                let run = values.get(at..at + n as usize).unwrap_or_default();
                at += n as usize;
                if take {
                    run.iter().for_each(|v| window.add(*v, s.time));
                }
            }
        }
        self.counters.values_applied += values.len() as u64;
    }

    /// Forgets the sources of the forwarded windows the flush rounds have reached: no value is
    /// admitted to those any more (see `apply_forwarded`).
    pub(super) fn forget_due_forwarded_windows(&mut self) {
        let (specs, flushed, options) = (&self.specs, &self.flushed, &self.options);
        self.forwarded_windows.forget_due(|_, policy, start| {
            let r = specs.policy(policy).resolution_nanos;
            let lateness = options.forwarded_lateness(r, u32::from(specs.forwarded(policy).max(1)));
            let until = flushed.iter().find(|f| f.resolution == r).map_or(UnixNanos::MIN, |f| f.untimed);
            start.saturating_add(lateness) <= until
        });
    }

    /// The forwarded samples this core's flushes sealed since the caller last emptied it: the
    /// caller routes them to the cores owning their rolled-up series, then clears the batch.
    pub fn rollup_outbox(&mut self) -> &mut SampleBatch {
        self.outbox.sealed(&mut self.rollups)
    }

    /// Rollup targets this core's elements name.
    pub fn rollup_target_count(&self) -> usize {
        self.rollups.len()
    }

    /// Flushed source windows this core keeps for resend-enabled rollups (see `ResendLog`).
    pub fn resend_windows_kept(&self) -> usize {
        self.resends.len()
    }

    /// Emitted forwarded windows this core keeps for corrections (see `Reemits`).
    pub fn reemit_windows_kept(&self) -> usize {
        self.reemits.len()
    }

    /// Forwarded windows open on this core (each with the sources it has taken in).
    pub fn forwarded_windows_open(&self) -> usize {
        self.forwarded_windows.len()
    }
}
