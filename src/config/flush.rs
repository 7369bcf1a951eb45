//! The `aggregator.flush` section: the flush handlers, each a sink that writes out the flushed
//! values. Read at start, on the main thread; each sink thread then gets its own handler's
//! settings.

use std::time::Duration;

use serde::Deserialize;

use super::duration::Dur;
use super::error::{ConfigError, invalid};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Flush {
    pub handlers: Vec<Handler>,
}

impl Default for Flush {
    fn default() -> Self {
        Self { handlers: vec![Handler::Json(JsonHandler::default())] }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Handler {
    /// One JSON object per aggregated value, one per line.
    Json(JsonHandler),
    /// `AggregatedMetric` over m3msg to a TCP endpoint, kept until acknowledged.
    M3msg(M3msgHandler),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonHandler {
    /// `-` for stdout, else a file appended to.
    pub path: String,
}

impl Default for JsonHandler {
    fn default() -> Self {
        Self { path: "-".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct M3msgHandler {
    /// `host:port` of the one consumer (an m3coordinator or any m3msg consumer); or
    pub endpoint: String,
    /// the m3msg topic to produce to (cluster mode): its shards and consumer services are read
    /// from etcd, as M3's `dynamicBackend` does.
    pub topic: Option<String>,
    /// With `topic`: the namespace of the consumer services' placements in etcd
    /// (`{namespace}/{environment}/{service}`); M3's default, `_sd.placement`, holds the
    /// m3coordinator placements; m3aggregator's live under `/placement`.
    pub placement_namespace: String,
    /// With `topic`: whether those placements are staged (`PlacementSnapshots`, as
    /// m3aggregator's) rather than plain (m3coordinator's). The other form is tried too.
    pub placement_is_staged: bool,
    /// A message not acknowledged within this time is dropped and counted (with `topic`: for
    /// consumer services without a `messageTtlNanos`).
    pub message_ttl: Dur,
    /// An unacknowledged message is sent again after this long.
    pub retry_interval: Dur,
    /// Messages held unacknowledged at most; beyond, new values are dropped and counted.
    pub max_buffered_messages: usize,
    /// Shards of the output (endpoint only; a topic has its own): message shard =
    /// murmur3(id) % num_shards.
    pub num_shards: u32,
    /// How long shutdown waits for outstanding acks.
    pub drain_timeout: Dur,
}

impl Default for M3msgHandler {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            topic: None,
            placement_namespace: crate::topic::DEFAULT_PLACEMENT_NAMESPACE.into(),
            placement_is_staged: false,
            message_ttl: Dur(Duration::from_secs(300)),
            retry_interval: Dur(Duration::from_secs(5)),
            max_buffered_messages: 1 << 20,
            num_shards: 64,
            drain_timeout: Dur(Duration::from_secs(10)),
        }
    }
}

impl Flush {
    /// At least one handler; an m3msg handler has an endpoint, shards, room for a message, and
    /// a TTL and a retry interval longer than 0.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.handlers.is_empty() {
            return Err(invalid("aggregator.flush.handlers", "needs at least one handler"));
        }
        for (i, h) in self.handlers.iter().enumerate() {
            if let Handler::M3msg(m) = h {
                m.validate(&format!("aggregator.flush.handlers[{i}].m3msg"))?;
            }
        }
        Ok(())
    }
}

impl M3msgHandler {
    /// `key` is where this handler sits in the config, e.g. `aggregator.flush.handlers[0].m3msg`.
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        match (&self.topic, self.endpoint.is_empty()) {
            (None, true) => return Err(invalid(format!("{key}.endpoint"), "is required (host:port), or a topic")),
            (Some(_), false) => return Err(invalid(format!("{key}.topic"), "goes without an endpoint")),
            (Some(topic), true) if topic.is_empty() => return Err(invalid(format!("{key}.topic"), "is empty")),
            _ => {}
        }
        if self.num_shards == 0 {
            return Err(invalid(format!("{key}.num_shards"), "must be at least 1"));
        }
        if self.max_buffered_messages == 0 {
            return Err(invalid(format!("{key}.max_buffered_messages"), "must be at least 1"));
        }
        for (field, d) in [("message_ttl", self.message_ttl), ("retry_interval", self.retry_interval)] {
            if d.0.is_zero() {
                return Err(invalid(format!("{key}.{field}"), "must be longer than 0s"));
            }
        }
        Ok(())
    }
}
