//! No crate of the workspace has an import cycle between its modules: every member the root
//! Cargo.toml lists is read from its `src/`, and a cycle fails the test with the crate's name
//! and the modules around it. What counts as an import is in `reader.rs`.
//!
//! Why here: the check is about the whole workspace, and testkit is the one member that exists
//! for all the others (every suite already uses it) and that no product crate depends on. The
//! check reads sources only, so it builds nothing else.
//!
//! Besides, sumu-local's configuration imports only leaf modules (its lib.rs, "Module layout").

mod reader;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use reader::{code_only, find_cycle, imports, root_names, tangles, Graph, Tree, ROOT};

fn workspace_root() -> PathBuf {
    testkit::repo_root()
}

/// The `members` of the root Cargo.toml, as directories.
fn members() -> Vec<PathBuf> {
    let root = workspace_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("read Cargo.toml");
    let list = manifest
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .expect("a `members = [ … ]` list in the root Cargo.toml");
    list.split(',')
        .map(|entry| entry.trim().trim_matches('"'))
        .filter(|entry| !entry.is_empty())
        .map(|entry| root.join(entry))
        .collect()
}

/// The package name in a member's Cargo.toml.
fn package_name(dir: &Path) -> String {
    let manifest =
        std::fs::read_to_string(dir.join("Cargo.toml")).expect("read a member's manifest");
    manifest
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "name").then(|| value.trim().trim_matches('"').to_string())
        })
        .expect("a package name")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The module a file of the library defines (`[]` for lib.rs), or `None` for a binary's root
/// (`main.rs`, `bin/**`): a binary is another crate, with only its root file (checked below).
fn module_of(relative: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_str().expect("a UTF-8 path").to_string())
        .collect();
    if parts.first().is_some_and(|first| first == "bin") || parts == ["main.rs"] {
        return None;
    }
    let file = parts.pop().expect("a file name");
    match file.as_str() {
        "lib.rs" if parts.is_empty() => {}
        "mod.rs" => {}
        other => parts.push(other.trim_end_matches(".rs").to_string()),
    }
    Some(parts)
}

/// A library crate's module graph (see reader.rs), read from `src/`.
fn crate_graph(dir: &Path) -> Graph {
    let src = dir.join("src");
    let mut files: Vec<(Vec<String>, String)> = Vec::new();
    for path in rust_files(&src) {
        let relative = path.strip_prefix(&src).expect("under src/");
        let code = code_only(&std::fs::read_to_string(&path).expect("read a source file"));
        match module_of(relative) {
            Some(module) => files.push((module, code)),
            None => assert!(
                !declares_a_file_module(&code),
                "{}: a binary with modules of its own; the module-graph reader reads only \
                 libraries' modules",
                path.display()
            ),
        }
    }
    let mut tree = Tree {
        file_modules: files.iter().map(|(module, _)| module.clone()).collect(),
        ..Tree::default()
    };
    assert!(
        tree.file_modules.contains(&Vec::new()),
        "{} has no lib.rs",
        src.display()
    );
    let top_level = tree.top_level();
    for (module, code) in &files {
        if module.is_empty() {
            tree.root_names = root_names(code, &top_level);
        }
    }
    let mut graph: Graph = top_level
        .iter()
        .chain([&ROOT.to_string()])
        .map(|node| (node.clone(), BTreeSet::new()))
        .collect();
    for (module, code) in &files {
        let node = module.first().cloned().unwrap_or_else(|| ROOT.to_string());
        let edges = graph.get_mut(&node).expect("a node per top-level module");
        edges.extend(imports(code, module, &tree));
        edges.remove(&node);
    }
    graph
}

/// `mod name;` (a module in another file).
fn declares_a_file_module(code: &str) -> bool {
    code.split(';').any(|statement| {
        let words: Vec<&str> = statement.split_whitespace().collect();
        words.len() >= 2 && words[words.len() - 2] == "mod" && !words[words.len() - 1].contains('{')
    })
}

/// Every member's graph, by package name.
fn workspace_graphs() -> BTreeMap<String, Graph> {
    members()
        .iter()
        .map(|dir| (package_name(dir), crate_graph(dir)))
        .collect()
}

