//! The core's module graph, read from its source: no two modules import each other
//! (at any level of nesting), and the data's path `ingest → store → worker → crm`
//! only points forward. ARCHITECTURE.md states these invariants; this test is what
//! keeps them, because the compiler allows cycles between modules of one crate.
//!
//! It reads `use crate::…`, `crate::…` paths and `super::…` paths outside test
//! modules. That is a textual reading, not name resolution, so a re-export can hide
//! an edge; the crate boundaries (domain, policy, sandbox, bench, testkit) are the
//! compiler-enforced walls, this test guards the rooms inside the core.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// Top-level modules that a module must never reach, by module. Everything else
/// is allowed as long as the graph stays acyclic.
const FORBIDDEN: &[(&str, &[&str])] = &[
    // The store keeps events, jobs and audit; it knows no CRM, worker or route.
    ("store", &["crm", "worker", "ingest", "http", "app"]),
    // A CRM client only talks to its vendor.
    ("crm", &["store", "worker", "ingest", "http", "app"]),
    // Ingest verifies, maps and stores: it never calls the CRM or runs jobs.
    ("ingest", &["crm", "worker", "http", "app"]),
    // The worker is started by the app and never reaches back into the receiver.
    ("worker", &["ingest", "http", "app"]),
    ("http", &["worker", "app"]),
    (
        "config",
        &["store", "worker", "ingest", "http", "crm", "app"],
    ),
    (
        "metrics",
        &["store", "worker", "ingest", "http", "crm", "app"],
    ),
    (
        "telemetry",
        &["store", "worker", "ingest", "http", "crm", "app"],
    ),
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// `worker/seat.rs` → `["worker", "seat"]`; `worker/mod.rs` → `["worker"]`.
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src_dir()).expect("under src/");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

/// The code of a file without comments and without its `#[cfg(test)]` module
/// (tests may reach anywhere).
fn code_of(text: &str) -> String {
    let body = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    body.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segments after `prefix::`, including every item of a
/// `prefix::{a::…, b, …}` group.
fn first_segments(code: &str, prefix: &str) -> Vec<String> {
    let needle = format!("{prefix}::");
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(&needle) {
        let before = rest[..i].chars().last();
        rest = &rest[i + needle.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if item_start && depth == 1 && !c.is_whitespace() => {
                        item_start = false;
                        let id = ident_at(&group[j..]);
                        if !id.is_empty() {
                            found.push(id.to_owned());
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let id = ident_at(rest);
            if !id.is_empty() {
                found.push(id.to_owned());
            }
        }
    }
    found
}

/// Module-to-module edges, grouped by the parent whose children they connect:
/// `worker/seat.rs` using `super::offboard` is the edge `seat → offboard` in `worker`.
fn graph() -> BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let mut by_parent: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let from = module_path(&file);
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        let code = code_of(&text);
        let mut targets: Vec<Vec<String>> = first_segments(&code, "crate")
            .into_iter()
            .map(|m| vec![m])
            .collect();
        // `module_path` already folded `mod.rs` into its folder, so `super` is
        // the parent path for every file.
        let super_of = from[..from.len().saturating_sub(1)].to_vec();
        for seg in first_segments(&code, "super") {
            if seg == "super" {
                continue;
            }
            let mut t = super_of.clone();
            t.push(seg);
            targets.push(t);
        }
        for to in targets {
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < to.len() {
                by_parent
                    .entry(from[..common].to_vec())
                    .or_default()
                    .entry(from[common].clone())
                    .or_default()
                    .insert(to[common].clone());
            }
        }
    }
    by_parent
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(c) = visit(node, edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_two_modules_of_the_core_import_each_other() {
    let mut cycles = Vec::new();
    for (parent, edges) in graph() {
        if let Some(cycle) = find_cycle(&edges) {
            let at = if parent.is_empty() {
                "crate".to_owned()
            } else {
                parent.join("::")
            };
            cycles.push(format!("in {at}: {}", cycle.join(" → ")));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_data_path_only_points_forward() {
    let graph = graph();
    let top = graph.get(&Vec::new()).cloned().unwrap_or_default();
    let mut wrong = Vec::new();
    for (module, forbidden) in FORBIDDEN {
        for to in top.get(*module).into_iter().flatten() {
            if forbidden.contains(&to.as_str()) {
                wrong.push(format!("{module} uses {to}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "edges against the flow:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_sees_grouped_and_nested_imports() {
    let code =
        "use crate::{config::X, store::{self, Y}};\nuse super::seat;\nfoo(crate::metrics::Z);";
    assert_eq!(
        first_segments(code, "crate"),
        ["config", "store", "metrics"]
    );
    assert_eq!(first_segments(code, "super"), ["seat"]);
    let mut edges = BTreeMap::new();
    edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    edges.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert!(find_cycle(&edges).is_some());
    edges.insert("b".to_owned(), BTreeSet::new());
    assert!(find_cycle(&edges).is_none());
}
