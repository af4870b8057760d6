//! sumu-local's modules import one another without a cycle, and its configuration imports only
//! leaf modules (lib.rs's "Module layout"). The graph is read from the sources: an edge
//! `a → b` for every `crate::b` in `src/a.rs` (or `src/a/*.rs`), `crate::Item` counting as
//! the crate root `lib`, and for lib.rs every `b::` path that names a module. Comments and
//! string literals do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module name → the modules it imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The crate root's node.
const ROOT: &str = "lib";

#[test]
fn the_modules_form_no_import_cycle() {
    let graph = crate_graph();
    // Guards the reader itself: these edges exist, so a graph without them was misread.
    for (from, to) in [
        ("ws", "app_state"),
        ("presence_local", "runners"),
        ("lib", "ws"),
    ] {
        assert!(
            graph[from].contains(to),
            "expected {from} → {to} in {graph:#?}"
        );
    }
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}\nthe graph: {graph:#?}", cycle.join(" → "));
    }
}

#[test]
fn the_configuration_imports_only_leaf_modules() {
    let graph = crate_graph();
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

#[test]
fn the_reader_sees_imports_and_skips_comments_and_strings() {
    let modules: BTreeSet<String> = ["a", "b", "c", "d", "e"].map(String::from).into();
    let source = r##"
        use crate::{a::X, b, self};
        // crate::c is only mentioned
        /* crate::c neither, /* nested */ crate::c */
        let s = "crate::c"; let r = r#"crate::c"#; let q = '"'; let l: &'static str = "";
        fn f() -> crate::AppState { crate::d::g(); $crate::e::h() }
    "##;
    let expected: BTreeSet<String> = ["a", "b", "d", ROOT].map(String::from).into();
    assert_eq!(imports(&code_only(source), &modules, false), expected);
    let root = "use a::X; mod b; let x = ::c::y(); e::f(); d_x::g();";
    let expected: BTreeSet<String> = ["a", "e"].map(String::from).into();
    assert_eq!(imports(&code_only(root), &modules, true), expected);
}

#[test]
fn a_cycle_is_found_and_a_layered_graph_passes() {
    let graph = |edges: &[(&str, &str)]| {
        let mut graph = Graph::new();
        for (from, to) in edges {
            graph
                .entry(from.to_string())
                .or_default()
                .insert(to.to_string());
            graph.entry(to.to_string()).or_default();
        }
        graph
    };
    let layered = graph(&[("lib", "a"), ("lib", "b"), ("a", "c"), ("b", "c")]);
    assert_eq!(find_cycle(&layered), None);
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

/// The graph of `src/`: one node per top-level module (a directory's files belong to the
/// module of the same name) and `lib`; `main.rs` is the binary, another crate.
fn crate_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("read src/") {
        let path = entry.expect("a src/ entry").path();
        let stem = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .expect("a UTF-8 file name")
            .to_string();
        if path.is_dir() {
            for inner in std::fs::read_dir(&path).expect("read a module directory") {
                let inner = inner.expect("an entry").path();
                if inner.extension().is_some_and(|ext| ext == "rs") {
                    files.entry(stem.clone()).or_default().push(inner);
                }
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") && stem != "main" {
            files.entry(stem).or_default().push(path);
        }
    }
    let modules: BTreeSet<String> = files.keys().filter(|name| *name != ROOT).cloned().collect();
    assert!(
        modules.len() > 10 && files.contains_key(ROOT),
        "read {modules:?} from {}",
        src.display()
    );
    files
        .iter()
        .map(|(name, paths)| {
            let mut edges = BTreeSet::new();
            for path in paths {
                let source = std::fs::read_to_string(path).expect("read a source file");
                edges.extend(imports(&code_only(&source), &modules, name == ROOT));
            }
            edges.remove(name);
            (name.clone(), edges)
        })
        .collect()
}

/// The modules `code` refers to: `crate::m` (or `crate::{m::…, …}`) names module `m`, or the
/// root for an item of lib.rs; in the root (`root`), a path `m::…` names module `m` too.
fn imports(code: &str, modules: &BTreeSet<String>, root: bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let chars: Vec<char> = code.chars().collect();
    let ident = |at: usize| -> String {
        chars[at..]
            .iter()
            .take_while(|c| c.is_alphanumeric() || **c == '_')
            .collect()
    };
    let mut name_for = |name: &str| {
        if modules.contains(name) {
            found.insert(name.to_string());
        } else if !name.is_empty() && name != "self" {
            found.insert(ROOT.to_string());
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let at_word_start =
            i == 0 || !(chars[i - 1].is_alphanumeric() || matches!(chars[i - 1], '_' | '$' | ':'));
        if !at_word_start {
            i += 1;
            continue;
        }
        let word = ident(i);
        let after = i + word.chars().count();
        let is_path = chars.get(after) == Some(&':') && chars.get(after + 1) == Some(&':');
        if word.is_empty() || !is_path {
            i += word.chars().count().max(1);
            continue;
        }
        let next = after + 2;
        if word == "crate" {
            if chars.get(next) == Some(&'{') {
                // A group: the first name of each top-level item.
                let mut depth = 0;
                let mut j = next + 1;
                let mut item_start = true;
                while j < chars.len() {
                    match chars[j] {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        c if c.is_whitespace() => {}
                        _ if item_start => {
                            name_for(&ident(j));
                            item_start = false;
                        }
                        _ => {}
                    }
                    j += 1;
                }
            } else {
                name_for(&ident(next));
            }
        } else if root && modules.contains(&word) {
            name_for(&word);
        }
        i = next;
    }
    found
}

/// `source` with comments and the contents of string and character literals blanked out.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && matches!(next, Some('"' | '#')) && !ident_char_before(&chars, i) {
            // A raw string: r"…" or r#"…"#, closed by a quote and as many hashes.
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            i += hashes + 2;
            while i < chars.len() {
                if chars[i] == '"'
                    && chars[i + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|c| **c == '#')
                        .count()
                        == hashes
                {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A character literal ('x', '\n', '\''); otherwise a lifetime, kept as code.
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// A cycle as the path `a → … → a`, if the graph has one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| n == node).expect("on the path");
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Open);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}
