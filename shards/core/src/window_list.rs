//! `WindowList`: the windows of one series element, sorted by start, with the newest one in a
//! fixed place.
//!
//! Lives inside a `Series` on the core that owns its shard; only that core touches it.
//!
//! #[PerformanceCriticalPath]: almost every value goes to the newest window, so finding it
//! must cost a compare. A `SmallVec` of two windows first asks where its items live (inline
//! or spilled) and how many there are, then indexes, and the borrow checker makes the caller
//! do it twice (once to find, once to return the state). Here the newest window sits in a
//! field of its own: one load and one compare, and the older windows (the closed one between
//! a window's end and its flush, and timed windows further back) wait in a `SmallVec` of one.
//! The list takes 40 bytes, as a `SmallVec` of two windows would.

use smallvec::SmallVec;

use crate::time::UnixNanos;
use crate::window::WindowState;

/// One window: its start and its untagged state (the element that owns the list knows its
/// kind).
pub(crate) struct Window {
    pub(crate) start: UnixNanos,
    pub(crate) state: WindowState,
}

/// The start that marks the newest slot as empty. No window starts there: `get_or_open` moves
/// a window asked for at this instant (the year 1677, before any clock) one nanosecond later.
const VACANT: UnixNanos = UnixNanos::MIN;

/// Windows sorted by start, at most one per start.
///
/// Invariant: `newest.start == VACANT` exactly when the list is empty, and then `older` is
/// empty too; otherwise every window of `older` starts before `newest`, oldest first. The
/// state of a vacant `newest` is `WindowState::vacant()`, which owns nothing.
pub(crate) struct WindowList {
    newest: Window,
    older: SmallVec<[Window; 1]>,
}

const _: () = assert!(std::mem::size_of::<WindowList>() == 40);

impl Default for WindowList {
    fn default() -> Self {
        Self { newest: Window { start: VACANT, state: WindowState::vacant() }, older: SmallVec::new() }
    }
}

impl WindowList {
    /// The state of the window starting at `start`, opened with `open()` if there is none.
    #[inline]
    pub(crate) fn get_or_open(&mut self, start: UnixNanos, open: impl FnOnce() -> WindowState) -> &mut WindowState {
        if self.newest.start == start && start != VACANT {
            return &mut self.newest.state;
        }
        self.get_or_open_elsewhere(start.max(VACANT + 1), open)
    }

    #[cold]
    #[inline(never)]
    fn get_or_open_elsewhere(&mut self, start: UnixNanos, open: impl FnOnce() -> WindowState) -> &mut WindowState {
        if self.newest.start == VACANT {
            self.newest = Window { start, state: open() };
            return &mut self.newest.state;
        }
        if start == self.newest.start {
            return &mut self.newest.state;
        }
        if start > self.newest.start {
            let previous = std::mem::replace(&mut self.newest, Window { start, state: open() });
            self.older.push(previous);
            return &mut self.newest.state;
        }
        let at = match self.older.binary_search_by_key(&start, |w| w.start) {
            Ok(at) => at,
            Err(at) => {
                self.older.insert(at, Window { start, state: open() });
                at
            }
        };
        &mut self.older[at].state
    }

    /// The newest window, if any.
    #[inline]
    pub(crate) fn newest(&self) -> Option<&Window> {
        (self.newest.start != VACANT).then_some(&self.newest)
    }

    /// The oldest window, if any: the one a flush reads first.
    #[inline]
    pub(crate) fn oldest(&self) -> Option<&Window> {
        self.older.first().or_else(|| self.newest())
    }

    pub(crate) fn len(&self) -> usize {
        self.older.len() + usize::from(self.newest.start != VACANT)
    }

