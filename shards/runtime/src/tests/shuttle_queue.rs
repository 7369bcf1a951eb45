//! The shuttle stand-in for crossbeam's `ArrayQueue`: same API, built on shuttle's
//! instrumented mutex so the scheduler can interleave pushes and pops. Test-only.

use std::collections::VecDeque;

pub(crate) struct BoundedQueue<T> {
    items: shuttle::sync::Mutex<VecDeque<T>>,
    capacity: usize,
}

impl<T> BoundedQueue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { items: shuttle::sync::Mutex::new(VecDeque::new()), capacity }
    }
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let mut q = self.items.lock().unwrap();
        if q.len() >= self.capacity {
            return Err(item);
        }
        q.push_back(item);
        Ok(())
    }
    pub(crate) fn pop(&self) -> Option<T> {
        self.items.lock().unwrap().pop_front()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.items.lock().unwrap().is_empty()
    }
    pub(crate) fn len(&self) -> usize {
        self.items.lock().unwrap().len()
    }
}
