//! The `checkpoint:` section and how it goes with the top-level `data_dir`: with `data_dir`
//! set, each shard core writes the checkpoint of every shard it owns there every `interval`
//! and at shutdown, and loads them at start (see `shards/runtime/src/checkpoint`). Read on the
//! main thread at start; boot copies it into the pool's settings.

use std::time::Duration;

use serde::Deserialize;

use super::duration::Dur;
use super::error::{ConfigError, invalid};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checkpoint {
    /// How often every shard is written (at shutdown too, whatever this says).
    pub interval: Dur,
}

impl Default for Checkpoint {
    fn default() -> Self {
        Self { interval: Dur(Duration::from_secs(10)) }
    }
}

impl Checkpoint {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval.0 < Duration::from_millis(100) {
            return Err(invalid("checkpoint.interval", "must be at least 100ms"));
        }
        Ok(())
    }
}
