//! The `metrics:` section: an optional second HTTP listener that serves only `GET /metrics`
//! (m3aggregator's `metrics.prometheus.listenAddress`), without the admin token. Read by the
//! control thread, which serves it beside the admin API.

use std::net::SocketAddr;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Where to serve `GET /metrics` alone; unset: only on `http.listen_address`.
    pub listen_address: Option<SocketAddr>,
}