#[test]
fn no_crate_of_the_workspace_has_an_import_cycle() {
    let graphs = workspace_graphs();
    assert!(
        graphs.len() >= 10 && graphs.contains_key("sumu-local") && graphs.contains_key("pusher"),
        "read {:?}",
        graphs.keys()
    );
    // Guards the reader itself: these edges exist, so a graph without them was misread.
    for (krate, from, to) in [
        ("sumu-local", "ws", "app_state"),
        ("sumu-local", "presence_local", "runners"),
        ("sumu-local", "lib", "ws"),
        ("presence", "handler", "query"),
        // `crate::Deps`, which lib.rs re-exports from deps.rs.
        ("presence", "stream", "deps"),
        ("conformance", "checks", "lib"),
        ("conformance", "checks", "ws"),
    ] {
        assert!(
            graphs[krate][from].contains(to),
            "expected {from} → {to} in {krate}: {:#?}",
            graphs[krate]
        );
    }
    let mut found = Vec::new();
    for (krate, graph) in &graphs {
        for tangle in tangles(graph) {
            let edges: Vec<String> = tangle
                .modules
                .iter()
                .flat_map(|from| {
                    graph[from]
                        .iter()
                        .filter(|to| tangle.modules.contains(*to))
                        .map(move |to| format!("{from} → {to}"))
                })
                .collect();
            found.push(format!(
                "crate {krate}: import cycle {} (the modules that import one another: {})",
                tangle.cycle.join(" → "),
                edges.join(", ")
            ));
        }
    }
    assert!(found.is_empty(), "\n{}", found.join("\n"));
}

#[test]
fn sumu_local_configuration_imports_only_leaf_modules() {
    let graph = crate_graph(&workspace_root().join("local/sumu-local"));
    for imported in &graph["config"] {
        assert!(
            graph[imported].is_empty(),
            "config imports {imported}, which imports {:?}: config must stay plain data",
            graph[imported]
        );
    }
    assert!(
        !graph["provision"].contains("config"),
        "provision imports config: provisioning sits below the configuration's users"
    );
}

// The reader, on small inputs.

fn names(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| name.to_string()).collect()
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|part| part.to_string()).collect()
}

/// A tree of file modules (`"a"`, `"a/b"`) and the root.
fn tree(modules: &[&str]) -> Tree {
    let mut file_modules: BTreeSet<Vec<String>> = modules
        .iter()
        .map(|module| path(&module.split('/').collect::<Vec<_>>()))
        .collect();
    file_modules.insert(Vec::new());
    Tree {
        file_modules,
        ..Tree::default()
    }
}

#[test]
fn the_reader_sees_imports_and_skips_comments_and_strings() {
    let tree = tree(&["a", "b", "c", "d", "e", "m"]);
    let source = r##"
        use crate::{a::X, b, self};
        // crate::c is only mentioned
        /* crate::c neither, /* nested */ crate::c */
        let s = "crate::c"; let r = r#"crate::c"#; let q = '"'; let l: &'static str = "";
        let b = b"crate::c"; let rb = br#"crate::c"#; let e = "\"crate::c\"";
        fn f() -> crate::AppState { crate::d::g(); $crate::e::h() }
    "##;
    assert_eq!(
        imports(&code_only(source), &path(&["m"]), &tree),
        names(&["a", "b", "d", ROOT])
    );
    let root = "use a::X; mod b; let x = ::c::y(); e::f(); d_x::g();";
    assert_eq!(imports(&code_only(root), &[], &tree), names(&["a", "e"]));
}

