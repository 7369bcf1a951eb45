//! Idle shards and synced flush in cluster mode, with a real etcd and two real sheaf
//! processes (RF=2) that keep checkpoints (`data_dir`): the leader publishes its idle shards'
//! `sync_id`s in etcd and the follower, whose copies are identical, records the same ones; a
//! follower restarted with every shard synced can lead at once, long before the leader's
//! flush times cover the window it restarted in.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::cluster::{PATIENCE, SHARDS, init_placement, send_counters, wait_for_leader};
use crate::etcd::Etcd;
use crate::harness::{Launch, Sheaf, http_get, wait_until};

const TEN: i64 = 10_000_000_000;

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// A cluster node with checkpoints, 10s windows and a 1s idle time.
fn node(tag: &str, id: &str, etcd: &Etcd) -> Sheaf {
    let top = format!(
        r#"num_shards: {SHARDS}
host_id: "{id}"
idle_shard_after: 1s
checkpoint: {{interval: 1s}}
cluster:
  etcd: {{endpoints: ["{}"]}}
  election: {{ttl: 2s, recampaign_delay: 500ms}}
  flush_delay: 300ms
"#,
        etcd.endpoint()
    );
    let aggregator = "  default_storage_policies: [\"10s:2d\"]\n  flush_manager: {jitter_enabled: false}\n";
    Sheaf::launch(tag, Launch { aggregator, top: &top, data_dir: true, ..Launch::default() })
}

/// Shard → `sync_id` (None while active) on `node`.
fn sync_ids(node: &Sheaf) -> BTreeMap<u64, Option<String>> {
    let stats: Value = serde_json::from_str(&http_get(node.admin, "/_stats/shards").unwrap()).unwrap();
    let shards = stats["shards"].as_array().cloned().unwrap_or_default();
    shards.iter().map(|s| (s["shard"].as_u64().unwrap(), s["sync_id"].as_str().map(str::to_string))).collect()
}

fn all_synced(ids: &BTreeMap<u64, Option<String>>) -> bool {
    ids.len() == SHARDS as usize && ids.values().all(Option::is_some)
}

fn cluster_view(node: &Sheaf) -> Value {
    node.status()["cluster"].clone()
}

#[test]
fn replicas_share_the_sync_id_and_a_restarted_replica_with_every_shard_synced_can_lead_at_once() {
    let etcd = Etcd::start("sync-ids");
    let a = node("sync-a", "node-a", &etcd);
    let b = node("sync-b", "node-b", &etcd);
    init_placement(&a, &[("node-a", &a, "rack-a"), ("node-b", &b, "rack-b")]);
    let leader = wait_for_leader(&[&a, &b]);
    let (lead, follow) = if leader == 0 { (a, b) } else { (b, a) };
    // Values in every shard (c0..c49 spread over the 8), through the follower.
    send_counters(follow.statsd, 10, Duration::from_secs(1));
    let same = || {
        let (l, f) = (sync_ids(&lead), sync_ids(&follow));
        all_synced(&l) && l == f
    };
    wait_until("both replicas idle with the same sync_ids", PATIENCE, same, || {
        let why = crate::harness::http_post(follow.admin, "/_flush/synced", "").map(|(_, b)| b).unwrap_or_default();
        format!("leader {:?}\nfollower {:?}\n{why}\n{}", sync_ids(&lead), sync_ids(&follow), cluster_view(&follow))
    });
    let before = sync_ids(&follow);
    // Restart the follower early in a 10s window: without its sync_ids it could lead only once
    // the leader's flush times pass that window's end.
    let (_, kept) = follow.stop_keep();
    wait_until("early in a 10s window", Duration::from_secs(15), || now_ns() % TEN < TEN / 5, String::new);
    let window_end = (now_ns() / TEN + 1) * TEN;
    let follow = kept.relaunch(|c| c, &[]);
    let restarted = std::time::Instant::now();
    let all_synced = |view: &Value| {
        let states = view["shardRecovery"].as_array().cloned().unwrap_or_default();
        states.len() == SHARDS as usize && states.iter().all(|s| s["state"] == "synced")
    };
    let ready = || {
        let view = cluster_view(&follow);
        view["canLead"] == true && all_synced(&view)
    };
    wait_until("the restarted replica synced and able to lead", PATIENCE, ready, || cluster_view(&follow).to_string());
    let took = restarted.elapsed();
    assert!(now_ns() < window_end, "ready only after the window ended: nothing shows the sync_ids counted");
    assert_eq!(cluster_view(&follow)["recovery"]["toRecover"], 0, "nothing to fetch from the leader");
    assert_eq!(sync_ids(&follow), before, "the restarted replica kept its sync_ids");
    eprintln!("restarted replica: canLead after {took:?}");
    lead.stop();
    follow.stop();
}

/// A cluster node with checkpoints, `resolution` windows and `flush_delay`, that does not
/// keep what it cannot forward to a peer that is down (so a restarted peer has a gap).
fn node_with(tag: &str, id: &str, etcd: &Etcd, resolution: &str, flush_delay: &str) -> Sheaf {
    let top = format!(
        r#"num_shards: {SHARDS}
host_id: "{id}"
checkpoint: {{interval: 1s}}
cluster:
  etcd: {{endpoints: ["{}"]}}
  election: {{ttl: 2s, recampaign_delay: 500ms}}
  flush_delay: {flush_delay}
  forward_max_buffered_messages: 1
"#,
        etcd.endpoint()
    );
    let aggregator =
        format!("  default_storage_policies: [\"{resolution}:1h\"]\n  flush_manager: {{jitter_enabled: false}}\n");
    Sheaf::launch(tag, Launch { aggregator: &aggregator, top: &top, data_dir: true, ..Launch::default() })
}

