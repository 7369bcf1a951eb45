//! Shard checkpoints through the real binary (`data_dir`): a SIGTERM and a restart inside a
//! window emit every window once with its whole sum; after `kill -9` a restart loses at most
//! the values since the last checkpoint and emits no window twice; damaged files are moved
//! aside and counted; a change of `num_shards` is refused unless the checkpoints are
//! discarded.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::harness::{Flushed, Launch, Sheaf, totals, wait_until};

const TEN_SECONDS: &str = "  default_storage_policies: [\"10s:2d\"]\n  flush_manager: {jitter_enabled: false}\n";
const ONE_SECOND: &str = "  default_storage_policies: [\"1s:1h\"]\n  flush_manager: {jitter_enabled: false}\n";

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

fn launch(tag: &str, aggregator: &str, top: &str) -> Sheaf {
    Sheaf::launch(tag, Launch { aggregator, top, data_dir: true, ..Launch::default() })
}

/// Sends `value` to each of `series` counters, in datagrams of 20 lines.
fn send_counters(to: SocketAddr, series: &[String], value: u64) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for chunk in series.chunks(20) {
        let dgram: String = chunk.iter().map(|id| format!("{id}:{value}|c\n")).collect();
        socket.send_to(dgram.as_bytes(), to).unwrap();
    }
}

fn ingested(sheaf: &Sheaf) -> f64 {
    sheaf.metric("sheaf_ingested_values_total", &[])
}

fn sums(out: &[Flushed]) -> BTreeMap<String, f64> {
    totals(out).into_iter().filter(|((_, agg), _)| agg == "sum").map(|((id, _), v)| (id, v)).collect()
}

#[test]
fn sigterm_and_restart_inside_a_window_emit_each_window_once_with_its_whole_sum() {
    // Start early in a 10s window, so that both runs write the same one.
    let ten = 10_000_000_000i64;
    wait_until("early in a 10s window", Duration::from_secs(15), || (now_ns() % ten) < ten / 5, String::new);
    let window_end = (now_ns() / ten + 1) * ten;
    let sheaf = launch("ckpt-sigterm", TEN_SECONDS, "");
    let series: Vec<String> = (0..200).map(|i| format!("ckpt.hits.{i}")).collect();
    send_counters(sheaf.statsd, &series, 3);
    sheaf.wait_metric("sheaf_ingested_values_total", &[], series.len() as f64);
    let (first, kept) = sheaf.stop_keep();
    assert!(now_ns() < window_end, "the first run outlived the window; the box is too slow for this test");
    assert!(first.iter().all(|v| v.time_ns < window_end), "the open window was emitted at SIGTERM: {first:?}");
    let sheaf = kept.relaunch(|c| c, &[]);
    assert!(now_ns() < window_end, "the restart landed after the window");
    send_counters(sheaf.statsd, &series, 4);
    sheaf.wait_metric("sheaf_ingested_values_total", &[], series.len() as f64);
    let status = sheaf.status();
    assert_eq!(status["checkpoint"]["loaded_series"], series.len(), "{status}");
    let flushed = |s: &Sheaf| s.output_so_far().iter().filter(|v| v.time_ns == window_end).count();
    wait_until("the window flushed", Duration::from_secs(20), || flushed(&sheaf) >= series.len(), String::new);
    let second = sheaf.stop();
    let all: Vec<Flushed> = first.into_iter().chain(second).collect();
    let got = sums(&all);
    for id in &series {
        assert_eq!(got.get(id), Some(&7.0), "{id}: both runs' values, in one window");
    }
}

