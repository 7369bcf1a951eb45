//! The `logging:` section. Read once at start, on the main thread, to set up tracing.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logging {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter such as `sheaf=debug`.
    pub level: String,
}

impl Default for Logging {
    fn default() -> Self {
        Self { level: "info".into() }
    }
}
