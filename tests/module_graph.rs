//! The module graph of `src/` has no cycle: dependencies point down (ops, store, registry,
//! platform, the areas, server, app), and no module imports a module that imports it back.
//!
//! An edge is every path a file names (`use crate::..`, `use super::..`, `pub use child::..`
//! and paths written inline, `crate::store::audit::record(..)`), resolved to the file of the
//! longest module it starts with. `mod` declarations are not edges; `#[cfg(test)] mod tests`
//! blocks are left out (a test may use what is above it). Read from the source, so it needs no
//! tool beyond the test itself.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

type Module = Vec<String>;

fn name(m: &[String]) -> String {
    if m.is_empty() { "crate".to_owned() } else { m.join("::") }
}

/// Every `.rs` file under `src/` by its module path (`account::alianza::client`).
fn modules() -> BTreeMap<Module, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut modules = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap().with_extension("");
        let mut module: Module = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
            module.pop();
        }
        if rel == Path::new("main") {
            // The binary is a crate of its own on top of the library.
            continue;
        }
        modules.insert(module, strip(&fs::read_to_string(&file).unwrap()));
    }
    modules
}

/// The source without comments, string literals and `#[cfg(test)]` items.
fn strip(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            // A character literal (not a lifetime): `'"'`, `'\''`, `'\u{7f}'`.
            '\'' => {
                let ahead: String = chars.clone().take(12).collect();
                let len = if ahead.starts_with('\\') {
                    ahead.get(2..).and_then(|a| a.find('\'')).map_or(0, |i| i + 3)
                } else {
                    let mut it = ahead.chars();
                    match (it.next(), it.next()) {
                        (Some(c), Some('\'')) => c.len_utf8() + 1,
                        _ => 0,
                    }
                };
                let taken: String = chars.by_ref().take(ahead[..len].chars().count()).collect();
                out.push_str(if taken.is_empty() { "'" } else { "' '" });
            }
            // A raw string: `r"..."`, `r#"..."#`.
            'r' if matches!(chars.peek(), Some('"' | '#'))
                && !out.ends_with(|c: char| c.is_alphanumeric() || c == '_') =>
            {
                let hashes = chars.clone().take_while(|&c| c == '#').count();
                let after: Vec<char> = chars.clone().skip(hashes).take(1).collect();
                if after != ['"'] {
                    out.push(c);
                    continue;
                }
                chars.nth(hashes);
                let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
                let mut body = String::new();
                for c in chars.by_ref() {
                    body.push(c);
                    if body.ends_with(&close) {
                        break;
                    }
                }
                out.push_str("\"\"");
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    // Drop each `#[cfg(test)]` item: up to the end of its braces (or its `;`).
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        result.push_str(&rest[..at]);
        let item = &rest[at..];
        let (mut depth, mut end) = (0usize, item.len());
        for (i, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    result.push_str(rest);
    result
}

/// The paths of a `use` tree (`a::{b, c::{d as e}}`), each as its segments.
fn use_paths(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let base: Vec<String> =
            tree[..open].split("::").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&inner[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&inner[start..]);
        return parts
            .into_iter()
            .filter(|p| !p.trim().is_empty())
            .flat_map(use_paths)
            .map(|p| base.iter().cloned().chain(p).collect())
            .collect();
    }
    let path = tree.split(" as ").next().unwrap_or(tree);
    vec![path.split("::").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()]
}

/// `crate::..`, `super::..` and `self::..` paths named by `src`, as written (head first).
fn named_paths(src: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    // `use` items, with their trees.
    let mut rest = src;
    while let Some(at) = rest.find("use ") {
        let before_ok = at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        rest = &rest[at + 4..];
        if !before_ok {
            continue;
        }
        let Some(end) = rest.find(';') else { break };
        let tree = &rest[..end];
        // External crates' paths are dropped when they are resolved.
        paths.extend(use_paths(tree));
    }
    // Inline paths.
    for head in ["crate::", "super::"] {
        let mut rest = src;
        while let Some(at) = rest.find(head) {
            let before = &rest[..at];
            rest = &rest[at..];
            let standalone = !before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':');
            let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            // A bare head (`super::{..}` of a use tree, read above) names no module of its own.
            if standalone && len > head.len() {
                paths.push(rest[..len].split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect());
            }
            rest = &rest[len.max(head.len())..];
        }
    }
    paths
}

