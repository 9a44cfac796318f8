//! The core's module graph, read from its source: no two modules import each other
//! (at any level of nesting), and the data's path `ingest → store → worker → crm`
//! only points forward (`notify`, the delivery side, comes after the worker). ARCHITECTURE.md states these invariants; this test is what
//! keeps them, because the compiler allows cycles between modules of one crate.
//!
//! A parent's own file (`store/mod.rs`) counts as a module among its children: a
//! child naming an item of that file, even one the file only re-exports, imports
//! the parent, and the parent's code naming a child imports the child, so the two
//! doing both is a cycle. `mod` and `pub use` lines are declarations, not uses:
//! a parent that only declares and re-exports may be named by its children, and one
//! that composes its children (`store::open`) leaves the shared types in a leaf
//! (`store::contract`) that both import.
//!
//! It reads `use crate::…`, `crate::…`, `super::…` and `self::…` paths, and a
//! parent's bare `child::…` paths, outside test modules, resolving each to the
//! deepest module that has a file. That is a textual reading, not name resolution,
//! so a glob or a `use` of a `use` can hide an edge; the crate boundaries (domain,
//! policy, sandbox, bench, testkit) are the compiler-enforced walls, this test
//! guards the rooms inside the core.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// Top-level modules that a module must never reach, by module. Everything else
/// is allowed as long as the graph stays acyclic.
const FORBIDDEN: &[(&str, &[&str])] = &[
    // The store keeps events, jobs, audit and the notification outbox; it knows no
    // CRM, worker, route or delivery channel.
    (
        "store",
        &["crm", "worker", "ingest", "http", "app", "notify"],
    ),
    // A CRM client only talks to its vendor.
    (
        "crm",
        &["store", "worker", "ingest", "http", "app", "notify"],
    ),
    // Ingest verifies, maps and stores: it never calls the CRM or runs jobs.
    ("ingest", &["crm", "worker", "http", "app", "notify"]),
    // The worker is started by the app and never reaches back into the receiver.
    // It may use `notify` (the delivery side comes after it in the data flow).
    ("worker", &["ingest", "http", "app"]),
    // Notifications are downstream of the worker: they read the store's outbox and
    // send; they never run a job, take a webhook, call the CRM or serve a route.
    // (`signing` is shared with ingest as a leaf, not through `ingest`.)
    (
        "notify",
        &["worker", "ingest", "http", "crm", "app", "console"],
    ),
    // The Standard Webhooks definition is a leaf both directions share.
    (
        "signing",
        &[
            "store", "worker", "ingest", "http", "crm", "app", "notify", "console", "config",
        ],
    ),
    ("http", &["worker", "app", "notify"]),
    // The console reads and operates the store, like the admin API: it never calls
    // the CRM, runs a job or takes a webhook, and the app mounts it, not `http`.
    (
        "console",
        &["worker", "crm", "ingest", "http", "app", "notify"],
    ),
    (
        "config",
        &["store", "worker", "ingest", "http", "crm", "app", "notify"],
    ),
    (
        "metrics",
        &["store", "worker", "ingest", "http", "crm", "app", "notify"],
    ),
    (
        "telemetry",
        &["store", "worker", "ingest", "http", "crm", "app", "notify"],
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

/// A file's code without its `mod x;` and `pub use …;` statements: what is left is
/// the code that *uses* what it names. Also the names its `pub use` statements
/// bring in (the alias, when renamed), with the paths they come from.
fn split_declarations(code: &str) -> (String, Vec<(Vec<String>, String)>) {
    let mut rest = Vec::new();
    let mut reexported = Vec::new();
    let mut statement: Option<String> = None;
    for line in code.lines() {
        let t = line.trim_start();
        let t_vis = t
            .strip_prefix("pub ")
            .or_else(|| t.strip_prefix("pub(crate) "))
            .or_else(|| t.strip_prefix("pub(super) "));
        let starts_reexport = t_vis.is_some_and(|v| v.starts_with("use "));
        let is_mod_decl = t_vis.unwrap_or(t).starts_with("mod ") && t.trim_end().ends_with(';');
        if statement.is_none() && is_mod_decl {
            continue;
        }
        if statement.is_none() && starts_reexport {
            statement = Some(String::new());
        }
        match statement.as_mut() {
            Some(text) => {
                text.push_str(line);
                text.push('\n');
                if line.contains(';') {
                    let text = statement.take().unwrap_or_default();
                    let after_use = &text[text.find("use ").map_or(0, |i| i + 4)..];
                    reexported.extend(use_tree(after_use));
                }
            }
            None => rest.push(line),
        }
    }
    (rest.join("\n"), reexported)
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

fn skip_ws(s: &str, pos: &mut usize) {
    *pos += s[*pos..].len() - s[*pos..].trim_start().len();
}

/// The paths of one use tree (or of one expression path), each with the name it
/// binds: `a::{b::{self as c, D}, e}` → `a::b` as `c`, `a::b::D` as `D`, `a::e` as
/// `e`. A glob binds no name; `self` ends the path at its parent.
fn use_tree(s: &str) -> Vec<(Vec<String>, String)> {
    fn tree(s: &str, pos: &mut usize) -> Vec<(Vec<String>, String)> {
        skip_ws(s, pos);
        if s[*pos..].starts_with('{') {
            *pos += 1;
            let mut out = Vec::new();
            loop {
                skip_ws(s, pos);
                if *pos >= s.len() {
                    break;
                }
                if s[*pos..].starts_with('}') {
                    *pos += 1;
                    break;
                }
                out.extend(tree(s, pos));
                // Whatever is left of this item (nothing, or a stray token) up to
                // its separator.
                match s[*pos..].find([',', '}']) {
                    Some(i) if s[*pos + i..].starts_with(',') => *pos += i + 1,
                    Some(i) => *pos += i,
                    None => *pos = s.len(),
                }
            }
            return out;
        }
        let id = ident_at(&s[*pos..]).to_owned();
        if id.is_empty() {
            // A glob (`*`), a turbofish or the end of a path: the path so far.
            return vec![(Vec::new(), String::new())];
        }
        *pos += id.len();
        if s[*pos..].starts_with("::") {
            *pos += 2;
            return tree(s, pos)
                .into_iter()
                .map(|(mut path, name)| {
                    path.insert(0, id.clone());
                    let name = if name == "self" { id.clone() } else { name };
                    (path, name)
                })
                .collect();
        }
        let mut name = id.clone();
        let mut after = *pos;
        skip_ws(s, &mut after);
        if let Some(alias) = s[after..].strip_prefix("as ") {
            let alias = alias.trim_start();
            let a = ident_at(alias);
            if !a.is_empty() {
                name = a.to_owned();
                *pos = s.len() - alias.len() + a.len();
            }
        }
        if id == "self" {
            return vec![(Vec::new(), name)];
        }
        vec![(vec![id], name)]
    }
    tree(s, &mut 0)
}

/// Every path after `prefix::` (a whole `prefix::{…}` group counts as its paths).
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let needle = format!("{prefix}::");
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = code[at..].find(&needle) {
        let start = at + i;
        at = start + needle.len();
        let before = code[..start].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        found.extend(use_tree(&code[at..]).into_iter().map(|(path, _)| path));
    }
    found
}

/// The modules a file's code names, each resolved to the deepest module that has
/// a file (`crate::store::Job` is `store`; `super::seat::run` from
/// `worker/offboard.rs` is `worker::seat`). A file may name its own children
/// without `self::` (`sqlite::SqliteStore` in `store/mod.rs`), so those count too.
fn targets(
    code: &str,
    from: &[String],
    modules: &BTreeMap<Vec<String>, String>,
) -> BTreeSet<Vec<String>> {
    let mut raw: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for path in paths_after(code, "crate") {
        raw.push((Vec::new(), path));
    }
    for path in paths_after(code, "self") {
        raw.push((from.to_vec(), path));
    }
    for path in paths_after(code, "super") {
        // `module_path` already folded `mod.rs` into its folder, so `super` is
        // the parent path for every file.
        let mut base = from[..from.len().saturating_sub(1)].to_vec();
        let mut rest = path.as_slice();
        while rest.first().is_some_and(|s| s == "super") {
            base.pop();
            rest = &rest[1..];
        }
        raw.push((base, rest.to_vec()));
    }
    for child in modules
        .keys()
        .filter(|m| m.len() == from.len() + 1 && m.starts_with(from))
    {
        let name = &child[from.len()];
        for path in paths_after(code, name) {
            let mut full = vec![name.clone()];
            full.extend(path);
            raw.push((from.to_vec(), full));
        }
    }
    raw.into_iter()
        .map(|(mut target, path)| {
            for seg in path {
                target.push(seg);
                if !modules.contains_key(&target) {
                    target.pop();
                    break;
                }
            }
            target
        })
        .collect()
}

/// The name of a module's own file among its children in [`graph_of`]; a module
/// name can't contain the dot, so it never collides with one.
fn own_file(module: &[String]) -> String {
    if module.is_empty() {
        "lib.rs".to_owned()
    } else {
        format!("{}/mod.rs", module.join("/"))
    }
}

/// Module-to-module edges, grouped by the parent whose children they connect:
/// `worker/seat.rs` using `super::offboard` is the edge `seat → offboard` in
/// `worker`. A parent's own file is a node of that group too (see [`own_file`]):
/// a child that names an item of it (`super::Job`, `crate::store::Job` from
/// `store/sqlite.rs`) is an edge child → file, and the file's code beyond its
/// `mod` and `pub use` lines naming a child (a path, or a name a `pub use` brought
/// in from it) is an edge file → child. So a parent and a child importing each
/// other is a cycle like any other, while declaring and re-exporting is not a use.
fn graph_of(
    modules: &BTreeMap<Vec<String>, String>,
) -> BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> {
    let mut by_parent: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut edge = |group: &[String], from: String, to: String| {
        by_parent
            .entry(group.to_vec())
            .or_default()
            .entry(from)
            .or_default()
            .insert(to);
    };
    for (from, code) in modules {
        // Across and up, every path counts: a child's `pub use super::X` imports X.
        for to in targets(code, from, modules) {
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < to.len() {
                edge(&from[..common], from[common].clone(), to[common].clone());
            } else if common == to.len() && common < from.len() {
                edge(&to, from[common].clone(), own_file(&to));
            }
        }
        // Down, only the file's own code counts: declaring and re-exporting a child
        // is how the child becomes reachable, not a use of it.
        let (uses, reexported) = split_declarations(code);
        let mut down: BTreeSet<Vec<String>> = targets(&uses, from, modules)
            .into_iter()
            .filter(|t| t.len() > from.len() && t.starts_with(from))
            .collect();
        for (path, name) in reexported {
            let path = path.strip_prefix(&["self".to_owned()][..]).unwrap_or(&path);
            let Some(child) = path.first() else { continue };
            let mut child_path = from.clone();
            child_path.push(child.clone());
            let names_it = !name.is_empty()
                && uses
                    .match_indices(name.as_str())
                    .any(|(i, _)| is_word(&uses, i, name.len()));
            if modules.contains_key(&child_path) && names_it {
                down.insert(child_path);
            }
        }
        for to in down {
            edge(from, own_file(from), to[from.len()].clone());
        }
    }
    by_parent
}

/// `code[i..i + len]` is a whole identifier, not part of a longer one or a path
/// segment of something else.
fn is_word(code: &str, i: usize, len: usize) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    !code[..i]
        .chars()
        .last()
        .is_some_and(|c| ident(c) || c == ':')
        && !code[i + len..].chars().next().is_some_and(ident)
}

/// Every module of the core with its code, by module path.
fn modules() -> BTreeMap<Vec<String>, String> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files
        .into_iter()
        .map(|file| {
            let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
            (module_path(&file), code_of(&text))
        })
        .collect()
}

