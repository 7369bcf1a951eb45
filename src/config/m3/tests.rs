//! The m3aggregator config read as sheaf's: the documented example whole, and each kind of
//! key (mapped, ignored, expected, refused, unknown).

use serde_json::Value;

use super::*;
use crate::config::Config;

const SEED: &str = include_str!("../../../tests/data/m3aggregator-seed.yml");

fn tree(yaml: &str) -> Value {
    serde_saphyr::from_str(yaml).unwrap()
}

/// The config an M3 file becomes, without the checks that read the environment.
fn read(yaml: &str) -> Result<Config, String> {
    let t = translate(&tree(yaml)).map_err(|e| e.to_string())?;
    serde_json::from_value(t.tree).map_err(|e| e.to_string())
}

fn outcome_of<'a>(notes: &'a [KeyNote], key: &str) -> &'a Outcome {
    &notes.iter().find(|n| n.key == key).unwrap_or_else(|| panic!("no note for {key}")).outcome
}

#[test]
fn the_documented_m3aggregator_config_is_read_whole() {
    assert!(looks_like_m3(&tree(SEED)));
    let t = translate(&tree(SEED)).unwrap();
    let config: Config = serde_json::from_value(t.tree).unwrap();
    let cluster = config.cluster.as_ref().expect("kvClient makes it a cluster config");
    assert_eq!(cluster.etcd.endpoints, ["dbnode01:2379"]);
    assert_eq!(cluster.etcd.environment, "namespace/m3db-cluster-name");
    assert_eq!(cluster.service, "m3aggregator");
    assert_eq!(cluster.election.ttl.0.as_secs(), 10);
    assert_eq!(cluster.max_buffer_size.0.as_secs(), 300);
    assert_eq!(cluster.buffer_before_cutover.0.as_secs(), 600);
    assert_eq!(config.host_id_env, "M3AGGREGATOR_HOST_ID");
    assert_eq!(config.http.listen_address.to_string(), "0.0.0.0:6001");
    assert!(config.http.allow_unauthenticated, "M3's HTTP port has no authentication");
    assert_eq!(config.metrics.listen_address.unwrap().to_string(), "0.0.0.0:6002");
    assert_eq!(config.m3msg.server.listen_address.to_string(), "0.0.0.0:6000");
    assert!(config.aggregator.default_storage_policies.is_empty());
    assert_eq!(config.aggregator.buffer_duration_for_future_timed_metric.0.as_secs(), 600);
    assert_eq!(config.aggregator.flush_manager.max_jitters[4].max_jitter_percent, 0.25);
    assert_eq!(config.aggregator.flush_manager.max_jitters[2].flush_interval.0.as_secs(), 60);
    assert_eq!(config.aggregator.forwarding.max_const_delay.unwrap().0.as_secs(), 300);
    match &config.aggregator.flush.handlers[..] {
        [crate::config::Handler::M3msg(m)] => assert_eq!(m.topic.as_deref(), Some("aggregated_metrics")),
        other => panic!("one m3msg handler expected, got {other:?}"),
    }
    assert!(matches!(outcome_of(&t.notes, "aggregator.entryPool"), Outcome::Ignored(_)));
    assert!(matches!(outcome_of(&t.notes, "aggregator.hashType"), Outcome::AsSheafDoes(_)));
    assert!(matches!(
        outcome_of(&t.notes, "aggregator.entryTTL"),
        Outcome::Became { key, value } if key == "aggregator.entry_ttl" && value == "1h"
    ));
    let ignored = ignored_keys(&t.notes);
    assert!(ignored.iter().any(|k| k == "aggregator.flushManager.numWorkersPerCPU"), "{ignored:?}");
    assert!(explain(&t.notes).contains("-> aggregator.entry_ttl: 1h"));
}

#[test]
fn sheafs_own_config_is_not_taken_for_m3s() {
    assert!(!looks_like_m3(&tree("num_shards: 8\naggregator:\n  entry_ttl: 1h\n")));
    let rules = "rules:\n  mappingRules:\n    - name: a\n      filter: \"__name__:x\"\n      drop: true\n";
    assert!(!looks_like_m3(&tree(rules)), "the rules schema is camelCase in both forms");
}

