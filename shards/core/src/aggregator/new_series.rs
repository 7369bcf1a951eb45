//! What the rules decide for a series without metadata when its owning core creates it.
//! Runs on that core, inside `CoreAggregator::apply`, once per new series.

use crate::aggregator_options::AggregatorCounters;
use crate::rules::RuleSet;
use crate::series::DROPPED_BY_RULE;
use crate::spec::SpecTable;

/// What a new series with canonical id `id` writes its values without metadata to, as `rules`
/// say: the default spec, a spec of the mapping rules' elements (pinned for the series), or
/// [`DROPPED_BY_RULE`]. A spec over the core's caps falls back to the default (counted).
pub(super) fn rule_spec_for(
    rules: &RuleSet,
    specs: &mut SpecTable,
    counters: &mut AggregatorCounters,
    id: &[u8],
) -> u16 {
    let matched = rules.match_id(id);
    if matched.drop {
        counters.series_dropped_by_rule += 1;
        return DROPPED_BY_RULE;
    }
    let Some(elems) = matched.elem_specs() else { return 0 };
    match specs.intern(&elems) {
        Some(spec) => {
            specs.pin(spec);
            counters.series_mapped_by_rule += 1;
            // Spec ids are below `MAX_SPECS`, far below `DROPPED_BY_RULE`.
            spec as u16
        }
        None => {
            counters.metadata_rejected += 1;
            0
        }
    }
}
