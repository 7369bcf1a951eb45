//! `ShardMap`: the series of one shard, on the core that owns the shard.
//!
//! Series live densely in fixed-size pages (`Paged`, no doubling slack, no copy on growth);
//! the index (`SeriesIndex`) holds only their positions, with an 8-bit hash tag, in 4 bytes. A
//! table that stored whole series would, with power-of-two sizing, leave up to half of its
//! 64-byte slots empty; an empty slot of the index costs 4 bytes. Removal swaps the last
//! series into the hole and repoints its index entry. Hashes are not stored: they are
//! recomputed from (type, id) when the index grows or a series is removed, both rare.
//!
//! Ids live back to back in one byte arena per shard (no allocation per series, and a flush
//! reads them in creation order rather than chasing a pointer per series). A removed series
//! leaves its bytes behind; once they are half the arena, the arena is rewritten. The arena
//! grows by an eighth at a time rather than doubling, so at most ~12% of it is unused.
//!
//! A gauge's latest value, the base of a StatsD delta (`name:+5|g`), is kept in the arena
//! right after its id (`GaugeBase`): only gauges pay its 8 bytes, and it shares a cache line
//! with the id that the lookup has just compared.
//!
//! #[PerformanceCriticalPath]: `find_or_insert` runs once per value.

use crate::aggregation::{MetricType, series_hash};
use crate::paged::Paged;
use crate::series::{MAX_ID_LEN, Series};
use crate::series_index::{MAX_SERIES_PER_SHARD, SeriesIndex};

/// Why `find_or_insert` did not create a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The id is longer than `MAX_ID_LEN` (a series stores its length in 16 bits).
    IdTooLong,
    /// The shard holds `MAX_SERIES_PER_SHARD` series (positions are 24 bits).
    ShardFull,
    /// The caller said there is no room for a new series (the core's series limit).
    NoRoom,
}

#[derive(Debug, Default)]
pub(crate) struct ShardMap {
    index: SeriesIndex,
    series: Paged<Series>,
    ids: Vec<u8>,
    /// Arena bytes of removed series.
    garbage: usize,
}

/// Arena bytes after the id of a series of `metric_type`: a gauge's `GaugeBase`.
#[inline]
fn tail_len(metric_type: MetricType) -> usize {
    if metric_type == MetricType::Gauge { GAUGE_BASE_LEN } else { 0 }
}

const GAUGE_BASE_LEN: usize = size_of::<f64>();

/// The latest value of a gauge series, the base of StatsD deltas: NaN until the gauge has a
/// value. Empty (reads as none, ignores writes) for a series of another type.
pub(crate) struct GaugeBase<'a>(&'a mut [u8]);

impl GaugeBase<'_> {
    #[inline]
    pub(crate) fn get(&self) -> Option<f64> {
        let bytes: [u8; GAUGE_BASE_LEN] = (&*self.0).try_into().ok()?;
        Some(f64::from_ne_bytes(bytes)).filter(|v| !v.is_nan())
    }

    #[inline]
    pub(crate) fn set(&mut self, v: f64) {
        if self.0.len() == GAUGE_BASE_LEN {
            self.0.copy_from_slice(&v.to_ne_bytes());
        }
    }
}

/// Arena bytes a series holds: its id, and a gauge's base after it.
#[inline]
fn stored_len(s: &Series) -> usize {
    usize::from(s.id_len) + tail_len(s.metric_type)
}

fn id_of<'a>(ids: &'a [u8], s: &Series) -> &'a [u8] {
    &ids[s.id_start as usize..s.id_start as usize + s.id_len as usize]
}

/// `a == b`, inlined for the id lengths most series have (8 to 32 bytes): two overlapping
/// loads from each end instead of a call into `memcmp` and its dispatch on the length.
#[inline(always)]
pub(crate) fn same_id(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    fn at<const N: usize>(bytes: &[u8], from: usize) -> [u8; N] {
        bytes[from..from + N].try_into().unwrap_or([0; N])
    }
    match n {
        16..=32 => {
            let head = u128::from_ne_bytes(at(a, 0)) ^ u128::from_ne_bytes(at(b, 0));
            let tail = u128::from_ne_bytes(at(a, n - 16)) ^ u128::from_ne_bytes(at(b, n - 16));
            head | tail == 0
        }
        8..=15 => {
            let head = u64::from_ne_bytes(at(a, 0)) ^ u64::from_ne_bytes(at(b, 0));
            let tail = u64::from_ne_bytes(at(a, n - 8)) ^ u64::from_ne_bytes(at(b, n - 8));
            head | tail == 0
        }
        _ => a == b,
    }
}

