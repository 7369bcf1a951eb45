//! One crate as a graph: its module files, found by following `mod name;` from its root,
//! and the edges between them (which file names a path into which), resolved the way the
//! doc of `tidy::no_import_cycle_between_module_files` defines.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

use super::source::{ParsedFile, PathKind, parse_file};

type ModPath = Vec<String>;

pub(super) struct ModuleFile {
    /// Relative to the workspace root.
    pub(super) name: String,
    /// Its module's path from the crate root (`["ingest", "statsd"]`; `[]` for the root).
    path: ModPath,
    parsed: ParsedFile,
}

pub(super) struct Crate {
    pub(super) files: Vec<ModuleFile>,
    /// Every module (file or inline) by its path from the crate root, and its file.
    modules: BTreeMap<ModPath, usize>,
    /// The names each module imports (`use`), by module, to the path as written there.
    imports: BTreeMap<ModPath, BTreeMap<String, Vec<String>>>,
    /// The test modules, which are no part of the graph.
    test_modules: BTreeSet<ModPath>,
    /// (from, to) file → the first path that makes the edge.
    pub(super) edges: BTreeMap<(usize, usize), Edge>,
}

/// An edge between two module files, and the first path that makes it.
pub(super) struct Edge {
    pub(super) line: usize,
    pub(super) written: String,
}

impl Crate {
    /// Reads the crate whose root file is `root_file`, following `mod name;` declarations.
    pub(super) fn load(workspace: &Path, root_file: &Path, read: &dyn Fn(&Path) -> Option<String>) -> Crate {
        let mut krate = Crate {
            files: Vec::new(),
            modules: BTreeMap::new(),
            imports: BTreeMap::new(),
            test_modules: BTreeSet::new(),
            edges: BTreeMap::new(),
        };
        // (file, its module path, the directory of its child modules)
        let mut queue =
            VecDeque::from([(root_file.to_path_buf(), Vec::new(), root_file.parent().unwrap().to_path_buf())]);
        while let Some((file, path, dir)) = queue.pop_front() {
            let text = read(&file).unwrap_or_else(|| panic!("cannot read {}", file.display()));
            let parsed = parse_file(&text);
            let index = krate.files.len();
            krate.modules.insert(path.clone(), index);
            for inline in &parsed.inline_modules {
                krate.modules.insert([path.clone(), inline.clone()].concat(), index);
            }
            for (inline, test) in &parsed.test_modules {
                krate.test_modules.insert([path.clone(), inline.clone(), vec![test.clone()]].concat());
            }
            for (inline, child) in &parsed.children {
                let child_dir = inline.iter().fold(dir.clone(), |d, s| d.join(s)).join(child);
                let candidates = [child_dir.with_extension("rs"), child_dir.join("mod.rs")];
                let child_file = candidates.iter().find(|c| read(c).is_some()).unwrap_or_else(|| {
                    panic!("{}: no file for `mod {child};` (a #[path] is not understood here)", file.display())
                });
                queue.push_back((
                    child_file.clone(),
                    [path.clone(), inline.clone(), vec![child.clone()]].concat(),
                    child_dir,
                ));
            }
            for p in &parsed.paths {
                if let (PathKind::Use { .. }, Some(name)) = (p.kind, &p.binds) {
                    let module = [path.clone(), p.scope.clone()].concat();
                    krate.imports.entry(module).or_default().insert(name.clone(), p.segments.clone());
                }
            }
            krate.files.push(ModuleFile { name: relative_name(workspace, &file), path, parsed });
        }
        krate.edges = krate.find_edges();
        krate
    }

    /// The path from the crate root that `segments`, written in module `scope`, names;
    /// `None` for a path outside the crate.
    fn absolute(&self, scope: &[String], segments: &[String], hops: usize) -> Option<ModPath> {
        let (first, rest) = segments.split_first()?;
        match first.as_str() {
            "crate" | "$crate" => Some(rest.to_vec()),
            "self" => Some([scope, rest].concat()),
            "super" => {
                let parent = &scope[..scope.len().checked_sub(1)?];
                match rest.first().map(String::as_str) {
                    Some("super") => self.absolute(parent, rest, hops),
                    _ => Some([parent, rest].concat()),
                }
            }
            _ => {
                let child = [scope, std::slice::from_ref(first)].concat();
                if self.modules.contains_key(&child) {
                    return Some([scope, segments].concat());
                }
                // A name this module imports as a module: `use crate::ingest;` then `ingest::x`.
                let imported = self.imports.get(scope)?.get(first)?;
                let module = self.absolute(scope, imported, hops.checked_sub(1)?)?;
                self.modules.contains_key(&module).then(|| [module, rest.to_vec()].concat())
            }
        }
    }

