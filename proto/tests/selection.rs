//! Hand-written cases for the staged metadata selection rule, the single-pipeline
//! timed forms, the error cases and the reuse of the scratch.

use prost::Message;
use sheaf_proto::metricpb::{self, MetricWithMetadatas};
use sheaf_proto::view::{DecodeError, MetricView, OP_ROLLUP, OP_TRANSFORMATION, Scratch, TimedType, decode_metric};
use sheaf_proto::{aggregationpb, pipelinepb, policypb, transformationpb};

/// A staged metadata whose single pipeline has aggregation id `tag` (to recognise it).
fn staged(cutover_nanos: i64, tombstoned: bool, tag: u64) -> metricpb::StagedMetadata {
    metricpb::StagedMetadata {
        cutover_nanos,
        tombstoned,
        metadata: Some(metricpb::Metadata {
            pipelines: vec![metricpb::PipelineMetadata {
                aggregation_id: Some(aggregationpb::AggregationId { id: tag }),
                ..Default::default()
            }],
        }),
    }
}

fn counter(metadatas: Vec<metricpb::StagedMetadata>) -> Vec<u8> {
    MetricWithMetadatas {
        r#type: 1,
        counter_with_metadatas: Some(metricpb::CounterWithMetadatas {
            counter: Some(metricpb::Counter { id: b"c".to_vec(), value: 1, ..Default::default() }),
            metadatas: Some(metricpb::StagedMetadatas { metadatas }),
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Aggregation ids of the chosen pipelines, and the tombstone flag.
fn chosen(buf: &[u8], now_nanos: i64) -> (Vec<u64>, bool) {
    let mut scratch = Scratch::default();
    decode_metric(buf, now_nanos, &mut scratch).unwrap();
    let ids = scratch.pipelines.iter().map(|p| p.aggregation_id).collect();
    (ids, scratch.tombstoned)
}

#[test]
fn picks_the_latest_cutover_at_or_before_now() {
    let buf = counter(vec![staged(10, false, 1), staged(20, false, 2), staged(30, false, 3)]);
    assert_eq!(chosen(&buf, 25), (vec![2], false));
    assert_eq!(chosen(&buf, 20), (vec![2], false));
    assert_eq!(chosen(&buf, 1000), (vec![3], false));
}

#[test]
fn all_in_the_future_picks_the_earliest() {
    let buf = counter(vec![staged(30, false, 3), staged(10, false, 1), staged(20, false, 2)]);
    assert_eq!(chosen(&buf, 5), (vec![1], false));
}

#[test]
fn unsorted_input_is_handled() {
    let buf = counter(vec![staged(30, false, 3), staged(10, false, 1), staged(20, false, 2)]);
    assert_eq!(chosen(&buf, 25), (vec![2], false));
}

#[test]
fn ties_pick_the_last_before_now_and_the_first_after() {
    let buf = counter(vec![staged(10, false, 1), staged(10, false, 2)]);
    assert_eq!(chosen(&buf, 10), (vec![2], false));
    assert_eq!(chosen(&buf, 5), (vec![1], false));
}

#[test]
fn tombstoned_or_absent_means_no_pipelines() {
    let buf = counter(vec![staged(10, false, 1), staged(20, true, 2)]);
    assert_eq!(chosen(&buf, 25), (vec![], true));
    assert_eq!(chosen(&buf, 15), (vec![1], false));
    assert_eq!(chosen(&counter(vec![]), 0), (vec![], false));
}

#[test]
fn several_pipelines_share_the_policy_vector() {
    let policy = |w| policypb::StoragePolicy {
        resolution: Some(policypb::Resolution { window_size: w, precision: w }),
        retention: Some(policypb::Retention { period: 100 * w }),
    };
    let sm = metricpb::StagedMetadata {
        cutover_nanos: 0,
        tombstoned: false,
        metadata: Some(metricpb::Metadata {
            pipelines: vec![
                metricpb::PipelineMetadata { storage_policies: vec![policy(1), policy(2)], ..Default::default() },
                metricpb::PipelineMetadata::default(),
                metricpb::PipelineMetadata {
                    storage_policies: vec![policy(3)],
                    pipeline: Some(sheaf_proto::pipelinepb::AppliedPipeline { ops: vec![Default::default()] }),
                    ..Default::default()
                },
            ],
        }),
    };
    let mut scratch = Scratch::default();
    decode_metric(&counter(vec![sm]), 0, &mut scratch).unwrap();
    let windows = |i: usize| -> Vec<i64> {
        let p = &scratch.pipelines[i];
        scratch.policies_of(p).iter().map(|p| p.resolution_nanos).collect()
    };
    assert_eq!(scratch.pipelines.len(), 3);
    assert_eq!(windows(0), vec![1, 2]);
    assert_eq!(windows(1), Vec::<i64>::new());
    assert_eq!(windows(2), vec![3]);
    assert!(!scratch.pipelines[0].has_ops && scratch.pipelines[2].has_ops);
    assert_eq!(scratch.policies[2].retention_nanos, 300);
}

#[test]
fn timed_metadata_gives_one_pipeline() {
    let buf = MetricWithMetadatas {
        r#type: 5,
        timed_metric_with_metadata: Some(metricpb::TimedMetricWithMetadata {
            metric: Some(metricpb::TimedMetric {
                r#type: 1,
                id: b"t".to_vec(),
                time_nanos: 9,
                value: 2.0,
                annotation: b"ignored".to_vec(),
            }),
            metadata: Some(metricpb::TimedMetadata {
                aggregation_id: Some(aggregationpb::AggregationId { id: 6 }),
                storage_policy: None,
                routing_policy: Some(policypb::RoutingPolicy { traffic_types: 3 }),
            }),
        }),
        ..Default::default()
    }
    .encode_to_vec();
    let mut scratch = Scratch::default();
    let view = decode_metric(&buf, 0, &mut scratch).unwrap();
    assert!(matches!(view, MetricView::Timed { time_nanos: 9, value: 2.0, .. }));
    assert_eq!(scratch.pipelines.len(), 1);
    assert_eq!(scratch.pipelines[0].aggregation_id, 6);
    // Absent storage policy: default policies.
    assert!(scratch.pipelines[0].policies.is_empty());
}

#[test]
fn errors() {
    let mut scratch = Scratch::default();
    let forwarded = MetricWithMetadatas {
        r#type: 4,
        forwarded_metric_with_metadata: Some(Default::default()),
        ..Default::default()
    };
    // A forwarded metric of type UNKNOWN.
    assert_eq!(decode_metric(&forwarded.encode_to_vec(), 0, &mut scratch), Err(DecodeError::UnsupportedTimedType(0)));
    assert_eq!(
        decode_metric(&[0x08, 0x04], 0, &mut scratch),
        Err(DecodeError::MissingField("forwarded_metric_with_metadata"))
    );
    assert_eq!(decode_metric(&[], 0, &mut scratch), Err(DecodeError::Unsupported(0)));
    assert_eq!(decode_metric(&[0x08, 0x03], 0, &mut scratch), Err(DecodeError::MissingField("gauge_with_metadatas")));
    // Timed metric with type UNKNOWN.
    assert_eq!(
        decode_metric(&[0x08, 0x06, 0x3a, 0x02, 0x0a, 0x00], 0, &mut scratch),
        Err(DecodeError::UnsupportedTimedType(0))
    );
    // A group inside the counter.
    assert_eq!(
        decode_metric(&[0x08, 0x01, 0x12, 0x04, 0x0a, 0x02, 0x1b, 0x1c], 0, &mut scratch),
        Err(DecodeError::GroupUnsupported { field: 3 })
    );
    // Counter value with a length-delimited wire type.
    assert_eq!(
        decode_metric(&[0x08, 0x01, 0x12, 0x04, 0x0a, 0x02, 0x12, 0x00], 0, &mut scratch),
        Err(DecodeError::BadWireType { field: 2, wire_type: 2 })
    );
}

#[test]
fn reasons_are_distinct_snake_case() {
    let all = [
        DecodeError::Truncated,
        DecodeError::BadVarint,
        DecodeError::BadFieldNumber,
        DecodeError::BadWireType { field: 1, wire_type: 6 },
        DecodeError::GroupUnsupported { field: 1 },
        DecodeError::BadPackedLength { field: 2, len: 3 },
        DecodeError::MissingField("x"),
        DecodeError::Unsupported(4),
        DecodeError::UnsupportedTimedType(0),
    ];
    let mut reasons: Vec<_> = all.iter().map(DecodeError::reason).collect();
    assert!(reasons.iter().all(|r| r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    assert_eq!(DecodeError::Truncated.reason(), "truncated");
    assert_eq!(DecodeError::Unsupported(4).reason(), "unsupported_type");
    reasons.sort();
    reasons.dedup();
    assert_eq!(reasons.len(), all.len());
    for e in all {
        let msg = e.to_string();
        assert!(!msg.ends_with('.') && msg.chars().next().unwrap().is_lowercase());
    }
}

#[test]
fn scratch_is_cleared_between_decodes() {
    let timer = MetricWithMetadatas {
        r#type: 2,
        batch_timer_with_metadatas: Some(metricpb::BatchTimerWithMetadatas {
            batch_timer: Some(metricpb::BatchTimer {
                id: b"t".to_vec(),
                values: vec![1.0, 2.0, 3.0],
                ..Default::default()
            }),
            metadatas: Some(metricpb::StagedMetadatas { metadatas: vec![staged(0, true, 1)] }),
        }),
        ..Default::default()
    };
    let mut scratch = Scratch::default();
    decode_metric(&timer.encode_to_vec(), 0, &mut scratch).unwrap();
    assert_eq!(scratch.timer_values.len(), 3);
    assert!(scratch.tombstoned);
    let gauge = [0x08, 0x03, 0x22, 0x00];
    let view = decode_metric(&gauge, 0, &mut scratch).unwrap();
    assert_eq!(view, MetricView::Gauge { id: b"", value: 0.0, client_time_nanos: 0, annotation: b"" });
    assert!(scratch.timer_values.is_empty() && scratch.pipelines.is_empty());
    assert!(scratch.policies.is_empty() && !scratch.tombstoned);
}

#[test]
fn the_same_bytes_choose_again_as_time_passes() {
    // A scratch reused across decodes, as on a shard core: the choice between two staged
    // metadatas depends on the time, so it is never taken from the previous decode.
    let buf = counter(vec![staged(10, false, 1), staged(20, false, 2)]);
    let mut scratch = Scratch::default();
    for (now, want) in [(15, 1), (25, 2), (15, 1), (5, 1), (25, 2), (25, 2)] {
        decode_metric(&buf, now, &mut scratch).unwrap();
        let ids: Vec<u64> = scratch.pipelines.iter().map(|p| p.aggregation_id).collect();
        assert_eq!(ids, [want], "at {now}");
    }
    // One staged metadata is chosen whatever the time, before or after its cutover.
    let one = counter(vec![staged(20, false, 3)]);
    for now in [25, 15, 25] {
        decode_metric(&one, now, &mut scratch).unwrap();
        assert_eq!(scratch.pipelines[0].aggregation_id, 3);
    }
}

fn transformation(t: transformationpb::TransformationType) -> pipelinepb::AppliedPipelineOp {
    pipelinepb::AppliedPipelineOp {
        r#type: pipelinepb::applied_pipeline_op::Type::Transformation as i32,
        transformation: Some(pipelinepb::TransformationOp { r#type: t as i32 }),
        rollup: None,
    }
}

fn rollup(id: &[u8], aggregation_id: u64) -> pipelinepb::AppliedPipelineOp {
    pipelinepb::AppliedPipelineOp {
        r#type: pipelinepb::applied_pipeline_op::Type::Rollup as i32,
        transformation: None,
        rollup: Some(pipelinepb::AppliedRollupOp {
            id: id.to_vec(),
            aggregation_id: Some(aggregationpb::AggregationId { id: aggregation_id }),
        }),
    }
}

#[test]
fn pipeline_ops_are_decoded_in_order() {
    use transformationpb::TransformationType::{Increase, Persecond};
    let ops = vec![transformation(Increase), rollup(b"http.requests", 1 << 7), transformation(Persecond)];
    let sm = metricpb::StagedMetadata {
        cutover_nanos: 0,
        tombstoned: false,
        metadata: Some(metricpb::Metadata {
            pipelines: vec![
                metricpb::PipelineMetadata::default(),
                metricpb::PipelineMetadata {
                    pipeline: Some(pipelinepb::AppliedPipeline { ops }),
                    ..Default::default()
                },
            ],
        }),
    };
    let mut scratch = Scratch::default();
    decode_metric(&counter(vec![sm]), 0, &mut scratch).unwrap();
    assert!(scratch.ops_of(&scratch.pipelines[0]).is_empty());
    let ops = scratch.ops_of(&scratch.pipelines[1]);
    let seen: Vec<_> = ops
        .iter()
        .map(|op| (op.op_type, op.transformation_type, scratch.rollup_id_of(op).to_vec(), op.rollup_aggregation_id))
        .collect();
    assert_eq!(
        seen,
        vec![
            (OP_TRANSFORMATION, 3, vec![], 0),
            (OP_ROLLUP, 0, b"http.requests".to_vec(), 1 << 7),
            (OP_TRANSFORMATION, 2, vec![], 0)
        ]
    );
}

#[test]
fn forwarded_metric_with_metadata_is_decoded() {
    let policy = policypb::StoragePolicy {
        resolution: Some(policypb::Resolution { window_size: 10_000_000_000, precision: 1_000_000_000 }),
        retention: Some(policypb::Retention { period: 172_800_000_000_000 }),
    };
    let buf = MetricWithMetadatas {
        r#type: 4,
        forwarded_metric_with_metadata: Some(metricpb::ForwardedMetricWithMetadata {
            metric: Some(metricpb::ForwardedMetric {
                r#type: 1,
                id: b"rolled".to_vec(),
                time_nanos: 1_000,
                values: vec![1.5, 2.5],
                annotation: vec![],
                prev_values: vec![0.5],
                version: 3,
            }),
            metadata: Some(metricpb::ForwardMetadata {
                aggregation_id: Some(aggregationpb::AggregationId { id: 1 << 7 }),
                storage_policy: Some(policy),
                pipeline: Some(pipelinepb::AppliedPipeline {
                    ops: vec![transformation(transformationpb::TransformationType::Persecond)],
                }),
                source_id: 17,
                num_forwarded_times: 1,
                resend_enabled: true,
                routing_policy: None,
            }),
        }),
        ..Default::default()
    }
    .encode_to_vec();
    let mut scratch = Scratch::default();
    let view = decode_metric(&buf, 0, &mut scratch).unwrap();
    assert_eq!(
        view,
        MetricView::Forwarded {
            kind: TimedType::Counter,
            id: b"rolled",
            time_nanos: 1_000,
            version: 3,
            source_id: 17,
            num_forwarded_times: 1,
            resend_enabled: true,
        }
    );
    assert_eq!(scratch.timer_values, vec![1.5, 2.5]);
    assert_eq!(scratch.prev_values, vec![0.5]);
    assert_eq!(scratch.pipelines.len(), 1);
    let p = &scratch.pipelines[0];
    assert_eq!(p.aggregation_id, 1 << 7);
    assert_eq!(scratch.policies_of(p)[0].resolution_nanos, 10_000_000_000);
    assert_eq!(scratch.ops_of(p).len(), 1);
    assert_eq!(scratch.ops_of(p)[0].transformation_type, 2);
}
