//! The write rate limits changed at runtime on a running 2-node cluster (real etcd, RF=2):
//! writing the runtime options key changes the limits on both nodes, the cluster-wide
//! new-series limit divided by shards × replicas; both nodes then refuse (and count) what
//! passes the per-series limit; deleting the key brings the config's limits back.

use std::net::UdpSocket;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cluster::{PATIENCE, SHARDS, init_placement, node, wait_for_leader};
use crate::etcd::Etcd;
use crate::harness::{Sheaf, http_post, wait_until};

const KEY: &str = "_kv/default_env/m3aggregator/runtime-options";

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]) } else { '=' });
        }
    }
    out
}

/// Writes (or, with `None`, deletes) the runtime options key through etcd's JSON gateway.
fn set_runtime_options(etcd: &Etcd, value: Option<&str>) {
    let (path, body) = match value {
        Some(v) => {
            ("/v3/kv/put", format!(r#"{{"key":"{}","value":"{}"}}"#, base64(KEY.as_bytes()), base64(v.as_bytes())))
        }
        None => ("/v3/kv/deleterange", format!(r#"{{"key":"{}"}}"#, base64(KEY.as_bytes()))),
    };
    let (code, resp) = http_post(etcd.client, path, &body).unwrap();
    assert_eq!(code, 200, "{path}: {resp}");
}

fn wait_for_limits(nodes: [&Sheaf; 2], values: u64, per_shard: u64, source: &str) {
    let limits = |n: &Sheaf| n.status()["rate_limits"].clone();
    let settled = || {
        nodes.iter().all(|n| {
            let l = limits(n);
            l["values_per_series_per_second"] == values
                && l["new_series_per_shard_per_second"] == per_shard
                && l["source"] == source
        })
    };
    wait_until("both nodes apply the limits", PATIENCE, settled, || {
        format!("{} / {}", limits(nodes[0]), limits(nodes[1]))
    });
}

#[test]
fn limits_changed_through_etcd_take_effect_on_both_nodes() {
    let etcd = Etcd::start("rate-limits");
    let a = node("rate-a", "a", &etcd);
    let b = node("rate-b", "b", &etcd);
    init_placement(&a, &[("a", &a, "g1"), ("b", &b, "g2")]);
    wait_for_leader(&[&a, &b]);
    wait_for_limits([&a, &b], 0, 0, "config");

    // 160 new series per second over 8 shards × 2 replicas: 10 per shard.
    set_runtime_options(&etcd, Some(r#"{"values_per_series_per_second": 7, "new_series_per_second": 160}"#));
    wait_for_limits([&a, &b], 7, 160_u64.div_ceil(u64::from(SHARDS) * 2), "etcd");
    for n in [&a, &b] {
        assert_eq!(n.metric("sheaf_rate_limit_values_per_series_per_second", &[]), 7.0);
    }

    // A burst of 100 values of one series to node a: both replicas apply at most 7 a second.
    let first_second = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to("limited:1|c\n".repeat(100).as_bytes(), a.statsd).unwrap();
    for n in [&a, &b] {
        let settled = || {
            n.metric("sheaf_values_applied_total", &[])
                + n.metric("sheaf_rejected_values_total", &[("reason", "value_rate_limit")])
        };
        wait_until("the burst applied or refused", PATIENCE, || settled() >= 100.0, || format!("{}", settled()));
    }
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() - first_second + 1;
    for n in [&a, &b] {
        let applied = n.metric("sheaf_values_applied_total", &[]);
        let refused = n.metric("sheaf_rejected_values_total", &[("reason", "value_rate_limit")]);
        assert_eq!(applied + refused, 100.0);
        assert!(applied <= 7.0 * seconds as f64, "{applied} applied over {seconds} second(s)");
    }

    // A value that does not parse changes nothing and is counted; deleting the key brings the
    // config's limits (none) back.
    set_runtime_options(&etcd, Some("{\"values_per_series\": 1}"));
    for n in [&a, &b] {
        n.wait_metric("sheaf_runtime_options_invalid_total", &[], 1.0);
    }
    wait_for_limits([&a, &b], 7, 10, "etcd");
    set_runtime_options(&etcd, None);
    wait_for_limits([&a, &b], 0, 0, "config");
}
