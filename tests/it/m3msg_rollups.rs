//! Rollups from m3msg metadata through the real binary: a pipeline with a rollup op forwards
//! each source window's value to the rolled-up series (on this core or the other), which sums
//! them once per source; and `FORWARDED_METRIC_WITH_METADATA` from an M3 aggregator is taken in
//! once per (source shard, version).

use std::io::Write;
use std::net::TcpStream;

use sheaf_proto::{aggregationpb, metricpb, pipelinepb, policypb};

use crate::harness::{Flushed, Sheaf, totals};
use crate::m3msg_ingest::{message, read_acks};

const S: i64 = 1_000_000_000;
/// M3's aggregation id bit of Sum.
const SUM: u64 = 1 << 7;

fn policy_10s() -> policypb::StoragePolicy {
    policypb::StoragePolicy {
        resolution: Some(policypb::Resolution { window_size: 10 * S, precision: S }),
        retention: Some(policypb::Retention { period: 172_800 * S }),
    }
}

/// An untimed counter whose one pipeline sums it under 10s:2d and rolls it up into `rollup_id`
/// (summed there too), as an M3 coordinator sends it for a rollup rule.
fn rolled_up_counter(id: &str, value: i64, rollup_id: &str) -> metricpb::MetricWithMetadatas {
    let rollup = pipelinepb::AppliedPipelineOp {
        r#type: pipelinepb::applied_pipeline_op::Type::Rollup as i32,
        transformation: None,
        rollup: Some(pipelinepb::AppliedRollupOp {
            id: rollup_id.as_bytes().to_vec(),
            aggregation_id: Some(aggregationpb::AggregationId { id: SUM }),
        }),
    };
    let pipeline = metricpb::PipelineMetadata {
        aggregation_id: Some(aggregationpb::AggregationId { id: SUM }),
        storage_policies: vec![policy_10s()],
        pipeline: Some(pipelinepb::AppliedPipeline { ops: vec![rollup] }),
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

/// What an M3 aggregator forwards: `values` of source shard `source` at `version` for the
/// window at `time_nanos` of the counter `id`, summed under 10s:2d, forwarded once before.
fn forwarded(id: &str, time_nanos: i64, values: Vec<f64>, source: u32, version: u32) -> metricpb::MetricWithMetadatas {
    metricpb::MetricWithMetadatas {
        r#type: metricpb::metric_with_metadatas::Type::ForwardedMetricWithMetadata as i32,
        forwarded_metric_with_metadata: Some(metricpb::ForwardedMetricWithMetadata {
            metric: Some(metricpb::ForwardedMetric {
                r#type: metricpb::MetricType::Counter as i32,
                id: id.as_bytes().to_vec(),
                time_nanos,
                values,
                version,
                ..Default::default()
            }),
            metadata: Some(metricpb::ForwardMetadata {
                aggregation_id: Some(aggregationpb::AggregationId { id: SUM }),
                storage_policy: Some(policy_10s()),
                source_id: source,
                num_forwarded_times: 1,
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// Sends `http.requests` of 16 hosts on 3 routes, each rolled up by route with Sum (host h on
/// route k counting `h * 10 + k` then `h * 10 + k + 1`) to the m3msg port `to`; returns how
/// many metrics were sent (and acked).
pub(crate) fn send_requests_by_route(to: std::net::SocketAddr) -> usize {
    let mut frames = Vec::new();
    for round in 0..2 {
        for k in 0..3 {
            for h in 0..16 {
                let id = format!("http.requests+host=h{h},route=r{k}");
                let value = i64::from(h * 10 + k + round);
                frames.push(rolled_up_counter(&id, value, &format!("http.requests+route=r{k}")));
            }
        }
    }
    let sent = frames.len();
    let mut c = TcpStream::connect(to).unwrap();
    for (seq, metric) in frames.into_iter().enumerate() {
        c.write_all(&message(seq as u64, metric)).unwrap();
    }
    assert_eq!(read_acks(&mut c, sent).len(), sent);
    sent
}

/// What route `k`'s rolled-up series adds up to for `send_requests_by_route`.
pub(crate) fn by_route_want(k: i32) -> f64 {
    f64::from((0..16).map(|h| 2 * (h * 10 + k) + 1).sum::<i32>())
}

/// The sum of route `k`'s rolled-up series over `out`, each window counted once (a window
/// emitted twice fails).
pub(crate) fn by_route_sum(out: &[Flushed], k: i32) -> f64 {
    let id = format!("http.requests+route=r{k}");
    totals(out).iter().filter(|((i, _), _)| *i == id).map(|(_, v)| v).sum()
}

/// `http.requests` of 16 hosts on 3 routes (spread over both cores by their ids), rolled up by
/// route with Sum: each route's rolled-up series has the exact sum of its sources, each of its
/// windows emitted once, and no source series is emitted.
#[test]
fn a_rollup_pipeline_sums_its_sources_across_cores() {
    let sheaf = Sheaf::start("m3msg-rollups", "");
    let sent = send_requests_by_route(sheaf.m3msg);
    sheaf.wait_metric("sheaf_ingested_values_total", &[("protocol", "m3msg")], sent as f64);
    // The sources live on both cores: the connection's core handed the other core its share.
    assert!(sheaf.metric("sheaf_handoff_values_total", &[]) > 0.0);
    let out = sheaf.stop();
    assert!(out.iter().all(|v| !v.id.contains("host=")), "a source series was emitted: {out:?}");
    for k in 0..3 {
        assert_eq!(by_route_sum(&out, k), by_route_want(k), "route r{k}: {out:?}");
    }
}

/// `FORWARDED_METRIC_WITH_METADATA`: the values of two source shards for one window are summed;
/// the same (source, version) sent again is counted as a duplicate and not summed.
#[test]
fn a_forwarded_metric_is_taken_in_once_per_source_and_version() {
    let sheaf = Sheaf::start("m3msg-forwarded", "");
    // The next window: inside the lateness bound whenever it arrives, flushed at the latest at stop.
    let now = now_nanos();
    let time = now - now.rem_euclid(10 * S) + 10 * S;
    let frames = [
        forwarded("rolled.total", time, vec![1.0, 2.0], 3, 0),
        forwarded("rolled.total", time, vec![1.0, 2.0], 3, 0),
        forwarded("rolled.total", time, vec![10.0], 4, 0),
    ];
    let mut c = TcpStream::connect(sheaf.m3msg).unwrap();
    for (seq, metric) in frames.into_iter().enumerate() {
        c.write_all(&message(seq as u64, metric)).unwrap();
    }
    assert_eq!(read_acks(&mut c, 3).len(), 3);
    sheaf.wait_metric("sheaf_forwarded_windows_total", &[("result", "duplicate")], 1.0);
    assert_eq!(sheaf.metric("sheaf_forwarded_windows_total", &[("result", "accepted")]), 2.0);
    let out = sheaf.stop();
    let points: Vec<(i64, f64)> =
        out.iter().filter(|v| v.id.starts_with("rolled.total")).map(|v| (v.time_ns, v.value)).collect();
    assert_eq!(points, vec![(time, 13.0)], "{out:?}");
}
