//! `Paged<T>`: a vector stored as fixed-size pages, for a shard's series.
//!
//! A `Vec` that grows by doubling holds up to half its capacity unused and, each time it
//! grows, briefly needs the old and the new buffer at once (and the allocator may keep the
//! old one's pages resident). A million ~100-byte series make that tens of megabytes. Pages
//! of `PAGE` elements are allocated at their exact size and never moved: the unused tail is
//! at most one page per shard, and growing never copies.
//!
//! Lives inside a `ShardMap`, on the core that owns the shard.

use std::ops::{Index, IndexMut};

/// Elements per page (a power of two, so an index splits with a shift and a mask).
const PAGE_BITS: u32 = 8;
const PAGE: usize = 1 << PAGE_BITS;

/// Invariant: every page but the last holds exactly `PAGE` elements and the last holds the
/// rest, at least one (no page is empty); so element `i` exists exactly when `i < len`. Only
/// `push`, `pop` and `swap_remove` (through those two) add or remove elements or pages.
#[derive(Debug)]
pub(crate) struct Paged<T> {
    pages: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Paged<T> {
    fn default() -> Self {
        Self { pages: Vec::new(), len: 0 }
    }
}

impl<T> Paged<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes of the pages (allocated, not only used).
    pub(crate) fn resident_bytes(&self) -> usize {
        self.pages.iter().map(Vec::capacity).sum::<usize>() * std::mem::size_of::<T>()
    }

    /// Element `i`, with one bounds check instead of two (the page, then the element): the
    /// pages are laid out so that `i < len` is enough (see `Paged`'s invariant).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        // By the invariant, `i < len` means that page `i >> PAGE_BITS` exists and holds more
        // than `i & (PAGE - 1)` elements.
        // SAFETY: so both unchecked indexes are in bounds.
        Some(unsafe { self.pages.get_unchecked(i >> PAGE_BITS).get_unchecked(i & (PAGE - 1)) })
    }

    /// As `get`, mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        // SAFETY: as in `get`.
        Some(unsafe { self.pages.get_unchecked_mut(i >> PAGE_BITS).get_unchecked_mut(i & (PAGE - 1)) })
    }

    pub(crate) fn push(&mut self, value: T) {
        if self.len.is_multiple_of(PAGE) {
            self.pages.push(Vec::with_capacity(PAGE));
        }
        // A page is pushed above whenever the last one is full, so there is always one here.
        if let Some(page) = self.pages.last_mut() {
            page.push(value);
            self.len += 1;
        }
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        let page = self.pages.last_mut()?;
        let value = page.pop();
        self.len -= usize::from(value.is_some());
        if page.is_empty() {
            self.pages.pop();
        }
        value
    }

    /// Removes element `i`, moving the last one into its place.
    pub(crate) fn swap_remove(&mut self, i: usize) -> T {
        assert!(i < self.len, "swap_remove index {i} out of bounds ({})", self.len);
        let last = self.pop().expect("non-empty: checked above");
        if i == self.len { last } else { std::mem::replace(&mut self[i], last) }
    }

    /// Asks the CPU to start loading element `i` (if it exists) into cache, without waiting.
    #[inline]
    pub(crate) fn prefetch(&self, i: usize) {
        if let Some(element) = self.get(i) {
            // An element larger than its alignment may straddle two cache lines: load both
            // ends. (A 64-byte element aligned to 64 never does.)
            prefetch(element);
            if size_of::<T>() > align_of::<T>().min(64) {
                prefetch_address(std::ptr::from_ref(element).cast::<u8>().wrapping_add(size_of::<T>() - 1));
            }
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.pages.iter().flatten()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.pages.iter_mut().flatten()
    }
}

/// Asks the CPU to start loading the cache line of `p` (a no-op off x86-64).
#[inline(always)]
pub(crate) fn prefetch<T>(p: &T) {
    prefetch_address(std::ptr::from_ref(p).cast());
}

/// Asks the CPU to start loading every cache line `p` spans (a no-op off x86-64).
#[inline(always)]
pub(crate) fn prefetch_all<T>(p: &T) {
    let start = std::ptr::from_ref(p).cast::<u8>();
    let mut offset = 0;
    while offset < size_of::<T>() {
        prefetch_address(start.wrapping_add(offset));
        offset += 64;
    }
    prefetch_address(start.wrapping_add(size_of::<T>().saturating_sub(1)));
}

/// Asks the CPU to start loading the cache line of `p`; any address will do.
#[inline(always)]
pub(crate) fn prefetch_address(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults, whatever the address, and reads nothing.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl<T> Index<usize> for Paged<T> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        match self.get(i) {
            Some(element) => element,
            None => panic!("index {i} out of bounds ({})", self.len),
        }
    }
}

impl<T> IndexMut<usize> for Paged<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        let len = self.len;
        match self.get_mut(i) {
            Some(element) => element,
            None => panic!("index {i} out of bounds ({len})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Behaves like a `Vec` under pushes, pops and swap_removes across page boundaries.
        #[test]
        fn behaves_like_a_vec(ops in prop::collection::vec((0u8..4, any::<u16>()), 1..2000)) {
            let mut paged = Paged::default();
            let mut model = Vec::new();
            for (op, n) in ops {
                match op {
                    0 | 1 => {
                        paged.push(n);
                        model.push(n);
                    }
                    2 => prop_assert_eq!(paged.pop(), model.pop()),
                    _ if !model.is_empty() => {
                        let i = usize::from(n) % model.len();
                        prop_assert_eq!(paged.swap_remove(i), model.swap_remove(i));
                    }
                    _ => {}
                }
                prop_assert_eq!(paged.len(), model.len());
                prop_assert_eq!(paged.pages.len(), model.len().div_ceil(PAGE));
                // The layout `get`'s single bounds check relies on: full pages, then the rest.
                for (k, page) in paged.pages.iter().enumerate() {
                    prop_assert_eq!(page.len(), (model.len() - k * PAGE).min(PAGE));
                }
                for i in [0, model.len().saturating_sub(1), model.len(), model.len() + PAGE] {
                    prop_assert_eq!(paged.get(i), model.get(i));
                }
            }
            prop_assert!(paged.iter().eq(model.iter()));
            for (i, v) in model.iter().enumerate() {
                prop_assert_eq!(paged[i], *v);
            }
        }
    }
}
