//! sheaf against an etcd that wants credentials: a user and password (etcd's auth), or TLS with
//! client certificates. Both the node agent and `sheaf placement` use what `cluster.etcd` says;
//! without it they fail with etcd's reason.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::certs::Certs;
use crate::etcd::Etcd;
use crate::harness::tempdir::Dir;
use crate::harness::{Launch, Sheaf, wait_until};

const PLACEMENT: &str = r#"{"num_shards":4,"replication_factor":1,"instances":[{"id":"a","isolation_group":"g","zone":"embedded","weight":100,"endpoint":"127.0.0.1:1","hostname":"a","port":1}]}"#;

/// `sheaf placement ARGS --config` over a config whose `cluster.etcd` is `etcd`.
fn placement(dir: &Path, etcd: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let config = dir.join(format!("cli-{}.yaml", args.join("-")));
    std::fs::write(&config, format!("host_id: a\ncluster:\n  etcd: {etcd}\n")).unwrap();
    std::fs::write(dir.join("placement.json"), PLACEMENT).unwrap();
    Command::new(env!("CARGO_BIN_EXE_sheaf"))
        .arg("placement")
        .args(args)
        .arg("--config")
        .arg(&config)
        .current_dir(dir)
        .env_remove("SHEAF_ETCD_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A cluster node on `etcd` (the YAML of `cluster.etcd`), waited on until etcd answers it.
fn node(tag: &str, etcd: &str, env: &[(&str, &str)]) -> Sheaf {
    let top = format!("num_shards: 4\nhost_id: a\ncluster:\n  etcd: {etcd}\n");
    let node = Sheaf::launch(tag, Launch { top: &top, env, ..Launch::default() });
    wait_until(
        "the node reaches etcd",
        Duration::from_secs(60),
        || node.metric("sheaf_cluster_etcd_connected", &[]) == 1.0,
        || node.stderr(),
    );
    node
}

#[test]
fn sheaf_logs_in_to_etcd_with_a_user_and_password() {
    let etcd = Etcd::start("etcd-auth");
    let endpoint = etcd.endpoint();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut client = etcd_client::Client::connect([endpoint.as_str()], None).await.unwrap();
        client.user_add("root", "pa55word", None).await.unwrap();
        client.user_grant_role("root", "root").await.unwrap();
        client.auth_enable().await.unwrap();
    });
    let dir = Dir::new("etcd-auth-cli");
    let password_file = dir.0.join("password");
    std::fs::write(&password_file, "pa55word\n").unwrap();

    let anonymous = placement(&dir.0, &format!("{{endpoints: [\"{endpoint}\"]}}"), &["get"], &[]);
    assert!(!anonymous.status.success());
    assert!(text(&anonymous).contains("user name is empty"), "{}", text(&anonymous));
    let with_user = format!("{{endpoints: [\"{endpoint}\"], username: root}}");
    let no_password = placement(&dir.0, &with_user, &["get"], &[]);
    assert!(text(&no_password).contains("SHEAF_ETCD_PASSWORD"), "{}", text(&no_password));
    let wrong = placement(&dir.0, &with_user, &["get"], &[("SHEAF_ETCD_PASSWORD", "guess")]);
    assert!(!wrong.status.success());
    assert!(text(&wrong).contains("authentication failed"), "{}", text(&wrong));
    let init = placement(&dir.0, &with_user, &["init", "-f", "placement.json"], &[("SHEAF_ETCD_PASSWORD", "pa55word")]);
    assert!(init.status.success(), "{}", text(&init));

    let with_file =
        format!("{{endpoints: [\"{endpoint}\"], username: root, password_file: \"{}\"}}", password_file.display());
    let node = node("etcd-auth-node", &with_file, &[]);
    let placement = crate::harness::http_get(node.admin, "/api/v1/services/m3aggregator/placement").unwrap();
    assert!(placement.contains("\"a\""), "{placement}");
    node.stop();
}

#[test]
fn sheaf_reaches_etcd_over_tls_with_a_client_certificate() {
    let dir = Dir::new("etcd-tls-certs");
    let certs = Certs::generate(&dir.0);
    let etcd = Etcd::start_tls("etcd-tls", &certs);
    let endpoint = etcd.endpoint();
    let (ca, cert, key) = (certs.ca.display(), certs.client_cert.display(), certs.client_key.display());

    let plain = placement(&dir.0, &format!("{{endpoints: [\"{endpoint}\"], request_timeout: 2s}}"), &["get"], &[]);
    assert!(!plain.status.success(), "{}", text(&plain));
    let no_client_cert = format!("{{endpoints: [\"{endpoint}\"], request_timeout: 2s, tls: {{ca_file: \"{ca}\"}}}}");
    let refused = placement(&dir.0, &no_client_cert, &["get"], &[]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(!text(&refused).contains("no placement yet"), "{}", text(&refused));
    let with_cert = format!(
        "{{endpoints: [\"{endpoint}\"], tls: {{ca_file: \"{ca}\", cert_file: \"{cert}\", key_file: \"{key}\"}}}}"
    );
    let get = placement(&dir.0, &with_cert, &["get"], &[]);
    assert!(text(&get).contains("no placement yet"), "etcd answered: {}", text(&get));
    let init = placement(&dir.0, &with_cert, &["init", "-f", "placement.json"], &[]);
    assert!(init.status.success(), "{}", text(&init));

    let node = node("etcd-tls-node", &with_cert, &[]);
    let placement = crate::harness::http_get(node.admin, "/api/v1/services/m3aggregator/placement").unwrap();
    assert!(placement.contains("\"a\""), "{placement}");
    node.stop();
}
