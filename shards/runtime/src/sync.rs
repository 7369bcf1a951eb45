//! The atomics and thread handles the cross-thread protocols of this crate use: std in
//! production, shuttle's instrumented ones under the `shuttle` feature so that the
//! protocol tests (`*::shuttle_tests`) explore their interleavings.

#[cfg(feature = "shuttle")]
pub(crate) use shuttle::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(feature = "shuttle")]
pub(crate) use shuttle::thread;
#[cfg(not(feature = "shuttle"))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(not(feature = "shuttle"))]
pub(crate) use std::thread;

/// A bounded multi-producer queue: crossbeam's lock-free `ArrayQueue` in production; under
/// shuttle a bounded channel stands in for it (crossbeam checks the queue itself; what the
/// shuttle tests check is the wake-up and drain protocol around it).
#[cfg(not(feature = "shuttle"))]
pub(crate) struct BoundedQueue<T>(crossbeam_queue::ArrayQueue<T>);

#[cfg(not(feature = "shuttle"))]
impl<T> BoundedQueue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self(crossbeam_queue::ArrayQueue::new(capacity))
    }
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        self.0.push(item)
    }
    pub(crate) fn pop(&self) -> Option<T> {
        self.0.pop()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(feature = "shuttle")]
pub(crate) use crate::tests::shuttle_queue::BoundedQueue;
