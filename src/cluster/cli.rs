//! `sheaf placement init|get|add|remove|replace`: the placement API without a running node,
//! straight against etcd (with the TLS and user of the config's `cluster.etcd`), with the same
//! JSON bodies and responses as the HTTP API.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::api::{self, Op};
use super::etcd::{Endpoints, Keys, Store};
use crate::config::{ClusterConfig, Config};

/// Where the placement lives: the `cluster:` section of `config`, with `etcd` overriding the
/// endpoints when given.
pub fn run(config: Option<&Path>, etcd: Option<String>, op: Op, body: Option<PathBuf>) -> anyhow::Result<()> {
    let mut cluster: ClusterConfig = match config {
        Some(p) => Config::load(p)?.cluster.context("the config has no `cluster:` section")?,
        None => ClusterConfig::default(),
    };
    if let Some(endpoints) = etcd {
        cluster.etcd.endpoints = endpoints.split(',').map(str::to_string).collect();
    }
    let body = match body {
        None => Vec::new(),
        Some(p) if p.as_os_str() == "-" => {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b).context("reading the request body from stdin")?;
            b
        }
        Some(p) => std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?,
    };
    if op != Op::Get && body.is_empty() {
        anyhow::bail!("this operation needs a JSON body: --file FILE (or - for stdin)");
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = Store::connect(&Endpoints::from_config(&cluster.etcd)?)
            .await
            .with_context(|| format!("connecting to etcd at {:?}", cluster.etcd.endpoints))?;
        let keys = Keys { environment: cluster.etcd.environment.clone(), service: cluster.service.clone() };
        let response = api::run(&store, &keys, &cluster, op, &body).await?;
        println!("{}", serde_json::to_string_pretty(&response)?);
        Ok(())
    })
}
