//! The topic sink (an m3msg handler with `topic:`, M3's `dynamicBackend`) with a real etcd,
//! real sheaf nodes and test m3msg consumers (`topic_consumer`): the topics and the consumers'
//! placements are made through the admin API (m3coordinator's topic and placement API), and
//! every value the leader emitted (its JSON sink) must reach the right consumers.
//!
//! The consumer placements here are made with the m3aggregator placement API under other
//! environments (`Cluster-Environment-Name`): sharded placements, so that a SHARED service's
//! instances each own half the shards and a REPLICATED service's two instances (replication
//! factor 2) both own every shard. An m3coordinator placement, as M3 makes it, is not sharded:
//! a SHARED service then gets each message on one of its instances (`the_seed_recipe_…`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use sheaf_shard_core::murmur3::shard_for;

use crate::cluster::{PATIENCE, SHARDS, init_placement, send_counters, wait_for_every_window, wait_for_leader};
use crate::etcd::Etcd;
use crate::harness::{Flushed, Launch, Sheaf, free_port, http_call, wait_until};
use crate::topic_consumer::{Consumer, Received};

/// A cluster node with `handlers` (flush handler lines, indented by 6) next to its JSON sink.
fn node(tag: &str, id: &str, etcd: &Etcd, environment: &str, shards: u32, handlers: &str) -> Sheaf {
    let top = format!(
        r#"num_shards: {shards}
host_id: "{id}"
cluster:
  etcd: {{endpoints: ["{}"], environment: "{environment}"}}
  election: {{ttl: 2s, recampaign_delay: 500ms}}
  flush_delay: 300ms
"#,
        etcd.endpoint()
    );
    let aggregator =
        format!("{handlers}  default_storage_policies: [\"1s:1h\"]\n  flush_manager: {{jitter_enabled: false}}\n");
    Sheaf::launch(tag, Launch { aggregator: &aggregator, top: &top, ..Launch::default() })
}