/// Which module each file depends on.
fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let modules = modules();
    let resolve = |path: &[String]| -> Option<Module> {
        (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|m| modules.contains_key(m))
    };
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, src) in &modules {
        let deps = edges.entry(module.clone()).or_default();
        for path in named_paths(src) {
            let Some((head, rest)) = path.split_first() else { continue };
            let mut full: Module = match head.as_str() {
                "crate" => Vec::new(),
                "self" => module.clone(),
                "super" => module[..module.len().saturating_sub(1)].to_vec(),
                // `use child::Item` (a path relative to this module), else another crate.
                child if modules.contains_key(&[module.clone(), vec![child.to_owned()]].concat()) => {
                    let mut m = module.clone();
                    m.push(child.to_owned());
                    m
                }
                _ => continue,
            };
            let mut rest = rest;
            while let Some(("super", more)) = rest.split_first().map(|(h, m)| (h.as_str(), m)) {
                full.pop();
                rest = more;
            }
            full.extend(rest.iter().cloned());
            if let Some(target) = resolve(&full)
                && &target != module
            {
                deps.insert(target);
            }
        }
        // Paths written inline relative to this module: `routes::router(..)` names the child.
        for child in modules.keys().filter(|m| m.len() == module.len() + 1 && m.starts_with(module)) {
            if names_inline(src, &format!("{}::", child[module.len()])) {
                deps.insert(child.clone());
            }
        }
    }
    edges
}

/// Whether `src` writes a path starting with `head` (`routes::`) that is not the tail of a
/// longer path (`super::routes::` or `x_routes::`).
fn names_inline(src: &str, head: &str) -> bool {
    src.match_indices(head).any(|(at, _)| {
        !src[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
            && !src[..at].trim_end().ends_with("mod")
    })
}

/// One cycle of the graph, if it has any (depth-first search, reporting the back edge's loop).
fn find_cycle<N: Ord + Clone>(edges: &BTreeMap<N, BTreeSet<N>>) -> Option<Vec<N>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<N: Ord + Clone>(
        node: &N,
        edges: &BTreeMap<N, BTreeSet<N>>,
        marks: &mut BTreeMap<N, Mark>,
        stack: &mut Vec<N>,
    ) -> Option<Vec<N>> {
        marks.insert(node.clone(), Mark::Open);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::Open) => {
                    let from = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, edges, marks, stack) {
                        return Some(cycle);
                    }
                }
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        if !marks.contains_key(node)
            && let Some(cycle) = visit(node, edges, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn no_file_of_src_imports_a_file_that_imports_it_back() {
    let edges = graph();
    assert!(edges.len() > 40, "the walk found the source files ({} modules)", edges.len());
    if let Some(cycle) = find_cycle(&edges) {
        let names: Vec<String> = cycle.iter().map(|m| name(m)).collect();
        panic!("import cycle: {}", names.join(" -> "));
    }
}

#[test]
fn the_top_level_modules_are_layered_without_a_cycle() {
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, deps) in graph() {
        let Some(a) = from.first() else { continue };
        let entry = top.entry(a.clone()).or_default();
        for to in deps {
            if let Some(b) = to.first()
                && b != a
            {
                entry.insert(b.clone());
            }
        }
    }
    if let Some(cycle) = find_cycle(&top) {
        panic!("top-level modules in a cycle: {}", cycle.join(" -> "));
    }
    // The spine imports no area; the registry knows areas only as the list app.rs hands it.
    for spine in ["ops", "store", "registry", "platform"] {
        let above: Vec<_> = top[spine]
            .iter()
            .filter(|m| ["account", "dialer", "provisioning", "admin", "server", "app"].contains(&m.as_str()))
            .collect();
        assert!(above.is_empty(), "`{spine}` imports {above:?}, which stand above it");
    }
}

#[test]
fn vendors_of_different_families_know_nothing_of_each_other() {
    let vendors = [["account", "alianza"], ["dialer", "elision"], ["provisioning", "delacon"]];
    for (from, deps) in graph() {
        let Some(own) =
            vendors.iter().find(|v| from.starts_with(&v[..].iter().map(|s| s.to_string()).collect::<Vec<_>>()))
        else {
            continue;
        };
        for to in deps {
            let other = vendors
                .iter()
                .find(|v| v != &own && to.starts_with(&v[..].iter().map(|s| s.to_string()).collect::<Vec<_>>()));
            assert!(other.is_none(), "{} imports {}", name(&from), name(&to));
        }
    }
}

#[test]
fn the_graph_reader_sees_use_trees_inline_paths_and_super() {
    let paths = named_paths(&strip(
        "use crate::{a::b, c::{d as e, f}};\nuse super::g;\npub use child::Item;\nfn x() { crate::h::i(); }\n// crate::j::k\n\
         #[cfg(test)]\nmod tests { use crate::z; }\n",
    ));
    let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    for want in ["crate::a::b", "crate::c::d", "crate::c::f", "super::g", "crate::h::i", "child::Item"] {
        assert!(joined.contains(&want.to_owned()), "{want} in {joined:?}");
    }
    assert!(!joined.iter().any(|p| p.contains('j') || p.contains('z')), "comments and tests are left out: {joined:?}");
    let edges: BTreeMap<u8, BTreeSet<u8>> = [(1, [2].into()), (2, [3].into()), (3, [1].into())].into();
    assert_eq!(find_cycle(&edges), Some(vec![1, 2, 3, 1]));
    let edges: BTreeMap<u8, BTreeSet<u8>> = [(1, [2, 3].into()), (2, [3].into()), (3, [].into())].into();
    assert_eq!(find_cycle(&edges), None);
}
