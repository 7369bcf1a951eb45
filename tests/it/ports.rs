//! sheaf's ports and clients: a second sheaf started on the ingest ports of a running one (a
//! forgotten port override) is refused at start instead of joining the first one's
//! SO_REUSEPORT groups and taking half of its traffic; an admin client that never finishes
//! its request cannot hold the shutdown, and is disconnected after `http.header_read_timeout`.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::tempdir::Dir;
use crate::harness::{Launch, Sheaf, free_port, http_get};

#[test]
fn a_second_process_on_the_same_ingest_ports_is_refused_at_start() {
    let first = Sheaf::start("ports-first", "");
    let dir = Dir::new("ports-second");
    let config = format!(
        "cores: [0]\npin_cores: false\nhttp: {{listen_address: \"127.0.0.1:{admin}\"}}\n\
         m3msg: {{server: {{listen_address: \"{m3msg}\"}}}}\n\
         statsd:\n  udp: {{listen_address: \"{statsd}\"}}\n  tcp: {{listen_address: \"{statsd}\"}}\n\
         aggregator:\n  flush:\n    handlers:\n      - json: {{path: \"{out}\"}}\n",
        admin = free_port(),
        m3msg = first.m3msg,
        statsd = first.statsd,
        out = dir.0.join("out.jsonl").display(),
    );
    let path = dir.0.join("second.yaml");
    std::fs::write(&path, config).unwrap();
    let mut second = Command::new(env!("CARGO_BIN_EXE_sheaf"))
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            second.kill().unwrap();
            let _ = second.wait();
            panic!("the second sheaf started on ports the first one holds");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(second.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("held by another process"), "{stderr}");
    // The first one still takes everything sent to it.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"still.here:1|c\n", first.statsd).unwrap();
    first.wait_metric("sheaf_ingested_values_total", &[], 1.0);
    let out = first.stop();
    assert_eq!(out.iter().filter(|v| v.id == "still.here").map(|v| v.value).sum::<f64>(), 1.0);
}

#[test]
fn a_half_sent_admin_request_does_not_hold_the_shutdown() {
    let sheaf = Sheaf::start("half-request", "");
    let mut client = TcpStream::connect(sheaf.admin).unwrap();
    client.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"kept:1|c\n", sheaf.statsd).unwrap();
    sheaf.wait_metric("sheaf_ingested_values_total", &[], 1.0);
    // `stop` fails unless sheaf exits 0 within its deadline, with the client still connected.
    let out = sheaf.stop();
    assert_eq!(out.iter().filter(|v| v.id == "kept").map(|v| v.value).sum::<f64>(), 1.0);
    drop(client);
}

#[test]
fn an_admin_client_that_never_finishes_its_headers_is_disconnected() {
    let sheaf = Sheaf::launch("header-timeout", Launch { http: ", header_read_timeout: 1s", ..Launch::default() });
    let mut slow = TcpStream::connect(sheaf.admin).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
    // The server closes it (an empty read, or a reset) once the timeout has passed; a server
    // without the timeout leaves it open and this read times out instead.
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let closed = loop {
        match slow.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue, // a 408 before the close is fine
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break false,
            Err(e) => panic!("reading the slow admin connection: {e}"),
        }
    };
    assert!(closed, "the half-sent request's connection was still open after {:?}", started.elapsed());
    assert!(started.elapsed() >= Duration::from_millis(900), "closed before the timeout: {:?}", started.elapsed());
    // Everyone else is served as before.
    assert!(http_get(sheaf.admin, "/health").is_ok());
    sheaf.stop();
}
