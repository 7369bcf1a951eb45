//! A dead sink (stdout is a pipe nobody reads) costs only its own output: the other sink gets
//! every value, the drops are counted, ingest goes on, and shutdown still ends, bounded by
//! `sink_drain_timeout`.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{free_port, http_get, read_output, tempdir::Dir, totals};

fn metric(admin: std::net::SocketAddr, name: &str, label: &str) -> f64 {
    let body = http_get(admin, "/metrics").unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_dead_sink_does_not_cost_the_other_sinks_or_ingest_anything() {
    let dir = Dir::new("dead-sink");
    let (admin, m3msg, statsd) = (free_port(), free_port(), free_port());
    let out = dir.0.join("out.jsonl");
    let config = format!(
        r#"cores: [0, 1]
pin_cores: false
http: {{listen_address: "127.0.0.1:{admin}"}}
m3msg: {{server: {{listen_address: "127.0.0.1:{m3msg}"}}}}
statsd: {{udp: {{listen_address: "127.0.0.1:{statsd}"}}, tcp: {{listen_address: "127.0.0.1:{statsd}"}}}}
aggregator:
  default_storage_policies: ["1s:1h"]
  flush_manager: {{jitter_enabled: false}}
  flush:
    handlers:
      - json: {{path: "-"}}
      - json: {{path: "{out}"}}
data_plane: {{flush_batch_values: 16, sink_queue_batches: 32, sink_enqueue_timeout: 200ms, sink_drain_timeout: 2s}}
"#,
        out = out.display()
    );
    let path = dir.0.join("sheaf.yaml");
    std::fs::write(&path, config).unwrap();
    let stderr = std::fs::File::create(dir.0.join("stderr.log")).unwrap();
    // stdout is a pipe this test never reads: the first sink blocks once it is full.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sheaf"))
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let admin_addr: std::net::SocketAddr = ([127, 0, 0, 1], admin).into();
    let started = Instant::now();
    while http_get(admin_addr, "/health").is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "sheaf did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let series = 3000;
    let mut tcp = TcpStream::connect(("127.0.0.1", statsd)).unwrap();
    for round in 0..3 {
        for i in 0..series {
            writeln!(tcp, "dead.sink.{i}:1|c").unwrap();
        }
        tcp.flush().unwrap();
        // Let a flush round pass between rounds so the dead sink's queue fills up.
        if round < 2 {
            std::thread::sleep(Duration::from_millis(1200));
        }
    }
    drop(tcp);
    let started = Instant::now();
    while metric(admin_addr, "sheaf_ingested_values_total", "") < (3 * series) as f64 {
        assert!(started.elapsed() < Duration::from_secs(30), "ingest stalled behind the dead sink");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    while metric(admin_addr, "sheaf_sink_dropped_values_total", "json-0\",reason=\"queue_full") == 0.0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the dead sink's drops were not counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "shutdown hung on the dead sink");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let got = totals(&read_output(&out));
    for i in 0..series {
        assert_eq!(got.get(&(format!("dead.sink.{i}"), "sum".to_string())).copied(), Some(3.0), "dead.sink.{i}");
    }
}
