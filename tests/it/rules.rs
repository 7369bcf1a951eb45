//! The `rules:` engine for series sheaf receives without metadata (StatsD): a mapping rule gives
//! matching series its own aggregations and storage policy, a `drop` rule refuses (and counts)
//! the values of its series, others keep the defaults; `/api/v1/rules` reads and replaces the
//! rule set (with the admin token), `/api/v1/rules/match` explains it; in cluster mode a rule
//! set PUT on one node, or set with `sheaf rules set`, reaches the other through etcd.

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::etcd::Etcd;
use crate::harness::tempdir::Dir;
use crate::harness::{Launch, Sheaf, http_call, http_get, wait_until};

const RULES: &str = r#"rules:
  mappingRules:
    - name: api-prod
      filter: "__name__:api.* env:prod"
      aggregations: [Max, Sum]
      storagePolicies: [{resolution: 1s, retention: 1h}]
    - name: drop-debug
      filter: "__name__:debug.*"
      drop: true
  rollupRules:
    - name: by-route
      filter: "__name__:api.*"
      transforms:
        - transform: {type: Increase}
        - rollup: {metricName: api_by_route, groupBy: [route], aggregations: [Sum]}
      storagePolicies: [{resolution: 10s, retention: 2d}]
"#;

fn get_json(sheaf: &Sheaf, path: &str) -> Value {
    serde_json::from_str(&http_get(sheaf.admin, path).unwrap()).unwrap()
}

#[test]
fn mapping_rules_map_and_drop_statsd_series_and_others_keep_the_defaults() {
    let sheaf = Sheaf::launch("rules-mapping", Launch { top: RULES, ..Launch::default() });
    let mut tcp = TcpStream::connect(sheaf.statsd).unwrap();
    let mut lines = 0;
    for i in 0..50u64 {
        writeln!(tcp, "api.calls:{}|c|#env:prod,route:/a", i % 7 + 1).unwrap();
        writeln!(tcp, "api.calls:2|c|#env:dev").unwrap();
        writeln!(tcp, "debug.noise:1|c|#env:prod").unwrap();
        writeln!(tcp, "other.count:3|c").unwrap();
        lines += 4;
    }
    tcp.flush().unwrap();
    drop(tcp);
    sheaf.wait_metric("sheaf_ingested_values_total", &[], f64::from(lines));
    sheaf.wait_metric("sheaf_rejected_values_total", &[("reason", "dropped_by_rule")], 50.0);
    assert_eq!(sheaf.metric("sheaf_rule_matched_series_total", &[("result", "dropped")]), 1.0);
    assert_eq!(sheaf.metric("sheaf_rule_matched_series_total", &[("result", "mapped")]), 1.0);

    let m = get_json(&sheaf, "/api/v1/rules/match?id=api.calls;env=prod;route=/a");
    assert_eq!(m["drop"], false, "{m}");
    assert_eq!(m["mappings"][0]["rule"], "api-prod", "{m}");
    assert_eq!(m["mappings"][0]["aggregations"], serde_json::json!(["Max", "Sum"]), "{m}");
    assert_eq!(m["mappings"][0]["storagePolicies"], serde_json::json!(["1s:1h"]), "{m}");
    assert_eq!(m["rollups"][0]["id"], "api_by_route;route=/a", "{m}");
    assert_eq!(m["rollups"][0]["transformsBefore"], serde_json::json!(["Increase"]), "{m}");
    let dropped = get_json(&sheaf, "/api/v1/rules/match?id=debug.noise;env=prod");
    assert_eq!(dropped["drop"], true, "{dropped}");
    let plain = get_json(&sheaf, "/api/v1/rules/match?id=other.count");
    assert_eq!(plain["usesDefaultPolicies"], true, "{plain}");
    let rules = get_json(&sheaf, "/api/v1/rules");
    assert_eq!(rules["mappingRules"][1]["drop"], true, "{rules}");
    assert_eq!(rules["rollupRules"][0]["transforms"][1]["rollup"]["groupBy"], serde_json::json!(["route"]), "{rules}");

    let out = sheaf.stop();
    let of = |name: &'static str, tag: &'static str| {
        out.iter().filter(move |v| v.id.starts_with(name) && v.id.contains(tag)).collect::<Vec<_>>()
    };
    let prod = of("api.calls", "env=prod");
    assert!(!prod.is_empty() && prod.iter().all(|v| v.policy == "1s:1h"), "{prod:?}");
    let prod_sum: f64 = prod.iter().filter(|v| v.agg == "sum").map(|v| v.value).sum();
    assert_eq!(prod_sum, (0..50u64).map(|i| (i % 7 + 1) as f64).sum::<f64>(), "{prod:?}");
    let prod_max = prod.iter().filter(|v| v.agg == "max").map(|v| v.value).fold(f64::MIN, f64::max);
    assert_eq!(prod_max, 7.0, "{prod:?}");
    let dev = of("api.calls", "env=dev");
    assert!(dev.iter().all(|v| v.policy == "10s:2d" && v.agg == "sum"), "{dev:?}");
    assert_eq!(dev.iter().map(|v| v.value).sum::<f64>(), 100.0);
    assert_eq!(of("debug.noise", "").len(), 0, "a dropped series emits nothing");
    assert_eq!(of("other.count", "").iter().map(|v| v.value).sum::<f64>(), 150.0);
}

