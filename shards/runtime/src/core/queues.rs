//! The task queues of a shard core, and so the priorities of its work. glommio shares the
//! core's CPU between queues in proportion to their shares whenever more than one has work,
//! and a queue whose latency matters shortens the others' time slice while it has work.
//!
//! | queue | runs | shares | latency |
//! |---|---|---|---|
//! | `ingest` | socket reads, decoding, hand-off drains, forwarders | 1000 | not important |
//! | `flush` | the flush schedule and its rounds, a promotion's discard, the final flush | 500 | 10 ms |
//! | `control` | the command loop, the stats publisher | 100 | 10 ms |
//!
//! So while a flush round runs on a busy core, ingest keeps about two thirds of it; a due
//! flush or an arriving command waits at most about 10 ms for the ingest task to reach a
//! yield point; the command loop and the stats publisher, which only apply small changes and
//! copy counters, take little and cut ingest's slice short for a moment when they wake. Lives
//! on its shard core; the handles are plain ids, copied to whoever spawns.
//!
//! Debug builds also run glommio's stall detector: a queue that runs past its time slice
//! without yielding is logged (`StallWarning`) with a backtrace.

use std::future::Future;
use std::time::Duration;

use glommio::{Latency, Shares, StallDetectionHandler, TaskQueueHandle};

/// How long a flush or a command may wait for the queue that runs before it yields.
const LATENCY: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug)]
pub(crate) struct TaskQueues {
    pub(crate) ingest: TaskQueueHandle,
    pub(crate) flush: TaskQueueHandle,
    pub(crate) control: TaskQueueHandle,
}

impl TaskQueues {
    /// Creates the queues on the calling core's executor.
    pub(crate) fn create() -> Self {
        let executor = glommio::executor();
        Self {
            ingest: executor.create_task_queue(Shares::Static(1000), Latency::NotImportant, "ingest"),
            flush: executor.create_task_queue(Shares::Static(500), Latency::Matters(LATENCY), "flush"),
            control: executor.create_task_queue(Shares::Static(100), Latency::Matters(LATENCY), "control"),
        }
    }
}

/// Spawns a detached task into `queue` on this core (queues are never removed, so this fails
/// only on a queue of another executor: logged).
pub(crate) fn spawn_into(queue: TaskQueueHandle, task: impl Future<Output = ()> + 'static) {
    match glommio::spawn_local_into(task, queue) {
        Ok(task) => drop(task.detach()),
        Err(e) => tracing::error!(error = %e, "could not spawn a task"),
    }
}

/// Logs a task queue that ran over its time slice without yielding (`data_plane.detect_stalls`),
/// through glommio's default report (a `log` warning with the backtrace, which the binary's
/// subscriber prints). glommio symbolises that backtrace on the core: the first one parses the
/// binary's debug info, which costs tens of MiB that stay resident and, in a debug build,
/// seconds of the core's time; hence off unless asked for.
#[derive(Debug)]
pub(crate) struct StallWarning;

impl StallDetectionHandler for StallWarning {
    fn threshold(&self, _queue: TaskQueueHandle, _expected: Duration) -> Option<Duration> {
        // Only a stall well past the slice is worth a warning (and unoptimised code is slow).
        Some(Duration::from_millis(50))
    }
}
