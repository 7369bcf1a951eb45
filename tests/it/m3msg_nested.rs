//! Nested rollups from m3msg metadata through the real binary: a pipeline with two rollup ops
//! sums sources by route, then the routes into one total; only the total is emitted, exact.

use std::io::Write;
use std::net::TcpStream;

use sheaf_proto::{aggregationpb, metricpb, pipelinepb, policypb};

use crate::harness::{Sheaf, totals};
use crate::m3msg_ingest::{message, read_acks};

const S: i64 = 1_000_000_000;
/// M3's aggregation id bit of Sum.
const SUM: u64 = 1 << 7;

fn rollup_op(id: &str) -> pipelinepb::AppliedPipelineOp {
    pipelinepb::AppliedPipelineOp {
        r#type: pipelinepb::applied_pipeline_op::Type::Rollup as i32,
        transformation: None,
        rollup: Some(pipelinepb::AppliedRollupOp {
            id: id.as_bytes().to_vec(),
            aggregation_id: Some(aggregationpb::AggregationId { id: SUM }),
        }),
    }
}

/// An untimed counter summed under 10s:2d, rolled up into `by_route`, then into `total`.
fn twice_rolled_counter(id: &str, value: i64, by_route: &str, total: &str) -> metricpb::MetricWithMetadatas {
    let pipeline = metricpb::PipelineMetadata {
        aggregation_id: Some(aggregationpb::AggregationId { id: SUM }),
        storage_policies: vec![policypb::StoragePolicy {
            resolution: Some(policypb::Resolution { window_size: 10 * S, precision: S }),
            retention: Some(policypb::Retention { period: 172_800 * S }),
        }],
        pipeline: Some(pipelinepb::AppliedPipeline { ops: vec![rollup_op(by_route), rollup_op(total)] }),
        ..Default::default()
    };
    metricpb::MetricWithMetadatas {
        r#type: metricpb::metric_with_metadatas::Type::CounterWithMetadatas as i32,
        counter_with_metadatas: Some(metricpb::CounterWithMetadatas {
            counter: Some(metricpb::Counter { id: id.as_bytes().to_vec(), value, ..Default::default() }),
            metadatas: Some(metricpb::StagedMetadatas {
                metadatas: vec![metricpb::StagedMetadata {
                    cutover_nanos: 0,
                    tombstoned: false,
                    metadata: Some(metricpb::Metadata { pipelines: vec![pipeline] }),
                }],
            }),
        }),
        ..Default::default()
    }
}

#[test]
fn a_pipeline_with_two_rollup_ops_rolls_up_twice() {
    let sheaf = Sheaf::start("m3msg-nested", "");
    let mut frames = Vec::new();
    for k in 0..3 {
        for h in 0..16 {
            let id = format!("http.requests+host=h{h},route=r{k}");
            let by_route = format!("http.requests+route=r{k}");
            frames.push(twice_rolled_counter(&id, i64::from(h * 10 + k), &by_route, "http.requests.total"));
        }
    }
    let sent = frames.len();
    let mut c = TcpStream::connect(sheaf.m3msg).unwrap();
    for (seq, metric) in frames.into_iter().enumerate() {
        c.write_all(&message(seq as u64, metric)).unwrap();
    }
    assert_eq!(read_acks(&mut c, sent).len(), sent);
    sheaf.wait_metric("sheaf_ingested_values_total", &[("protocol", "m3msg")], sent as f64);
    let out = sheaf.stop();
    assert!(out.iter().all(|v| v.id.starts_with("http.requests.total")), "only the total is emitted: {out:?}");
    let total: f64 = totals(&out).values().sum();
    assert_eq!(total, f64::from((0..3).map(|k| (0..16).map(|h| h * 10 + k).sum::<i32>()).sum::<i32>()), "{out:?}");
}
