//! The decoders through their public API: what lands in which batch, and what is counted.

use sheaf_proto::forward::{Forwarded, encode_forward_frame};
use sheaf_proto::output::AckFrame;
use sheaf_shard_core::murmur3::ShardOf;
use sheaf_shard_core::{AggregatorOptions, MetricType, SampleBatch, UNTIMED};

use super::{M3msgDecoder, SampleRouter, StatsdDecoder};

/// One batch per shard, so a test sees where each value was routed.
struct PerShard(Vec<SampleBatch>);

impl SampleRouter for PerShard {
    fn batch_for(&mut self, shard: u32) -> &mut SampleBatch {
        &mut self.0[shard as usize]
    }
}

fn per_shard(shards: u32) -> PerShard {
    PerShard((0..shards).map(|_| SampleBatch::default()).collect())
}

#[test]
fn statsd_lines_go_to_the_batch_of_their_shard_and_bad_lines_are_counted_by_reason() {
    let mut decoder = StatsdDecoder::new(4, 1024);
    let mut router = per_shard(4);
    decoder.lines(b"a:1|c\nb:2|g\nbad\nc:x|ms\nd:3|ms", &mut router);
    let routed: Vec<(u32, Vec<u8>, MetricType)> = router
        .0
        .iter()
        .flat_map(|b| b.samples().iter().map(move |s| (s.shard(), b.id(s).to_vec(), s.metric_type)))
        .collect();
    let shard_of = ShardOf::new(4);
    let mut ids: Vec<&[u8]> = Vec::new();
    for (shard, id, metric_type) in &routed {
        assert_eq!(*shard, shard_of.shard_and_hash(*metric_type, id).0, "{id:?}");
        ids.push(id);
    }
    ids.sort();
    assert_eq!(ids, [b"a".as_slice(), b"b", b"d"]);
    let tally = decoder.tally();
    assert_eq!(tally.ingested, 3);
    let rejected: u64 = tally.rejected.iter().map(|(_, n)| n).sum();
    assert_eq!(rejected, 2, "{:?}", tally.rejected);
}

#[test]
fn the_same_series_always_goes_to_the_same_shard() {
    let mut decoder = StatsdDecoder::new(16, 1024);
    let mut router = per_shard(16);
    decoder.lines(b"x.y:1|c|#a:1\nx.y:2|c|#a:1\n", &mut router);
    let holding: Vec<usize> = router.0.iter().enumerate().filter(|(_, b)| !b.is_empty()).map(|(i, _)| i).collect();
    assert_eq!(holding.len(), 1);
    assert_eq!(router.0[holding[0]].len(), 2);
}

#[test]
fn a_line_refused_by_the_caller_is_counted_with_the_decoders_own() {
    let mut decoder = StatsdDecoder::new(1, 8);
    let mut batch = SampleBatch::default();
    decoder.lines(b"a:1|c\n", &mut batch);
    decoder.reject("line_too_long");
    let tally = std::mem::take(decoder.tally());
    assert_eq!(tally.ingested, 1);
    assert_eq!(tally.rejected, vec![("line_too_long", 1)]);
    assert!(decoder.tally().is_empty());
}

#[test]
fn an_m3msg_message_is_acked_and_its_metric_routed() {
    let mut frame = Vec::new();
    let counter = Forwarded::Counter { id: b"requests", value: 5, arrival: 0 };
    encode_forward_frame(&counter, &[], 0, 7, 0, &mut frame);
    let payload = &frame[4..];
    let mut decoder = M3msgDecoder::new(8, &AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]));
    let mut router = per_shard(8);
    let mut acks = AckFrame::default();
    decoder.message(payload, 1_700_000_000_000_000_000, &mut router, &mut acks);
    assert_eq!(acks.len(), 1);
    let samples: Vec<_> =
        router.0.iter().flat_map(|b| b.samples().iter().map(move |s| (b.id(s).to_vec(), s.time))).collect();
    assert_eq!(samples, vec![(b"requests".to_vec(), UNTIMED)]);
    assert_eq!(decoder.tally().ingested, 1);
}

