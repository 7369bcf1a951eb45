//! m3msg ingest: frames built from the `.proto` types, acks, untimed counter / batch timer /
//! gauge, timed and passthrough metrics, exact sums across two cores.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use prost::Message as _;
use sheaf_proto::frame::{encode_frame, next_frame};
use sheaf_proto::{aggregationpb, metricpb, msgpb, policypb};

use crate::harness::{Sheaf, totals};

pub fn message(seq: u64, metric: metricpb::MetricWithMetadatas) -> Vec<u8> {
    let m = msgpb::Message {
        metadata: Some(msgpb::Metadata { shard: seq % 64, id: seq, sent_at_nanos: 1 }),
        value: metric.encode_to_vec(),
    };
    let mut frame = Vec::new();
    encode_frame(&m, &mut frame);
    frame
}

pub fn counter(id: &str, value: i64) -> metricpb::MetricWithMetadatas {
    metricpb::MetricWithMetadatas {
        r#type: metricpb::metric_with_metadatas::Type::CounterWithMetadatas as i32,
        counter_with_metadatas: Some(metricpb::CounterWithMetadatas {
            counter: Some(metricpb::Counter { id: id.as_bytes().to_vec(), value, ..Default::default() }),
            metadatas: Some(metricpb::StagedMetadatas::default()),
        }),
        ..Default::default()
    }
}

fn timer(id: &str, values: Vec<f64>) -> metricpb::MetricWithMetadatas {
    metricpb::MetricWithMetadatas {
        r#type: metricpb::metric_with_metadatas::Type::BatchTimerWithMetadatas as i32,
        batch_timer_with_metadatas: Some(metricpb::BatchTimerWithMetadatas {
            batch_timer: Some(metricpb::BatchTimer { id: id.as_bytes().to_vec(), values, ..Default::default() }),
            metadatas: None,
        }),
        ..Default::default()
    }
}

fn gauge(id: &str, value: f64) -> metricpb::MetricWithMetadatas {
    metricpb::MetricWithMetadatas {
        r#type: metricpb::metric_with_metadatas::Type::GaugeWithMetadatas as i32,
        gauge_with_metadatas: Some(metricpb::GaugeWithMetadatas {
            gauge: Some(metricpb::Gauge { id: id.as_bytes().to_vec(), value, ..Default::default() }),
            metadatas: None,
        }),
        ..Default::default()
    }
}

fn policy(res_s: i64, ret_s: i64) -> policypb::StoragePolicy {
    policypb::StoragePolicy {
        resolution: Some(policypb::Resolution { window_size: res_s * 1_000_000_000, precision: 1_000_000_000 }),
        retention: Some(policypb::Retention { period: ret_s * 1_000_000_000 }),
    }
}

fn timed_with_policy(id: &str, time_nanos: i64, value: f64) -> metricpb::MetricWithMetadatas {
    metricpb::MetricWithMetadatas {
        r#type: metricpb::metric_with_metadatas::Type::TimedMetricWithStoragePolicy as i32,
        timed_metric_with_storage_policy: Some(metricpb::TimedMetricWithStoragePolicy {
            timed_metric: Some(metricpb::TimedMetric {
                r#type: metricpb::MetricType::Counter as i32,
                id: id.as_bytes().to_vec(),
                time_nanos,
                value,
                annotation: vec![],
            }),
            storage_policy: Some(policy(10, 172_800)),
            routing_policy: None,
        }),
        ..Default::default()
    }
}

fn timed_with_metadata(id: &str, time_nanos: i64, value: f64) -> metricpb::MetricWithMetadatas {
    metricpb::MetricWithMetadatas {
        r#type: metricpb::metric_with_metadatas::Type::TimedMetricWithMetadata as i32,
        timed_metric_with_metadata: Some(metricpb::TimedMetricWithMetadata {
            metric: Some(metricpb::TimedMetric {
                r#type: metricpb::MetricType::Gauge as i32,
                id: id.as_bytes().to_vec(),
                time_nanos,
                value,
                annotation: vec![],
            }),
            metadata: Some(metricpb::TimedMetadata {
                // bit 3 = MAX
                aggregation_id: Some(aggregationpb::AggregationId { id: 1 << 3 }),
                storage_policy: Some(policy(60, 3_456_000)),
                routing_policy: None,
            }),
        }),
        ..Default::default()
    }
}

