//! Metadata part of the zero-copy decoder: picks the staged metadata in effect and
//! flattens its pipelines and storage policies into the reusable [`Scratch`].
//! Used on the shard cores.

use std::ops::Range;

use super::error::DecodeError;
use super::wire::Fields;

/// A `policypb.StoragePolicy`, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StoragePolicyView {
    /// `resolution.window_size`.
    pub resolution_nanos: i64,
    /// `resolution.precision`.
    pub precision_nanos: i64,
    /// `retention.period`.
    pub retention_nanos: i64,
}

/// One `metricpb.PipelineMetadata` (or the single pipeline implied by timed metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineView {
    /// `AggregationID` bitset (bit i = `AggregationType` i); 0 means the default
    /// aggregations for the metric type.
    pub aggregation_id: u64,
    /// Range into [`Scratch::policies`]; empty means the default storage policies.
    pub policies: Range<usize>,
    /// Whether the applied pipeline has any op (transformation or rollup).
    pub has_ops: bool,
    /// Range into [`Scratch::ops`]: the ops of the applied pipeline, in order.
    pub ops: Range<usize>,
    /// `PipelineMetadata.resend_enabled`.
    pub resend_enabled: bool,
}

/// `pipelinepb.AppliedPipelineOp.Type`: a transformation.
pub const OP_TRANSFORMATION: u64 = 1;
/// `pipelinepb.AppliedPipelineOp.Type`: a rollup.
pub const OP_ROLLUP: u64 = 2;

/// One `pipelinepb.AppliedPipelineOp`, with prost's field semantics: the type says which of
/// the other fields is meant; the decoder does not judge them (the caller refuses an op it
/// does not know).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpView {
    /// `type`: [`OP_TRANSFORMATION`], [`OP_ROLLUP`], or anything else.
    pub op_type: u64,
    /// `transformation.type` (`transformationpb.TransformationType`).
    pub transformation_type: u64,
    /// `rollup.id`: a range into [`Scratch::rollup_ids`].
    pub rollup_id: Range<usize>,
    /// `rollup.aggregation_id.id`.
    pub rollup_aggregation_id: u64,
}

/// Reused between calls; cleared by decode.
#[derive(Debug, Clone, Default)]
pub struct Scratch {
    /// Values of a batch timer, in order.
    pub timer_values: Vec<f64>,
    /// Pipelines of the metadata in effect; empty means the default policies and
    /// aggregations (no staged metadata, or the one in effect is tombstoned).
    pub pipelines: Vec<PipelineView>,
    /// Storage policies, indexed by [`PipelineView::policies`].
    pub policies: Vec<StoragePolicyView>,
    /// Pipeline ops, indexed by [`PipelineView::ops`].
    pub ops: Vec<OpView>,
    /// The bytes of every rollup id, indexed by [`OpView::rollup_id`].
    pub rollup_ids: Vec<u8>,
    /// Previous values of a forwarded metric (`ForwardedMetric.prev_values`).
    pub prev_values: Vec<f64>,
    /// The staged metadata in effect is tombstoned. M3 does not aggregate such a
    /// metric at all (it counts it and drops it); `pipelines` is then empty.
    pub tombstoned: bool,
    /// `cutover_nanos` of the staged metadata in effect (0 when there is none, or
    /// for timed metadata and storage policies).
    pub cutover_nanos: i64,
    /// The metadata bytes whose result `pipelines`, `policies`, `tombstoned` and
    /// `cutover_nanos` hold, while the fast path may reuse it.
    pub(super) cache: MetadataCache,
    /// Changes whenever the metadata fields may have changed.
    generation: u64,
}

impl Scratch {
    /// Empties every vector (keeping their capacity) and resets the flags.
    pub fn clear(&mut self) {
        self.timer_values.clear();
        self.prev_values.clear();
        self.clear_metadata();
    }

    /// Empties the metadata fields and forgets which bytes they came from.
    pub(super) fn clear_metadata(&mut self) {
        self.pipelines.clear();
        self.policies.clear();
        self.ops.clear();
        self.rollup_ids.clear();
        self.tombstoned = false;
        self.cutover_nanos = 0;
        self.cache.forget();
        self.generation = self.generation.wrapping_add(1);
    }

    /// A number that stays the same between two decodes only if the metadata fields
    /// (`pipelines`, `policies`, `tombstoned`, `cutover_nanos`) did not change, so that a
    /// caller may keep what it derived from them.
    pub fn metadata_generation(&self) -> u64 {
        self.generation
    }

