//! `rollupRules` for series sheaf receives without metadata (StatsD), through the real
//! binary: a series matched by a rollup rule feeds the rolled-up series of its `groupBy` tags,
//! on whichever core owns it; a `drop` mapping rule drops the series itself but not its rollup.

use std::io::Write;
use std::net::TcpStream;

use crate::harness::{Launch, Sheaf, totals};

const BY_ROUTE: &str = r#"rules:
  rollupRules:
    - name: requests-by-route
      filter: "__name__:http.requests"
      transforms:
        - rollup: {metricName: http_requests_by_route, groupBy: [route], aggregations: [Sum]}
      storagePolicies: [{resolution: 10s, retention: 2d}]
"#;

const DROP_RAW: &str = r#"rules:
  mappingRules:
    - name: drop-raw
      filter: "__name__:http.requests"
      drop: true
  rollupRules:
    - name: requests-by-route
      filter: "__name__:http.requests"
      transforms:
        - rollup: {metricName: http_requests_by_route, groupBy: [route], aggregations: [Sum]}
      storagePolicies: [{resolution: 10s, retention: 2d}]
"#;

/// Sends `http.requests` of 16 hosts on 3 routes, host h on route k counting `h * 10 + k + 1`
/// twice, and one timer of the same name (host `ht`), whose rollup is left out and counted;
/// returns what the run emitted.
fn run(tag: &str, rules: &str) -> Vec<crate::harness::Flushed> {
    let sheaf = Sheaf::launch(tag, Launch { top: rules, ..Launch::default() });
    let mut tcp = TcpStream::connect(sheaf.statsd).unwrap();
    let mut lines = 0;
    for _ in 0..2 {
        for k in 0..3 {
            for h in 0..16 {
                writeln!(tcp, "http.requests:{}|c|#host:h{h},route:/r{k}", h * 10 + k + 1).unwrap();
                lines += 1;
            }
        }
    }
    writeln!(tcp, "http.requests:5|ms|#host:ht,route:/r0").unwrap();
    lines += 1;
    tcp.flush().unwrap();
    drop(tcp);
    sheaf.wait_metric("sheaf_ingested_values_total", &[], f64::from(lines));
    sheaf.wait_metric("sheaf_rollup_type_unsupported_series_total", &[], 1.0);
    // The sources live on both cores: the connection's core handed the other core its share.
    assert!(sheaf.metric("sheaf_handoff_values_total", &[]) > 0.0);
    sheaf.stop()
}

/// The sum of the rolled-up series of route `k` over all its windows (each emitted once).
fn rolled_up(out: &[crate::harness::Flushed], k: i32) -> f64 {
    let route = format!("route=/r{k}");
    totals(out)
        .iter()
        .filter(|((id, _), _)| id.starts_with("http_requests_by_route") && id.contains(&route))
        .map(|(_, v)| v)
        .sum()
}

fn want(k: i32) -> f64 {
    f64::from((0..16).map(|h| 2 * (h * 10 + k + 1)).sum::<i32>())
}

#[test]
fn a_rollup_rule_sums_statsd_series_by_route_across_cores() {
    let out = run("rules-rollup", BY_ROUTE);
    for k in 0..3 {
        assert_eq!(rolled_up(&out, k), want(k), "route /r{k}: {out:?}");
    }
    // The series themselves keep the default policies.
    let raw: f64 =
        out.iter().filter(|v| v.id.starts_with("http.requests") && !v.id.contains("host=ht")).map(|v| v.value).sum();
    assert_eq!(raw, (0..3).map(want).sum::<f64>(), "{out:?}");
}

#[test]
fn a_series_a_mapping_rule_drops_still_feeds_its_rollup() {
    let out = run("rules-drop-raw-keep-rollup", DROP_RAW);
    assert!(!out.iter().any(|v| v.id.starts_with("http.requests")), "a dropped series was emitted: {out:?}");
    for k in 0..3 {
        assert_eq!(rolled_up(&out, k), want(k), "route /r{k}: {out:?}");
    }
}
