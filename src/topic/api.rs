//! m3coordinator's topic API on the admin port: `POST /api/v1/topic/init`
//! `{"numberOfShards":N}`, `GET /api/v1/topic`, `POST /api/v1/topic` `{"consumerService":{…}}`
//! (adds a consumer service) and `DELETE /api/v1/topic`. `Topic-Name` names the topic
//! (`aggregated_metrics` when absent) and `Cluster-Environment-Name` its environment (the
//! cluster's when absent). Each change is read, compare-and-set on `/topic/{env}/{name}`, so
//! concurrent operators cannot lose each other's changes; topic sinks pick it up through their
//! watch. Runs on the control thread; every call but GET needs the admin token when one is set
//! (`admin::auth` guards the whole router). Errors are `{"status":"error","error":"…"}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::json::{BodyError, add_request, init_request, response};
use super::model::{self, TopicError};
use super::topic_key;
use crate::cluster::headers;
use crate::cluster::node::ClusterHandle;
use crate::cluster::store::{ClusterStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum TopicApiError {
    #[error("topic {0:?} not found")]
    NotFound(String),
    #[error("topic {0:?} already exists (version {1})")]
    Exists(String, i64),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unavailable(String),
}

impl TopicApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Exists(..) | Self::Store(StoreError::Conflict { .. }) => StatusCode::CONFLICT,
            Self::Body(_) | Self::Topic(_) => StatusCode::BAD_REQUEST,
            Self::Store(_) | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for TopicApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(json!({"status": "error", "error": self.to_string()}))).into_response()
    }
}

/// A topic call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Init,
    Get,
    Add,
    Delete,
}

