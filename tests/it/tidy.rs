//! Tidy checks on the source text of every crate of the workspace (like rust-analyzer's
//! `xtask/src/tidy.rs`): no import cycle between module files, no source file over
//! [`MAX_LINES`] lines. They read the files themselves, with a small tokenizer and the few
//! rules of Rust's module system this codebase uses; no dependency, no compiler.

mod module_graph;
mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use module_graph::{Crate, relative_name};

/// The longest a source file may be, in lines.
const MAX_LINES: usize = 600;

/// Files allowed over [`MAX_LINES`]: pure test tables (data, not logic), each with why.
/// An entry that no longer exists or is no longer over the limit fails the check.
const LONG_FILES_ALLOWED: &[(&str, &str)] = &[];

/// No import cycle between the module files of any crate of the workspace.
///
/// - The crates: each workspace package's `src/lib.rs`, `src/main.rs`, `src/bin/*`,
///   `tests/*`, `benches/*`, `examples/*` and `build.rs`. A crate's modules are found by
///   following `mod name;` from its root, as rustc does (`name.rs` or `name/mod.rs`).
/// - A node is a module file. Test code is not part of it: an item under `#[test]` (or
///   `#[tokio::test]`..) or under a `#[cfg(..)]` that needs `test` (`cfg(test)`,
///   `cfg(any(test, ..))`, not `cfg(not(test))`), and any module named `tests`, inline or a
///   file (`tests.rs`, `tests/mod.rs`).
/// - An edge A → B exists when A's non-test code names a path into module B: a `use` (with
///   its groups, `use crate::{a, b::c}`) or a path in code (`crate::b::X`, `super::b::f()`).
///   `crate::`, `super::` and `self::` resolve from the module where the path is written
///   (inline `mod x { .. }` blocks included); a bare path resolves when its first name is a
///   child module, or a name imported (`use`) as a module. Paths outside the crate (std,
///   other crates) make no edge.
/// - The edge goes to the deepest module on the path. When the next name is one that module
///   imports (`pub use m::Foo;` in `lib.rs`, say), the path follows that import, so
///   `use crate::Foo` is an edge to `m`, not to `lib.rs`.
/// - A re-export (`pub use`, `pub(crate) use`) of a module's own descendants makes no edge
///   from it: a `lib.rs`/`mod.rs` that only declares (`mod x;`) and re-exports its children
///   is not part of a cycle with them. Any other use of a child (a call, a private `use`)
///   is an edge.
/// - Every strongly connected component of more than one file is reported, with one cycle
///   through each of its files and the line that makes each of its edges.
///
/// The parser (`tidy/source.rs`) knows only what this codebase writes: a `#[path]` on a
/// module, or a `mod` with no file, fails the check rather than being skipped; a glob
/// (`use m::*`) is an edge to `m`; paths in macro arguments count; intra-doc links do not.
#[test]
fn no_import_cycle_between_module_files() {
    let root = workspace_root();
    let mut reported = BTreeSet::new();
    let mut report = String::new();
    for crate_root in workspace_crate_roots(&root) {
        let krate = Crate::load(&root, &crate_root, &|p| fs::read_to_string(p).ok());
        for component in krate.cycles() {
            let files: BTreeSet<&String> = component.iter().map(|&m| &krate.files[m].name).collect();
            if reported.insert(format!("{files:?}")) {
                report.push_str(&krate.describe_cycle(&component));
            }
        }
    }
    assert!(report.is_empty(), "import cycles between module files ({}):\n{report}", reported.len());
}

/// No `.rs` file under a package's `src/`, `tests/` or `benches/` is over [`MAX_LINES`]
/// lines, except those in [`LONG_FILES_ALLOWED`].
#[test]
fn no_source_file_over_600_lines() {
    let root = workspace_root();
    let allowed: BTreeMap<&str, &str> = LONG_FILES_ALLOWED.iter().copied().collect();
    let mut long = Vec::new();
    let mut stale: BTreeSet<&str> = allowed.keys().copied().collect();
    for package in workspace_packages(&root) {
        for dir in ["src", "tests", "benches"] {
            for file in rust_files_under(&root.join(&package).join(dir)) {
                let name = relative_name(&root, &file);
                let lines = fs::read_to_string(&file).unwrap().lines().count();
                if lines > MAX_LINES {
                    stale.remove(name.as_str());
                    if !allowed.contains_key(name.as_str()) {
                        long.push(format!("  {name}: {lines} lines"));
                    }
                }
            }
        }
    }
    long.sort();
    assert!(stale.is_empty(), "LONG_FILES_ALLOWED lists files that are gone or no longer long: {stale:?}");
    assert!(long.is_empty(), "source files over {MAX_LINES} lines ({}):\n{}", long.len(), long.join("\n"));
}

// ---------------------------------------------------------------------------------------
// The workspace: its packages and their crates.

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace's package directories, relative to its root: `.` and `members = [..]` of
/// the root `Cargo.toml`.
fn workspace_packages(root: &Path) -> Vec<String> {
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let line = manifest.lines().find(|l| l.trim_start().starts_with("members")).expect("workspace members");
    let list = line.split_once('[').and_then(|(_, rest)| rest.split_once(']')).expect("members on one line").0;
    let mut packages = vec![".".to_string()];
    for member in list.split(',').map(|m| m.trim().trim_matches('"')).filter(|m| !m.is_empty()) {
        assert!(!member.contains('*'), "workspace member globs are not understood here: {member}");
        packages.push(member.to_string());
    }
    packages
}

/// The root file of every crate of the workspace (Cargo's target auto-discovery).
fn workspace_crate_roots(root: &Path) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for package in workspace_packages(root) {
        let dir = root.join(package);
        let single = ["src/lib.rs", "src/main.rs", "build.rs"].map(|f| dir.join(f));
        roots.extend(single.into_iter().filter(|p| p.is_file()));
        for targets in ["src/bin", "tests", "benches", "examples"] {
            let Ok(entries) = fs::read_dir(dir.join(targets)) else { continue };
            // `name.rs`, or `name/main.rs`
            let mut found: Vec<PathBuf> = entries
                .map(|e| e.unwrap().path())
                .map(|p| if p.is_dir() { p.join("main.rs") } else { p })
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "rs"))
                .collect();
            found.sort();
            roots.extend(found);
        }
    }
    roots
}

fn rust_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else { return files };
    for path in entries.map(|e| e.unwrap().path()) {
        if path.is_dir() {
            files.extend(rust_files_under(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}
