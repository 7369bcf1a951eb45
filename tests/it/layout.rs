//! The crate dependency direction, checked on `cargo metadata` (a tidy test): the shards
//! never depend on tokio, etcd or HTTP; the sans-IO core depends on no workspace crate;
//! wire formats do not depend on the data plane.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

fn dependency_closure(
    nodes: &HashMap<String, Vec<String>>,
    names: &HashMap<String, String>,
    root: &str,
) -> BTreeSet<String> {
    let root_id = names.iter().find(|(_, n)| *n == root).map(|(id, _)| id.clone()).expect(root);
    let mut seen = BTreeSet::new();
    let mut stack = vec![root_id];
    while let Some(id) = stack.pop() {
        for dep in nodes.get(&id).into_iter().flatten() {
            if seen.insert(names[dep].clone()) {
                stack.push(dep.clone());
            }
        }
    }
    seen
}

/// The target triple `rustc` builds for by default (`host:` of `rustc -vV`).
fn host_triple() -> Option<String> {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into())).arg("-vV").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.lines().find_map(|l| l.strip_prefix("host: ")).map(str::to_string)
}

#[test]
fn crate_dependencies_point_one_way() {
    // Only this host's dependencies: offline, cargo cannot resolve the others (crates for
    // Windows, say) unless an earlier build on another platform happened to fetch them.
    let mut metadata = Command::new(env!("CARGO"));
    metadata.args(["metadata", "--format-version", "1", "--offline"]);
    if let Some(host) = host_triple() {
        metadata.args(["--filter-platform", &host]);
    }
    let out = metadata.current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: HashMap<String, String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_string(), p["name"].as_str().unwrap().to_string()))
        .collect();
    // Normal (non-dev, non-build) dependency edges only.
    let nodes: HashMap<String, Vec<String>> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null()))
                .map(|d| d["pkg"].as_str().unwrap().to_string())
                .collect();
            (n["id"].as_str().unwrap().to_string(), deps)
        })
        .collect();
    let forbidden_in_shards = ["tokio", "etcd-client", "axum", "hyper", "tonic", "sheaf"];
    for krate in ["sheaf-shard-core", "sheaf-shard-runtime"] {
        let deps = dependency_closure(&nodes, &names, krate);
        for f in forbidden_in_shards {
            assert!(!deps.contains(f), "{krate} must not depend on {f}");
        }
    }
    let core = dependency_closure(&nodes, &names, "sheaf-shard-core");
    assert!(!core.iter().any(|d| d.starts_with("sheaf")), "sheaf-shard-core depends on no workspace crate: {core:?}");
    assert!(!core.contains("glommio") && !core.contains("prost"), "sheaf-shard-core is sans-IO and format-free");
    let proto = dependency_closure(&nodes, &names, "sheaf-proto");
    assert!(!proto.iter().any(|d| d.starts_with("sheaf")), "sheaf-proto depends on no other sheaf crate: {proto:?}");
}
