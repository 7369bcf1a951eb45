//! The write rate limits (`aggregator.rate_limits`, M3's runtime options) through the real
//! binary on one node: values per series per second, new series per shard per second; what
//! they refuse is counted, the rest is aggregated exactly, and `/status` and `/metrics` show
//! the limits in effect. The cluster case (changed through etcd) is in `cluster_rate_limits.rs`.

use std::io::Write;
use std::net::TcpStream;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::harness::{Launch, Sheaf, totals};

fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Waits until every one of `values` was applied or refused by a rate limit; returns the
/// wall-clock seconds (inclusive) the burst may have spanned.
fn wait_applied_or_refused(sheaf: &Sheaf, values: f64, reason: &str, first_second: u64) -> u64 {
    let settled = || {
        sheaf.metric("sheaf_values_applied_total", &[])
            + sheaf.metric("sheaf_rejected_values_total", &[("reason", reason)])
    };
    crate::harness::wait_until(
        "every value applied or refused",
        std::time::Duration::from_secs(30),
        || settled() >= values,
        || format!("{} of {values}", settled()),
    );
    unix_seconds() - first_second + 1
}

/// A per-series limit of 100/s: a burst of 1000 values on one series gets at most 100 per
/// second through (the rest counted as `value_rate_limit`), while 50 values of another series
/// sent in the middle of the burst are all aggregated.
#[test]
fn a_burst_on_one_series_is_cut_at_its_limit_and_another_series_is_not() {
    let sheaf = Sheaf::start("rate-values", "  rate_limits: {values_per_series_per_second: 100}\n");
    assert_eq!(sheaf.metric("sheaf_rate_limit_values_per_series_per_second", &[]), 100.0);
    assert_eq!(sheaf.status()["rate_limits"]["values_per_series_per_second"], 100);
    let mut tcp = TcpStream::connect(sheaf.statsd).unwrap();
    let first_second = unix_seconds();
    let mut burst = String::new();
    for i in 0..1000 {
        burst.push_str("burst.hits:1|c\n");
        if i % 20 == 0 {
            burst.push_str("calm.hits:1|c\n");
        }
    }
    tcp.write_all(burst.as_bytes()).unwrap();
    tcp.flush().unwrap();
    drop(tcp);
    let seconds = wait_applied_or_refused(&sheaf, 1050.0, "value_rate_limit", first_second);
    let refused = sheaf.metric("sheaf_rejected_values_total", &[("reason", "value_rate_limit")]);
    let applied = sheaf.metric("sheaf_values_applied_total", &[]);
    assert_eq!(applied + refused, 1050.0);
    let out = totals(&sheaf.stop());
    let sum = |id: &str| out.get(&(id.to_string(), "sum".to_string())).copied().unwrap_or(0.0);
    assert_eq!(sum("calm.hits"), 50.0, "the other series is not limited");
    let burst_accepted = sum("burst.hits");
    assert_eq!(burst_accepted + refused, 1000.0, "every refused value is counted");
    assert!(
        (100.0..=100.0 * seconds as f64).contains(&burst_accepted),
        "{burst_accepted} accepted over at most {seconds} second(s) at 100/s"
    );
}

/// A cluster-wide new-series limit of 8/s over 4 shards (2 per shard per second) with no
/// warm-up: of 400 new series sent at once, at most 8 per second are created; the values of
/// the others are refused and counted as `new_series_rate_limit`; the series created keep
/// taking values.
#[test]
fn new_series_past_the_per_shard_limit_are_refused_and_counted() {
    let sheaf = Sheaf::launch(
        "rate-new-series",
        Launch {
            aggregator: "  rate_limits: {new_series_per_second: 8, new_series_warmup: 0s}\n",
            top: "num_shards: 4\n",
            ..Launch::default()
        },
    );
    assert_eq!(sheaf.metric("sheaf_rate_limit_new_series_per_shard_per_second", &[]), 2.0);
    assert_eq!(sheaf.status()["rate_limits"]["new_series_per_shard_per_second"], 2);
    let mut tcp = TcpStream::connect(sheaf.statsd).unwrap();
    let first_second = unix_seconds();
    let lines: String = (0..400).map(|i| format!("fresh.{i}:1|c\n")).collect();
    tcp.write_all(lines.as_bytes()).unwrap();
    tcp.flush().unwrap();
    let seconds = wait_applied_or_refused(&sheaf, 400.0, "new_series_rate_limit", first_second);
    let created = sheaf.metric("sheaf_series_created_total", &[]);
    let refused = sheaf.metric("sheaf_rejected_values_total", &[("reason", "new_series_rate_limit")]);
    assert!((1.0..=8.0 * seconds as f64).contains(&created), "{created} series over {seconds} second(s)");
    assert_eq!(created + refused, 400.0);
    // The series created take their next values.
    let lines: String = (0..400).map(|i| format!("fresh.{i}:2|c\n")).collect();
    tcp.write_all(lines.as_bytes()).unwrap();
    drop(tcp);
    sheaf.wait_metric("sheaf_ingested_values_total", &[], 800.0);
    let out = totals(&sheaf.stop());
    let series: Vec<_> = out.iter().filter(|((_, agg), _)| agg == "sum").collect();
    assert!(series.len() as f64 >= created, "{series:?}");
    let first_round: f64 = series.iter().filter(|(_, sum)| **sum >= 3.0).count() as f64;
    assert_eq!(first_round, created, "every series created in the burst took its second value: {series:?}");
}