#[test]
fn the_reader_resolves_super_self_and_nested_modules() {
    // src/a/mod.rs, src/a/b.rs, src/a/b/c.rs (or src/a/b/mod.rs), src/d.rs, src/e.rs.
    let tree = tree(&["a", "a/b", "a/b/c", "d", "e"]);
    let in_a_b = "use super::Helper; use super::super::d::D; use self::c::C; c::f();";
    assert_eq!(
        imports(&code_only(in_a_b), &path(&["a", "b"]), &tree),
        names(&["a", "d"])
    );
    let in_d = "
        mod tests {
            use super::*;
            use super::super::e::E;
            mod deeper { use super::super::super::a::b::X; }
        }
        fn f() { self::g(); }
    ";
    assert_eq!(
        imports(&code_only(in_d), &path(&["d"]), &tree),
        names(&["d", "e", "a"])
    );
    // A block closes: `super` is relative to the module again.
    let after_block = "mod inner { fn x() {} } use super::Y;";
    assert_eq!(
        imports(&code_only(after_block), &path(&["a", "b"]), &tree),
        names(&["a"])
    );
    // Groups, nested groups, `self` inside a group, globs.
    let groups = "use crate::{a::{b::X, Y}, d::{self, Z}, e::*};";
    assert_eq!(
        imports(&code_only(groups), &path(&["a"]), &tree),
        names(&["a", "d", "e"])
    );
    let glob = "use super::*;";
    assert_eq!(
        imports(&code_only(glob), &path(&["e"]), &tree),
        names(&[ROOT])
    );
}

#[test]
fn the_root_facade_is_no_edge_and_its_names_lead_to_their_modules() {
    let mut tree = tree(&["config", "store", "handler"]);
    let lib = "
        pub mod config; mod store; mod handler;
        pub use config::{Config, Destination as Where};
        pub(crate) use store::Store;
        use handler::run;
        pub struct Deps { pub settings: Config }
        pub fn handle() { run() }
    ";
    tree.root_names = root_names(&code_only(lib), &tree.top_level());
    assert_eq!(
        tree.root_names,
        [
            ("Config", "config"),
            ("Where", "config"),
            ("Store", "store"),
            ("run", "handler")
        ]
        .into_iter()
        .map(|(name, module)| (name.to_string(), module.to_string()))
        .collect()
    );
    // `use handler::run` and lib's own code naming `Config`; `Store` is only re-exported.
    assert_eq!(
        imports(&code_only(lib), &[], &tree),
        names(&["config", "handler"])
    );
    let handler = "use crate::{Config, Store}; use crate::Where; fn f(_: crate::Deps) {}";
    assert_eq!(
        imports(&code_only(handler), &path(&["handler"]), &tree),
        names(&["config", "store", ROOT])
    );
}

fn graph(edges: &[(&str, &str)]) -> Graph {
    let mut graph = Graph::new();
    for (from, to) in edges {
        graph
            .entry(from.to_string())
            .or_default()
            .insert(to.to_string());
        graph.entry(to.to_string()).or_default();
    }
    graph
}

#[test]
fn a_cycle_is_found_and_a_layered_graph_passes() {
    let layered = graph(&[("lib", "a"), ("lib", "b"), ("a", "c"), ("b", "c")]);
    assert_eq!(find_cycle(&layered), None);
    assert!(tangles(&layered).is_empty());
    let cyclic = graph(&[("lib", "a"), ("a", "b"), ("b", "c"), ("c", "a")]);
    assert_eq!(
        find_cycle(&cyclic),
        Some(
            vec!["a", "b", "c", "a"]
                .into_iter()
                .map(String::from)
                .collect()
        )
    );
}

#[test]
fn every_separate_cycle_is_named() {
    let two = graph(&[
        ("lib", "emit"),
        ("emit", "publish"),
        ("publish", "emit"),
        ("lib", "store"),
        ("store", "subscriptions"),
        ("subscriptions", "store"),
        ("subscriptions", "config"),
    ]);
    let found: Vec<(BTreeSet<String>, Vec<String>)> = tangles(&two)
        .into_iter()
        .map(|tangle| (tangle.modules, tangle.cycle))
        .collect();
    assert_eq!(
        found,
        vec![
            (
                names(&["emit", "publish"]),
                path(&["emit", "publish", "emit"])
            ),
            (
                names(&["store", "subscriptions"]),
                path(&["store", "subscriptions", "store"])
            ),
        ]
    );
    // One tangle of three modules and two cycles is named once, with all three.
    let tangled = graph(&[("a", "b"), ("b", "a"), ("b", "c"), ("c", "b")]);
    let found = tangles(&tangled);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].modules, names(&["a", "b", "c"]));
}