/// How far ahead of the record it is at `retain` asks for records, and for id bytes.
const RETAIN_RECORDS_AHEAD: usize = 8;
const RETAIN_ID_BYTES_AHEAD: usize = 192;
/// How far ahead of the record it is at `retain` shows a record to its `ahead` (which its own
/// prefetch asked for `RETAIN_RECORDS_AHEAD − RETAIN_AHEAD_CALL` steps before).
const RETAIN_AHEAD_CALL: usize = 4;

fn hash_of(ids: &[u8], s: &Series) -> u64 {
    series_hash(s.metric_type, id_of(ids, s))
}

impl ShardMap {
    pub(crate) fn len(&self) -> usize {
        self.series.len()
    }

    /// Bytes this map has allocated: series records, ids and the index (not the window
    /// states some elements keep on the heap).
    pub(crate) fn resident_bytes(&self) -> usize {
        self.series.resident_bytes() + self.ids.capacity() + self.index.resident_bytes()
    }

    /// The position and series (`metric_type`, `id`) whose map hash is `hash`, created if
    /// absent, with its gauge base; the bool says whether it was created. An absent series that
    /// this map cannot store, or that comes when the caller has no `room` for one, is refused:
    /// only new series are checked, so the per-value path pays nothing for it.
    ///
    /// `hint` is where `prefetch_series` expected the series: when the record there is this
    /// series, the index is not probed again. (Positions stay put while values are applied:
    /// series move only when `retain` removes some.)
    #[inline]
    pub(crate) fn find_or_insert(
        &mut self,
        hash: u64,
        metric_type: MetricType,
        id: &[u8],
        hint: Option<usize>,
        room: bool,
    ) -> Result<(usize, &mut Series, GaugeBase<'_>, bool), Refused> {
        // The hinted record, checked through the one `&mut` that is returned: looking it up
        // again after a shared check would compute its page address twice per value.
        let hinted = hint
            .and_then(|i| self.series.get_mut(i))
            .filter(|s| s.metric_type == metric_type && same_id(id_of(&self.ids, s), id))
            .map(|s| s as *mut Series);
        let (i, s, created) = match (hint, hinted) {
            // SAFETY: `p` comes from `self.series.get_mut` above and nothing has touched `self.series` since.
            (Some(i), Some(p)) => (i, unsafe { &mut *p }, false),
            _ => {
                let (i, created) = self.find_or_insert_unhinted(hash, metric_type, id, room)?;
                (i, &mut self.series[i], created)
            }
        };
        // Only gauges have a base: the other types skip the arithmetic and the bounds check.
        let base = if s.metric_type == MetricType::Gauge {
            let tail = s.id_start as usize + usize::from(s.id_len);
            self.ids.get_mut(tail..tail + GAUGE_BASE_LEN).unwrap_or_default()
        } else {
            Default::default()
        };
        Ok((i, s, GaugeBase(base), created))
    }

    /// The series (`metric_type`, `id`) if it is the one at position `at` (a prefetch's
    /// finding): no index probe, and `None` if it is not there.
    #[inline]
    pub(crate) fn series_at(&self, at: usize, metric_type: MetricType, id: &[u8]) -> Option<&Series> {
        self.series.get(at).filter(|s| s.metric_type == metric_type && same_id(id_of(&self.ids, s), id))
    }

    /// `find_or_insert` when the hint was not the series: probes the index, then creates.
    #[inline]
    fn find_or_insert_unhinted(
        &mut self,
        hash: u64,
        metric_type: MetricType,
        id: &[u8],
        room: bool,
    ) -> Result<(usize, bool), Refused> {
        let (series, ids) = (&self.series, &self.ids);
        let is_it =
            |i: usize| series.get(i).is_some_and(|s| s.metric_type == metric_type && same_id(id_of(ids, s), id));
        let (i, created) = match self.index.find(hash, |&i| is_it(i)) {
            Some(i) => (i, false),
            None if id.len() > MAX_ID_LEN => return Err(Refused::IdTooLong),
            None if self.series.len() >= MAX_SERIES_PER_SHARD => return Err(Refused::ShardFull),
            None if !room => return Err(Refused::NoRoom),
            None => {
                let i = self.series.len();
                let start = self.ids.len() as u32;
                let stored = id.len() + tail_len(metric_type);
                if self.ids.capacity() - self.ids.len() < stored {
                    let step = (self.ids.capacity() / 8).max(4096).max(stored);
                    self.ids.reserve_exact(step);
                }
                self.ids.extend_from_slice(id);
                if metric_type == MetricType::Gauge {
                    self.ids.extend_from_slice(&f64::NAN.to_ne_bytes());
                }
                self.series.push(Series::new(start, id.len() as u16, metric_type));
                let (series, ids) = (&self.series, &self.ids);
                self.index.insert(hash, i, |j| hash_of(ids, &series[j]));
                (i, true)
            }
        };
        Ok((i, created))
    }

