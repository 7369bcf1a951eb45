//! m3msg metadata with applied pipelines, as an M3 coordinator sends them for its mapping and
//! rollup rules: transformations run on the flushed values of their element.

use std::io::Write;
use std::net::TcpStream;

use sheaf_proto::{aggregationpb, metricpb, pipelinepb, policypb, transformationpb};

use crate::harness::Sheaf;
use crate::m3msg_ingest::{message, read_acks};

const S: i64 = 1_000_000_000;

fn transformation(t: transformationpb::TransformationType) -> pipelinepb::AppliedPipelineOp {
    pipelinepb::AppliedPipelineOp {
        r#type: pipelinepb::applied_pipeline_op::Type::Transformation as i32,
        transformation: Some(pipelinepb::TransformationOp { r#type: t as i32 }),
        rollup: None,
    }
}

/// A timed gauge at `time_nanos` whose one pipeline aggregates with Last under 10s:2d and then
/// runs `ops`.
fn timed_gauge(
    id: &str,
    time_nanos: i64,
    value: f64,
    ops: Vec<pipelinepb::AppliedPipelineOp>,
) -> metricpb::MetricWithMetadatas {
    let pipeline = metricpb::PipelineMetadata {
        // bit 1 = LAST
        aggregation_id: Some(aggregationpb::AggregationId { id: 1 << 1 }),
        storage_policies: vec![policypb::StoragePolicy {
            resolution: Some(policypb::Resolution { window_size: 10 * S, precision: S }),
            retention: Some(policypb::Retention { period: 172_800 * S }),
        }],
        pipeline: Some(pipelinepb::AppliedPipeline { ops }),
        ..Default::default()
    };
    metricpb::MetricWithMetadatas {
        r#type: metricpb::metric_with_metadatas::Type::TimedMetricWithMetadatas as i32,
        timed_metric_with_metadatas: Some(metricpb::TimedMetricWithMetadatas {
            metric: Some(metricpb::TimedMetric {
                r#type: metricpb::MetricType::Gauge as i32,
                id: id.as_bytes().to_vec(),
                time_nanos,
                value,
                annotation: vec![],
            }),
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

fn now_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// Cumulative counters (as a Prometheus scrape gives them) with PerSecond and with Increase,
/// over four consecutive 10s windows, the third one after a counter reset: Increase gives
/// the growth of each window (the value itself after the reset), PerSecond the growth per
/// second and nothing for the reset; neither emits anything for the first window. The series
/// spread over both cores.
#[test]
fn per_second_and_increase_of_cumulative_counters_with_a_reset() {
    use transformationpb::TransformationType::{Increase, Persecond};
    let sheaf = Sheaf::start("m3msg-transforms", "");
    let cumulative = [100.0, 150.0, 20.0, 120.0];
    // Four consecutive windows inside the minute a timed value may be late.
    let first = now_nanos() - 45 * S;
    let mut frames = Vec::new();
    for k in 0..4 {
        for (w, value) in cumulative.iter().enumerate() {
            let t = first + w as i64 * 10 * S;
            let scale = f64::from(k + 1);
            frames.push(timed_gauge(
                &format!("requests.increase.{k}"),
                t,
                value * scale,
                vec![transformation(Increase)],
            ));
            frames.push(timed_gauge(&format!("requests.rate.{k}"), t, value * scale, vec![transformation(Persecond)]));
        }
    }
    let mut c = TcpStream::connect(sheaf.m3msg).unwrap();
    for (seq, metric) in frames.into_iter().enumerate() {
        c.write_all(&message(seq as u64, metric)).unwrap();
    }
    assert_eq!(read_acks(&mut c, 32).len(), 32);
    sheaf.wait_metric("sheaf_ingested_values_total", &[("protocol", "m3msg")], 32.0);
    let out = sheaf.stop();
    let end = |w: i64| {
        let t = first + w * 10 * S;
        t - t.rem_euclid(10 * S) + 10 * S
    };
    for k in 0..4 {
        let scale = f64::from(k + 1);
        let series = |id: String| {
            let mut points: Vec<(i64, f64)> = out.iter().filter(|v| v.id == id).map(|v| (v.time_ns, v.value)).collect();
            points.sort_by_key(|p| p.0);
            points
        };
        assert_eq!(
            series(format!("requests.increase.{k}")),
            vec![(end(1), 50.0 * scale), (end(2), 20.0 * scale), (end(3), 100.0 * scale)],
            "{out:?}"
        );
        assert_eq!(
            series(format!("requests.rate.{k}")),
            vec![(end(1), 5.0 * scale), (end(3), 10.0 * scale)],
            "{out:?}"
        );
    }
}
