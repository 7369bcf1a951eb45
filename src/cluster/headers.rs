//! m3coordinator's request headers on the placement and topic APIs: `Cluster-Environment-Name`
//! (the environment in the etcd keys; sheaf's own, `cluster.etcd.environment`, when absent),
//! `Cluster-Zone-Name` (M3 picks the etcd cluster by zone and keeps it out of the keys; sheaf
//! talks to one etcd cluster, so the zone only fills a new consumer service's default) and
//! `Topic-Name` (M3's default: `aggregated_metrics`). Pure; read by the API handlers on the
//! control thread.

use axum::http::HeaderMap;

pub const ENVIRONMENT: &str = "cluster-environment-name";
pub const ZONE: &str = "cluster-zone-name";
pub const TOPIC: &str = "topic-name";

/// M3's zone when the request names none.
pub const DEFAULT_ZONE: &str = "embedded";

/// Where a request's service lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub environment: String,
    pub zone: String,
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    let v = headers.get(name)?.to_str().ok()?.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// The request's environment and zone, `default_environment` and `embedded` when absent.
pub fn scope(headers: &HeaderMap, default_environment: &str) -> Scope {
    Scope {
        environment: header(headers, ENVIRONMENT).unwrap_or_else(|| default_environment.to_string()),
        zone: header(headers, ZONE).unwrap_or_else(|| DEFAULT_ZONE.to_string()),
    }
}

/// The topic a request names (`Topic-Name`), M3's default when absent.
pub fn topic_name(headers: &HeaderMap) -> String {
    header(headers, TOPIC).unwrap_or_else(|| crate::topic::DEFAULT_TOPIC.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_win_over_defaults() {
        let mut h = HeaderMap::new();
        assert_eq!(scope(&h, "default_env"), Scope { environment: "default_env".into(), zone: "embedded".into() });
        assert_eq!(topic_name(&h), "aggregated_metrics");
        h.insert("Cluster-Environment-Name", "namespace/m3db-cluster-name".parse().unwrap());
        h.insert("Cluster-Zone-Name", "z1".parse().unwrap());
        h.insert("Topic-Name", " aggregator_ingest ".parse().unwrap());
        assert_eq!(
            scope(&h, "default_env"),
            Scope { environment: "namespace/m3db-cluster-name".into(), zone: "z1".into() }
        );
        assert_eq!(topic_name(&h), "aggregator_ingest");
        h.insert("Topic-Name", "".parse().unwrap());
        assert_eq!(topic_name(&h), "aggregated_metrics");
    }
}