#[test]
fn a_malformed_m3msg_message_is_counted_and_not_acked() {
    let mut decoder = M3msgDecoder::new(8, &AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]));
    let mut batch = SampleBatch::default();
    let mut acks = AckFrame::default();
    decoder.message(&[0xff, 0xff, 0xff], 0, &mut batch, &mut acks);
    assert!(acks.is_empty());
    assert!(batch.is_empty());
    assert_eq!(decoder.tally().ingested, 0);
    assert_eq!(decoder.tally().rejected.len(), 1);
}

/// A passthrough point becomes a passthrough sample with its own time and its policy; one
/// with a policy that is no storage policy (resolution 0) is refused and counted, still acked.
#[test]
fn an_m3msg_passthrough_point_keeps_its_time_and_policy_and_a_bad_policy_is_counted() {
    let mut decoder = M3msgDecoder::new(8, &AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]));
    let mut batch = SampleBatch::default();
    let mut acks = AckFrame::default();
    let point = |resolution_nanos| Forwarded::Passthrough {
        kind: 3,
        id: b"pt",
        time: 1_700_000_001_500_000_000,
        value: 2.5,
        resolution_nanos,
        retention_nanos: 3_600_000_000_000,
    };
    for (i, resolution) in [60_000_000_000, 0].into_iter().enumerate() {
        let mut frame = Vec::new();
        encode_forward_frame(&point(resolution), &[], 0, i as u64, 0, &mut frame);
        decoder.message(&frame[4..], 1_700_000_010_000_000_000, &mut batch, &mut acks);
    }
    assert_eq!(acks.len(), 2);
    let [s] = batch.samples() else { panic!("{:?}", batch.samples()) };
    assert!(s.passthrough());
    assert_eq!((batch.id(s), s.metric_type, s.time), (&b"pt"[..], MetricType::Gauge, 1_700_000_001_500_000_000));
    assert_eq!(batch.spec(s.spec)[0].policy, "1m:1h".parse().unwrap());
    assert_eq!(decoder.tally().ingested, 1);
    assert_eq!(decoder.tally().rejected, vec![("bad_storage_policy", 1)]);
}

/// What one node forwards to a peer keeps its elements' transformations: the peer's decoder
/// builds the same element specs (chain included), so both emit the same transformed values.
#[test]
fn a_forwarded_metric_keeps_the_transformations_of_its_elements() {
    use sheaf_proto::forward::ForwardedPolicy;
    use sheaf_shard_core::{AggTypes, ElemSpec, TransformChain, TransformType};
    let policy: sheaf_shard_core::StoragePolicy = "10s:2d".parse().unwrap();
    let chain = TransformChain::new(&[TransformType::Increase, TransformType::Absolute]).unwrap();
    let sent = ForwardedPolicy {
        aggregation_id: AggTypes::of(&[sheaf_shard_core::AggType::Last]).to_m3_id(),
        resolution_nanos: policy.resolution_nanos,
        retention_nanos: policy.retention_nanos,
        transformations: chain.iter().map(|t| t as i32).collect(),
        rollup: None,
    };
    let mut frame = Vec::new();
    let gauge = Forwarded::Gauge { id: b"g", value: 1.0, arrival: 5, annotation: b"" };
    encode_forward_frame(&gauge, &[sent], 0, 1, 0, &mut frame);
    let mut decoder = M3msgDecoder::new(1, &AggregatorOptions::with_policies(vec![policy]));
    let mut batch = SampleBatch::default();
    decoder.message(&frame[4..], 1_700_000_000_000_000_000, &mut batch, &mut AckFrame::default());
    let s = batch.samples()[0];
    let want =
        ElemSpec { transforms: chain, ..ElemSpec::new(AggTypes::of(&[sheaf_shard_core::AggType::Last]), policy) };
    assert_eq!(batch.spec(s.spec), &[want]);
}

