//! Rollups across shard sets through a leader's `kill -9` (real etcd, four sheaf processes,
//! RF=2: two shard sets of two replicas). StatsD series are rolled up by a rule into series
//! that mostly live in the other shard set, so each source shard set's leader forwards its
//! windows to every replica of the target shard (FORWARDED_METRIC_WITH_METADATA). The leader
//! of one set is killed under load: its follower, promoted, emits exactly the source and
//! forwarded windows the dead leader had not (by the standard and forwarded flush times the
//! leader persisted), and the targets take each (source shard, window) once. The union of every
//! node's output has each rolled-up window once (or twice with the identical value), with exact
//! sums.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::Duration;

use crate::cluster::{PATIENCE, SHARDS, core_sum, election_state, instances_json, node_configured, wait_for_leader};
use crate::etcd::Etcd;
use crate::harness::{Flushed, Sheaf, http_post, wait_until};

/// `req` by route, 5s windows; the raw series are dropped, so the sinks hold rolled-up windows
/// only. The promoted leader forwards the windows the dead one did not as soon as it takes
/// over, so the lateness bound must cover a fail-over: `L = 5s + max_const_delay` (see
/// [`FORWARDING`]).
const RULES: &str = r#"rules:
  mappingRules:
    - name: drop-raw
      filter: "__name__:req"
      drop: true
  rollupRules:
    - name: req-by-route
      filter: "__name__:req"
      transforms:
        - rollup: {metricName: req_by_route, groupBy: [route], aggregations: [Sum]}
      storagePolicies: [{resolution: 5s, retention: 2d}]
"#;

/// A forwarded window waits 10s more than `r·n` for its sources (M3's `maxConstDelay`, 5m in
/// its sample config). With `L = 5s` alone there is little room on a loaded box: the fail-over
/// takes the 2s election TTL and a campaign, and a debug build's core that stalls for a few
/// seconds holds up its forwards; windows that reached their targets more than 5s after their
/// end were refused as too late and lost.
const FORWARDING: &str = "  forwarding: {max_const_delay: 10s}\n";

const ROUTES: u32 = 4;
const HOSTS: u32 = 16;

fn node(tag: &str, id: &str, etcd: &Etcd) -> Sheaf {
    node_configured(tag, id, &etcd.endpoint(), "", "300ms", FORWARDING, RULES)
}

/// Sends `rounds` datagrams of `req` +1 for every (host, route), spread over `duration`;
/// returns `rounds`.
fn send_requests(to: std::net::SocketAddr, rounds: u32, duration: Duration) -> f64 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let lines: Vec<String> =
        (0..ROUTES).flat_map(|k| (0..HOSTS).map(move |h| format!("req:1|c|#host:h{h},route:r{k}"))).collect();
    let datagram = lines.join("\n");
    for _ in 0..rounds {
        socket.send_to(datagram.as_bytes(), to).unwrap();
        std::thread::sleep(duration / rounds);
    }
    f64::from(rounds)
}

/// Route `k` of a rolled-up series id.
fn route_of(id: &str) -> Option<u32> {
    (0..ROUTES).find(|k| id.starts_with("req_by_route") && id.contains(&format!("route=r{k}")))
}

/// (id, window) → value over every output; a window out twice must carry the identical value.
fn windows(outputs: &[Vec<Flushed>]) -> BTreeMap<(String, i64), f64> {
    let mut windows = BTreeMap::new();
    for v in outputs.iter().flatten() {
        if let Some(old) = windows.insert((v.id.clone(), v.time_ns), v.value) {
            assert_eq!(old, v.value, "rolled-up window {} @ {} out twice with different values", v.id, v.time_ns);
        }
    }
    windows
}

/// Per route, the sum of its rolled-up windows (each counted once).
fn route_sums(outputs: &[Vec<Flushed>]) -> BTreeMap<u32, f64> {
    let mut sums = BTreeMap::new();
    for ((id, _), value) in windows(outputs) {
        let route = route_of(&id).unwrap_or_else(|| panic!("unexpected series {id}"));
        *sums.entry(route).or_insert(0.0) += value;
    }
    sums
}

/// Per window, the sum of each route's rolled-up values (a failure's diagnostics: which
/// windows are short).
fn window_sums(outputs: &[Vec<Flushed>]) -> String {
    let mut sums: BTreeMap<i64, BTreeMap<u32, f64>> = BTreeMap::new();
    for ((id, time), value) in windows(outputs) {
        *sums.entry(time).or_default().entry(route_of(&id).unwrap_or(u32::MAX)).or_insert(0.0) += value;
    }
    sums.iter().map(|(time, routes)| format!("window {time}: {routes:?}")).collect::<Vec<_>>().join("\n")
}

/// One line per core of a node: its role and the counters that say where values went (a
/// failure's diagnostics, short enough to be read whole).
fn where_values_went(name: &str, node: &Sheaf) -> String {
    let status = node.status();
    let cores = status["cores"].as_array().cloned().unwrap_or_default();
    let keys = [
        "/leader",
        "/follower_rounds",
        "/ingested/statsd_udp",
        "/ingested/m3msg",
        "/udp_dropped_datagrams",
        "/unowned_values",
        "/forward_dropped_values",
        "/forward_unresolved_dropped_values",
        "/forwarded_values",
        "/windows_discarded",
        "/rollups/forwarded_samples",
        "/rollups/forwarded_accepted",
        "/rollups/forwarded_duplicate",
        "/rollups/forwarded_too_late",
    ];
    let line = |c: &serde_json::Value| {
        let fields: Vec<String> = keys
            .iter()
            .map(|k| {
                format!("{}={}", k.rsplit('/').next().unwrap_or(k), c.pointer(k).unwrap_or(&serde_json::Value::Null))
            })
            .collect();
        fields.join(" ")
    };
    cores.iter().enumerate().map(|(i, c)| format!("{name} core {i}: {}", line(c))).collect::<Vec<_>>().join("\n")
}

