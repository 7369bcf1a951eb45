//! Tests of the config: defaults, refusals that name the key, the tuning examples, a full file.

use std::path::Path;
use std::time::Duration;

use super::*;

#[test]
fn empty_config_is_the_embedded_default() {
    let c = Config::parse("").unwrap();
    assert_eq!(c.num_shards, 64);
    assert_eq!(c.http.listen_address.to_string(), "127.0.0.1:6001");
    assert_eq!(c.m3msg.server.listen_address.to_string(), "127.0.0.1:6000");
    assert_eq!(c.statsd.udp.listen_address.to_string(), "127.0.0.1:8125");
    assert_eq!(c.storage_policies().unwrap()[0].to_string(), "10s:2d");
}

#[test]
fn unknown_keys_and_bad_values_name_the_key() {
    let e = Config::parse("num_shardz: 3\n").unwrap_err().to_string();
    assert!(e.contains("num_shardz"), "{e}");
    let e = Config::parse("aggregator:\n  default_storage_policies: [\"10s\"]\n").unwrap_err().to_string();
    assert!(e.contains("aggregator.default_storage_policies[0]"), "{e}");
    let e = Config::parse("aggregator:\n  entry_ttl: 5parsecs\n").unwrap_err().to_string();
    assert!(e.contains("entry_ttl") || e.contains("5parsecs"), "{e}");
    let e = Config::parse("cores: some\n").unwrap_err().to_string();
    assert!(e.contains("all"), "{e}");
    let e = Config::parse("aggregator:\n  flush:\n    handlers:\n      - m3msg: {}\n").unwrap_err().to_string();
    assert!(e.contains("aggregator.flush.handlers[0].m3msg.endpoint"), "{e}");
    let long = "x".repeat(108);
    for bad in ["\"\"", long.as_str()] {
        let e = Config::parse(&format!("statsd: {{unix: {{path: {bad}}}}}\n")).unwrap_err().to_string();
        assert!(e.contains("statsd.unix.path"), "{e}");
    }
}

#[test]
fn the_tuning_examples_parse() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tuning");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 4);
}

#[test]
fn a_full_config_parses() {
    let text = r#"
cores: [0, 1]
pin_cores: false
num_shards: 16
http: {listen_address: "127.0.0.1:7001"}
m3msg: {server: {listen_address: "127.0.0.1:7000", max_frame_size: 1048576, ack_interval: 100ms}}
statsd: {udp: {listen_address: "127.0.0.1:9125", small_read_pause: 0s}, tcp: {enabled: false}, max_line_size: 1024}
aggregator:
  default_storage_policies: ["10s:2d", "1m:40d"]
  flush_manager:
    max_jitters: [{flush_interval: 10s, max_jitter_percent: 0.5}]
  flush:
    handlers:
      - json: {path: "-"}
      - m3msg: {endpoint: "127.0.0.1:9000", message_ttl: 5m}
"#;
    let c = Config::parse(text).unwrap();
    assert_eq!(c.cores, Cores::List(vec![0, 1]));
    assert_eq!(c.aggregator.flush.handlers.len(), 2);
    assert!(!c.statsd.tcp.enabled);
    assert_eq!(c.statsd.udp.small_read_pause.0, Duration::ZERO);
    assert_eq!(Config::parse("").unwrap().statsd.udp.small_read_pause.0, Duration::from_millis(20));
    assert_eq!(Config::parse("").unwrap().statsd.unix.path, None, "no Unix socket unless asked for");
    let unix = Config::parse("statsd: {unix: {path: /run/sheaf/statsd.sock, small_read_pause: 1ms}}\n").unwrap();
    assert_eq!(unix.statsd.unix.path.as_deref(), Some(Path::new("/run/sheaf/statsd.sock")));
    assert_eq!(unix.statsd.unix.small_read_pause.0, Duration::from_millis(1));
}

#[test]
fn stream_connection_limits_have_defaults_and_a_budget_below_a_frame_is_refused() {
    let c = Config::parse("").unwrap();
    assert_eq!((c.m3msg.server.max_connections, c.statsd.tcp.max_connections), (4096, 4096));
    assert_eq!(c.m3msg.server.read_timeout.0, Duration::from_secs(120));
    assert_eq!(c.statsd.tcp.read_timeout.0, Duration::from_secs(120));
    assert_eq!(c.m3msg.server.max_buffered_bytes_per_core, 64 << 20);
    assert_eq!(c.statsd.tcp.max_buffered_bytes_per_core, 64 << 20);
    let e = Config::parse("m3msg: {server: {max_buffered_bytes_per_core: 1048576}}\n").unwrap_err().to_string();
    assert!(e.contains("m3msg.server.max_buffered_bytes_per_core"), "{e}");
    let e = Config::parse("statsd: {tcp: {max_connections: 0}}\n").unwrap_err().to_string();
    assert!(e.contains("statsd.tcp.max_connections"), "{e}");
}

#[test]
fn credentials_that_go_together_are_checked() {
    let cluster = "host_id: a\ncluster:\n  etcd:\n";
    let e = Config::parse(&format!("{cluster}    password_file: /p\n")).unwrap_err().to_string();
    assert!(e.contains("cluster.etcd.password_file") && e.contains("username"), "{e}");
    let e = Config::parse(&format!("{cluster}    tls: {{ca_file: /ca, cert_file: /c}}\n")).unwrap_err().to_string();
    assert!(e.contains("cluster.etcd.tls"), "{e}");
    Config::parse(&format!("{cluster}    username: u\n    tls: {{ca_file: /ca, cert_file: /c, key_file: /k}}\n"))
        .unwrap();
    let e = Config::parse("http: {tls: {cert_file: /c}}\n").unwrap_err().to_string();
    assert!(e.contains("key_file"), "{e}");
}

#[test]
fn an_exposed_admin_port_needs_a_token_or_an_explicit_opt_out() {
    let exposed = Config::parse("http: {listen_address: \"0.0.0.0:6001\"}\n").unwrap().http;
    let e = exposed.check_exposure(false).unwrap_err().to_string();
    assert!(e.contains("http.listen_address") && e.contains("http.allow_unauthenticated"), "{e}");
    exposed.check_exposure(true).unwrap();
    Config::parse("http: {listen_address: \"0.0.0.0:6001\", allow_unauthenticated: true}\n")
        .unwrap()
        .http
        .check_exposure(false)
        .unwrap();
    Config::default().http.check_exposure(false).unwrap();
    Config::parse("http: {listen_address: \"[::1]:6001\"}\n").unwrap().http.check_exposure(false).unwrap();
}
