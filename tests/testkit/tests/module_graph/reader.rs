//! Reads a crate's module graph from its sources, without compiling them.
//!
//! Nodes are the crate's top-level modules and `lib`, the crate root (lib.rs's own items).
//! A module's files (`src/a.rs`, `src/a/mod.rs`, `src/a/**.rs`) and its inline `mod` blocks
//! belong to its node: a parent and its children share a private interface on purpose, so a
//! cycle is a cycle between top-level modules.
//!
//! An edge `a → b` is a path in `a`'s code that names something of `b`: `crate::b::…`, a
//! `crate::{b::…, …}` group, `super::…` and `self::…` resolved against the module the path
//! is written in (file and inline blocks), a path starting with a child module's name, and in
//! the root a path starting with a top-level module's name. `crate::X` where `X` is not a
//! module is an item of the root: the module lib.rs brought it in from when lib.rs has a
//! `use m::…X…`, else `lib`. lib.rs's `pub use` lines are the crate's facade, not lib's own
//! dependencies, so they are no edges (its private `use`s are), but lib.rs's code using a name
//! it brought in is an edge to the name's module. Comments and the contents of
//! string and character literals never count; `$crate::` (a macro's crate) and `::x` (an
//! external crate) do not either.

use std::collections::{BTreeMap, BTreeSet};

/// Module name → the modules it imports.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// The crate root's node.
pub const ROOT: &str = "lib";

/// What paths are resolved against: the crate's module tree, as its files give it.
#[derive(Debug, Default)]
pub struct Tree {
    /// Every module a file defines, as its path from the root (`["a", "b"]` for
    /// `src/a/b.rs` or `src/a/b/mod.rs`); the root is `[]`.
    pub file_modules: BTreeSet<Vec<String>>,
    /// Names the root brings in with a `use` (or re-exports), and the top-level module
    /// each comes from.
    pub root_names: BTreeMap<String, String>,
}

impl Tree {
    pub fn top_level(&self) -> BTreeSet<String> {
        self.file_modules
            .iter()
            .filter_map(|path| path.first().cloned())
            .collect()
    }

    fn is_file_module(&self, path: &[String]) -> bool {
        self.file_modules.contains(path)
    }

    /// The node an absolute path (`[first, …]` from the root) belongs to.
    fn node_of(&self, path: &[String]) -> String {
        match path.first() {
            None => ROOT.to_string(),
            Some(first) if self.is_file_module(std::slice::from_ref(first)) => first.clone(),
            Some(first) if path.len() == 1 => self
                .root_names
                .get(first)
                .cloned()
                .unwrap_or_else(|| ROOT.to_string()),
            // An inline module of lib.rs (`mod tests { … }`): lib's own code.
            Some(_) => ROOT.to_string(),
        }
    }
}

/// A token of code (after [`code_only`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // `r#type`: a raw identifier is its name.
            match word.as_str() {
                "r" if chars.get(i) == Some(&'#') => i += 1,
                _ => out.push(Token::Ident(word)),
            }
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token::PathSep);
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

fn ident(tokens: &[Token], at: usize) -> Option<&str> {
    match tokens.get(at) {
        Some(Token::Ident(name)) => Some(name),
        _ => None,
    }
}

fn is(tokens: &[Token], at: usize, expected: &Token) -> bool {
    tokens.get(at) == Some(expected)
}