/// Reads acks until `want` distinct message ids were acknowledged.
pub fn read_acks(stream: &mut TcpStream, want: usize) -> HashSet<u64> {
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut acked = HashSet::new();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    while acked.len() < want {
        let n = stream.read(&mut chunk).expect("reading acks");
        assert!(n > 0, "connection closed with {} of {want} acked", acked.len());
        buf.extend_from_slice(&chunk[..n]);
        let mut off = 0;
        while let Some((payload, used)) = next_frame(&buf[off..], 1 << 24).unwrap() {
            for m in msgpb::Ack::decode(payload).unwrap().metadata {
                acked.insert(m.id);
            }
            off += used;
        }
        buf.drain(..off);
    }
    acked
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}

#[test]
fn m3msg_metrics_are_acked_and_aggregated_exactly() {
    let sheaf = Sheaf::start("m3msg-exact", "");
    let mut expect_counter = std::collections::BTreeMap::new();
    let mut seq = 0;
    let mut conns: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(sheaf.m3msg).unwrap()).collect();
    let mut per_conn = vec![0usize; conns.len()];
    for i in 0..3000u64 {
        let id = format!("m3.counter.{}", i % 257);
        let frame = message(seq, counter(&id, (i % 9) as i64 + 1));
        *expect_counter.entry(id).or_insert(0.0) += ((i % 9) + 1) as f64;
        let c = (i % 3) as usize;
        conns[c].write_all(&frame).unwrap();
        per_conn[c] += 1;
        seq += 1;
    }
    let t = now_nanos() - 5_000_000_000;
    let timed_frames = [
        message(seq, timer("m3.timer", vec![1.0, 2.0, 3.0, 10.0])),
        message(seq + 1, gauge("m3.gauge", 7.5)),
        message(seq + 2, timed_with_policy("m3.timed", t, 4.0)),
        message(seq + 3, timed_with_policy("m3.timed", t, 6.0)),
        message(seq + 4, timed_with_metadata("m3.timed.max", t, 3.0)),
        message(seq + 5, timed_with_metadata("m3.timed.max", t, 9.0)),
    ];
    for f in &timed_frames {
        conns[0].write_all(f).unwrap();
    }
    per_conn[0] += timed_frames.len();
    for (c, n) in conns.iter_mut().zip(&per_conn) {
        assert_eq!(read_acks(c, *n).len(), *n, "every message is acknowledged");
    }
    sheaf.wait_metric("sheaf_ingested_values_total", &[("protocol", "m3msg")], (3000 + 4 + 1 + 4) as f64);
    let out = sheaf.stop();
    // Passthrough points are no windows: two of them may share an id and a time.
    let windows: Vec<_> = out.iter().filter(|v| v.agg != "passthrough").cloned().collect();
    let got = totals(&windows);
    for (id, sum) in &expect_counter {
        assert_eq!(got.get(&(id.clone(), "sum".into())), Some(sum), "{id}");
    }
    assert_eq!(got[&("m3.timer.sum".into(), "sum".into())], 16.0);
    assert_eq!(got[&("m3.timer.upper".into(), "max".into())], 10.0);
    assert_eq!(got[&("m3.gauge".into(), "last".into())], 7.5);
    // Passthrough points come out as they came in: each with its own timestamp, bare.
    let mut timed: Vec<_> = out.iter().filter(|v| v.id == "m3.timed").map(|v| (v.time_ns, v.value)).collect();
    timed.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(timed, [(t, 4.0), (t, 6.0)]);
    let max: Vec<_> = out.iter().filter(|v| v.id == "m3.timed.max").collect();
    assert_eq!(max.len(), 1, "{max:?}");
    assert_eq!((max[0].agg.as_str(), max[0].value, max[0].policy.as_str()), ("max", 9.0, "1m:40d"));
}

fn pipeline(policies: Vec<policypb::StoragePolicy>, rollup: bool) -> metricpb::PipelineMetadata {
    use sheaf_proto::pipelinepb;
    metricpb::PipelineMetadata {
        storage_policies: policies,
        pipeline: rollup.then(|| pipelinepb::AppliedPipeline {
            ops: vec![pipelinepb::AppliedPipelineOp {
                r#type: pipelinepb::applied_pipeline_op::Type::Rollup as i32,
                rollup: Some(pipelinepb::AppliedRollupOp { id: b"rolled.up".to_vec(), aggregation_id: None }),
                ..Default::default()
            }],
        }),
        ..Default::default()
    }
}

