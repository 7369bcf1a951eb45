//! `SinkQueue`: the lock-free queue between the cores' flushes and one sink thread.
//!
//! Any core pushes (`try_push`, crossbeam `ArrayQueue`, no lock); one sink thread pops.
//! The consumer parks when idle and a push unparks it. A full queue is reported to the
//! pusher, which waits a bounded time and then counts the batch as dropped here.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use sheaf_shard_core::FlushBatch;

#[derive(Debug)]
pub struct SinkQueue {
    name: String,
    queue: ArrayQueue<Arc<FlushBatch>>,
    consumer: OnceLock<Thread>,
    closing: AtomicBool,
    /// Values that found the queue full for too long.
    pub dropped_values: AtomicU64,
    pub queued_values: AtomicU64,
    /// Values queued and not yet taken by the sink.
    pub backlog_values: AtomicU64,
}

impl SinkQueue {
    pub fn new(name: impl Into<String>, capacity_batches: usize) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            queue: ArrayQueue::new(capacity_batches.max(1)),
            consumer: OnceLock::new(),
            closing: AtomicBool::new(false),
            dropped_values: AtomicU64::new(0),
            queued_values: AtomicU64::new(0),
            backlog_values: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn try_push(&self, batch: Arc<FlushBatch>) -> Result<(), Arc<FlushBatch>> {
        let n = batch.len() as u64;
        self.queue.push(batch)?;
        self.queued_values.fetch_add(n, Ordering::Relaxed);
        self.backlog_values.fetch_add(n, Ordering::Relaxed);
        if let Some(t) = self.consumer.get() {
            t.unpark();
        }
        Ok(())
    }

    pub fn count_dropped(&self, values: usize) {
        self.dropped_values.fetch_add(values as u64, Ordering::Relaxed);
    }

    /// Called once by the sink thread before it starts popping.
    pub fn register_consumer(&self) {
        let _ = self.consumer.set(std::thread::current());
    }

    pub fn pop(&self) -> Option<Arc<FlushBatch>> {
        let b = self.queue.pop()?;
        self.backlog_values.fetch_sub(b.len() as u64, Ordering::Relaxed);
        Some(b)
    }

    /// Parks the sink thread until a push, a close or the timeout.
    pub fn wait(&self, timeout: Duration) {
        if self.queue.is_empty() && !self.is_closing() {
            std::thread::park_timeout(timeout);
        }
    }

    /// No more pushes will come: the sink drains what is queued and stops.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        if let Some(t) = self.consumer.get() {
            t.unpark();
        }
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }
}
