//! Window states to and from their archived mirror ([`StateCk`]), on the core that owns the
//! series. A state's variant follows its element's `WindowKind`; `valid_state` checks that
//! before `restore_state` builds anything from it.

use std::mem::ManuallyDrop;

use smallvec::SmallVec;

use super::format::{BucketsCk, FullCk, SketchCk, StateCk};
use crate::log_buckets::LogBuckets;
use crate::quantile::{Inner, QuantileSketch, Sketch};
use crate::window::{FullAgg, WindowKind, WindowState};

/// Buckets a sketch may hold (as `LogBuckets` bounds them) and exact values before the sketch.
const MAX_BUCKETS: usize = 4096;
const MAX_EXACT: usize = 128;

fn buckets_ck(b: &LogBuckets) -> BucketsCk {
    BucketsCk { counts: b.counts.clone(), first_key: b.first_key, collapsed: b.collapsed }
}

fn buckets_of(b: &BucketsCk) -> LogBuckets {
    LogBuckets { counts: b.counts.clone(), first_key: b.first_key, collapsed: b.collapsed }
}

fn sketch_ck(s: &QuantileSketch) -> SketchCk {
    match &s.inner {
        Inner::Exact(values) => SketchCk::Exact(values.to_vec()),
        Inner::Sketch(s) => SketchCk::Buckets {
            positive: buckets_ck(&s.positive),
            negative: s.negative.as_deref().map(buckets_ck),
            zeros: s.zeros,
            count: s.count,
            min: s.min,
            max: s.max,
        },
    }
}

fn sketch_of(s: &SketchCk) -> QuantileSketch {
    let inner = match s {
        SketchCk::Exact(values) => Inner::Exact(SmallVec::from_slice(values)),
        SketchCk::Buckets { positive, negative, zeros, count, min, max } => Inner::Sketch(Sketch {
            positive: buckets_of(positive),
            negative: negative.as_ref().map(|b| Box::new(buckets_of(b))),
            zeros: *zeros,
            count: *count,
            min: *min,
            max: *max,
        }),
    };
    QuantileSketch { inner }
}

/// The mirror of `state`, of kind `kind`.
///
/// # Safety
/// `kind` is the kind `state` was created with, and it is live.
pub(crate) unsafe fn snapshot_state(kind: WindowKind, state: &WindowState) -> StateCk {
    // SAFETY: the caller guarantees `kind` names the live field.
    unsafe {
        match kind {
            WindowKind::Sum | WindowKind::Last => StateCk::Num(state.num),
            WindowKind::Full { .. } => {
                let f: &FullAgg = &state.full;
                StateCk::Full(Box::new(FullCk {
                    count: f.count,
                    sum: f.sum,
                    sum_sq: f.sum_sq,
                    min: f.min,
                    max: f.max,
                    last: f.last,
                    last_time: f.last_time,
                    sketch: f.sketch.as_ref().map(sketch_ck),
                }))
            }
            WindowKind::Distinct => StateCk::Distinct(state.set.iter().copied().collect()),
        }
    }
}

/// Whether `ck` is a state an element of `kind` can hold.
pub(crate) fn valid_state(kind: WindowKind, ck: &StateCk) -> bool {
    let buckets_ok = |b: &BucketsCk| b.counts.len() <= MAX_BUCKETS;
    match (kind, ck) {
        (WindowKind::Sum | WindowKind::Last, StateCk::Num(_)) => true,
        (WindowKind::Full { sketch }, StateCk::Full(f)) => match (&f.sketch, sketch) {
            (None, false) => true,
            (Some(SketchCk::Exact(v)), true) => v.len() <= MAX_EXACT,
            (Some(SketchCk::Buckets { positive, negative, .. }), true) => {
                buckets_ok(positive) && negative.as_ref().is_none_or(buckets_ok)
            }
            _ => false,
        },
        (WindowKind::Distinct, StateCk::Distinct(_)) => true,
        _ => false,
    }
}

/// A live state of `kind` holding what `ck` says (checked with `valid_state`; a state that does
/// not match gives a fresh one).
pub(crate) fn restore_state(kind: WindowKind, ck: &StateCk) -> WindowState {
    match (kind, ck) {
        (WindowKind::Sum | WindowKind::Last, StateCk::Num(v)) => WindowState { num: *v },
        (WindowKind::Full { .. }, StateCk::Full(f)) => WindowState {
            full: ManuallyDrop::new(Box::new(FullAgg {
                count: f.count,
                sum: f.sum,
                sum_sq: f.sum_sq,
                min: f.min,
                max: f.max,
                last: f.last,
                last_time: f.last_time,
                sketch: f.sketch.as_ref().map(sketch_of),
            })),
        },
        (WindowKind::Distinct, StateCk::Distinct(members)) => {
            WindowState { set: ManuallyDrop::new(Box::new(members.iter().copied().collect())) }
        }
        _ => WindowState::new(kind),
    }
}