#[test]
fn a_follower_restarted_under_load_recovers_from_the_leader_and_a_kill_9_of_the_leader_then_loses_nothing() {
    // 2s windows that the leader holds 5s past their end: when it is killed, the windows of
    // the follower's downtime are not out yet, and only the leader's checkpoint had them whole.
    let etcd = Etcd::start("recover");
    let a = node_with("rec-a", "node-a", &etcd, "2s", "5s");
    let b = node_with("rec-b", "node-b", &etcd, "2s", "5s");
    init_placement(&a, &[("node-a", &a, "rack-a"), ("node-b", &b, "rack-b")]);
    let leader = wait_for_leader(&[&a, &b]);
    let (lead, follow) = if leader == 0 { (a, b) } else { (b, a) };
    let target = lead.statsd;
    let load = std::thread::spawn(move || send_counters(target, 80, Duration::from_secs(8)));
    std::thread::sleep(Duration::from_secs(2));
    // The follower misses what the leader takes in while it is down.
    let (follow_out, kept) = follow.stop_keep();
    std::thread::sleep(Duration::from_secs(1));
    let follow = kept.relaunch(|c| c, &[]);
    let recovered = || {
        let r = &cluster_view(&follow)["recovery"];
        r["toRecover"].as_u64() == Some(u64::from(SHARDS)) && r["recovered"].as_u64() == Some(u64::from(SHARDS))
    };
    wait_until("the restarted follower recovers every shard from the leader", PATIENCE, recovered, || {
        cluster_view(&follow).to_string()
    });
    assert_eq!(cluster_view(&follow)["canLead"], true, "{}", cluster_view(&follow));
    let sent = load.join().unwrap();
    // What the leader took in (and so copied to the follower) is what must survive its kill;
    // a datagram still in its socket when it dies is lost with it, as with any process.
    lead.wait_metric("sheaf_ingested_values_total", &[], sent * 50.0);
    let lead_out = lead.kill9();
    let took_over = || crate::cluster::election_state(&follow) == "leader";
    wait_until("the recovered follower takes over", PATIENCE, took_over, || follow.status().to_string());
    crate::cluster::wait_for_every_window(&[follow_out.clone(), lead_out.clone()], &[&follow], sent, |_| true);
    let survivor_out = follow.stop();
    assert!(!survivor_out.is_empty(), "the survivor emitted the windows the leader still held");
    crate::cluster::assert_each_window_sums_to(&[follow_out, lead_out, survivor_out], sent);
}

#[test]
fn a_replacement_instance_with_no_data_recovers_every_shard_from_its_peer() {
    let etcd = Etcd::start("recover-replace");
    let extra = "  shard_cutover_alignment: 5s\n  shard_cutover_warmup: 1s\n  buffer_after_cutoff: 2s\n";
    let a = crate::cluster::node_with("rr-a", "node-a", &etcd, extra);
    let b = crate::cluster::node_with("rr-b", "node-b", &etcd, extra);
    let c = crate::cluster::node_with("rr-c", "node-c", &etcd, extra);
    init_placement(&a, &[("node-a", &a, "rack-a"), ("node-b", &b, "rack-b")]);
    let (lead, old, old_id, old_group) =
        if wait_for_leader(&[&a, &b]) == 0 { (a, b, "node-b", "rack-b") } else { (b, a, "node-a", "rack-a") };
    let target = lead.statsd;
    let load = std::thread::spawn(move || send_counters(target, 60, Duration::from_secs(6)));
    std::thread::sleep(Duration::from_secs(2));
    // The follower is replaced by an instance that has never seen a value.
    let body = format!(
        r#"{{"leavingInstanceIDs":["{old_id}"],"candidates":[{}]}}"#,
        crate::cluster::instances_json(&[("node-c", &c, old_group)])
    );
    let (code, resp) =
        crate::harness::http_post(lead.admin, "/api/v1/services/m3aggregator/placement/replace", &body).unwrap();
    assert_eq!(code, 200, "placement replace: {resp}");
    let recovered = || {
        let r = &cluster_view(&c)["recovery"];
        r["toRecover"].as_u64() == Some(u64::from(SHARDS)) && r["recovered"].as_u64() == Some(u64::from(SHARDS))
    };
    wait_until("the replacement recovers every shard from the leader", PATIENCE, recovered, || {
        cluster_view(&c).to_string()
    });
    let view = cluster_view(&c);
    assert!(view["shardRecovery"].as_array().unwrap().iter().all(|s| s["state"] == "ready"), "{view}");
    let series: u64 = serde_json::from_str::<Value>(&http_get(c.admin, "/_stats/shards").unwrap()).unwrap()["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["series"].as_u64().unwrap())
        .sum();
    assert_eq!(series, 50, "the leader's series, in the replacement");
    load.join().unwrap();
    for n in [lead, old, c] {
        n.stop();
    }
}
