//! StatsD over UDP, TCP and a Unix datagram socket, two shard cores: exact counter sums
//! across core hand-offs, gauges' last value, timer quantiles within the sketch bound, sets,
//! tags; and nothing a Unix-socket sender was told had been taken is lost at shutdown.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};

use crate::harness::{Launch, Sheaf, totals};

#[test]
fn counters_are_exact_and_nothing_is_lost_across_core_hand_offs() {
    let sheaf = Sheaf::start("statsd-exact", "");
    let mut want: BTreeMap<String, f64> = BTreeMap::new();
    let mut lines_sent = 0u64;
    // Several UDP sockets (distinct source ports spread over the cores' SO_REUSEPORT sockets).
    let sockets: Vec<UdpSocket> = (0..8).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    for round in 0..50u64 {
        for (i, s) in sockets.iter().enumerate() {
            let mut dgram = String::new();
            for k in 0..40u64 {
                let series = (round * 7 + k * 13 + i as u64) % 300;
                let v = (k % 5) + 1;
                dgram.push_str(&format!("req.count.{series}:{v}|c\n"));
                *want.entry(format!("req.count.{series}")).or_default() += v as f64;
                lines_sent += 1;
            }
            s.send_to(dgram.as_bytes(), sheaf.statsd).unwrap();
        }
        // Pace the bursts so the kernel's receive buffers never overflow.
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // And a TCP stream, with sample rates and tags in either order.
    let mut tcp = TcpStream::connect(sheaf.statsd).unwrap();
    for i in 0..2000u64 {
        writeln!(tcp, "tcp.hits:1|c|@0.5|#route:/a,code:200").unwrap();
        writeln!(tcp, "tcp.hits:2|c|#code:200,route:/a").unwrap();
        lines_sent += 2;
        if i % 500 == 0 {
            tcp.flush().unwrap();
        }
    }
    drop(tcp);
    *want.entry("tcp.hits;code=200;route=/a".into()).or_default() += 2000.0 * 2.0 + 2000.0 * 2.0;
    sheaf.wait_metric("sheaf_ingested_values_total", &[], lines_sent as f64);
    let handed_off = sheaf.metric("sheaf_handoff_values_total", &[]);
    assert!(handed_off > 0.0, "with two cores some values must cross cores");
    let out = sheaf.stop();
    let got = totals(&out);
    for (id, sum) in &want {
        assert_eq!(got.get(&(id.clone(), "sum".into())), Some(sum), "counter {id}");
    }
    assert_eq!(got.keys().filter(|(_, agg)| agg == "sum").count(), want.len(), "no unexpected counters");
}

/// StatsD over TCP, where reads cut lines anywhere: a line split over several writes, a line
/// longer than `max_line_size` (64 KiB; counted, and skipped up to its newline, its
/// neighbours kept) and a last line without its newline.
#[test]
fn tcp_lines_cut_across_reads_and_too_long_lines() {
    let sheaf = Sheaf::start("statsd-tcp-reads", "");
    let mut tcp = TcpStream::connect(sheaf.statsd).unwrap();
    tcp.set_nodelay(true).unwrap();
    // Each write has arrived, and been read, before the next is sent.
    let mut send = |bytes: &[u8]| {
        tcp.write_all(bytes).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    send(b"split.hits:");
    send(b"3|c\nsplit.hits:4");
    send(b"|c\n");
    for _ in 0..10 {
        send(&[b'x'; 10 * 1024]);
    }
    send(b":1|c\nafter.hits:5|c\n");
    send(b"last.hits:6|c");
    drop(tcp);
    sheaf.wait_metric("sheaf_ingested_values_total", &[], 4.0);
    sheaf.wait_metric("sheaf_rejected_values_total", &[("reason", "line_too_long")], 1.0);
    let out = sheaf.stop();
    let got = totals(&out);
    let sums: BTreeMap<&str, f64> =
        got.iter().filter(|((_, agg), _)| agg == "sum").map(|((id, _), v)| (id.as_str(), *v)).collect();
    assert_eq!(sums, BTreeMap::from([("after.hits", 5.0), ("last.hits", 6.0), ("split.hits", 7.0)]));
}

#[test]
fn gauges_timers_and_sets_aggregate_as_m3_does() {
    let sheaf = Sheaf::start("statsd-types", "");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |s: &str| udp.send_to(s.as_bytes(), sheaf.statsd).unwrap();
    send("temp:10|g\ntemp:12|g\ntemp:+3|g\nqueue:-5|g\n");
    // 1..=1000 ms, in several datagrams, through one id.
    let mut values: Vec<f64> = (1..=1000).map(f64::from).collect();
    for chunk in values.chunks(50) {
        let d: String = chunk.iter().map(|v| format!("lat:{v}|ms\n")).collect();
        send(&d);
    }
    send("users:alice|s\nusers:bob|s\nusers:alice|s\nusers:carol|s\n");
    send("size:3|h\n");
    sheaf.wait_metric("sheaf_ingested_values_total", &[], (4 + 1000 + 4 + 1) as f64);
    let out = sheaf.stop();
    let get = |id: &str, agg: &str| {
        let hits: Vec<_> = out.iter().filter(|v| v.id == id && v.agg == agg).collect();
        assert_eq!(hits.len(), 1, "{id} {agg}: {hits:?}");
        hits[0].value
    };
    assert_eq!(get("temp", "last"), 15.0, "gauge: last set value plus the delta");
    assert_eq!(get("queue", "last"), -5.0, "a delta on a new gauge starts from 0");
    assert_eq!(get("lat.count", "count"), 1000.0);
    assert_eq!(get("lat.sum", "sum"), 500_500.0);
    assert_eq!(get("lat.lower", "min"), 1.0);
    assert_eq!(get("lat.upper", "max"), 1000.0);
    assert_eq!(get("lat.mean", "mean"), 500.5);
    values.sort_by(f64::total_cmp);
    for (agg, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("median", 0.5)] {
        let exact = values[(q * (values.len() as f64 - 1.0)).floor() as usize];
        let id = format!("lat.{agg}");
        let got = get(&id, agg);
        assert!((got - exact).abs() <= 0.01 * exact + 1e-9, "{agg}: {got} vs exact {exact}");
    }
    assert_eq!(get("users", "count"), 3.0, "sets count distinct members");
    assert_eq!(get("size.count", "count"), 1.0, "histograms are timers");
    for v in &out {
        assert_eq!(v.policy, "10s:2d");
        assert_eq!(v.time_ns % 10_000_000_000, 0, "stamped with the window end");
    }
}

#[test]
fn windows_flush_on_schedule_without_shutdown() {
    let sheaf = Sheaf::start(
        "statsd-schedule",
        "  default_storage_policies: [\"1s:1h\", \"2s:1h\"]\n  flush_manager:\n    max_jitters: [{flush_interval: 1s, max_jitter_percent: 0.2}, {flush_interval: 2s, max_jitter_percent: 0.2}]\n",
    );
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent_at = sheaf_now();
    udp.send_to(b"tick:1|c\n", sheaf.statsd).unwrap();
    sheaf.wait_metric("sheaf_ingested_values_total", &[], 1.0);
    // Both windows close within 2 s and flush within 20% of their resolution after that.
    sheaf.wait_metric("sheaf_values_flushed_total", &[], 2.0);
    let out = crate::harness::read_output(&sheaf.output_path());
    assert_eq!(out.len(), 2, "{out:?}");
    for v in &out {
        let r: i64 = if v.policy == "1s:1h" { 1_000_000_000 } else { 2_000_000_000 };
        assert_eq!(v.time_ns % r, 0);
        assert!(v.time_ns > sent_at - 1_000_000_000 && v.time_ns <= sent_at + r + 1_000_000_000, "{v:?}");
        assert_eq!(v.value, 1.0);
    }
    // Nothing new at shutdown: the windows were already emitted once.
    assert_eq!(sheaf.stop().len(), 2);
}

/// A counter sum or a gauge delta that overflows to infinity is dropped and counted with the
/// NaNs, never written out (JSON has no infinity); the finite series beside it are exact.
#[test]
fn results_that_overflow_to_infinity_are_discarded_and_counted() {
    let sheaf = Sheaf::start("statsd-overflow", "  default_storage_policies: [\"1s:1h\"]\n");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"big:1e308|c\nbig:1e308|c\nok:1|c\ng:1e308|g\ng:+1e308|g\n", sheaf.statsd).unwrap();
    sheaf.wait_metric("sheaf_ingested_values_total", &[], 5.0);
    sheaf.wait_metric("sheaf_nan_discarded_total", &[], 2.0);
    sheaf.wait_metric("sheaf_values_flushed_total", &[], 1.0);
    let text = std::fs::read_to_string(sheaf.output_path()).unwrap();
    assert!(!text.contains("null"), "{text}");
    let out = sheaf.stop();
    assert_eq!(out.iter().map(|v| (v.id.as_str(), v.value)).collect::<Vec<_>>(), vec![("ok", 1.0)]);
}

/// StatsD datagrams on the Unix socket: senders on several threads that keep sending until
/// sheaf stops. Every datagram whose `send` succeeded is in the flushed sums (the socket
/// refuses senders before the cores' last drain); a malformed line is counted under
/// `statsd_unix`; the socket file is gone after the stop.
#[test]
fn unix_socket_datagrams_sent_until_shutdown_are_all_flushed() {
    use std::os::unix::net::UnixDatagram;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier};

    let sheaf = Sheaf::launch("statsd-unix", Launch { statsd_unix: true, ..Launch::default() });
    let path = sheaf.statsd_unix.clone().unwrap();
    assert_eq!(sheaf.status()["ingest"]["statsd_unix"], path.display().to_string());

    let probe = UnixDatagram::unbound().unwrap();
    probe.send_to(b"bad line without a type\nok.hits:1|c\n", &path).unwrap();
    sheaf.wait_metric("sheaf_rejected_values_total", &[("protocol", "statsd_unix")], 1.0);

    let threads = 4;
    let started = Arc::new(Barrier::new(threads + 1));
    let refused = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..threads)
        .map(|t| {
            let (path, started, refused) = (path.clone(), started.clone(), refused.clone());
            std::thread::spawn(move || {
                let socket = UnixDatagram::unbound().unwrap();
                socket.connect(&path).unwrap();
                started.wait();
                let mut sums: BTreeMap<String, f64> = BTreeMap::new();
                for round in 0u64.. {
                    let dgram: String =
                        (0..50u64).map(|k| format!("unix.{t}.{}:{}|c\n", (round + k) % 97, k % 3 + 1)).collect();
                    if socket.send(dgram.as_bytes()).is_err() {
                        // Refused: sheaf is stopping. Nothing of this datagram was taken.
                        refused.store(true, Ordering::Relaxed);
                        break;
                    }
                    for k in 0..50u64 {
                        *sums.entry(format!("unix.{t}.{}", (round + k) % 97)).or_default() += (k % 3 + 1) as f64;
                    }
                }
                sums
            })
        })
        .collect();
    started.wait();
    sheaf.wait_metric("sheaf_ingested_values_total", &[("protocol", "statsd_unix")], 20_000.0);
    let out = sheaf.stop();
    let mut want: BTreeMap<String, f64> = BTreeMap::from([("ok.hits".into(), 1.0)]);
    for s in senders {
        for (id, v) in s.join().unwrap() {
            *want.entry(id).or_default() += v;
        }
    }
    assert!(refused.load(Ordering::Relaxed), "the senders were refused once sheaf stopped");
    assert!(!path.exists(), "sheaf removes its socket file when it stops");
    let got = totals(&out);
    let sums: BTreeMap<String, f64> =
        got.iter().filter(|((_, agg), _)| agg == "sum").map(|((id, _), v)| (id.clone(), *v)).collect();
    assert_eq!(sums, want, "every datagram a sender was told had been taken");
}

