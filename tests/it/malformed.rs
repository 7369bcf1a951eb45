//! Bad input is counted by reason, never panics, and does not disturb valid data next to it.

use std::io::Write;
use std::net::{TcpStream, UdpSocket};

use crate::harness::{Sheaf, totals};
use crate::m3msg_ingest::{counter, message, read_acks};

#[test]
fn malformed_m3msg_and_statsd_are_counted_and_neighbours_survive() {
    let sheaf = Sheaf::start_with("malformed", "", ", max_frame_size: 4096");
    // m3msg: a frame whose payload is garbage, between two good ones, on one connection.
    let mut c = TcpStream::connect(sheaf.m3msg).unwrap();
    c.write_all(&message(1, counter("ok.before", 1))).unwrap();
    let garbage = [0xffu8; 16];
    c.write_all(&(garbage.len() as u32).to_be_bytes()).unwrap();
    c.write_all(&garbage).unwrap();
    // A message whose value is not a MetricWithMetadatas (unknown type).
    let bad_metric = sheaf_proto::msgpb::Message {
        metadata: Some(sheaf_proto::msgpb::Metadata { shard: 0, id: 2, sent_at_nanos: 0 }),
        value: vec![0x08, 0x63],
    };
    let mut frame = Vec::new();
    sheaf_proto::frame::encode_frame(&bad_metric, &mut frame);
    c.write_all(&frame).unwrap();
    c.write_all(&message(3, counter("ok.after", 2))).unwrap();
    let acked = read_acks(&mut c, 3);
    assert!(acked.contains(&1) && acked.contains(&2) && acked.contains(&3), "{acked:?}");
    // An oversize frame closes only that connection.
    let mut big = TcpStream::connect(sheaf.m3msg).unwrap();
    big.write_all(&(1u32 << 20).to_be_bytes()).unwrap();
    big.write_all(&[0u8; 64]).unwrap();
    // StatsD: bad lines between good ones in one datagram.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"good.a:1|c\nnocolon\nbad:x|c\nbad:1|zz\ngood.b:2|c\nbad:1|c|@2\n:1|c\n", sheaf.statsd).unwrap();
    udp.send_to(&[0xff, 0xfe, b'\n', 0x00], sheaf.statsd).unwrap();
    sheaf.wait_metric("sheaf_ingested_values_total", &[("protocol", "statsd_udp")], 2.0);
    sheaf.wait_metric("sheaf_rejected_values_total", &[("protocol", "statsd_udp")], 6.0);
    sheaf.wait_metric("sheaf_rejected_values_total", &[("protocol", "m3msg"), ("reason", "frame_too_large")], 1.0);
    assert!(sheaf.metric("sheaf_rejected_values_total", &[("protocol", "m3msg")]) >= 3.0);
    assert!(sheaf.metric("sheaf_rejected_values_total", &[("reason", "bad_value")]) >= 1.0);
    assert!(sheaf.metric("sheaf_rejected_values_total", &[("reason", "bad_sample_rate")]) >= 1.0);
    let got = totals(&sheaf.stop());
    for (id, v) in [("ok.before", 1.0), ("ok.after", 2.0), ("good.a", 1.0), ("good.b", 2.0)] {
        assert_eq!(got.get(&(id.to_string(), "sum".to_string())), Some(&v), "{id}");
    }
    assert_eq!(got.len(), 4, "{got:?}");
}
