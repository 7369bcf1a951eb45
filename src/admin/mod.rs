//! HTTP admin API on the control thread: `GET /health`, `GET /status`, `GET /metrics`, the
//! shard stats and synced flush (`shards`), and the cluster API. Handlers read the cores' epoch-published stats and the sinks' atomics; they
//! never reach into a core. Mutations need the admin token (`auth`); `tls` serves it over HTTPS.

mod auth;
mod checkpoint;
mod exposition;
mod metrics;
mod serve;
mod shards;
mod state;
mod tls;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::{Value, json};
use sheaf_shard_runtime::{ConnectionRefusal, CoreStats, Protocol};

pub use auth::AdminAuth;
pub use checkpoint::log_checkpoint_load;
pub use serve::serve;
pub use state::{AdminState, SinkView};
pub use tls::{TlsListener, server_config as tls_server_config};

pub fn router(state: Arc<AdminState>) -> Router {
    let cluster = crate::cluster::api::router(state.cluster.clone());
    let rules = crate::rules::api::router(state.rules.clone());
    let topics = crate::topic::api::router(state.cluster.clone());
    let shards = shards::router(state.clone());
    let auth = state.auth.clone();
    Router::new()
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/metrics", get(prometheus))
        .with_state(state)
        .merge(cluster)
        .merge(rules)
        .merge(topics)
        .merge(shards)
        .layer(axum::middleware::from_fn_with_state(auth, auth::require_token))
}

/// The metrics-only listener (`metrics.listen_address`): `GET /metrics`, open, as M3's
/// Prometheus endpoint is.
pub fn metrics_router(state: Arc<AdminState>) -> Router {
    Router::new().route("/metrics", get(prometheus)).with_state(state)
}

async fn health() -> Json<Value> {
    Json(json!({"state": "OK"}))
}