/// The modules the code of one file refers to (its own node included, when it refers to
/// itself), for a file that defines module `module` (`[]` for lib.rs).
pub fn imports(code: &str, module: &[String], tree: &Tree) -> BTreeSet<String> {
    let tokens = tokens(code);
    let mut found = BTreeSet::new();
    // The inline `mod name {` blocks the cursor is in, with the brace depth each opened at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut facade_until: Option<usize> = None;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Punct('{') => {
                depth += 1;
                i += 1;
                continue;
            }
            Token::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, opened)| *opened == depth) {
                    inline.pop();
                }
                i += 1;
                continue;
            }
            Token::Ident(word) if word == "mod" => {
                if let Some(name) = ident(&tokens, i + 1) {
                    if is(&tokens, i + 2, &Token::Punct('{')) {
                        inline.push((name.to_string(), depth));
                        depth += 1;
                        i += 3;
                        continue;
                    }
                }
            }
            // lib.rs's `pub use …;` / `pub(crate) use …;`: the facade (see the module doc).
            Token::Ident(word) if word == "pub" && module.is_empty() && inline.is_empty() => {
                let mut j = i + 1;
                if is(&tokens, j, &Token::Punct('(')) {
                    while j < tokens.len() && !is(&tokens, j, &Token::Punct(')')) {
                        j += 1;
                    }
                    j += 1;
                }
                if ident(&tokens, j) == Some("use") {
                    facade_until = (j..tokens.len()).find(|&k| is(&tokens, k, &Token::Punct(';')));
                }
            }
            _ => {}
        }
        if facade_until.is_some_and(|end| i <= end) {
            i += 1;
            continue;
        }
        let starts_path = i == 0
            || !matches!(
                tokens[i - 1],
                Token::PathSep | Token::Punct('$') | Token::Punct('.')
            );
        let Some(first) = ident(&tokens, i).filter(|_| starts_path) else {
            i += 1;
            continue;
        };
        if !is(&tokens, i + 1, &Token::PathSep) {
            // lib.rs's own code using a name it brought in (`Invocation::Stream(StreamBatch)`
            // after `pub use stream::StreamBatch;`) depends on the module the name is from.
            if module.is_empty() {
                if let Some(from) = tree.root_names.get(first) {
                    found.insert(from.clone());
                }
            }
            i += 1;
            continue;
        }
        // Where the cursor is: the file's module and the inline blocks around it.
        let here: Vec<String> = module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(name, _)| name.clone()))
            .collect();
        let mut next = i + 2;
        let base: Vec<String> = match first {
            "crate" => Vec::new(),
            "self" => here.clone(),
            "super" => {
                let mut base = here.clone();
                base.pop();
                while ident(&tokens, next) == Some("super")
                    && is(&tokens, next + 1, &Token::PathSep)
                {
                    base.pop();
                    next += 2;
                }
                base
            }
            child if tree.is_file_module(&child_of(&here, child)) => {
                // `child::…` names the child module itself: resolve from here.
                next = i;
                here.clone()
            }
            // Another crate, a local name, a type's associated item: not a module of ours.
            _ => {
                i += 2;
                continue;
            }
        };
        let mut name_for = |name: &str| {
            let mut path = base.clone();
            if !matches!(name, "self" | "*" | "") {
                path.push(name.to_string());
            }
            found.insert(tree.node_of(&path));
        };
        if is(&tokens, next, &Token::Punct('{')) {
            // A group: the first name of each top-level item.
            let mut group_depth = 0;
            let mut item_start = true;
            let mut j = next + 1;
            while j < tokens.len() {
                match &tokens[j] {
                    Token::Punct('{') => group_depth += 1,
                    Token::Punct('}') if group_depth == 0 => break,
                    Token::Punct('}') => group_depth -= 1,
                    Token::Punct(',') if group_depth == 0 => item_start = true,
                    token if item_start => {
                        match token {
                            Token::Ident(name) => name_for(name),
                            Token::Punct('*') => name_for("*"),
                            _ => {}
                        }
                        item_start = false;
                    }
                    _ => {}
                }
                j += 1;
            }
            // Past the group's closing brace: its braces are not the code's blocks.
            i = j + 1;
        } else {
            match tokens.get(next) {
                Some(Token::Ident(name)) => name_for(name),
                Some(Token::Punct('*')) => name_for("*"),
                _ => name_for(""),
            }
            i = next.max(i + 1);
        }
    }
    found
}

fn child_of(module: &[String], child: &str) -> Vec<String> {
    let mut path = module.to_vec();
    path.push(child.to_string());
    path
}

