//! The bounds on stream ingest (connections per protocol, read timeout, the per-core budget for
//! large partial frames) and the kernel's UDP drops, through the real sockets: what is over
//! a limit is closed and counted, and the valid clients beside it keep their exact results.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::harness::{Launch, Sheaf, totals, wait_until};
use crate::m3msg_ingest::{counter, message, read_acks};

/// Whether sheaf closes `stream` (EOF or reset) within 30 s; bytes it sends first (acks)
/// are skipped.
fn closed_by_sheaf(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => return true,
            Err(_) => return false,
        }
    }
}

fn refused(sheaf: &Sheaf, protocol: &str, reason: &str) -> f64 {
    sheaf.metric("sheaf_refused_connections_total", &[("protocol", protocol), ("reason", reason)])
}

/// Many connections each announce a 4 MiB frame, send most of it and hold: each core keeps
/// at most its budget of such frames (8 MiB here), closes the rest (counted), and its
/// heap stays near the budget; clients beside them get exact results.
#[test]
fn stalled_large_frames_are_held_within_the_per_core_budget() {
    let sheaf = Sheaf::launch(
        "limits-budget",
        Launch { m3msg_server: ", max_buffered_bytes_per_core: 8388608", ..Launch::default() },
    );
    // Warm up every path the valid clients use, then take the baseline.
    let mut valid = TcpStream::connect(sheaf.m3msg).unwrap();
    for seq in 0..100 {
        valid.write_all(&message(seq, counter("beside.the.stall", 1))).unwrap();
    }
    assert_eq!(read_acks(&mut valid, 100).len(), 100);
    sheaf.wait_metric("sheaf_ingested_values_total", &[("protocol", "m3msg")], 100.0);
    let before = sheaf.anon_resident_bytes();

    const STALLED: usize = 32;
    const FRAME: usize = 4 << 20;
    let mut partial = (FRAME as u32).to_be_bytes().to_vec();
    partial.resize(4 + FRAME - 64 * 1024, 0x0a);
    let stalled: Vec<TcpStream> = (0..STALLED)
        .map(|_| {
            let mut c = TcpStream::connect(sheaf.m3msg).unwrap();
            c.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
            // A connection sheaf closes fails the write: that is the point.
            let _ = c.write_all(&partial);
            c
        })
        .collect();
    // Two cores hold at most two such frames each (8 MiB budget, ~3.9 MiB charged apiece).
    let over = (STALLED - 4) as f64;
    sheaf.wait_metric("sheaf_refused_connections_total", &[("protocol", "m3msg"), ("reason", "buffer_budget")], over);
    sheaf.wait_metric("sheaf_rejected_values_total", &[("protocol", "m3msg"), ("reason", "buffer_budget")], over);
    let grown = sheaf.anon_resident_bytes() - before;
    // 16 MiB of budget, the read buffers, slack; unbounded, it would be 32 × 4 MiB.
    assert!(grown < 56.0 * 1048576.0, "resident memory grew by {} MiB", grown / 1048576.0);

    // The valid clients still flow, exactly, while the stalled ones hold.
    for seq in 100..300 {
        valid.write_all(&message(seq, counter("beside.the.stall", 2))).unwrap();
    }
    assert_eq!(read_acks(&mut valid, 200).len(), 200);
    let mut tcp = TcpStream::connect(sheaf.statsd).unwrap();
    for _ in 0..500 {
        tcp.write_all(b"statsd.beside.the.stall:3|c\n").unwrap();
    }
    drop(tcp);
    sheaf.wait_metric("sheaf_ingested_values_total", &[("protocol", "statsd_tcp")], 500.0);
    drop(stalled);
    let got = totals(&sheaf.stop());
    assert_eq!(got[&("beside.the.stall".into(), "sum".into())], 100.0 + 400.0);
    assert_eq!(got[&("statsd.beside.the.stall".into(), "sum".into())], 1500.0);
}