/// Runs `op` on topic `name` in `environment`; the response body (`None` for delete, which
/// answers 200 with no body, as m3coordinator does). A consumer service without an
/// environment or zone gets the request's.
pub async fn run<S: ClusterStore>(
    store: &S,
    scope: &headers::Scope,
    name: &str,
    op: Op,
    body: &[u8],
) -> Result<Option<Value>, TopicApiError> {
    let key = topic_key(&scope.environment, name);
    for _ in 0..5 {
        let current = store.get(&key).await?;
        let existing = current.value.as_deref().map(model::decode).transpose()?;
        let next = match (op, existing) {
            (Op::Get, Some(t)) => return Ok(Some(response(&t, current.version))),
            (Op::Get | Op::Add | Op::Delete, None) => return Err(TopicApiError::NotFound(name.to_string())),
            (Op::Init, Some(_)) => return Err(TopicApiError::Exists(name.to_string(), current.version)),
            (Op::Init, None) => model::init(name, init_request(body)?)?,
            (Op::Add, Some(t)) => {
                let mut service = add_request(body)?;
                if let Some(id) = service.service_id.as_mut() {
                    if id.environment.is_empty() {
                        id.environment = scope.environment.clone();
                    }
                    if id.zone.is_empty() {
                        id.zone = scope.zone.clone();
                    }
                }
                model::add_consumer_service(&t, service)?
            }
            (Op::Delete, Some(_)) => match store.compare_and_delete(&key, current.mod_revision).await {
                Ok(()) => return Ok(None),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            },
        };
        match store.compare_and_set(&key, current.mod_revision, model::encode(&next)).await {
            Ok(()) => return Ok(Some(response(&next, current.version + 1))),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(TopicApiError::Unavailable("the topic kept changing under this request; try again".into()))
}

pub fn router(handle: Option<ClusterHandle>) -> Router {
    Router::new()
        .route("/api/v1/topic/init", post(|s, h, b| call(s, h, Op::Init, b)))
        .route(
            "/api/v1/topic",
            get(|s, h| call(s, h, Op::Get, Bytes::new()))
                .post(|s, h, b| call(s, h, Op::Add, b))
                .delete(|s, h| call(s, h, Op::Delete, Bytes::new())),
        )
        .with_state(Arc::new(handle))
}

async fn call(
    State(state): State<Arc<Option<ClusterHandle>>>,
    headers: HeaderMap,
    op: Op,
    body: Bytes,
) -> Result<Response, TopicApiError> {
    let handle = state.as_ref().as_ref().ok_or_else(|| {
        TopicApiError::Unavailable("cluster mode is off (no `cluster:` section in the config)".into())
    })?;
    let store =
        handle.store.borrow().clone().ok_or_else(|| TopicApiError::Unavailable("etcd is not reachable".into()))?;
    let scope = headers::scope(&headers, &handle.keys.environment);
    let name = headers::topic_name(&headers);
    Ok(match run(&store, &scope, &name, op, &body).await? {
        Some(body) => Json(body).into_response(),
        None => StatusCode::OK.into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::memory::MemoryEtcd;

    fn scope() -> headers::Scope {
        headers::Scope { environment: "env".into(), zone: "embedded".into() }
    }

    #[tokio::test]
    async fn init_add_get_delete_as_m3coordinator_does() {
        let store = MemoryEtcd::new().client();
        let s = scope();
        let r = run(&store, &s, "aggregated_metrics", Op::Init, br#"{"numberOfShards":64}"#).await.unwrap().unwrap();
        assert_eq!(
            r,
            json!({"topic": {"name": "aggregated_metrics", "numberOfShards": 64, "consumerServices": []}, "version": 1})
        );
        let again = run(&store, &s, "aggregated_metrics", Op::Init, br#"{"numberOfShards":64}"#).await;
        assert!(matches!(again, Err(TopicApiError::Exists(..))));
        let add = br#"{"consumerService":{"serviceId":{"name":"m3coordinator"},"consumptionType":"SHARED","messageTtlNanos":"300000000000"}}"#;
        let r = run(&store, &s, "aggregated_metrics", Op::Add, add).await.unwrap().unwrap();
        assert_eq!(r["version"], 2);
        assert_eq!(
            r["topic"]["consumerServices"][0],
            json!({"serviceId": {"name": "m3coordinator", "environment": "env", "zone": "embedded"},
                   "consumptionType": "SHARED", "messageTtlNanos": "300000000000"})
        );
        assert!(matches!(run(&store, &s, "aggregated_metrics", Op::Add, add).await, Err(TopicApiError::Topic(_))));
        // The value is the raw topicpb proto under M3's key.
        let stored = store.get("/topic/env/aggregated_metrics").await.unwrap().value.unwrap();
        assert_eq!(model::decode(&stored).unwrap().consumer_services.len(), 1);
        assert_eq!(run(&store, &s, "aggregated_metrics", Op::Get, b"").await.unwrap().unwrap(), r);
        assert!(run(&store, &s, "aggregated_metrics", Op::Delete, b"").await.unwrap().is_none());
        assert!(matches!(run(&store, &s, "aggregated_metrics", Op::Get, b"").await, Err(TopicApiError::NotFound(_))));
        assert!(matches!(
            run(&store, &s, "aggregated_metrics", Op::Delete, b"").await,
            Err(TopicApiError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn the_environment_header_picks_the_key() {
        let store = MemoryEtcd::new().client();
        let other = headers::Scope { environment: "namespace/m3db-cluster-name".into(), zone: "embedded".into() };
        run(&store, &other, "aggregator_ingest", Op::Init, br#"{"numberOfShards":8}"#).await.unwrap();
        assert!(store.get("/topic/namespace/m3db-cluster-name/aggregator_ingest").await.unwrap().value.is_some());
        assert!(matches!(
            run(&store, &scope(), "aggregator_ingest", Op::Get, b"").await,
            Err(TopicApiError::NotFound(_))
        ));
        assert!(matches!(
            run(&store, &other, "aggregator_ingest", Op::Init, b"{\"numberOfShards\":0}").await,
            Err(TopicApiError::Exists(..))
        ));
        assert!(matches!(
            run(&store, &other, "t2", Op::Init, b"{\"numberOfShards\":0}").await,
            Err(TopicApiError::Topic(_))
        ));
    }
}