    /// Every window, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Window> {
        self.older.iter().chain(self.newest())
    }

    /// Every window, oldest first, mutably.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Window> {
        let newest = (self.newest.start != VACANT).then_some(&mut self.newest);
        self.older.iter_mut().chain(newest)
    }

    /// Removes the oldest windows as long as `due(start)` returns something, handing each to
    /// `each` with it, oldest first. (A flush: usually one closed window in `older`, or the
    /// newest one.)
    #[inline]
    pub(crate) fn take_front_while<D>(
        &mut self,
        mut due: impl FnMut(UnixNanos) -> Option<D>,
        mut each: impl FnMut(Window, D),
    ) {
        // One call site each for `due` and `each`, so that both are inlined here.
        loop {
            let oldest = match self.older.first() {
                Some(w) => w.start,
                None if self.newest.start != VACANT => self.newest.start,
                None => break,
            };
            let Some(d) = due(oldest) else { break };
            // With `older` empty the newest is the oldest left.
            let w = if self.older.is_empty() { std::mem::take(self).newest } else { self.older.remove(0) };
            each(w, d);
        }
        // A burst of timed windows may have spilled the older ones to the heap; give it back.
        if self.older.spilled() && self.older.len() <= 1 {
            self.older.shrink_to_fit();
        }
    }

    /// Removes the `n` oldest windows (all of them if there are fewer), handing each to `each`,
    /// oldest first.
    #[cfg(test)]
    pub(crate) fn take_front(&mut self, n: usize, mut each: impl FnMut(Window)) {
        let mut left = n;
        self.take_front_while(
            |_| {
                let go = (left > 0).then_some(());
                left = left.saturating_sub(1);
                go
            },
            |w, ()| each(w),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::window::WindowKind;

    /// A list of `Sum` states, where a state's number says which operation opened it.
    fn sum(list: &mut WindowList, start: UnixNanos, tag: f64) -> f64 {
        let state = list.get_or_open(start, || {
            let mut s = WindowState::new(WindowKind::Sum);
            // SAFETY: `s` was just created as a `Sum`.
            unsafe { s.add(WindowKind::Sum, tag, 0) };
            s
        });
        // SAFETY: every state in the list is a `Sum` (only `sum` opens them).
        unsafe { state.add(WindowKind::Sum, 0.0, 0) };
        // SAFETY: as above.
        match unsafe { state.view(WindowKind::Sum) } {
            crate::window::WindowMut::Sum(n) => *n,
            _ => unreachable!("a Sum state"),
        }
    }

    proptest! {
        /// Against a sorted map: opening, finding and taking the oldest windows keep the same
        /// windows in the same order, whichever window is asked for.
        #[test]
        fn behaves_like_a_sorted_map(ops in prop::collection::vec((0u8..4, -6i64..6), 1..200)) {
            let mut list = WindowList::default();
            let mut model: BTreeMap<UnixNanos, f64> = BTreeMap::new();
            for (step, (op, offset)) in ops.into_iter().enumerate() {
                let start = 1_000 + offset * 10;
                if op == 0 {
                    let n = offset.unsigned_abs() as usize % 4;
                    let mut taken = Vec::new();
                    list.take_front(n, |w| taken.push(w.start));
                    let want: Vec<UnixNanos> = model.keys().copied().take(n).collect();
                    for k in &want {
                        model.remove(k);
                    }
                    prop_assert_eq!(taken, want);
                } else {
                    let got = sum(&mut list, start, step as f64);
                    let want = *model.entry(start).or_insert(step as f64);
                    prop_assert_eq!(got, want);
                }
                prop_assert_eq!(list.len(), model.len());
                prop_assert!(list.iter().map(|w| w.start).eq(model.keys().copied()));
                prop_assert_eq!(list.newest().map(|w| w.start), model.keys().next_back().copied());
            }
        }
    }

    #[test]
    fn the_vacant_start_is_never_a_window() {
        let mut list = WindowList::default();
        assert_eq!(sum(&mut list, VACANT, 7.0), 7.0);
        assert_eq!(list.newest().map(|w| w.start), Some(VACANT + 1));
        assert_eq!(sum(&mut list, VACANT, 8.0), 7.0);
        assert_eq!(list.len(), 1);
    }
}