/// `max_series: 100` over two cores: each core holds at most 50 series. Of 300 distinct
/// counters, 100 are created; every value of the others is refused and counted, never
/// aggregated, while the series held keep aggregating every value exactly; each core warns
/// once as it nears its share.
#[test]
fn new_series_past_the_limit_are_refused_and_counted_and_the_others_stay_exact() {
    let sheaf = Sheaf::start("statsd-series-limit", "  max_series: 100\n");
    sheaf.wait_metric("sheaf_series_limit", &[], 100.0);
    assert_eq!(sheaf.metric("sheaf_series_limit", &[("core", "0")]), 50.0);
    assert_eq!(sheaf.metric("sheaf_series_limit", &[]), 100.0);
    let mut tcp = TcpStream::connect(sheaf.statsd).unwrap();
    for round in 1..=3 {
        for i in 0..300 {
            writeln!(tcp, "limited.{i}:{round}|c").unwrap();
        }
        tcp.flush().unwrap();
        sheaf.wait_metric("sheaf_ingested_values_total", &[], f64::from(300 * round));
    }
    drop(tcp);
    sheaf.wait_metric("sheaf_values_applied_total", &[], 300.0);
    sheaf.wait_metric("sheaf_rejected_values_total", &[("reason", "series_limit")], 600.0);
    assert_eq!(sheaf.metric("sheaf_series", &[]), 100.0);
    assert_eq!(sheaf.metric("sheaf_values_applied_total", &[]), 300.0);
    assert_eq!(sheaf.metric("sheaf_rejected_values_total", &[("reason", "series_limit")]), 600.0);
    let stderr = sheaf.stderr();
    let out = sheaf.stop();
    let got = totals(&out);
    assert_eq!(got.len(), 100, "{got:?}");
    for ((id, _), sum) in &got {
        assert!(id.starts_with("limited."), "{id}");
        assert_eq!(*sum, 6.0, "{id}: every value of a series held, 1 + 2 + 3");
    }
    assert_eq!(stderr.matches("90% of this core's share of aggregator.max_series").count(), 2, "{stderr}");
}

fn sheaf_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}
