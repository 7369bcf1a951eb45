//! The `http:` section: where the admin API listens, the token its mutating requests need, and
//! its TLS. Read by the control thread, which serves the API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::Dur;
use super::error::{ConfigError, invalid};

/// The environment variable that holds the admin token; it wins over `http.auth_token_file`.
pub const ADMIN_TOKEN_ENV: &str = "SHEAF_ADMIN_TOKEN";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Admin API: `/health`, `/status`, `/metrics`, the placement API, `/resign`.
    pub listen_address: SocketAddr,
    /// File whose contents (trimmed) are the bearer token every POST/PUT/DELETE needs.
    /// `$SHEAF_ADMIN_TOKEN`, when set and not empty, wins over it.
    pub auth_token_file: Option<PathBuf>,
    /// Serve mutations without a token on a non-loopback `listen_address`. Off, such a config
    /// is refused at start.
    pub allow_unauthenticated: bool,
    /// HTTPS instead of HTTP.
    pub tls: Option<HttpTls>,
    /// How long a client gets to send a request's headers, on a new connection and between
    /// keep-alive requests; then its connection is closed.
    pub header_read_timeout: Dur,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen_address: ([127, 0, 0, 1], 6001).into(),
            auth_token_file: None,
            allow_unauthenticated: false,
            tls: None,
            header_read_timeout: Dur(Duration::from_secs(10)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTls {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates; when set, every client must present a certificate they signed.
    pub client_ca_file: Option<PathBuf>,
}

impl Http {
    /// The admin token: `$SHEAF_ADMIN_TOKEN` if set and not empty, else the trimmed contents
    /// of `auth_token_file`, else none. A token file that is empty is refused.
    pub fn admin_token(&self) -> Result<Option<String>, ConfigError> {
        if let Ok(token) = std::env::var(ADMIN_TOKEN_ENV)
            && !token.trim().is_empty()
        {
            return Ok(Some(token.trim().to_string()));
        }
        let Some(path) = &self.auth_token_file else { return Ok(None) };
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid("http.auth_token_file", format!("reading {}: {e}", path.display())))?;
        match text.trim() {
            "" => Err(invalid("http.auth_token_file", format!("{} is empty", path.display()))),
            token => Ok(Some(token.to_string())),
        }
    }

    /// Refuses a non-loopback `listen_address` whose mutations would need no token, unless
    /// `allow_unauthenticated` says so.
    pub fn check_exposure(&self, has_token: bool) -> Result<(), ConfigError> {
        if has_token || self.allow_unauthenticated || self.listen_address.ip().is_loopback() {
            return Ok(());
        }
        Err(invalid(
            "http.listen_address",
            format!(
                "{} is not a loopback address and no admin token is configured: set \
                 http.auth_token_file or ${ADMIN_TOKEN_ENV}, or http.allow_unauthenticated: true",
                self.listen_address
            ),
        ))
    }
}