/// A counter whose one pipeline (Sum under 10s:2d) runs `ops`, as an m3msg payload.
fn counter_with_ops(ops: Vec<sheaf_proto::pipelinepb::AppliedPipelineOp>) -> Vec<u8> {
    use prost::Message;
    use sheaf_proto::{aggregationpb, metricpb, msgpb, pipelinepb, policypb};
    let sum = Some(aggregationpb::AggregationId { id: 1 << 7 });
    let pipeline = metricpb::PipelineMetadata {
        aggregation_id: sum,
        storage_policies: vec![policypb::StoragePolicy {
            resolution: Some(policypb::Resolution { window_size: 10_000_000_000, precision: 1_000_000_000 }),
            retention: Some(policypb::Retention { period: 172_800_000_000_000 }),
        }],
        pipeline: Some(pipelinepb::AppliedPipeline { ops }),
        ..Default::default()
    };
    let metric = metricpb::MetricWithMetadatas {
        r#type: metricpb::metric_with_metadatas::Type::CounterWithMetadatas as i32,
        counter_with_metadatas: Some(metricpb::CounterWithMetadatas {
            counter: Some(metricpb::Counter { id: b"src".to_vec(), value: 3, ..Default::default() }),
            metadatas: Some(metricpb::StagedMetadatas {
                metadatas: vec![metricpb::StagedMetadata {
                    metadata: Some(metricpb::Metadata { pipelines: vec![pipeline] }),
                    ..Default::default()
                }],
            }),
        }),
        ..Default::default()
    };
    let m = msgpb::Message {
        metadata: Some(msgpb::Metadata { shard: 0, id: 1, sent_at_nanos: 1 }),
        value: metric.encode_to_vec(),
    };
    m.encode_to_vec()
}

fn rollup_op(id: &[u8]) -> sheaf_proto::pipelinepb::AppliedPipelineOp {
    use sheaf_proto::{aggregationpb, pipelinepb};
    pipelinepb::AppliedPipelineOp {
        r#type: pipelinepb::applied_pipeline_op::Type::Rollup as i32,
        transformation: None,
        rollup: Some(pipelinepb::AppliedRollupOp {
            id: id.to_vec(),
            aggregation_id: Some(aggregationpb::AggregationId { id: 1 << 7 }),
        }),
    }
}

