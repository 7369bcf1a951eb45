//! Idle shards and synced flush through the real binary: a shard with no write for
//! `idle_shard_after` and nothing left to flush gets a `sync_id` (`GET /_stats/shards`), kept
//! across a restart by its checkpoint; `POST /_flush/synced` answers 200 when every shard is
//! idle and 409, naming each shard's reason, while values are pending; a write makes its
//! shard active again and clears its `sync_id`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Launch, Sheaf, http_get, http_post, wait_until};

const TEN_SECONDS: &str = "  default_storage_policies: [\"10s:2d\"]\n  flush_manager: {jitter_enabled: false}\n";
/// For tests that need a value to stay pending while they make several calls: a ten-second
/// window can close (and flush its value) between the send and the synced flush.
const ONE_HOUR: &str = "  default_storage_policies: [\"1h:2d\"]\n  flush_manager: {jitter_enabled: false}\n";

fn send_counters(to: SocketAddr, series: &[String], value: u64) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for chunk in series.chunks(20) {
        let dgram: String = chunk.iter().map(|id| format!("{id}:{value}|c\n")).collect();
        socket.send_to(dgram.as_bytes(), to).unwrap();
    }
}

fn shard_stats(sheaf: &Sheaf) -> Value {
    serde_json::from_str(&http_get(sheaf.admin, "/_stats/shards").unwrap()).unwrap()
}

/// Shard → its `sync_id` (None while active).
fn sync_ids(stats: &Value) -> BTreeMap<u64, Option<String>> {
    let shards = stats["shards"].as_array().expect("shards");
    shards.iter().map(|s| (s["shard"].as_u64().unwrap(), s["sync_id"].as_str().map(str::to_string))).collect()
}

fn all_idle(stats: &Value) -> bool {
    let ids = sync_ids(stats);
    !ids.is_empty() && ids.values().all(Option::is_some)
}

fn synced_flush(sheaf: &Sheaf) -> (u16, Value) {
    let (code, body) = http_post(sheaf.admin, "/_flush/synced", "").unwrap();
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[test]
fn idle_shards_get_a_sync_id_that_a_write_clears_and_a_restart_keeps() {
    let top = "idle_shard_after: 1s\ncheckpoint: {interval: 1s}\n";
    // 10s windows: the write below is still pending when the synced flush asks.
    let sheaf =
        Sheaf::launch("sync-idle", Launch { aggregator: TEN_SECONDS, top, data_dir: true, ..Launch::default() });
    let series: Vec<String> = (0..40).map(|i| format!("sync.hits.{i}")).collect();
    send_counters(sheaf.statsd, &series, 1);
    sheaf.wait_metric("sheaf_ingested_values_total", &[], series.len() as f64);
    let active = shard_stats(&sheaf);
    assert!(active["shards"].as_array().unwrap().len() > 1, "{active}");
    assert!(active["shards"].as_array().unwrap().iter().all(|s| s["state"] == "active"), "{active}");
    wait_until(
        "every shard idle",
        Duration::from_secs(40),
        || all_idle(&shard_stats(&sheaf)),
        || shard_stats(&sheaf).to_string(),
    );
    let idle = shard_stats(&sheaf);
    let ids = sync_ids(&idle);
    assert!(sheaf.metric("sheaf_shards_synced_total", &[]) >= ids.len() as f64);
    for s in idle["shards"].as_array().unwrap() {
        assert_eq!(s["state"], "idle", "{s}");
        assert_eq!(s["windows_held"], 0, "{s}");
        assert!(s["checkpoint"]["generation"].as_u64() >= Some(1), "the marker is written with the checkpoint: {s}");
        assert_eq!(s["sync_id"].as_str().unwrap().len(), 20, "{s}");
    }
    // A synced flush of idle shards: all succeed, with the markers they have.
    let (code, body) = synced_flush(&sheaf);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["_shards"]["failed"], 0, "{body}");
    assert_eq!(body["_shards"]["total"].as_u64(), Some(ids.len() as u64), "{body}");
    for s in body["shards"].as_array().unwrap() {
        assert_eq!(ids[&s["shard"].as_u64().unwrap()].as_deref(), s["sync_id"].as_str(), "{body}");
    }
    // A write: its shard is active again, without a marker; the others keep theirs.
    send_counters(sheaf.statsd, &series[..1], 1);
    sheaf.wait_metric("sheaf_ingested_values_total", &[], series.len() as f64 + 1.0);
    let after = sync_ids(&shard_stats(&sheaf));
    let cleared: Vec<_> = after.iter().filter(|(_, id)| id.is_none()).map(|(s, _)| *s).collect();
    assert_eq!(cleared.len(), 1, "{after:?}");
    for (shard, id) in &after {
        if id.is_some() {
            assert_eq!(id, &ids[shard], "an untouched shard keeps its marker");
        }
    }
    let (code, body) = synced_flush(&sheaf);
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["_shards"]["failed"], 1, "{body}");
    assert_eq!(body["failures"][0]["shard"].as_u64(), Some(cleared[0]), "{body}");
    assert_eq!(body["failures"][0]["reason"], "pending operations", "{body}");
    // A restart loads the markers with the checkpoints (the written shard goes idle again).
    wait_until("every shard idle again", Duration::from_secs(40), || all_idle(&shard_stats(&sheaf)), String::new);
    let before = sync_ids(&shard_stats(&sheaf));
    let (_, kept) = sheaf.stop_keep();
    let sheaf = kept.relaunch(|c| c, &[]);
    assert_eq!(sync_ids(&shard_stats(&sheaf)), before, "the markers come back with the checkpoints");
    let (code, body) = synced_flush(&sheaf);
    assert_eq!(code, 200, "{body}");
    sheaf.stop();
}

