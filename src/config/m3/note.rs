//! One key's fate in an M3 config ([`KeyNote`]), and the value helpers the translation and
//! its sections share. Pure.

use serde_json::Value;

use crate::config::error::{ConfigError, invalid};

/// What became of one key of an M3 config.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyNote {
    /// M3's key, dotted, with list indices (`aggregator.flushManager.maxJitters[1].flushInterval`).
    pub key: String,
    /// Its value as written (YAML scalars as JSON).
    pub value: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Became sheaf's key, with this value.
    Became { key: String, value: String },
    /// Accepted, not applied, for this reason.
    Ignored(&'static str),
    /// Accepted: what sheaf does anyway.
    AsSheafDoes(&'static str),
}

/// A key read: its note, and the sheaf key and value it sets, if any.
pub(super) struct Step {
    pub(super) key: String,
    pub(super) value: Value,
    pub(super) outcome: Outcome,
    pub(super) set: Option<(String, Value)>,
}

impl Step {
    /// `key: value` becomes sheaf's `target: to`.
    pub(super) fn became(key: &str, value: &Value, target: &str, to: Value) -> Self {
        let outcome = Outcome::Became { key: target.to_owned(), value: scalar(&to) };
        Step { key: key.to_owned(), value: value.clone(), outcome, set: Some((target.to_owned(), to)) }
    }

    /// `key: value` is noted and sets nothing.
    pub(super) fn noted(key: &str, value: &Value, outcome: Outcome) -> Self {
        Step { key: key.to_owned(), value: value.clone(), outcome, set: None }
    }
}

/// A Go duration as sheaf's config writes it: strings are checked here (so the error names
/// M3's key), integers are nanoseconds as Go's YAML reads them.
pub(super) fn go_duration(key: &str, value: &Value) -> Result<String, ConfigError> {
    match value {
        Value::String(s) => match sheaf_shard_core::policy::parse_duration(s) {
            Ok(n) if n >= 0 => Ok(s.clone()),
            Ok(_) => Err(invalid(key, format!("negative duration {s:?}"))),
            Err(e) => Err(invalid(key, e.to_string())),
        },
        Value::Number(n) => match n.as_u64() {
            Some(nanos) => Ok(format!("{nanos}ns")),
            None => Err(invalid(key, format!("{n} is not a duration"))),
        },
        other => Err(invalid(key, format!("{} is not a duration", scalar(other)))),
    }
}

/// A value as one line: strings bare, the rest as JSON.
pub(super) fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
