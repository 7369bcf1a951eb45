//! Cluster mode with a real etcd and two real sheaf processes (RF=2, one shard set): the
//! placement is initialised through the HTTP API, load goes through a real StatsD client
//! socket to one node, and the union of what the nodes' JSON sinks wrote is checked.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::etcd::Etcd;
use crate::harness::{Flushed, Launch, Sheaf, http_post};

const SHARDS: u32 = 8;

fn node(tag: &str, id: &str, etcd: &Etcd) -> Sheaf {
    let top = format!(
        r#"num_shards: {SHARDS}
host_id: "{id}"
cluster:
  etcd: {{endpoints: ["{}"]}}
  election: {{ttl: 2s, recampaign_delay: 500ms}}
  flush_delay: 300ms
"#,
        etcd.endpoint()
    );
    let aggregator = "  default_storage_policies: [\"1s:1h\"]\n  flush_manager: {jitter_enabled: false}\n";
    Sheaf::launch(tag, Launch { aggregator, top: &top, ..Launch::default() })
}

fn init_placement(a: &Sheaf, nodes: &[(&str, &Sheaf, &str)]) {
    let instances: Vec<String> = nodes
        .iter()
        .map(|(id, s, group)| {
            format!(
                r#"{{"id":"{id}","isolation_group":"{group}","zone":"embedded","weight":100,"endpoint":"{}","hostname":"{id}","port":{}}}"#,
                s.m3msg,
                s.m3msg.port()
            )
        })
        .collect();
    let body = format!(r#"{{"num_shards":{SHARDS},"replication_factor":2,"instances":[{}]}}"#, instances.join(","));
    let (code, resp) = http_post(a.admin, "/api/v1/services/m3aggregator/placement/init", &body).unwrap();
    assert_eq!(code, 200, "placement init: {resp}");
}

fn election_state(s: &Sheaf) -> String {
    s.status()["status"]["flushStatus"]["electionState"].as_str().unwrap_or("").to_string()
}

/// Waits until exactly one of the nodes leads and the other follows; returns the leader's index.
fn wait_for_leader(nodes: &[&Sheaf]) -> usize {
    let started = Instant::now();
    loop {
        let states: Vec<String> = nodes.iter().map(|n| election_state(n)).collect();
        if states.iter().filter(|s| *s == "leader").count() == 1
            && states.iter().filter(|s| *s == "follower").count() == nodes.len() - 1
        {
            return states.iter().position(|s| s == "leader").unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no leader/follower pair: {states:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends `rounds` datagrams of counters c0..c49 (+1 each) to `to`, spread over `duration`.
fn send_counters(to: std::net::SocketAddr, rounds: u32, duration: Duration) -> f64 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let pause = duration / rounds;
    for _ in 0..rounds {
        let lines: Vec<String> = (0..50).map(|i| format!("c{i}:1|c")).collect();
        socket.send_to(lines.join("\n").as_bytes(), to).unwrap();
        std::thread::sleep(pause);
    }
    f64::from(rounds)
}

/// (id, window end) → value over all outputs, and how many windows came out twice (with the
/// identical value, or the test fails).
fn union(outputs: &[Vec<Flushed>]) -> (BTreeMap<(String, i64), f64>, usize) {
    let mut windows = BTreeMap::new();
    let mut twice = 0;
    for v in outputs.iter().flatten() {
        if let Some(old) = windows.insert((v.id.clone(), v.time_ns), v.value) {
            assert_eq!(old, v.value, "window {} @ {} emitted twice with different values", v.id, v.time_ns);
            twice += 1;
        }
    }
    (windows, twice)
}

fn sums(windows: &BTreeMap<(String, i64), f64>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for ((id, _), v) in windows {
        *out.entry(id.clone()).or_insert(0.0) += v;
    }
    out
}

#[test]
fn steady_state_the_leader_emits_each_window_once_with_exact_sums() {
    let etcd = Etcd::start("steady");
    let a = node("cl-a", "node-a", &etcd);
    let b = node("cl-b", "node-b", &etcd);
    init_placement(&a, &[("node-a", &a, "rack-a"), ("node-b", &b, "rack-b")]);
    let leader = wait_for_leader(&[&a, &b]);
    // The client talks to one node only; the follower if there is one, to exercise forwarding.
    let target = if leader == 0 { &b } else { &a };
    let sent = send_counters(target.statsd, 40, Duration::from_secs(4));
    std::thread::sleep(Duration::from_secs(3));
    let (follower, leader_node) = if leader == 0 { (b, a) } else { (a, b) };
    let diag = format!("leader: {}\nfollower: {}", leader_node.status(), follower.status());
    let follower_out = follower.stop();
    let leader_out = leader_node.stop();
    assert!(follower_out.is_empty(), "a follower emitted {} values", follower_out.len());
    let (windows, twice) = union(&[leader_out]);
    assert_eq!(twice, 0);
    let sums = sums(&windows);
    assert_eq!(sums.len(), 50, "{sums:?}");
    let short: Vec<_> = sums.iter().filter(|(_, t)| **t != sent).collect();
    assert!(short.is_empty(), "sent {sent} each, got {short:?}\n{diag}");
}

#[test]
fn kill_9_of_the_leader_under_load_loses_nothing() {
    let etcd = Etcd::start("kill9");
    let a = node("k9-a", "node-a", &etcd);
    let b = node("k9-b", "node-b", &etcd);
    init_placement(&a, &[("node-a", &a, "rack-a"), ("node-b", &b, "rack-b")]);
    let leader = wait_for_leader(&[&a, &b]);
    let (leader_node, follower) = if leader == 0 { (a, b) } else { (b, a) };
    let target = follower.statsd;
    let load = std::thread::spawn(move || send_counters(target, 80, Duration::from_secs(8)));
    std::thread::sleep(Duration::from_secs(3));
    let died_out = leader_node.kill9();
    let sent = load.join().unwrap();
    let started = Instant::now();
    while election_state(&follower) != "leader" {
        assert!(started.elapsed() < Duration::from_secs(30), "the follower did not take over");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let survivor_out = follower.stop();
    assert!(!died_out.is_empty() && !survivor_out.is_empty(), "both leaders emitted something");
    let (windows, twice) = union(&[died_out, survivor_out]);
    // Only windows emitted between the dead leader's last persist and its death come twice:
    // at most one flush round (one 1s window per series here).
    assert!(twice <= 50, "{twice} windows emitted twice");
    let sums = sums(&windows);
    assert_eq!(sums.len(), 50);
    for (id, total) in &sums {
        assert_eq!(*total, sent, "{id}");
    }
}

#[test]
fn placement_cli_and_http_api_work_on_the_same_etcd_placement() {
    let etcd = Etcd::start("cli");
    let dir = crate::harness::tempdir::Dir::new("placement-cli");
    let cli = |args: &[&str], body: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sheaf"));
        cmd.args(["placement", "--etcd", &etcd.endpoint()]).args(args);
        if let Some(body) = body {
            let path = dir.0.join("body.json");
            std::fs::write(&path, body).unwrap();
            cmd.arg("--file").arg(path);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let instance = |id: &str, group: &str| {
        format!(
            r#"{{"id":"{id}","isolation_group":"{group}","zone":"embedded","weight":100,"endpoint":"127.0.0.1:1","hostname":"{id}","port":1}}"#
        )
    };
    let same_group = format!(
        r#"{{"num_shards":8,"replication_factor":2,"instances":[{},{}]}}"#,
        instance("a", "x"),
        instance("b", "x")
    );
    let (ok, _, err) = cli(&["init"], Some(&same_group));
    assert!(!ok && err.contains("isolation group"), "{err}");
    let good = format!(
        r#"{{"num_shards":8,"replication_factor":2,"instances":[{},{}]}}"#,
        instance("a", "x"),
        instance("b", "y")
    );
    let (ok, out, err) = cli(&["init"], Some(&good));
    assert!(ok, "{err}");
    assert!(out.contains("\"numShards\": 8") && out.contains("\"shardSetId\": 1"), "{out}");
    let (ok, _, err) = cli(&["init"], Some(&good));
    assert!(!ok && err.contains("already exists"), "{err}");
    // A single instance cannot join a mirrored RF=2 placement: add refuses and says why.
    let (ok, _, err) = cli(&["add"], Some(&format!(r#"{{"instances":[{}]}}"#, instance("c", "x"))));
    assert!(!ok && err.contains("replace"), "{err}");
    // Through a node's HTTP API: the same placement, and refusals as 400 with the reason.
    let top = format!("num_shards: 8\nhost_id: \"a\"\ncluster: {{etcd: {{endpoints: [\"{}\"]}}}}\n", etcd.endpoint());
    let node = Sheaf::launch("placement-http", Launch { top: &top, ..Launch::default() });
    let got = crate::harness::http_get(node.admin, "/api/v1/services/m3aggregator/placement").unwrap();
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(got["placement"]["replicaFactor"], 2);
    assert_eq!(got["placement"]["instances"]["b"]["isolationGroup"], "y");
    let (code, body) =
        http_post(node.admin, "/api/v1/services/m3aggregator/placement/remove", r#"{"instance_ids":["a"]}"#).unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("shard set"), "{body}");
    node.stop();
}

#[test]
fn etcd_stopped_and_restarted_under_load_loses_nothing() {
    let mut etcd = Etcd::start("restart");
    let a = node("er-a", "node-a", &etcd);
    let b = node("er-b", "node-b", &etcd);
    init_placement(&a, &[("node-a", &a, "rack-a"), ("node-b", &b, "rack-b")]);
    let leader = wait_for_leader(&[&a, &b]);
    let target = if leader == 0 { b.statsd } else { a.statsd };
    let load = std::thread::spawn(move || send_counters(target, 100, Duration::from_secs(10)));
    std::thread::sleep(Duration::from_secs(2));
    etcd.stop();
    // Longer than the lease TTL: the leader must stop emitting; aggregation goes on.
    std::thread::sleep(Duration::from_secs(4));
    let states: Vec<String> = [&a, &b].iter().map(|n| election_state(n)).collect();
    assert!(!states.contains(&"leader".to_string()), "a leader without etcd: {states:?}");
    assert!(a.status()["cluster"]["etcd"].is_string());
    etcd.restart();
    let sent = load.join().unwrap();
    wait_for_leader(&[&a, &b]);
    std::thread::sleep(Duration::from_secs(3));
    let (out_a, out_b) = (a.stop(), b.stop());
    let (windows, twice) = union(&[out_a, out_b]);
    // While etcd is down the leader keeps emitting until its lease runs out (TTL 2s) but cannot
    // persist flush times, so up to TTL/resolution + 1 rounds (3 windows per series) may come
    // out again from the next leader, each with the identical value (checked by `union`).
    assert!(twice <= 150, "{twice} windows emitted twice");
    let sums = sums(&windows);
    assert_eq!(sums.len(), 50);
    for (id, total) in &sums {
        assert_eq!(*total, sent, "{id}");
    }
}
