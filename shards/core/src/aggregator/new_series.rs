//! What the rules decide for a series without metadata when its owning core creates it.
//! Runs on that core, inside `CoreAggregator::apply`, once per new series.

use crate::aggregation::{AggTypes, MetricType};
use crate::aggregator_options::AggregatorCounters;
use crate::batch::ElemSpec;
use crate::policy::StoragePolicy;
use crate::rollup::RollupTargets;
use crate::rules::{RollupTarget, RuleSet};
use crate::series::DROPPED_BY_RULE;
use crate::spec::SpecTable;
use crate::transform::{TransformChain, TransformType};

/// What a new series of `metric_type` with canonical id `id` writes its values without
/// metadata to, as `rules` say: the default spec, a spec (pinned for the series) of the
/// mapping rules' elements and of one element per rollup target and storage policy, or
/// [`DROPPED_BY_RULE`]. A `drop` mapping rule drops the series' own elements but not its
/// rollups (M3's "drop raw, keep rollup"). A spec over the core's caps falls back to the
/// default (counted).
#[allow(clippy::too_many_arguments)]
pub(super) fn rule_spec_for(
    rules: &RuleSet,
    specs: &mut SpecTable,
    rollups: &mut RollupTargets,
    counters: &mut AggregatorCounters,
    id: &[u8],
    metric_type: MetricType,
    defaults: &[StoragePolicy],
) -> u16 {
    let mut matched = rules.match_id(id);
    if matches!(metric_type, MetricType::Timer | MetricType::Set) && !matched.rollups.is_empty() {
        // What a timer or set series would forward to its rollup (one value, or several, per
        // window) is not settled: its rollups are left out, counted, rather than summed wrongly.
        counters.rollup_type_unsupported += 1;
        matched.rollups.clear();
    }
    if matched.drop {
        counters.series_dropped_by_rule += 1;
        if matched.rollups.is_empty() {
            return DROPPED_BY_RULE;
        }
    }
    let mut elems = match matched.elem_specs() {
        _ if matched.drop => Vec::new(),
        Some(elems) => elems,
        None if matched.rollups.is_empty() => return 0,
        None => defaults.iter().map(|p| ElemSpec::new(AggTypes::DEFAULT, *p)).collect(),
    };
    for target in &matched.rollups {
        match rollup_elems(target, rollups, metric_type) {
            Some(rolled) => elems.extend(rolled),
            None => {
                counters.metadata_rejected += 1;
                return if matched.drop { DROPPED_BY_RULE } else { 0 };
            }
        }
    }
    match specs.intern(&elems) {
        Some(spec) => {
            specs.pin(spec);
            if !matched.drop {
                counters.series_mapped_by_rule += 1;
            }
            // Spec ids are below `MAX_SPECS`, far below `DROPPED_BY_RULE`.
            spec as u16
        }
        None => {
            counters.metadata_rejected += 1;
            if matched.drop { DROPPED_BY_RULE } else { 0 }
        }
    }
}

/// The elements of a counter or gauge series that feed rollup `target`: one per storage
/// policy, aggregated with the metric type's default (a counter's sum, a gauge's last value),
/// through the transformations before the rollup, forwarded to the target.
fn rollup_elems<'a>(
    target: &'a RollupTarget,
    rollups: &mut RollupTargets,
    metric_type: MetricType,
) -> Option<impl Iterator<Item = ElemSpec> + 'a> {
    let chain = |ts: &[crate::rules::TransformType]| {
        ts.iter().try_fold(TransformChain::NONE, |c, t| c.with(TransformType::from_m3(*t as u64)?))
    };
    let (before, after) = (chain(&target.transforms_before)?, chain(&target.transforms_after)?);
    let rollup = rollups.intern(&target.new_id, target.aggregations, after)?;
    let aggs = match metric_type {
        MetricType::Gauge => AggTypes::of(&[crate::aggregation::AggType::Last]),
        _ => AggTypes::of(&[crate::aggregation::AggType::Sum]),
    };
    Some(target.storage_policies.iter().map(move |&policy| ElemSpec {
        transforms: before,
        rollup,
        ..ElemSpec::new(aggs, policy)
    }))
}
