//! m3aggregator's own config through the real binary: the documented example passes
//! `check-config` (and `--explain` says what each key became); an M3-form config runs a node
//! that serves its ports, opens no StatsD port and serves `/metrics` on M3's metrics listener;
//! `default_storage_policies: []` aggregates nothing without metadata.

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::tempdir::Dir;
use crate::harness::{Launch, Sheaf, free_port, http_get};

const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/m3aggregator-seed.yml");

fn sheaf() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sheaf"));
    c.env_remove("SHEAF_ADMIN_TOKEN").env_remove("M3AGGREGATOR_HOST_ID");
    c
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_documented_m3aggregator_config_passes_check_config_and_is_explained() {
    let out = sheaf().args(["check-config", SEED]).env("M3AGGREGATOR_HOST_ID", "m3aggregator01:6000").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("m3aggregator config"), "{}", text(&out));

    let out = sheaf()
        .args(["check-config", "--explain", SEED])
        .env("M3AGGREGATOR_HOST_ID", "m3aggregator01:6000")
        .output()
        .unwrap();
    let explained = text(&out);
    for line in [
        "aggregator.entryTTL: 1h",
        "-> aggregator.entry_ttl: 1h",
        "-> cluster.etcd.endpoints: [\"dbnode01:2379\"]",
        "aggregator.flushManager.numWorkersPerCPU: 0.5",
        "ignored: sheaf flushes on the core that owns each shard",
        "-> aggregator.flush.handlers[0].m3msg.topic: aggregated_metrics",
    ] {
        assert!(explained.contains(line), "--explain must print {line:?}:\n{explained}");
    }

    let out = sheaf().args(["check-config", SEED]).output().unwrap();
    assert!(!out.status.success(), "no host id in the environment must be refused");
    assert!(text(&out).contains("M3AGGREGATOR_HOST_ID"), "{}", text(&out));
}

#[test]
fn an_m3_form_config_runs_a_single_node_with_m3s_listeners() {
    let dir = Dir::new("m3-form");
    let (admin, metrics, m3msg) = (free_port(), free_port(), free_port());
    let out = dir.0.join("stdout.jsonl");
    let config = format!(
        "logging:\n  level: info\nmetrics:\n  prometheus:\n    handlerPath: /metrics\n    listenAddress: 127.0.0.1:{metrics}\n\
         m3msg:\n  server:\n    listenAddress: 127.0.0.1:{m3msg}\nhttp:\n  listenAddress: 127.0.0.1:{admin}\n  readTimeout: 60s\n\
         cores: [0, 1]\npin_cores: false\n\
         aggregator:\n  entryTTL: 1h\n  bufferDurationForPastTimedMetric: 4.95s\n  entryPool:\n    size: 4096\n"
    );
    let path = dir.0.join("m3.yml");
    std::fs::write(&path, config).unwrap();
    let mut child = sheaf()
        .args(["run", "--config"])
        .arg(&path)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(dir.0.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(dir.0.join("stderr.log")).unwrap_or_default();
    let admin_addr = ([127, 0, 0, 1], admin).into();
    let started = Instant::now();
    while http_get(admin_addr, "/health").is_err() {
        assert!(child.try_wait().unwrap().is_none(), "sheaf exited: {}", stderr());
        assert!(started.elapsed() < Duration::from_secs(30), "sheaf did not come up: {}", stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics_addr = ([127, 0, 0, 1], metrics).into();
    let body = http_get(metrics_addr, "/metrics").unwrap();
    assert!(body.contains("sheaf_ingested_values_total"), "{body}");
    let status = http_get(metrics_addr, "/status").unwrap_or_default();
    assert!(!status.contains("\"cores\""), "the metrics listener serves /metrics only: {status}");
    assert!(TcpStream::connect(("127.0.0.1", m3msg)).is_ok(), "m3msg listens on M3's address");
    assert!(stderr().contains("read an m3aggregator config"), "{}", stderr());
    assert!(stderr().contains("aggregator.entryPool"), "ignored keys are listed once: {}", stderr());
    let status: serde_json::Value = serde_json::from_str(&http_get(admin_addr, "/status").unwrap()).unwrap();
    assert!(status["ingest"]["statsd_udp"].is_null(), "an M3 config opens no StatsD port: {}", status["ingest"]);
    assert!(status["ingest"]["statsd_tcp"].is_null(), "{}", status["ingest"]);
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

#[test]
fn empty_default_storage_policies_aggregate_nothing_without_metadata() {
    let sheaf = Sheaf::launch(
        "no-default-policies",
        Launch { aggregator: "  default_storage_policies: []\n", ..Launch::default() },
    );
    let mut tcp = TcpStream::connect(sheaf.statsd).unwrap();
    for _ in 0..20 {
        writeln!(tcp, "requests:1|c").unwrap();
    }
    tcp.flush().unwrap();
    drop(tcp);
    sheaf.wait_metric("sheaf_rejected_values_total", &[("reason", "no_storage_policy")], 20.0);
    // Shutdown emits every open window: none may hold these values.
    let out = sheaf.stop();
    assert!(out.is_empty(), "nothing is aggregated without metadata: {out:?}");
}

#[test]
fn the_documented_m3aggregator_config_runs_a_node_unchanged() {
    // The file listens on M3's fixed ports, 6000 to 6002 on every address.
    if let Some(busy) =
        [6000u16, 6001, 6002].into_iter().find(|p| std::net::TcpListener::bind(("0.0.0.0", *p)).is_err())
    {
        eprintln!("skipped: port {busy} is taken on this host, and the seed's config listens on it");
        return;
    }
    let dir = Dir::new("m3-seed");
    let mut child = sheaf()
        .args(["run", "--config", SEED])
        .env("M3AGGREGATOR_HOST_ID", "m3aggregator01:6000")
        .stdout(std::fs::File::create(dir.0.join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.0.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(dir.0.join("stderr.log")).unwrap_or_default();
    let admin = ([127, 0, 0, 1], 6001).into();
    let started = Instant::now();
    while http_get(admin, "/health").is_err() {
        assert!(child.try_wait().unwrap().is_none(), "sheaf exited: {}", stderr());
        assert!(started.elapsed() < Duration::from_secs(30), "sheaf did not come up: {}", stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let status: serde_json::Value = serde_json::from_str(&http_get(admin, "/status").unwrap()).unwrap();
    // Its etcd (dbnode01:2379) does not exist here: the node runs and says so.
    assert_eq!(status["cluster"]["hostId"], "m3aggregator01:6000", "{status}");
    assert_eq!(status["cluster"]["etcd"], "unreachable", "{status}");
    assert!(http_get(([127, 0, 0, 1], 6002).into(), "/metrics").unwrap().contains("sheaf_"), "M3's metrics port");
    assert!(TcpStream::connect(("127.0.0.1", 6000)).is_ok(), "M3's m3msg port");
    assert!(stderr().contains("need no token on a non-loopback address"), "{}", stderr());
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}
