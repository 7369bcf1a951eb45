//! Rollups across nodes (real etcd, two sheaf processes, RF=1 so each node owns half the
//! shards): m3msg sources sent to one node reach their owners with their rollup op, and each
//! owner's flush forwards its windows (FORWARDED_METRIC_WITH_METADATA) to the node owning the
//! rolled-up series; the union of both sinks has each rolled-up window once, with exact sums.

use crate::cluster::{PATIENCE, SHARDS, core_sum, election_state, instances_json, node};
use crate::etcd::Etcd;
use crate::harness::{Flushed, http_post, wait_until};
use crate::m3msg_rollups::{by_route_sum, by_route_want, send_requests_by_route};

/// `by_route_sum` over the union of the nodes' outputs.
fn route_sum(outputs: &[Vec<Flushed>], k: i32) -> f64 {
    let all: Vec<Flushed> = outputs.iter().flatten().cloned().collect();
    by_route_sum(&all, k)
}

#[test]
fn a_rollup_whose_sources_and_target_live_on_different_nodes_has_exact_sums() {
    let etcd = Etcd::start("rollups");
    let a = node("rollup-a", "node-a", &etcd);
    let b = node("rollup-b", "node-b", &etcd);
    let body = format!(
        r#"{{"num_shards":{SHARDS},"replication_factor":1,"instances":[{}]}}"#,
        instances_json(&[("node-a", &a, "rack-a"), ("node-b", &b, "rack-b")])
    );
    let (code, resp) = http_post(a.admin, "/api/v1/services/m3aggregator/placement/init", &body).unwrap();
    assert_eq!(code, 200, "placement init: {resp}");
    let leading = || election_state(&a) == "leader" && election_state(&b) == "leader";
    wait_until("each node leads its shard set", PATIENCE, leading, || format!("{} / {}", a.status(), b.status()));

    send_requests_by_route(a.m3msg);
    let outputs = || vec![a.output_so_far(), b.output_so_far()];
    let complete = || (0..3).all(|k| route_sum(&outputs(), k) >= by_route_want(k));
    wait_until("every rolled-up window is out", PATIENCE, complete, || {
        format!("{:?}\n{}\n{}", (0..3).map(|k| route_sum(&outputs(), k)).collect::<Vec<_>>(), a.status(), b.status())
    });
    // Some sources were forwarded from node a to node b, which owns their shards.
    assert!(core_sum(&a, "forwarded_values") > 0, "{}", a.status());
    let (out_a, out_b) = (a.stop(), b.stop());
    let both = [out_a, out_b];
    for k in 0..3 {
        assert_eq!(route_sum(&both, k), by_route_want(k), "route r{k}: {both:?}");
    }
    assert!(both.iter().flatten().all(|v| !v.id.contains("host=")), "a source series was emitted: {both:?}");
}
