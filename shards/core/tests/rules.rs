//! Rules through `CoreAggregator`'s public interface: a series is matched once, when it is
//! created, with the rule set in force at that time (cutover); it keeps its result; a dropped
//! series' values are counted; a rule's policy outlives pruning while a series it mapped lives.

use std::collections::BTreeMap;
use std::sync::Arc;

use sheaf_shard_core::rules::{Filter, MappingRule, RuleSet};
use sheaf_shard_core::*;

const S: i64 = 1_000_000_000;
const BASE: i64 = 1_700_000_000 * S;

fn rules() -> Arc<RuleSet> {
    Arc::new(RuleSet {
        mapping_rules: vec![
            MappingRule {
                name: "fine".into(),
                filter: Filter::parse("__name__:api.*").unwrap(),
                aggregations: AggTypes::of(&[AggType::Max]),
                storage_policies: vec!["1s:1h".parse().unwrap()],
                drop: false,
            },
            MappingRule {
                name: "drop".into(),
                filter: Filter::parse("__name__:debug.*").unwrap(),
                aggregations: AggTypes::DEFAULT,
                storage_policies: vec![],
                drop: true,
            },
        ],
        rollup_rules: vec![],
    })
}

fn write(agg: &mut CoreAggregator, id: &str, value: f64, now: i64) {
    let mut batch = SampleBatch::default();
    let hash = series_hash(MetricType::Counter, id.as_bytes());
    batch.push(0, hash, id.as_bytes(), MetricType::Counter, UNTIMED, SampleValue::Number(value), DEFAULT_SPEC);
    agg.apply(&batch, now);
}

/// (id, policy, agg) → value summed over windows.
fn flush_all(agg: &mut CoreAggregator) -> BTreeMap<(String, String, String), f64> {
    let mut out = FlushCollector::new(agg.options().naming.clone(), 0, 64);
    agg.flush_shard_all(0, BASE, &mut out);
    let mut got = BTreeMap::new();
    for batch in out.take(true) {
        for v in batch.iter() {
            *got.entry((v.id_string(), v.policy.to_string(), v.agg.name().to_string())).or_default() += v.value;
        }
    }
    got
}

#[test]
fn series_are_matched_once_with_the_rules_in_force_when_they_are_created() {
    let mut agg = CoreAggregator::new(AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]), 1);
    agg.set_rules(rules(), BASE + 20 * S, BASE);
    write(&mut agg, "api.before", 3.0, BASE);
    write(&mut agg, "debug.before", 1.0, BASE);
    write(&mut agg, "api.after", 3.0, BASE + 20 * S);
    write(&mut agg, "api.after", 5.0, BASE + 21 * S);
    write(&mut agg, "api.before", 4.0, BASE + 21 * S);
    write(&mut agg, "debug.after", 1.0, BASE + 22 * S);
    write(&mut agg, "debug.after", 1.0, BASE + 23 * S);
    assert_eq!(agg.counters.dropped_by_rule, 2, "only the series created after the cutover is dropped");
    assert_eq!(agg.counters.series_dropped_by_rule, 1);
    assert_eq!(agg.counters.series_mapped_by_rule, 1);
    let got = flush_all(&mut agg);
    let key = |id: &str, p: &str, a: &str| (id.to_string(), p.to_string(), a.to_string());
    assert_eq!(got.get(&key("api.before", "10s:2d", "sum")), Some(&7.0), "{got:?}");
    assert_eq!(got.get(&key("debug.before", "10s:2d", "sum")), Some(&1.0), "{got:?}");
    let after: Vec<_> = got.iter().filter(|(k, _)| k.0.starts_with("api.after")).collect();
    assert_eq!(after, [(&key("api.after.upper", "1s:1h", "max"), &8.0)], "max 3 and max 5 in two 1s windows");
    assert!(!got.keys().any(|k| k.0.starts_with("debug.after")), "{got:?}");
}

#[test]
fn a_rule_policy_is_not_pruned_while_a_series_it_mapped_lives() {
    let mut options = AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]);
    options.entry_ttl = 60 * S;
    let mut agg = CoreAggregator::new(options, 1);
    agg.set_rules(rules(), i64::MIN, BASE);
    write(&mut agg, "api.x", 1.0, BASE);
    assert_eq!(agg.policy_count(), 2);
    let mut out = FlushCollector::new(agg.options().naming.clone(), 0, 64);
    for r in agg.resolutions().collect::<Vec<_>>() {
        agg.begin_flush(r, BASE + 30 * S);
        agg.flush_shard(0, r, BASE + 30 * S, &mut out);
    }
    assert_eq!(agg.prune_unused_policies(), 0, "the series lives: its rule policy stays");
    write(&mut agg, "api.x", 2.0, BASE + 31 * S);
    let later = BASE + 200 * S;
    for r in agg.resolutions().collect::<Vec<_>>() {
        agg.begin_flush(r, later);
        agg.flush_shard(0, r, later, &mut out);
    }
    assert_eq!(agg.series_count(), 0, "expired");
    assert_eq!(agg.prune_unused_policies(), 1, "no series left: the rule policy goes");
}
