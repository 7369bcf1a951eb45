//! `IngestLifecycle`: how a core's ingest tasks end. One stop signal every ingest task waits
//! on beside its socket, a count of the tasks alive (with a signal when the last one ends
//! after the stop), and the sockets of the open connections, which `stop` shuts down for
//! reading so that each connection reads to EOF, hands on what it decoded, acks it and ends.
//!
//! Lives on its shard core, shared through `Rc` by that core's ingest tasks (which wait on
//! it and register their connections) and its command loop (which calls `stop`); no other
//! thread touches it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

use glommio::TaskQueueHandle;
use glommio::sync::Semaphore;

use super::queues::spawn_into;
use super::state::CoreState;

/// How long `stop` waits for the ingest tasks before it gives up on them (logged).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct IngestLifecycle {
    state: Rc<CoreState>,
    /// Never has permits; closing it wakes every task waiting in `stopped`.
    stop: Semaphore,
    stopping: Cell<bool>,
    /// Ingest tasks alive (each holds a `TaskPass`).
    tasks: Cell<usize>,
    /// Signalled when the last ingest task ends once `stop` has begun.
    all_ended: Semaphore,
    connections: RefCell<hashbrown::HashMap<u64, RawFd>>,
    next_connection: Cell<u64>,
}

impl IngestLifecycle {
    pub(crate) fn new(state: Rc<CoreState>) -> Self {
        Self {
            state,
            stop: Semaphore::new(0),
            stopping: Cell::new(false),
            tasks: Cell::new(0),
            all_ended: Semaphore::new(0),
            connections: RefCell::default(),
            next_connection: Cell::new(0),
        }
    }

    /// Whether `stop` has begun.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    /// Resolves once ingest is being stopped.
    pub(crate) async fn stopped(&self) {
        let _ = self.stop.acquire(1).await;
    }

    /// Sleeps for `d`, or less if ingest is stopped meanwhile; true if it was.
    pub(crate) async fn sleep_unless_stopped(&self, d: Duration) -> bool {
        let slept = async {
            glommio::timer::sleep(d).await;
            false
        };
        let stopped = async {
            self.stopped().await;
            true
        };
        futures_lite::future::or(slept, stopped).await
    }

    /// Spawns an ingest task into `queue`, counted until it ends. Once `stop` has begun
    /// nothing is spawned: the task is dropped unpolled (a connection it owns is closed).
    pub(crate) fn spawn(self: &Rc<Self>, queue: TaskQueueHandle, task: impl Future<Output = ()> + 'static) {
        if self.is_stopping() {
            return;
        }
        self.tasks.set(self.tasks.get() + 1);
        let pass = TaskPass(self.clone());
        spawn_into(queue, async move {
            let _pass = pass;
            task.await;
        });
    }

    /// Registers a connection's socket, so that `stop` can end its reads, for as long as the
    /// guard lives. The guard must be dropped in the same poll as the stream that owns `fd`,
    /// with no `.await` between the two drops.
    pub(crate) fn register_connection(self: &Rc<Self>, fd: RawFd) -> ConnectionGuard {
        let id = self.next_connection.get();
        self.next_connection.set(id + 1);
        let open = {
            let mut connections = self.connections.borrow_mut();
            connections.insert(id, fd);
            connections.len()
        };
        self.state.stats.borrow_mut().open_connections = open as u64;
        ConnectionGuard { lifecycle: self.clone(), id }
    }

    /// Stops ingest: every task waiting in `stopped` wakes, every connection's reads end,
    /// and this returns once every ingest task has ended (or `STOP_TIMEOUT` has passed).
    pub(crate) async fn stop(&self) {
        self.stopping.set(true);
        self.stop.close();
        for fd in self.connections.borrow().values() {
            // A connection's fd is in the registry only while its guard lives, and the guard
            // is dropped in the same poll as the stream that owns the fd, with no await in
            // between (`register_connection`); this runs on the same thread, between polls.
            // SAFETY: so `fd` is open and is that stream's socket; shutdown(2) only ends reads.
            unsafe {
                libc::shutdown(*fd, libc::SHUT_RD);
            }
        }
        if self.tasks.get() == 0 {
            return;
        }
        let ended = async {
            let _ = self.all_ended.acquire(1).await;
            false
        };
        let timed_out = async {
            glommio::timer::sleep(STOP_TIMEOUT).await;
            true
        };
        if futures_lite::future::or(ended, timed_out).await {
            tracing::warn!(
                core = self.state.index,
                tasks = self.tasks.get(),
                "ingest tasks did not stop in {STOP_TIMEOUT:?}"
            );
        }
    }
}

/// Counts one ingest task while it lives.
struct TaskPass(Rc<IngestLifecycle>);

impl Drop for TaskPass {
    fn drop(&mut self) {
        let lifecycle = &self.0;
        lifecycle.tasks.set(lifecycle.tasks.get() - 1);
        if lifecycle.tasks.get() == 0 && lifecycle.is_stopping() {
            lifecycle.all_ended.signal(1);
        }
    }
}

/// Keeps a connection's socket registered (see `IngestLifecycle::register_connection`).
pub(crate) struct ConnectionGuard {
    lifecycle: Rc<IngestLifecycle>,
    id: u64,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let open = {
            let mut connections = self.lifecycle.connections.borrow_mut();
            connections.remove(&self.id);
            connections.len()
        };
        self.lifecycle.state.stats.borrow_mut().open_connections = open as u64;
    }
}
