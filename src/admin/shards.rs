//! Idle shards and synced flush in the admin API, after Elasticsearch's: `GET /_stats/shards`
//! (every shard this node holds: its `sync_id`, idle or active, last write, series, windows,
//! bytes, checkpoint, flush times) and `POST /_flush/synced` (a synced flush of every shard
//! now: `200` when all got a `sync_id`, `409 Conflict` with the reason of each that did not),
//! and `GET /api/v1/shards/{id}/checkpoint` (a shard's checkpoint, for a peer's recovery).
//! Runs on the control thread; the cores answer through their command queues.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sheaf_shard_core::time::now_nanos;
use sheaf_shard_runtime::{ShardCommand, ShardStat, SyncOutcome};

use super::state::AdminState;

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/_stats/shards", get(shard_stats))
        .route("/_flush/synced", post(synced_flush))
        .route("/api/v1/shards/{shard}/checkpoint", get(shard_checkpoint))
        .with_state(state)
}

fn age_seconds(at: i64, now: i64) -> Value {
    if at > 0 { json!((now - at).max(0) as f64 / 1e9) } else { Value::Null }
}

fn shard_view(s: &ShardStat, now: i64) -> Value {
    let a = &s.activity;
    let flush_times: Vec<Value> = s
        .flushed
        .iter()
        .map(|&(resolution, untimed, timed)| {
            let at = |t: i64| if t > i64::MIN { json!(t) } else { Value::Null };
            json!({"resolution_nanos": resolution, "untimed_through_nanos": at(untimed), "timed_through_nanos": at(timed)})
        })
        .collect();
    json!({
        "shard": a.shard,
        "core": s.core,
        "sync_id": a.sync.as_ref().map(|s| s.sync_id.to_string()),
        "state": if a.sync.is_some() { "idle" } else { "active" },
        "last_write_unix_nanos": a.last_write,
        "last_write_age_seconds": age_seconds(a.last_write, now),
        "series": a.series,
        "windows_held": a.windows,
        "resident_bytes": a.resident_bytes,
        "checkpoint": {
            "generation": s.checkpoint_generation,
            "age_seconds": age_seconds(s.checkpoint_written_at, now),
        },
        "flush_times": flush_times,
    })
}

async fn shard_stats(State(state): State<Arc<AdminState>>) -> Json<Value> {
    let mut all: Vec<ShardStat> =
        state.cores.collect_all(|reply| ShardCommand::ShardStats { reply }).await.into_iter().flatten().collect();
    all.sort_by_key(|s| s.activity.shard);
    let now = now_nanos();
    let idle = all.iter().filter(|s| s.activity.sync.is_some()).count();
    let shards: Vec<Value> = all.iter().map(|s| shard_view(s, now)).collect();
    Json(json!({"total": all.len(), "idle": idle, "active": all.len() - idle, "shards": shards}))
}

/// The answer to a synced flush: its status and body.
pub fn synced_flush_answer(mut outcomes: Vec<SyncOutcome>) -> (StatusCode, Value) {
    let shard_of = |o: &SyncOutcome| match o {
        SyncOutcome::Synced { shard, .. } | SyncOutcome::Failed { shard, .. } => *shard,
    };
    outcomes.sort_by_key(shard_of);
    let mut shards = Vec::with_capacity(outcomes.len());
    let mut failures = Vec::new();
    for o in &outcomes {
        match o {
            SyncOutcome::Synced { shard, sync_id } => shards.push(json!({"shard": shard, "sync_id": sync_id.as_ref()})),
            SyncOutcome::Failed { shard, reason } => {
                shards.push(json!({"shard": shard, "reason": reason}));
                failures.push(json!({"shard": shard, "reason": reason}));
            }
        }
    }
    let total = outcomes.len();
    let failed = failures.len();
    let counts = json!({"total": total, "successful": total - failed, "failed": failed});
    let mut body = json!({"_shards": counts, "shards": shards});
    if failed > 0 {
        body["failures"] = Value::Array(failures);
    }
    let status = if failed > 0 { StatusCode::CONFLICT } else { StatusCode::OK };
    (status, body)
}

async fn synced_flush(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    let outcomes = state.cores.collect_all(|reply| ShardCommand::SyncedFlush { reply }).await;
    let (status, body) = synced_flush_answer(outcomes.into_iter().flatten().collect());
    (status, Json(body))
}

/// `GET /api/v1/shards/{shard}/checkpoint`: the shard's checkpoint file as its core holds it
/// now (peer recovery; needs the admin token when one is set).
async fn shard_checkpoint(State(state): State<Arc<AdminState>>, Path(shard): Path<u32>) -> Response {
    let Some(&core) = state.shard_owners.get(shard as usize) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": format!("no shard {shard}")}))).into_response();
    };
    let (reply, rx) = flume::bounded(1);
    if !state.cores.send_to(usize::from(core), ShardCommand::ShardCheckpointBytes { shard, reply }) {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "core gone"}))).into_response();
    }
    match rx.recv_async().await {
        Ok(Some(bytes)) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Ok(None) => {
            (StatusCode::NOT_FOUND, Json(json!({"error": format!("shard {shard} not held here")}))).into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "core gone"}))).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_failed_shard_makes_it_a_conflict() {
        let ok = SyncOutcome::Synced { shard: 1, sync_id: "AU2VU0meX-VX2aNbEUsD".into() };
        let (status, body) = synced_flush_answer(vec![ok.clone()]);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["_shards"], json!({"total": 1, "successful": 1, "failed": 0}));
        let pending = SyncOutcome::Failed { shard: 0, reason: "pending operations".into() };
        let (status, body) = synced_flush_answer(vec![ok, pending]);
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["_shards"], json!({"total": 2, "successful": 1, "failed": 1}));
        assert_eq!(body["failures"], json!([{"shard": 0, "reason": "pending operations"}]));
        assert_eq!(body["shards"][1], json!({"shard": 1, "sync_id": "AU2VU0meX-VX2aNbEUsD"}));
    }
}
