//! `SampleBatch`: decoded values on their way from the core that read them off a socket to
//! the core that owns their shard.
//!
//! Built by one core, moved (never shared) through the lock-free hand-off queue, read by the
//! owner. Ids and timer values live in two arenas, so a batch costs a few allocations however
//! many values it holds, and a cleared batch is reused without allocating.

use crate::aggregation::{AggTypes, MetricType};
use crate::policy::StoragePolicy;
use crate::time::UnixNanos;
use crate::transform::TransformChain;

mod gathered;
mod resent;

/// `ids.extend_from_slice(id)`, with the lengths most ids have (8 to 32 bytes) copied inline:
/// two overlapping loads and stores from each end instead of a call into `memcpy`.
#[inline(always)]
pub(crate) fn append_id(ids: &mut Vec<u8>, id: &[u8]) {
    let n = id.len();
    if !(8..=32).contains(&n) {
        ids.extend_from_slice(id);
        return;
    }
    ids.reserve(n);
    let len = ids.len();
    let (src, dst) = (id.as_ptr(), ids.as_mut_ptr().wrapping_add(len));
    // Both copies of a width W cover bytes `0..n` of `id` and of the spare capacity (which
    // `reserve` made at least `n`), as `n >= W` in each branch; so `len..len + n` is written
    // before `set_len`.
    // SAFETY: so every read is inside `id` and every write inside `ids`' allocation.
    unsafe {
        if n >= 16 {
            let (head, tail) =
                (src.cast::<[u8; 16]>().read_unaligned(), src.add(n - 16).cast::<[u8; 16]>().read_unaligned());
            dst.cast::<[u8; 16]>().write_unaligned(head);
            dst.add(n - 16).cast::<[u8; 16]>().write_unaligned(tail);
        } else {
            let (head, tail) =
                (src.cast::<[u8; 8]>().read_unaligned(), src.add(n - 8).cast::<[u8; 8]>().read_unaligned());
            dst.cast::<[u8; 8]>().write_unaligned(head);
            dst.add(n - 8).cast::<[u8; 8]>().write_unaligned(tail);
        }
        ids.set_len(len + n);
    }
}

/// Marks an untimed sample: the owning core stamps it with its arrival time.
pub const UNTIMED: UnixNanos = UnixNanos::MIN;

/// One (aggregations, storage policy, transformations, rollup) a metric asks for; a metric's
/// metadata is a list of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ElemSpec {
    pub aggs: AggTypes,
    pub policy: StoragePolicy,
    /// What the element's flushed values go through before they are emitted (or forwarded).
    pub transforms: TransformChain,
    /// Where the element's flushed values go instead of the sinks: [`NO_ROLLUP`], or in a
    /// batch a [`SampleBatch::rollup`] reference (on the owning core, its rollup target).
    pub rollup: RollupRef,
    /// How many times the values of this element were forwarded before (0: values as
    /// received from a client; `n > 0`: a rolled-up series, flushed after `L(r, n)`).
    pub forwarded: u8,
}

impl ElemSpec {
    /// Aggregations `aggs` under `policy`, emitted as aggregated.
    pub fn new(aggs: AggTypes, policy: StoragePolicy) -> Self {
        Self { aggs, policy, transforms: TransformChain::NONE, rollup: NO_ROLLUP, forwarded: 0 }
    }
}

/// Which rollup an element's values go on to: 0 is none, any other value indexes the batch's
/// rollups (in a batch) or the owning core's rollup targets (in its spec table).
pub type RollupRef = u32;
pub const NO_ROLLUP: RollupRef = 0;

/// A rollup as a batch carries it: the id of the rolled-up series (in the batch's id arena),
/// its aggregations and the transformations that follow the rollup op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRollup {
    id_start: u32,
    id_len: u32,
    pub aggs: AggTypes,
    pub transforms: TransformChain,
    /// M3's `PipelineMetadata.resend_enabled`.
    pub resend: bool,
    /// The rollup of this batch the rolled-up series rolls up into next (a pipeline with
    /// several rollup ops), or [`NO_ROLLUP`].
    pub next: RollupRef,
}