async fn status(State(state): State<Arc<AdminState>>) -> Json<Value> {
    let cores = state.stats.read();
    let depth = metrics::queue_depths(&cores);
    let core_views: Vec<Value> = cores
        .iter()
        .map(|c| {
            let shards: Vec<usize> =
                state.shard_owners.iter().enumerate().filter(|(_, o)| usize::from(**o) == c.core).map(|(s, _)| s).collect();
            json!({
                "core": c.core,
                "cpu": c.cpu,
                "shards": shards,
                "series": c.series,
                "series_limit": c.series_limit,
                "storage_policies": c.storage_policies,
                "flush_schedules": c.flush_schedules,
                "windows_held": c.windows_held,
                "ingested": {"m3msg": c.ingested[0], "statsd_udp": c.ingested[1], "statsd_tcp": c.ingested[2], "statsd_unix": c.ingested[3]},
                "handed_off_values": c.handed_off_values,
                "handoff_queue_depth": depth[c.core],
                "open_connections": c.open_connections,
                "refused_connections": refused_connections(c),
                "udp_dropped_datagrams": c.udp_dropped_datagrams,
                "flush_rounds": c.flush_rounds,
                "windows_flushed": c.aggregation.windows_flushed,
                "values_flushed": c.aggregation.values_flushed,
                "passthrough_values": c.aggregation.passthrough_values,
                "passthrough_follower_dropped": c.aggregation.passthrough_follower_dropped,
                "last_flush_duration_ns": c.last_flush_duration_ns,
                "last_flush_lag_ns": c.last_flush_lag_ns,
                "leader": c.leader,
                "follower_rounds": c.follower_rounds,
                "forced_flush_rounds": c.forced_flush_rounds,
                "windows_discarded": c.aggregation.windows_discarded,
                "shard_not_writable": c.aggregation.shard_not_writable,
                "shards_closed": c.aggregation.shards_closed,
                "rollups": rollup_status(c),
                "forwarded_values": c.forwarded_values,
                "forward_dropped_values": c.forward_dropped_values,
                "forward_unresolved_dropped_values": c.forward_unresolved_dropped_values,
                "unowned_values": c.unowned_values,
                "unowned_held_values": c.unowned_held_values,
                "rejected": c.rejected.iter().map(|r| json!({"protocol": r.protocol.name(), "reason": r.reason, "count": r.count})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let sinks: Vec<Value> = state
        .sinks
        .iter()
        .map(|s| {
            use std::sync::atomic::Ordering::Relaxed;
            json!({
                "name": s.name,
                "kind": s.kind,
                "backlog_values": s.queue.backlog_values.load(Relaxed),
                "dropped_values": s.queue.dropped_values.load(Relaxed)
                    + s.metrics.overflow_values.load(Relaxed)
                    + s.metrics.expired_messages.load(Relaxed)
                    + s.metrics.write_errors.load(Relaxed),
                "written_values": s.metrics.written_values.load(Relaxed),
                "unacked_messages": s.metrics.unacked_messages.load(Relaxed),
            })
        })
        .collect();
    let addr = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string());
    let (flush_status, mode, cluster) = match &state.cluster {
        // m3aggregator's shape: a single node is the leader of everything it holds.
        None => (json!({"electionState": "leader", "canLead": true}), "single_node", Value::Null),
        Some(c) => {
            let view = c.status_view();
            let flush = json!({"electionState": view["electionState"], "canLead": view["canLead"]});
            (flush, "cluster", view)
        }
    };
    Json(json!({
        "status": {"flushStatus": flush_status},
        "mode": mode,
        "cluster": cluster,
        "uptime_seconds": state.started.elapsed().as_secs(),
        "ingest": {
            "m3msg": addr(state.ingest.m3msg),
            "statsd_udp": addr(state.ingest.statsd_udp),
            "statsd_tcp": addr(state.ingest.statsd_tcp),
            "statsd_unix": state.ingest.statsd_unix.as_ref().map(|p| p.display().to_string()),
        },
        "admin": {"auth_required": state.auth.enabled(), "tls": state.tls},
        "rules": state.rules.status_view(),
        "num_shards": state.shard_owners.len(),
        "checkpoint": checkpoint::status_view(&state, &cores),
        "rate_limits": cores.first().map(|c| json!({
            "values_per_series_per_second": c.rate_limits.values_per_series_per_second,
            "new_series_per_shard_per_second": c.rate_limits.new_series_per_shard_per_second,
            "new_series_warmup_seconds": c.rate_limits.new_series_warmup as f64 / 1e9,
            "source": match &state.runtime_options {
                Some(o) if o.from_etcd.load(std::sync::atomic::Ordering::Relaxed) => "etcd",
                _ => "config",
            },
            "runtime_options_invalid": state.runtime_options.as_ref().map(|o| o.invalid_values.load(std::sync::atomic::Ordering::Relaxed)),
        })),
        "cores": core_views,
        "sinks": sinks,
    }))
}

/// `{"m3msg": {"connection_limit": n, "read_timeout": n, "buffer_budget": n}, "statsd_tcp": …}`.
fn refused_connections(c: &CoreStats) -> Value {
    let by_reason = |p: Protocol| {
        let counts = &c.refused_connections[p as usize];
        ConnectionRefusal::ALL.iter().map(|r| (r.name().to_owned(), json!(counts[*r as usize]))).collect()
    };
    json!({
        "m3msg": Value::Object(by_reason(Protocol::M3msg)),
        "statsd_tcp": Value::Object(by_reason(Protocol::StatsdTcp)),
    })
}

async fn prometheus(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    let body = metrics::render(&state);
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

/// A core's rollups in `/status`: what its flushes forwarded, and what it took in as the owner
/// of rolled-up series.
fn rollup_status(c: &CoreStats) -> Value {
    let a = &c.aggregation;
    json!({
        "values_rolled_up": a.values_rolled_up,
        "forwarded_samples": c.rollup_forwarded,
        "remote_unsupported": c.rollup_remote_unsupported,
        "forwarded_accepted": a.forwarded_accepted,
        "forwarded_duplicate": a.forwarded_duplicate,
        "forwarded_too_late": a.forwarded_too_late,
        "target_unknown_windows": a.rollup_target_unknown,
        "type_unsupported_series": a.rollup_type_unsupported,
    })
}
