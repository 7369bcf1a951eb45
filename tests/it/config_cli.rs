//! `sheaf check-config` and start-up refusal of bad configs, naming the key.

use std::process::Command;

use crate::harness::tempdir::Dir;

fn check(text: &str) -> (bool, String) {
    let dir = Dir::new("check");
    let path = dir.0.join("c.yaml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sheaf")).arg("check-config").arg(&path).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn check_config_accepts_the_template_and_names_bad_keys() {
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tuning/config-template.yaml")).unwrap();
    let (ok, msg) = check(&template);
    assert!(ok, "template must validate: {msg}");
    for (text, key) in [
        ("num_shards: 0\n", "num_shards"),
        ("aggregator:\n  defualt_storage_policies: [\"10s:2d\"]\n", "defualt_storage_policies"),
        ("aggregator:\n  default_storage_policies: [\"10x:2d\"]\n", "aggregator.default_storage_policies[0]"),
        ("aggregator:\n  default_storage_policies: [\"100ms:1h\"]\n", "min_storage_resolution"),
        ("cores: [0, 0]\n", "cores"),
        ("statsd:\n  udp:\n    listen_address: nowhere\n", "listen_address"),
    ] {
        let (ok, msg) = check(text);
        assert!(!ok, "{text:?} must be refused");
        assert!(msg.contains(key), "message for {text:?} must name {key}: {msg}");
    }
}

#[test]
fn run_refuses_a_bad_config_at_start() {
    let dir = Dir::new("run-bad");
    let path = dir.0.join("c.yaml");
    std::fs::write(&path, "flush_intervall: 10s\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sheaf")).args(["run", "--config"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("flush_intervall"));
}
