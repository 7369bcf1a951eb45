//! Pipelines: what happens to an element's aggregated value after its window is flushed
//! (M3's `AppliedPipeline`), and the de-duplication of forwarded values on the element that
//! receives a rollup.
//!
//! [`Pipeline`] is the one representation every producer builds: the m3msg decoder from a
//! `PipelineMetadata.pipeline` or a `ForwardMetadata.pipeline`, and a rule engine from a
//! rollup rule's `transforms`. It is a plain value, built on whichever thread parses the
//! metadata or rules and moved to the core that owns the element; the transformation state
//! and [`ForwardedSources`] of an element live on that core only.
//!
//! A pipeline runs after the aggregation of its element, op by op: transformations change the
//! flushed value ([`crate::transform`]); the first rollup op ends the local part. The value is
//! then not emitted but forwarded to the series `new_id` (its shard is M3's shard of the new
//! id), to be aggregated again there with the rollup's aggregations, one forward count
//! further, with the ops after the rollup as its own pipeline.

use crate::aggregation::AggTypes;
use crate::transform::{TransformChain, TransformType};

/// The most ops a pipeline may have (M3 rules have a handful; this bounds outside input, and
/// lets every run of transformations fit a [`TransformChain`]).
pub const MAX_PIPELINE_OPS: usize = TransformChain::MAX_LEN;

/// The most rollup ops one pipeline may chain (M3 pipelines have one or two): deeper ones are
/// refused (`nested_rollup_too_deep`).
pub const MAX_ROLLUP_DEPTH: usize = 8;

/// A pipeline refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    #[error("pipeline op {index}: unknown transformation type {value}")]
    UnknownTransformation { index: usize, value: u64 },
    #[error("pipeline op {index}: unknown op type {value}")]
    UnknownOpType { index: usize, value: u64 },
    #[error("pipeline op {index}: rollup with an empty id")]
    EmptyRollupId { index: usize },
    #[error("pipeline has more than {MAX_PIPELINE_OPS} ops")]
    TooManyOps,
}

/// A rollup op: the series the value goes on to, and how that series aggregates it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RollupOp {
    /// The id of the rolled-up series (already with its tags, as M3's rollup ids are).
    pub new_id: Box<[u8]>,
    /// The aggregations of the rolled-up series (empty: the metric type's defaults).
    pub aggregations: AggTypes,
}

/// One op of an applied pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PipelineOp {
    Transformation(TransformType),
    Rollup(RollupOp),
}

/// The ops that follow an aggregation, in order. Empty: the value is emitted as aggregated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Pipeline {
    ops: Vec<PipelineOp>,
}

impl Pipeline {
    /// A pipeline of `ops`, refused if longer than [`MAX_PIPELINE_OPS`] or with a rollup to an
    /// empty id.
    pub fn new(ops: Vec<PipelineOp>) -> Result<Self, PipelineError> {
        if ops.len() > MAX_PIPELINE_OPS {
            return Err(PipelineError::TooManyOps);
        }
        for (index, op) in ops.iter().enumerate() {
            if let PipelineOp::Rollup(r) = op
                && r.new_id.is_empty()
            {
                return Err(PipelineError::EmptyRollupId { index });
            }
        }
        Ok(Self { ops })
    }

    pub fn ops(&self) -> &[PipelineOp] {
        &self.ops
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The transformations that run on this element (those before the first rollup).
    pub fn local_transforms(&self) -> impl Iterator<Item = TransformType> + '_ {
        self.ops.iter().map_while(|op| match op {
            PipelineOp::Transformation(t) => Some(*t),
            PipelineOp::Rollup(_) => None,
        })
    }

    /// The first rollup op and the pipeline that follows it (the pipeline of the rolled-up
    /// series); `None` when the value is emitted on this element.
    pub fn rollup(&self) -> Option<(&RollupOp, &[PipelineOp])> {
        let at = self.ops.iter().position(|op| matches!(op, PipelineOp::Rollup(_)))?;
        match &self.ops[at] {
            PipelineOp::Rollup(r) => Some((r, &self.ops[at + 1..])),
            PipelineOp::Transformation(_) => None,
        }
    }

    /// The transformations that run on this element, as an element's key holds them.
    pub fn local_chain(&self) -> TransformChain {
        // `new` bounds the ops by the chain's length.
        self.local_transforms().try_fold(TransformChain::NONE, TransformChain::with).unwrap_or_default()
    }
}