/// A metadata asking for a resolution finer than `min_storage_resolution` (1s by default)
/// is refused and counted, still acked; it creates no flush schedule, so the core is not
/// pinned by flush rounds; a metric with a normal policy beside it is aggregated.
#[test]
fn a_storage_resolution_below_the_minimum_is_refused_and_counted() {
    let sheaf = Sheaf::start("m3msg-tiny-resolution", "");
    let staged = |policy: policypb::StoragePolicy| metricpb::StagedMetadatas {
        metadatas: vec![metricpb::StagedMetadata {
            cutover_nanos: 0,
            tombstoned: false,
            metadata: Some(metricpb::Metadata { pipelines: vec![pipeline(vec![policy], false)] }),
        }],
    };
    let one_microsecond = policypb::StoragePolicy {
        resolution: Some(policypb::Resolution { window_size: 1_000, precision: 1_000 }),
        retention: Some(policypb::Retention { period: 3_600_000_000_000 }),
    };
    let mut tiny = counter("tiny.resolution", 1);
    tiny.counter_with_metadatas.as_mut().unwrap().metadatas = Some(staged(one_microsecond));
    let mut fine = counter("ten.seconds", 2);
    fine.counter_with_metadatas.as_mut().unwrap().metadatas = Some(staged(policy(10, 172_800)));
    let mut c = TcpStream::connect(sheaf.m3msg).unwrap();
    c.write_all(&message(1, tiny)).unwrap();
    c.write_all(&message(2, fine)).unwrap();
    assert_eq!(read_acks(&mut c, 2).len(), 2);
    sheaf.wait_metric("sheaf_rejected_values_total", &[("reason", "resolution_too_small")], 1.0);
    sheaf.wait_metric("sheaf_ingested_values_total", &[("protocol", "m3msg")], 1.0);
    std::thread::sleep(Duration::from_millis(300));
    assert!(sheaf.metric("sheaf_flush_rounds_total", &[]) < 100.0, "flush rounds at the refused resolution");
    let out = sheaf.stop();
    assert!(!out.iter().any(|v| v.id == "tiny.resolution"), "{out:?}");
    assert_eq!(out.iter().filter(|v| v.id == "ten.seconds").map(|v| v.value).collect::<Vec<_>>(), vec![2.0]);
}

