//! `SinkQueue`: the lock-free queue between the cores' flushes and one sink thread.
//!
//! Any core pushes (`try_push`: crossbeam `ArrayQueue`, no lock); one sink thread pops.
//! Wake-up protocol: the consumer registers its thread handle once, then loops "pop until
//! empty; if closing, drain and stop; else park". A push unparks the registered consumer
//! after the item is in the queue, and `close` sets the flag before unparking, so a park
//! that follows either returns at once (the unpark token) — no wake-up is lost. Checked
//! under shuttle in `shuttle_tests`. A full queue is reported to the pusher, which waits a
//! bounded time and then counts the batch as dropped here.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sheaf_shard_core::FlushBatch;

use crate::sync::{AtomicBool, AtomicU64, BoundedQueue, Ordering, thread};

/// The queue and its wake-up protocol, generic so the protocol can be model-checked.
pub(crate) struct WakeQueue<T> {
    items: BoundedQueue<T>,
    consumer: OnceLock<thread::Thread>,
    closing: AtomicBool,
}

impl<T> WakeQueue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { items: BoundedQueue::new(capacity.max(1)), consumer: OnceLock::new(), closing: AtomicBool::new(false) }
    }

    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        self.items.push(item)?;
        if let Some(t) = self.consumer.get() {
            t.unpark();
        }
        Ok(())
    }

    pub(crate) fn pop(&self) -> Option<T> {
        self.items.pop()
    }

    pub(crate) fn register_consumer(&self) {
        let _ = self.consumer.set(thread::current());
    }

    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        if let Some(t) = self.consumer.get() {
            t.unpark();
        }
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Parks until a push or close (or, in production, the timeout as a safety net).
    pub(crate) fn wait(&self, _timeout: Duration) {
        if self.items.is_empty() && !self.is_closing() {
            #[cfg(not(feature = "shuttle"))]
            thread::park_timeout(_timeout);
            #[cfg(feature = "shuttle")]
            thread::park();
        }
    }
}

/// Emptied `FlushBatch`es on their way back from the sink threads to the core that filled
/// them: one lock-free `ArrayQueue` per core. A batch shared by several sinks comes back when
/// the last of them is done with it; a full queue drops it.
#[derive(Debug)]
pub struct FlushBatchPool {
    per_core: Vec<crossbeam_queue::ArrayQueue<FlushBatch>>,
}

impl FlushBatchPool {
    pub fn new(cores: usize, per_core: usize) -> Arc<Self> {
        Arc::new(Self { per_core: (0..cores).map(|_| crossbeam_queue::ArrayQueue::new(per_core.max(1))).collect() })
    }

    /// Called by a sink when it is done with `batch`.
    pub fn give_back(&self, batch: Arc<FlushBatch>) {
        if let Some(mut batch) = Arc::into_inner(batch) {
            batch.clear();
            self.keep(batch);
        }
    }

    /// Keeps an emptied batch for its core, or frees it if the core already has enough.
    pub(crate) fn keep(&self, batch: FlushBatch) {
        if let Some(q) = self.per_core.get(batch.core) {
            let _ = q.push(batch);
        }
    }

    pub(crate) fn take(&self, core: usize) -> Option<FlushBatch> {
        self.per_core.get(core)?.pop()
    }
}

#[derive(Debug)]
pub struct SinkQueue {
    name: String,
    queue: WakeQueue<Arc<FlushBatch>>,
    /// Values that found the queue full for too long.
    pub dropped_values: AtomicU64,
    pub queued_values: AtomicU64,
    /// Values queued and not yet taken by the sink.
    pub backlog_values: AtomicU64,
    /// Per core: the highest batch sequence number this sink has written out (or dropped).
    written: Box<[AtomicU64]>,
}

impl<T> std::fmt::Debug for WakeQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WakeQueue")
    }
}

