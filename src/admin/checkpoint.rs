//! Shard checkpoints as the admin API and the start log show them: the `checkpoint` object of
//! `/status` and the `sheaf_checkpoint_*` metrics, from the cores' published
//! `CheckpointStats`. Runs on the control thread; reads snapshots only.

use serde_json::{Value, json};
use sheaf_shard_runtime::{CHECKPOINT_LOAD_FAILURE_REASONS, CheckpointStats, CoreStats};

use super::exposition::Out;
use super::state::AdminState;

fn age_seconds(at: i64) -> Option<f64> {
    age_at(at, sheaf_shard_core::time::now_nanos())
}

/// How old something written at `at` was at `now` (None when never written).
fn age_at(at: i64, now: i64) -> Option<f64> {
    (at > 0).then(|| (now - at).max(0) as f64 / 1e9)
}

/// How old the oldest checkpoint loaded was when it was loaded.
fn loaded_age(stats: &[&CheckpointStats]) -> Option<f64> {
    let loaded_at = stats.iter().map(|s| s.loaded_at).max().unwrap_or(0);
    age_at(oldest(stats, |s| s.loaded_written_at), loaded_at)
}

/// The oldest of the cores' non-zero `at` (0: none).
fn oldest(stats: &[&CheckpointStats], at: impl Fn(&CheckpointStats) -> i64) -> i64 {
    stats.iter().map(|s| at(s)).filter(|t| *t > 0).min().unwrap_or(0)
}

/// When every core has written a whole pass: the oldest of them (0: some core has not).
fn last_written(stats: &[&CheckpointStats]) -> i64 {
    if stats.iter().any(|s| s.last_written_at == 0) { 0 } else { oldest(stats, |s| s.last_written_at) }
}

/// Logs what the cores loaded at start (the age of the oldest checkpoint loaded).
pub fn log_checkpoint_load(loaded: &[CheckpointStats]) {
    let all: Vec<&CheckpointStats> = loaded.iter().collect();
    let failures: u64 = loaded.iter().flat_map(|s| s.load_failures).sum();
    tracing::info!(
        shards = loaded.iter().map(|s| s.loaded_shards).sum::<u64>(),
        series = loaded.iter().map(|s| s.loaded_series).sum::<u64>(),
        generation = loaded.iter().map(|s| s.loaded_generation).max().unwrap_or(0),
        loaded_age_seconds = loaded_age(&all),
        failures,
        seconds = loaded.iter().map(|s| s.load_ns).max().unwrap_or(0) as f64 / 1e9,
        "shard checkpoints loaded"
    );
}

/// `/status`'s `checkpoint`: null without `data_dir`.
pub(super) fn status_view(state: &AdminState, cores: &[CoreStats]) -> Value {
    let Some(dir) = &state.data_dir else { return Value::Null };
    let stats: Vec<&CheckpointStats> = cores.iter().map(|c| &c.checkpoint).collect();
    let sum = |f: fn(&CheckpointStats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
    let failures: serde_json::Map<String, Value> = CHECKPOINT_LOAD_FAILURE_REASONS
        .iter()
        .enumerate()
        .map(|(i, r)| ((*r).to_owned(), json!(stats.iter().map(|s| s.load_failures[i]).sum::<u64>())))
        .collect();
    json!({
        "data_dir": dir.display().to_string(),
        "loaded_age_seconds": loaded_age(&stats),
        "loaded_shards": sum(|s| s.loaded_shards),
        "loaded_series": sum(|s| s.loaded_series),
        "loaded_generation": stats.iter().map(|s| s.loaded_generation).max().unwrap_or(0),
        "load_seconds": stats.iter().map(|s| s.load_ns).max().unwrap_or(0) as f64 / 1e9,
        "last_written_age_seconds": age_seconds(last_written(&stats)),
        "generation": stats.iter().map(|s| s.generation).max().unwrap_or(0),
        "writes": sum(|s| s.writes),
        "bytes": sum(|s| s.bytes),
        "write_failures": sum(|s| s.write_failures),
        "marks_failures": sum(|s| s.marks_failures),
        "load_failures": failures,
    })
}

/// The `sheaf_checkpoint_*` families (only with `data_dir`).
pub(super) fn metrics(o: &mut Out, state: &AdminState, cores: &[CoreStats]) {
    if state.data_dir.is_none() {
        return;
    }
    o.per_core("sheaf_checkpoint_writes_total", "counter", "Shard checkpoint files written.", cores, |c| {
        c.checkpoint.writes as f64
    });
    o.per_core("sheaf_checkpoint_bytes_total", "counter", "Bytes of shard checkpoint files written.", cores, |c| {
        c.checkpoint.bytes as f64
    });
    o.per_core(
        "sheaf_checkpoint_write_duration_seconds_total",
        "counter",
        "Time from serialising a shard to its file's rename, summed.",
        cores,
        |c| c.checkpoint.write_ns_total as f64 / 1e9,
    );
    o.per_core(
        "sheaf_checkpoint_write_duration_seconds",
        "gauge",
        "Time from serialising the last shard written to its file's rename.",
        cores,
        |c| c.checkpoint.last_write_ns as f64 / 1e9,
    );
    o.per_core("sheaf_checkpoint_write_failures_total", "counter", "Shard checkpoints not written.", cores, |c| {
        c.checkpoint.write_failures as f64
    });
    o.per_core("sheaf_checkpoint_marks_failures_total", "counter", "Flush marks not written.", cores, |c| {
        c.checkpoint.marks_failures as f64
    });
    o.per_core("sheaf_checkpoint_loaded_shards", "gauge", "Shard checkpoints loaded at start.", cores, |c| {
        c.checkpoint.loaded_shards as f64
    });
    let name = "sheaf_checkpoint_load_failures_total";
    o.family(name, "counter", "Checkpoint files not loaded at start (moved aside, shard started empty), by reason.");
    for (i, reason) in CHECKPOINT_LOAD_FAILURE_REASONS.iter().enumerate() {
        let n: u64 = cores.iter().map(|c| c.checkpoint.load_failures[i]).sum();
        o.sample(name, &[("reason", reason)], n);
    }
    let name = "sheaf_checkpoint_last_age_seconds";
    o.family(name, "gauge", "Age of the last checkpoint pass every core finished (-1: none yet).");
    let stats: Vec<&CheckpointStats> = cores.iter().map(|c| &c.checkpoint).collect();
    o.sample(name, &[], age_seconds(last_written(&stats)).unwrap_or(-1.0));
}
