//! HTTPS for the admin API (`http.tls`): rustls with the ring provider, optional client
//! certificates. [`TlsListener`] is what `axum::serve` accepts from: a task accepts TCP
//! connections and runs each handshake in its own task under [`HANDSHAKE_TIMEOUT`], so a client
//! that stalls its handshake holds neither other clients nor the shutdown.
//!
//! Control thread only (tokio current-thread runtime).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;

use crate::config::HttpTls;

/// How long a client gets to finish its TLS handshake before its connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: reading {path}: {message}")]
    Pem { key: &'static str, path: String, message: String },
    #[error("{key}: {path} holds no {what}")]
    Empty { key: &'static str, path: String, what: &'static str },
    #[error("http.tls: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("http.tls.client_ca_file: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
}

/// Reads every certificate of a PEM file.
pub fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |e: rustls_pki_types::pem::Error| TlsError::Pem {
        key,
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let certs =
        CertificateDer::pem_file_iter(path).map_err(pem_error)?.collect::<Result<Vec<_>, _>>().map_err(pem_error)?;
    if certs.is_empty() {
        return Err(TlsError::Empty { key, path: path.display().to_string(), what: "PEM certificate" });
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file.
pub fn read_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            TlsError::Empty { key, path: path.display().to_string(), what: "PEM private key" }
        }
        e => TlsError::Pem { key, path: path.display().to_string(), message: e.to_string() },
    })
}

/// The server side of `http.tls`: its certificate, and the client CAs when it asks for them.
pub fn server_config(tls: &HttpTls) -> Result<Arc<ServerConfig>, TlsError> {
    // ring rather than aws-lc-rs: aws-lc-rs needs cmake and clang to build. rustls deprecates
    // ring's provider for its lack of post-quantum key exchange, which an admin port can spare.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs("http.tls.cert_file", &tls.cert_file)?;
    let key = read_key("http.tls.key_file", &tls.key_file)?;
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs("http.tls.client_ca_file", path)? {
                roots.add(cert)?;
            }
            builder
                .with_client_cert_verifier(WebPkiClientVerifier::builder_with_provider(roots.into(), provider).build()?)
        }
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Hands `axum::serve` the connections whose handshake succeeded.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Starts accepting on `tcp`; the accept task ends when the listener is dropped.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (done, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    accepted = tcp.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "admin accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                    () = done.closed() => return,
                };
                let (acceptor, done) = (acceptor.clone(), done.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = done.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::info!(%peer, error = %e, "admin TLS handshake failed"),
                        Err(_) => tracing::info!(%peer, "admin TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task only ends once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
