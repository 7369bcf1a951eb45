//! The control thread: a tokio current-thread runtime that starts the cores (through the
//! `ShardPool`, i.e. their command queues), serves the admin API, and on SIGTERM/SIGINT
//! runs the ordered shutdown. It never touches core state directly.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use sheaf_shard_runtime::{PoolConfig, PoolServices, ShardPool};

use crate::admin::{self, AdminAuth, AdminState, SinkView, TlsListener};
use crate::cluster::etcd::Endpoints;
use crate::cluster::node::{Agent, Request};
use crate::cluster::runtime_options;
use crate::config::Config;
use crate::rules::{self, Rules};

/// The secrets the control thread serves with, read on the main thread before any other
/// thread starts, so a missing file or an exposed admin port stops the start at once.
pub struct Credentials {
    auth: Arc<AdminAuth>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    etcd: Option<Endpoints>,
}

impl Credentials {
    /// The admin token (refusing a non-loopback admin port without one unless the config
    /// allows it), the admin TLS config, and how to reach etcd.
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        let token = config.http.admin_token()?;
        config.http.check_exposure(token.is_some())?;
        if token.is_none() && !config.http.listen_address.ip().is_loopback() {
            tracing::warn!(
                listen_address = %config.http.listen_address,
                "the admin API's placement, rules and topic changes need no token on a non-loopback address; set ${} or http.auth_token_file",
                crate::config::ADMIN_TOKEN_ENV
            );
        }
        let tls = config.http.tls.as_ref().map(admin::tls_server_config).transpose()?;
        let etcd = config.cluster.as_ref().map(|c| Endpoints::from_config(&c.etcd)).transpose()?;
        Ok(Self { auth: Arc::new(AdminAuth::new(token)), tls, etcd })
    }
}

pub fn run(
    config: Config,
    credentials: Credentials,
    pool_config: PoolConfig,
    services: PoolServices,
    sinks: Vec<SinkView>,
) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("building the control runtime")?;
    runtime.block_on(serve(config, credentials, pool_config, services, sinks))
}

