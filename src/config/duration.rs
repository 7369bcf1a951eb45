//! [`Dur`], the duration value of every section (`10s`, `5m`, `250ms`, `2d`). Pure; parsed
//! wherever a config is read.

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use sheaf_shard_core::policy::parse_duration;

/// A duration written as `10s`, `5m`, `250ms`, `2d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let nanos = parse_duration(&s).map_err(serde::de::Error::custom)?;
        if nanos < 0 {
            return Err(serde::de::Error::custom(format!("negative duration {s:?}")));
        }
        Ok(Dur(Duration::from_nanos(nanos as u64)))
    }
}