    /// Step one of loading what `find_or_insert(hash, ..)` will read, a few values ahead:
    /// the index slot where `hash`'s probe starts.
    #[inline]
    pub(crate) fn prefetch_slot(&self, hash: u64) {
        self.index.prefetch(hash);
    }

    /// Step two, once the slot is cached: the first series record whose tag matches (almost
    /// always the series itself). Returns its position, for step three.
    #[inline]
    pub(crate) fn prefetch_series(&self, hash: u64) -> Option<usize> {
        let first = self.index.first_candidate(hash)?;
        self.series.prefetch(first);
        Some(first)
    }

    /// Step three, once the record at `position` is cached: the id that the lookup compares
    /// and, with `heap_state`, the heap state of its newest window (timers and sets).
    #[inline]
    pub(crate) fn prefetch_record_targets(&self, position: usize, heap_state: bool) {
        let Some(series) = self.series.get(position) else { return };
        if heap_state {
            series.prefetch_window_state();
        }
        // Both ends: an id of 30 bytes straddles two cache lines about half the time. Addresses
        // only (a prefetch reads nothing), so no bounds checks.
        let first = self.ids.as_ptr().wrapping_add(series.id_start as usize);
        crate::paged::prefetch_address(first);
        crate::paged::prefetch_address(first.wrapping_add(stored_len(series).saturating_sub(1)));
    }

    /// Step four, once the window state of the record at `position` is cached: where the
    /// timer value `v` will be written in its sketch.
    #[inline]
    pub(crate) fn prefetch_add(&self, position: usize, v: f64) {
        if let Some(series) = self.series.get(position) {
            series.prefetch_add(v);
        }
    }

    /// Calls `each` with every series, its id and, for a gauge, its base.
    pub(crate) fn for_each_with_id(&self, mut each: impl FnMut(&Series, &[u8], Option<f64>)) {
        for s in self.series.iter() {
            let tail = s.id_start as usize + usize::from(s.id_len);
            let base = (s.metric_type == MetricType::Gauge)
                .then(|| self.ids.get(tail..tail + GAUGE_BASE_LEN))
                .flatten()
                .and_then(|b| b.try_into().ok())
                .map(f64::from_ne_bytes);
            each(s, id_of(&self.ids, s), base);
        }
    }

    /// Calls `each` with every series.
    pub(crate) fn for_each(&self, mut each: impl FnMut(&Series)) {
        for series in self.series.iter() {
            each(series);
        }
    }

    /// Keeps the series for which `keep(series, id)` returns true; returns how many were removed.
    ///
    /// A flush walks every record in order, faster than the hardware prefetcher runs ahead of
    /// it at 1M series: each step asks for the record `RETAIN_RECORDS_AHEAD` further on (in the
    /// same page of records, or past its end, which a prefetch does not mind), and for the id
    /// bytes `RETAIN_ID_BYTES_AHEAD` past this record's (ids are stored in the order their
    /// series were created, which is mostly the order of the records).
    ///
    /// `ahead` sees the record `RETAIN_AHEAD_CALL` further on (asked for a few steps before),
    /// to start loading what `keep` will read through it.
    pub(crate) fn retain(
        &mut self,
        ahead: impl Fn(&Series),
        mut keep: impl FnMut(&mut Series, &[u8]) -> bool,
    ) -> usize {
        let mut removed = 0;
        let mut i = 0;
        while i < self.series.len() {
            if let Some(later) = self.series.get(i + RETAIN_AHEAD_CALL) {
                ahead(later);
            }
            let s = &mut self.series[i];
            let record = std::ptr::from_ref::<Series>(s).cast::<u8>();
            crate::paged::prefetch_address(record.wrapping_add(RETAIN_RECORDS_AHEAD * size_of::<Series>()));
            let id = self.ids.as_ptr().wrapping_add(s.id_start as usize);
            crate::paged::prefetch_address(id.wrapping_add(RETAIN_ID_BYTES_AHEAD));
            if keep(s, &self.ids[s.id_start as usize..s.id_start as usize + s.id_len as usize]) {
                i += 1;
                continue;
            }
            self.remove_at(i);
            removed += 1;
            // The series moved into `i` has not been looked at yet.
        }
        if removed > 0 && self.garbage * 2 > self.ids.len() {
            self.compact_ids();
        }
        removed
    }