    /// The storage policies of `pipeline` (empty: the default ones).
    pub fn policies_of(&self, pipeline: &PipelineView) -> &[StoragePolicyView] {
        &self.policies[pipeline.policies.clone()]
    }

    /// The ops of `pipeline`, in order (empty: none).
    pub fn ops_of(&self, pipeline: &PipelineView) -> &[OpView] {
        &self.ops[pipeline.ops.clone()]
    }

    /// The id of a rollup op.
    pub fn rollup_id_of(&self, op: &OpView) -> &[u8] {
        &self.rollup_ids[op.rollup_id.clone()]
    }

    /// Adds the pipeline of a `ForwardMetadata`: its ops are every op in the scratch.
    pub(super) fn push_forwarded(&mut self, aggregation_id: u64, policy: Option<StoragePolicyView>) {
        let start = self.policies.len();
        self.policies.extend(policy);
        let ops = 0..self.ops.len();
        let has_ops = !ops.is_empty();
        let policies = start..self.policies.len();
        self.pipelines.push(PipelineView { aggregation_id, policies, has_ops, ops, resend_enabled: false });
    }

    /// Adds a pipeline with no ops and at most one storage policy.
    pub(super) fn push_single(&mut self, aggregation_id: u64, policy: Option<StoragePolicyView>) {
        let start = self.policies.len();
        self.policies.extend(policy);
        let ops = self.ops.len()..self.ops.len();
        let policies = start..self.policies.len();
        self.pipelines.push(PipelineView { aggregation_id, policies, has_ops: false, ops, resend_enabled: false });
    }
}

/// The `StagedMetadatas` bytes that the metadata fields of a [`Scratch`] were decoded
/// from, remembered only while the result does not depend on the time of decoding.
#[derive(Debug, Clone, Default)]
pub(super) struct MetadataCache {
    bytes: Vec<u8>,
    valid: bool,
}

impl MetadataCache {
    /// Whether the scratch holds the result of decoding `body`.
    #[inline]
    pub(super) fn holds(&self, body: &[u8]) -> bool {
        self.valid && same_bytes(&self.bytes, body)
    }

    pub(super) fn remember(&mut self, body: &[u8]) {
        self.bytes.clear();
        self.bytes.extend_from_slice(body);
        self.valid = true;
    }

    pub(super) fn forget(&mut self) {
        self.valid = false;
    }

    #[cfg(test)]
    pub(super) fn is_valid(&self) -> bool {
        self.valid
    }
}

/// `a == b`, inlined for the lengths a `StagedMetadatas` has (6 bytes for the defaults, ~43
/// with one storage policy): loads of the same width from each end, overlapping, instead of
/// a call into `memcmp` and its dispatch on the length, once per m3msg message.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    fn at<const W: usize>(bytes: &[u8], from: usize) -> [u8; W] {
        bytes.get(from..from + W).and_then(|s| s.try_into().ok()).unwrap_or([0; W])
    }
    let u32_differ = |from| u32::from_ne_bytes(at(a, from)) ^ u32::from_ne_bytes(at(b, from));
    let u64_differ = |from| u64::from_ne_bytes(at(a, from)) ^ u64::from_ne_bytes(at(b, from));
    let u128_differ = |from| u128::from_ne_bytes(at(a, from)) ^ u128::from_ne_bytes(at(b, from));
    match n {
        0 => true,
        // The first, middle and last bytes are every byte.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => u32_differ(0) | u32_differ(n - 4) == 0,
        8..=15 => u64_differ(0) | u64_differ(n - 8) == 0,
        16..=32 => u128_differ(0) | u128_differ(n - 16) == 0,
        33..=64 => u128_differ(0) | u128_differ(16) | u128_differ(n - 32) | u128_differ(n - 16) == 0,
        _ => a == b,
    }
}

/// Merges an `aggregationpb.AggregationID` body into `id`.
pub(super) fn merge_aggregation_id(buf: &[u8], id: &mut u64) -> Result<(), DecodeError> {
    for field in Fields::new(buf) {
        let field = field?;
        if field.number == 1 {
            *id = field.varint()?;
        }
    }
    Ok(())
}

