//! `GET /api/v1/rules` (the rule set, m3coordinator's schema as JSON), `PUT /api/v1/rules`
//! (replace it, checked whole; needs the admin token like every mutation) and
//! `GET /api/v1/rules/match?id=ID` (which rules a canonical series id matches and what they give
//! it). Handlers on the control thread.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sheaf_shard_core::rules::RuleSet;

use super::{Rules, RulesError};
use crate::config::{RulesConfig, aggregation_names};

pub fn router(rules: Arc<Rules>) -> Router {
    Router::new()
        .route("/api/v1/rules", get(get_rules).put(put_rules))
        .route("/api/v1/rules/match", get(match_id))
        .with_state(rules)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"state": "Error", "error": message}))).into_response()
}

async fn get_rules(State(rules): State<Arc<Rules>>) -> Json<RulesConfig> {
    Json(rules.current().config)
}

async fn put_rules(State(rules): State<Arc<Rules>>, body: Bytes) -> Response {
    let config: RulesConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad rule set: {e}")),
    };
    match rules.replace(config).await {
        Ok(cutover) => {
            let current = rules.current();
            Json(json!({
                "state": "OK",
                "cutoverNanos": cutover,
                "mappingRules": current.compiled.mapping_rules.len(),
                "rollupRules": current.compiled.rollup_rules.len(),
                "storedIn": if rules.cluster_mode() { "etcd" } else { "memory" },
            }))
            .into_response()
        }
        Err(e @ RulesError::Invalid(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ RulesError::Store(_)) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn match_id(State(rules): State<Arc<Rules>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let Some(id) = query.get("id").filter(|id| !id.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "the query needs id=SERIES_ID (canonical: name;k=v;flag)".into());
    };
    let current = rules.current();
    let mut answer = describe_match(&current.compiled, id.as_bytes());
    answer["id"] = json!(id);
    answer["cutoverNanos"] = json!(current.cutover);
    answer["source"] = json!(current.source);
    Json(answer).into_response()
}

/// What `rules` give `id`, with the rules named.
pub fn describe_match(rules: &RuleSet, id: &[u8]) -> Value {
    let m = rules.match_id(id);
    let policies = |ps: &[sheaf_shard_core::StoragePolicy]| ps.iter().map(ToString::to_string).collect::<Vec<_>>();
    let matched_mapping: Vec<&str> = rules
        .mapping_rules
        .iter()
        .filter(|r| r.filter.matches(&sheaf_shard_core::rules::IdView::parse(id)))
        .map(|r| r.name.as_str())
        .collect();
    json!({
        "drop": m.drop,
        "mappingRules": matched_mapping,
        "mappings": m.mappings.iter().map(|mapping| json!({
            "rule": rules.mapping_rules[mapping.rule].name,
            "aggregations": aggregation_names(mapping.aggregations),
            "storagePolicies": policies(&mapping.storage_policies),
        })).collect::<Vec<_>>(),
        "usesDefaultPolicies": !m.drop && m.mappings.is_empty(),
        "rollups": m.rollups.iter().map(|r| json!({
            "rule": rules.rollup_rules[r.rule].name,
            "id": String::from_utf8_lossy(&r.new_id),
            "aggregations": aggregation_names(r.aggregations),
            "transformsBefore": r.transforms_before.iter().map(|t| t.m3_name()).collect::<Vec<_>>(),
            "transformsAfter": r.transforms_after.iter().map(|t| t.m3_name()).collect::<Vec<_>>(),
            "storagePolicies": policies(&r.storage_policies),
        })).collect::<Vec<_>>(),
    })
}