#[test]
fn go_durations_and_seconds_convert() {
    let c = read("aggregator:\n  entryTTL: 1m30s\n  bufferDurationForPastTimedMetric: 4.95s\n").unwrap();
    assert_eq!(c.aggregator.entry_ttl.0.as_secs(), 90);
    assert_eq!(c.aggregator.buffer_duration_for_past_timed_metric.0.as_millis(), 4950);
    let c = read("runtimeOptions:\n  writeNewMetricNoLimitWarmupDuration: 0\n").unwrap();
    assert!(c.aggregator.rate_limits.new_series_warmup.0.is_zero());
    let e = read("aggregator:\n  entryTTL: soon\n").unwrap_err();
    assert!(e.contains("aggregator.entryTTL"), "{e}");
}

#[test]
fn keys_sheaf_cannot_honour_are_refused_by_name() {
    for (yaml, key) in [
        ("aggregator:\n  hashType: xxhash\n", "aggregator.hashType"),
        ("aggregator:\n  stream:\n    eps: 0.01\n", "aggregator.stream.eps"),
        ("aggregator:\n  passthrough:\n    enabled: false\n", "aggregator.passthrough.enabled"),
        ("aggregator:\n  instanceID:\n    type: host_id_port_pair\n", "aggregator.instanceID.type"),
        ("aggregator:\n  hostID:\n    resolver: magic\n", "aggregator.hostID.resolver"),
        ("aggregator:\n  flush:\n    handlers:\n      - blackhole: {}\n", "aggregator.flush.handlers[0].blackhole"),
        ("aggregator:\n  entryTTLs: 1h\n", "aggregator.entryTTLs"),
        (
            "kvClient:\n  etcd:\n    etcdClusters:\n      - zone: a\n        endpoints: [x:1]\n        bogus: 1\n",
            "bogus",
        ),
    ] {
        let e = read(yaml).unwrap_err();
        assert!(e.contains(key), "{yaml}: {e}");
    }
}

#[test]
fn the_etcd_cluster_of_the_clients_zone_is_used() {
    let yaml = "kvClient:\n  etcd:\n    env: prod\n    zone: b\n    etcdClusters:\n      - zone: a\n        endpoints: [a:2379]\n      - zone: b\n        endpoints: [b1:2379, b2:2379]\n        tls:\n          caCrtPath: /ca.pem\n";
    let c = read(yaml).unwrap();
    let etcd = &c.cluster.unwrap().etcd;
    assert_eq!(etcd.endpoints, ["b1:2379", "b2:2379"]);
    assert_eq!(etcd.tls.as_ref().unwrap().ca_file.to_str(), Some("/ca.pem"));
    assert_eq!(etcd.environment, "prod");
}

#[test]
fn host_ids_come_from_config_or_environment() {
    let c = read("aggregator:\n  hostID:\n    resolver: config\n    value: agg-1\n").unwrap();
    assert_eq!(c.host_id.as_deref(), Some("agg-1"));
    let c = read("aggregator:\n  hostID:\n    resolver: environment\n    envVarName: MY_ID\n").unwrap();
    assert_eq!(c.host_id_env, "MY_ID");
}

#[test]
fn parse_reads_either_form() {
    let c = Config::parse("aggregator:\n  entryTTL: 2h\n  defaultStoragePolicies: [1m:40d]\n").unwrap();
    assert_eq!(c.aggregator.entry_ttl.0.as_secs(), 7200);
    assert!(c.m3_notes.is_some());
    let c = Config::parse("aggregator:\n  entry_ttl: 2h\n").unwrap();
    assert!(c.m3_notes.is_none());
    let c = Config::parse("aggregator:\n  default_storage_policies: []\n").unwrap();
    assert!(c.storage_policies().unwrap().is_empty(), "an empty list is M3's: nothing without metadata");
}

#[test]
fn the_producers_placement_override_and_staging_are_read() {
    let yaml = SEED.replace(
        "              topicName: aggregated_metrics\n",
        "              topicName: aggregated_metrics\n              placement:\n                isStaged: true\n              placementServiceOverride:\n                namespaces:\n                  placement: /placement\n",
    );
    assert_ne!(yaml, SEED, "the seed's dynamicBackend writer is where the test expects it");
    let config = read(&yaml).unwrap();
    match &config.aggregator.flush.handlers[..] {
        [crate::config::Handler::M3msg(m)] => {
            assert_eq!((m.placement_namespace.as_str(), m.placement_is_staged), ("/placement", true));
        }
        other => panic!("one m3msg handler expected, got {other:?}"),
    }
    let plain = read(SEED).unwrap();
    match &plain.aggregator.flush.handlers[..] {
        [crate::config::Handler::M3msg(m)] => {
            assert_eq!((m.placement_namespace.as_str(), m.placement_is_staged), ("_sd.placement", false));
        }
        other => panic!("one m3msg handler expected, got {other:?}"),
    }
}
