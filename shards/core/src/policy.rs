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
    #[error(
        "invalid duration {0:?}: expected a number and a unit (ns, us, ms, s, m, h, d, w), e.g. 10s, 1m30s or 4.95s"
    )]
    BadDuration(String),
    #[error("invalid storage policy {0:?}: expected resolution:retention, e.g. 10s:2d")]
    BadPolicy(String),
    #[error(
        "invalid storage policy {0:?}: resolution must be between 1ns and 1 year, and not longer than retention (at most 100 years)"
    )]
    BadResolution(String),
}

/// Parses a duration such as `10s`, `1m30s`, `2d`, `8w`, `250ms` into nanoseconds; Go's
/// `time.Duration` syntax too (`4.95s`, `1.5h`, `500µs`, a bare `0`), as m3aggregator's
/// configs write it. Fractions below a nanosecond are cut off, as Go does.
pub fn parse_duration(s: &str) -> Result<i64, PolicyError> {
    let bad = || PolicyError::BadDuration(s.to_owned());
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(0);
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let whole: i128 = if digits == 0 { 0 } else { rest[..digits].parse().map_err(|_| bad())? };
        rest = &rest[digits..];
        let mut fraction = "";
        if let Some(after) = rest.strip_prefix('.') {
            let len = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
            fraction = &after[..len];
            rest = &after[len..];
        }
        if digits == 0 && fraction.is_empty() {
            return Err(bad());
        }
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "µs" | "μs" => "us",
            unit => unit,
        };
        let per = NANOS_PER.iter().find(|(name, _)| *name == unit).map(|(_, per)| i128::from(*per)).ok_or_else(bad)?;
        // Digits past the nanosecond are cut: 19 of them always reach below it.
        let fraction = &fraction[..fraction.len().min(19)];
        let scale = 10i128.pow(fraction.len() as u32);
        let part: i128 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| bad())? };
        total = whole
            .checked_mul(per)
            .and_then(|v| v.checked_add(part * per / scale))
            .and_then(|v| total.checked_add(v))
            .filter(|v| *v <= i128::from(i64::MAX))
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
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

    #[test]
    fn durations_as_go_writes_them() {
        for (s, n) in [
            ("4.95s", 4_950_000_000),
            ("1m30s", 90_000_000_000),
            ("500ms", 500_000_000),
            ("1.5h", 5_400_000_000_000),
            ("0", 0),
            ("0s", 0),
            (".5s", 500_000_000),
            ("300µs", 300_000),
            ("1.0000000001s", 1_000_000_000),
            ("2h45m0.5s", 9_900_500_000_000),
        ] {
            assert_eq!(parse_duration(s), Ok(n), "{s}");
        }
        for bad in ["1.5", ".s", "1..5s", "5 s", "10x", "-1s", "1.s.5", "999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
