//! `rules:`: m3coordinator's downsample rule schema, unchanged (`mappingRules`,
//! `rollupRules`), as the config, the admin API (`/api/v1/rules`, as JSON) and etcd carry it;
//! and its compilation into the shard cores' [`RuleSet`], which refuses an invalid rule set
//! whole, naming the rule and the field. Pure; runs on the main thread (config) and the
//! control thread (API, etcd watch).

use serde::{Deserialize, Serialize};
use sheaf_shard_core::StoragePolicy;
use sheaf_shard_core::policy::parse_duration;
use sheaf_shard_core::rules::{
    Filter, MappingRule, RollupRule, RuleError, RuleSet, TransformType, agg_m3_names, parse_aggregations,
};

/// Rules a rule set may hold, of each kind: a bound on what one PUT can make every core match.
pub const MAX_RULES: usize = 10_000;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct RulesConfig {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mapping_rules: Vec<MappingRuleConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollup_rules: Vec<RollupRuleConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MappingRuleConfig {
    pub name: String,
    pub filter: String,
    /// M3 names (`Sum`, `P99`); empty: the metric type's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregations: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_policies: Vec<StoragePolicyConfig>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RollupRuleConfig {
    pub name: String,
    pub filter: String,
    pub transforms: Vec<TransformConfig>,
    pub storage_policies: Vec<StoragePolicyConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoragePolicyConfig {
    pub resolution: String,
    pub retention: String,
}

/// One step of a rollup rule's pipeline: exactly one of its keys.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<TypeConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollup: Option<RollupOpConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<TypeConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TypeConfig {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RollupOpConfig {
    pub metric_name: String,
    #[serde(default)]
    pub group_by: Vec<String>,
    #[serde(default)]
    pub aggregations: Vec<String>,
}

impl RulesConfig {
    /// Compiles the rule set; the first invalid rule refuses it whole. `min_resolution` is the
    /// finest resolution a policy may have (`aggregator.min_storage_resolution`).
    pub fn compile(&self, min_resolution: i64) -> Result<RuleSet, RuleError> {
        if self.mapping_rules.len() > MAX_RULES || self.rollup_rules.len() > MAX_RULES {
            return Err(RuleError::new("mappingRules/rollupRules", format!("more than {MAX_RULES} rules")));
        }
        let mut set = RuleSet::default();
        for (i, rule) in self.mapping_rules.iter().enumerate() {
            let label = label(&rule.name, "mappingRules", i);
            check_name(&rule.name, set.mapping_rules.iter().map(|r| r.name.as_str()))
                .and_then(|()| rule.compile(min_resolution))
                .map(|r| set.mapping_rules.push(r))
                .map_err(|e| e.in_rule(&label))?;
        }
        for (i, rule) in self.rollup_rules.iter().enumerate() {
            let label = label(&rule.name, "rollupRules", i);
            check_name(&rule.name, set.rollup_rules.iter().map(|r| r.name.as_str()))
                .and_then(|()| rule.compile(min_resolution))
                .map(|r| set.rollup_rules.push(r))
                .map_err(|e| e.in_rule(&label))?;
        }
        Ok(set)
    }
}

fn label(name: &str, list: &str, i: usize) -> String {
    if name.is_empty() { format!("{list}[{i}]") } else { name.to_owned() }
}

fn check_name<'a>(name: &str, mut earlier: impl Iterator<Item = &'a str>) -> Result<(), RuleError> {
    if name.trim().is_empty() {
        return Err(RuleError::new("name", "is required"));
    }
    if earlier.any(|n| n == name) {
        return Err(RuleError::new("name", "another rule of the same kind has this name"));
    }
    Ok(())
}

impl MappingRuleConfig {
    fn compile(&self, min_resolution: i64) -> Result<MappingRule, RuleError> {
        let filter = Filter::parse(&self.filter)?;
        let aggregations = parse_aggregations(&self.aggregations)?;
        let storage_policies = policies(&self.storage_policies, min_resolution)?;
        if self.drop && (!storage_policies.is_empty() || !aggregations.is_empty()) {
            return Err(RuleError::new("drop", "a dropping rule takes no storagePolicies or aggregations"));
        }
        if !self.drop && storage_policies.is_empty() {
            return Err(RuleError::new("storagePolicies", "at least one is required (or drop: true)"));
        }
        Ok(MappingRule { name: self.name.clone(), filter, aggregations, storage_policies, drop: self.drop })
    }
}

impl RollupRuleConfig {
    fn compile(&self, min_resolution: i64) -> Result<RollupRule, RuleError> {
        let filter = Filter::parse(&self.filter)?;
        let storage_policies = policies(&self.storage_policies, min_resolution)?;
        if storage_policies.is_empty() {
            return Err(RuleError::new("storagePolicies", "at least one is required"));
        }
        let (mut before, mut after, mut rollup) = (Vec::new(), Vec::new(), None);
        for (i, step) in self.transforms.iter().enumerate() {
            let field = format!("transforms[{i}]");
            match (&step.transform, &step.rollup, &step.aggregate) {
                (Some(t), None, None) => {
                    let kind = TransformType::from_m3_name(&t.kind).ok_or_else(|| {
                        let known = TransformType::ALL.map(TransformType::m3_name).join(", ");
                        RuleError::new(format!("{field}.transform.type"), format!("{:?} is not one of {known}", t.kind))
                    })?;
                    if rollup.is_none() { before.push(kind) } else { after.push(kind) }
                }
                (None, Some(op), None) => {
                    if rollup.is_some() {
                        return Err(RuleError::new(field, "a rule holds one rollup"));
                    }
                    rollup = Some(
                        rollup_op(op).map_err(|e| RuleError { field: format!("{field}.rollup.{}", e.field), ..e })?,
                    );
                }
                (None, None, Some(_)) => {
                    return Err(RuleError::new(
                        format!("{field}.aggregate"),
                        "aggregate steps are not supported; use a rollup",
                    ));
                }
                _ => return Err(RuleError::new(field, "needs exactly one of transform, rollup, aggregate")),
            }
        }
        let Some((metric_name, group_by, aggregations)) = rollup else {
            return Err(RuleError::new("transforms", "a rollup rule needs a rollup step"));
        };
        Ok(RollupRule {
            name: self.name.clone(),
            filter,
            transforms_before: before,
            metric_name,
            group_by,
            aggregations,
            transforms_after: after,
            storage_policies,
        })
    }
}

