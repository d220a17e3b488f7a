//! The core reads one way: no module of `src/` uses a sibling that uses
//! it back, directly or around a longer circle (ARCHITECTURE.md lists the
//! order this test prints). Checked on the source text: every `crate::`,
//! `super::` and `self::` path (grouped `use` included) outside test code
//! is an edge between the two sibling modules it crosses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The module path of a source file relative to `src/`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Test files and test modules are not part of the layering.
fn is_test_file(rel: &Path) -> bool {
    rel.iter().any(|p| p == "tests")
        || rel
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with("tests.rs"))
}

/// The text without comments and without the test module that ends a file.
fn code_of(text: &str) -> String {
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    match code.find("#[cfg(test)]") {
        Some(i) => code[..i].to_string(),
        None => code,
    }
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every path a file names from `crate`, `super` or `self`, resolved to an
/// absolute module path (as far as its first segment below the root).
fn paths_in(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for root in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(root) {
            // `xcrate::` or `my_super::` are other names.
            let before = code[..at].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let mut base: Vec<String> = match root {
                "crate::" => Vec::new(),
                "super::" => module[..module.len().saturating_sub(1)].to_vec(),
                _ => module.to_vec(),
            };
            let mut rest = &code[at + root.len()..];
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            let firsts: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
                // Top-level names of a grouped `use`.
                let mut depth = 0;
                let mut names = Vec::new();
                let mut start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => start = true,
                        c if start && !c.is_whitespace() => {
                            names.push(ident(&group[i..]).to_string());
                            start = false;
                        }
                        _ => {}
                    }
                }
                names
            } else {
                vec![ident(rest).to_string()]
            };
            for first in firsts.into_iter().filter(|f| !f.is_empty() && f != "self") {
                let mut path = base.clone();
                path.push(first);
                // One more segment, so paths into a sibling's children
                // count at every level.
                let after = &rest[ident(rest).len()..];
                if let Some(next) = after.strip_prefix("::") {
                    let n = ident(next);
                    if !n.is_empty() {
                        path.push(n.to_string());
                    }
                }
                found.push(path);
            }
        }
    }
    found
}

fn graph(src: &Path) -> Graph {
    let mut edges = Graph::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("src/ entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("below src/");
            if is_test_file(rel) {
                continue;
            }
            let module = module_of(rel);
            let code = code_of(&std::fs::read_to_string(&path).expect("source is readable"));
            for target in paths_in(&code, &module) {
                // The first level where the two paths part: siblings there.
                let shared = module
                    .iter()
                    .zip(&target)
                    .take_while(|(a, b)| a == b)
                    .count();
                if shared < module.len() && shared < target.len() {
                    let from = module[..=shared].join("::");
                    let to = target[..=shared].join("::");
                    edges.entry(from).or_default().insert(to);
                }
            }
        }
    }
    edges
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct Walk<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on.insert(v);
            for w in self.g.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    comp.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.found.push(comp);
                }
            }
        }
    }
    let mut walk = Walk {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        found: Vec::new(),
    };
    let nodes: BTreeSet<&str> = g
        .iter()
        .flat_map(|(k, vs)| std::iter::once(k.as_str()).chain(vs.iter().map(String::as_str)))
        .collect();
    for n in nodes {
        if !walk.index.contains_key(n) {
            walk.visit(n);
        }
    }
    walk.found.sort();
    walk.found
}

/// Top-level modules, each after everything it uses.
fn order(g: &Graph) -> Vec<String> {
    let top = |m: &str| !m.contains("::");
    let mut left: BTreeSet<&str> = g
        .iter()
        .flat_map(|(k, vs)| std::iter::once(k.as_str()).chain(vs.iter().map(String::as_str)))
        .filter(|m| top(m))
        .collect();
    let mut out = Vec::new();
    while !left.is_empty() {
        let ready: Vec<&str> = left
            .iter()
            .copied()
            .filter(|m| {
                g.get(*m)
                    .into_iter()
                    .flatten()
                    .all(|d| !left.contains(d.as_str()) || d == m)
            })
            .collect();
        if ready.is_empty() {
            break;
        }
        for m in ready {
            left.remove(m);
            out.push(m.to_string());
        }
    }
    out
}

#[test]
fn no_module_uses_a_sibling_that_uses_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    assert!(
        g.get("plan").is_some_and(|d| d.contains("render")),
        "the scan sees plan using render: {g:?}"
    );
    let found = cycles(&g);
    let explain: Vec<String> = found
        .iter()
        .map(|comp| {
            let edges: Vec<String> = comp
                .iter()
                .flat_map(|a| {
                    g[a].iter()
                        .filter(|b| comp.contains(b))
                        .map(move |b| format!("{a} -> {b}"))
                })
                .collect();
            format!("{{{}}}: {}", comp.join(", "), edges.join("; "))
        })
        .collect();
    assert!(found.is_empty(), "module cycles:\n{}", explain.join("\n"));
    println!("dependency order: {}", order(&g).join(" < "));
}

#[test]
fn the_scan_finds_a_planted_cycle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "mod a; mod b;\n").expect("write");
    std::fs::write(
        src.join("a/mod.rs"),
        "mod x; mod y;\nuse crate::b::Thing;\n",
    )
    .expect("write");
    std::fs::write(src.join("a/x.rs"), "use super::y::Y;\n").expect("write");
    std::fs::write(
        src.join("a/y.rs"),
        "// use super::x is only a comment\npub struct Y;\nuse super::{x, };\n#[cfg(test)]\nmod tests { use crate::b; }\n",
    )
    .expect("write");
    std::fs::write(src.join("b.rs"), "use crate::{a::x, c};\n").expect("write");
    let g = graph(src);
    let found = cycles(&g);
    assert_eq!(
        found,
        vec![
            vec!["a".to_string(), "b".to_string()],
            vec!["a::x".to_string(), "a::y".to_string()]
        ]
    );
}