/// The (source shard, version) pairs a forwarded window has taken in, so that a resend or a
/// second copy from the same source (after a failover, or an m3msg redelivery) is not
/// aggregated twice. Kept sorted; a window sees at most one entry per source shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardedSources {
    seen: Vec<(u32, u32)>,
}

impl ForwardedSources {
    /// Records a value from `source` at `version`; `false` when that pair was already taken
    /// in (the value must then be dropped).
    pub fn admit(&mut self, source: u32, version: u32) -> bool {
        match self.seen.binary_search(&(source, version)) {
            Ok(_) => false,
            Err(at) => {
                self.seen.insert(at, (source, version));
                true
            }
        }
    }

    /// How many distinct (source, version) pairs were taken in.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Forgets every source (the window was flushed), keeping the capacity for the next one.
    pub fn clear(&mut self) {
        self.seen.clear();
    }
}

/// M3's lateness bound `L(r, n)` for a forwarded window (reference §2.4): `r · n` (M3's code
/// default), plus `max_const_delay` when its config sets `forwarding.maxConstDelay`, where `n`
/// is the number of times the value was forwarded. A forwarded window starting at `s` is
/// flushed once `s < now − L(r, n)`, with its timestamp `s` (already end-aligned at the
/// source).
pub fn forwarded_lateness(resolution_nanos: i64, num_forwarded_times: u32, max_const_delay: i64) -> i64 {
    resolution_nanos.saturating_mul(i64::from(num_forwarded_times)).saturating_add(max_const_delay.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregation::AggType;
    use proptest::prelude::*;

    const S: i64 = 1_000_000_000;

    fn rollup(id: &str) -> PipelineOp {
        PipelineOp::Rollup(RollupOp { new_id: id.as_bytes().into(), aggregations: AggTypes::of(&[AggType::Sum]) })
    }

    #[test]
    fn transforms_chain_in_order_and_stop_at_the_rollup() {
        let p = Pipeline::new(vec![
            PipelineOp::Transformation(TransformType::Increase),
            PipelineOp::Transformation(TransformType::Add),
            rollup("total"),
            PipelineOp::Transformation(TransformType::PerSecond),
        ])
        .unwrap();
        assert_eq!(p.local_chain(), TransformChain::new(&[TransformType::Increase, TransformType::Add]).unwrap());
        let (r, rest) = p.rollup().unwrap();
        assert_eq!(&*r.new_id, b"total");
        assert_eq!(rest, &[PipelineOp::Transformation(TransformType::PerSecond)]);
    }

    #[test]
    fn a_pipeline_without_local_transformations_has_an_empty_chain() {
        let p = Pipeline::new(vec![rollup("x"), PipelineOp::Transformation(TransformType::Absolute)]).unwrap();
        assert!(p.local_chain().is_empty());
        assert!(Pipeline::default().local_chain().is_empty());
    }

    #[test]
    fn bad_pipelines_are_refused() {
        assert_eq!(Pipeline::new(vec![rollup("")]), Err(PipelineError::EmptyRollupId { index: 0 }));
        let long = vec![PipelineOp::Transformation(TransformType::Absolute); MAX_PIPELINE_OPS + 1];
        assert_eq!(Pipeline::new(long), Err(PipelineError::TooManyOps));
    }

    #[test]
    fn lateness_is_r_times_n() {
        assert_eq!(forwarded_lateness(10 * S, 1, 0), 10 * S);
        assert_eq!(forwarded_lateness(10 * S, 3, 0), 30 * S);
        assert_eq!(forwarded_lateness(10 * S, 2, 300 * S), 320 * S, "maxConstDelay + r·n");
    }

    proptest! {
        /// Whatever the order and repetition of arrivals, each (source, version) is admitted
        /// exactly once, so a sum over admitted values counts every source once.
        #[test]
        fn each_source_version_is_admitted_once(arrivals in prop::collection::vec((0u32..8, 0u32..3), 0..64)) {
            let mut sources = ForwardedSources::default();
            let admitted = arrivals.iter().filter(|(s, v)| sources.admit(*s, *v)).count();
            let distinct: std::collections::BTreeSet<_> = arrivals.iter().copied().collect();
            prop_assert_eq!(admitted, distinct.len());
            prop_assert_eq!(sources.len(), distinct.len());
            sources.clear();
            prop_assert!(sources.is_empty());
        }
    }
}
