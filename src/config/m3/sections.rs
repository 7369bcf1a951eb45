//! The sections of an M3 config that the key table cannot map one key at a time: where the
//! host id comes from, which etcd cluster to use, and the flush handlers. Pure, apart from
//! reading the host name or a host-id file when the config asks for them.

use serde_json::Value;

use super::note::{Outcome, Step, go_duration};
use crate::config::error::{ConfigError, invalid};

/// `aggregator.hostID`: `resolver` is `environment` (`envVarName`), `config` (`value`),
/// `hostname`, or `file` (`file.path`).
pub(super) fn host_id(key: &str, value: &Value) -> Result<Vec<Step>, ConfigError> {
    let field = |name: &str| value.get(name).and_then(Value::as_str);
    let resolver = field("resolver").unwrap_or("hostname");
    let (target, id) = match resolver {
        "environment" => {
            let var = field("envVarName")
                .ok_or_else(|| invalid(format!("{key}.envVarName"), "is required with resolver: environment"))?;
            ("host_id_env", var.to_owned())
        }
        "config" => {
            let id =
                field("value").ok_or_else(|| invalid(format!("{key}.value"), "is required with resolver: config"))?;
            ("host_id", id.to_owned())
        }
        "hostname" => ("host_id", read_trimmed(key, "/proc/sys/kernel/hostname")?),
        "file" => {
            let path = value.get("file").and_then(|f| f.get("path")).and_then(Value::as_str);
            let path = path.ok_or_else(|| invalid(format!("{key}.file.path"), "is required with resolver: file"))?;
            ("host_id", read_trimmed(key, path)?)
        }
        other => {
            return Err(invalid(
                format!("{key}.resolver"),
                format!("{other} is not supported: use environment, config, hostname or file"),
            ));
        }
    };
    Ok(vec![Step::became(key, value, target, Value::String(id))])
}

fn read_trimmed(key: &str, path: &str) -> Result<String, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Ok(_) => Err(invalid(key, format!("{path} is empty"))),
        Err(e) => Err(invalid(key, format!("reading {path}: {e}"))),
    }
}

/// `kvClient.etcd.etcdClusters`: the entry of `kvClient.etcd.zone` (or the only one) gives
/// the endpoints and TLS files.
pub(super) fn etcd_clusters(zone: Option<&str>, key: &str, value: &Value) -> Result<Vec<Step>, ConfigError> {
    let clusters = value.as_array().ok_or_else(|| invalid(key, "expected a list of {zone, endpoints}"))?;
    let zone_of = |c: &Value| c.get("zone").and_then(Value::as_str).map(str::to_owned);
    let index = match zone {
        Some(zone) => clusters.iter().position(|c| zone_of(c).as_deref() == Some(zone)),
        None if clusters.len() == 1 => Some(0),
        None => None,
    };
    let Some(i) = index else {
        return Err(invalid(key, "needs the entry whose zone is kvClient.etcd.zone"));
    };
    let mut steps = Vec::new();
    for (j, cluster) in clusters.iter().enumerate() {
        let shown = format!("{key}[{j}]");
        let Some(fields) = cluster.as_object() else {
            return Err(invalid(shown, "expected a mapping of zone, endpoints, ..."));
        };
        if j != i {
            steps.push(Step::noted(&shown, cluster, Outcome::Ignored("another zone's etcd")));
            continue;
        }
        for (name, v) in fields {
            let at = format!("{shown}.{name}");
            match name.as_str() {
                "zone" => steps.push(Step::noted(&at, v, Outcome::AsSheafDoes("the zone kvClient.etcd.zone names"))),
                "endpoints" => {
                    let list = v.as_array().filter(|l| !l.is_empty() && l.iter().all(Value::is_string));
                    let list = list.ok_or_else(|| invalid(&at, "expected a list of host:port"))?;
                    steps.push(Step::became(&at, v, "cluster.etcd.endpoints", Value::Array(list.clone())));
                }
                "tls" => steps.extend(etcd_tls(&at, v)?),
                "dialTimeout" => {
                    let d = go_duration(&at, v)?;
                    steps.push(Step::became(&at, v, "cluster.etcd.request_timeout", Value::String(d)));
                }
                "keepAlive" | "autoSyncInterval" => steps.push(Step::noted(
                    &at,
                    v,
                    Outcome::Ignored("etcd client tuning; sheaf's client keeps its defaults"),
                )),
                _ => return Err(invalid(at, "not an etcdClusters key sheaf knows")),
            }
        }
    }
    Ok(steps)
}

