//! Rules for the series sheaf receives without metadata (StatsD): m3coordinator's mapping
//! rules (aggregations and storage policies, or `drop`) and rollup rules (transforms and a
//! rollup into a new id), compiled, and what they give one series id ([`MatchResult`]).
//!
//! A [`RuleSet`] is compiled on the control thread (from the config or the admin API) and
//! shared read-only (`Arc`) with every shard core, which matches a series once, when it creates
//! it (`CoreAggregator::set_rules`). Nothing here is mutable after compilation.

mod filter;
mod glob;
#[cfg(test)]
mod tests;

use crate::aggregation::{AggType, AggTypes};
use crate::batch::ElemSpec;
use crate::policy::StoragePolicy;
use crate::time::UnixNanos;

pub use filter::{Filter, IdView, NAME_TAG};
pub use glob::Glob;

/// Why a rule set is refused: the rule and field at fault (filled in as the error goes up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {rule:?}: {field}: {message}")]
pub struct RuleError {
    pub rule: String,
    pub field: String,
    pub message: String,
}

impl RuleError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { rule: String::new(), field: field.into(), message: message.into() }
    }

    /// The same error, said of rule `rule`.
    pub fn in_rule(mut self, rule: &str) -> Self {
        self.rule = rule.to_owned();
        self
    }
}

/// M3's transformation types (`transformationpb.TransformationType`, in its numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TransformType {
    Absolute = 1,
    PerSecond = 2,
    Increase = 3,
    Add = 4,
    Reset = 5,
}

impl TransformType {
    pub const ALL: [Self; 5] = [Self::Absolute, Self::PerSecond, Self::Increase, Self::Add, Self::Reset];

    /// M3's name (`PerSecond`).
    pub fn m3_name(self) -> &'static str {
        match self {
            Self::Absolute => "Absolute",
            Self::PerSecond => "PerSecond",
            Self::Increase => "Increase",
            Self::Add => "Add",
            Self::Reset => "Reset",
        }
    }

    pub fn from_m3_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.m3_name() == name)
    }
}

/// M3's name of an aggregation type (`Sum`, `SumSq`, `P9999`).
pub fn agg_m3_name(t: AggType) -> &'static str {
    use AggType::*;
    match t {
        Last => "Last",
        Min => "Min",
        Max => "Max",
        Mean => "Mean",
        Median => "Median",
        Count => "Count",
        Sum => "Sum",
        SumSq => "SumSq",
        Stdev => "Stdev",
        P10 => "P10",
        P20 => "P20",
        P30 => "P30",
        P40 => "P40",
        P50 => "P50",
        P60 => "P60",
        P70 => "P70",
        P80 => "P80",
        P90 => "P90",
        P95 => "P95",
        P99 => "P99",
        P999 => "P999",
        P9999 => "P9999",
        P25 => "P25",
        P75 => "P75",
    }
}

/// Parses M3 aggregation names; an empty list is the metric type's defaults.
pub fn parse_aggregations<S: AsRef<str>>(names: &[S]) -> Result<AggTypes, RuleError> {
    let mut types = Vec::with_capacity(names.len());
    for name in names {
        let name = name.as_ref();
        let t = (1..=AggType::MAX_ID)
            .filter_map(AggType::from_id)
            .find(|t| agg_m3_name(*t) == name)
            .ok_or_else(|| RuleError::new("aggregations", format!("unknown aggregation type {name:?}")))?;
        types.push(t);
    }
    Ok(AggTypes::of(&types))
}

/// M3 names of a set of aggregations (empty for the defaults).
pub fn agg_m3_names(aggs: AggTypes) -> Vec<&'static str> {
    aggs.iter().map(agg_m3_name).collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct MappingRule {
    pub name: String,
    pub filter: Filter,
    /// Empty: the metric type's default aggregations.
    pub aggregations: AggTypes,
    pub storage_policies: Vec<StoragePolicy>,
    /// The series itself is not aggregated (its rollups still are).
    pub drop: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RollupRule {
    pub name: String,
    pub filter: Filter,
    /// Transformations of the source series' values, before the rollup.
    pub transforms_before: Vec<TransformType>,
    pub metric_name: Vec<u8>,
    /// Tags kept in the new id; a series lacking one of them is not rolled up by this rule.
    pub group_by: Vec<Vec<u8>>,
    pub aggregations: AggTypes,
    /// Transformations of the rolled-up values.
    pub transforms_after: Vec<TransformType>,
    pub storage_policies: Vec<StoragePolicy>,
}

/// A compiled rule set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub mapping_rules: Vec<MappingRule>,
    pub rollup_rules: Vec<RollupRule>,
}

/// What one mapping rule gives a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// Index into `RuleSet::mapping_rules`.
    pub rule: usize,
    pub aggregations: AggTypes,
    pub storage_policies: Vec<StoragePolicy>,
}

