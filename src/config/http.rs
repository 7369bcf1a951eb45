//! The `http:` section: where the admin API listens. Read by the control thread, which serves
//! the API.

use std::net::SocketAddr;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Admin API: `/health`, `/status`, `/metrics`.
    pub listen_address: SocketAddr,
}

impl Default for Http {
    fn default() -> Self {
        Self { listen_address: ([127, 0, 0, 1], 6001).into() }
    }
}