/// StatsD TCP with lines longer than the read buffer (a 4 MiB `max_line_size`): each core
/// holds one 900 KiB partial line within its 1 MiB budget and closes the connections whose
/// lines would go past it (counted, their partial lines not decoded); a client beside them
/// is kept whole.
#[test]
fn long_statsd_lines_are_held_within_the_per_core_budget() {
    let sheaf = Sheaf::launch(
        "limits-statsd-budget",
        Launch {
            statsd: "  max_line_size: 4194304\n",
            statsd_tcp: ", max_buffered_bytes_per_core: 1048576",
            ..Launch::default()
        },
    );
    const STALLED: usize = 6;
    let partial = format!("long.line:1|c|#tag:{}", "x".repeat(900 * 1024));
    let stalled: Vec<TcpStream> = (0..STALLED)
        .map(|_| {
            let mut c = TcpStream::connect(sheaf.statsd).unwrap();
            c.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
            let _ = c.write_all(partial.as_bytes());
            c
        })
        .collect();
    // Two such lines do not fit one core's budget: at most one per core is held.
    let over = (STALLED - 2) as f64;
    sheaf.wait_metric(
        "sheaf_refused_connections_total",
        &[("protocol", "statsd_tcp"), ("reason", "buffer_budget")],
        over,
    );
    sheaf.wait_metric("sheaf_rejected_values_total", &[("protocol", "statsd_tcp"), ("reason", "buffer_budget")], over);
    let mut valid = TcpStream::connect(sheaf.statsd).unwrap();
    valid.write_all(b"short.line:2|c\nshort.line:3|c\n").unwrap();
    drop(valid);
    sheaf.wait_metric("sheaf_ingested_values_total", &[("protocol", "statsd_tcp")], 2.0);
    drop(stalled);
    let out = sheaf.stop();
    let got = totals(&out);
    assert_eq!(got[&("short.line".into(), "sum".into())], 5.0);
    let held = got.iter().filter(|((id, _), _)| id.starts_with("long.line")).map(|(_, v)| v).sum::<f64>();
    assert!(held <= 2.0, "only the lines held (one per core at most) are decoded at close: {held}");
}

/// Past `max_connections` a connection is closed at once and counted, per protocol; the
/// connections served keep working, and a closed one frees its place.
#[test]
fn connections_over_the_limit_are_closed_at_accept_and_counted() {
    let sheaf = Sheaf::launch(
        "limits-connections",
        Launch { m3msg_server: ", max_connections: 3", statsd_tcp: ", max_connections: 2", ..Launch::default() },
    );
    let mut seq = 0;
    let mut send = |c: &mut TcpStream, id: &str| {
        c.write_all(&message(seq, counter(id, 1))).unwrap();
        seq += 1;
        assert_eq!(read_acks(c, 1).len(), 1);
    };
    let mut served: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(sheaf.m3msg).unwrap()).collect();
    for c in &mut served {
        send(c, "within.the.limit");
    }
    let mut over = TcpStream::connect(sheaf.m3msg).unwrap();
    assert!(closed_by_sheaf(&mut over), "a fourth m3msg connection is closed");
    sheaf.wait_metric("sheaf_refused_connections_total", &[("protocol", "m3msg"), ("reason", "connection_limit")], 1.0);

    let mut lines: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(sheaf.statsd).unwrap()).collect();
    sheaf.wait_metric("sheaf_open_connections", &[], 5.0);
    let mut over = TcpStream::connect(sheaf.statsd).unwrap();
    assert!(closed_by_sheaf(&mut over), "a third statsd tcp connection is closed");
    sheaf.wait_metric(
        "sheaf_refused_connections_total",
        &[("protocol", "statsd_tcp"), ("reason", "connection_limit")],
        1.0,
    );
    for c in &mut lines {
        c.write_all(b"tcp.within.the.limit:2|c\n").unwrap();
    }
    drop(lines);

    // A closed connection frees its place for the next one.
    drop(served.pop());
    let open_now = || sheaf.metric("sheaf_open_connections", &[]);
    wait_until("connections close", Duration::from_secs(30), || open_now() == 2.0, || format!("{}", open_now()));
    let mut next = TcpStream::connect(sheaf.m3msg).unwrap();
    send(&mut next, "within.the.limit");
    for c in &mut served {
        send(c, "within.the.limit");
    }
    assert_eq!(refused(&sheaf, "m3msg", "connection_limit"), 1.0);
    sheaf.wait_metric("sheaf_ingested_values_total", &[("protocol", "statsd_tcp")], 2.0);
    let got = totals(&sheaf.stop());
    assert_eq!(got[&("within.the.limit".into(), "sum".into())], 6.0);
    assert_eq!(got[&("tcp.within.the.limit".into(), "sum".into())], 4.0);
}

