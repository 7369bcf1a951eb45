//! Encoding a metric that one sheaf node forwards to another: an m3msg frame (4-byte
//! big-endian length, `msgpb.Message`) whose value is a `metricpb.MetricWithMetadatas`, the
//! same bytes an M3 producer would send. Untimed values carry the time they entered the
//! cluster in `client_time_nanos`, so that every replica puts them in the same window.
//! Three StatsD notions with no M3 equivalent travel as gauges with an annotation:
//! [`ANNOTATION_GAUGE_DELTA`] (a `+n`/`-n` gauge), [`ANNOTATION_SET_MEMBER`] (a set
//! member's hash, as the value's bits) and [`ANNOTATION_FRACTIONAL_COUNTER`] (a counter
//! increment that is not a whole number, e.g. `1|c|@0.3`, which M3's integer `Counter` would
//! round, so that replicas would disagree).
//!
//! Pure encoding into the caller's buffer, on the shard core that received the value and
//! forwards it.

use prost::Message as _;

use crate::{aggregationpb, metricpb, msgpb, pipelinepb, policypb};

pub const ANNOTATION_GAUGE_DELTA: &[u8] = b"sheaf:gauge-delta";
pub const ANNOTATION_SET_MEMBER: &[u8] = b"sheaf:set-member";
pub const ANNOTATION_FRACTIONAL_COUNTER: &[u8] = b"sheaf:counter";

/// The metric to forward.
#[derive(Debug, Clone, Copy)]
pub enum Forwarded<'a> {
    Counter {
        id: &'a [u8],
        value: i64,
        arrival: i64,
    },
    Timer {
        id: &'a [u8],
        values: &'a [f64],
        arrival: i64,
    },
    Gauge {
        id: &'a [u8],
        value: f64,
        arrival: i64,
        annotation: &'static [u8],
    },
    /// A timed metric; `kind` is `metricpb.MetricType` (1 counter, 2 timer, 3 gauge).
    Timed {
        kind: i32,
        id: &'a [u8],
        time: i64,
        value: f64,
    },
    /// What a source shard's flush forwards to a rolled-up series
    /// (`FORWARDED_METRIC_WITH_METADATA`): its values for the window at `time`; the metadata is
    /// the one policy passed with it (aggregations, storage policy, the transformations after
    /// the rollup).
    Rollup {
        kind: i32,
        id: &'a [u8],
        time: i64,
        values: &'a [f64],
        /// What the source sent for the window before (a resend; empty for a first flush).
        prev_values: &'a [f64],
        version: u32,
        source: u32,
        num_forwarded_times: i32,
        /// `ForwardMetadata.resend_enabled`: the source may correct the window later.
        resend_enabled: bool,
    },
    /// A passthrough point (`TIMED_METRIC_WITH_STORAGE_POLICY`), with its one storage policy.
    Passthrough {
        kind: i32,
        id: &'a [u8],
        time: i64,
        value: f64,
        resolution_nanos: i64,
        retention_nanos: i64,
    },
}

/// One (aggregations, storage policy, transformations) element of the metric's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedPolicy {
    pub aggregation_id: u64,
    pub resolution_nanos: i64,
    pub retention_nanos: i64,
    /// The element's transformations, in order (`transformationpb.TransformationType`
    /// values), sent as the pipeline's transformation ops.
    pub transformations: Vec<i32>,
    /// The rollup op that follows them, if any.
    pub rollup: Option<ForwardedRollup>,
}

/// A rollup op of a forwarded element: the rolled-up id, its aggregations and the
/// transformations after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedRollup {
    pub id: Vec<u8>,
    pub aggregation_id: u64,
    pub transformations: Vec<i32>,
    /// `PipelineMetadata.resend_enabled` of the pipeline.
    pub resend_enabled: bool,
    /// The rollup op after this one's transformations (a nested rollup).
    pub next: Option<Box<ForwardedRollup>>,
}

