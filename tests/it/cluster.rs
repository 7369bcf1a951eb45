//! Cluster mode with a real etcd and two real sheaf processes (RF=2, one shard set): the
//! placement is initialised through the HTTP API, load goes through a real StatsD client
//! socket to one node, and the union of what the nodes' JSON sinks wrote is checked.
//!
//! Nothing waits for "long enough": each step waits until `/status` or the sinks' output show
//! the condition it needs, with a generous deadline and a message saying what did not happen.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::etcd::Etcd;
use crate::harness::{Flushed, Launch, Sheaf, http_post, wait_until};
use crate::proxy::Proxy;

pub(crate) const SHARDS: u32 = 8;

/// How long a wait for a condition may take before the test fails: generous, for a loaded box.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

pub(crate) fn node(tag: &str, id: &str, etcd: &Etcd) -> Sheaf {
    node_with(tag, id, etcd, "")
}

/// `cluster` is YAML added inside the `cluster:` section (indented by 2).
pub(crate) fn node_with(tag: &str, id: &str, etcd: &Etcd, cluster: &str) -> Sheaf {
    node_at(tag, id, &etcd.endpoint(), cluster)
}

/// A node reaching etcd at `endpoint` (etcd itself, or a proxy in front of it).
pub(crate) fn node_at(tag: &str, id: &str, endpoint: &str, cluster: &str) -> Sheaf {
    node_delayed(tag, id, endpoint, cluster, "300ms")
}

/// A node whose rounds flush a window `flush_delay` after its end at the earliest.
pub(crate) fn node_delayed(tag: &str, id: &str, endpoint: &str, cluster: &str, flush_delay: &str) -> Sheaf {
    node_configured(tag, id, endpoint, cluster, flush_delay, "", "")
}

/// `node_delayed` with `aggregator` lines (indented by 2) added under `aggregator:` and `extra`
/// top-level YAML appended (rules, for one).
pub(crate) fn node_configured(
    tag: &str,
    id: &str,
    endpoint: &str,
    cluster: &str,
    flush_delay: &str,
    aggregator: &str,
    extra: &str,
) -> Sheaf {
    let top = format!(
        r#"num_shards: {SHARDS}
host_id: "{id}"
cluster:
  etcd: {{endpoints: ["{endpoint}"]}}
  election: {{ttl: 2s, recampaign_delay: 500ms}}
  flush_delay: {flush_delay}
{cluster}{extra}"#
    );
    let aggregator =
        format!("  default_storage_policies: [\"1s:1h\"]\n  flush_manager: {{jitter_enabled: false}}\n{aggregator}");
    Sheaf::launch(tag, Launch { aggregator: &aggregator, top: &top, ..Launch::default() })
}

/// The placement API's JSON for these (id, node, isolation group) instances.
pub(crate) fn instances_json(nodes: &[(&str, &Sheaf, &str)]) -> String {
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
    instances.join(",")
}

