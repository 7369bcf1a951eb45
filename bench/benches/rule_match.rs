//! Rule matching at series creation: what 100 rules (50 mapping, 50 rollup, M3 filters with
//! globs) cost a new StatsD series. `match_id` alone (ns per id), and `CoreAggregator::apply`
//! of 100k new tagged counters with no rules and with the 100 rules: the difference per series
//! is what matching adds to a series' creation. Values of existing series pay nothing (their
//! result is kept in the series). Throughput is in new series.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sheaf_shard_core::murmur3::shard_for;
use sheaf_shard_core::rules::{Filter, MappingRule, RollupRule, RuleSet};
use sheaf_shard_core::{
    AggType, AggTypes, AggregatorOptions, CoreAggregator, DEFAULT_SPEC, MetricType, SampleBatch, SampleValue, UNTIMED,
    series_hash,
};

const BATCH: usize = 1024;
const SHARDS: u32 = 64;
const SERIES: usize = 100_000;
const NOW: i64 = 1_700_000_000_000_000_000;

/// 50 mapping rules and 50 rollup rules over 100 services, filters of the shapes people write:
/// a name prefix, a tag alternative, a class, a negation.
fn hundred_rules() -> RuleSet {
    let policy = |s: &str| s.parse().expect("policy");
    let mapping_rules = (0..50)
        .map(|i| MappingRule {
            name: format!("map-{i}"),
            filter: Filter::parse(&format!("__name__:svc{i}.* env:{{prod,staging}} host:[a-m]*")).expect("filter"),
            aggregations: AggTypes::of(&[AggType::Sum, AggType::Max]),
            storage_policies: vec![policy("1m:40d")],
            drop: i % 10 == 9,
        })
        .collect();
    let rollup_rules = (50..100)
        .map(|i| RollupRule {
            name: format!("rollup-{i}"),
            filter: Filter::parse(&format!("__name__:svc{i}.requests route:!/internal/*")).expect("filter"),
            transforms_before: vec![],
            metric_name: format!("svc{i}_by_route").into_bytes(),
            group_by: vec![b"route".to_vec()],
            aggregations: AggTypes::of(&[AggType::Sum]),
            transforms_after: vec![],
            storage_policies: vec![policy("1m:40d")],
        })
        .collect();
    RuleSet { mapping_rules, rollup_rules }
}

/// Canonical StatsD ids: `svc{0..100}.requests;env=…;host=…;route=…`, all distinct.
fn ids() -> Vec<Vec<u8>> {
    let envs = ["prod", "staging", "dev"];
    (0..SERIES)
        .map(|i| {
            let (svc, env, host, route) = (i % 100, envs[i % 3], (b'a' + (i / 7 % 26) as u8) as char, i / 300);
            format!("svc{svc}.requests;env={env};host={host}{i};route=/r{route}").into_bytes()
        })
        .collect()
}

fn batches(ids: &[Vec<u8>]) -> Vec<SampleBatch> {
    ids.chunks(BATCH)
        .map(|chunk| {
            let mut batch = SampleBatch::with_capacity(chunk.len());
            for id in chunk {
                let hash = series_hash(MetricType::Counter, id);
                let shard = shard_for(id, SHARDS);
                batch.push(shard, hash, id, MetricType::Counter, UNTIMED, SampleValue::Number(1.0), DEFAULT_SPEC);
            }
            batch
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rules = Arc::new(hundred_rules());
    let ids = ids();
    let mut group = c.benchmark_group("rule_match");
    group.throughput(Throughput::Elements(ids.len() as u64));
    group.bench_function(BenchmarkId::new("match_id", "100_rules"), |b| {
        b.iter(|| {
            for id in &ids {
                black_box(rules.match_id(black_box(id)));
            }
        })
    });
    let batches = batches(&ids);
    let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().expect("policy")]);
    for (label, set) in [("0_rules", Arc::new(RuleSet::default())), ("100_rules", Arc::clone(&rules))] {
        group.bench_function(BenchmarkId::new("apply_new_series", label), |b| {
            b.iter_batched(
                || {
                    let mut agg = CoreAggregator::new(options.clone(), SHARDS);
                    agg.set_rules(Arc::clone(&set), i64::MIN, NOW);
                    agg
                },
                |mut agg| {
                    for batch in &batches {
                        agg.apply(black_box(batch), NOW);
                    }
                    agg
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(10)
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
