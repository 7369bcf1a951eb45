//! `CoreAggregator`: everything one shard core aggregates — its shards' series maps, the
//! metadata it has interned, and how far each resolution has been flushed.
//!
//! Lives on exactly one core and is touched only by that core's tasks (ingest apply, hand-off
//! receive, flush), one at a time: there is no lock because there is no sharing. Apply and
//! flush run in program order on that core, which gives M3's time-lock barrier for free:
//! a value applied after a flush round began lands in a window after that round's target.
//!
//! #[PerformanceCriticalPath]: `apply` runs per value; `flush_shard` per series per round.

use crate::aggregation::MetricType;
use crate::batch::{DEFAULT_SPEC, ElemSpec, Sample, SampleBatch, SampleValue, UNTIMED};
use crate::passthrough::Passthrough;
use crate::rate_limit::RateLimiter;
use crate::rollup::{ForwardedWindows, Reemits, ResendLog, RollupOutbox, RollupTargets};
use crate::rules::RuleSchedule;
use crate::series::DROPPED_BY_RULE;
use crate::shard_map::{Refused, ShardMap};
use crate::spec::{SpecId, SpecTable};
use crate::time::{UnixNanos, truncate};
use crate::transform_states::TransformStates;

pub use crate::aggregator_options::{AggregatorCounters, AggregatorOptions, RateLimitSettings};
pub use crate::flush_collector::FlushCollector;
pub use crate::shard_window::ShardWindow;

mod checkpoint;
mod drain;
mod forwarded;
mod metadata;
mod new_series;
mod prefetch;
mod resolutions;

use new_series::rule_spec_for;
use prefetch::{FOUND_RING, NOT_FOUND, PREFETCH_SERIES_AHEAD, PREFETCH_SLOTS_AHEAD, prefetch_ahead};

/// What happens to a window a flush has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Emit,
    Discard,
}

/// How far the forwarded windows of one resolution and forward count were flushed: every such
/// window ending at or before `until` is out (M3's `forwarded_by_resolution` flush times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedUntil {
    /// How many times the windows' values were forwarded (1 or more).
    pub times: u8,
    pub until: UnixNanos,
}

#[derive(Debug, Clone, Copy)]
struct FlushedUntil {
    resolution: i64,
    untimed: UnixNanos,
    timed: UnixNanos,
}

/// One shard as a core holds it: its series and when it may be written. Side by side and
/// inline (an empty map allocates nothing), so that a value's shard costs one bounds check and
/// no pointer to follow.
#[derive(Debug, Default)]
struct ShardSlot {
    map: ShardMap,
    /// A series has been created in the shard since the core took it (or last closed it).
    held: bool,
    window: ShardWindow,
    /// The transformation states of the shard's elements: they go when the shard goes.
    transform_states: TransformStates,
    /// Follower: per (resolution, forward count), how far the leader's forwarded windows of
    /// the shard are out (and discarded here); a forwarded value for one of those is late.
    forwarded_discarded: Vec<(i64, ForwardedUntil)>,
}

/// In a shard's `forwarded_discarded`: the end of the last forwarded window (`resolution`,
/// forwarded `times` times) discarded as emitted by the leader.
fn forwarded_discarded(discarded: &[(i64, ForwardedUntil)], resolution: i64, times: u8) -> UnixNanos {
    let found = discarded.iter().find(|(r, f)| *r == resolution && f.times == times);
    found.map_or(UnixNanos::MIN, |(_, f)| f.until)
}

