//! Cluster mode's view of etcd itself: `/status`'s `etcd` field and the
//! `sheaf_cluster_etcd_connected` gauge follow an outage on the leader and on the follower
//! alike, whether etcd hangs (SIGSTOP: connections open, nothing answers) or is gone.

use std::time::Duration;

use crate::cluster::{init_placement, node, wait_for_leader};
use crate::etcd::Etcd;
use crate::harness::{Sheaf, wait_until};

fn etcd_field(node: &Sheaf) -> String {
    node.status()["cluster"]["etcd"].as_str().unwrap_or("").to_string()
}

/// Waits until both nodes report `want` in `/status` and the gauge agrees.
fn wait_for_etcd(what: &str, nodes: [&Sheaf; 2], want: &str) {
    let fields = || nodes.map(etcd_field);
    let gauges = || nodes.map(|n| n.metric("sheaf_cluster_etcd_connected", &[]));
    let gauge = if want == "connected" { 1.0 } else { 0.0 };
    let done = || fields().iter().all(|f| f == want) && gauges().iter().all(|g| *g == gauge);
    wait_until(what, Duration::from_secs(30), done, || format!("etcd fields {:?}, gauges {:?}", fields(), gauges()));
}

#[test]
fn status_says_etcd_is_unreachable_on_leader_and_follower_while_it_hangs_or_is_down() {
    let mut etcd = Etcd::start("health");
    let a = node("eh-a", "node-a", &etcd);
    let b = node("eh-b", "node-b", &etcd);
    init_placement(&a, &[("node-a", &a, "rack-a"), ("node-b", &b, "rack-b")]);
    wait_for_leader(&[&a, &b]);
    wait_for_etcd("both nodes see etcd", [&a, &b], "connected");
    let failures_before = a.metric("sheaf_cluster_etcd_request_failures_total", &[]);

    etcd.pause();
    wait_for_etcd("both nodes see etcd hang", [&a, &b], "unreachable");
    assert!(a.metric("sheaf_cluster_etcd_request_failures_total", &[]) > failures_before);
    etcd.resume();
    wait_for_etcd("both nodes see etcd answer again", [&a, &b], "connected");
    wait_for_leader(&[&a, &b]);

    etcd.stop();
    wait_for_etcd("both nodes see etcd gone", [&a, &b], "unreachable");
    etcd.restart();
    wait_for_etcd("both nodes see etcd back", [&a, &b], "connected");
    wait_for_leader(&[&a, &b]);
    a.stop();
    b.stop();
}