pub(crate) fn init_placement(a: &Sheaf, nodes: &[(&str, &Sheaf, &str)]) {
    let body = format!(r#"{{"num_shards":{SHARDS},"replication_factor":2,"instances":[{}]}}"#, instances_json(nodes));
    let (code, resp) = http_post(a.admin, "/api/v1/services/m3aggregator/placement/init", &body).unwrap();
    assert_eq!(code, 200, "placement init: {resp}");
}

pub(crate) fn election_state(s: &Sheaf) -> String {
    s.status()["status"]["flushStatus"]["electionState"].as_str().unwrap_or("").to_string()
}

/// Waits until exactly one of the nodes leads and the other follows; returns the leader's index.
pub(crate) fn wait_for_leader(nodes: &[&Sheaf]) -> usize {
    let states = || -> Vec<String> { nodes.iter().map(|n| election_state(n)).collect() };
    let settled = || {
        let states = states();
        states.iter().filter(|s| *s == "leader").count() == 1
            && states.iter().filter(|s| *s == "follower").count() == nodes.len() - 1
    };
    wait_until("a leader/follower pair", PATIENCE, settled, || format!("{:?}", states()));
    states().iter().position(|s| s == "leader").unwrap()
}

/// Waits until `node` has emitted at least `values` values (its JSON sink's lines).
pub(crate) fn wait_for_output(what: &str, node: &Sheaf, values: usize) {
    let emitted = || node.output_so_far().len();
    wait_until(what, PATIENCE, || emitted() >= values, || format!("{} values; {}", emitted(), node.status()));
}

/// Sums per series over what `gone` (outputs of stopped nodes) and `nodes` (so far) emitted.
fn sums_so_far(gone: &[Vec<Flushed>], nodes: &[&Sheaf]) -> BTreeMap<String, f64> {
    let mut outputs = gone.to_vec();
    outputs.extend(nodes.iter().map(|n| n.output_so_far()));
    sums(&union(&outputs).0)
}

/// Whether each of c0..c49 adds up to at least `sent`.
fn covers(sums: &BTreeMap<String, f64>, sent: f64) -> bool {
    (0..50).all(|i| sums.get(&format!("c{i}")).is_some_and(|t| *t >= sent))
}

/// Waits until every window the load went into is out: each series' sum over `gone` and
/// `nodes` reaches `sent` (and `more` holds for the sums).
pub(crate) fn wait_for_every_window(
    gone: &[Vec<Flushed>],
    nodes: &[&Sheaf],
    sent: f64,
    more: impl Fn(&BTreeMap<String, f64>) -> bool,
) {
    let done = || {
        let sums = sums_so_far(gone, nodes);
        covers(&sums, sent) && more(&sums)
    };
    wait_until("every window of the load emitted", PATIENCE, done, || {
        let statuses: Vec<String> = nodes.iter().map(|n| format!("{}\n{}", n.status(), log_tail(n))).collect();
        let last: Vec<Option<i64>> = nodes.iter().map(|n| n.output_so_far().iter().map(|v| v.time_ns).max()).collect();
        format!(
            "sent {sent} each, so far {:?}\nlast windows {last:?}\n{}",
            sums_so_far(gone, nodes),
            statuses.join("\n")
        )
    });
}

/// The last 40 lines of a node's log.
fn log_tail(node: &Sheaf) -> String {
    let log = node.stderr();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `/status`'s flush-time update age on a follower (None: no update seen yet).
fn last_update_ms_ago(node: &Sheaf) -> Option<u64> {
    node.status()["cluster"]["shardSets"][0]["lastFlushTimesUpdateMsAgo"].as_u64()
}

/// Sends `rounds` datagrams of counters c0..c49 (+1 each) to `to`, spread over `duration`.
pub(crate) fn send_counters(to: std::net::SocketAddr, rounds: u32, duration: Duration) -> f64 {
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

/// Over all `outputs`: no window of c0..c49 came out twice, and each adds up to `sent`.
pub(crate) fn assert_each_window_once_with_exact_sums(outputs: &[Vec<Flushed>], sent: f64, across: &str) {
    let (windows, twice) = union(outputs);
    assert_eq!(twice, 0, "windows emitted twice {across}");
    let sums = sums(&windows);
    assert_eq!(sums.len(), 50);
    let wrong: Vec<_> = sums.iter().filter(|(_, t)| **t != sent).collect();
    assert!(wrong.is_empty(), "sent {sent} each, got {wrong:?}");
}

/// Over all `outputs`: a window that came out twice came with the same value (the union
/// checks), and each of c0..c49 adds up to `sent`.
pub(crate) fn assert_each_window_sums_to(outputs: &[Vec<Flushed>], sent: f64) {
    let (windows, _) = union(outputs);
    let sums = sums(&windows);
    assert_eq!(sums.len(), 50);
    let wrong: Vec<_> = sums.iter().filter(|(_, t)| **t != sent).collect();
    assert!(wrong.is_empty(), "sent {sent} each, got {wrong:?}");
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
    // A sample rate that makes the increment fractional (1/0.3): forwarded exactly, not
    // rounded to M3's integer counter.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..10 {
        socket.send_to(b"frac:1|c|@0.3", target.statsd).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let (follower, leader_node) = if leader == 0 { (b, a) } else { (a, b) };
    let frac_out = |sums: &BTreeMap<String, f64>| sums.get("frac").is_some_and(|f| *f >= 10.0 / 0.3 - 1e-6);
    wait_for_every_window(&[], &[&leader_node], sent, frac_out);
    let diag = format!("leader: {}\nfollower: {}", leader_node.status(), follower.status());
    let follower_out = follower.stop();
    let leader_out = leader_node.stop();
    assert!(follower_out.is_empty(), "a follower emitted {} values", follower_out.len());
    let (windows, twice) = union(&[leader_out]);
    assert_eq!(twice, 0);
    let mut sums = sums(&windows);
    let frac = sums.remove("frac").unwrap_or(0.0);
    assert!((frac - 10.0 / 0.3).abs() < 1e-6, "fractional counter: {frac}");
    assert_eq!(sums.len(), 50, "{sums:?}");
    let short: Vec<_> = sums.iter().filter(|(_, t)| **t != sent).collect();
    assert!(short.is_empty(), "sent {sent} each, got {short:?}\n{diag}");
}

/// `flush_delay` 1.5s with 1s windows: every round runs 1.5s into a period, past the end of
/// the window that just ended but before its delay is over. No window may come out before
/// `end + flush_delay`: the leader's output, read every few milliseconds while load runs,
/// never holds a window whose end + 1.5s is still ahead of the clock read after it.
#[test]
fn no_window_is_emitted_before_its_end_plus_the_flush_delay() {
    let etcd = Etcd::start("flush-delay");
    let a = node_delayed("cl-delay-a", "node-a", &etcd.endpoint(), "", "1500ms");
    let b = node_delayed("cl-delay-b", "node-b", &etcd.endpoint(), "", "1500ms");
    init_placement(&a, &[("node-a", &a, "rack-a"), ("node-b", &b, "rack-b")]);
    let leader = if wait_for_leader(&[&a, &b]) == 0 { &a } else { &b };
    let to = leader.statsd;
    let load = std::thread::spawn(move || send_counters(to, 40, Duration::from_secs(4)));
    let delay = 1_500_000_000;
    let mut checked = 0;
    let started = Instant::now();
    while !load.is_finished() || started.elapsed() < Duration::from_secs(8) {
        let out = leader.output_so_far();
        let read_at = wall_clock_nanos();
        for v in &out[checked..] {
            assert!(
                v.time_ns + delay <= read_at,
                "window ending at {} out {} ms after its end, before the flush delay (1.5s)",
                v.time_ns,
                (read_at - v.time_ns) / 1_000_000
            );
        }
        checked = out.len();
        std::thread::sleep(Duration::from_millis(5));
    }
    load.join().unwrap();
    assert!(checked > 0, "the leader emitted nothing while the load ran");
}

fn wall_clock_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
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
    // Killed mid-load, once it has emitted two windows of it.
    wait_for_output("the leader emits under load", &leader_node, 100);
    let died_out = leader_node.kill9();
    let sent = load.join().unwrap();
    let took_over = || election_state(&follower) == "leader";
    wait_until("the follower takes over", Duration::from_secs(30), took_over, || follower.status().to_string());
    wait_for_every_window(std::slice::from_ref(&died_out), &[&follower], sent, |_| true);
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
    wait_for_output("the leader emits under load", if leader == 0 { &a } else { &b }, 50);
    etcd.stop();
    // Once the lease TTL (2s) has passed the leader must stop emitting; aggregation goes on.
    // (A late step-down would also show as more than 150 windows emitted twice, below.)
    let states = || -> Vec<String> { [&a, &b].iter().map(|n| election_state(n)).collect() };
    let no_leader = || !states().contains(&"leader".to_string());
    wait_until("no leader without etcd", Duration::from_secs(10), no_leader, || format!("{:?}", states()));
    let states = states();
    assert!(!states.contains(&"leader".to_string()), "a leader without etcd: {states:?}");
    assert!(a.status()["cluster"]["etcd"].is_string());
    etcd.restart();
    let sent = load.join().unwrap();
    wait_for_leader(&[&a, &b]);
    wait_for_every_window(&[], &[&a, &b], sent, |_| true);
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

#[test]
fn adding_a_shard_set_under_load_hands_shards_over_with_no_window_lost_or_doubled() {
    let etcd = Etcd::start("add");
    // Cutovers on 5s boundaries (1m in production) keep the test short; a cut-off shard stays
    // writable 2s after its cutoff, then closes once flushed.
    let extra = "  shard_cutover_alignment: 5s\n  shard_cutover_warmup: 1s\n  buffer_after_cutoff: 2s\n";
    let a1 = node_with("add-a1", "a1", &etcd, extra);
    let a2 = node_with("add-a2", "a2", &etcd, extra);
    let b1 = node_with("add-b1", "b1", &etcd, extra);
    let b2 = node_with("add-b2", "b2", &etcd, extra);
    init_placement(&a1, &[("a1", &a1, "rack-a"), ("a2", &a2, "rack-b")]);
    let first = wait_for_leader(&[&a1, &a2]);
    // The client keeps talking to a1 only: after the change it forwards the moved shards.
    let target = a1.statsd;
    let load = std::thread::spawn(move || send_counters(target, 150, Duration::from_secs(15)));
    wait_for_output("the first set emits under load", [&a1, &a2][first], 50);
    let body = format!(r#"{{"instances":[{}]}}"#, instances_json(&[("b1", &b1, "rack-a"), ("b2", &b2, "rack-b")]));
    let (code, resp) = http_post(a2.admin, "/api/v1/services/m3aggregator/placement", &body).unwrap();
    assert_eq!(code, 200, "placement add: {resp}");
    let placement: serde_json::Value = serde_json::from_str(&resp).unwrap();
    let instances = &placement["placement"]["instances"];
    let moved: Vec<u64> =
        instances["b1"]["shards"].as_array().unwrap().iter().map(|s| s["id"].as_u64().unwrap()).collect();
    assert!(!moved.is_empty() && moved.len() < SHARDS as usize, "{resp}");
    let cutover: i64 = instances["b1"]["shards"][0]["cutoverNanos"].as_str().unwrap().parse().unwrap();
    let leaving = instances["a1"]["shards"].as_array().unwrap().iter().filter(|s| s["state"] == "LEAVING").count();
    assert_eq!(leaving, moved.len(), "{resp}");
    // The new set stays out of its election until its shards cut over, then elects a leader.
    assert_ne!(election_state(&b1), "leader");
    assert_ne!(election_state(&b2), "leader");
    wait_for_leader(&[&b1, &b2]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    assert!(now >= cutover, "the new shard set led before its cutover");
    let sent = load.join().unwrap();
    // The old set closes the moved shards once cut off (+ buffer_after_cutoff) and flushed.
    let closed = || core_sum(&a1, "shards_closed") + core_sum(&a2, "shards_closed");
    let all_closed = || closed() >= 2 * moved.len() as u64;
    wait_until("the old set closes the moved shards", PATIENCE, all_closed, || format!("{} closed", closed()));
    wait_for_every_window(&[], &[&a1, &a2, &b1, &b2], sent, |_| true);
    let closed = closed();
    let outputs: Vec<Vec<Flushed>> = [a1, a2, b1, b2].into_iter().map(Sheaf::stop).collect();
    let new_set: Vec<&Flushed> = outputs[2].iter().chain(&outputs[3]).collect();
    assert!(!new_set.is_empty(), "the new shard set emitted nothing");
    // The new set emits only windows from its cutover on; the old one only windows before it
    // for the moved shards (checked through the union: nothing twice, every sum exact).
    let early: Vec<_> = new_set.iter().filter(|v| v.time_ns < cutover).collect();
    assert!(early.is_empty(), "the new set emitted windows before its cutover {cutover}: {early:?}");
    assert_each_window_once_with_exact_sums(&outputs, sent, "across the hand-off");
    // Both old replicas closed the shards they handed over, once cut off and flushed.
    assert_eq!(closed, 2 * moved.len() as u64, "shards closed on the old set");
}

/// The sum over a node's cores of one `/status` core field.
pub(crate) fn core_sum(node: &Sheaf, field: &str) -> u64 {
    node.status()["cores"].as_array().unwrap().iter().map(|c| c[field].as_u64().unwrap()).sum()
}

fn forced_flush(node: &Sheaf) -> bool {
    node.status()["cluster"]["shardSets"][0]["forcedFlush"] == true
}

#[test]
fn a_follower_cut_off_from_flush_times_enters_forced_flush_and_its_memory_stays_bounded() {
    let etcd = Etcd::start("forced");
    let extra = "  max_buffer_size: 2s\n  forced_flush_window_size: 500ms\n";
    // The leader reaches etcd directly; the follower through a proxy the test can cut. The
    // follower is kept out of etcd's reach until node-a leads, so that node-a wins the first
    // election however slow the box is (both campaign once the placement exists).
    let a = node_with("ff-a", "node-a", &etcd, extra);
    let proxy = Proxy::start(etcd.client);
    let b = node_at("ff-b", "node-b", &proxy.addr.to_string(), extra);
    proxy.cut();
    init_placement(&a, &[("node-a", &a, "rack-a"), ("node-b", &b, "rack-b")]);
    let a_leads = || election_state(&a) == "leader";
    wait_until("node-a leads", Duration::from_secs(30), a_leads, || a.status().to_string());
    proxy.restore();
    assert_eq!(wait_for_leader(&[&a, &b]), 0);
    let target = a.statsd;
    let load = std::thread::spawn(move || send_counters(target, 160, Duration::from_secs(16)));
    // The follower is cut off once the leader emits the load and the follower gets its times.
    wait_for_output("the leader emits under load", &a, 50);
    let seen = || last_update_ms_ago(&b).is_some();
    wait_until("the follower sees a flush-time update", PATIENCE, seen, || b.status().to_string());
    let rounds_before = core_sum(&b, "forced_flush_rounds");
    proxy.cut();
    let cut = Instant::now();
    wait_until("forced flush mode entered", Duration::from_secs(10), || forced_flush(&b), || b.status().to_string());
    // Isolated for 8s more: without discards the follower would hold 50 series × 1 window per
    // second of isolation (500+ windows). Forced flush keeps ~max_buffer_size worth.
    let mut held = Vec::new();
    while cut.elapsed() < Duration::from_secs(10) {
        held.push(core_sum(&b, "windows_held"));
        assert!(forced_flush(&b), "left forced flush mode while isolated");
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("follower windows held while isolated: {held:?}");
    let peak = *held.iter().max().unwrap();
    assert!(peak <= 50 * 5, "windows held while isolated: {held:?}");
    assert!(core_sum(&b, "forced_flush_rounds") > rounds_before + 5);
    let metrics = crate::harness::http_get(b.admin, "/metrics").unwrap();
    assert!(metrics.contains("sheaf_cluster_forced_flush 1"), "{metrics}");
    assert!(b.status()["cluster"]["forcedFlushEntered"].as_u64().unwrap() >= 1);
    // Back in reach: the next flush-time update ends forced mode.
    proxy.restore();
    wait_until("forced flush mode left", Duration::from_secs(15), || !forced_flush(&b), || b.status().to_string());
    let sent = load.join().unwrap();
    wait_for_every_window(&[], &[&a], sent, |_| true);
    let (out_a, out_b) = (a.stop(), b.stop());
    assert!(out_b.is_empty(), "the follower emitted {} values", out_b.len());
    let (windows, twice) = union(&[out_a]);
    assert_eq!(twice, 0);
    let sums = sums(&windows);
    assert_eq!(sums.len(), 50);
    assert!(sums.values().all(|t| *t == sent), "sent {sent} each, got {sums:?}");
}

#[test]
fn resign_under_load_hands_leadership_over_with_nothing_lost_or_repeated() {
    let etcd = Etcd::start("resign");
    let a = node("rs-a", "node-a", &etcd);
    let b = node("rs-b", "node-b", &etcd);
    init_placement(&a, &[("node-a", &a, "rack-a"), ("node-b", &b, "rack-b")]);
    let leader = wait_for_leader(&[&a, &b]);
    let (old, new) = if leader == 0 { (a, b) } else { (b, a) };
    let target = old.statsd;
    let load = std::thread::spawn(move || send_counters(target, 80, Duration::from_secs(8)));
    // Resigned mid-load, once it has emitted two windows of it.
    wait_for_output("the leader emits under load", &old, 100);
    let (code, body) = http_post(old.admin, "/resign", "").unwrap();
    assert_eq!(code, 200, "{body}");
    // Answered once the node is a follower of the other member.
    assert_eq!(election_state(&old), "follower");
    assert_eq!(election_state(&new), "leader");
    let sent = load.join().unwrap();
    wait_for_every_window(&[], &[&old, &new], sent, |_| true);
    let (out_old, out_new) = (old.stop(), new.stop());
    assert!(!out_old.is_empty() && !out_new.is_empty(), "both leaders emitted something");
    // A graceful hand-over persists what was emitted before letting go: nothing comes twice.
    let (windows, twice) = union(&[out_old, out_new]);
    assert_eq!(twice, 0, "windows emitted twice across a resign");
    let sums = sums(&windows);
    assert_eq!(sums.len(), 50);
    assert!(sums.values().all(|t| *t == sent), "sent {sent} each, got {sums:?}");
}
