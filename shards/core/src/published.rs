//! `Published<T>`: a value one core writes and any thread reads, without locks.
//!
//! The owner publishes a fresh immutable `T` (`publish`); readers (the admin API on the
//! control thread) pin an epoch and read the current one (`read`). The value a publish
//! replaces is destroyed only after every reader pinned before the swap has unpinned
//! (crossbeam-epoch), so a reader never sees freed memory and never waits.

use std::sync::atomic::Ordering;

use crossbeam_epoch::{self as epoch, Atomic, Owned};

pub struct Published<T> {
    current: Atomic<T>,
}

impl<T> std::fmt::Debug for Published<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Published")
    }
}

impl<T: Send + Sync + 'static> Published<T> {
    pub fn new(initial: T) -> Self {
        Self { current: Atomic::new(initial) }
    }

    /// Replaces the published value; the old one is reclaimed once no reader can hold it.
    pub fn publish(&self, value: T) {
        let guard = epoch::pin();
        let old = self.current.swap(Owned::new(value), Ordering::AcqRel, &guard);
        if !old.is_null() {
            // `old` was just unlinked by the swap, so no new reader can reach it; readers that
            // loaded it hold a guard pinned before this point.
            // SAFETY: `defer_destroy` frees it only after all of those guards are unpinned.
            unsafe { guard.defer_destroy(old) };
        }
    }

    /// Runs `f` on the current value.
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let guard = epoch::pin();
        let shared = self.current.load(Ordering::Acquire, &guard);
        // The pointer is never null: set in `new`, only replaced by non-null values.
        // SAFETY: it stays valid while `guard` is pinned; replaced values go through `defer_destroy`.
        let value = unsafe { shared.deref() };
        f(value)
    }
}

impl<T> Drop for Published<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other thread can read `current` any more, so drop it now.
        unsafe {
            let guard = epoch::unprotected();
            let old = self.current.swap(epoch::Shared::null(), Ordering::AcqRel, guard);
            if !old.is_null() {
                drop(old.into_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn readers_always_see_a_whole_value_while_the_owner_publishes() {
        // Each value is a vector whose elements all equal its length: a torn or freed read
        // would break that.
        let cell = Arc::new(Published::new(vec![0u64; 0]));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reads = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (cell, stop, reads) = (cell.clone(), stop.clone(), reads.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        cell.read(|v| assert!(v.iter().all(|x| *x == v.len() as u64)));
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        // Keep publishing until the readers have overlapped with many publishes.
        let mut n = 1u64;
        while n < 2000 || reads.load(Ordering::Relaxed) < 2000 {
            cell.publish(vec![n % 64; (n % 64) as usize]);
            n += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        cell.read(|v| assert_eq!(v.len() as u64, (n - 1) % 64));
    }
}