/// A metric whose metadata asks for an allowed but unusual policy (1s:1h beside the default
/// 10s:2d) gives the core that owns it a second flush schedule; once the series has expired
/// (`entry_ttl` 2s), the policy is pruned and the core runs rounds for the default
/// resolution only: `sheaf_flush_schedules` falls back to one per core. The series is written
/// every 100 ms until the extra schedule and policy have been seen, so that a slow test
/// machine cannot let it expire unseen.
#[test]
fn a_policy_no_series_uses_any_more_is_pruned_with_its_flush_schedule() {
    let sheaf = Sheaf::start("m3msg-prune-policy", "  entry_ttl: 2s\n");
    sheaf.wait_metric("sheaf_flush_schedules", &[], 2.0);
    let mut metric = counter("one.second", 5);
    metric.counter_with_metadatas.as_mut().unwrap().metadatas = Some(metricpb::StagedMetadatas {
        metadatas: vec![metricpb::StagedMetadata {
            cutover_nanos: 0,
            tombstoned: false,
            metadata: Some(metricpb::Metadata { pipelines: vec![pipeline(vec![policy(1, 3600)], false)] }),
        }],
    });
    let mut c = TcpStream::connect(sheaf.m3msg).unwrap();
    let mut sent = 0u64;
    // 10s:2d on each core, 1s:1h on the core that owns the series.
    let seen =
        || sheaf.metric("sheaf_flush_schedules", &[]) == 3.0 && sheaf.metric("sheaf_storage_policies", &[]) == 3.0;
    let started = std::time::Instant::now();
    while sent == 0 || !seen() {
        assert!(started.elapsed() < Duration::from_secs(30), "no 1s schedule: {}", sheaf.status());
        sent += 1;
        c.write_all(&message(sent, metric.clone())).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(read_acks(&mut c, sent as usize).len(), sent as usize);
    let schedules = || sheaf.metric("sheaf_flush_schedules", &[]);
    crate::harness::wait_until(
        "the 1s schedule is dropped",
        Duration::from_secs(30),
        || schedules() == 2.0,
        || format!("{} schedules", schedules()),
    );
    assert_eq!(sheaf.metric("sheaf_storage_policies_pruned_total", &[]), 1.0);
    assert_eq!(sheaf.metric("sheaf_storage_policies", &[]), 2.0);
    assert_eq!(sheaf.metric("sheaf_series", &[]), 0.0);
    let out = sheaf.stop();
    let flushed: Vec<_> = out.iter().filter(|v| v.id == "one.second").collect();
    assert!(flushed.iter().all(|v| v.policy == "1s:1h"), "{flushed:?}");
    assert_eq!(flushed.iter().map(|v| v.value).sum::<f64>(), 5.0 * sent as f64);
}

#[test]
fn a_frame_cut_off_by_the_close_is_counted_and_the_whole_ones_before_it_are_kept() {
    let sheaf = Sheaf::start("m3msg-truncated", "");
    let mut c = TcpStream::connect(sheaf.m3msg).unwrap();
    let whole = message(1, counter("before.the.cut", 3));
    let cut = message(2, counter("cut.off", 5));
    c.write_all(&whole).unwrap();
    c.write_all(&cut[..cut.len() / 2]).unwrap();
    assert_eq!(read_acks(&mut c, 1), HashSet::from([1]));
    c.shutdown(std::net::Shutdown::Write).unwrap();
    sheaf.wait_metric("sheaf_rejected_values_total", &[("reason", "truncated_at_close")], 1.0);
    assert_eq!(sheaf.metric("sheaf_ingested_values_total", &[("protocol", "m3msg")]), 1.0);
    let out = sheaf.stop();
    assert_eq!(out.iter().filter(|v| v.id == "before.the.cut").map(|v| v.value).collect::<Vec<_>>(), vec![3.0]);
    assert!(!out.iter().any(|v| v.id == "cut.off"), "{out:?}");
}

#[test]
fn metadata_repeating_an_element_emits_once_beside_its_rollup() {
    let sheaf = Sheaf::start("m3msg-pipelines", "");
    let mut metric = counter("mapped.and.rolled", 7);
    let metadatas = metricpb::StagedMetadatas {
        metadatas: vec![metricpb::StagedMetadata {
            cutover_nanos: 0,
            tombstoned: false,
            metadata: Some(metricpb::Metadata {
                pipelines: vec![
                    // A mapping rule and a rollup rule matched: the same policy twice, one
                    // pipeline with a rollup op (an element of its own, rolled up).
                    pipeline(vec![policy(10, 172_800), policy(10, 172_800)], false),
                    pipeline(vec![policy(10, 172_800)], true),
                ],
            }),
        }],
    };
    metric.counter_with_metadatas.as_mut().unwrap().metadatas = Some(metadatas);
    let mut c = TcpStream::connect(sheaf.m3msg).unwrap();
    c.write_all(&message(1, metric)).unwrap();
    assert_eq!(read_acks(&mut c, 1).len(), 1);
    sheaf.wait_metric("sheaf_ingested_values_total", &[("protocol", "m3msg")], 1.0);
    let out = sheaf.stop();
    for id in ["mapped.and.rolled", "rolled.up"] {
        let hits: Vec<_> = out.iter().filter(|v| v.id == id).collect();
        assert_eq!(hits.len(), 1, "{id}: {out:?}");
        assert_eq!(hits[0].value, 7.0);
    }
}

#[test]
fn connections_are_spread_evenly_over_the_cores_and_served_where_they_land() {
    let sheaf = Sheaf::start("m3msg-spread", "");
    // Whichever cores the kernel's hash picks, each of the 2 cores ends up serving 10. Each
    // connection is served (its first message acked) before the next is opened, so that no
    // two cores place a connection at the same instant.
    let mut seq = 0;
    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut conn = TcpStream::connect(sheaf.m3msg).unwrap();
        conn.write_all(&message(seq, counter("spread.first", 1))).unwrap();
        seq += 1;
        assert_eq!(read_acks(&mut conn, 1).len(), 1);
        conns.push(conn);
    }
    sheaf.wait_metric("sheaf_open_connections", &[], 20.0);
    // Published every 500 ms: wait for both cores' latest count.
    let started = std::time::Instant::now();
    let per_core = loop {
        let per_core = ["0", "1"].map(|core| sheaf.metric("sheaf_open_connections", &[("core", core)]));
        if per_core == [10.0, 10.0] || started.elapsed() > Duration::from_secs(10) {
            break per_core;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(per_core, [10.0, 10.0], "open connections per core");
    // Every connection, adopted or not, is read, acked and aggregated.
    for (c, conn) in conns.iter_mut().enumerate() {
        for i in 0..100u64 {
            conn.write_all(&message(seq, counter(&format!("spread.{}", i % 7), c as i64 + 1))).unwrap();
            seq += 1;
        }
    }
    for conn in &mut conns {
        assert_eq!(read_acks(conn, 100).len(), 100);
    }
    sheaf.wait_metric("sheaf_ingested_values_total", &[("protocol", "m3msg")], 2020.0);
    let got = totals(&sheaf.stop());
    assert_eq!(got[&("spread.first".into(), "sum".into())], 20.0);
    let total: f64 = (0..7).map(|k| got.get(&(format!("spread.{k}"), "sum".into())).copied().unwrap_or(0.0)).sum();
    assert_eq!(total, 100.0 * (1..=20).sum::<u64>() as f64);
}
