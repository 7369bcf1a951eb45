//! `M3msgDecoder`: m3msg messages into samples. The metric inside a message is decoded with
//! the zero-copy `sheaf_proto::view` decoder; its staged metadata becomes the spec of the
//! sample (aggregations and storage policies), interned once per batch while it repeats.

use sheaf_proto::forward::{ANNOTATION_FRACTIONAL_COUNTER, ANNOTATION_GAUGE_DELTA, ANNOTATION_SET_MEMBER};
use sheaf_proto::output::AckFrame;
use sheaf_proto::view::{self, MetricView, Scratch, TimedType};
use sheaf_shard_core::batch::DEFAULT_SPEC;
use sheaf_shard_core::murmur3::ShardOf;
use sheaf_shard_core::pipeline::MAX_ROLLUP_DEPTH;
use sheaf_shard_core::{
    AggTypes, AggregatorOptions, ElemSpec, ForwardedFrom, MetricType, NO_ROLLUP, RollupRef, SampleBatch, SampleValue,
    SpecRef, StoragePolicy, TransformChain, TransformType, UNTIMED,
};

use super::{DecodeTally, SampleRouter};

/// Turns decoded m3msg metrics into samples; holds the reused scratch space.
pub struct M3msgDecoder {
    scratch: Scratch,
    elems: Vec<ElemSpec>,
    defaults: Vec<StoragePolicy>,
    /// The finest resolution accepted (nanoseconds).
    min_resolution: i64,
    shard_of: ShardOf,
    /// What `elems` was derived from (`Scratch::metadata_generation`), so that a metadata
    /// repeated from one message to the next is not derived again.
    elems_generation: Option<u64>,
    /// What `elems` means: the default spec, or an error for the metadata.
    elems_outcome: Result<bool, &'static str>,
    /// The last spec added, reused while the metadata repeats (checked against the batch).
    last_spec: Option<SpecRef>,
    /// The rollups `elems` name (`ElemSpec::rollup` − 1 while in `elems`): the rollup id's
    /// range in `rollup_ids`, its aggregations and the transformations after it.
    /// (id in `rollup_ids`, aggregations, transformations after, `resend_enabled`, the next
    /// rollup of a nested pipeline: its index here + 1, always after this one, or 0).
    rollups: Vec<(std::ops::Range<usize>, AggTypes, TransformChain, bool, u32)>,
    rollup_ids: Vec<u8>,
    /// `elems` as added to a batch, their rollups re-pointed at the batch's copies.
    batch_elems: Vec<ElemSpec>,
    tally: DecodeTally,
}

impl M3msgDecoder {
    /// For a pool of `num_shards` shards aggregating with `options`: metadata that names no
    /// storage policy means its default policies, and one finer than its minimum resolution
    /// is refused.
    pub fn new(num_shards: u32, options: &AggregatorOptions) -> Self {
        Self {
            scratch: Scratch::default(),
            elems: Vec::new(),
            defaults: options.default_policies.clone(),
            min_resolution: options.min_resolution,
            shard_of: ShardOf::new(num_shards),
            elems_generation: None,
            elems_outcome: Ok(true),
            last_spec: None,
            rollups: Vec::new(),
            rollup_ids: Vec::new(),
            batch_elems: Vec::new(),
            tally: DecodeTally::default(),
        }
    }

    /// What was accepted and refused since the tally was last emptied.
    pub fn tally(&mut self) -> &mut DecodeTally {
        &mut self.tally
    }

    /// Counts a refusal the caller made (a frame it could not cut out of its stream).
    pub fn reject(&mut self, reason: &'static str) {
        self.tally.reject(reason);
    }

    /// Decodes one m3msg `Message` payload (a frame without its length) received at `now`,
    /// adds its ack to `acks` and routes its metric. A malformed message is counted; one
    /// whose envelope decodes is acked even if its metric is refused, as M3 does.
    pub fn message(&mut self, payload: &[u8], now: i64, router: &mut impl SampleRouter, acks: &mut AckFrame) {
        let msg = match view::decode_message(payload) {
            Ok(m) => m,
            Err(e) => {
                self.tally.reject(e.reason());
                return;
            }
        };
        acks.push_message(&msg);
        if let Err(reason) = self.metric(msg.value, now, router) {
            self.tally.reject(reason);
        }
    }