/// The names lib.rs's `use` lines bring into the root (the name or its `as` alias), each with
/// the top-level module it comes from (`use a::X;`, `pub use crate::a::{X, b::Y as Z};`).
pub fn root_names(code: &str, top_level: &BTreeSet<String>) -> BTreeMap<String, String> {
    let tokens = tokens(code);
    let mut names = BTreeMap::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => depth = depth.saturating_sub(1),
            Token::Ident(word) if word == "use" && depth == 0 => {
                let mut j = i + 1;
                if ident(&tokens, j).is_some_and(|w| w == "crate" || w == "self")
                    && is(&tokens, j + 1, &Token::PathSep)
                {
                    j += 2;
                }
                let Some(module) = ident(&tokens, j).filter(|m| top_level.contains(*m)) else {
                    i += 1;
                    continue;
                };
                let end = (j..tokens.len())
                    .find(|&k| is(&tokens, k, &Token::Punct(';')))
                    .unwrap_or(tokens.len());
                // Every name bound by the tree: an identifier followed by `,` `}` `;`, or the
                // identifier after `as`.
                for k in j + 1..end {
                    let Some(name) = ident(&tokens, k) else {
                        continue;
                    };
                    let bound = matches!(
                        tokens.get(k + 1),
                        Some(Token::Punct(',' | '}' | ';')) | None
                    ) || k + 1 == end;
                    let aliased = ident(&tokens, k + 1) == Some("as");
                    if bound && !aliased && name != "self" && name != "_" {
                        names.insert(name.to_string(), module.to_string());
                    }
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// `source` with comments and the contents of string and character literals blanked out.
pub fn code_only(source: &str) -> String {
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
        } else if let Some(prefix) = raw_string_prefix(&chars, i) {
            // A raw string: r"…", r#"…"#, br"…": closed by a quote and as many hashes.
            let hashes = chars[i + prefix..]
                .iter()
                .take_while(|c| **c == '#')
                .count();
            i += prefix + hashes + 1;
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

/// The length of `r` / `br` when a raw string starts at `i` (`r"`, `r#…"`, `br"`).
fn raw_string_prefix(chars: &[char], i: usize) -> Option<usize> {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    let prefix = match (chars.get(i), chars.get(i + 1)) {
        (Some('r'), _) => 1,
        (Some('b'), Some('r')) => 2,
        _ => return None,
    };
    let hashes = chars[i + prefix..]
        .iter()
        .take_while(|c| **c == '#')
        .count();
    (chars.get(i + prefix + hashes) == Some(&'"')).then_some(prefix)
}

/// A cycle as the path `a → … → a`, if the graph has one.
pub fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
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

/// A group of modules that all reach one another (a strongly connected component with more
/// than one module), and one cycle through them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tangle {
    pub modules: BTreeSet<String>,
    pub cycle: Vec<String>,
}

/// Every tangle of the graph, so a crate with two separate cycles names both, and a tangle
/// names every module in it, not only those of one cycle.
pub fn tangles(graph: &Graph) -> Vec<Tangle> {
    let reaches = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(node) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|node| (node, reaches(node))).collect();
    let mut placed = BTreeSet::new();
    let mut found = Vec::new();
    for node in graph.keys() {
        if placed.contains(node) || !reach[node].contains(node) {
            continue;
        }
        let modules: BTreeSet<String> = reach[node]
            .iter()
            .filter(|other| reach.get(other).is_some_and(|back| back.contains(node)))
            .cloned()
            .collect();
        let inside: Graph = modules
            .iter()
            .map(|member| {
                let edges = graph[member].intersection(&modules).cloned().collect();
                (member.clone(), edges)
            })
            .collect();
        let cycle = find_cycle(&inside).expect("modules that reach one another form a cycle");
        placed.extend(modules.iter().cloned());
        found.push(Tangle { modules, cycle });
    }
    found
}
