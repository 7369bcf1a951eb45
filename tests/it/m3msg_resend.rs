//! Resend-enabled rollups over m3msg through the real binary: a `FORWARDED_METRIC_WITH_METADATA`
//! one version further with `prev_values` replaces what its source sent before for the window,
//! and the same (source, version) again is a duplicate.

use std::io::Write;
use std::net::TcpStream;

use sheaf_proto::{aggregationpb, metricpb, policypb};

use crate::m3msg_ingest::{message, read_acks};

const S: i64 = 1_000_000_000;
/// M3's aggregation id bit of Sum.
const SUM: u64 = 1 << 7;

/// What a resend-enabled M3 aggregator forwards: `values` (replacing `prev`) of source shard
/// `source` at `version` for the window at `time_nanos` of the counter `id`, summed under 10s:2d.
fn resent(
    id: &str,
    time_nanos: i64,
    (values, prev): (Vec<f64>, Vec<f64>),
    source: u32,
    version: u32,
) -> metricpb::MetricWithMetadatas {
    metricpb::MetricWithMetadatas {
        r#type: metricpb::metric_with_metadatas::Type::ForwardedMetricWithMetadata as i32,
        forwarded_metric_with_metadata: Some(metricpb::ForwardedMetricWithMetadata {
            metric: Some(metricpb::ForwardedMetric {
                r#type: metricpb::MetricType::Counter as i32,
                id: id.as_bytes().to_vec(),
                time_nanos,
                values,
                prev_values: prev,
                version,
                ..Default::default()
            }),
            metadata: Some(metricpb::ForwardMetadata {
                aggregation_id: Some(aggregationpb::AggregationId { id: SUM }),
                storage_policy: Some(policypb::StoragePolicy {
                    resolution: Some(policypb::Resolution { window_size: 10 * S, precision: S }),
                    retention: Some(policypb::Retention { period: 172_800 * S }),
                }),
                source_id: source,
                num_forwarded_times: 1,
                resend_enabled: true,
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

#[test]
fn a_resent_forwarded_metric_replaces_its_sources_previous_values() {
    let sheaf = crate::harness::Sheaf::start("m3msg-resend", "");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    // The next window: inside the lateness bound whenever it arrives, flushed at the latest at stop.
    let time = now - now.rem_euclid(10 * S) + 10 * S;
    let frames = [
        resent("rolled.total", time, (vec![1.0, 2.0], vec![]), 3, 0),
        resent("rolled.total", time, (vec![10.0], vec![]), 4, 0),
        // Source 3 corrects its second value: 2 becomes 5.
        resent("rolled.total", time, (vec![1.0, 5.0], vec![1.0, 2.0]), 3, 1),
        resent("rolled.total", time, (vec![1.0, 5.0], vec![1.0, 2.0]), 3, 1),
    ];
    let mut c = TcpStream::connect(sheaf.m3msg).unwrap();
    for (seq, metric) in frames.into_iter().enumerate() {
        c.write_all(&message(seq as u64, metric)).unwrap();
    }
    assert_eq!(read_acks(&mut c, 4).len(), 4);
    sheaf.wait_metric("sheaf_forwarded_windows_total", &[("result", "duplicate")], 1.0);
    assert_eq!(sheaf.metric("sheaf_forwarded_windows_total", &[("result", "accepted")]), 3.0);
    let out = sheaf.stop();
    let points: Vec<(i64, f64)> =
        out.iter().filter(|v| v.id.starts_with("rolled.total")).map(|v| (v.time_ns, v.value)).collect();
    assert_eq!(points, vec![(time, 16.0)], "{out:?}");
}
