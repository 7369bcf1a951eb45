//! Why a config is refused: every message names the key (`aggregator.flush.handlers[0]…`), as
//! `sheaf check-config` and a refused start print it. Pure; used wherever the config is checked.

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{0}")]
    Parse(String),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

pub(super) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

/// Refuses the first `(key, value)` whose value is 0, in the order given.
pub(super) fn require_at_least_one(fields: &[(&str, usize)]) -> Result<(), ConfigError> {
    match fields.iter().find(|(_, value)| *value == 0) {
        Some((key, _)) => Err(invalid(*key, "must be at least 1")),
        None => Ok(()),
    }
}
