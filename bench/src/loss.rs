//! The loss check: every counter line (or COUNTER message) sent adds 1 to its series, so
//! the sums sheaf's json sink writes for the `load.c*` series, over the windows of one
//! storage policy, must add up to the number of counter values sent.
//!
//! Only what the file gained since the run started is read (the sink appends), and the
//! file is read incrementally until the sums are complete or `--settle` has passed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use sheaf_shard_core::StoragePolicy;

/// Counter sums by storage policy, from the json sink's lines.
#[derive(Debug, Default)]
struct Sums {
    by_policy: BTreeMap<String, f64>,
    lines: u64,
    counter_lines: u64,
    bad_lines: u64,
}

impl Sums {
    fn line(&mut self, line: &[u8]) {
        self.lines += 1;
        if !contains(line, b"load.c") {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            self.bad_lines += 1;
            return;
        };
        let is_counter_sum = v["id"].as_str().is_some_and(|id| id.starts_with("load.c")) && v["agg"] == "sum";
        if let (true, Some(value), Some(policy)) = (is_counter_sum, v["value"].as_f64(), v["policy"].as_str()) {
            self.counter_lines += 1;
            *self.by_policy.entry(policy.to_string()).or_default() += value;
        }
    }

    /// The policy with the smallest resolution seen, and its sum.
    fn finest(&self) -> Option<(&str, f64)> {
        self.by_policy
            .iter()
            .min_by_key(|(p, _)| p.parse::<StoragePolicy>().map_or(i64::MAX, |p| p.resolution_nanos))
            .map(|(p, s)| (p.as_str(), *s))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Reads `path` from `offset` until the finest policy's counter sum reaches `sent` or
/// `settle` has passed.
pub(crate) fn check(path: &Path, offset: u64, sent: u64, settle: Duration) -> anyhow::Result<Value> {
    let start = Instant::now();
    let mut sums = Sums::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut file: Option<File> = None;
    loop {
        if file.is_none()
            && let Ok(mut f) = File::open(path)
        {
            f.seek(SeekFrom::Start(offset)).with_context(|| format!("seeking {}", path.display()))?;
            file = Some(f);
        }
        if let Some(f) = file.as_mut() {
            loop {
                let n = f.read(&mut chunk).with_context(|| format!("reading {}", path.display()))?;
                if n == 0 {
                    break;
                }
                pending.extend_from_slice(&chunk[..n]);
                let complete = pending.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                for line in pending[..complete].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    sums.line(line);
                }
                pending.drain(..complete);
            }
        }
        let reached = sums.finest().is_some_and(|(_, s)| s >= sent as f64);
        if reached || start.elapsed() >= settle {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (policy, sum) = sums.finest().map_or((None, 0.0), |(p, s)| (Some(p.to_string()), s));
    let loss_pct = if sent > 0 { (sent as f64 - sum) / sent as f64 * 100.0 } else { 0.0 };
    Ok(json!({
        "file": path.display().to_string(),
        "from_offset": offset,
        "counter_values_sent": sent,
        "policy": policy,
        "flushed_counter_sum": sum,
        "loss_pct": loss_pct,
        "by_policy": sums.by_policy,
        "waited_s": start.elapsed().as_secs_f64(),
        "lines_read": sums.lines,
        "counter_sum_lines": sums.counter_lines,
        "unparsable_lines": sums.bad_lines,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_counter_sums_by_policy_and_ignores_the_rest() {
        let mut s = Sums::default();
        for line in [
            r#"{"id":"load.c1","time_ns":1,"value":3.0,"policy":"10s:2d","agg":"sum","type":"counter"}"#,
            r#"{"id":"load.c2","time_ns":1,"value":2.0,"policy":"10s:2d","agg":"sum","type":"counter"}"#,
            r#"{"id":"load.c2","time_ns":1,"value":5.0,"policy":"1m:40d","agg":"sum","type":"counter"}"#,
            r#"{"id":"load.t1.sum","time_ns":1,"value":9.0,"policy":"10s:2d","agg":"sum","type":"timer"}"#,
            r#"{"id":"load.g1","time_ns":1,"value":9.0,"policy":"10s:2d","agg":"last","type":"gauge"}"#,
        ] {
            s.line(line.as_bytes());
        }
        assert_eq!(s.finest(), Some(("10s:2d", 5.0)));
        assert_eq!(s.by_policy["1m:40d"], 5.0);
        assert_eq!(s.lines, 5);
    }
}