#[derive(Debug)]
pub struct CoreAggregator {
    options: AggregatorOptions,
    specs: SpecTable,
    /// Indexed by shard number: every shard of the placement, held here or not.
    shards: Vec<ShardSlot>,
    flushed: Vec<FlushedUntil>,
    /// Batch spec ref → interned spec, rebuilt per batch (reused allocation).
    spec_cache: Vec<SpecId>,
    /// Per policy: the window an untimed value arriving at this batch's `now` lands in
    /// (computed once per batch instead of a division per value).
    untimed_start: Vec<UnixNanos>,
    pub counters: AggregatorCounters,
    /// Passthrough points on their way to the sinks: never in a series or a window.
    pub passthrough: Passthrough,
    /// Per shard: the windows its series held after the shard's last flush or discard.
    windows_held: Vec<u64>,
    /// Series held, all shards together.
    series_held: usize,
    /// `options.max_series_per_core`, with no limit as `usize::MAX`.
    series_limit: usize,
    rates: RateLimiter,
    /// The latest horizon any flush round has reached: where a resolution added (again) after
    /// the first round starts, so that a window one of its pruned policies already emitted
    /// cannot be opened and emitted a second time.
    latest_horizon: UnixNanos,
    /// The rules a new series without metadata is matched against (read-only, shared).
    rules: RuleSchedule,
    /// The series the elements of this core roll up to (`ElemKey::rollup`).
    rollups: RollupTargets,
    /// What the flushes of this core forward to rolled-up series, until the flush task takes it.
    outbox: RollupOutbox,
    resends: ResendLog,
    reemits: Reemits,
    /// The sources each open forwarded window has taken in.
    forwarded_windows: ForwardedWindows,
    /// A batch spec with its rollups translated to this core's targets (reused).
    translated: Vec<ElemSpec>,
}

impl CoreAggregator {
    pub fn new(options: AggregatorOptions, num_shards: u32) -> Self {
        let specs = SpecTable::new(&options.default_policies);
        let mut this = Self {
            options: options.clone(),
            specs,
            shards: (0..num_shards).map(|_| ShardSlot::default()).collect(),
            flushed: Vec::new(),
            spec_cache: Vec::new(),
            untimed_start: Vec::new(),
            counters: AggregatorCounters::default(),
            passthrough: Passthrough::with_default_batches(options.naming.clone()),
            windows_held: vec![0; num_shards as usize],
            series_held: 0,
            series_limit: match options.max_series_per_core {
                0 => usize::MAX,
                n => n,
            },
            latest_horizon: UnixNanos::MIN,
            rates: RateLimiter::new(options.rate_limits, num_shards),
            rules: RuleSchedule::default(),
            rollups: RollupTargets::default(),
            outbox: RollupOutbox::new(num_shards),
            resends: ResendLog::new(num_shards),
            reemits: Reemits::default(),
            forwarded_windows: ForwardedWindows::default(),
            translated: Vec::new(),
        };
        this.track_resolutions();
        this
    }

