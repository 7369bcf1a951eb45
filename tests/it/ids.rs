//! Ids are bytes: two series whose names differ only in bytes that are not UTF-8 stay two
//! series in the output, each readable back exactly (`id_base64`), from StatsD and m3msg alike.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;

use crate::harness::Sheaf;
use crate::m3msg_ingest::{counter, message, read_acks};

/// Sums of `agg="sum"` by exact id bytes, read from the JSON sink's raw lines.
fn sums_by_exact_id(sheaf: Sheaf) -> BTreeMap<Vec<u8>, f64> {
    let text = sheaf.stop_raw();
    let mut sums = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad json line {line:?}: {e}"));
        if v["agg"] != "sum" {
            continue;
        }
        let id = match v.get("id_base64") {
            Some(b64) => BASE64_STANDARD.decode(b64.as_str().unwrap()).unwrap(),
            None => v["id"].as_str().unwrap().as_bytes().to_vec(),
        };
        *sums.entry(id).or_insert(0.0) += v["value"].as_f64().unwrap();
    }
    sums
}

#[test]
fn ids_that_are_not_utf8_come_out_distinct_and_exact() {
    let sheaf = Sheaf::start("ids", "");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"a.\xff\xfe:1|c\na.\xfe\xff:2|c\nplain.\xc3\xa9:4|c\n", sheaf.statsd).unwrap();
    // An m3msg id in a binary encoding (as M3's tag-encoded ids are): a length byte >= 0x80.
    let binary_id: &[u8] = b"\x10\x27\x01\x00\x04name\x80\x00";
    let mut metric = counter("placeholder", 8);
    metric.counter_with_metadatas.as_mut().unwrap().counter.as_mut().unwrap().id = binary_id.to_vec();
    let mut c = TcpStream::connect(sheaf.m3msg).unwrap();
    c.write_all(&message(1, metric)).unwrap();
    assert!(read_acks(&mut c, 1).contains(&1));
    sheaf.wait_metric("sheaf_ingested_values_total", &[("protocol", "statsd_udp")], 3.0);
    let sums = sums_by_exact_id(sheaf);
    let want: BTreeMap<Vec<u8>, f64> = [
        (b"a.\xff\xfe".to_vec(), 1.0),
        (b"a.\xfe\xff".to_vec(), 2.0),
        ("plain.é".as_bytes().to_vec(), 4.0),
        (binary_id.to_vec(), 8.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(sums, want);
}