/// Merges a `policypb.StoragePolicy` body into `policy`.
pub(super) fn merge_storage_policy(buf: &[u8], policy: &mut StoragePolicyView) -> Result<(), DecodeError> {
    for field in Fields::new(buf) {
        let field = field?;
        match field.number {
            // Resolution { window_size = 1, precision = 2 }
            1 => {
                for field in Fields::new(field.bytes()?) {
                    let field = field?;
                    match field.number {
                        1 => policy.resolution_nanos = field.varint()? as i64,
                        2 => policy.precision_nanos = field.varint()? as i64,
                        _ => {}
                    }
                }
            }
            // Retention { period = 1 }
            2 => {
                for field in Fields::new(field.bytes()?) {
                    let field = field?;
                    if field.number == 1 {
                        policy.retention_nanos = field.varint()? as i64;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Timed metadata (`metricpb.TimedMetadata`, or the storage policy of
/// `TimedMetricWithStoragePolicy`): one pipeline, no ops.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TimedMetadataFields {
    pub(super) aggregation_id: u64,
    /// `None` when the storage policy field is absent (default policies).
    pub(super) policy: Option<StoragePolicyView>,
}

impl TimedMetadataFields {
    /// Merges a `metricpb.TimedMetadata` body.
    pub(super) fn merge_timed_metadata(&mut self, buf: &[u8]) -> Result<(), DecodeError> {
        for field in Fields::new(buf) {
            let field = field?;
            match field.number {
                1 => merge_aggregation_id(field.bytes()?, &mut self.aggregation_id)?,
                2 => self.merge_storage_policy(field.bytes()?)?,
                // routing_policy: not interpreted.
                3 => {
                    field.bytes()?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Merges a `policypb.StoragePolicy` body into the single policy.
    pub(super) fn merge_storage_policy(&mut self, buf: &[u8]) -> Result<(), DecodeError> {
        merge_storage_policy(buf, self.policy.get_or_insert_default())
    }
}

/// One candidate `StagedMetadata`: its cutover, tombstone and whole body.
#[derive(Debug, Clone, Copy)]
struct Candidate<'a> {
    cutover_nanos: i64,
    tombstoned: bool,
    body: &'a [u8],
}

/// Streaming choice of the `StagedMetadata` in effect at `now_nanos`: the largest
/// cutover <= now (the last one on ties, as M3 scanning sorted metadatas from the
/// end), else the smallest cutover (the first one on ties).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct StagedSelector<'a> {
    at_or_before: Option<Candidate<'a>>,
    after: Option<Candidate<'a>>,
    candidates: usize,
}

impl<'a> StagedSelector<'a> {
    /// Offers every `StagedMetadata` of a `metricpb.StagedMetadatas` body.
    pub(super) fn merge(&mut self, buf: &'a [u8], now_nanos: i64) -> Result<(), DecodeError> {
        for field in Fields::new(buf) {
            let field = field?;
            if field.number == 1 {
                let candidate = scan_staged_metadata(field.bytes()?)?;
                self.offer(candidate, now_nanos);
            }
        }
        Ok(())
    }

    /// How many `StagedMetadata` were offered.
    pub(super) fn candidates(&self) -> usize {
        self.candidates
    }

    fn offer(&mut self, c: Candidate<'a>, now_nanos: i64) {
        self.candidates += 1;
        if c.cutover_nanos <= now_nanos {
            if self.at_or_before.is_none_or(|best| c.cutover_nanos >= best.cutover_nanos) {
                self.at_or_before = Some(c);
            }
        } else if self.after.is_none_or(|best| c.cutover_nanos < best.cutover_nanos) {
            self.after = Some(c);
        }
    }

    /// Writes the chosen metadata's pipelines and policies into `scratch`.
    pub(super) fn apply(self, scratch: &mut Scratch) -> Result<(), DecodeError> {
        let Some(chosen) = self.at_or_before.or(self.after) else {
            return Ok(());
        };
        scratch.cutover_nanos = chosen.cutover_nanos;
        scratch.tombstoned = chosen.tombstoned;
        if chosen.tombstoned {
            return Ok(());
        }
        for field in Fields::new(chosen.body) {
            let field = field?;
            if field.number == 3 {
                merge_metadata(field.bytes()?, scratch)?;
            }
        }
        Ok(())
    }
}

/// Reads the cutover and tombstone of a `metricpb.StagedMetadata` body and checks
/// its framing; the metadata itself is only decoded if it is chosen.
fn scan_staged_metadata(body: &[u8]) -> Result<Candidate<'_>, DecodeError> {
    let mut c = Candidate { cutover_nanos: 0, tombstoned: false, body };
    for field in Fields::new(body) {
        let field = field?;
        match field.number {
            1 => c.cutover_nanos = field.varint()? as i64,
            2 => c.tombstoned = field.varint()? != 0,
            3 => {
                field.bytes()?;
            }
            _ => {}
        }
    }
    Ok(c)
}

/// Appends the pipelines of a `metricpb.Metadata` body.
fn merge_metadata(buf: &[u8], scratch: &mut Scratch) -> Result<(), DecodeError> {
    for field in Fields::new(buf) {
        let field = field?;
        if field.number == 1 {
            decode_pipeline(field.bytes()?, scratch)?;
        }
    }
    Ok(())
}

/// Appends one `metricpb.PipelineMetadata` and its storage policies.
fn decode_pipeline(buf: &[u8], scratch: &mut Scratch) -> Result<(), DecodeError> {
    let start = scratch.policies.len();
    let ops_start = scratch.ops.len();
    let mut aggregation_id = 0;
    let mut resend_enabled = false;
    for field in Fields::new(buf) {
        let field = field?;
        match field.number {
            1 => merge_aggregation_id(field.bytes()?, &mut aggregation_id)?,
            2 => {
                let mut policy = StoragePolicyView::default();
                merge_storage_policy(field.bytes()?, &mut policy)?;
                scratch.policies.push(policy);
            }
            3 => merge_applied_pipeline(field.bytes()?, scratch)?,
            // drop_policy: not interpreted.
            4 => {
                field.varint()?;
            }
            5 => resend_enabled = field.varint()? != 0,
            // routing_policy: not interpreted.
            6 => {
                field.bytes()?;
            }
            _ => {}
        }
    }
    let ops = ops_start..scratch.ops.len();
    let has_ops = !ops.is_empty();
    let policies = start..scratch.policies.len();
    scratch.pipelines.push(PipelineView { aggregation_id, policies, has_ops, ops, resend_enabled });
    Ok(())
}

/// Appends the ops of a `pipelinepb.AppliedPipeline` body (`repeated AppliedPipelineOp ops = 1`).
pub(super) fn merge_applied_pipeline(buf: &[u8], scratch: &mut Scratch) -> Result<(), DecodeError> {
    for field in Fields::new(buf) {
        let field = field?;
        if field.number == 1 {
            let op = decode_op(field.bytes()?, &mut scratch.rollup_ids)?;
            scratch.ops.push(op);
        }
    }
    Ok(())
}

/// Decodes one `pipelinepb.AppliedPipelineOp`: type=1, transformation=2 { type=1 },
/// rollup=3 { id=1, aggregation_id=2 }; a rollup id is copied into `rollup_ids`.
fn decode_op(buf: &[u8], rollup_ids: &mut Vec<u8>) -> Result<OpView, DecodeError> {
    let mut op = OpView { rollup_id: rollup_ids.len()..rollup_ids.len(), ..OpView::default() };
    for field in Fields::new(buf) {
        let field = field?;
        match field.number {
            1 => op.op_type = field.varint()?,
            2 => {
                for field in Fields::new(field.bytes()?) {
                    let field = field?;
                    if field.number == 1 {
                        op.transformation_type = field.varint()?;
                    }
                }
            }
            3 => {
                for field in Fields::new(field.bytes()?) {
                    let field = field?;
                    match field.number {
                        1 => {
                            let id = field.bytes()?;
                            let at = rollup_ids.len();
                            rollup_ids.extend_from_slice(id);
                            op.rollup_id = at..rollup_ids.len();
                        }
                        2 => merge_aggregation_id(field.bytes()?, &mut op.rollup_aggregation_id)?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::same_bytes;
    use proptest::prelude::*;

    proptest! {
        /// Equal to `==` at every length, whichever byte differs (or none, or the length).
        #[test]
        fn same_bytes_is_eq(a in prop::collection::vec(any::<u8>(), 0..80), flip in any::<prop::sample::Index>(), bit in 0..8u8, change in 0..3u8) {
            let mut b = a.clone();
            match change {
                0 if !b.is_empty() => b[flip.index(a.len())] ^= 1 << bit,
                1 => b.push(bit),
                _ => {}
            }
            prop_assert_eq!(same_bytes(&a, &b), a == b);
        }
    }
}