    /// Applies every sample of `batch` at arrival time `now`.
    pub fn apply(&mut self, batch: &SampleBatch, now: UnixNanos) {
        self.spec_cache.clear();
        self.rules.settle(now.saturating_sub(self.options.timed_buffer_past));
        self.refresh_untimed_starts(now);
        let now_secs = (now / 1_000_000_000).clamp(0, i64::from(u32::MAX)) as u32;
        let samples = batch.samples();
        // The window start of most values (untimed, default metadata) when the default spec has
        // one element: see `Series::sole_untimed_elem`.
        let default_sole_start = match self.specs.keys(0) {
            [key] => self.untimed_start.get(usize::from(key.policy)).copied(),
            _ => None,
        };
        // The series position each of the last `FOUND_RING` record prefetches found,
        // by sample index modulo the ring size, for the stages that follow.
        let mut found = [NOT_FOUND; FOUND_RING];
        for (i, s) in samples.iter().enumerate() {
            // Where the record prefetch found this sample's series (its slot is reused below).
            // `NOT_FOUND` is past the end of every shard (positions are 24 bits), so it needs no
            // check of its own: `find_or_insert` finds no record there and probes the index.
            let hint = Some(found[i % FOUND_RING] as usize);
            // Start the cache misses of later values now, so that they overlap (see `SeriesIndex`).
            // Away from the batch's end every stage has its value: one bounds check for all.
            let shards = &self.shards;
            let map_of = |s: &Sample| shards.get(s.shard() as usize).map(|slot| &slot.map);
            match samples
                .get(i..i + PREFETCH_SLOTS_AHEAD + 1)
                .and_then(<[Sample]>::first_chunk::<{ PREFETCH_SLOTS_AHEAD + 1 }>)
            {
                Some(next) => prefetch_ahead(batch, &mut found, i, |k| Some(&next[k]), map_of),
                None => prefetch_ahead(batch, &mut found, i, |k| samples.get(i + k), map_of),
            }
            // A forwarded value reads its window's sources, wherever its series lies.
            if let Some(ahead) = samples.get(i + PREFETCH_SERIES_AHEAD)
                && ahead.forwarded()
            {
                self.forwarded_windows.prefetch(ahead.shard(), ahead.hash);
            }
            if s.forwarded() {
                self.apply_forwarded(batch, i, s, hint, now, now_secs);
                continue;
            }
            if s.passthrough() {
                let writable = self.shards.get(s.shard() as usize).is_some_and(|slot| slot.window.accepts(now));
                self.passthrough.add(batch, s, writable, &mut self.counters);
                continue;
            }
            let Some(mut spec) = self.resolve_spec(batch, s, hint, now) else {
                self.counters.metadata_rejected += 1;
                continue;
            };
            let Some(slot) = self.shards.get_mut(s.shard() as usize).filter(|slot| slot.window.accepts(now)) else {
                self.counters.shard_not_writable += 1;
                continue;
            };
            // Client timestamps are arbitrary i64s: saturate rather than overflow.
            let (future, past) = (self.options.timed_buffer_future, self.options.timed_buffer_past);
            let too_early = |t: UnixNanos| t.saturating_sub(now) > future;
            let too_late = |t: UnixNanos| now.saturating_sub(t) > past;
            // Untimed (most values), or a client's timestamp, or the arrival time stamped by
            // the node that received it. A stamped time far from ours (a peer's clock, a long
            // queue) is not trusted: the value then arrives now, as on a single node.
            let (timed, stamped) = if s.time == UNTIMED {
                (false, false)
            } else if s.stamped() {
                (false, !too_early(s.time) && !too_late(s.time))
            } else if too_early(s.time) {
                self.counters.timed_too_early += 1;
                continue;
            } else if too_late(s.time) {
                self.counters.timed_too_late += 1;
                continue;
            } else {
                (true, false)
            };
            let shard = &mut slot.map;
            let id = batch.id(s);
            let room = self.series_held < self.series_limit && self.rates.may_create(s.shard(), now);
            let (at, series, mut base, created) = match shard.find_or_insert(s.hash, s.metric_type, id, hint, room) {
                Ok(found) => found,
                Err(Refused::IdTooLong) => {
                    self.counters.id_too_long += 1;
                    continue;
                }
                Err(Refused::ShardFull) => {
                    self.counters.series_over_shard_limit += 1;
                    continue;
                }
                Err(Refused::NoRoom) => {
                    self.counters.refuse_new_series(self.series_held >= self.series_limit);
                    continue;
                }
            };
            if created {
                slot.held = true;
                self.series_held += 1;
                self.counters.series_created += 1;
                self.rates.created(s.shard(), now);
                if s.spec == DEFAULT_SPEC {
                    // Matched once, here, with the rules in force when the series begins.
                    let created_at = if timed || stamped { s.time } else { now };
                    let rules = self.rules.at(created_at);
                    if !rules.is_empty() {
                        let known = self.specs.live_policy_count();
                        series.rule_spec = rule_spec_for(
                            rules,
                            &mut self.specs,
                            &mut self.rollups,
                            &mut self.counters,
                            id,
                            s.metric_type,
                            &self.options.default_policies,
                        );
                        if self.specs.live_policy_count() != known {
                            let past = self.options.timed_buffer_past;
                            Self::track_resolutions_of(&self.specs, &mut self.flushed, self.latest_horizon, past);
                            Self::refresh_untimed_starts_of(&self.specs, &self.flushed, &mut self.untimed_start, now);
                        }
                    }
                }
            }
            if s.spec == DEFAULT_SPEC && series.rule_spec != 0 {
                if series.rule_spec == DROPPED_BY_RULE {
                    series.last_write_secs = now_secs;
                    self.counters.dropped_by_rule += s.value().count();
                    continue;
                }
                spec = SpecId::from(series.rule_spec);
            }
            if spec == 0 && self.options.default_policies.is_empty() {
                series.last_write_secs = now_secs;
                self.counters.no_storage_policy += s.value().count();
                continue;
            }
            let received = s.value();
            if !self.rates.allow_values(s.shard(), at, series.last_write_secs, now_secs, received, &mut self.counters) {
                continue;
            }
            series.last_write_secs = now_secs;
            let value = match received {
                SampleValue::GaugeDelta(d) => SampleValue::Number(base.get().unwrap_or(0.0) + d),
                v => v,
            };
            if let (MetricType::Gauge, SampleValue::Number(v)) = (s.metric_type, value) {
                base.set(v);
            }
            if !timed
                && !stamped
                && spec == 0
                && let Some(start) = default_sole_start
                && let Some(elem) = series.sole_untimed_elem(0)
            {
                // Most values: untimed, default metadata, a series with one element.
                elem.add_sample(start, value, now, batch);
                self.counters.values_applied += value.count();
                continue;
            }
            // A gauge delta applies to the latest value, so it is observed now.
            let delta = matches!(received, SampleValue::GaugeDelta(_));
            let time = if (timed || stamped) && !delta { s.time } else { now };
            let flushed = &self.flushed;
            let elems = series.elems_for(spec, timed, &mut self.specs);
            if !timed
                && !stamped
                && let [elem] = elems
            {
                // Other untimed values of a series with one element: no loop to keep.
                elem.add_sample(self.untimed_start[usize::from(elem.policy)], value, time, batch);
                self.counters.values_applied += value.count();
                continue;
            }
            for elem in elems {
                let start = if timed {
                    let r = self.specs.policy(elem.policy).resolution_nanos;
                    let start = truncate(time, r);
                    if flushed.iter().any(|f| f.resolution == r && start < f.timed) {
                        self.counters.timed_too_late += 1;
                        continue;
                    }
                    start
                } else if stamped {
                    let r = self.specs.policy(elem.policy).resolution_nanos;
                    let until = flushed.iter().find(|f| f.resolution == r).map_or(UnixNanos::MIN, |f| f.untimed);
                    truncate(time, r).max(until)
                } else {
                    self.untimed_start[usize::from(elem.policy)]
                };
                elem.add_sample(start, value, time, batch);
            }
            self.counters.values_applied += value.count();
        }
    }

