//! proptest strategies building random prost values of every message the ingest
//! path decodes.

use proptest::collection::vec;
use proptest::option::weighted;
use proptest::prelude::*;
use sheaf_proto::{aggregationpb, metricpb, msgpb, pipelinepb, policypb, transformationpb};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

/// Mostly small values (so that cutovers collide with `now` and with each other),
/// sometimes any `i64` (negative ones take 10-byte varints).
pub(crate) fn nanos() -> impl Strategy<Value = i64> {
    prop_oneof![3 => 0i64..12, 2 => 0i64..1000, 1 => any::<i64>()]
}

fn doubles() -> impl Strategy<Value = Vec<f64>> {
    vec(any::<f64>(), 0..6)
}

pub(crate) fn storage_policy() -> impl Strategy<Value = policypb::StoragePolicy> {
    (weighted(0.8, (nanos(), nanos())), weighted(0.8, nanos())).prop_map(|(res, ret)| policypb::StoragePolicy {
        resolution: res.map(|(window_size, precision)| policypb::Resolution { window_size, precision }),
        retention: ret.map(|period| policypb::Retention { period }),
    })
}

fn aggregation_id() -> impl Strategy<Value = Option<aggregationpb::AggregationId>> {
    weighted(0.6, any::<u64>().prop_map(|id| aggregationpb::AggregationId { id }))
}

fn routing_policy() -> impl Strategy<Value = Option<policypb::RoutingPolicy>> {
    weighted(0.3, any::<u64>().prop_map(|traffic_types| policypb::RoutingPolicy { traffic_types }))
}

fn applied_pipeline() -> impl Strategy<Value = Option<pipelinepb::AppliedPipeline>> {
    let op = (0i32..3, weighted(0.5, 0i32..6), weighted(0.5, (bytes(8), aggregation_id()))).prop_map(
        |(r#type, transformation, rollup)| pipelinepb::AppliedPipelineOp {
            r#type,
            transformation: transformation.map(|t| pipelinepb::TransformationOp {
                r#type: transformationpb::TransformationType::try_from(t).map_or(0, |t| t as i32),
            }),
            rollup: rollup.map(|(id, aggregation_id)| pipelinepb::AppliedRollupOp { id, aggregation_id }),
        },
    );
    weighted(0.5, vec(op, 0..3).prop_map(|ops| pipelinepb::AppliedPipeline { ops }))
}

pub(crate) fn pipeline_metadata() -> impl Strategy<Value = metricpb::PipelineMetadata> {
    (aggregation_id(), vec(storage_policy(), 0..3), applied_pipeline(), 0i32..3, any::<bool>(), routing_policy())
        .prop_map(|(aggregation_id, storage_policies, pipeline, drop_policy, resend_enabled, routing_policy)| {
            metricpb::PipelineMetadata {
                aggregation_id,
                storage_policies,
                pipeline,
                drop_policy,
                resend_enabled,
                routing_policy,
            }
        })
}

pub(crate) fn staged_metadata() -> impl Strategy<Value = metricpb::StagedMetadata> {
    (nanos(), proptest::bool::weighted(0.2), weighted(0.9, vec(pipeline_metadata(), 0..4))).prop_map(
        |(cutover_nanos, tombstoned, pipelines)| metricpb::StagedMetadata {
            cutover_nanos,
            tombstoned,
            metadata: pipelines.map(|pipelines| metricpb::Metadata { pipelines }),
        },
    )
}

pub(crate) fn staged_metadatas() -> impl Strategy<Value = Option<metricpb::StagedMetadatas>> {
    weighted(0.9, vec(staged_metadata(), 0..5).prop_map(|metadatas| metricpb::StagedMetadatas { metadatas }))
}

fn metric_type() -> impl Strategy<Value = i32> {
    prop_oneof![8 => 1i32..4, 1 => Just(0), 1 => any::<i32>()]
}

pub(crate) fn timed_metric() -> impl Strategy<Value = metricpb::TimedMetric> {
    (metric_type(), bytes(20), nanos(), any::<f64>(), bytes(5)).prop_map(
        |(r#type, id, time_nanos, value, annotation)| metricpb::TimedMetric {
            r#type,
            id,
            time_nanos,
            value,
            annotation,
        },
    )
}

fn counter_wm() -> impl Strategy<Value = metricpb::CounterWithMetadatas> {
    (weighted(0.95, (bytes(20), any::<i64>(), bytes(5), nanos())), staged_metadatas()).prop_map(|(c, metadatas)| {
        metricpb::CounterWithMetadatas {
            counter: c.map(|(id, value, annotation, client_time_nanos)| metricpb::Counter {
                id,
                value,
                annotation,
                client_time_nanos,
            }),
            metadatas,
        }
    })
}

fn batch_timer_wm() -> impl Strategy<Value = metricpb::BatchTimerWithMetadatas> {
    (weighted(0.95, (bytes(20), doubles(), bytes(5), nanos())), staged_metadatas()).prop_map(|(t, metadatas)| {
        metricpb::BatchTimerWithMetadatas {
            batch_timer: t.map(|(id, values, annotation, client_time_nanos)| metricpb::BatchTimer {
                id,
                values,
                annotation,
                client_time_nanos,
            }),
            metadatas,
        }
    })
}

