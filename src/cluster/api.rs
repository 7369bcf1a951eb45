//! The placement operations behind `POST /api/v1/services/{m3aggregator|m3coordinator}/placement/…`
//! (same JSON bodies, headers and keys as m3coordinator's: `Cluster-Environment-Name` picks the
//! environment, the cluster's own when absent) and `sheaf placement …`, and `POST /resign`. Each change
//! is read-modify-compare-and-set on the placement key, so concurrent operators cannot lose
//! each other's changes; the nodes pick the result up through their watch. Every POST here
//! needs the admin token when one is configured (`admin::auth` guards the whole router).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::etcd::Keys;
use super::node::{ClusterHandle, Request};
use super::placement::{
    self, AddRequest, InitRequest, Options, Placement, PlacementError, RemoveRequest, ReplaceRequest,
};
use super::stateless::{self, StatelessError};
use super::store::{ClusterStore, StoreError};
use crate::config::ClusterConfig;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no placement yet: POST /api/v1/services/{{service}}/placement/init first")]
    NotFound,
    #[error("a placement already exists (version {0})")]
    Exists(i64),
    #[error("bad request body: {0}")]
    Body(String),
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Exists(_) | Self::Store(StoreError::Conflict { .. }) => StatusCode::CONFLICT,
            Self::Body(_) | Self::Placement(_) => StatusCode::BAD_REQUEST,
            Self::Store(_) | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(json!({"state": "Error", "error": self.to_string()}))).into_response()
    }
}

/// A placement operation, as the HTTP API and the CLI name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Init,
    Get,
    Add,
    Remove,
    Replace,
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Body(e.to_string()))
}

/// Runs `op` against etcd and returns m3coordinator's response body.
pub async fn run<S: ClusterStore>(
    store: &S,
    keys: &Keys,
    config: &ClusterConfig,
    op: Op,
    body: &[u8],
) -> Result<Value, ApiError> {
    let key = keys.placement();
    let now = sheaf_shard_core::time::now_nanos();
    let options = Options { warmup: config.shard_cutover_warmup.0, alignment: config.shard_cutover_alignment.0 };
    // Leaving shards stay listed until their old owners have surely closed them.
    let retain = config.buffer_after_cutoff.0 + Duration::from_secs(60);
    for _ in 0..5 {
        let current = store.get(&key).await?;
        let existing = current.value.as_deref().map(placement::decode_snapshots).transpose()?;
        let next: Placement = match (op, existing) {
            (Op::Get, Some(p)) => return Ok(placement::to_response_json(&p, current.version)),
            (Op::Get, None) | (Op::Add | Op::Remove | Op::Replace, None) => return Err(ApiError::NotFound),
            (Op::Init, Some(_)) => return Err(ApiError::Exists(current.version)),
            (Op::Init, None) => parse::<InitRequest>(body)?.apply()?,
            (op, Some(mut p)) => {
                placement::cleanup(&mut p, now, retain);
                match op {
                    Op::Add => parse::<AddRequest>(body)?.apply(&p, now, &options)?,
                    Op::Remove => parse::<RemoveRequest>(body)?.apply(&p, now, &options)?,
                    _ => parse::<ReplaceRequest>(body)?.apply(&p, now, &options)?,
                }
            }
        };
        placement::validate(&next)?;
        match store.compare_and_set(&key, current.mod_revision, placement::encode_snapshots(&next)).await {
            Ok(()) => return Ok(placement::to_response_json(&next, current.version + 1)),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Unavailable("the placement kept changing under this request; try again".into()))
}

pub fn router(handle: Option<ClusterHandle>) -> Router {
    const BASE: &str = "/api/v1/services/{service}/placement";
    Router::new()
        .route(&format!("{BASE}/init"), post(|s, p, h, b| op(s, p, h, Op::Init, b)))
        .route(BASE, get(|s, p, h| op(s, p, h, Op::Get, Bytes::new())).post(|s, p, h, b| op(s, p, h, Op::Add, b)))
        .route(&format!("{BASE}/remove"), post(|s, p, h, b| op(s, p, h, Op::Remove, b)))
        .route(&format!("{BASE}/replace"), post(|s, p, h, b| op(s, p, h, Op::Replace, b)))
        .route("/resign", post(resign))
        .with_state(Arc::new(handle))
}

type Handle = State<Arc<Option<ClusterHandle>>>;

fn cluster(state: &Option<ClusterHandle>) -> Result<&ClusterHandle, ApiError> {
    state
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("cluster mode is off (no `cluster:` section in the config)".into()))
}

