//! One series (an id of one metric type) and its aggregation elements, on the core that owns
//! its shard. Only that core reads or writes it.
//!
//! #[PerformanceCriticalPath]: `Series::sole_untimed_elem` (or `elems_for`) and `Elem::add` run
//! per value.

use crate::aggregation::{AggTypes, MetricType};
use crate::batch::{SampleBatch, SampleValue};
use crate::spec::{PolicyIdx, SpecId, SpecTable};
use crate::time::UnixNanos;
use crate::transform::TransformChain;
use crate::window::{WindowKind, WindowMut, WindowState};
use crate::window_list::WindowList;

/// The windows of one (policy, aggregations, timed?) of a series, sorted by start.
pub(crate) struct Elem {
    // The fields of an `ElemKey`, flattened so that `timed` and `kind` fit in its padding.
    pub(crate) policy: PolicyIdx,
    pub(crate) aggs: AggTypes,
    pub(crate) timed: bool,
    /// The kind of every state in `windows`: set once, here, so that the states can be untagged.
    kind: WindowKind,
    /// The open window in a place of its own and, between a window's end and its flush, the
    /// closed one; more (timed metrics with a long past buffer) go to the heap.
    windows: WindowList,
}

impl Elem {
    pub(crate) fn new(policy: PolicyIdx, aggs: AggTypes, timed: bool, metric_type: MetricType) -> Self {
        let kind = WindowKind::new(metric_type, aggs.resolve(metric_type), timed);
        Self { policy, aggs, timed, kind, windows: WindowList::default() }
    }

    /// The state of the window starting at `start`, opened if needed (windows stay sorted).
    /// Every state in `windows` was created here with `self.kind`, which never changes, and
    /// states leave `windows` only through `take_front_while` and `drop`: so the state returned is
    /// live and of kind `self.kind`.
    #[inline]
    fn state_mut(&mut self, start: UnixNanos) -> &mut WindowState {
        let kind = self.kind;
        self.windows.get_or_open(start, || WindowState::new(kind))
    }