/// What one rollup rule gives a series: the id its values roll into, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupTarget {
    /// Index into `RuleSet::rollup_rules`.
    pub rule: usize,
    /// `metricName` and the `groupBy` tags of the source, canonical (`name;k=v`, sorted).
    pub new_id: Vec<u8>,
    pub aggregations: AggTypes,
    pub transforms_before: Vec<TransformType>,
    pub transforms_after: Vec<TransformType>,
    pub storage_policies: Vec<StoragePolicy>,
}

/// What a rule set gives one series id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatchResult {
    /// A matching mapping rule says `drop`: the series itself is not aggregated.
    pub drop: bool,
    /// The matching mapping rules that do not drop; none: the default policies apply.
    pub mappings: Vec<Mapping>,
    pub rollups: Vec<RollupTarget>,
}

impl MatchResult {
    /// The series' own elements, when mapping rules name them (`None`: the defaults).
    pub fn elem_specs(&self) -> Option<Vec<ElemSpec>> {
        if self.mappings.is_empty() {
            return None;
        }
        let specs = self
            .mappings
            .iter()
            .flat_map(|m| m.storage_policies.iter().map(|&policy| ElemSpec::new(m.aggregations, policy)));
        Some(specs.collect())
    }
}

impl RuleSet {
    pub fn is_empty(&self) -> bool {
        self.mapping_rules.is_empty() && self.rollup_rules.is_empty()
    }

    /// Every storage policy the rules name.
    pub fn policies(&self) -> impl Iterator<Item = StoragePolicy> + '_ {
        let mapped = self.mapping_rules.iter().flat_map(|r| r.storage_policies.iter().copied());
        mapped.chain(self.rollup_rules.iter().flat_map(|r| r.storage_policies.iter().copied()))
    }

    /// What the rules give the canonical series id `id`.
    pub fn match_id(&self, id: &[u8]) -> MatchResult {
        let view = IdView::parse(id);
        let mut result = MatchResult::default();
        for (i, rule) in self.mapping_rules.iter().enumerate() {
            if !rule.filter.matches(&view) {
                continue;
            }
            if rule.drop {
                result.drop = true;
            } else {
                let (aggregations, storage_policies) = (rule.aggregations, rule.storage_policies.clone());
                result.mappings.push(Mapping { rule: i, aggregations, storage_policies });
            }
        }
        if result.drop {
            result.mappings.clear();
        }
        for (i, rule) in self.rollup_rules.iter().enumerate() {
            if !rule.filter.matches(&view) {
                continue;
            }
            let Some(new_id) = rollup_id(&rule.metric_name, &rule.group_by, &view) else { continue };
            result.rollups.push(RollupTarget {
                rule: i,
                new_id,
                aggregations: rule.aggregations,
                transforms_before: rule.transforms_before.clone(),
                transforms_after: rule.transforms_after.clone(),
                storage_policies: rule.storage_policies.clone(),
            });
        }
        result
    }
}

/// `metric_name` with the `group_by` tags of `source`, canonical; `None` when `source` lacks one.
fn rollup_id(metric_name: &[u8], group_by: &[Vec<u8>], source: &IdView<'_>) -> Option<Vec<u8>> {
    let mut tags: Vec<Vec<u8>> = Vec::with_capacity(group_by.len());
    for key in group_by {
        let value = source.tags().find(|(k, _)| k == key).map(|(_, v)| v)?;
        let mut tag = key.clone();
        if !value.is_empty() {
            tag.push(b'=');
            tag.extend_from_slice(value);
        }
        tags.push(tag);
    }
    // Canonical order is the order of the `k=v` bytes (as `statsd::write_series_id` sorts).
    tags.sort_unstable();
    let mut id = metric_name.to_vec();
    for tag in tags {
        id.push(b';');
        id.extend_from_slice(&tag);
    }
    Some(id)
}

/// The rule set a core matches new series with, and the one that replaces it at `cutover`.
#[derive(Debug, Clone, Default)]
pub struct RuleSchedule {
    pub current: std::sync::Arc<RuleSet>,
    pub next: Option<(std::sync::Arc<RuleSet>, UnixNanos)>,
}

impl RuleSchedule {
    /// The rule set in force for a series created at `time`.
    pub fn at(&self, time: UnixNanos) -> &RuleSet {
        match &self.next {
            Some((next, cutover)) if time >= *cutover => next,
            _ => &self.current,
        }
    }

    /// Makes `rules` the rule set from `cutover` on; the one in force before it stays until then.
    pub fn replace(&mut self, rules: std::sync::Arc<RuleSet>, cutover: UnixNanos, now: UnixNanos) {
        self.settle(now);
        if cutover <= now {
            self.current = rules;
            self.next = None;
        } else {
            // A change replaced before its cutover never comes into force.
            self.next = Some((rules, cutover));
        }
    }

    /// Once `now` has passed the cutover, the next rule set becomes the current one (the caller
    /// passes a `now` held back by how late a value may still arrive for a time before it).
    pub fn settle(&mut self, now: UnixNanos) {
        if let Some((_, cutover)) = &self.next
            && now >= *cutover
            && let Some((next, _)) = self.next.take()
        {
            self.current = next;
        }
    }
}