    fn in_test_code(&self, path: &[String]) -> bool {
        (1..=path.len()).any(|n| self.test_modules.contains(&path[..n]))
    }

    /// The module a path from the crate root ends in: the deepest module on it, or, when
    /// the next name is one that module imports from elsewhere in the crate (not from test
    /// code), where that import leads.
    fn target(&self, path: &[String], hops: usize) -> ModPath {
        let deepest = (0..=path.len()).rev().find(|&n| self.modules.contains_key(&path[..n])).unwrap_or(0);
        let (module, rest) = path.split_at(deepest);
        let imported = rest.first().and_then(|name| self.imports.get(module)?.get(name));
        if let Some(imported) = imported.filter(|_| hops > 0)
            && let Some(through) = self.absolute(module, imported, hops - 1)
            && !self.in_test_code(&through)
        {
            return self.target(&[through, rest[1..].to_vec()].concat(), hops - 1);
        }
        module.to_vec()
    }

    /// Every edge between two different module files: (from, to) → the first path that makes it.
    fn find_edges(&self) -> BTreeMap<(usize, usize), Edge> {
        const HOPS: usize = 16;
        let mut edges = BTreeMap::new();
        for (from, file) in self.files.iter().enumerate() {
            for p in &file.parsed.paths {
                let scope = [file.path.clone(), p.scope.clone()].concat();
                let Some(path) = self.absolute(&scope, &p.segments, HOPS) else { continue };
                if self.in_test_code(&path) {
                    continue;
                }
                let target = self.target(&path, HOPS);
                let to = self.modules[&target];
                let reexports_own_descendant =
                    p.kind == (PathKind::Use { reexport: true }) && target.starts_with(&file.path);
                if to != from && !reexports_own_descendant {
                    edges.entry((from, to)).or_insert(Edge { line: p.line, written: p.segments.join("::") });
                }
            }
        }
        edges
    }

    /// The strongly connected components of more than one file, as sorted file indices.
    pub(super) fn cycles(&self) -> Vec<Vec<usize>> {
        let reach: Vec<BTreeSet<usize>> = (0..self.files.len()).map(|f| reachable(&self.edges, f)).collect();
        let mut components = BTreeSet::new();
        for a in 0..self.files.len() {
            let component: Vec<usize> =
                (0..self.files.len()).filter(|&b| a == b || (reach[a].contains(&b) && reach[b].contains(&a))).collect();
            if component.len() > 1 {
                components.insert(component);
            }
        }
        components.into_iter().collect()
    }

    /// A cycle through each file of `component` (the shortest through those not yet shown),
    /// then the line behind each of its edges.
    pub(super) fn describe_cycle(&self, component: &[usize]) -> String {
        let edges: BTreeMap<(usize, usize), &Edge> = self
            .edges
            .iter()
            .filter(|((a, b), _)| component.contains(a) && component.contains(b))
            .map(|(k, e)| (*k, e))
            .collect();
        let name = |f: usize| self.files[f].name.as_str();
        let mut out = format!("cycle among {} files:\n", component.len());
        let mut shown = BTreeSet::new();
        for &start in component {
            if shown.contains(&start) {
                continue;
            }
            let cycle = shortest_cycle(&edges, start);
            shown.extend(cycle.iter().copied());
            let names: Vec<&str> = cycle.iter().chain([&start]).map(|&f| name(f)).collect();
            out.push_str(&format!("  {}\n", names.join(" -> ")));
        }
        for ((a, b), edge) in &edges {
            out.push_str(&format!("    {}:{} `{}` -> {}\n", name(*a), edge.line, edge.written, name(*b)));
        }
        out
    }
}

/// `file` relative to `root`, as the checks name it.
pub(super) fn relative_name(root: &Path, file: &Path) -> String {
    file.strip_prefix(root).unwrap_or(file).to_string_lossy().into_owned()
}

