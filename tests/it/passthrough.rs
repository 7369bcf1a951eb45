//! Passthrough (`TIMED_METRIC_WITH_STORAGE_POLICY`), as in M3: each point is written out as
//! it came in — its own timestamp, value and storage policy, its id bare — by the leader of
//! its shard set only; no window is formed; a follower drops and counts it.

use std::io::Write;
use std::net::TcpStream;

use sheaf_proto::{metricpb, policypb};

use crate::cluster::{PATIENCE, init_placement, node, wait_for_leader};
use crate::etcd::Etcd;
use crate::harness::{Flushed, Sheaf, wait_until};
use crate::m3msg_ingest::{message, read_acks};

const SECOND: i64 = 1_000_000_000;

/// A `TIMED_METRIC_WITH_STORAGE_POLICY` of policy 10s:2d.
pub(crate) fn passthrough(
    id: &str,
    kind: metricpb::MetricType,
    time_nanos: i64,
    value: f64,
) -> metricpb::MetricWithMetadatas {
    metricpb::MetricWithMetadatas {
        r#type: metricpb::metric_with_metadatas::Type::TimedMetricWithStoragePolicy as i32,
        timed_metric_with_storage_policy: Some(metricpb::TimedMetricWithStoragePolicy {
            timed_metric: Some(metricpb::TimedMetric {
                r#type: kind as i32,
                id: id.as_bytes().to_vec(),
                time_nanos,
                value,
                annotation: vec![],
            }),
            storage_policy: Some(policypb::StoragePolicy {
                resolution: Some(policypb::Resolution { window_size: 10 * SECOND, precision: SECOND }),
                retention: Some(policypb::Retention { period: 2 * 24 * 3600 * SECOND }),
            }),
            routing_policy: None,
        }),
        ..Default::default()
    }
}

/// The start of a 10s window a few windows back, so that every point below falls in it.
pub(crate) fn window_start() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    now - now.rem_euclid(10 * SECOND) - 30 * SECOND
}

/// Sends `frames` on one m3msg connection and waits for every ack.
fn send(to: &Sheaf, frames: &[Vec<u8>]) {
    let mut c = TcpStream::connect(to.m3msg).unwrap();
    for f in frames {
        c.write_all(f).unwrap();
    }
    assert_eq!(read_acks(&mut c, frames.len()).len(), frames.len(), "every message is acknowledged");
}

fn points_of(out: &[Flushed], prefix: &str) -> Vec<(String, i64, f64, String, String)> {
    let mut points: Vec<_> = out
        .iter()
        .filter(|v| v.id.starts_with(prefix))
        .map(|v| (v.id.clone(), v.time_ns, v.value, v.agg.clone(), v.policy.clone()))
        .collect();
    points.sort_by(|a, b| a.partial_cmp(b).unwrap());
    points
}

/// Two points of one id in one 10s window (and a gauge beside them) come out as they went in,
/// each with its own timestamp and value, while sheaf runs (no window to wait for), and once
/// only: nothing is emitted again by the windows' flush or at shutdown.
#[test]
fn every_passthrough_point_comes_out_unchanged_with_its_own_timestamp() {
    let sheaf = Sheaf::start("passthrough-single", "");
    let t = window_start();
    let frames = [
        message(1, passthrough("pt.requests", metricpb::MetricType::Counter, t + SECOND, 4.0)),
        message(2, passthrough("pt.requests", metricpb::MetricType::Counter, t + 7 * SECOND, 6.0)),
        message(3, passthrough("pt.temperature", metricpb::MetricType::Gauge, t + 2 * SECOND, -1.5)),
    ];
    send(&sheaf, &frames);
    let written = || points_of(&sheaf.output_so_far(), "pt.").len();
    wait_until("the points are written while sheaf runs", PATIENCE, || written() >= 3, || sheaf.status().to_string());
    sheaf.wait_metric("sheaf_passthrough_values_total", &[], 3.0);
    assert_eq!(sheaf.metric("sheaf_values_applied_total", &[]), 0.0, "a passthrough point was aggregated");
    let out = sheaf.stop();
    let p = |id: &str, time, value| (id.to_string(), time, value, "passthrough".to_string(), "10s:2d".to_string());
    assert_eq!(
        points_of(&out, "pt."),
        [
            p("pt.requests", t + SECOND, 4.0),
            p("pt.requests", t + 7 * SECOND, 6.0),
            p("pt.temperature", t + 2 * SECOND, -1.5)
        ]
    );
}

/// Points acknowledged just before SIGTERM are all written: the final flush queues those
/// the 100 ms push has not taken yet.
#[test]
fn passthrough_points_accepted_before_sigterm_are_all_written() {
    let sheaf = Sheaf::start("passthrough-sigterm", "");
    let t = window_start();
    let n = 2000u64;
    let frames: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let id = format!("pt.term.{}", i % 97);
            message(i + 1, passthrough(&id, metricpb::MetricType::Gauge, t + i as i64, i as f64))
        })
        .collect();
    send(&sheaf, &frames);
    let out = sheaf.stop();
    let mut values: Vec<f64> = out.iter().filter(|v| v.id.starts_with("pt.term.")).map(|v| v.value).collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, (0..n).map(|i| i as f64).collect::<Vec<_>>(), "each point once");
}

/// Two nodes, one shard set (RF=2), a producer sending every point to both replicas, as an
/// M3 producer does: the leader writes each point exactly once, the follower writes none and
/// counts every one it dropped.
#[test]
fn only_the_leader_writes_passthrough_points_and_the_follower_counts_its_drops() {
    let etcd = Etcd::start("passthrough");
    let a = node("pt-a", "node-a", &etcd);
    let b = node("pt-b", "node-b", &etcd);
    init_placement(&a, &[("node-a", &a, "rack-a"), ("node-b", &b, "rack-b")]);
    let leader = wait_for_leader(&[&a, &b]);
    let (leader, follower) = if leader == 0 { (a, b) } else { (b, a) };
    let t = window_start();
    let n = 40u64;
    let frames: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let id = format!("pt.series.{}", i % 8);
            message(i + 1, passthrough(&id, metricpb::MetricType::Counter, t + i as i64 * 100_000_000, i as f64))
        })
        .collect();
    send(&leader, &frames);
    send(&follower, &frames);
    let written = || points_of(&leader.output_so_far(), "pt.").len();
    wait_until("the leader writes every point", PATIENCE, || written() >= n as usize, || leader.status().to_string());
    let dropped = || follower.metric("sheaf_passthrough_dropped_values_total", &[("reason", "follower")]);
    wait_until("the follower counts every drop", PATIENCE, || dropped() >= n as f64, || follower.status().to_string());
    assert_eq!(follower.metric("sheaf_passthrough_values_total", &[]), 0.0);
    assert_eq!(leader.metric("sheaf_passthrough_dropped_values_total", &[("reason", "follower")]), 0.0);
    assert_eq!(dropped(), n as f64, "the follower dropped more points than were sent");
    let follower_out = follower.stop();
    let leader_out = leader.stop();
    assert!(points_of(&follower_out, "pt.").is_empty(), "the follower wrote passthrough points");
    let mut expected: Vec<_> = (0..n)
        .map(|i| {
            let id = format!("pt.series.{}", i % 8);
            (id, t + i as i64 * 100_000_000, i as f64, "passthrough".to_string(), "10s:2d".to_string())
        })
        .collect();
    expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(points_of(&leader_out, "pt."), expected, "each point once, unchanged");
}