    /// Decodes one `MetricWithMetadatas` received at `now` and routes it; the error is the
    /// reason it was refused (not counted: `message` counts it).
    fn metric(&mut self, value: &[u8], now: i64, router: &mut impl SampleRouter) -> Result<(), &'static str> {
        let metric = view::decode_metric(value, now, &mut self.scratch).map_err(|e| e.reason())?;
        // M3 drops a metric whose metadata in effect is tombstoned.
        if self.scratch.tombstoned {
            return Err("tombstoned");
        }
        // An untimed value with a client time came from a peer node (or an M3 client with
        // resend enabled): it goes in the window of that time, as on the node that took it in.
        let stamped = |t: i64| if t != 0 { t } else { UNTIMED };
        let (metric_type, id, time) = match metric {
            MetricView::Passthrough { kind, id, time_nanos, value } => {
                return self.passthrough(timed_metric_type(kind), id, time_nanos, value, router);
            }
            MetricView::Counter { id, client_time_nanos, .. } => (MetricType::Counter, id, stamped(client_time_nanos)),
            MetricView::BatchTimer { id, client_time_nanos } => (MetricType::Timer, id, stamped(client_time_nanos)),
            MetricView::Gauge { id, client_time_nanos, annotation, .. } => {
                let t = match annotation {
                    ANNOTATION_SET_MEMBER => MetricType::Set,
                    ANNOTATION_FRACTIONAL_COUNTER => MetricType::Counter,
                    _ => MetricType::Gauge,
                };
                (t, id, stamped(client_time_nanos))
            }
            MetricView::Timed { kind, id, time_nanos, .. } => {
                let t = timed_metric_type(kind);
                // i64::MIN marks "untimed" inside a batch; a client sending it means the
                // distant past, which the owner refuses as too late.
                (t, id, time_nanos.max(UNTIMED + 1))
            }
            MetricView::Forwarded {
                kind,
                id,
                time_nanos,
                version,
                source_id,
                num_forwarded_times,
                resend_enabled,
                ..
            } => {
                let times = u8::try_from(num_forwarded_times).ok().filter(|n| *n > 0).ok_or("bad_forwarded_metric")?;
                let from = ForwardedFrom { source: source_id, version, times };
                return self.forwarded(timed_metric_type(kind), id, (time_nanos, resend_enabled), from, router);
            }
        };
        if id.is_empty() {
            return Err("empty_id");
        }
        let (shard, hash) = self.shard_of.shard_and_hash(metric_type, id);
        let values = match metric {
            MetricView::BatchTimer { .. } => self.scratch.timer_values.len() as u64,
            _ => 1,
        };
        let untimed_arrival = !matches!(metric, MetricView::Timed { .. }) && time != UNTIMED;
        let batch = router.batch_for(shard);
        let spec = self.spec(batch)?;
        let value = match metric {
            MetricView::Counter { value, .. } => SampleValue::Number(value as f64),
            MetricView::Gauge { annotation, value, .. } if annotation == ANNOTATION_SET_MEMBER => {
                SampleValue::Member(value.to_bits())
            }
            MetricView::Gauge { annotation, value, .. } if annotation == ANNOTATION_GAUGE_DELTA => {
                if !value.is_finite() {
                    return Err("non_finite");
                }
                SampleValue::GaugeDelta(value)
            }
            MetricView::Gauge { value, .. } | MetricView::Timed { value, .. } => {
                if !value.is_finite() {
                    return Err("non_finite");
                }
                SampleValue::Number(value)
            }
            // (A forwarded metric was routed above.)
            MetricView::BatchTimer { .. } | MetricView::Forwarded { .. } => {
                if self.scratch.timer_values.iter().chain(&self.scratch.prev_values).any(|v| !v.is_finite()) {
                    return Err("non_finite");
                }
                SampleValue::Timer { start: 0, len: 0 }
            }
            // Routed above; never reached.
            MetricView::Passthrough { .. } => return Err("unsupported_type"),
        };
        match (value, untimed_arrival) {
            (SampleValue::Timer { .. }, false) => {
                batch.push_timer(shard, hash, id, time, &self.scratch.timer_values, spec)
            }
            (SampleValue::Timer { .. }, true) => {
                batch.push_timer(shard, hash, id, time, &self.scratch.timer_values, spec);
                batch.mark_last_stamped();
            }
            (v, false) => batch.push(shard, hash, id, metric_type, time, v, spec),
            (v, true) => batch.push_stamped(shard, hash, id, metric_type, time, v, spec),
        }
        self.tally.ingested += values;
        Ok(())
    }

    /// Routes a forwarded metric (`FORWARDED_METRIC_WITH_METADATA`: one source shard's values
    /// for one window of a rolled-up series) to the core owning the rolled-up series, which
    /// takes it in once per (source, version).
    fn forwarded(
        &mut self,
        metric_type: MetricType,
        id: &[u8],
        (time, resend): (i64, bool),
        from: ForwardedFrom,
        router: &mut impl SampleRouter,
    ) -> Result<(), &'static str> {
        if id.is_empty() {
            return Err("empty_id");
        }
        if self.scratch.timer_values.iter().chain(&self.scratch.prev_values).any(|v| !v.is_finite()) {
            return Err("non_finite");
        }
        // The forward metadata is decoded afresh with each message: derived here, not cached.
        self.elems_generation = None;
        self.elems_outcome = self.derive_elems(from.times);
        self.elems_outcome?;
        let (shard, hash) = self.shard_of.shard_and_hash(metric_type, id);
        let batch = router.batch_for(shard);
        let spec = self.add_elems(batch);
        // `prev_values`: what a resend-enabled source sent for the window before (replaced).
        let values = (&self.scratch.timer_values[..], &self.scratch.prev_values[..]);
        batch.push_resent(shard, hash, id, metric_type, time.max(UNTIMED + 1), values, spec, from);
        if resend {
            batch.mark_last_resend();
        }
        self.tally.ingested += self.scratch.timer_values.len() as u64;
        Ok(())
    }

    /// Routes a passthrough point (`TIMED_METRIC_WITH_STORAGE_POLICY`): its own time, value
    /// and storage policy go unchanged to the core owning its shard, which writes it out if its
    /// shard set leads, and drops it (counted) if it follows.
    fn passthrough(
        &mut self,
        metric_type: MetricType,
        id: &[u8],
        time: i64,
        value: f64,
        router: &mut impl SampleRouter,
    ) -> Result<(), &'static str> {
        if id.is_empty() {
            return Err("empty_id");
        }
        if !value.is_finite() {
            return Err("non_finite");
        }
        // The message's one storage policy: nothing is aggregated at its resolution, so only
        // its validity is checked, not `min_resolution`.
        let policy = match self.scratch.pipelines.first().map(|p| self.scratch.policies_of(p)) {
            Some([v]) => StoragePolicy::new(v.resolution_nanos, v.retention_nanos).map_err(|_| "bad_storage_policy")?,
            _ => return Err("missing_storage_policy"),
        };
        let (shard, hash) = self.shard_of.shard_and_hash(metric_type, id);
        let batch = router.batch_for(shard);
        let elem = [ElemSpec::new(AggTypes::DEFAULT, policy)];
        let spec = match self.last_spec {
            Some(r) if batch.spec(r) == elem.as_slice() => r,
            _ => {
                let r = batch.add_spec(&elem);
                self.last_spec = Some(r);
                r
            }
        };
        // i64::MIN marks "untimed" inside a batch.
        batch.push_passthrough(shard, hash, id, metric_type, time.max(UNTIMED + 1), value, spec);
        self.tally.ingested += 1;
        Ok(())
    }

    /// The spec of the metadata in the scratch, added to `batch` unless it is the default.
    fn spec(&mut self, batch: &mut SampleBatch) -> Result<SpecRef, &'static str> {
        if self.scratch.pipelines.is_empty() {
            return Ok(DEFAULT_SPEC);
        }
        let generation = self.scratch.metadata_generation();
        if self.elems_generation != Some(generation) {
            self.elems_outcome = self.derive_elems(0);
            self.elems_generation = Some(generation);
        }
        if self.elems_outcome? {
            return Ok(DEFAULT_SPEC);
        }
        if !self.rollups.is_empty() {
            return Ok(self.add_elems(batch));
        }
        // Reuse the spec just added when the metadata repeats (a fresh batch has no specs,
        // so the comparison fails there).
        if let Some(r) = self.last_spec
            && batch.spec(r) == self.elems.as_slice()
        {
            return Ok(r);
        }
        let r = batch.add_spec(&self.elems);
        self.last_spec = Some(r);
        Ok(r)
    }

    /// Adds `elems` to `batch` with their rollups (which a batch carries itself); returns the
    /// spec's reference.
    fn add_elems(&mut self, batch: &mut SampleBatch) -> SpecRef {
        self.last_spec = None;
        self.batch_elems.clear();
        for e in &self.elems {
            let rollup = self.add_rollup_chain(batch, e.rollup);
            self.batch_elems.push(ElemSpec { rollup, ..*e });
        }
        batch.add_spec(&self.batch_elems)
    }

    /// Adds rollup `r` (an index into `rollups` + 1) and the rollups after it to `batch`.
    fn add_rollup_chain(&self, batch: &mut SampleBatch, r: u32) -> RollupRef {
        let Some((id, aggs, transforms, resend, next)) = r.checked_sub(1).and_then(|i| self.rollups.get(i as usize))
        else {
            return NO_ROLLUP;
        };
        // `next` is always a later entry: the recursion ends.
        let next = if *next > r { self.add_rollup_chain(batch, *next) } else { NO_ROLLUP };
        batch.add_nested_rollup(&self.rollup_ids[id.clone()], *aggs, *transforms, *resend, next)
    }

    /// Fills `elems` (and the rollups they name) from the pipelines in the scratch, for values
    /// forwarded `forwarded` times before; `Ok(true)` when they amount to the default spec.
    fn derive_elems(&mut self, forwarded: u8) -> Result<bool, &'static str> {
        self.elems.clear();
        self.rollups.clear();
        self.rollup_ids.clear();
        for p in &self.scratch.pipelines {
            let ops = self.scratch.ops_of(p);
            let (transforms, mut rollup) = pipeline_of(&self.scratch, ops)?;
            let first = self.rollups.len() as u32 + 1;
            let (mut depth, mut base) = (0, 0);
            // Each rollup op and the transformations after it; a further rollup op makes the
            // rolled-up series roll up again (a nested rollup).
            while let Some((id, aggs, after, rest)) = rollup {
                depth += 1;
                if depth > MAX_ROLLUP_DEPTH {
                    return Err("nested_rollup_too_deep");
                }
                let start = self.rollup_ids.len();
                self.rollup_ids.extend_from_slice(id);
                rollup = match rest {
                    Some(rest) => {
                        base += rest;
                        pipeline_of(&self.scratch, &ops[base..])?.1
                    }
                    None => None,
                };
                let next = if rollup.is_some() { self.rollups.len() as u32 + 2 } else { 0 };
                self.rollups.push((start..self.rollup_ids.len(), aggs, after, p.resend_enabled, next));
            }
            let rollup = if depth > 0 { first } else { NO_ROLLUP };
            let aggs = AggTypes::from_m3_id(p.aggregation_id);
            let elem = |policy| ElemSpec { transforms, rollup, forwarded, ..ElemSpec::new(aggs, policy) };
            let policies = self.scratch.policies_of(p);
            let add = |e: ElemSpec, elems: &mut Vec<ElemSpec>| {
                // The same (aggregations, policy, transformations) from two pipelines is one
                // element, as in M3.
                if !elems.contains(&e) {
                    elems.push(e);
                }
            };
            if policies.is_empty() {
                for policy in &self.defaults {
                    add(elem(*policy), &mut self.elems);
                }
            }
            for v in policies {
                if v.resolution_nanos < self.min_resolution {
                    return Err("resolution_too_small");
                }
                let policy =
                    StoragePolicy::new(v.resolution_nanos, v.retention_nanos).map_err(|_| "bad_storage_policy")?;
                add(elem(policy), &mut self.elems);
            }
        }
        if self.elems.is_empty() {
            return Err("missing_storage_policy");
        }
        Ok(self.elems.iter().all(|e| e.aggs.is_default() && e.transforms.is_empty() && e.rollup == NO_ROLLUP)
            && forwarded == 0
            && self.elems.len() == self.defaults.len()
            && self.elems.iter().zip(&self.defaults).all(|(e, d)| e.policy == *d))
    }
}