fn transformation_op(t: i32) -> pipelinepb::AppliedPipelineOp {
    pipelinepb::AppliedPipelineOp {
        r#type: pipelinepb::applied_pipeline_op::Type::Transformation as i32,
        transformation: Some(pipelinepb::TransformationOp { r#type: t }),
        rollup: None,
    }
}

/// The pipeline of `p`: its transformations, then its rollup op and what follows it.
fn pipeline_of(p: &ForwardedPolicy) -> Option<pipelinepb::AppliedPipeline> {
    let mut ops: Vec<_> = p.transformations.iter().map(|t| transformation_op(*t)).collect();
    let mut rollup = p.rollup.as_ref();
    while let Some(r) = rollup {
        ops.push(pipelinepb::AppliedPipelineOp {
            r#type: pipelinepb::applied_pipeline_op::Type::Rollup as i32,
            transformation: None,
            rollup: Some(pipelinepb::AppliedRollupOp {
                id: r.id.clone(),
                aggregation_id: (r.aggregation_id != 0)
                    .then_some(aggregationpb::AggregationId { id: r.aggregation_id }),
            }),
        });
        ops.extend(r.transformations.iter().map(|t| transformation_op(*t)));
        rollup = r.next.as_deref();
    }
    (!ops.is_empty()).then_some(pipelinepb::AppliedPipeline { ops })
}

fn storage_policy(resolution_nanos: i64, retention_nanos: i64) -> policypb::StoragePolicy {
    policypb::StoragePolicy {
        resolution: Some(policypb::Resolution { window_size: resolution_nanos, precision: resolution_nanos }),
        retention: Some(policypb::Retention { period: retention_nanos }),
    }
}

fn staged(policies: &[ForwardedPolicy]) -> Option<metricpb::StagedMetadatas> {
    if policies.is_empty() {
        return None;
    }
    let pipelines = policies
        .iter()
        .map(|p| metricpb::PipelineMetadata {
            aggregation_id: (p.aggregation_id != 0).then_some(aggregationpb::AggregationId { id: p.aggregation_id }),
            storage_policies: vec![storage_policy(p.resolution_nanos, p.retention_nanos)],
            pipeline: pipeline_of(p),
            resend_enabled: p.rollup.as_ref().is_some_and(|r| r.resend_enabled),
            ..Default::default()
        })
        .collect();
    Some(metricpb::StagedMetadatas {
        metadatas: vec![metricpb::StagedMetadata {
            cutover_nanos: 0,
            tombstoned: false,
            metadata: Some(metricpb::Metadata { pipelines }),
        }],
    })
}

fn timed_metric(kind: i32, id: &[u8], time: i64, value: f64) -> metricpb::TimedMetric {
    metricpb::TimedMetric { r#type: kind, id: id.to_vec(), time_nanos: time, value, annotation: Vec::new() }
}

/// Appends one m3msg frame carrying `metric` with `policies` (empty: the defaults).
pub fn encode_forward_frame(
    metric: &Forwarded<'_>,
    policies: &[ForwardedPolicy],
    shard: u32,
    message_id: u64,
    sent_at_nanos: i64,
    out: &mut Vec<u8>,
) {
    let metadatas = staged(policies);
    let mut m = metricpb::MetricWithMetadatas::default();
    match *metric {
        Forwarded::Counter { id, value, arrival } => {
            m.r#type = metricpb::metric_with_metadatas::Type::CounterWithMetadatas as i32;
            m.counter_with_metadatas = Some(metricpb::CounterWithMetadatas {
                counter: Some(metricpb::Counter {
                    id: id.to_vec(),
                    value,
                    annotation: Vec::new(),
                    client_time_nanos: arrival,
                }),
                metadatas,
            });
        }
        Forwarded::Timer { id, values, arrival } => {
            m.r#type = metricpb::metric_with_metadatas::Type::BatchTimerWithMetadatas as i32;
            m.batch_timer_with_metadatas = Some(metricpb::BatchTimerWithMetadatas {
                batch_timer: Some(metricpb::BatchTimer {
                    id: id.to_vec(),
                    values: values.to_vec(),
                    annotation: Vec::new(),
                    client_time_nanos: arrival,
                }),
                metadatas,
            });
        }
        Forwarded::Gauge { id, value, arrival, annotation } => {
            m.r#type = metricpb::metric_with_metadatas::Type::GaugeWithMetadatas as i32;
            m.gauge_with_metadatas = Some(metricpb::GaugeWithMetadatas {
                gauge: Some(metricpb::Gauge {
                    id: id.to_vec(),
                    value,
                    annotation: annotation.to_vec(),
                    client_time_nanos: arrival,
                }),
                metadatas,
            });
        }
        Forwarded::Timed { kind, id, time, value } => {
            // Always with metadatas (none: the defaults): `TimedMetricWithStoragePolicy` would
            // make the point a passthrough one.
            m.r#type = metricpb::metric_with_metadatas::Type::TimedMetricWithMetadatas as i32;
            m.timed_metric_with_metadatas = Some(metricpb::TimedMetricWithMetadatas {
                metric: Some(timed_metric(kind, id, time, value)),
                metadatas,
            });
        }
        Forwarded::Rollup {
            kind,
            id,
            time,
            values,
            prev_values,
            version,
            source,
            num_forwarded_times,
            resend_enabled,
        } => {
            let p = policies.first();
            m.r#type = metricpb::metric_with_metadatas::Type::ForwardedMetricWithMetadata as i32;
            m.forwarded_metric_with_metadata = Some(metricpb::ForwardedMetricWithMetadata {
                metric: Some(metricpb::ForwardedMetric {
                    r#type: kind,
                    id: id.to_vec(),
                    time_nanos: time,
                    values: values.to_vec(),
                    prev_values: prev_values.to_vec(),
                    version,
                    ..Default::default()
                }),
                metadata: Some(metricpb::ForwardMetadata {
                    aggregation_id: p
                        .filter(|p| p.aggregation_id != 0)
                        .map(|p| aggregationpb::AggregationId { id: p.aggregation_id }),
                    storage_policy: p.map(|p| storage_policy(p.resolution_nanos, p.retention_nanos)),
                    pipeline: p.and_then(pipeline_of),
                    source_id: source,
                    num_forwarded_times,
                    resend_enabled,
                    ..Default::default()
                }),
            });
        }
        Forwarded::Passthrough { kind, id, time, value, resolution_nanos, retention_nanos } => {
            m.r#type = metricpb::metric_with_metadatas::Type::TimedMetricWithStoragePolicy as i32;
            m.timed_metric_with_storage_policy = Some(metricpb::TimedMetricWithStoragePolicy {
                timed_metric: Some(timed_metric(kind, id, time, value)),
                storage_policy: Some(policypb::StoragePolicy {
                    resolution: Some(policypb::Resolution {
                        window_size: resolution_nanos,
                        precision: resolution_nanos,
                    }),
                    retention: Some(policypb::Retention { period: retention_nanos }),
                }),
                routing_policy: None,
            });
        }
    }
    let message = msgpb::Message {
        metadata: Some(msgpb::Metadata {
            shard: u64::from(shard),
            id: message_id,
            sent_at_nanos: sent_at_nanos as u64,
        }),
        value: m.encode_to_vec(),
    };
    let len = message.encoded_len();
    out.reserve(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    // Writing into a Vec cannot run out of room.
    let _ = message.encode(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{MetricView, Scratch, TimedType, decode_message, decode_metric};

    /// `metric`, encoded as a node forwards it, decodes on the peer as `expected` with the
    /// storage policies of `resolutions`.
    fn arrives_as(metric: &Forwarded<'_>, expected: MetricView<'_>, resolutions: &[i64]) {
        let mut out = Vec::new();
        encode_forward_frame(metric, &[], 3, 1, 5, &mut out);
        let (payload, _) = crate::frame::next_frame(&out, 1 << 20).unwrap().unwrap();
        let mut scratch = Scratch::default();
        let view = decode_metric(decode_message(payload).unwrap().value, 0, &mut scratch).unwrap();
        assert_eq!(view, expected);
        assert_eq!(scratch.policies.iter().map(|p| p.resolution_nanos).collect::<Vec<_>>(), resolutions);
    }

    /// A passthrough point reaches the peer as one, with its policy; a timed value with the
    /// default metadata stays a timed value (not a passthrough one).
    #[test]
    fn passthrough_and_timed_values_keep_their_kind_across_nodes() {
        let passthrough = Forwarded::Passthrough {
            kind: 1,
            id: b"p",
            time: 7,
            value: 2.5,
            resolution_nanos: 10_000_000_000,
            retention_nanos: 3_600_000_000_000,
        };
        let expected = MetricView::Passthrough { kind: TimedType::Counter, id: b"p", time_nanos: 7, value: 2.5 };
        arrives_as(&passthrough, expected, &[10_000_000_000]);
        let timed = Forwarded::Timed { kind: 3, id: b"t", time: 9, value: 1.0 };
        arrives_as(&timed, MetricView::Timed { kind: TimedType::Gauge, id: b"t", time_nanos: 9, value: 1.0 }, &[]);
    }
}