fn reachable<E>(edges: &BTreeMap<(usize, usize), E>, from: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from];
    while let Some(f) = stack.pop() {
        for &(_, to) in edges.range((f, 0)..=(f, usize::MAX)).map(|(k, _)| k) {
            if seen.insert(to) {
                stack.push(to);
            }
        }
    }
    seen
}

/// The shortest cycle from `start` back to it (breadth first), without its last step back.
fn shortest_cycle<E>(edges: &BTreeMap<(usize, usize), E>, start: usize) -> Vec<usize> {
    let mut came_from = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(f) = queue.pop_front() {
        for &(_, to) in edges.range((f, 0)..=(f, usize::MAX)).map(|(k, _)| k) {
            if to == start {
                let mut cycle = vec![f];
                while let Some(&prev) = came_from.get(cycle.last().unwrap()) {
                    cycle.push(prev);
                }
                cycle.reverse();
                return cycle;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = came_from.entry(to) {
                e.insert(f);
                queue.push_back(to);
            }
        }
    }
    vec![start]
}

#[test]
fn cycle_check_follows_reexports_and_ignores_a_parent_reexporting_children() {
    let files = BTreeMap::from([
        (
            "/w/src/lib.rs",
            "mod a; mod b; mod m; mod lone; mod q; #[cfg(test)] mod tests; pub use m::{Bar, Foo}; pub use a::A;",
        ),
        // `Foo` is m's, through lib.rs's re-export.
        ("/w/src/a.rs", "use crate::Foo; pub struct A;"),
        // Its re-export of `inner` makes no edge, so `inner` is in no cycle with it.
        ("/w/src/m/mod.rs", "mod inner; pub use inner::Bar; pub struct Foo; fn f() { crate::b::g(); }"),
        ("/w/src/m/inner.rs", "use super::Foo; pub struct Bar;"),
        // `a::A` in code, through the module imported as `a`.
        ("/w/src/b.rs", "use super::a; fn g() { a::A::new(); }"),
        // `Bar` is inner's, through two re-exports.
        ("/w/src/lone.rs", "use crate::A; fn h() { crate::Bar::new(); crate::q::Q::new(); }"),
        // `Q` is q's own, but imported from test code under a feature: still q's.
        ("/w/src/q.rs", "#[cfg(not(feature = \"x\"))] pub struct Q; #[cfg(feature = \"x\")] pub use crate::tests::Q;"),
    ]);
    let read = |p: &Path| files.get(p.to_str().unwrap()).map(|s| s.to_string());
    let krate = Crate::load(Path::new("/w"), Path::new("/w/src/lib.rs"), &read);
    let name = |f: usize| krate.files[f].name.as_str();
    let mut edges: Vec<String> =
        krate.edges.iter().map(|((a, b), e)| format!("{} -> {} ({})", name(*a), name(*b), e.written)).collect();
    edges.sort();
    assert_eq!(
        edges,
        [
            "src/a.rs -> src/m/mod.rs (crate::Foo)",
            "src/b.rs -> src/a.rs (super::a)",
            "src/lone.rs -> src/a.rs (crate::A)",
            "src/lone.rs -> src/m/inner.rs (crate::Bar::new)",
            "src/lone.rs -> src/q.rs (crate::q::Q::new)",
            "src/m/inner.rs -> src/m/mod.rs (super::Foo)",
            "src/m/mod.rs -> src/b.rs (crate::b::g)",
        ]
    );
    let cycles: Vec<Vec<&str>> = krate.cycles().iter().map(|c| c.iter().map(|&f| name(f)).collect()).collect();
    assert_eq!(cycles, [["src/a.rs", "src/b.rs", "src/m/mod.rs"]]);
    assert_eq!(
        krate.describe_cycle(&krate.cycles()[0]),
        "cycle among 3 files:\n  src/a.rs -> src/m/mod.rs -> src/b.rs -> src/a.rs\n    \
         src/a.rs:1 `crate::Foo` -> src/m/mod.rs\n    src/b.rs:1 `super::a` -> src/a.rs\n    \
         src/m/mod.rs:1 `crate::b::g` -> src/b.rs\n"
    );
}