    /// The window starting at `start`, opened if needed (windows stay sorted).
    #[inline]
    pub(crate) fn window_mut(&mut self, start: UnixNanos) -> WindowMut<'_> {
        let kind = self.kind;
        let state = self.state_mut(start);
        // SAFETY: `state_mut` returns a live state of kind `self.kind`.
        unsafe { state.view(kind) }
    }

    /// Adds one numeric value observed at `time` to the window starting at `start` (opened if
    /// needed): `window_mut(start).add(v, time)` with one dispatch on the kind instead of two.
    #[inline]
    pub(crate) fn add(&mut self, start: UnixNanos, v: f64, time: i64) {
        let kind = self.kind;
        let state = self.state_mut(start);
        // SAFETY: `state_mut` returns a live state of kind `self.kind`.
        unsafe { state.add(kind, v, time) }
    }

    /// Adds the forwarded `values` that replace `prev` (the values their source sent for the
    /// window before; see [`WindowMut::replace`]) to the window starting at `start`.
    pub(crate) fn add_resent(&mut self, start: UnixNanos, values: &[f64], prev: &[f64], time: i64) {
        let mut window = self.window_mut(start);
        for (i, v) in values.iter().enumerate() {
            match prev.get(i) {
                Some(p) => window.replace(*p, *v, time),
                None => window.add(*v, time),
            }
        }
    }

    /// Adds the sample `value` of `batch`, observed at `time`, to the window starting at
    /// `start` (opened if needed).
    #[inline(always)]
    pub(crate) fn add_sample(&mut self, start: UnixNanos, value: SampleValue, time: UnixNanos, batch: &SampleBatch) {
        match value {
            SampleValue::Number(v) | SampleValue::GaugeDelta(v) => self.add(start, v, time),
            SampleValue::Member(h) => self.window_mut(start).add_member(h, time),
            SampleValue::Timer { start: first, len } => {
                let mut window = self.window_mut(start);
                for v in batch.timer_values(first, len) {
                    window.add(*v, time);
                }
            }
        }
    }

    /// Asks the CPU to start loading the heap state of the newest window, which the next value
    /// most likely goes to.
    #[inline]
    pub(crate) fn prefetch_newest_state(&self) {
        if let Some(w) = self.windows.newest() {
            // SAFETY: every state in `windows` is live and of kind `self.kind` (see `state_mut`).
            unsafe { w.state.prefetch(self.kind) }
        }
    }

    /// Asks the CPU to start loading the heap state of the oldest window, which a flush reads
    /// first.
    #[inline]
    pub(crate) fn prefetch_oldest_state(&self) {
        if let Some(w) = self.windows.oldest() {
            // SAFETY: every state in `windows` is live and of kind `self.kind` (see `state_mut`).
            unsafe { w.state.prefetch(self.kind) }
        }
    }

    /// Asks the CPU to start loading where `v` will land in the newest window's sketch.
    #[inline]
    pub(crate) fn prefetch_newest_add(&self, v: f64) {
        if let Some(w) = self.windows.newest() {
            // SAFETY: every state in `windows` is live and of kind `self.kind` (see `state_mut`).
            unsafe { w.state.prefetch_add(self.kind, v) }
        }
    }

    /// An element holding `windows` (start, state of this element's kind, oldest first), as a
    /// checkpoint kept them.
    pub(crate) fn restored(
        policy: PolicyIdx,
        aggs: AggTypes,
        timed: bool,
        metric_type: MetricType,
        windows: impl Iterator<Item = (UnixNanos, WindowState)>,
    ) -> Self {
        let mut elem = Self::new(policy, aggs, timed, metric_type);
        let kind = elem.kind;
        for (start, state) in windows {
            let mut state = Some(state);
            elem.windows.get_or_open(start, || state.take().unwrap_or_else(|| WindowState::new(kind)));
            if let Some(mut duplicate) = state {
                // Two windows at one start (a checkpoint checked for order never has them):
                // the first stays; `duplicate` was built with `kind`, as the caller promises.
                // SAFETY: of kind `kind` and live; dropped here, once, never read after.
                unsafe { duplicate.drop_as(kind) }
            }
        }
        elem
    }

    pub(crate) fn kind(&self) -> WindowKind {
        self.kind
    }

    /// Every window (start, state of kind `self.kind()`), oldest first.
    pub(crate) fn windows(&self) -> impl Iterator<Item = (UnixNanos, &WindowState)> {
        self.windows.iter().map(|w| (w.start, &w.state))
    }

    /// Whether this element's values carry an aggregation suffix (see [`with_suffix`]).
    #[inline]
    pub(crate) fn with_suffix(&self, metric_type: MetricType) -> bool {
        with_suffix(metric_type, self.aggs, self.timed)
    }

    pub(crate) fn window_count(&self) -> usize {
        self.windows.len()
    }

    /// Window starts, oldest first.
    pub(crate) fn window_starts(&self) -> impl Iterator<Item = UnixNanos> + '_ {
        self.windows.iter().map(|w| w.start)
    }

    /// Removes the oldest windows as long as `due(start)` returns something, handing each to
    /// `each` with it before freeing it.
    #[inline]
    pub(crate) fn take_front_while<D>(
        &mut self,
        due: impl FnMut(UnixNanos) -> Option<D>,
        mut each: impl FnMut(UnixNanos, WindowMut<'_>, D),
    ) {
        let kind = self.kind;
        self.windows.take_front_while(due, |mut w, d| {
            // If `each` panics, this state and the ones not yet taken leak, which is safe.
            // SAFETY: live and of kind `kind` (see `state_mut`); freed once, never read after.
            unsafe {
                each(w.start, w.state.view(kind), d);
                w.state.drop_as(kind);
            }
        });
    }
}

impl Drop for Elem {
    fn drop(&mut self) {
        for w in self.windows.iter_mut() {
            // SAFETY: created with `self.kind` (see `state_mut`); the element is going away.
            unsafe { w.state.drop_as(self.kind) }
        }
    }
}

impl std::fmt::Debug for Elem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elem")
            .field("policy", &self.policy)
            .field("aggs", &self.aggs)
            .field("timed", &self.timed)
            .field("kind", &self.kind)
            .field("window_starts", &self.window_starts().collect::<Vec<_>>())
            .finish()
    }
}

/// The longest series id a core keeps, in bytes (its length is stored in 16 bits); samples
/// with a longer id are counted (`id_too_long`) and dropped.
pub const MAX_ID_LEN: usize = u16::MAX as usize;

/// 16 bytes of header and one element inline, in exactly one cache line: a lookup touches one
/// line of the record, not two. Every byte here is a megabyte at 1M series.
const _: () = assert!(std::mem::size_of::<Series>() == 64 && std::mem::align_of::<Series>() == 64);

/// The elements of a series: almost always exactly one, kept inline. Unlike a `SmallVec`, this
/// needs no length or capacity word: the variant tag lives in a niche of `Elem` (its `bool`),
/// so `Elems` is as large as one `Elem`.
#[derive(Debug, Default)]
pub(crate) enum Elems {
    #[default]
    None,
    One(Elem),
    Many(Vec<Elem>),
}