fn transformation_op(
    t: sheaf_proto::transformationpb::TransformationType,
) -> sheaf_proto::pipelinepb::AppliedPipelineOp {
    use sheaf_proto::pipelinepb;
    pipelinepb::AppliedPipelineOp {
        r#type: pipelinepb::applied_pipeline_op::Type::Transformation as i32,
        transformation: Some(pipelinepb::TransformationOp { r#type: t as i32 }),
        rollup: None,
    }
}

/// A rollup op splits the pipeline: the transformations before it run on the element, the
/// rollup (its id, its aggregations, the transformations after it) travels in the batch.
#[test]
fn a_rollup_op_becomes_the_elements_rollup_and_a_second_one_rolls_up_again() {
    use sheaf_proto::transformationpb::TransformationType::{Increase, Persecond};
    use sheaf_shard_core::{AggType, AggTypes, TransformChain, TransformType};
    let options = AggregatorOptions::with_policies(vec!["10s:2d".parse().unwrap()]);
    let mut decoder = M3msgDecoder::new(1, &options);
    let mut batch = SampleBatch::default();
    let payload =
        counter_with_ops(vec![transformation_op(Increase), rollup_op(b"total"), transformation_op(Persecond)]);
    decoder.message(&payload, 1_700_000_000_000_000_000, &mut batch, &mut AckFrame::default());
    let s = batch.samples()[0];
    let [elem] = batch.spec(s.spec) else { panic!("one element: {:?}", batch.spec(s.spec)) };
    assert_eq!(elem.transforms, TransformChain::new(&[TransformType::Increase]).unwrap());
    let rollup = batch.rollup(elem.rollup).expect("a rollup");
    assert_eq!(batch.rollup_id(rollup), b"total");
    assert_eq!(rollup.aggs, AggTypes::of(&[AggType::Sum]));
    assert_eq!(rollup.transforms, TransformChain::new(&[TransformType::PerSecond]).unwrap());

    // A second rollup op: the first rollup's series rolls up again, with the transformations
    // between them.
    let nested = counter_with_ops(vec![rollup_op(b"a"), transformation_op(Persecond), rollup_op(b"b")]);
    decoder.message(&nested, 1_700_000_000_000_000_000, &mut batch, &mut AckFrame::default());
    assert_eq!(batch.len(), 2, "{:?}", decoder.tally().rejected);
    let [elem] = batch.spec(batch.samples()[1].spec) else { panic!("one element") };
    let a = batch.rollup(elem.rollup).expect("the first rollup");
    assert_eq!(
        (batch.rollup_id(a), a.transforms),
        (&b"a"[..], TransformChain::new(&[TransformType::PerSecond]).unwrap())
    );
    let b = batch.rollup(a.next).expect("the next rollup");
    assert_eq!((batch.rollup_id(b), b.transforms, b.next), (&b"b"[..], TransformChain::NONE, 0));

    let deep = counter_with_ops((0..=sheaf_shard_core::pipeline::MAX_ROLLUP_DEPTH).map(|_| rollup_op(b"x")).collect());
    decoder.message(&deep, 1_700_000_000_000_000_000, &mut batch, &mut AckFrame::default());
    assert_eq!(batch.len(), 2);
    assert_eq!(decoder.tally().rejected, vec![("nested_rollup_too_deep", 1)]);
}

/// What one node forwards to another for rollups decodes to what it was: a forwarded
/// (rolled-up) value keeps its origin, and a source value keeps its rollup op.
#[test]
fn rolled_up_values_and_rollup_ops_cross_nodes_unchanged() {
    use sheaf_proto::forward::{ForwardedPolicy, ForwardedRollup};
    use sheaf_shard_core::{AggType, AggTypes, ForwardedFrom, TransformChain, TransformType};
    let policy: sheaf_shard_core::StoragePolicy = "10s:2d".parse().unwrap();
    let sum = AggTypes::of(&[AggType::Sum]);
    let element = |rollup| ForwardedPolicy {
        aggregation_id: sum.to_m3_id(),
        resolution_nanos: policy.resolution_nanos,
        retention_nanos: policy.retention_nanos,
        transformations: vec![],
        rollup,
    };
    let mut frames = Vec::new();
    let rolled = Forwarded::Rollup {
        kind: 1,
        id: b"total",
        time: 1_700_000_010_000_000_000,
        values: &[1.0, 2.0],
        prev_values: &[0.5],
        version: 2,
        source: 5,
        num_forwarded_times: 1,
        resend_enabled: true,
    };
    encode_forward_frame(&rolled, &[element(None)], 0, 1, 0, &mut frames);
    let rollup = ForwardedRollup {
        id: b"total".to_vec(),
        aggregation_id: sum.to_m3_id(),
        transformations: vec![2],
        resend_enabled: true,
        next: Some(Box::new(ForwardedRollup {
            id: b"grand.total".to_vec(),
            aggregation_id: sum.to_m3_id(),
            transformations: vec![],
            resend_enabled: true,
            next: None,
        })),
    };
    let source = Forwarded::Counter { id: b"src", value: 4, arrival: 1_700_000_000_000_000_000 };
    encode_forward_frame(&source, &[element(Some(rollup))], 0, 2, 0, &mut frames);
    let mut decoder = M3msgDecoder::new(1, &AggregatorOptions::with_policies(vec![policy]));
    let mut batch = SampleBatch::default();
    let first = u32::from_be_bytes(frames[..4].try_into().unwrap()) as usize;
    decoder.message(&frames[4..4 + first], 1_700_000_010_500_000_000, &mut batch, &mut AckFrame::default());
    decoder.message(&frames[8 + first..], 1_700_000_010_500_000_000, &mut batch, &mut AckFrame::default());
    assert_eq!(batch.len(), 2, "{:?}", decoder.tally().rejected);
    let (f, s) = (batch.samples()[0], batch.samples()[1]);
    assert!(f.forwarded());
    assert_eq!(batch.forwarded_from(0), Some(ForwardedFrom { source: 5, version: 2, times: 1 }));
    assert_eq!(batch.timer_values_of(&f), &[1.0, 2.0]);
    assert_eq!(batch.forwarded_prev_values(0), &[0.5], "a resend's previous values survive the wire");
    assert!(batch.forwarded_resend(0), "ForwardMetadata.resend_enabled survives the wire");
    assert_eq!(batch.spec(f.spec)[0].forwarded, 1);
    let elem = batch.spec(s.spec)[0];
    let r = batch.rollup(elem.rollup).expect("the rollup op");
    assert_eq!((batch.rollup_id(r), r.aggs), (&b"total"[..], sum));
    assert_eq!(r.transforms, TransformChain::new(&[TransformType::PerSecond]).unwrap());
    assert!(r.resend, "resend_enabled survives the wire");
    let next = batch.rollup(r.next).expect("a nested rollup survives the wire");
    assert_eq!((batch.rollup_id(next), next.aggs, next.next), (&b"grand.total"[..], sum, 0));
}