/// Where a forwarded sample comes from: M3's `ForwardMetadata.source_id`, the
/// `ForwardedMetric.version` of the source's window, and its `num_forwarded_times`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedFrom {
    pub source: u32,
    pub version: u32,
    pub times: u8,
}

/// Which metadata a sample carries: 0 is "the default policies and aggregations",
/// any other value indexes the batch's spec table.
pub type SpecRef = u32;
pub const DEFAULT_SPEC: SpecRef = 0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleValue {
    /// A counter increment, gauge value or one timer value.
    Number(f64),
    /// A StatsD gauge delta (`+5`, `-3`), applied to the gauge's last value.
    GaugeDelta(f64),
    /// A StatsD set member, as a hash of its bytes.
    Member(u64),
    /// A batch of timer values, as a range of the batch's timer arena.
    Timer { start: u32, len: u32 },
}

impl SampleValue {
    /// The values this sample carries: a timer batch counts each of its values.
    #[inline(always)]
    pub(crate) fn count(self) -> u64 {
        match self {
            Self::Timer { len, .. } => u64::from(len),
            _ => 1,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Hash of (type, id) for the owner's map.
    pub hash: u64,
    /// Client timestamp of a timed metric, or [`UNTIMED`], or (when [`Sample::stamped`]) the
    /// time an untimed value entered the cluster.
    pub time: UnixNanos,
    /// The value's payload: which [`SampleValue`] it is sits in `flags`.
    value_bits: u64,
    id_start: u32,
    id_len: u32,
    pub spec: SpecRef,
    /// murmur3 shard of the id (`NO_SHARD` if it did not fit: see `shard()`).
    shard: u16,
    pub metric_type: MetricType,
    /// The [`SampleValue`] variant (`VALUE_*`), and [`STAMPED`].
    flags: u8,
}

/// 40 bytes: a hand-off batch holds 1024 of them, every core pair keeps dozens of batches, and
/// each byte of a handed-off sample crosses from one core's cache to another's. (An enum field
/// for the value would take 16 bytes of its own, its tag padded to 8, and the sample 48.)
const _: () = assert!(std::mem::size_of::<Sample>() == 40);

const VALUE_NUMBER: u8 = 0;
const VALUE_GAUGE_DELTA: u8 = 1;
const VALUE_MEMBER: u8 = 2;
const VALUE_TIMER: u8 = 3;
const VALUE_KIND: u8 = 0b11;
/// `time` is the arrival time of an untimed value, stamped by the node that received it so
/// that every replica puts it in the same window (cluster mode).
const STAMPED: u8 = 0b100;
/// A passthrough point (`TIMED_METRIC_WITH_STORAGE_POLICY`): written out as it is, with its
/// own time and its spec's one storage policy, never aggregated.
const PASSTHROUGH: u8 = 0b1000;
/// A forwarded (rolled-up) value: its values are a list in the timer arena and where it
/// comes from is in the batch's side array ([`SampleBatch::forwarded_from`]).
const FORWARDED: u8 = 0b1_0000;

/// A value as a sample stores it: its variant's tag and its 8 bytes.
#[inline(always)]
fn pack(value: SampleValue) -> (u8, u64) {
    match value {
        SampleValue::Number(v) => (VALUE_NUMBER, v.to_bits()),
        SampleValue::GaugeDelta(d) => (VALUE_GAUGE_DELTA, d.to_bits()),
        SampleValue::Member(h) => (VALUE_MEMBER, h),
        SampleValue::Timer { start, len } => (VALUE_TIMER, u64::from(start) | u64::from(len) << 32),
    }
}

/// What a sample's shard reads as when the number pushed did not fit in 16 bits: never a real
/// shard, since `num_shards` is at most 65,535, so the owning core refuses the sample
/// (`shard_not_writable`) instead of aggregating it in a wrong shard.
pub const NO_SHARD: u32 = u16::MAX as u32;

impl Sample {
    /// murmur3 shard of the id.
    #[inline]
    pub fn shard(&self) -> u32 {
        u32::from(self.shard)
    }

    /// The value (or, for a timer batch, where its values are in the batch).
    #[inline(always)]
    pub fn value(&self) -> SampleValue {
        let bits = self.value_bits;
        match self.flags & VALUE_KIND {
            VALUE_NUMBER => SampleValue::Number(f64::from_bits(bits)),
            VALUE_GAUGE_DELTA => SampleValue::GaugeDelta(f64::from_bits(bits)),
            VALUE_MEMBER => SampleValue::Member(bits),
            _ => SampleValue::Timer { start: bits as u32, len: (bits >> 32) as u32 },
        }
    }

    /// Whether `time` is the arrival time of an untimed value, stamped by the node that
    /// received it so that every replica puts it in the same window (cluster mode).
    #[inline]
    pub fn stamped(&self) -> bool {
        self.flags & STAMPED != 0
    }

    /// Whether this is a passthrough point: written out as it is (its `time`, its value, the
    /// one storage policy of its spec), never aggregated.
    #[inline(always)]
    pub fn passthrough(&self) -> bool {
        self.flags & PASSTHROUGH != 0
    }

    /// Whether this is a forwarded (rolled-up) value: see [`SampleBatch::forwarded_from`].
    #[inline(always)]
    pub fn forwarded(&self) -> bool {
        self.flags & FORWARDED != 0
    }
}

#[derive(Debug, Default)]
pub struct SampleBatch {
    ids: Vec<u8>,
    timer_values: Vec<f64>,
    specs: Vec<ElemSpec>,
    spec_ranges: Vec<(u32, u32)>,
    samples: Vec<Sample>,
    /// The rollups the specs refer to (`ElemSpec::rollup` − 1).
    rollups: Vec<BatchRollup>,
    /// (sample index, origin, how many previous values follow its values in the timer arena,
    /// whether its source is resend-enabled) of every forwarded sample, in sample order.
    forwarded: Vec<(u32, ForwardedFrom, u32, bool)>,
    /// (sample index, start and length in `gathered_runs`) of every gathered forwarded
    /// sample, in sample order (see `gathered.rs`); a gathered sample has no previous values.
    gathered: Vec<(u32, u32, u32)>,
    gathered_runs: Vec<(u32, u32)>,
}

impl SampleBatch {
    pub fn with_capacity(samples: usize) -> Self {
        Self { ids: Vec::with_capacity(samples * 32), samples: Vec::with_capacity(samples), ..Self::default() }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Bytes held in the arenas, to bound batch size.
    pub fn arena_bytes(&self) -> usize {
        self.ids.len() + self.timer_values.len() * 8
    }

    pub fn clear(&mut self) {
        self.ids.clear();
        self.timer_values.clear();
        self.specs.clear();
        self.spec_ranges.clear();
        self.samples.clear();
        self.rollups.clear();
        self.forwarded.clear();
        self.gathered.clear();
        self.gathered_runs.clear();
    }

    /// Adds a rollup (to `id`, aggregated with `aggs`, then `transforms`) for an
    /// [`ElemSpec::rollup`] of a spec added next.
    pub fn add_rollup(&mut self, id: &[u8], aggs: AggTypes, transforms: TransformChain) -> RollupRef {
        self.add_rollup_with(id, aggs, transforms, false)
    }

    /// [`SampleBatch::add_rollup`], with M3's `resend_enabled`.
    pub fn add_rollup_with(
        &mut self,
        id: &[u8],
        aggs: AggTypes,
        transforms: TransformChain,
        resend: bool,
    ) -> RollupRef {
        let id_start = self.ids.len() as u32;
        self.ids.extend_from_slice(id);
        self.rollups.push(BatchRollup { id_start, id_len: id.len() as u32, aggs, transforms, resend, next: NO_ROLLUP });
        self.rollups.len() as RollupRef
    }

    /// The rollup `r` refers to (`None` for [`NO_ROLLUP`] or a reference out of range).
    pub fn rollup(&self, r: RollupRef) -> Option<&BatchRollup> {
        self.rollups.get(r.checked_sub(1)? as usize)
    }

    /// The id of the series `rollup` goes to.
    pub fn rollup_id(&self, rollup: &BatchRollup) -> &[u8] {
        let start = rollup.id_start as usize;
        self.ids.get(start..start + rollup.id_len as usize).unwrap_or_default()
    }

    /// Appends a forwarded value list of the window at `time` of the series `id`.
    #[allow(clippy::too_many_arguments)]
    pub fn push_forwarded(
        &mut self,
        shard: u32,
        hash: u64,
        id: &[u8],
        metric_type: MetricType,
        time: UnixNanos,
        values: &[f64],
        spec: SpecRef,
        from: ForwardedFrom,
    ) {
        self.push_resent(shard, hash, id, metric_type, time, (values, &[]), spec, from);
    }

    fn mark_last_forwarded(&mut self, from: ForwardedFrom, prev: u32) {
        if let Some(last) = self.samples.last_mut() {
            last.flags |= FORWARDED;
            self.forwarded.push((self.samples.len() as u32 - 1, from, prev, false));
        }
    }

    /// The index of `s` in this batch (`None` if it is not one of this batch's samples).
    pub fn index_of(&self, s: &Sample) -> Option<usize> {
        let offset = (s as *const Sample as usize).checked_sub(self.samples.as_ptr() as usize)?;
        let index = offset / std::mem::size_of::<Sample>();
        (index < self.samples.len() && offset % std::mem::size_of::<Sample>() == 0).then_some(index)
    }

    /// Where the forwarded sample at `index` comes from (`None` if it is not forwarded).
    pub fn forwarded_from(&self, index: usize) -> Option<ForwardedFrom> {
        let at = self.forwarded.binary_search_by_key(&(index as u32), |(i, ..)| *i).ok()?;
        Some(self.forwarded[at].1)
    }

    /// Adds a metadata spec and returns its reference for [`SampleBatch::push`].
    pub fn add_spec(&mut self, elems: &[ElemSpec]) -> SpecRef {
        let start = self.specs.len() as u32;
        self.specs.extend_from_slice(elems);
        self.spec_ranges.push((start, elems.len() as u32));
        self.spec_ranges.len() as SpecRef
    }

    /// The elements of spec `r` (empty for [`DEFAULT_SPEC`]).
    pub fn spec(&self, r: SpecRef) -> &[ElemSpec] {
        match r.checked_sub(1).and_then(|i| self.spec_ranges.get(i as usize)) {
            Some(&(start, len)) => &self.specs[start as usize..(start + len) as usize],
            None => &[],
        }
    }

    /// Appends one sample. For a timer batch use [`SampleBatch::push_timer`].
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn push(
        &mut self,
        shard: u32,
        hash: u64,
        id: &[u8],
        metric_type: MetricType,
        time: UnixNanos,
        value: SampleValue,
        spec: SpecRef,
    ) {
        let id_start = self.ids.len() as u32;
        append_id(&mut self.ids, id);
        let (flags, value_bits) = pack(value);
        self.samples.push(Sample {
            hash,
            time,
            value_bits,
            id_start,
            id_len: id.len() as u32,
            spec,
            shard: u16::try_from(shard).unwrap_or(NO_SHARD as u16),
            metric_type,
            flags,
        });
    }

    /// Appends a timer sample carrying several values.
    pub fn push_timer(&mut self, shard: u32, hash: u64, id: &[u8], time: UnixNanos, values: &[f64], spec: SpecRef) {
        let start = self.timer_values.len() as u32;
        self.timer_values.extend_from_slice(values);
        let value = SampleValue::Timer { start, len: values.len() as u32 };
        self.push(shard, hash, id, MetricType::Timer, time, value, spec);
    }

    /// Appends an untimed sample that arrived at `arrival` (forwarded from a peer node).
    #[allow(clippy::too_many_arguments)]
    pub fn push_stamped(
        &mut self,
        shard: u32,
        hash: u64,
        id: &[u8],
        metric_type: MetricType,
        arrival: UnixNanos,
        value: SampleValue,
        spec: SpecRef,
    ) {
        self.push(shard, hash, id, metric_type, arrival, value, spec);
        self.mark_last_stamped();
    }

    /// Appends a passthrough point of `time`, whose spec `spec` holds its one storage policy.
    #[allow(clippy::too_many_arguments)]
    pub fn push_passthrough(
        &mut self,
        shard: u32,
        hash: u64,
        id: &[u8],
        metric_type: MetricType,
        time: UnixNanos,
        value: f64,
        spec: SpecRef,
    ) {
        self.push(shard, hash, id, metric_type, time, SampleValue::Number(value), spec);
        if let Some(last) = self.samples.last_mut() {
            last.flags |= PASSTHROUGH;
        }
    }

    /// Appends a copy of `s`, a sample of `from` (its id, timer values, metadata, rollups and
    /// origin too).
    pub fn copy_from(&mut self, from: &SampleBatch, s: &Sample) {
        let spec = if s.spec == DEFAULT_SPEC { DEFAULT_SPEC } else { self.copy_spec(from, s.spec) };
        let id = from.id(s);
        let prev = from.index_of(s).map_or(&[][..], |i| from.forwarded_prev_values(i));
        match s.value() {
            SampleValue::Timer { len, .. } => {
                let start = self.timer_values.len() as u32;
                self.timer_values.extend_from_slice(from.timer_values_of(s));
                self.timer_values.extend_from_slice(prev);
                let value = SampleValue::Timer { start, len };
                self.push(s.shard(), s.hash, id, s.metric_type, s.time, value, spec);
            }
            v => self.push(s.shard(), s.hash, id, s.metric_type, s.time, v, spec),
        }
        if let Some(last) = self.samples.last_mut() {
            last.flags |= s.flags & (STAMPED | PASSTHROUGH);
        }
        if s.forwarded()
            && let Some(index) = from.index_of(s)
            && let Some(origin) = from.forwarded_from(index)
        {
            self.mark_last_forwarded(origin, prev.len() as u32);
            if from.forwarded_resend(index) {
                self.mark_last_resend();
            }
            if let Some(runs) = from.gathered_runs(index) {
                self.mark_last_gathered(runs);
            }
        }
    }

    /// Adds spec `r` of `from` to this batch, its rollups re-pointed at copies here.
    fn copy_spec(&mut self, from: &SampleBatch, r: SpecRef) -> SpecRef {
        let elems = from.spec(r);
        if elems.iter().all(|e| e.rollup == NO_ROLLUP) {
            return self.add_spec(elems);
        }
        let start = self.specs.len() as u32;
        for e in elems {
            let rollup = self.copy_rollup(from, e.rollup, 0);
            self.specs.push(ElemSpec { rollup, ..*e });
        }
        self.spec_ranges.push((start, elems.len() as u32));
        self.spec_ranges.len() as SpecRef
    }

    /// The values of a timer or forwarded sample `s` of this batch (empty for any other).
    pub fn timer_values_of(&self, s: &Sample) -> &[f64] {
        match s.value() {
            SampleValue::Timer { start, len } => self.timer_values(start, len),
            _ => &[],
        }
    }

    /// Marks the last sample pushed as an untimed value stamped with its arrival time.
    pub fn mark_last_stamped(&mut self) {
        if let Some(last) = self.samples.last_mut() {
            last.flags |= STAMPED;
        }
    }

    /// Stamps every untimed sample with `now` as its arrival time, so that it lands in the same
    /// window on every replica it is forwarded to.
    pub fn stamp_untimed(&mut self, now: UnixNanos) {
        for s in &mut self.samples {
            if s.time == UNTIMED {
                s.time = now;
                s.flags |= STAMPED;
            }
        }
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    pub fn id(&self, s: &Sample) -> &[u8] {
        // Summed as usize: two u32s cannot overflow it, so only the end is checked.
        let start = s.id_start as usize;
        self.ids.get(start..start + s.id_len as usize).unwrap_or_default()
    }

    pub fn timer_values(&self, start: u32, len: u32) -> &[f64] {
        &self.timer_values[start as usize..(start + len) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Ids of every length, appended after arena contents of every length, come back whole
        /// and leave what was there before alone.
        #[test]
        fn append_id_is_extend_from_slice(before in prop::collection::vec(any::<u8>(), 0..40), ids in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 1..8)) {
            let (mut arena, mut expected) = (before.clone(), before);
            arena.shrink_to_fit();
            for id in &ids {
                append_id(&mut arena, id);
                expected.extend_from_slice(id);
                prop_assert_eq!(&arena, &expected);
            }
        }

        /// A sample gives back the value it was pushed with, bit for bit (NaN payloads and
        /// negative zero included), stamped or not.
        #[test]
        fn a_sample_keeps_its_value_and_stamp(bits in any::<u64>(), start in any::<u32>(), len in any::<u32>(), kind in 0..4u8, stamp in any::<bool>()) {
            let value = match kind {
                0 => SampleValue::Number(f64::from_bits(bits)),
                1 => SampleValue::GaugeDelta(f64::from_bits(bits)),
                2 => SampleValue::Member(bits),
                _ => SampleValue::Timer { start, len },
            };
            let mut b = SampleBatch::with_capacity(1);
            b.push(3, 7, b"id", MetricType::Gauge, 5, value, DEFAULT_SPEC);
            if stamp {
                b.mark_last_stamped();
            }
            let s = b.samples()[0];
            let same = match (s.value(), value) {
                (SampleValue::Number(a), SampleValue::Number(b)) | (SampleValue::GaugeDelta(a), SampleValue::GaugeDelta(b)) => a.to_bits() == b.to_bits(),
                (a, b) => a == b,
            };
            prop_assert!(same, "{:?} came back as {:?}", value, s.value());
            prop_assert_eq!(s.stamped(), stamp);
            prop_assert_eq!((s.shard(), s.hash, s.time, s.metric_type, b.id(&s)), (3, 7, 5, MetricType::Gauge, &b"id"[..]));
        }
    }

    #[test]
    fn arenas_keep_ids_values_and_specs_apart() {
        let mut b = SampleBatch::with_capacity(4);
        let p = "10s:2d".parse().unwrap();
        let spec = b.add_spec(&[ElemSpec::new(AggTypes::DEFAULT, p)]);
        b.push(1, 7, b"a.b", MetricType::Counter, UNTIMED, SampleValue::Number(2.0), DEFAULT_SPEC);
        b.push_timer(2, 8, b"t", 99, &[1.0, 2.0], spec);
        let s = b.samples();
        assert_eq!(b.id(&s[0]), b"a.b");
        assert_eq!(b.id(&s[1]), b"t");
        let SampleValue::Timer { start, len } = s[1].value() else { panic!() };
        assert_eq!(b.timer_values(start, len), &[1.0, 2.0]);
        assert_eq!(b.spec(spec).len(), 1);
        assert!(b.spec(DEFAULT_SPEC).is_empty());
        b.clear();
        assert!(b.is_empty() && b.arena_bytes() == 0);
    }
}