    fn remove_at(&mut self, i: usize) {
        let last = self.series.len() - 1;
        let (series, ids) = (&self.series, &self.ids);
        self.index.remove(hash_of(ids, &series[i]), i, |j| hash_of(ids, &series[j]));
        if i != last {
            self.index.repoint(hash_of(ids, &series[last]), last, i);
        }
        self.garbage += stored_len(&self.series[i]);
        self.series.swap_remove(i);
    }

    /// Rewrites the arena with only the live ids (hashes do not change, so the table stays).
    fn compact_ids(&mut self) {
        let mut ids = Vec::with_capacity(self.ids.len() - self.garbage);
        for s in self.series.iter_mut() {
            let start = ids.len() as u32;
            let from = s.id_start as usize;
            ids.extend_from_slice(&self.ids[from..from + stored_len(s)]);
            s.id_start = start;
        }
        self.ids = ids;
        self.garbage = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn same_id_agrees_with_slice_equality_at_every_length_and_position() {
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..=40 {
            let a = &base[..n];
            assert!(same_id(a, &base[..n]), "equal at {n}");
            for flip in 0..n {
                let mut b = a.to_vec();
                b[flip] ^= 1;
                assert!(!same_id(a, &b), "differs at {flip} of {n}");
            }
            if n > 0 {
                assert!(!same_id(a, &base[..n - 1]), "shorter by one at {n}");
            }
        }
    }

    proptest! {
        /// Against a std HashMap model: inserts find what was inserted, removals keep every
        /// other series findable under its own id, and a lookup's hint (any position, right,
        /// wrong or past the end) never changes what it finds.
        #[test]
        fn behaves_like_a_map(
            ops in prop::collection::vec((0u8..3, 0u16..200, any::<bool>(), prop::option::of(0u16..700)), 1..600),
        ) {
            let mut map = ShardMap::default();
            let mut model: HashMap<(u8, Vec<u8>), u32> = HashMap::new();
            for (t, key, remove_odd, hint) in ops {
                let metric_type = [MetricType::Counter, MetricType::Gauge, MetricType::Timer][t as usize];
                let id = format!("s{key}").into_bytes();
                let hash = series_hash(metric_type, &id);
                let (_, s, mut base, created) = map.find_or_insert(hash, metric_type, &id, hint.map(usize::from), true).unwrap();
                s.last_write_secs += 1;
                let n = f64::from(s.last_write_secs);
                // A gauge's base is its own, through inserts, removals and compaction.
                prop_assert_eq!(base.get(), (metric_type == MetricType::Gauge && n > 1.0).then_some(n - 1.0));
                base.set(n);
                let count = model.entry((t, id.clone())).or_insert(0);
                prop_assert_eq!(created, *count == 0);
                *count += 1;
                prop_assert_eq!(s.last_write_secs, *count);
                if remove_odd {
                    map.retain(|_| {}, |s, _| s.last_write_secs % 2 == 0);
                    model.retain(|_, c| *c % 2 == 0);
                }
                prop_assert_eq!(map.len(), model.len());
            }
            let stored = |t: u8, id: &[u8]| id.len() + if t == 1 { GAUGE_BASE_LEN } else { 0 };
            prop_assert!(map.ids.len() - map.garbage == model.keys().map(|(t, id)| stored(*t, id)).sum::<usize>());
            for ((t, id), count) in &model {
                let metric_type = [MetricType::Counter, MetricType::Gauge, MetricType::Timer][*t as usize];
                let (_, s, base, created) = map.find_or_insert(series_hash(metric_type, id), metric_type, id, None, true).unwrap();
                prop_assert!(!created);
                prop_assert_eq!(s.last_write_secs, *count);
                prop_assert_eq!(base.get(), (metric_type == MetricType::Gauge).then_some(f64::from(*count)));
            }
        }
    }
}