fn timed_metric_type(kind: TimedType) -> MetricType {
    match kind {
        TimedType::Counter => MetricType::Counter,
        TimedType::Timer => MetricType::Timer,
        TimedType::Gauge => MetricType::Gauge,
    }
}

/// A rollup op as the decoder reads it: the rolled-up id, its aggregations, the
/// transformations after it, and where in the ops the next rollup op is (a nested rollup).
type RollupOfPipeline<'a> = (&'a [u8], AggTypes, TransformChain, Option<usize>);

/// The transformations of pipeline ops `ops` on this element and its first rollup, if any; an
/// error for an op M3 does not define or more transformations than an element may chain.
fn pipeline_of<'a>(
    scratch: &'a Scratch,
    ops: &[view::OpView],
) -> Result<(TransformChain, Option<RollupOfPipeline<'a>>), &'static str> {
    let (mut local, mut rollup) = (TransformChain::NONE, None::<RollupOfPipeline<'a>>);
    for (i, op) in ops.iter().enumerate() {
        match op.op_type {
            view::OP_TRANSFORMATION => {
                let t = TransformType::from_m3(op.transformation_type).ok_or("bad_pipeline_op")?;
                let chain = match &mut rollup {
                    Some((_, _, after, _)) => after,
                    None => &mut local,
                };
                *chain = chain.with(t).ok_or("bad_pipeline_op")?;
            }
            view::OP_ROLLUP if scratch.rollup_id_of(op).is_empty() => return Err("bad_pipeline_op"),
            view::OP_ROLLUP if rollup.is_some() => {
                if let Some((_, _, _, rest)) = &mut rollup {
                    *rest = Some(i);
                }
                break;
            }
            view::OP_ROLLUP => {
                let aggs = AggTypes::from_m3_id(op.rollup_aggregation_id);
                rollup = Some((scratch.rollup_id_of(op), aggs, TransformChain::NONE, None));
            }
            _ => return Err("bad_pipeline_op"),
        }
    }
    Ok((local, rollup))
}
