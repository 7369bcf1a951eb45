//! The admin API's guard: mutations need the bearer token (401 without, 403 with a wrong one),
//! reads stay open, a non-loopback admin port without a token is refused at start, and the
//! admin API speaks HTTPS with client certificates when `http.tls` says so.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::certs::Certs;
use crate::etcd::Etcd;
use crate::harness::tempdir::Dir;
use crate::harness::{Launch, Sheaf, free_port, http_call, http_get};

const INIT: &str = "/api/v1/services/m3aggregator/placement/init";

fn post(sheaf: &Sheaf, path: &str, token: Option<&str>, body: &str) -> (u16, String, String) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("Authorization", b.as_str())).collect();
    http_call(sheaf.admin, "POST", path, &headers, body).unwrap()
}

#[test]
fn cluster_mutations_need_the_admin_token_and_reads_stay_open() {
    let etcd = Etcd::start("admin-auth");
    let secrets = Dir::new("admin-auth-token");
    let token_file = secrets.0.join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let top = format!(
        "num_shards: 4\nhost_id: \"a\"\ncluster:\n  etcd: {{endpoints: [\"{}\"]}}\n  election: {{ttl: 2s}}\n",
        etcd.endpoint()
    );
    let http = format!(", auth_token_file: \"{}\"", token_file.display());
    let sheaf = Sheaf::launch("admin-auth", Launch { top: &top, http: &http, ..Launch::default() });
    let body = format!(
        r#"{{"num_shards":4,"replication_factor":1,"instances":[{{"id":"a","isolation_group":"g","zone":"embedded","weight":100,"endpoint":"{m}","hostname":"a","port":{p}}}]}}"#,
        m = sheaf.m3msg,
        p = sheaf.m3msg.port()
    );

    let (code, head, _) = post(&sheaf, INIT, None, &body);
    assert_eq!(code, 401, "{head}");
    assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{head}");
    let (code, head, _) = post(&sheaf, INIT, Some("s3cret-tokem"), &body);
    assert_eq!(code, 403, "{head}");
    for path in ["/resign", "/api/v1/services/m3aggregator/placement/remove"] {
        assert_eq!(post(&sheaf, path, None, "{}").0, 401, "{path}");
    }
    // Reads need no token.
    for path in ["/health", "/status", "/metrics"] {
        http_get(sheaf.admin, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    }
    // Not refused for want of a token, and the refused init changed nothing.
    let (code, _, resp) = http_call(sheaf.admin, "GET", "/api/v1/services/m3aggregator/placement", &[], "").unwrap();
    assert_eq!(code, 404, "no placement yet: {resp}");
    let (code, _, resp) = post(&sheaf, INIT, Some("s3cret-token"), &body);
    assert_eq!(code, 200, "with the token: {resp}");
    assert_eq!(sheaf.metric("sheaf_admin_auth_failures_total", &[("reason", "missing_token")]), 3.0);
    assert_eq!(sheaf.metric("sheaf_admin_auth_failures_total", &[("reason", "wrong_token")]), 1.0);
    assert_eq!(sheaf.metric("sheaf_admin_auth_enabled", &[]), 1.0);
    assert_eq!(sheaf.status()["admin"], serde_json::json!({"auth_required": true, "tls": false}));
    sheaf.stop();
}

#[test]
fn the_token_variable_wins_over_the_token_file() {
    let secrets = Dir::new("admin-env-token");
    let token_file = secrets.0.join("token");
    std::fs::write(&token_file, "from-file").unwrap();
    let http = format!(", auth_token_file: \"{}\"", token_file.display());
    let env = [("SHEAF_ADMIN_TOKEN", "from-env")];
    let sheaf = Sheaf::launch("admin-env-token", Launch { http: &http, env: &env, ..Launch::default() });
    assert_eq!(post(&sheaf, "/resign", Some("from-file"), "").0, 403);
    // Past the guard, the embedded node answers that cluster mode is off.
    let (code, _, resp) = post(&sheaf, "/resign", Some("from-env"), "");
    assert_eq!(code, 503, "{resp}");
    assert!(resp.contains("cluster mode is off"), "{resp}");
    sheaf.stop();
}

#[test]
fn without_a_token_mutations_stay_open_on_loopback() {
    let sheaf = Sheaf::start("admin-open", "");
    let (code, _, resp) = post(&sheaf, "/resign", None, "");
    assert_eq!(code, 503, "{resp}");
    assert_eq!(sheaf.metric("sheaf_admin_auth_enabled", &[]), 0.0);
    sheaf.stop();
}

#[test]
fn a_non_loopback_admin_port_without_a_token_is_refused_at_start() {
    let dir = Dir::new("admin-exposed");
    let config = format!(
        "cores: [0]\npin_cores: false\nhttp: {{listen_address: \"0.0.0.0:{admin}\"}}\n\
         m3msg: {{server: {{listen_address: \"127.0.0.1:{m3msg}\"}}}}\n\
         statsd:\n  udp: {{listen_address: \"127.0.0.1:{statsd}\"}}\n  tcp: {{listen_address: \"127.0.0.1:{statsd}\"}}\n\
         aggregator:\n  flush:\n    handlers:\n      - json: {{path: \"{out}\"}}\n",
        admin = free_port(),
        m3msg = free_port(),
        statsd = free_port(),
        out = dir.0.join("out.jsonl").display(),
    );
    let path = dir.0.join("exposed.yaml");
    std::fs::write(&path, config).unwrap();
    let mut exposed = Command::new(env!("CARGO_BIN_EXE_sheaf"))
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("SHEAF_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = exposed.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            exposed.kill().unwrap();
            let _ = exposed.wait();
            panic!("sheaf started with its admin API on 0.0.0.0 and no token");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(exposed.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    for key in ["http.listen_address", "http.auth_token_file", "SHEAF_ADMIN_TOKEN", "http.allow_unauthenticated"] {
        assert!(stderr.contains(key), "the refusal must name {key}: {stderr}");
    }

    // Said explicitly, it starts; so it does with a token.
    let open = Sheaf::launch(
        "admin-exposed-open",
        Launch { admin_host: Some("0.0.0.0"), http: ", allow_unauthenticated: true", ..Launch::default() },
    );
    assert_eq!(post(&open, "/resign", None, "").0, 503);
    open.stop();
    let env = [("SHEAF_ADMIN_TOKEN", "t")];
    let guarded =
        Sheaf::launch("admin-exposed-token", Launch { admin_host: Some("0.0.0.0"), env: &env, ..Launch::default() });
    assert_eq!(post(&guarded, "/resign", None, "").0, 401);
    guarded.stop();
}

/// `curl` to the admin API at `scheme:///path`; `Some(body)` on success.
fn curl(admin: SocketAddr, certs: &Certs, client_cert: bool, url: &str) -> Option<String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "--max-time", "10", "--cacert"]).arg(&certs.ca);
    if client_cert {
        cmd.arg("--cert").arg(&certs.client_cert).arg("--key").arg(&certs.client_key);
    }
    let (scheme, path) = url.split_once("://").unwrap();
    let out = cmd.arg(format!("{scheme}://127.0.0.1:{}{path}", admin.port())).output().expect("curl not found");
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_admin_api_speaks_https_with_client_certificates() {
    let dir = Dir::new("admin-tls-certs");
    let certs = Certs::generate(&dir.0);
    let http = format!(
        ", tls: {{cert_file: \"{}\", key_file: \"{}\", client_ca_file: \"{}\"}}",
        certs.server_cert.display(),
        certs.server_key.display(),
        certs.ca.display()
    );
    let ready = |admin| curl(admin, &certs, true, "https:///health").is_some();
    let sheaf = Sheaf::launch("admin-tls", Launch { http: &http, admin_ready: Some(&ready), ..Launch::default() });
    let body =
        curl(sheaf.admin, &certs, true, "https:///health").expect("GET /health over TLS with a client certificate");
    assert!(body.contains("OK"), "{body}");
    let status = curl(sheaf.admin, &certs, true, "https:///status").expect("GET /status over TLS");
    assert!(status.contains(r#""tls":true"#), "{status}");
    assert_eq!(curl(sheaf.admin, &certs, false, "https:///health"), None, "a client without a certificate is refused");
    assert_eq!(curl(sheaf.admin, &certs, true, "http:///health"), None, "plain HTTP to the TLS port fails");
    assert!(http_get(sheaf.admin, "/health").is_err(), "plain HTTP to the TLS port fails");
    // A client that opens a connection and never starts its handshake holds nothing.
    let stalled = std::net::TcpStream::connect(sheaf.admin).unwrap();
    sheaf.stop();
    drop(stalled);
}