/// The services whose placements this API manages.
pub const M3AGGREGATOR: &str = "m3aggregator";
pub const M3COORDINATOR: &str = "m3coordinator";

/// Runs `op` on `service`'s placement in `environment`: m3aggregator's (mirrored, staged, at
/// `/placement/{env}/m3aggregator`) or m3coordinator's (not sharded, at
/// `_sd.placement/{env}/m3coordinator`), as m3coordinator's API keeps them.
pub async fn run_service<S: ClusterStore>(
    store: &S,
    service: &str,
    environment: &str,
    config: &ClusterConfig,
    op: Op,
    body: &[u8],
) -> Result<Value, ApiError> {
    match service {
        M3AGGREGATOR => {
            let keys = Keys { environment: environment.to_string(), service: M3AGGREGATOR.into() };
            run(store, &keys, config, op, body).await
        }
        M3COORDINATOR => run_stateless(store, service, environment, op, body).await,
        other => Err(ApiError::Body(format!(
            "unknown service {other:?}: sheaf manages the placements of {M3AGGREGATOR} and {M3COORDINATOR}"
        ))),
    }
}

async fn run_stateless<S: ClusterStore>(
    store: &S,
    service: &str,
    environment: &str,
    op: Op,
    body: &[u8],
) -> Result<Value, ApiError> {
    let key = crate::topic::placement_key(crate::topic::DEFAULT_PLACEMENT_NAMESPACE, environment, service);
    let refused = |e: StatelessError| ApiError::Body(e.to_string());
    for _ in 0..5 {
        let current = store.get(&key).await?;
        let existing = current.value.as_deref().map(stateless::decode).transpose().map_err(refused)?;
        let next = match (op, existing) {
            (Op::Get, Some(p)) => return Ok(stateless_response(&p, current.version)),
            (Op::Get | Op::Add | Op::Remove | Op::Replace, None) => return Err(ApiError::NotFound),
            (Op::Init, Some(_)) => return Err(ApiError::Exists(current.version)),
            (Op::Init, None) => stateless::init(&parse(body)?).map_err(refused)?,
            (Op::Add, Some(p)) => stateless::add(&p, &parse(body)?).map_err(refused)?,
            (Op::Remove, Some(p)) => stateless::remove(&p, &parse(body)?).map_err(refused)?,
            (Op::Replace, Some(p)) => stateless::replace(&p, &parse(body)?).map_err(refused)?,
        };
        match store.compare_and_set(&key, current.mod_revision, stateless::encode(&next)).await {
            Ok(()) => return Ok(stateless_response(&next, current.version + 1)),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Unavailable("the placement kept changing under this request; try again".into()))
}

fn stateless_response(p: &sheaf_proto::placementpb::Placement, version: i64) -> Value {
    json!({ "placement": placement::proto_to_json(p), "version": version })
}

async fn op(
    State(state): Handle,
    Path(service): Path<String>,
    headers: HeaderMap,
    op: Op,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let handle = cluster(&state)?;
    let store = handle.store.borrow().clone().ok_or_else(|| ApiError::Unavailable("etcd is not reachable".into()))?;
    let scope = super::headers::scope(&headers, &handle.keys.environment);
    Ok(Json(run_service(&store, &service, &scope.environment, &handle.config, op, &body).await?))
}

async fn resign(State(state): Handle) -> Result<Json<Value>, ApiError> {
    let handle = cluster(&state)?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    handle.requests.send(Request::Resign(reply)).await.map_err(|_| ApiError::Unavailable("shutting down".into()))?;
    let timeout = handle.config.election.resign_timeout.0 + Duration::from_secs(1);
    let deadline = tokio::time::Instant::now() + timeout;
    match tokio::time::timeout_at(deadline, answer).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(ApiError::Unavailable(e)),
        _ => return Err(ApiError::Unavailable(format!("not follower after {timeout:?}"))),
    }
    // Emitting has stopped; answer once another member of the shard set is confirmed leader.
    let mut status = handle.status.clone();
    let follower = tokio::time::timeout_at(deadline, async {
        while status.borrow_and_update()["electionState"] != "follower" {
            if status.changed().await.is_err() {
                return false;
            }
        }
        true
    });
    match follower.await {
        Ok(true) => Ok(Json(json!({"state": "OK"}))),
        _ => Err(ApiError::Unavailable(format!(
            "resigned, but no other member of the shard set was confirmed leader within {timeout:?}"
        ))),
    }
}