/// An admin API call that must succeed; its JSON response.
fn call(node: &Sheaf, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Value {
    let (code, _, resp) = http_call(node.admin, method, path, headers, body).unwrap();
    assert_eq!(code, 200, "{method} {path} {headers:?}: {resp}");
    serde_json::from_str(&resp).unwrap_or(Value::Null)
}

fn instance(id: &str, group: &str, endpoint: SocketAddr) -> String {
    format!(
        r#"{{"id":"{id}","isolation_group":"{group}","zone":"embedded","weight":100,"endpoint":"{endpoint}","hostname":"{id}","port":{}}}"#,
        endpoint.port()
    )
}

fn consumer_service(name: &str, environment: &str, kind: &str) -> String {
    format!(
        r#"{{"consumerService":{{"serviceId":{{"name":"{name}","environment":"{environment}","zone":"embedded"}},"consumptionType":"{kind}","messageTtlNanos":"120000000000"}}}}"#
    )
}

/// Shard → endpoints owning it, from a placement API response.
fn owners(placement: &Value) -> BTreeMap<u64, BTreeSet<String>> {
    let mut out: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for inst in placement["placement"]["instances"].as_object().unwrap().values() {
        for s in inst["shards"].as_array().unwrap() {
            out.entry(s["id"].as_u64().unwrap()).or_default().insert(inst["endpoint"].as_str().unwrap().to_string());
        }
    }
    out
}

/// (id, window) → value of the counters c0..c49 the nodes emitted.
fn emitted(nodes: &[&Sheaf]) -> BTreeMap<(String, i64), f64> {
    let all: Vec<Flushed> = nodes.iter().flat_map(|n| n.output_so_far()).collect();
    all.into_iter().filter(|v| v.id.starts_with('c')).map(|v| ((v.id, v.time_ns), v.value)).collect()
}

fn windows(received: &[Received]) -> BTreeMap<(String, i64), f64> {
    received.iter().map(|r| ((r.id.clone(), r.time_ns), r.value)).collect()
}

/// Waits until `consumer` got every window of `want`.
fn wait_for_windows(what: &str, consumer: &Consumer, want: &BTreeMap<(String, i64), f64>) {
    let missing = || -> Vec<(String, i64)> {
        let got = windows(&consumer.received());
        want.keys().filter(|k| !got.contains_key(*k)).cloned().collect()
    };
    wait_until(what, PATIENCE, || missing().is_empty(), || format!("missing {:?}", missing()));
    let got = windows(&consumer.received());
    for (k, v) in want {
        assert_eq!(got[k], *v, "{what}: {k:?} arrived with another value");
    }
}

#[test]
fn topic_sink_routes_shared_by_shard_and_replicated_to_all_and_survives_a_consumer_restart() {
    let etcd = Etcd::start("topic-sink");
    let (mut c1, c2, r1, r2) = (Consumer::start(0), Consumer::start(0), Consumer::start(0), Consumer::start(0));
    let handler = |topic: &str| {
        format!(
            "      - m3msg: {{topic: {topic}, placement_namespace: /placement, placement_is_staged: true, retry_interval: 300ms}}\n"
        )
    };
    let handlers = handler("aggregated_metrics") + &handler("replicated_metrics");
    let a = node("tp-a", "node-a", &etcd, "default_env", SHARDS, &handlers);
    let b = node("tp-b", "node-b", &etcd, "default_env", SHARDS, &handlers);
    init_placement(&a, &[("node-a", &a, "rack-a"), ("node-b", &b, "rack-b")]);
    // The consumers' placements, in their own environments.
    let shared_env = [("Cluster-Environment-Name", "shared-consumers")];
    let body = format!(
        r#"{{"num_shards":{SHARDS},"replication_factor":1,"instances":[{},{}]}}"#,
        instance("c1", "g1", c1.addr),
        instance("c2", "g2", c2.addr)
    );
    let shared_placement = call(&a, "POST", "/api/v1/services/m3aggregator/placement/init", &shared_env, &body);
    let replicated_env = [("Cluster-Environment-Name", "replicated-consumers")];
    let body = format!(
        r#"{{"num_shards":{SHARDS},"replication_factor":2,"instances":[{},{}]}}"#,
        instance("r1", "g1", r1.addr),
        instance("r2", "g2", r2.addr)
    );
    call(&a, "POST", "/api/v1/services/m3aggregator/placement/init", &replicated_env, &body);
    // The topics, through node b's API (any node serves it).
    for (topic, env, kind) in [
        ("aggregated_metrics", "shared-consumers", "SHARED"),
        ("replicated_metrics", "replicated-consumers", "REPLICATED"),
    ] {
        let headers = [("Topic-Name", topic)];
        call(&b, "POST", "/api/v1/topic/init", &headers, &format!(r#"{{"numberOfShards":{SHARDS}}}"#));
        let t = call(&b, "POST", "/api/v1/topic", &headers, &consumer_service("m3aggregator", env, kind));
        assert_eq!(t["topic"]["consumerServices"][0]["consumptionType"], kind);
    }
    let owners = owners(&shared_placement);
    let owner_of = |id: &str| -> String {
        let shard = u64::from(shard_for(id.as_bytes(), SHARDS));
        let o = &owners[&shard];
        assert_eq!(o.len(), 1, "one owner per shard: {o:?}");
        o.iter().next().unwrap().clone()
    };
    assert!((0..50).any(|i| owner_of(&format!("c{i}")) == c1.addr.to_string()));
    assert!((0..50).any(|i| owner_of(&format!("c{i}")) == c2.addr.to_string()));
    let leader = wait_for_leader(&[&a, &b]);
    let target = if leader == 0 { b.statsd } else { a.statsd };
    // Load for 8 s; c1 goes away for 2 s in the middle of it.
    let load = std::thread::spawn(move || send_counters(target, 80, Duration::from_secs(8)));
    std::thread::sleep(Duration::from_secs(3));
    c1.stop();
    std::thread::sleep(Duration::from_secs(2));
    c1.restart();
    let sent = load.join().unwrap();
    wait_for_every_window(&[], &[&a, &b], sent, |_| true);
    let want = emitted(&[&a, &b]);
    let for_c = |addr: SocketAddr| -> BTreeMap<(String, i64), f64> {
        want.iter().filter(|((id, _), _)| owner_of(id) == addr.to_string()).map(|(k, v)| (k.clone(), *v)).collect()
    };
    wait_for_windows("c1 (restarted) got its shards' windows", &c1, &for_c(c1.addr));
    wait_for_windows("c2 got its shards' windows", &c2, &for_c(c2.addr));
    wait_for_windows("r1 got every window", &r1, &want);
    wait_for_windows("r2 got every window", &r2, &want);
    for (name, c) in [("c1", &c1), ("c2", &c2), ("r1", &r1), ("r2", &r2)] {
        for r in c.received() {
            assert_eq!(r.shard, u64::from(shard_for(r.id.as_bytes(), SHARDS)), "{name}: {r:?} has another shard");
            if name.starts_with('c') {
                assert_eq!(owner_of(&r.id), c.addr.to_string(), "{name} got {r:?}, a shard it does not own");
            }
        }
    }
    let emitter = if leader == 0 { &a } else { &b };
    let log = emitter.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains(&c1.addr.to_string()) && (l.contains("connection lost") || l.contains("unreachable"))),
        "the emitting node never saw c1 go away, so the restart proved nothing:\n{log}"
    );
    let c1_label = c1.addr.to_string();
    let labels = [("sink", "m3msg-1"), ("service", "m3aggregator"), ("endpoint", c1_label.as_str())];
    assert!(emitter.metric("sheaf_topic_consumer_acked_messages_total", &labels) > 0.0);
    assert_eq!(emitter.metric("sheaf_topic_consumer_dropped_messages_total", &labels), 0.0);
}

#[test]
fn the_seed_recipe_runs_against_the_admin_api_in_order() {
    const ENV: &str = "namespace/m3db-cluster-name";
    let etcd = Etcd::start("topic-seed");
    let coordinator = Consumer::start(0);
    let handler = "      - m3msg: {topic: aggregated_metrics, retry_interval: 300ms}\n";
    let agg = node("seed-a", "m3aggregator01", &etcd, ENV, 64, handler);
    let env = ("Cluster-Environment-Name", ENV);
    // 1. The aggregator placement (the seed's body; host names become 127.0.0.1 ports).
    let body = format!(
        r#"{{"num_shards": 64, "replication_factor": 2, "instances": [
            {{"id": "m3aggregator01", "isolation_group": "availability-zone-a", "zone": "embedded", "weight": 100,
              "endpoint": "{}", "hostname": "127.0.0.1", "port": {}}},
            {{"id": "m3aggregator02", "isolation_group": "availability-zone-b", "zone": "embedded", "weight": 100,
              "endpoint": "127.0.0.1:{p2}", "hostname": "127.0.0.1", "port": {p2}}}]}}"#,
        agg.m3msg,
        agg.m3msg.port(),
        p2 = free_port()
    );
    let p = call(&agg, "POST", "/api/v1/services/m3aggregator/placement/init", &[env], &body);
    assert_eq!((p["placement"]["numShards"].as_u64(), p["placement"]["isMirrored"].as_bool()), (Some(64), Some(true)));
    // 2. and 3. The ingest topic, consumed REPLICATED by the aggregators.
    let ingest = [env, ("Topic-Name", "aggregator_ingest")];
    let t = call(&agg, "POST", "/api/v1/topic/init", &ingest, r#"{"numberOfShards": 64}"#);
    assert_eq!(t["topic"]["name"], "aggregator_ingest");
    let t = call(
        &agg,
        "POST",
        "/api/v1/topic",
        &ingest,
        &consumer_service("m3aggregator", ENV, "REPLICATED").replace("120000000000", "300000000000"),
    );
    assert_eq!(t["topic"]["consumerServices"][0]["messageTtlNanos"], "300000000000");
    assert_eq!(t["version"], 2);
    // 4. The output topic.
    let out = [env, ("Topic-Name", "aggregated_metrics")];
    let t = call(&agg, "POST", "/api/v1/topic/init", &out, r#"{"numberOfShards": 64}"#);
    assert_eq!(t["topic"]["numberOfShards"], 64);
    // 5. The coordinators' placement: not sharded, replication factor 1, as M3 makes it.
    let body = format!(
        r#"{{"instances": [{{"id": "m3coordinator01", "zone": "embedded", "endpoint": "{}", "hostname": "127.0.0.1", "port": {}}}]}}"#,
        coordinator.addr,
        coordinator.addr.port()
    );
    let p = call(&agg, "POST", "/api/v1/services/m3coordinator/placement/init", &[env], &body);
    assert_eq!(p["placement"]["isSharded"], false);
    assert_eq!(p["placement"]["replicaFactor"], 1);
    assert_eq!(p["placement"]["instances"]["m3coordinator01"]["endpoint"], coordinator.addr.to_string());
    // 6. The coordinators consume the output topic SHARED.
    let t = call(&agg, "POST", "/api/v1/topic", &out, &consumer_service("m3coordinator", ENV, "SHARED"));
    assert_eq!(t["topic"]["consumerServices"][0]["serviceId"]["name"], "m3coordinator");
    // What was made reads back, under that environment only.
    let t = call(&agg, "GET", "/api/v1/topic", &ingest, "");
    assert_eq!(t["topic"]["consumerServices"][0]["consumptionType"], "REPLICATED");
    let (code, _, _) =
        http_call(agg.admin, "GET", "/api/v1/topic", &[("Cluster-Environment-Name", "elsewhere")], "").unwrap();
    assert_eq!(code, 404);
    call(&agg, "GET", "/api/v1/services/m3coordinator/placement", &[env], "");
    // The aggregator leads its shard set and its values reach the coordinator.
    wait_until(
        "the aggregator leads",
        PATIENCE,
        || crate::cluster::election_state(&agg) == "leader",
        || agg.status().to_string(),
    );
    let sent = send_counters(agg.statsd, 20, Duration::from_secs(2));
    wait_for_every_window(&[], &[&agg], sent, |_| true);
    wait_for_windows("the coordinator got every window", &coordinator, &emitted(&[&agg]));
}