/// A connection that sends nothing for `read_timeout` is closed and counted, an m3msg frame
/// it had begun is counted as rejected; what it sent whole before is kept.
#[test]
fn silent_connections_are_closed_after_the_read_timeout() {
    let sheaf = Sheaf::launch(
        "limits-read-timeout",
        Launch { m3msg_server: ", read_timeout: 1s", statsd_tcp: ", read_timeout: 1s", ..Launch::default() },
    );
    let started = Instant::now();
    let mut silent = TcpStream::connect(sheaf.m3msg).unwrap();
    let mut stalled = TcpStream::connect(sheaf.m3msg).unwrap();
    // A whole message and half of the next, in one write right after the connect.
    let (whole, cut) = (message(1, counter("before.the.stall", 4)), message(2, counter("never.finished", 5)));
    stalled.write_all(&[&whole[..], &cut[..cut.len() / 2]].concat()).unwrap();
    assert_eq!(read_acks(&mut stalled, 1).len(), 1);
    let mut lines = TcpStream::connect(sheaf.statsd).unwrap();
    lines.write_all(b"tcp.before.the.silence:3|c\n").unwrap();
    for (name, c) in [("silent m3msg", &mut silent), ("stalled m3msg", &mut stalled), ("silent statsd", &mut lines)] {
        assert!(closed_by_sheaf(c), "{name} connection is closed");
    }
    assert!(started.elapsed() >= Duration::from_secs(1), "closed before the timeout");
    sheaf.wait_metric("sheaf_refused_connections_total", &[("protocol", "m3msg"), ("reason", "read_timeout")], 2.0);
    sheaf.wait_metric(
        "sheaf_refused_connections_total",
        &[("protocol", "statsd_tcp"), ("reason", "read_timeout")],
        1.0,
    );
    sheaf.wait_metric("sheaf_rejected_values_total", &[("protocol", "m3msg"), ("reason", "read_timeout")], 1.0);
    assert_eq!(sheaf.metric("sheaf_rejected_values_total", &[("reason", "truncated_at_close")]), 0.0);
    let out = sheaf.stop();
    let got = totals(&out);
    assert_eq!(got[&("before.the.stall".into(), "sum".into())], 4.0);
    assert_eq!(got[&("tcp.before.the.silence".into(), "sum".into())], 3.0);
    assert!(!out.iter().any(|v| v.id == "never.finished"), "{out:?}");
}

/// Datagrams the kernel drops at a full StatsD UDP socket (sheaf stopped with SIGSTOP while
/// they arrive, a small receive buffer) are counted per core; what was taken in is kept.
#[test]
fn udp_datagrams_the_kernel_drops_are_counted() {
    let sheaf =
        Sheaf::launch("limits-udp-drops", Launch { statsd_udp: ", recv_buffer_bytes: 65536", ..Launch::default() });
    assert_eq!(sheaf.metric("sheaf_udp_dropped_datagrams_total", &[]), 0.0);
    const SENT: u64 = 20_000;
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(sheaf.pid(), libc::SIGSTOP) };
    for _ in 0..SENT {
        tx.send_to(b"udp.dropped.or.taken:1|c", sheaf.statsd).unwrap();
    }
    // SAFETY: as above.
    unsafe { libc::kill(sheaf.pid(), libc::SIGCONT) };
    let seen = || {
        let ingested = sheaf.metric("sheaf_ingested_values_total", &[("protocol", "statsd_udp")]);
        (ingested, sheaf.metric("sheaf_udp_dropped_datagrams_total", &[]))
    };
    // Wait until the socket is drained and every drop is counted: the sum reaches what was
    // sent, or (should loopback itself drop some, uncounted by the socket) stops moving.
    let mut last = (seen(), Instant::now());
    wait_until(
        "taken + dropped settles",
        Duration::from_secs(60),
        || {
            let now = seen();
            if now != last.0 {
                last = (now, Instant::now());
            }
            now.0 + now.1 == SENT as f64 || (now.1 > 0.0 && last.1.elapsed() > Duration::from_secs(5))
        },
        || format!("{:?}", seen()),
    );
    let (ingested, dropped) = seen();
    assert!(dropped > 0.0, "no drop counted: {ingested} taken of {SENT}");
    assert!(ingested > 0.0 && ingested + dropped <= SENT as f64, "{ingested} taken, {dropped} dropped of {SENT}");
    let status = sheaf.status();
    let per_core: f64 =
        status["cores"].as_array().unwrap().iter().filter_map(|c| c["udp_dropped_datagrams"].as_f64()).sum();
    assert_eq!(per_core, dropped, "/status agrees with /metrics");
    let got = totals(&sheaf.stop());
    assert_eq!(got[&("udp.dropped.or.taken".into(), "sum".into())], ingested);
}
