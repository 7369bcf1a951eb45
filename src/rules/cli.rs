//! `sheaf rules get|set --file FILE`: the cluster's rule set straight in etcd, without a running
//! node (with the TLS and user of the config's `cluster.etcd`, or `--etcd`). `set` checks the
//! rule set whole and gives it a cutover as `PUT /api/v1/rules` does; every node picks it up
//! through its watch. Main thread.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sheaf_shard_core::time::now_nanos;

use super::{StoredRules, cutover_after, etcd_key};
use crate::cluster::etcd::{Endpoints, Store};
use crate::cluster::store::ClusterStore;
use crate::config::{ClusterConfig, Config, RulesConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Set,
}

pub fn run(config: Option<&Path>, etcd: Option<String>, op: Op, file: Option<PathBuf>) -> anyhow::Result<()> {
    let loaded = config.map(Config::load).transpose()?;
    let mut cluster: ClusterConfig = match &loaded {
        Some(c) => c.cluster.clone().context("the config has no `cluster:` section")?,
        None => ClusterConfig::default(),
    };
    if let Some(endpoints) = etcd {
        cluster.etcd.endpoints = endpoints.split(',').map(str::to_string).collect();
    }
    let loaded = loaded.unwrap_or_default();
    let new_rules = match (op, file) {
        (Op::Get, _) => None,
        (Op::Set, None) => anyhow::bail!("rules set needs --file FILE (JSON or YAML, or - for stdin)"),
        (Op::Set, Some(path)) => {
            let text = if path.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).context("reading the rule set from stdin")?;
                text
            } else {
                std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
            };
            let rules: RulesConfig = serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("bad rule set: {e}"))?;
            let compiled = rules.compile(loaded.min_resolution_nanos()).context("invalid rule set")?;
            let defaults = loaded.storage_policies()?;
            let cutover = cutover_after(now_nanos(), compiled.policies().chain(defaults));
            Some(StoredRules { cutover_nanos: cutover, rules })
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = Store::connect(&Endpoints::from_config(&cluster.etcd)?)
            .await
            .with_context(|| format!("connecting to etcd at {:?}", cluster.etcd.endpoints))?;
        let key = etcd_key(&cluster.etcd.environment);
        match new_rules {
            None => {
                let current = store.get(&key).await?;
                let rules = match current.value {
                    Some(v) => {
                        serde_json::from_slice::<StoredRules>(&v).with_context(|| format!("reading {key}"))?.rules
                    }
                    None => RulesConfig::default(),
                };
                println!("{}", serde_json::to_string_pretty(&rules)?);
            }
            Some(stored) => {
                store.put(&key, serde_json::to_vec(&stored)?).await?;
                println!("{}", serde_json::json!({"state": "OK", "key": key, "cutoverNanos": stored.cutover_nanos}));
            }
        }
        Ok(())
    })
}
