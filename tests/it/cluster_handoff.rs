//! A placement change reaches each node through its own etcd watch, so the new owners of
//! moved shards may hear of them after their peers have started forwarding: those values are
//! held until the placement arrives, then aggregated, not dropped as unowned.

use crate::cluster::{
    PATIENCE, assert_each_window_once_with_exact_sums, core_sum, init_placement, instances_json, node_at, node_with,
    send_counters, wait_for_every_window, wait_for_leader,
};
use crate::etcd::Etcd;
use crate::harness::{Flushed, Sheaf, http_post, wait_until};
use crate::proxy::Proxy;

#[test]
fn values_forwarded_to_a_new_owner_before_its_watch_delivers_the_placement_are_held_not_dropped() {
    let etcd = Etcd::start("late");
    let extra =
        "  shard_cutover_alignment: 5s\n  shard_cutover_warmup: 1s\n  buffer_after_cutoff: 2s\n  unowned_hold: 60s\n";
    let a1 = node_with("late-a1", "a1", &etcd, extra);
    let a2 = node_with("late-a2", "a2", &etcd, extra);
    // The new nodes reach etcd through a proxy the test cuts while the placement changes.
    let proxy = Proxy::start(etcd.client);
    let b1 = node_at("late-b1", "b1", &proxy.addr.to_string(), extra);
    let b2 = node_at("late-b2", "b2", &proxy.addr.to_string(), extra);
    init_placement(&a1, &[("a1", &a1, "rack-a"), ("a2", &a2, "rack-b")]);
    wait_for_leader(&[&a1, &a2]);
    proxy.cut();
    let target = a1.statsd;
    let load = std::thread::spawn(move || send_counters(target, 120, std::time::Duration::from_secs(12)));
    let body = format!(r#"{{"instances":[{}]}}"#, instances_json(&[("b1", &b1, "rack-a"), ("b2", &b2, "rack-b")]));
    let (code, resp) = http_post(a2.admin, "/api/v1/services/m3aggregator/placement", &body).unwrap();
    assert_eq!(code, 200, "placement add: {resp}");
    // a1 forwards the moved shards' values to b1 and b2, which do not know they own them yet.
    let held = || core_sum(&b1, "unowned_held_values") + core_sum(&b2, "unowned_held_values");
    wait_until(
        "the new nodes hold values forwarded ahead of their placement",
        PATIENCE,
        || held() > 0,
        || format!("b1: {}\nb2: {}", b1.status(), b2.status()),
    );
    let b1_sets = b1.status()["cluster"]["shardSets"].clone();
    assert_eq!(b1_sets, serde_json::json!([]), "b1 saw the placement that gives it shards");
    proxy.restore();
    wait_for_leader(&[&b1, &b2]);
    let sent = load.join().unwrap();
    wait_for_every_window(&[], &[&a1, &a2, &b1, &b2], sent, |_| true);
    let unowned: Vec<u64> = [&a1, &a2, &b1, &b2].iter().map(|n| core_sum(n, "unowned_values")).collect();
    let outputs: Vec<Vec<Flushed>> = [a1, a2, b1, b2].into_iter().map(Sheaf::stop).collect();
    assert_eq!(unowned, [0, 0, 0, 0], "values counted as unowned (a1, a2, b1, b2)");
    assert!(!outputs[2].is_empty() || !outputs[3].is_empty(), "the new shard set emitted nothing");
    assert_each_window_once_with_exact_sums(&outputs, sent, "across the hand-off");
}