const _: () = assert!(std::mem::size_of::<Elems>() == std::mem::size_of::<Elem>());

impl Elems {
    pub(crate) fn insert(&mut self, at: usize, elem: Elem) {
        match std::mem::take(self) {
            Self::None => *self = Self::One(elem),
            Self::One(first) => {
                let mut many = Vec::with_capacity(2);
                many.push(first);
                many.insert(at.min(1), elem);
                *self = Self::Many(many);
            }
            Self::Many(mut many) => {
                many.insert(at, elem);
                *self = Self::Many(many);
            }
        }
    }

    pub(crate) fn remove(&mut self, at: usize) {
        match std::mem::take(self) {
            Self::None => {}
            Self::One(only) => {
                if at != 0 {
                    *self = Self::One(only);
                }
            }
            Self::Many(mut many) => {
                if at < many.len() {
                    many.remove(at);
                }
                *self = match many.len() {
                    0 => Self::None,
                    1 => Self::One(many.pop().expect("one element")),
                    _ => Self::Many(many),
                };
            }
        }
    }
}

impl std::ops::Deref for Elems {
    type Target = [Elem];
    fn deref(&self) -> &[Elem] {
        match self {
            Self::None => &[],
            Self::One(e) => std::slice::from_ref(e),
            Self::Many(v) => v,
        }
    }
}

impl std::ops::DerefMut for Elems {
    fn deref_mut(&mut self) -> &mut [Elem] {
        match self {
            Self::None => &mut [],
            Self::One(e) => std::slice::from_mut(e),
            Self::Many(v) => v,
        }
    }
}

/// `Series::spec` before the series' first write.
const NO_SPEC: u16 = u16::MAX;
/// `Series::rule_spec` of a series a mapping rule drops: its values are refused and counted.
pub(crate) const DROPPED_BY_RULE: u16 = u16::MAX;

#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Series {
    /// Where the id lies in the shard's id arena (see `ShardMap`).
    pub(crate) id_start: u32,
    pub(crate) id_len: u16,
    pub(crate) metric_type: MetricType,
    /// The spec whose keys are `elems[..n]`, in order (the fast path); `NO_SPEC` before the
    /// first write. 16 bits: `MAX_SPECS` fits, and the header stays 16 bytes.
    spec: u16,
    spec_timed: bool,
    /// What a value without metadata writes to, as the rules decided when the series was
    /// created: `DEFAULT_SPEC`, a spec pinned in the `SpecTable` for this series, or
    /// [`DROPPED_BY_RULE`].
    pub(crate) rule_spec: u16,
    /// Seconds since the Unix epoch of the last write, for expiry.
    pub(crate) last_write_secs: u32,
    pub(crate) elems: Elems,
}

impl Series {
    pub(crate) fn new(id_start: u32, id_len: u16, metric_type: MetricType) -> Self {
        Self {
            id_start,
            id_len,
            metric_type,
            spec: NO_SPEC,
            spec_timed: false,
            rule_spec: 0,
            last_write_secs: 0,
            elems: Elems::None,
        }
    }

    /// Asks the CPU to start loading the heap state that the next value of a series with one
    /// element will touch (timers and sets keep their windows' state on the heap).
    #[inline]
    pub(crate) fn prefetch_window_state(&self) {
        if let Elems::One(elem) = &self.elems {
            elem.prefetch_newest_state();
        }
    }

    /// Asks the CPU to start loading the heap state that a flush of a series with one element
    /// reads first (its oldest window's).
    #[inline]
    pub(crate) fn prefetch_flush_state(&self) {
        if let Elems::One(elem) = &self.elems {
            elem.prefetch_oldest_state();
        }
    }

    /// Once `prefetch_window_state` has brought the state in: asks the CPU to start loading
    /// where a timer value `v` will land in it.
    #[inline]
    pub(crate) fn prefetch_add(&self, v: f64) {
        if let Elems::One(elem) = &self.elems {
            elem.prefetch_newest_add(v);
        }
    }

    /// Whether the series was last written timed (with the spec of `spec_id`).
    pub(crate) fn spec_timed(&self) -> bool {
        self.spec_timed
    }

    /// Says that the first elements are the keys of `spec`, in order, last written `timed`.
    pub(crate) fn set_spec(&mut self, spec: SpecId, timed: bool) {
        self.spec = spec as u16;
        self.spec_timed = timed;
    }

