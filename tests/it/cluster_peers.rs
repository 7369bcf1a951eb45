//! A peer whose endpoint does not resolve (a DNS blip during a placement change, here a
//! `.invalid` name): the values for it wait in the forwarding buffer while the name is
//! retried, what the buffer cannot keep is counted, and `/status` names the peer.

use std::time::Duration;

use serde_json::json;

use crate::cluster::{SHARDS, node_with, send_counters};
use crate::etcd::Etcd;
use crate::harness::{http_post, wait_until};

#[test]
fn values_for_a_peer_whose_endpoint_does_not_resolve_are_buffered_and_counted_and_the_peer_shown() {
    let etcd = Etcd::start("unresolved");
    let a = node_with("unres-a", "node-a", &etcd, "  forward_max_buffered_messages: 100\n");
    let instance = |id: &str, group: &str, endpoint: &str, port: u16| {
        format!(
            r#"{{"id":"{id}","isolation_group":"{group}","zone":"embedded","weight":100,"endpoint":"{endpoint}","hostname":"{id}","port":{port}}}"#
        )
    };
    let body = format!(
        r#"{{"num_shards":{SHARDS},"replication_factor":2,"instances":[{},{}]}}"#,
        instance("node-a", "rack-a", &a.m3msg.to_string(), a.m3msg.port()),
        instance("ghost", "rack-b", "nosuchhost.invalid:1", 1)
    );
    let (code, resp) = http_post(a.admin, "/api/v1/services/m3aggregator/placement/init", &body).unwrap();
    assert_eq!(code, 200, "placement init: {resp}");
    let unresolved = || a.status()["cluster"]["unresolvedPeers"].clone();
    let ghost = json!([{"id": "ghost", "endpoint": "nosuchhost.invalid:1"}]);
    wait_until(
        "/status lists the unresolved peer",
        Duration::from_secs(30),
        || unresolved() == ghost,
        || a.status().to_string(),
    );
    // Every value node-a takes is copied for its replica: 500 copies, at most 100 kept per
    // core in the forwarding buffer, the rest dropped and counted.
    let sent = send_counters(a.statsd, 10, Duration::from_secs(1));
    let copies = sent * 50.0;
    let dropped = || a.metric("sheaf_forward_dropped_values_total", &[("reason", "unresolved")]);
    let kept_at_most = 100.0 * 2.0;
    wait_until(
        "the copies beyond the buffer are counted",
        Duration::from_secs(30),
        || dropped() >= copies - kept_at_most,
        || format!("{} dropped; {}", dropped(), a.status()),
    );
    assert_eq!(a.metric("sheaf_forward_dropped_values_total", &[("reason", "unreachable")]), 0.0);
    let counted: u64 = a.status()["cores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["forward_unresolved_dropped_values"].as_u64().unwrap())
        .sum();
    assert_eq!(counted as f64, dropped());
    assert!(dropped() < copies, "the buffer kept nothing");
    assert_eq!(unresolved(), ghost);
    a.stop();
}
