//! Replacing a shard set's leader under load: at the cutoff the leaving leader stops
//! emitting, persists the flush times of what it emitted, and only then leaves the election,
//! so the member that takes over repeats no window.

use std::time::Duration;

use crate::cluster::{
    PATIENCE, assert_each_window_once_with_exact_sums, election_state, init_placement, instances_json, node_with,
    send_counters, wait_for_every_window, wait_for_leader, wait_for_output,
};
use crate::etcd::Etcd;
use crate::harness::{Flushed, Sheaf, http_post, wait_until};

#[test]
fn replacing_the_leader_under_load_hands_over_at_the_cutoff_with_no_window_repeated() {
    let etcd = Etcd::start("replace");
    let extra = "  shard_cutover_alignment: 5s\n  shard_cutover_warmup: 1s\n  buffer_after_cutoff: 2s\n";
    let a = node_with("rep-a", "node-a", &etcd, extra);
    let b = node_with("rep-b", "node-b", &etcd, extra);
    let c = node_with("rep-c", "node-c", &etcd, extra);
    init_placement(&a, &[("node-a", &a, "rack-a"), ("node-b", &b, "rack-b")]);
    let (old, stays, old_id, old_group) =
        if wait_for_leader(&[&a, &b]) == 0 { (a, b, "node-a", "rack-a") } else { (b, a, "node-b", "rack-b") };
    // The client talks to the member that stays: it forwards copies to the others.
    let target = stays.statsd;
    let load = std::thread::spawn(move || send_counters(target, 150, Duration::from_secs(15)));
    wait_for_output("the leader emits under load", &old, 100);
    let body = format!(
        r#"{{"leavingInstanceIDs":["{old_id}"],"candidates":[{}]}}"#,
        instances_json(&[("node-c", &c, old_group)])
    );
    let (code, resp) = http_post(stays.admin, "/api/v1/services/m3aggregator/placement/replace", &body).unwrap();
    assert_eq!(code, 200, "placement replace: {resp}");
    // At the cutoff the old leader leaves; another member of the set takes over.
    let taken_over =
        || election_state(&old) != "leader" && (election_state(&stays) == "leader" || election_state(&c) == "leader");
    wait_until("another member leads after the cutoff", PATIENCE, taken_over, || {
        format!("old: {}\nstays: {}\nnew: {}", old.status(), stays.status(), c.status())
    });
    let sent = load.join().unwrap();
    wait_for_every_window(&[], &[&old, &stays, &c], sent, |_| true);
    let outputs: Vec<Vec<Flushed>> = [old, stays, c].into_iter().map(Sheaf::stop).collect();
    assert!(!outputs[0].is_empty(), "the old leader emitted nothing");
    assert_each_window_once_with_exact_sums(&outputs, sent, "across the replace");
}