impl SinkQueue {
    pub fn new(name: impl Into<String>, capacity_batches: usize, cores: usize) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            queue: WakeQueue::new(capacity_batches),
            dropped_values: AtomicU64::new(0),
            queued_values: AtomicU64::new(0),
            backlog_values: AtomicU64::new(0),
            written: (0..cores).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// The sink is done with `core`'s batches up to `seq`: written where the destination keeps
    /// them (a file's page cache, an m3msg producer's retry buffer), or dropped and counted.
    /// Batches of one core reach a sink in sequence order.
    pub fn mark_written(&self, core: usize, seq: u64) {
        if let Some(w) = self.written.get(core) {
            w.fetch_max(seq, Ordering::Release);
        }
    }

    /// The highest sequence number of `core`'s batches this sink is done with.
    pub fn written(&self, core: usize) -> u64 {
        self.written.get(core).map_or(0, |w| w.load(Ordering::Acquire))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn try_push(&self, batch: Arc<FlushBatch>) -> Result<(), Arc<FlushBatch>> {
        let n = batch.len() as u64;
        // Count first so the backlog never reads negative to the consumer.
        self.backlog_values.fetch_add(n, Ordering::Relaxed);
        match self.queue.push(batch) {
            Ok(()) => {
                self.queued_values.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            Err(b) => {
                self.backlog_values.fetch_sub(n, Ordering::Relaxed);
                Err(b)
            }
        }
    }

    pub fn count_dropped(&self, values: usize) {
        self.dropped_values.fetch_add(values as u64, Ordering::Relaxed);
    }

    /// Called once by the sink thread before it starts popping.
    pub fn register_consumer(&self) {
        self.queue.register_consumer();
    }

    pub fn pop(&self) -> Option<Arc<FlushBatch>> {
        let b = self.queue.pop()?;
        self.backlog_values.fetch_sub(b.len() as u64, Ordering::Relaxed);
        Some(b)
    }

    /// Parks the sink thread until a push, a close or the timeout.
    pub fn wait(&self, timeout: Duration) {
        self.queue.wait(timeout);
    }

    /// No more pushes will come: the sink drains what is queued and stops.
    pub fn close(&self) {
        self.queue.close();
    }

    pub fn is_closing(&self) -> bool {
        self.queue.is_closing()
    }
}

#[cfg(all(test, feature = "shuttle"))]
mod shuttle_tests {
    use super::WakeQueue;
    use shuttle::sync::Arc;
    use shuttle::thread;
    use std::time::Duration;

    /// Two producers push while the consumer runs the sink loop. The owner waits until the
    /// consumer has taken all six items *before* closing, so every item must be taken on a
    /// push's wake-up alone: a lost wake-up parks the consumer forever while the owner
    /// waits, which shuttle reports as a deadlock. Then the close must stop the consumer.
    fn sink_loop_takes_everything() {
        let q = Arc::new(WakeQueue::<u32>::new(2));
        let (all_taken, taken) = shuttle::sync::mpsc::channel::<()>();
        let consumer = {
            let q = q.clone();
            thread::spawn(move || {
                q.register_consumer();
                let mut got = Vec::new();
                loop {
                    while let Some(v) = q.pop() {
                        got.push(v);
                        if got.len() == 6 {
                            all_taken.send(()).unwrap();
                        }
                    }
                    if q.is_closing() {
                        while let Some(v) = q.pop() {
                            got.push(v);
                        }
                        return got;
                    }
                    q.wait(Duration::from_millis(100));
                }
            })
        };
        let producers: Vec<_> = (0..2u32)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || {
                    for i in 0..3 {
                        let mut item = p * 10 + i;
                        // A full queue makes the producer retry, as a flush does.
                        while let Err(back) = q.push(item) {
                            item = back;
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        taken.recv().unwrap();
        q.close();
        let mut got = consumer.join().unwrap();
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2, 10, 11, 12]);
    }

    #[test]
    fn shuttle_sink_wake_protocol_random() {
        shuttle::check_random(sink_loop_takes_everything, 2000);
    }

    #[test]
    fn shuttle_sink_wake_protocol_pct() {
        shuttle::check_pct(sink_loop_takes_everything, 2000, 3);
    }
}