fn put(sheaf: &Sheaf, token: Option<&str>, body: &str) -> (u16, String) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("Authorization", b.as_str())).collect();
    headers.push(("Content-Type", "application/json"));
    let (code, _, body) = http_call(sheaf.admin, "PUT", "/api/v1/rules", &headers, body).unwrap();
    (code, body)
}

const API_RULE: &str = r#"{"mappingRules":[{"name":"drop-tmp","filter":"__name__:tmp.*","drop":true}]}"#;

#[test]
fn rules_put_needs_the_token_and_refuses_an_invalid_set_whole() {
    let secrets = Dir::new("rules-token");
    let token_file = secrets.0.join("token");
    std::fs::write(&token_file, "t0ken\n").unwrap();
    let http = format!(", auth_token_file: \"{}\"", token_file.display());
    let sheaf = Sheaf::launch("rules-put", Launch { http: &http, ..Launch::default() });

    assert_eq!(put(&sheaf, None, API_RULE).0, 401);
    assert_eq!(put(&sheaf, Some("wrong"), API_RULE).0, 403);
    let invalid = r#"{"mappingRules":[{"name":"ok","filter":"a:b","drop":true},
        {"name":"broken","filter":"__name__:[x","drop":true}]}"#;
    let (code, body) = put(&sheaf, Some("t0ken"), invalid);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("broken") && body.contains("filter"), "names the rule and the field: {body}");
    let (code, body) = put(&sheaf, Some("t0ken"), r#"{"mappingRules":[],"extra":1}"#);
    assert_eq!(code, 400, "unknown keys are refused: {body}");
    assert_eq!(get_json(&sheaf, "/api/v1/rules"), serde_json::json!({}), "nothing of a refused set applied");

    let (code, body) = put(&sheaf, Some("t0ken"), API_RULE);
    assert_eq!(code, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["storedIn"], "memory", "{answer}");
    let status = sheaf.status();
    assert_eq!(status["rules"]["mapping_rules"], 1, "{status}");
    assert_eq!(status["rules"]["source"], "api", "{status}");
    assert_eq!(get_json(&sheaf, "/api/v1/rules")["mappingRules"][0]["name"], "drop-tmp");
    let m = get_json(&sheaf, "/api/v1/rules/match?id=tmp.x");
    assert_eq!(m["drop"], true, "{m}");
    assert_eq!(m["source"], "api", "{m}");
    assert!(m["cutoverNanos"].as_i64().unwrap() > 0, "{m}");
    sheaf.stop();
}