#[test]
fn synced_flush_with_pending_values_is_a_conflict_naming_each_shard() {
    // The default idle time (5m): nothing goes idle by itself during the test.
    let sheaf = Sheaf::launch("sync-pending", Launch { aggregator: ONE_HOUR, ..Launch::default() });
    let series: Vec<String> = (0..40).map(|i| format!("sync.pending.{i}")).collect();
    send_counters(sheaf.statsd, &series, 1);
    sheaf.wait_metric("sheaf_ingested_values_total", &[], series.len() as f64);
    let shards = shard_stats(&sheaf)["shards"].as_array().unwrap().len();
    let (code, body) = synced_flush(&sheaf);
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["_shards"]["total"].as_u64(), Some(shards as u64), "{body}");
    assert_eq!(body["_shards"]["failed"].as_u64(), Some(shards as u64), "{body}");
    assert_eq!(body["_shards"]["successful"], 0, "{body}");
    for f in body["failures"].as_array().unwrap() {
        assert_eq!(f["reason"], "pending operations", "{body}");
    }
    assert!(shard_stats(&sheaf)["shards"].as_array().unwrap().iter().all(|s| s["sync_id"].is_null()));
    sheaf.stop();
}

#[test]
fn synced_flush_and_a_shards_checkpoint_need_the_admin_token() {
    let secrets = crate::harness::tempdir::Dir::new("sync-token");
    let token_file = secrets.0.join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let http = format!(", auth_token_file: \"{}\"", token_file.display());
    let sheaf = Sheaf::launch("sync-auth", Launch { aggregator: ONE_HOUR, http: &http, ..Launch::default() });
    send_counters(sheaf.statsd, &["sync.auth".to_string()], 1);
    sheaf.wait_metric("sheaf_ingested_values_total", &[], 1.0);
    let shard = shard_stats(&sheaf)["shards"][0]["shard"].as_u64().unwrap();
    let call = |method: &str, path: &str, token: Option<&str>| {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("Authorization", b.as_str())).collect();
        crate::harness::http_call(sheaf.admin, method, path, &headers, "").unwrap()
    };
    let checkpoint = format!("/api/v1/shards/{shard}/checkpoint");
    assert_eq!(call("POST", "/_flush/synced", None).0, 401);
    assert_eq!(call("GET", &checkpoint, None).0, 401);
    assert_eq!(call("GET", &checkpoint, Some("wrong")).0, 403);
    let file = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(sheaf.admin).unwrap();
        write!(s, "GET {checkpoint} HTTP/1.0\r\nAuthorization: Bearer s3cret\r\n\r\n").unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        out
    };
    assert!(
        file.starts_with(b"HTTP/1.1 200") || file.starts_with(b"HTTP/1.0 200"),
        "{:?}",
        &file[..40.min(file.len())]
    );
    let at = file.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(file[at..].starts_with(b"SHEAFCKP"), "a checkpoint file");
    assert_eq!(call("POST", "/_flush/synced", Some("s3cret")).0, 409, "the value is pending");
    assert_eq!(call("GET", "/_stats/shards", None).0, 200, "stats stay open");
    sheaf.stop();
}
