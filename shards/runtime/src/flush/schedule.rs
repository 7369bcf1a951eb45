//! The flush schedule of one core: when each resolution's next round is due (`Schedule`, plain
//! data, no clock of its own), which windows a round may flush (`flush_horizon`), and the task
//! (in the core's `flush` queue) that runs the rounds until ingest stops; the final flush is
//! then driven by the `FinalFlush` command. Beside it, a task that queues the core's
//! passthrough points on the sinks every 100 ms (looking less often while none come).
//!
//! The rule: a window `[start, end)` is flushed at or after `end + flush_delay`, whatever the
//! jitter. A round runs at `truncate(now, r) + offset(r)` with `offset = flush_delay + jitter`;
//! when that spills into the next period (`offset ≥ r`), the round comes before the window
//! that just ended has had its `flush_delay`, so it flushes only up to the horizon, and that
//! window waits for the next round.

use std::rc::Rc;
use std::time::Duration;

use sheaf_shard_core::time::{now_nanos, truncate};

use super::rounds::Flusher;
pub(crate) use super::rounds::flush_horizon;
use crate::config::FlushSchedule;
use crate::core::IngestLifecycle;

/// How often the schedule looks for resolutions first seen in metadata, at the least.
const RESCAN: i64 = 1_000_000_000;

/// How often the passthrough points a core accepted are queued on the sinks.
const PASSTHROUGH_PUSH_EVERY: Duration = Duration::from_millis(100);

/// How far apart the looks for passthrough points grow while there are none (each look is a
/// wake-up of an otherwise idle core).
const PASSTHROUGH_IDLE_LOOK_EVERY: Duration = Duration::from_millis(1600);

#[derive(Debug, Clone, Copy)]
struct Due {
    resolution: i64,
    at: i64,
}

/// When each resolution the core has windows for is next due. Owned by the flush task.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    due: Vec<Due>,
}

impl Schedule {
    /// Follows the core's resolutions: a new one gets its first round after `now`; one the
    /// core no longer has (its policies pruned) loses its rounds.
    pub(crate) fn track(&mut self, resolutions: &[i64], now: i64, flush: &FlushSchedule) {
        self.due.retain(|d| resolutions.contains(&d.resolution));
        for &r in resolutions {
            if !self.due.iter().any(|d| d.resolution == r) {
                self.due.push(Due { resolution: r, at: next_flush(flush, r, now) });
            }
        }
    }

    /// Resolutions with rounds scheduled.
    pub(crate) fn len(&self) -> usize {
        self.due.len()
    }

    /// How long to sleep from `now` before the next round is due (at most `RESCAN`).
    pub(crate) fn sleep(&self, now: i64) -> Duration {
        let wake = self.due.iter().map(|d| d.at).min().unwrap_or(now + RESCAN);
        Duration::from_nanos((wake - now).clamp(0, RESCAN) as u64)
    }

    /// The rounds due at `now`: (resolution, scheduled time).
    pub(crate) fn due(&self, now: i64) -> Vec<(i64, i64)> {
        self.due.iter().filter(|d| d.at <= now).map(|d| (d.resolution, d.at)).collect()
    }

    /// The round of `resolution` has run; its next one is the first after `now`.
    pub(crate) fn ran(&mut self, resolution: i64, now: i64, flush: &FlushSchedule) {
        if let Some(d) = self.due.iter_mut().find(|d| d.resolution == resolution) {
            d.at = next_flush(flush, resolution, now);
        }
    }
}

pub(crate) async fn run(flusher: Rc<Flusher>, lifecycle: Rc<IngestLifecycle>) {
    let state = flusher.state();
    let flush = &state.config.flush;
    let mut schedule = Schedule::default();
    loop {
        let now = now_nanos();
        let resolutions: Vec<i64> = state.aggregator.borrow().resolutions().collect();
        schedule.track(&resolutions, now, flush);
        state.stats.borrow_mut().flush_schedules = schedule.len() as u64;
        if lifecycle.sleep_unless_stopped(schedule.sleep(now)).await {
            return;
        }
        for (resolution, at) in schedule.due(now_nanos()) {
            flusher.round(resolution, at, flush_horizon(flush, now_nanos())).await;
            schedule.ran(resolution, now_nanos(), flush);
        }
    }
}

