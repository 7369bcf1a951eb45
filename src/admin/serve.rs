//! Serving the admin router over a listener (plain TCP or [`super::TlsListener`]), as
//! `axum::serve` does, plus what it lacks: a client gets `http.header_read_timeout` to send a
//! request's headers (on a new connection and between keep-alive requests), after which its
//! connection is closed. A client that trickles half a request holds a task and a socket for
//! that long, not for ever.
//!
//! Control thread only (tokio current-thread runtime): one task accepts, one task per
//! connection. Dropping the [`serve`] future (the shutdown's abort) drops every connection.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// Serves `router` on `listener` until `closed` completes; then each connection finishes the
/// request it is answering and closes, and `serve` returns once all have.
pub async fn serve<L: Listener>(
    mut listener: L,
    router: Router,
    header_read_timeout: Duration,
    closed: impl Future<Output = ()>,
) {
    let (closing, closing_seen) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut closed = std::pin::pin!(closed);
    loop {
        tokio::select! {
            () = &mut closed => break,
            (io, _) = listener.accept() => {
                connections.spawn(connection(io, router.clone(), header_read_timeout, closing_seen.clone()));
            }
            // Reap finished connections as they go, so the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
}

async fn connection<Io>(io: Io, router: Router, header_read_timeout: Duration, mut closing: watch::Receiver<bool>)
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        router.clone().oneshot(request.map(Body::new))
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    let conn = http.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "admin connection ended");
            }
            return;
        }
        _ = closing.wait_for(|closing| *closing) => conn.as_mut().graceful_shutdown(),
    }
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "admin connection ended");
    }
}