    /// Starts a flush round of `resolution` that may flush the windows ending at or before
    /// `horizon`: windows ending at or before `truncate(horizon, r)` (untimed) or
    /// `truncate(horizon − timed_buffer_past, r)` (timed) are due. From here on, values for
    /// those windows roll into the next one. The caller picks the horizon: the round's time,
    /// less the flush delay its windows must wait after their end.
    pub fn begin_flush(&mut self, resolution: i64, horizon: UnixNanos) {
        self.latest_horizon = self.latest_horizon.max(horizon);
        let untimed = truncate(horizon, resolution);
        let timed = truncate(horizon - self.options.timed_buffer_past, resolution);
        if let Some(f) = self.flushed.iter_mut().find(|f| f.resolution == resolution) {
            f.untimed = f.untimed.max(untimed);
            f.timed = f.timed.max(timed);
        }
        self.forget_due_forwarded_windows();
    }

    /// Sets when `shard` may be written and which of its windows may be emitted.
    pub fn set_shard_window(&mut self, shard: u32, window: ShardWindow) {
        if let Some(slot) = self.shards.get_mut(shard as usize) {
            slot.window = window;
        }
    }

    /// Emits every due window of `resolution` in `shard` (as set by the last `begin_flush`),
    /// discarding the due windows outside the shard's `[cutover, cutoff)`, and forgets series
    /// idle for longer than the entry TTL.
    pub fn flush_shard(&mut self, shard: u32, resolution: i64, now: UnixNanos, out: &mut FlushCollector) {
        let until = self.flushed_until(resolution);
        let window = self.shards.get(shard as usize).map(|slot| slot.window).unwrap_or_default();
        self.drain_shard(shard, now, out, |key_res, timed, _, start, end| {
            if key_res != resolution || end > if timed { until.timed } else { until.untimed } {
                Fate::Keep
            } else if window.emits(start, end) {
                Fate::Emit
            } else {
                Fate::Discard
            }
        });
    }