fn cluster_node(etcd: &Etcd, host: &str) -> Sheaf {
    let top = format!(
        "num_shards: 4\nhost_id: \"{host}\"\ncluster:\n  etcd: {{endpoints: [\"{}\"]}}\n  election: {{ttl: 2s}}\n",
        etcd.endpoint()
    );
    Sheaf::launch(&format!("rules-cluster-{host}"), Launch { top: &top, ..Launch::default() })
}

fn wait_for_drop(sheaf: &Sheaf, id: &str) {
    let path = format!("/api/v1/rules/match?id={id}");
    wait_until(
        &format!("{id} dropped by the rules of the node on {}", sheaf.admin),
        Duration::from_secs(30),
        || http_get(sheaf.admin, &path).is_ok_and(|b| b.contains("\"drop\":true")),
        || http_get(sheaf.admin, "/api/v1/rules").unwrap_or_default(),
    );
}

#[test]
fn a_rule_set_put_on_one_node_or_set_from_the_cli_reaches_the_other_through_etcd() {
    let etcd = Etcd::start("rules-cluster");
    let (a, b) = (cluster_node(&etcd, "a"), cluster_node(&etcd, "b"));
    let (code, body) = put(&a, None, API_RULE);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"storedIn\":\"etcd\""), "{body}");
    wait_for_drop(&b, "tmp.x");
    assert_eq!(get_json(&b, "/api/v1/rules/match?id=tmp.x")["source"], "etcd");

    let out =
        Command::new(env!("CARGO_BIN_EXE_sheaf")).args(["rules", "get", "--etcd", &etcd.endpoint()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["mappingRules"][0]["name"], "drop-tmp");

    let file = a.dir.0.join("rules.yaml");
    std::fs::write(
        &file,
        "mappingRules:\n  - name: drop-scratch\n    filter: \"__name__:scratch.*\"\n    drop: true\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sheaf"))
        .args(["rules", "set", "--etcd", &etcd.endpoint(), "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for_drop(&a, "scratch.y");
    wait_for_drop(&b, "scratch.y");
    std::fs::write(&file, "mappingRules:\n  - name: bad\n    filter: \"__name__:x\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sheaf"))
        .args(["rules", "set", "--etcd", &etcd.endpoint(), "--file"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("bad") && err.contains("storagePolicies"), "{err}");
    a.stop();
    b.stop();
}

fn check_config(text: &str) -> (bool, String) {
    let dir = Dir::new("rules-check");
    let path = dir.0.join("c.yaml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sheaf")).arg("check-config").arg(&path).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_template_rules_validate_and_bad_rules_are_refused_naming_rule_and_field() {
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tuning/config-template.yaml")).unwrap();
    let block: String = template
        .lines()
        .skip_while(|l| *l != "# rules:")
        .map_while(|l| l.strip_prefix("# "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(block.starts_with("rules:") && block.contains("rollupRules"), "{block}");
    let (ok, msg) = check_config(&block);
    assert!(ok, "the template's rules must validate: {msg}\n{block}");
    let rule = |body: &str| format!("rules:\n  mappingRules:\n    - name: r1\n      filter: \"a:b\"\n{body}");
    let policy = "      storagePolicies: [{resolution: 10s, retention: 2d}]\n";
    let rollup = "rules:\n  rollupRules:\n    - name: up\n      filter: \"a:b\"\n";
    for (text, wants) in [
        (rule("      drop: true\n      colour: red\n"), &["colour"][..]),
        (rule(""), &["r1", "storagePolicies"]),
        (rule("      drop: true\n").replace("a:b", "a:{b"), &["r1", "filter"]),
        (rule(&format!("      aggregations: [Sum, Total]\n{policy}")), &["r1", "aggregations", "Total"]),
        (rule(&policy.replace("10s", "10q")), &["r1", "storagePolicies[0].resolution"]),
        (
            format!("{rollup}      transforms: [{{transform: {{type: Double}}}}]\n{policy}"),
            &["up", "transforms[0].transform.type"],
        ),
    ] {
        let (ok, msg) = check_config(&text);
        assert!(!ok, "{text} must be refused");
        for want in wants {
            assert!(msg.contains(want), "message for {text} must name {want}: {msg}");
        }
    }
}