fn graph() -> BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> {
    graph_of(&modules())
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

/// One line per group of the graph that has a cycle.
fn cycles(graph: &BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>>) -> Vec<String> {
    let mut cycles = Vec::new();
    for (parent, edges) in graph {
        if let Some(cycle) = find_cycle(edges) {
            let at = if parent.is_empty() {
                "crate".to_owned()
            } else {
                parent.join("::")
            };
            cycles.push(format!("in {at}: {}", cycle.join(" → ")));
        }
    }
    cycles
}

#[test]
fn no_two_modules_of_the_core_import_each_other() {
    let cycles = cycles(&graph());
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

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn the_reader_sees_grouped_and_nested_imports() {
    let code =
        "use crate::{config::X, store::{self, Y}};\nuse super::seat;\nfoo(crate::metrics::Z);";
    assert_eq!(
        paths_after(code, "crate"),
        [
            strings(&["config", "X"]),
            strings(&["store"]),
            strings(&["store", "Y"]),
            strings(&["metrics", "Z"]),
        ]
    );
    assert_eq!(paths_after(code, "super"), [strings(&["seat"])]);
    let names: Vec<String> = use_tree("a::{b::{self as c, D}, e::*}")
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    assert_eq!(names, ["c", "D", ""]);
    let mut edges = BTreeMap::new();
    edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    edges.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert!(find_cycle(&edges).is_some());
    edges.insert("b".to_owned(), BTreeSet::new());
    assert!(find_cycle(&edges).is_none());
}

/// A crate of `store/{mod, sqlite, api}.rs` whose parent file opens the backend.
fn tiny_store(sqlite_code: &str) -> BTreeMap<Vec<String>, String> {
    let parent = "mod api;\npub mod sqlite;\n\npub use api::{JobStore, StoreError};\n\n\
                  pub fn open() -> Result<Box<dyn JobStore>, StoreError> {\n    \
                  Ok(Box::new(sqlite::SqliteStore))\n}\n";
    BTreeMap::from([
        (Vec::new(), "pub mod store;\n".to_owned()),
        (strings(&["store"]), parent.to_owned()),
        (
            strings(&["store", "api"]),
            "pub trait JobStore {}\n".to_owned(),
        ),
        (strings(&["store", "sqlite"]), sqlite_code.to_owned()),
    ])
}

#[test]
fn a_child_naming_its_parents_items_while_the_parent_uses_it_is_a_cycle() {
    // Through `super::`, through `crate::`, and through the parent's re-export.
    for import in [
        "use super::JobStore;",
        "use crate::store::{StoreError, api::JobStore};",
        "fn f(_: &dyn super::JobStore) {}",
    ] {
        let found = cycles(&graph_of(&tiny_store(import)));
        assert_eq!(
            found,
            ["in store: sqlite → store/mod.rs → sqlite"],
            "{import}"
        );
    }
    // The child names the leaf instead: no cycle.
    for import in [
        "use super::api::JobStore;",
        "use crate::store::api::{JobStore, StoreError};",
    ] {
        assert!(
            cycles(&graph_of(&tiny_store(import))).is_empty(),
            "{import}"
        );
    }
    // A parent that only declares and re-exports is not using its children, so a
    // child may reach a sibling through it without a cycle.
    let mut only_reexports = tiny_store("use super::JobStore;");
    only_reexports.insert(
        strings(&["store"]),
        "mod api;\npub mod sqlite;\npub use api::{\n    JobStore,\n};\npub use sqlite::SqliteStore;\n"
            .to_owned(),
    );
    assert!(cycles(&graph_of(&only_reexports)).is_empty());
    // …but a name re-exported from a child and used in the parent's own code is a use.
    only_reexports.insert(
        strings(&["store"]),
        "mod api;\npub mod sqlite;\npub use self::sqlite::SqliteStore as Default;\n\
         pub fn open() -> Default { Default }\n"
            .to_owned(),
    );
    assert_eq!(
        cycles(&graph_of(&only_reexports)),
        ["in store: sqlite → store/mod.rs → sqlite"]
    );
}