    /// Drops, without emitting, the windows of `resolution` in `shard` that end at or before
    /// `untimed_until` (untimed) or `timed_until` (timed), and the forwarded windows that end
    /// at or before their forward count's time in `forwarded`: what a follower does with
    /// windows its leader has already emitted. A forwarded window whose count `forwarded` does
    /// not name goes by `untimed_until`, as the leader's rounds flush it (`L(r, n)` past its
    /// start).
    pub fn discard_shard(
        &mut self,
        shard: u32,
        resolution: i64,
        untimed_until: UnixNanos,
        timed_until: UnixNanos,
        forwarded: &[ForwardedUntil],
        now: UnixNanos,
    ) {
        let mut out = FlushCollector::new(self.options.naming.clone(), 0, 0);
        self.drain_shard(shard, now, &mut out, |key_res, timed, times, start, end| {
            if key_res != resolution {
                return Fate::Keep;
            }
            let discard = match forwarded.iter().find(|f| f.times == times) {
                Some(f) if times > 0 => start.saturating_add(resolution) <= f.until,
                _ => end <= if timed { timed_until } else { untimed_until },
            };
            if discard { Fate::Discard } else { Fate::Keep }
        });
        // The sources of the discarded forwarded windows are forgotten (a follower runs no
        // `begin_flush`), and a value for one of those windows is refused from now on.
        let Some(slot) = self.shards.get_mut(shard as usize) else { return };
        for f in forwarded.iter().filter(|f| f.times > 0) {
            match slot.forwarded_discarded.iter_mut().find(|(r, g)| *r == resolution && g.times == f.times) {
                Some((_, g)) => g.until = g.until.max(f.until),
                None => slot.forwarded_discarded.push((resolution, *f)),
            }
        }
        let (specs, discarded) = (&self.specs, &slot.forwarded_discarded);
        self.forwarded_windows.forget_due(|at, policy, start| {
            at == shard
                && specs.policy(policy).resolution_nanos == resolution
                && start.saturating_add(resolution)
                    <= forwarded_discarded(discarded, resolution, specs.forwarded(policy))
        });
    }

    /// Drops, without emitting, every window of every resolution that ends at or before `until`
    /// (a follower's forced flush when its leader's flush times stop coming).
    pub fn discard_all_before(&mut self, shard: u32, until: UnixNanos, now: UnixNanos) {
        let mut out = FlushCollector::new(self.options.naming.clone(), 0, 0);
        self.drain_shard(shard, now, &mut out, |_, _, _, _, end| if end <= until { Fate::Discard } else { Fate::Keep });
    }

    /// Frees the shards whose writable range has ended (cut off, and every window up to the
    /// cutoff flushed or discarded since); returns them.
    pub fn close_cut_off_shards(&mut self, now: UnixNanos) -> Vec<u32> {
        let mut closed = Vec::new();
        for (i, slot) in self.shards.iter_mut().enumerate() {
            if slot.held && slot.window.accept_until <= now {
                let map = std::mem::take(&mut slot.map);
                slot.transform_states = TransformStates::default();
                map.for_each(|series| series.release_elems(&mut self.specs));
                self.series_held -= map.len();
                self.rates.closed(i as u32);
                slot.held = false;
                slot.forwarded_discarded.clear();
                self.windows_held[i] = 0;
                closed.push(i as u32);
            }
        }
        self.counters.shards_closed += closed.len() as u64;
        closed
    }

    /// Emits every window of `shard`, closed or not (shutdown of a single node).
    pub fn flush_shard_all(&mut self, shard: u32, now: UnixNanos, out: &mut FlushCollector) {
        self.flush_shard_all_forwarded_below(shard, u8::MAX, now, out);
    }

    /// Emits every window of `shard`, closed or not, of the elements whose values were
    /// forwarded fewer than `times` times (`1`: the source windows only). A shutdown flushes
    /// the source windows on every core first, so that what they roll up reaches the
    /// forwarded windows before those are flushed.
    pub fn flush_shard_all_forwarded_below(&mut self, shard: u32, times: u8, now: UnixNanos, out: &mut FlushCollector) {
        let window = self.shards.get(shard as usize).map(|slot| slot.window).unwrap_or_default();
        self.drain_shard(shard, now, out, |_, _, forwarded, start, end| {
            if forwarded >= times {
                Fate::Keep
            } else if window.emits(start, end) {
                Fate::Emit
            } else {
                Fate::Discard
            }
        });
    }
}