/// Nanoseconds from now to 100ms past the next end of a 5s window.
fn until_just_after_a_window_end() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let (r, past) = (5_000_000_000, 100_000_000);
    (r - (now + r - past) % r) % r
}

/// The shard set of each instance, from the placement API's answer.
fn shard_set_of(placement: &str, id: &str) -> u64 {
    let p: serde_json::Value = serde_json::from_str(placement).unwrap();
    p["placement"]["instances"][id]["shardSetId"].as_u64().unwrap_or_else(|| panic!("no shard set for {id}: {p}"))
}

#[test]
fn kill_9_of_a_source_shard_sets_leader_under_load_loses_no_rolled_up_value_and_counts_none_twice() {
    let etcd = Etcd::start("rollup-kill9");
    let nodes: Vec<Sheaf> = ["n1", "n2", "n3", "n4"].iter().map(|id| node(&format!("rk9-{id}"), id, &etcd)).collect();
    let racks = ["rack-a", "rack-b", "rack-a", "rack-b"];
    let instances: Vec<(&str, &Sheaf, &str)> =
        ["n1", "n2", "n3", "n4"].iter().zip(&nodes).zip(racks).map(|((id, n), rack)| (*id, n, rack)).collect();
    let body =
        format!(r#"{{"num_shards":{SHARDS},"replication_factor":2,"instances":[{}]}}"#, instances_json(&instances));
    let (code, placement) = http_post(nodes[0].admin, "/api/v1/services/m3aggregator/placement/init", &body).unwrap();
    assert_eq!(code, 200, "placement init: {placement}");
    // The shard set of n1 (killed) and the other one.
    let set = |i: usize| shard_set_of(&placement, ["n1", "n2", "n3", "n4"][i]);
    let (killed_set, other_set): (Vec<usize>, Vec<usize>) = (0..4).partition(|&i| set(i) == set(0));
    assert_eq!((killed_set.len(), other_set.len()), (2, 2), "two shard sets of two: {placement}");
    let killed_leader = killed_set[wait_for_leader(&[&nodes[killed_set[0]], &nodes[killed_set[1]]])];
    let survivor = killed_set.iter().copied().find(|&i| i != killed_leader).unwrap();
    let other_leader = other_set[wait_for_leader(&[&nodes[other_set[0]], &nodes[other_set[1]]])];
    let client_to = other_set.iter().copied().find(|&i| i != other_leader).unwrap();

    // The client talks to the other set's follower only: every source value reaches both
    // replicas of its shard set, so the survivor holds what the killed leader held.
    let to = nodes[client_to].statsd;
    let load = std::thread::spawn(move || send_requests(to, 120, Duration::from_secs(12)));
    // Killed once it has forwarded rolled-up windows under load (a flush of 5s windows).
    let forwarded = |i: usize| -> u64 {
        let cores = nodes[i].status()["cores"].as_array().cloned().unwrap_or_default();
        cores.iter().filter_map(|c| c.pointer("/rollups/forwarded_samples")?.as_u64()).sum()
    };
    wait_until(
        "the leader forwards rolled-up windows",
        PATIENCE,
        || forwarded(killed_leader) > 0,
        || nodes[killed_leader].status().to_string(),
    );
    // Then killed just after the next window ends, before its round (`flush_delay` 300ms):
    // the survivor must flush and forward that window, up to a fail-over later.
    std::thread::sleep(Duration::from_nanos(until_just_after_a_window_end()));
    let mut nodes: Vec<Option<Sheaf>> = nodes.into_iter().map(Some).collect();
    let dead_out = nodes[killed_leader].take().unwrap().kill9();
    let live = |nodes: &[Option<Sheaf>]| -> Vec<Vec<Flushed>> {
        nodes.iter().flatten().map(Sheaf::output_so_far).chain(std::iter::once(dead_out.clone())).collect()
    };
    let survivor_node = nodes[survivor].as_ref().unwrap();
    let took_over = || election_state(survivor_node) == "leader";
    wait_until("the follower takes over", PATIENCE, took_over, || survivor_node.status().to_string());
    let sent = load.join().unwrap() * f64::from(HOSTS);
    let complete = || {
        let sums = route_sums(&live(&nodes));
        (0..ROUTES).all(|k| sums.get(&k).is_some_and(|s| *s >= sent))
    };
    wait_until("every rolled-up window is out", PATIENCE, complete, || {
        let statuses: Vec<String> = (nodes.iter().enumerate())
            .filter_map(|(i, n)| Some(where_values_went(&format!("n{}", i + 1), n.as_ref()?)))
            .collect();
        let so_far = route_sums(&live(&nodes));
        format!("sent {sent} per route, so far {so_far:?}\n{}\n{}", window_sums(&live(&nodes)), statuses.join("\n"))
    });
    // The promoted survivor forwarded rolled-up windows itself: sources of its set whose
    // rolled-up series the other set owns.
    let survivor_node = nodes[survivor].as_ref().unwrap();
    assert!(core_sum(survivor_node, "forwarded_values") > 0, "{}", survivor_node.status());
    let outputs: Vec<Vec<Flushed>> =
        nodes.into_iter().flatten().map(Sheaf::stop).chain(std::iter::once(dead_out)).collect();
    let sums = route_sums(&outputs);
    let want: BTreeMap<u32, f64> = (0..ROUTES).map(|k| (k, sent)).collect();
    assert_eq!(sums, want, "per route, the rolled-up sums over every node's output");
}
