//! Bearer-token auth of the admin API's mutating requests (every method but GET, HEAD and
//! OPTIONS): the placement operations, `/resign`, `/_flush/synced`, and whatever changes state
//! later; and the one read that hands out shard data (`/api/v1/shards/{id}/checkpoint`).
//! Other reads stay open. Without a configured token mutations are open too, which start-up allows only on a
//! loopback address or with `http.allow_unauthenticated: true`.
//!
//! Control thread only: the middleware runs in the admin server's tasks; the counters are
//! atomics so `/metrics` can read them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

/// The token mutations need, and the refusals counted.
#[derive(Debug, Default)]
pub struct AdminAuth {
    token: Option<Vec<u8>>,
    /// Mutations refused for carrying no bearer token (401).
    pub missing_token: AtomicU64,
    /// Mutations refused for carrying another token (403).
    pub wrong_token: AtomicU64,
}

impl AdminAuth {
    pub fn new(token: Option<String>) -> Self {
        Self { token: token.map(String::into_bytes), ..Self::default() }
    }

    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    /// The token, for this node's own requests to its peers (peer recovery).
    pub fn token(&self) -> Option<String> {
        self.token.as_ref().map(|t| String::from_utf8_lossy(t).into_owned())
    }
}

/// Reads that hand out shard data (a shard's checkpoint, for peer recovery) need the token
/// as mutations do.
fn guarded_read(path: &str) -> bool {
    path.starts_with("/api/v1/shards/") && path.ends_with("/checkpoint")
}

/// Lets reads through; a mutation needs `Authorization: Bearer TOKEN` when a token is set.
pub async fn require_token(State(auth): State<Arc<AdminAuth>>, request: Request, next: Next) -> Response {
    let Some(token) = &auth.token else { return next.run(request).await };
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) && !guarded_read(request.uri().path())
    {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match presented {
        None => {
            auth.missing_token.fetch_add(1, Relaxed);
            tracing::warn!(method = %request.method(), path = %request.uri().path(), "admin request without a token refused");
            let body = json!({"state": "Error", "error": "this request needs Authorization: Bearer TOKEN"});
            (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], Json(body)).into_response()
        }
        Some(p) if constant_time_eq(p.as_bytes(), token) => next.run(request).await,
        Some(_) => {
            auth.wrong_token.fetch_add(1, Relaxed);
            tracing::warn!(method = %request.method(), path = %request.uri().path(), "admin request with a wrong token refused");
            let body = json!({"state": "Error", "error": "wrong admin token"});
            (StatusCode::FORBIDDEN, Json(body)).into_response()
        }
    }
}

/// Equality whose time depends on the lengths only, not on where the bytes first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let longest = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..longest {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    // Keeps the compiler from ending the loop at the first difference.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