#[test]
fn kill9_and_restart_lose_at_most_one_interval_and_emit_no_window_twice() {
    let sheaf = launch("ckpt-kill9", ONE_SECOND, "checkpoint: {interval: 2s}\n");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent: Vec<i64> = Vec::new();
    let send = |to: SocketAddr, sent: &mut Vec<i64>| {
        socket.send_to(b"ckpt.kill.hits:1|c\n", to).unwrap();
        sent.push(now_ns());
        std::thread::sleep(Duration::from_millis(20));
    };
    let writes = |s: &Sheaf| s.metric("sheaf_checkpoint_writes_total", &[]);
    // Values for a few windows, then a kill 1.2s after a checkpoint pass: at least one
    // window has been flushed since, and is still in the checkpoint.
    for _ in 0..100 {
        send(sheaf.statsd, &mut sent);
    }
    let before = writes(&sheaf);
    while writes(&sheaf) <= before {
        send(sheaf.statsd, &mut sent);
    }
    let pass = now_ns();
    while now_ns() < pass + 1_200_000_000 {
        send(sheaf.statsd, &mut sent);
    }
    let (first, kept) = sheaf.kill9_keep();
    let killed = now_ns();
    assert!(first.iter().any(|v| v.time_ns > pass), "no window flushed between the checkpoint and the kill");
    let sheaf = kept.relaunch(|c| c, &[]);
    let status = sheaf.status();
    let age = status["checkpoint"]["loaded_age_seconds"].as_f64().expect("loaded_age_seconds");
    assert!((0.0..30.0).contains(&age), "{status}");
    assert!(status["checkpoint"]["loaded_shards"].as_u64() >= Some(1), "{status}");
    for _ in 0..50 {
        send(sheaf.statsd, &mut sent);
    }
    let last = *sent.last().unwrap();
    let last_end = (last / 1_000_000_000 + 1) * 1_000_000_000;
    let caught_up = |s: &Sheaf| s.output_so_far().iter().any(|v| v.time_ns >= last_end);
    wait_until("the last value's window flushed", Duration::from_secs(20), || caught_up(&sheaf), String::new);
    let second = sheaf.stop();
    // `totals` refuses a window emitted twice.
    let all: Vec<Flushed> = first.into_iter().chain(second).collect();
    let emitted = sums(&all).get("ckpt.kill.hits").copied().unwrap_or(0.0);
    let lost = sent.len() as f64 - emitted;
    let since_checkpoint = sent.iter().filter(|t| **t >= pass - 300_000_000 && **t <= killed).count() as f64;
    assert!(lost >= 0.0, "more emitted ({emitted}) than sent ({})", sent.len());
    assert!(lost <= since_checkpoint, "lost {lost} values, more than the {since_checkpoint} since the last checkpoint");
}

#[test]
fn damaged_checkpoints_are_moved_aside_and_counted_and_the_start_survives() {
    let sheaf = launch("ckpt-damaged", TEN_SECONDS, "");
    let series: Vec<String> = (0..300).map(|i| format!("ckpt.damaged.{i}")).collect();
    send_counters(sheaf.statsd, &series, 1);
    sheaf.wait_metric("sheaf_ingested_values_total", &[], series.len() as f64);
    let (_, kept) = sheaf.stop_keep();
    let shards = kept.data_dir().join("shards");
    let mut files: Vec<_> = std::fs::read_dir(&shards).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let bytes = |p: &std::path::Path| std::fs::read(p).unwrap();
    let truncated = bytes(&files[0]);
    std::fs::write(&files[0], &truncated[..truncated.len() / 2]).unwrap();
    let mut corrupt = bytes(&files[1]);
    *corrupt.last_mut().unwrap() ^= 0x55;
    std::fs::write(&files[1], corrupt).unwrap();
    let mut version = bytes(&files[2]);
    version[8] = 99;
    std::fs::write(&files[2], version).unwrap();
    let sheaf = kept.relaunch(|c| c, &[]);
    for reason in ["truncated", "corrupt", "version"] {
        assert_eq!(sheaf.metric("sheaf_checkpoint_load_failures_total", &[("reason", reason)]), 1.0, "{reason}");
    }
    for f in &files[..3] {
        assert!(!f.exists(), "{} not moved aside", f.display());
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let aside = std::fs::read_dir(&shards)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().starts_with(&format!("{name}.corrupt-")));
        assert!(aside, "{name}: no .corrupt-<time> copy");
    }
    let status = sheaf.status();
    assert_eq!(status["checkpoint"]["loaded_shards"].as_u64(), Some(files.len() as u64 - 3), "{status}");
    assert_eq!(status["checkpoint"]["load_failures"]["corrupt"], 1, "{status}");
    assert!(sheaf.stderr().contains("checkpoint not loaded"), "the reason is logged");
    // The node still takes values.
    send_counters(sheaf.statsd, &series[..10], 1);
    wait_until("ingest after the start", Duration::from_secs(10), || ingested(&sheaf) >= 10.0, String::new);
}

#[test]
fn a_num_shards_change_is_refused_unless_the_checkpoints_are_discarded() {
    let sheaf = launch("ckpt-shards", TEN_SECONDS, "num_shards: 64\n");
    send_counters(sheaf.statsd, &["ckpt.shards.a".to_string()], 1);
    sheaf.wait_metric("sheaf_ingested_values_total", &[], 1.0);
    let (_, kept) = sheaf.stop_keep();
    let data_dir = kept.data_dir();
    let shards = |c: String| c.replace("num_shards: 64", "num_shards: 32");
    let Err(refused) = kept.try_relaunch(shards, &[]) else { panic!("a num_shards change was accepted") };
    let (refused, kept) = *refused;
    assert!(refused.contains("num_shards") && refused.contains(&data_dir.display().to_string()), "{refused}");
    assert!(refused.contains("--discard-checkpoints"), "{refused}");
    let sheaf = kept.relaunch(|c| c, &["--discard-checkpoints"]);
    let left = std::fs::read_dir(data_dir.join("shards")).unwrap().count();
    assert_eq!(left, 0, "the old checkpoints were not discarded");
    assert_eq!(sheaf.status()["num_shards"], 32);
}
