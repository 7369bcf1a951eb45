//! Resent forwarded samples (M3's `resend_enabled`): the values a correction replaces
//! (`prev_values`, after the sample's values in the timer arena) and whether a forwarded
//! sample's source is resend-enabled; rollups that roll up again (nested rollups). Same batch,
//! same owners as [`SampleBatch`].

use super::{ForwardedFrom, MetricType, NO_ROLLUP, RollupRef, SampleBatch, SampleValue, SpecRef};
use crate::aggregation::AggTypes;
use crate::pipeline::MAX_ROLLUP_DEPTH;
use crate::time::UnixNanos;
use crate::transform::TransformChain;

impl SampleBatch {
    /// Appends a forwarded value list that replaces `prev`, the values the same source sent
    /// for the window before (M3's `ForwardedMetric.prev_values`; empty for a first flush).
    #[allow(clippy::too_many_arguments)]
    pub fn push_resent(
        &mut self,
        shard: u32,
        hash: u64,
        id: &[u8],
        metric_type: MetricType,
        time: UnixNanos,
        (values, prev): (&[f64], &[f64]),
        spec: SpecRef,
        from: ForwardedFrom,
    ) {
        let start = self.timer_values.len() as u32;
        self.timer_values.extend_from_slice(values);
        self.timer_values.extend_from_slice(prev);
        let value = SampleValue::Timer { start, len: values.len() as u32 };
        self.push(shard, hash, id, metric_type, time, value, spec);
        self.mark_last_forwarded(from, prev.len() as u32);
    }

    /// The previous values the forwarded sample at `index` replaces (see `push_resent`).
    pub fn forwarded_prev_values(&self, index: usize) -> &[f64] {
        let Ok(at) = self.forwarded.binary_search_by_key(&(index as u32), |(i, ..)| *i) else {
            return &[];
        };
        match self.samples.get(index).map(|s| s.value()) {
            Some(SampleValue::Timer { start, len }) => {
                let from = start as usize + len as usize;
                self.timer_values.get(from..from + self.forwarded[at].2 as usize).unwrap_or_default()
            }
            _ => &[],
        }
    }

    /// Marks the last forwarded sample pushed as from a resend-enabled source (M3's
    /// `ForwardMetadata.resend_enabled`): its window may be corrected after it is emitted.
    pub fn mark_last_resend(&mut self) {
        if let Some(last) = self.forwarded.last_mut() {
            last.3 = true;
        }
    }

    /// Whether the forwarded sample at `index` comes from a resend-enabled source.
    pub fn forwarded_resend(&self, index: usize) -> bool {
        let at = self.forwarded.binary_search_by_key(&(index as u32), |(i, ..)| *i);
        at.is_ok_and(|at| self.forwarded[at].3)
    }

    /// [`SampleBatch::add_rollup_with`] for a rolled-up series that rolls up again into `next`
    /// (a rollup of this batch): a pipeline with several rollup ops.
    pub fn add_nested_rollup(
        &mut self,
        id: &[u8],
        aggs: AggTypes,
        transforms: TransformChain,
        resend: bool,
        next: RollupRef,
    ) -> RollupRef {
        let r = self.add_rollup_with(id, aggs, transforms, resend);
        if let Some(rollup) = self.rollups.last_mut() {
            rollup.next = next;
        }
        r
    }

    /// Copies rollup `r` of `from`, and the rollups after it, into this batch (`NO_ROLLUP` for
    /// none, or for a chain deeper than [`MAX_ROLLUP_DEPTH`]).
    pub(super) fn copy_rollup(&mut self, from: &SampleBatch, r: RollupRef, depth: usize) -> RollupRef {
        let Some(rollup) = from.rollup(r).filter(|_| depth < MAX_ROLLUP_DEPTH) else {
            return NO_ROLLUP;
        };
        let next = if rollup.next == NO_ROLLUP { NO_ROLLUP } else { self.copy_rollup(from, rollup.next, depth + 1) };
        self.add_nested_rollup(from.rollup_id(rollup), rollup.aggs, rollup.transforms, rollup.resend, next)
    }
}
