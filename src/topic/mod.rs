//! M3's m3msg topics: where a flush handler with `topic:` sends its values, as M3's
//! `dynamicBackend` producer does, and the m3coordinator topic API that manages them.
//!
//! A topic (`topicpb.Topic`: name, number of shards, consumer services) is stored raw in etcd
//! under `/topic/{environment}/{name}` (M3's topic service: KV namespace `/topic`, key = the
//! name; m3cluster joins namespace, environment and key with `/`). Each consumer service names
//! a placement, `{placement namespace}/{its environment}/{its name}`: `_sd.placement` unless
//! the handler says otherwise (M3's default; m3aggregator placements live under `/placement`).
//!
//! - [`model`]: the topic's checks and edits (init, add and remove a consumer service).
//! - [`json`]: m3coordinator's request and response bodies (jsonpb).
//! - [`api`]: `/api/v1/topic…` on the admin port (control thread).
//! - [`routes`]: which consumer instances get each shard, from a topic and its consumers'
//!   placements (pure; built on the watcher thread, read by the sink thread).
//! - [`watcher`]: the thread that follows the topic and the placements in etcd and hands
//!   [`routes::Routes`] to the topic sink.

pub mod api;
pub mod json;
pub mod model;
pub mod routes;
pub mod watcher;

/// M3's topic name when a request names none (`Topic-Name` header absent).
pub const DEFAULT_TOPIC: &str = "aggregated_metrics";

/// M3's default placement namespace of a service (m3cluster's `_sd.placement`).
pub const DEFAULT_PLACEMENT_NAMESPACE: &str = "_sd.placement";

/// The etcd key of topic `name` in `environment`.
pub fn topic_key(environment: &str, name: &str) -> String {
    format!("/topic/{environment}/{name}")
}

/// The etcd key of a service's placement (m3cluster: `{namespace}/{environment}/{name}`, the
/// environment left out when empty).
pub fn placement_key(namespace: &str, environment: &str, service: &str) -> String {
    if environment.is_empty() {
        format!("{namespace}/{service}")
    } else {
        format!("{namespace}/{environment}/{service}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_m3s() {
        assert_eq!(
            topic_key("namespace/m3db-cluster-name", "aggregated_metrics"),
            "/topic/namespace/m3db-cluster-name/aggregated_metrics"
        );
        assert_eq!(placement_key("_sd.placement", "env", "m3coordinator"), "_sd.placement/env/m3coordinator");
        assert_eq!(placement_key("/placement", "env", "m3aggregator"), "/placement/env/m3aggregator");
        assert_eq!(placement_key("_sd.placement", "", "m3coordinator"), "_sd.placement/m3coordinator");
    }
}