fn gauge_wm() -> impl Strategy<Value = metricpb::GaugeWithMetadatas> {
    (weighted(0.95, (bytes(20), any::<f64>(), bytes(5), nanos())), staged_metadatas()).prop_map(|(g, metadatas)| {
        metricpb::GaugeWithMetadatas {
            gauge: g.map(|(id, value, annotation, client_time_nanos)| metricpb::Gauge {
                id,
                value,
                annotation,
                client_time_nanos,
            }),
            metadatas,
        }
    })
}

fn forwarded_wm() -> impl Strategy<Value = metricpb::ForwardedMetricWithMetadata> {
    (
        (metric_type(), bytes(10), nanos(), doubles(), doubles(), any::<u32>()),
        (aggregation_id(), weighted(0.8, storage_policy()), applied_pipeline()),
        (any::<u32>(), any::<i32>(), any::<bool>(), routing_policy()),
    )
        .prop_map(
            |(
                (r#type, id, time_nanos, values, prev_values, version),
                (aggregation_id, storage_policy, pipeline),
                (source_id, num_forwarded_times, resend_enabled, routing_policy),
            )| metricpb::ForwardedMetricWithMetadata {
                metric: Some(metricpb::ForwardedMetric {
                    r#type,
                    id,
                    time_nanos,
                    values,
                    annotation: Vec::new(),
                    prev_values,
                    version,
                }),
                metadata: Some(metricpb::ForwardMetadata {
                    aggregation_id,
                    storage_policy,
                    pipeline,
                    source_id,
                    num_forwarded_times,
                    resend_enabled,
                    routing_policy,
                }),
            },
        )
}

fn timed_wm() -> impl Strategy<Value = metricpb::TimedMetricWithMetadata> {
    (
        weighted(0.95, timed_metric()),
        weighted(0.9, (aggregation_id(), weighted(0.8, storage_policy()), routing_policy())),
    )
        .prop_map(|(metric, md)| metricpb::TimedMetricWithMetadata {
            metric,
            metadata: md.map(|(aggregation_id, storage_policy, routing_policy)| metricpb::TimedMetadata {
                aggregation_id,
                storage_policy,
                routing_policy,
            }),
        })
}

fn timed_wms() -> impl Strategy<Value = metricpb::TimedMetricWithMetadatas> {
    (weighted(0.95, timed_metric()), staged_metadatas())
        .prop_map(|(metric, metadatas)| metricpb::TimedMetricWithMetadatas { metric, metadatas })
}

fn timed_wsp() -> impl Strategy<Value = metricpb::TimedMetricWithStoragePolicy> {
    (weighted(0.95, timed_metric()), weighted(0.9, storage_policy()), routing_policy()).prop_map(
        |(timed_metric, storage_policy, routing_policy)| metricpb::TimedMetricWithStoragePolicy {
            timed_metric,
            storage_policy,
            routing_policy,
        },
    )
}

/// A random `MetricWithMetadatas`: mostly a known type with its payload, sometimes
/// unknown or unsupported types, missing payloads, or payloads of other types.
pub(crate) fn metric_with_metadatas() -> impl Strategy<Value = metricpb::MetricWithMetadatas> {
    (
        prop_oneof![20 => 1i32..8, 1 => Just(0), 1 => any::<i32>()],
        proptest::bool::weighted(0.95),
        weighted(0.3, 1i32..8),
        (counter_wm(), batch_timer_wm(), gauge_wm(), forwarded_wm()),
        (timed_wm(), timed_wms(), timed_wsp()),
    )
        .prop_map(|(r#type, main, extra, (c, b, g, f), (t, ts, tsp))| {
            // The payload of type `ty` (field ty + 1) is present if the type selects
            // it (95%), or if it is the `extra` one.
            let present = |ty: i32| {
                if ty == r#type { main } else { extra == Some(ty) }
            };
            metricpb::MetricWithMetadatas {
                r#type,
                counter_with_metadatas: present(1).then_some(c),
                batch_timer_with_metadatas: present(2).then_some(b),
                gauge_with_metadatas: present(3).then_some(g),
                forwarded_metric_with_metadata: present(4).then_some(f),
                timed_metric_with_metadata: present(5).then_some(t),
                timed_metric_with_metadatas: present(6).then_some(ts),
                timed_metric_with_storage_policy: present(7).then_some(tsp),
            }
        })
}

pub(crate) fn message() -> impl Strategy<Value = msgpb::Message> {
    (weighted(0.9, (any::<u64>(), any::<u64>(), any::<u64>())), bytes(40)).prop_map(|(md, value)| msgpb::Message {
        metadata: md.map(|(shard, id, sent_at_nanos)| msgpb::Metadata { shard, id, sent_at_nanos }),
        value,
    })
}