/// Queues the passthrough points the core accepted on the sinks every
/// `PASSTHROUGH_PUSH_EVERY` until ingest stops; the final flush writes the last ones. While
/// none come, the looks double in spacing up to `PASSTHROUGH_IDLE_LOOK_EVERY`.
pub(crate) async fn run_passthrough(flusher: Rc<Flusher>, lifecycle: Rc<IngestLifecycle>) {
    let mut every = PASSTHROUGH_PUSH_EVERY;
    while !lifecycle.sleep_unless_stopped(every).await {
        if flusher.state().aggregator.borrow().passthrough.pending() > 0 {
            flusher.push_passthrough().await;
            every = PASSTHROUGH_PUSH_EVERY;
        } else {
            every = (every * 2).min(PASSTHROUGH_IDLE_LOOK_EVERY);
        }
    }
}

/// The first flush time of resolution `r` after `now`.
fn next_flush(flush: &FlushSchedule, r: i64, now: i64) -> i64 {
    let at = truncate(now, r) + flush.offset(r);
    if at <= now { at + r } else { at }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sheaf_shard_core::*;

    const SECOND: i64 = 1_000_000_000;

    fn flush_schedule(seed: u64, delay_ms: u64) -> FlushSchedule {
        FlushSchedule {
            max_jitters: vec![(Duration::from_secs(5), 1.0)],
            jitter_enabled: true,
            seed,
            min_offset: Duration::from_millis(delay_ms),
        }
    }

    /// Runs a core's rounds of 5s windows on a fake clock, as the flush task does, with a
    /// value every 100 ms, for seeds (jitter offsets) and flush delays that include offsets of
    /// a period or more: every window is flushed at or after `end + flush_delay`, each once,
    /// and none waits more than two periods past that.
    #[test]
    fn no_window_is_flushed_before_its_end_plus_the_flush_delay() {
        let r = 5 * SECOND;
        let mut spilled = 0;
        for seed in 0..40u64 {
            for delay_ms in [0, 300, 500, 2_000] {
                let flush = flush_schedule(seed, delay_ms);
                let delay = flush.delay_nanos();
                spilled += usize::from(flush.offset(r) >= r);
                let options = AggregatorOptions::with_policies(vec!["5s:1h".parse().unwrap()]);
                let mut agg = CoreAggregator::new(options.clone(), 1);
                let mut out = FlushCollector::new(options.naming, 0, 1024);
                let mut schedule = Schedule::default();
                let start = 1_700_000_000 * SECOND + 123_456_789;
                let mut now = start;
                let mut flushed = Vec::new();
                while now < start + 60 * SECOND {
                    let mut batch = SampleBatch::default();
                    batch.push(0, 1, b"c", MetricType::Counter, UNTIMED, SampleValue::Number(1.0), DEFAULT_SPEC);
                    agg.apply(&batch, now);
                    let resolutions: Vec<i64> = agg.resolutions().collect();
                    schedule.track(&resolutions, now, &flush);
                    now += (schedule.sleep(now).as_nanos() as i64).min(SECOND / 10);
                    for (resolution, _) in schedule.due(now) {
                        agg.begin_flush(resolution, flush_horizon(&flush, now));
                        agg.flush_shard(0, resolution, now, &mut out);
                        for batch in out.take(true) {
                            for v in batch.iter() {
                                let end = v.time_nanos;
                                assert!(
                                    end + delay <= now,
                                    "seed {seed}, delay {delay_ms}ms, offset {}ms: window ending at {} \
                                     flushed {}ms after its end",
                                    flush.offset(r) / 1_000_000,
                                    end - start,
                                    (now - end) / 1_000_000,
                                );
                                assert!(now - end <= delay + 2 * r, "window ending at {} flushed late", end - start);
                                flushed.push(end);
                            }
                        }
                        schedule.ran(resolution, now, &flush);
                    }
                }
                let mut unique = flushed.clone();
                unique.dedup();
                assert_eq!(unique, flushed, "a window flushed twice");
                assert!(flushed.len() >= 9, "seed {seed}, delay {delay_ms}ms: {} windows flushed", flushed.len());
            }
        }
        assert!(spilled > 0, "no offset of a period or more was tried");
    }

    #[test]
    fn a_resolution_no_longer_held_loses_its_rounds() {
        let flush = flush_schedule(7, 0);
        let mut schedule = Schedule::default();
        schedule.track(&[SECOND, 10 * SECOND], 0, &flush);
        assert_eq!(schedule.len(), 2);
        schedule.track(&[10 * SECOND], 0, &flush);
        assert_eq!(schedule.len(), 1);
        assert!(schedule.due(100 * SECOND).iter().all(|&(r, _)| r == 10 * SECOND));
    }
}