type RollupOp = (Vec<u8>, Vec<Vec<u8>>, sheaf_shard_core::AggTypes);

fn rollup_op(op: &RollupOpConfig) -> Result<RollupOp, RuleError> {
    let bad_byte = |s: &str, bytes: &[u8]| s.bytes().any(|b| bytes.contains(&b) || b.is_ascii_whitespace());
    if op.metric_name.is_empty() || bad_byte(&op.metric_name, b";") {
        return Err(RuleError::new("metricName", "must be a non-empty name without ';' or spaces"));
    }
    let mut group_by: Vec<Vec<u8>> = Vec::with_capacity(op.group_by.len());
    for (i, tag) in op.group_by.iter().enumerate() {
        if tag.is_empty() || bad_byte(tag, b";=,:") {
            return Err(RuleError::new(format!("groupBy[{i}]"), format!("{tag:?} is not a tag name")));
        }
        if !group_by.iter().any(|t| t == tag.as_bytes()) {
            group_by.push(tag.as_bytes().to_vec());
        }
    }
    let aggregations = parse_aggregations(&op.aggregations)?;
    if aggregations.is_empty() {
        return Err(RuleError::new("aggregations", "at least one is required"));
    }
    Ok((op.metric_name.as_bytes().to_vec(), group_by, aggregations))
}

fn policies(list: &[StoragePolicyConfig], min_resolution: i64) -> Result<Vec<StoragePolicy>, RuleError> {
    let mut out: Vec<StoragePolicy> = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        let field = |f: &str| format!("storagePolicies[{i}].{f}");
        let resolution =
            parse_duration(&p.resolution).map_err(|e| RuleError::new(field("resolution"), e.to_string()))?;
        let retention = parse_duration(&p.retention).map_err(|e| RuleError::new(field("retention"), e.to_string()))?;
        if resolution < min_resolution {
            return Err(RuleError::new(
                field("resolution"),
                "finer than aggregator.min_storage_resolution".to_string(),
            ));
        }
        let policy = StoragePolicy::new(resolution, retention)
            .map_err(|e| RuleError::new(format!("storagePolicies[{i}]"), e.to_string()))?;
        if !out.contains(&policy) {
            out.push(policy);
        }
    }
    Ok(out)
}

/// The schema's form of compiled aggregations (M3 names).
pub fn aggregation_names(aggs: sheaf_shard_core::AggTypes) -> Vec<&'static str> {
    agg_m3_names(aggs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
mappingRules:
  - name: api
    filter: "__name__:api.* env:prod"
    aggregations: [Max, P99]
    storagePolicies: [{resolution: 10s, retention: 2d}, {resolution: 1m, retention: 40d}]
  - name: drop
    filter: "__name__:debug.*"
    drop: true
rollupRules:
  - name: by-route
    filter: "__name__:http.requests"
    transforms:
      - transform: {type: Increase}
      - rollup: {metricName: by_route, groupBy: [route, route], aggregations: [Sum]}
      - transform: {type: Add}
    storagePolicies: [{resolution: 1m, retention: 40d}]
"#;

    fn parse(yaml: &str) -> RulesConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn yaml_and_json_carry_the_same_schema() {
        let config = parse(YAML);
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<RulesConfig>(&json).unwrap(), config, "{json}");
        let set = config.compile(1_000_000_000).unwrap();
        assert_eq!(set.mapping_rules.len(), 2);
        let rollup = &set.rollup_rules[0];
        assert_eq!(rollup.transforms_before, [TransformType::Increase]);
        assert_eq!(rollup.transforms_after, [TransformType::Add]);
        assert_eq!(rollup.group_by, [b"route".to_vec()], "groupBy listed twice counts once");
    }

    #[test]
    fn an_invalid_rule_names_itself_and_its_field() {
        let mut config = parse(YAML);
        config.rollup_rules[0].transforms.push(TransformConfig {
            rollup: Some(RollupOpConfig { metric_name: "again".into(), ..Default::default() }),
            ..Default::default()
        });
        let e = config.compile(1_000_000_000).unwrap_err();
        assert_eq!((e.rule.as_str(), e.field.as_str()), ("by-route", "transforms[3]"), "{e}");
        let mut config = parse(YAML);
        config.mapping_rules[1].name = "api".into();
        assert_eq!(config.compile(1).unwrap_err().field, "name", "names are unique");
        let mut config = parse(YAML);
        config.mapping_rules[0].storage_policies[0].resolution = "100ms".into();
        let e = config.compile(1_000_000_000).unwrap_err();
        assert_eq!((e.rule.as_str(), e.field.as_str()), ("api", "storagePolicies[0].resolution"), "{e}");
        assert!(
            serde_json::from_str::<RulesConfig>(r#"{"mappingRules":[{"name":"x","filter":"a:b","tags":[]}]}"#).is_err()
        );
    }
}
