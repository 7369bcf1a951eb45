//! Storage policies (`resolution:retention`, e.g. `10s:2d`) and the duration syntax they use.
//!
//! Plain values, built once from config or from M3 metadata and then copied onto whichever
//! core needs them.

use std::fmt;
use std::str::FromStr;

const NANOS_PER: [(&str, i64); 8] = [
    ("w", 7 * 86_400_000_000_000),
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Why a duration or policy string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("invalid duration {0:?}: expected a number and a unit (ns, us, ms, s, m, h, d, w), e.g. 10s")]
    BadDuration(String),
    #[error("invalid storage policy {0:?}: expected resolution:retention, e.g. 10s:2d")]
    BadPolicy(String),
    #[error(
        "invalid storage policy {0:?}: resolution must be between 1ns and 1 year, and not longer than retention (at most 100 years)"
    )]
    BadResolution(String),
}

/// Parses a duration such as `10s`, `1m30s`, `2d`, `8w`, `250ms` into nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64, PolicyError> {
    let bad = || PolicyError::BadDuration(s.to_owned());
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let per = NANOS_PER.iter().find(|(name, _)| *name == unit).map(|(_, per)| *per).ok_or_else(bad)?;
        total = n.checked_mul(per).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Formats nanoseconds with the largest unit (d, h, m, s, ms, us, ns) that divides them exactly.
pub fn format_duration(nanos: i64) -> String {
    for (unit, per) in NANOS_PER.iter().skip(1) {
        if nanos != 0 && nanos % per == 0 {
            return format!("{}{}", nanos / per, unit);
        }
    }
    format!("{nanos}ns")
}

/// How finely a series is aggregated (`resolution`) and how long the store keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoragePolicy {
    pub resolution_nanos: i64,
    pub retention_nanos: i64,
}

/// Longest resolution accepted: window arithmetic stays far from i64 overflow.
const MAX_RESOLUTION: i64 = 366 * 86_400_000_000_000;
const MAX_RETENTION: i64 = 100 * 366 * 86_400_000_000_000;

impl StoragePolicy {
    pub fn new(resolution_nanos: i64, retention_nanos: i64) -> Result<Self, PolicyError> {
        let p = Self { resolution_nanos, retention_nanos };
        if !p.is_valid() {
            return Err(PolicyError::BadResolution(p.to_string()));
        }
        Ok(p)
    }

    fn is_valid(&self) -> bool {
        (1..=MAX_RESOLUTION).contains(&self.resolution_nanos)
            && (self.resolution_nanos..=MAX_RETENTION).contains(&self.retention_nanos)
    }
}

impl FromStr for StoragePolicy {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        let (res, ret) = s.split_once(':').ok_or_else(|| PolicyError::BadPolicy(s.to_owned()))?;
        // M3 allows `res@precision:retention`; the precision does not change aggregation.
        let res = res.split_once('@').map_or(res, |(r, _)| r);
        let p = Self { resolution_nanos: parse_duration(res)?, retention_nanos: parse_duration(ret)? };
        if !p.is_valid() {
            return Err(PolicyError::BadResolution(s.to_owned()));
        }
        Ok(p)
    }
}

impl fmt::Display for StoragePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", format_duration(self.resolution_nanos), format_duration(self.retention_nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_policies_m3_users_write() {
        for (text, canonical) in [
            ("10s:2d", "10s:2d"),
            ("1m:40d", "1m:40d"),
            ("1h:8w", "1h:56d"),
            ("10s@1s:2d", "10s:2d"),
            ("1m30s:1d", "90s:1d"),
        ] {
            let p: StoragePolicy = text.parse().unwrap();
            assert_eq!(p.to_string(), canonical, "{text}");
        }
        let p: StoragePolicy = "10s:2d".parse().unwrap();
        assert_eq!(p.resolution_nanos, 10_000_000_000);
        assert_eq!(p.retention_nanos, 2 * 86_400_000_000_000);
    }

    #[test]
    fn refuses_bad_policies_with_a_reason() {
        for bad in
            ["", "10s", "10x:2d", "0s:2d", "2d:10s", ":", "s:2d", "10s:", "-1s:2d", "2y:3y", "1d:6000w", "60w:61w"]
        {
            assert!(bad.parse::<StoragePolicy>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn durations_round_trip() {
        for (s, n) in [("250ms", 250_000_000), ("5m", 300_000_000_000), ("1h", 3_600_000_000_000), ("7", -1)] {
            if n < 0 {
                assert!(parse_duration(s).is_err());
            } else {
                assert_eq!(parse_duration(s).unwrap(), n);
                assert_eq!(format_duration(n), s);
            }
        }
    }
}