    /// The spec whose keys are the first elements, in order (`None` before the first write).
    #[inline]
    pub(crate) fn spec_id(&self) -> Option<SpecId> {
        (self.spec != NO_SPEC).then_some(SpecId::from(self.spec))
    }

    /// What `elems_for(spec, false, ..)` returns when it is one element and the series was
    /// last written untimed with `spec`, whose keys the caller knows to be exactly one: then
    /// that element is the spec's (see `elems_for`), found without looking the spec up.
    #[inline]
    pub(crate) fn sole_untimed_elem(&mut self, spec: SpecId) -> Option<&mut Elem> {
        match &mut self.elems {
            Elems::One(elem) if u32::from(self.spec) == spec && !self.spec_timed => Some(elem),
            _ => None,
        }
    }

    /// The elements that spec `spec` writes to, creating missing ones; they come first in
    /// `elems`, in the spec's order, so the next write with the same spec finds them directly.
    /// Each element created is counted in `specs` (see `SpecTable::elem_created`).
    #[inline]
    pub(crate) fn elems_for(&mut self, spec: SpecId, timed: bool, specs: &mut SpecTable) -> &mut [Elem] {
        let len = specs.key_count(spec);
        if u32::from(self.spec) != spec || self.spec_timed != timed {
            for i in 0..len {
                let key = specs.keys(spec)[i];
                match self.elems[i..]
                    .iter()
                    .position(|e| e.policy == key.policy && e.aggs == key.aggs && e.timed == timed)
                {
                    Some(j) => self.elems.swap(i, i + j),
                    None => {
                        let elem = Elem::new(key.policy, key.aggs, timed, self.metric_type);
                        self.elems.insert(i, elem);
                        specs.elem_created(key.policy);
                    }
                }
            }
            // Spec ids are below `MAX_SPECS` (see `SpecTable::intern`).
            self.spec = spec as u16;
            self.spec_timed = timed;
        }
        &mut self.elems[..len]
    }

    /// Drops elements no longer named by the current spec once their windows are flushed
    /// (counted in `specs`), calling `dropped` with each and its transformation chain.
    #[inline]
    pub(crate) fn drop_stale_elems(&mut self, specs: &mut SpecTable, mut dropped: impl FnMut(&Elem, TransformChain)) {
        let live = if self.spec == NO_SPEC { 0 } else { specs.key_count(SpecId::from(self.spec)) };
        if self.elems.len() > live {
            let mut i = live;
            while i < self.elems.len() {
                if self.elems[i].window_count() == 0 {
                    dropped(&self.elems[i], specs.transforms(self.elems[i].policy));
                    specs.elem_dropped(self.elems[i].policy);
                    self.elems.remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }

    /// Counts in `specs` every element of this series as dropped, and unpins its rule spec:
    /// the series is going away.
    pub(crate) fn release_elems(&self, specs: &mut SpecTable) {
        for elem in self.elems.iter() {
            specs.elem_dropped(elem.policy);
        }
        if self.rule_spec != 0 && self.rule_spec != DROPPED_BY_RULE {
            specs.unpin(SpecId::from(self.rule_spec));
        }
    }
}

/// Whether an element's values carry an aggregation suffix: always for timers, for other
/// types when the aggregations differ from the type's default; timed metrics only when
/// more than one aggregation would otherwise share the id.
pub(crate) fn with_suffix(metric_type: MetricType, aggs: AggTypes, timed: bool) -> bool {
    let resolved = aggs.resolve(metric_type);
    if timed {
        resolved.len() > 1
    } else {
        metric_type == MetricType::Timer || resolved != metric_type.default_aggregations()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `Elems` keeps the order a `Vec` would, through inserts and removals at any position.
        #[test]
        fn elems_behave_like_a_vec(ops in prop::collection::vec((any::<bool>(), 0usize..5), 1..60)) {
            let mut elems = Elems::None;
            let mut model: Vec<u16> = Vec::new();
            for (next, (insert, at)) in ops.into_iter().enumerate() {
                if insert {
                    let at = at.min(model.len());
                    elems.insert(at, Elem::new(next as u16, AggTypes::DEFAULT, false, MetricType::Counter));
                    model.insert(at, next as u16);
                } else if at < model.len() {
                    elems.remove(at);
                    model.remove(at);
                }
                prop_assert_eq!(elems.iter().map(|e| e.policy).collect::<Vec<_>>(), model.clone());
                prop_assert_eq!(matches!(elems, Elems::Many(_)), model.len() > 1);
            }
        }
    }
}
