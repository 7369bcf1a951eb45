//! The flush schedule of one core: when each resolution's next round is due, and the task
//! (in the core's `flush` queue) that runs them until ingest stops; the final flush is then
//! driven by the `FinalFlush` command.

use std::rc::Rc;
use std::time::Duration;

use sheaf_shard_core::time::{now_nanos, truncate};

use super::rounds::Flusher;
use crate::core::IngestLifecycle;

struct Due {
    resolution: i64,
    at: i64,
}

/// How often the schedule looks for resolutions first seen in metadata, at the least.
const RESCAN: i64 = 1_000_000_000;

pub(crate) async fn run(flusher: Rc<Flusher>, lifecycle: Rc<IngestLifecycle>) {
    let mut schedule: Vec<Due> = Vec::new();
    loop {
        let now = now_nanos();
        let resolutions: Vec<i64> = flusher.state().aggregator.borrow().resolutions().collect();
        for r in resolutions {
            if !schedule.iter().any(|d| d.resolution == r) {
                schedule.push(Due { resolution: r, at: next_flush(&flusher, r, now) });
            }
        }
        let wake = schedule.iter().map(|d| d.at).min().unwrap_or(now + RESCAN);
        let sleep = (wake - now).clamp(0, RESCAN) as u64;
        if lifecycle.sleep_unless_stopped(Duration::from_nanos(sleep)).await {
            return;
        }
        let now = now_nanos();
        for due in schedule.iter_mut().filter(|d| d.at <= now) {
            flusher.round(due.resolution, due.at).await;
            due.at = next_flush(&flusher, due.resolution, now_nanos());
        }
    }
}

/// The first flush time of resolution `r` after `now`.
fn next_flush(flusher: &Flusher, r: i64, now: i64) -> i64 {
    let at = truncate(now, r) + flusher.state().config.flush.offset(r);
    if at <= now { at + r } else { at }
}