async fn serve(
    config: Config,
    credentials: Credentials,
    pool_config: PoolConfig,
    services: PoolServices,
    sink_views: Vec<SinkView>,
) -> anyhow::Result<()> {
    let Credentials { auth, tls, etcd } = credentials;
    let metrics_listener = match config.metrics.listen_address {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("metrics.listen_address: cannot listen on {addr}"))?,
        ),
        None => None,
    };
    let http = tokio::net::TcpListener::bind(config.http.listen_address)
        .await
        .with_context(|| format!("http.listen_address: cannot listen on {}", config.http.listen_address))?;
    let cpus = pool_config.cpus.clone();
    let sink_queues = services.sinks.clone();
    let reports = services.flush_reports.clone();
    let pool = ShardPool::start(pool_config, services).context("starting the shard cores")?;
    // The rule set reaches every core before its first value does.
    let rules_store = match (&config.cluster, &etcd) {
        (Some(c), Some(endpoints)) => Some(rules::RulesStore::new(endpoints.clone(), &c.etcd.environment)),
        _ => None,
    };
    let rules = Rules::new(
        config.rules.clone(),
        config.min_resolution_nanos(),
        config.storage_policies()?,
        pool.commander(),
        rules_store,
    )
    .context("rules")?;
    rules.read_stored().await;
    rules.spawn_watch();
    // Cluster mode: the cores own nothing and emit nothing until the placement and the
    // election say so; that is settled before a single value is read. Peer recovery waits
    // for the checkpoints to be loaded.
    let (loaded_tx, loaded_rx) = tokio::sync::watch::channel(false);
    let cluster = match (&config.cluster, etcd) {
        (Some(c), Some(etcd)) => {
            let agent = Agent::new(
                c.clone(),
                config.resolved_host_id()?,
                config.num_shards,
                pool.commander(),
                pool.shard_owners(),
                sink_queues,
                reports,
            );
            // Peers recover shards from this node's admin API, at the address it listens on
            // (plain HTTP only: over HTTPS, or on 0.0.0.0, no address is advertised and peers
            // fall back to waiting for the flush times).
            let admin =
                http.local_addr().ok().filter(|a| !a.ip().is_unspecified() && tls.is_none()).map(|a| a.to_string());
            let handle = agent.start(etcd, admin, auth.token(), loaded_rx.clone()).await;
            let options = runtime_options::spawn(
                handle.store.clone(),
                handle.keys.clone(),
                config.aggregator.rate_limits,
                config.num_shards,
                pool.commander(),
            );
            Some((handle, options))
        }
        _ => None,
    };
    let (cluster, runtime_options) = cluster.unzip();
    if pool.config().checkpoint.is_some() {
        match pool.load_checkpoints().await {
            Ok(loaded) => crate::admin::log_checkpoint_load(&loaded),
            Err(e) => {
                let _ = pool.stop(false).await;
                return Err(e).context("loading the shard checkpoints");
            }
        }
    }
    loaded_tx.send_replace(true);
    let bound = match pool.start_ingest().await {
        Ok(b) => b,
        Err(e) => {
            let _ = pool.stop(false).await;
            return Err(e).context("starting ingest");
        }
    };
    let admin_addr = http.local_addr()?;
    tracing::info!(
        cores = ?cpus,
        num_shards = config.num_shards,
        m3msg = ?bound.m3msg,
        statsd_udp = ?bound.statsd_udp,
        statsd_tcp = ?bound.statsd_tcp,
        statsd_unix = ?bound.statsd_unix,
        admin = %admin_addr,
        admin_tls = tls.is_some(),
        admin_auth = auth.enabled(),
        "sheaf ready"
    );
    let state = Arc::new(AdminState {
        stats: pool.stats_reader(),
        cluster: cluster.clone(),
        sinks: sink_views,
        ingest: bound,
        shard_owners: pool.shard_owners(),
        started: Instant::now(),
        auth,
        runtime_options,
        tls: tls.is_some(),
        rules,
        data_dir: config.data_dir.clone(),
        cores: pool.commander(),
    });
    // The admin API closes last: it keeps answering while the cores stop, and a client that
    // never finishes its request cannot hold the shutdown (see `close_admin`).
    let (close, closed) = tokio::sync::oneshot::channel::<()>();
    let closed = async {
        let _ = closed.await;
    };
    let header_read_timeout = config.http.header_read_timeout.0;
    if let Some(listener) = metrics_listener {
        // Serves until the runtime ends, after the admin API has closed.
        let router = admin::metrics_router(state.clone());
        tokio::spawn(admin::serve(listener, router, header_read_timeout, std::future::pending()));
    }
    let mut server = Some(match tls {
        None => tokio::spawn(admin::serve(http, admin::router(state), header_read_timeout, closed)),
        Some(tls) => {
            let listener = TlsListener::new(http, tls).context("http.tls: starting the TLS listener")?;
            tokio::spawn(admin::serve(listener, admin::router(state), header_read_timeout, closed))
        }
    });
    tokio::select! {
        () = shutdown_signal() => {}
        result = server.as_mut().expect("admin server task") => {
            server = None;
            match result {
                Ok(()) => tracing::error!("admin server ended; shutting down"),
                Err(e) => tracing::error!(error = %e, "admin server task failed; shutting down"),
            }
        }
    }
    tracing::info!("stopping: ingest closed, flushing");
    // In a cluster the open windows belong to whoever leads next, and with data_dir to the
    // next start (they are checkpointed): emit only closed ones.
    let include_open = config.aggregator.shutdown_flush_open_windows && cluster.is_none() && config.data_dir.is_none();
    pool.stop(include_open).await.context("stopping the shard cores")?;
    if let Some(c) = cluster {
        // Persist what the final flush emitted, then give leadership up.
        let (reply, done) = tokio::sync::oneshot::channel();
        if c.requests.send(Request::Shutdown(reply)).await.is_ok() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), done).await;
        }
    }
    close_admin(close, server).await;
    Ok(())
}

/// How long the admin API's requests in flight get to finish once the cores have stopped.
const ADMIN_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Stops the admin server: requests in flight get `ADMIN_DRAIN` to finish, then every
/// connection left (a client that sent half a request and waits, say) is dropped.
async fn close_admin(close: tokio::sync::oneshot::Sender<()>, server: Option<tokio::task::JoinHandle<()>>) {
    let _ = close.send(());
    let Some(mut server) = server else { return };
    if tokio::time::timeout(ADMIN_DRAIN, &mut server).await.is_err() {
        tracing::warn!("admin connections still open after {ADMIN_DRAIN:?}; closing them");
        server.abort();
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
