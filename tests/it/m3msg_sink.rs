//! The m3msg sink against a consumer in this test: AggregatedMetric values (a passthrough
//! point's with its own time and policy), retried until acknowledged, equal to what the JSON
//! sink wrote.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use prost::Message as _;
use sheaf_proto::frame::{encode_frame, next_frame};
use sheaf_proto::{metricpb, msgpb};

use crate::harness::Sheaf;
use crate::m3msg_ingest::{message, read_acks};
use crate::passthrough::{passthrough, window_start};

#[test]
fn m3msg_sink_delivers_aggregated_metrics_and_retries_until_acked() {
    let consumer = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = consumer.local_addr().unwrap();
    let (tx, rx) = mpsc::channel::<(u64, metricpb::AggregatedMetric)>();
    std::thread::spawn(move || {
        let (mut s, _) = consumer.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        let mut seen_once = std::collections::HashSet::new();
        loop {
            let n = match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let mut off = 0;
            let mut ack = msgpb::Ack::default();
            while let Some((payload, used)) = next_frame(&buf[off..], 1 << 24).unwrap() {
                let m = msgpb::Message::decode(payload).unwrap();
                let meta = m.metadata.unwrap();
                let metric = metricpb::AggregatedMetric::decode(m.value.as_slice()).unwrap();
                let _ = tx.send((meta.id, metric));
                // Leave every message unacked the first time: the sink must send it again.
                if !seen_once.insert(meta.id) {
                    ack.metadata.push(meta);
                }
                off += used;
            }
            buf.drain(..off);
            if !ack.metadata.is_empty() {
                let mut f = Vec::new();
                encode_frame(&ack, &mut f);
                if s.write_all(&f).is_err() {
                    return;
                }
            }
        }
    });
    let handler = format!("      - m3msg: {{endpoint: \"{endpoint}\", retry_interval: 300ms, num_shards: 8}}\n");
    let sheaf = Sheaf::start("m3msg-sink", &handler);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"out.a:5|c\nout.b:2.5|g\n", sheaf.statsd).unwrap();
    let mut m3msg = std::net::TcpStream::connect(sheaf.m3msg).unwrap();
    let point_time = window_start() + 1_234_567_891;
    m3msg.write_all(&message(1, passthrough("out.pt", metricpb::MetricType::Counter, point_time, 3.0))).unwrap();
    assert_eq!(read_acks(&mut m3msg, 1).len(), 1);
    sheaf.wait_metric("sheaf_ingested_values_total", &[], 3.0);
    let json = sheaf.stop();
    assert_eq!(json.len(), 3);
    let point = json.iter().find(|v| v.id == "out.pt").expect("the passthrough point");
    assert_eq!((point.time_ns, point.value, point.agg.as_str()), (point_time, 3.0, "passthrough"));
    let mut deliveries: Vec<(u64, metricpb::AggregatedMetric)> = Vec::new();
    while let Ok(d) = rx.recv_timeout(Duration::from_secs(5)) {
        deliveries.push(d);
    }
    for v in &json {
        let copies: Vec<_> = deliveries
            .iter()
            .filter(|(_, m)| m.metric.as_ref().unwrap().timed_metric.as_ref().unwrap().id == v.id.as_bytes())
            .collect();
        assert!(copies.len() >= 2, "{} was sent {} times; it must be resent until acked", v.id, copies.len());
        let m = copies[0].1.metric.as_ref().unwrap();
        let tm = m.timed_metric.as_ref().unwrap();
        assert_eq!((tm.value, tm.time_nanos), (v.value, v.time_ns));
        let res = m.storage_policy.as_ref().unwrap().resolution.as_ref().unwrap().window_size;
        assert_eq!(res, 10_000_000_000);
        assert!(copies.iter().all(|(id, _)| *id == copies[0].0), "a retry keeps its message id");
    }
}