fn etcd_tls(key: &str, value: &Value) -> Result<Vec<Step>, ConfigError> {
    let fields = value.as_object().ok_or_else(|| invalid(key, "expected crtPath, keyPath, caCrtPath"))?;
    let mut steps = Vec::new();
    for (name, v) in fields {
        let at = format!("{key}.{name}");
        let target = match name.as_str() {
            "crtPath" => "cluster.etcd.tls.cert_file",
            "keyPath" => "cluster.etcd.tls.key_file",
            "caCrtPath" => "cluster.etcd.tls.ca_file",
            _ => return Err(invalid(at, "not an etcd tls key sheaf knows (crtPath, keyPath, caCrtPath)")),
        };
        steps.push(Step::became(&at, v, target, v.clone()));
    }
    Ok(steps)
}

/// One `aggregator.flush.handlers[]` entry. `dynamicBackend` (m3msg to a topic) becomes an
/// m3msg handler producing to that topic.
pub(super) fn flush_handler(key: &str, value: &Value) -> Result<Vec<Step>, ConfigError> {
    let fields = value.as_object().ok_or_else(|| invalid(key, "expected a mapping with one handler kind"))?;
    let mut steps = Vec::new();
    let index = &key[key.rfind('[').unwrap_or(key.len())..];
    for (kind, v) in fields {
        let at = format!("{key}.{kind}");
        if kind != "dynamicBackend" {
            return Err(invalid(
                at,
                "not supported: sheaf's flush handlers from an M3 config are dynamicBackend (m3msg)",
            ));
        }
        let backend = v.as_object().ok_or_else(|| invalid(&at, "expected name, hashType, producer"))?;
        for (name, field) in backend {
            let inner = format!("{at}.{name}");
            match name.as_str() {
                "name" => steps.push(Step::noted(
                    &inner,
                    field,
                    Outcome::Ignored("a label; sheaf names the sink after its topic"),
                )),
                "hashType" => {
                    if field.as_str() != Some("murmur32") {
                        return Err(invalid(inner, "is not supported: sheaf shards ids with murmur3 32-bit"));
                    }
                    steps.push(Step::noted(&inner, field, Outcome::AsSheafDoes("murmur3 32-bit, M3's default")));
                }
                "producer" => steps.extend(producer(&inner, field, index)?),
                _ => return Err(invalid(inner, "not a dynamicBackend key sheaf knows")),
            }
        }
    }
    Ok(steps)
}

fn producer(key: &str, value: &Value, index: &str) -> Result<Vec<Step>, ConfigError> {
    let topic = value.get("writer").and_then(|w| w.get("topicName")).filter(|t| t.is_string());
    let topic = topic.ok_or_else(|| invalid(format!("{key}.writer.topicName"), "is required"))?;
    let target = format!("aggregator.flush.handlers{index}.m3msg.topic");
    let mut steps = vec![Step::became(&format!("{key}.writer.topicName"), topic, &target, topic.clone())];
    if let Some(fields) = value.as_object() {
        for (name, v) in fields.iter().filter(|(name, _)| name.as_str() != "writer") {
            steps.push(Step::noted(
                &format!("{key}.{name}"),
                v,
                Outcome::Ignored("m3msg producer tuning of the Go client"),
            ));
        }
    }
    if let Some(writer) = value.get("writer").and_then(Value::as_object) {
        let handler = format!("aggregator.flush.handlers{index}.m3msg");
        for (name, v) in writer.iter().filter(|(name, _)| name.as_str() != "topicName") {
            let at = format!("{key}.writer.{name}");
            let namespace = v.get("namespaces").and_then(|n| n.get("placement")).filter(|p| p.is_string());
            let staged = v.get("isStaged").filter(|b| b.is_boolean());
            match (name.as_str(), namespace, staged) {
                ("placementServiceOverride", Some(ns), _) => steps.push(Step::became(
                    &format!("{at}.namespaces.placement"),
                    ns,
                    &format!("{handler}.placement_namespace"),
                    ns.clone(),
                )),
                ("placement", _, Some(b)) => steps.push(Step::became(
                    &format!("{at}.isStaged"),
                    b,
                    &format!("{handler}.placement_is_staged"),
                    b.clone(),
                )),
                ("topicServiceOverride" | "placementServiceOverride", ..) => steps.push(Step::noted(
                    &at,
                    v,
                    Outcome::Ignored("sheaf reads the topic in kvClient.etcd's environment"),
                )),
                _ => steps.push(Step::noted(&at, v, Outcome::Ignored("m3msg writer tuning of the Go client"))),
            }
        }
    }
    Ok(steps)
}
