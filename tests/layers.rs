//! The layers of the library, checked from its source: which top-level module may reach
//! which, and that no two top-level modules reach each other.
//!
//! Every `crate::…` and `super::…` path in `src/**/*.rs` (comments and string literals left
//! out, `use crate::{a, b}` groups read whole) is an edge from the file's top-level module to
//! the one the path names. "Reach" follows edges transitively. A module missing from
//! [`RULES`] is still checked for cycles; to give it a rule, add a line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that do I/O or run the daemon: what the pure layers must never reach.
const RUNTIME: &[&str] = &[
    "etcd",
    "install",
    "template",
    "daemon",
    "supervisor",
    "reconciler",
    "reconcile",
    "cmd",
];

/// `(module, modules it must never reach, extern paths it must never name)`.
const RULES: &[(&str, &[&str], &[&str])] = &[
    ("template", &["etcd"], &[]),
    ("install", &["etcd", "template"], &[]),
    (
        "batch",
        &[
            "etcd",
            "install",
            "template",
            "daemon",
            "supervisor",
            "reconciler",
            "reconcile",
            "cmd",
            "notify",
            "logging",
        ],
        &["tokio", "std::fs", "std::net", "std::process"],
    ),
    ("config", RUNTIME, &[]),
    ("resource", RUNTIME, &[]),
    ("store", RUNTIME, &[]),
    ("keys", RUNTIME, &[]),
    ("diag", RUNTIME, &[]),
    // The guard's rule is pure, like the batcher's.
    (
        "guard",
        RUNTIME,
        &["tokio", "std::fs", "std::net", "std::process"],
    ),
    // Everything records into metrics: it must not reach back up.
    ("metrics", RUNTIME, &[]),
    // The control protocol is the supervisor's input, not its user.
    ("control", &["supervisor", "cmd"], &[]),
];

#[test]
fn layers_point_down_and_never_in_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let deps = scan_tree(&src);
    let mut problems = Vec::new();
    for (module, never, externs) in RULES {
        let reached = reach(&deps.edges, module);
        for bad in never.iter().filter(|b| reached.contains_key(**b)) {
            problems.push(format!(
                "{module} reaches {bad}: {}",
                route(&deps.edges, &reached, module, bad)
            ));
        }
        for ext in *externs {
            if let Some(files) = deps.externs.get(&(module.to_string(), ext.to_string())) {
                problems.push(format!("{module} names {ext} (in {})", files.join(", ")));
            }
        }
    }
    for cycle in cycles(&deps.edges) {
        problems.push(format!(
            "import circle: {} each reach the others",
            cycle.join(", ")
        ));
    }
    assert!(
        problems.is_empty(),
        "layer rules broken (edges with their files below):\n{}\n\n{}",
        problems.join("\n"),
        describe(&deps.edges)
    );
    // The scan found the crate's modules, so an empty graph cannot pass by accident.
    for m in ["config", "etcd", "store", "template", "batch", "resource"] {
        assert!(deps.modules.contains(m), "{m} not found in src/lib.rs");
    }
    assert!(deps
        .edges
        .get("etcd")
        .is_some_and(|e| e.contains_key("config")));
}

/// The scanner itself: a forbidden import, hidden in the ways Rust allows, is found; text in
/// comments and strings is not.
#[test]
fn the_scanner_sees_groups_super_paths_and_not_comments() {
    let top: BTreeSet<String> = ["config", "etcd", "store", "keys"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut deps = Deps {
        modules: top,
        ..Default::default()
    };
    let text = r#"
        //! Uses [`crate::keys`] only in docs.
        use crate::{etcd::Client, store};
        const S: &str = "crate::keys";
        /* crate::keys */
        fn f<'a>(c: char) -> bool { c == '"' }
        mod inner {
            use super::super::super::store::KvView;
            fn g() { tokio::spawn(async {}); let _ = std::fs::read("x"); }
        }
    "#;
    scan_file(
        &mut deps,
        &["config".into(), "value".into()],
        text,
        "config/value.rs",
    );
    let got: Vec<&str> = deps.edges["config"].keys().map(String::as_str).collect();
    assert_eq!(got, vec!["etcd", "store"]);
    assert!(deps
        .externs
        .contains_key(&("config".into(), "tokio".into())));
    assert!(deps
        .externs
        .contains_key(&("config".into(), "std::fs".into())));
}

#[derive(Default)]
struct Deps {
    /// Top-level modules declared in `src/lib.rs`.
    modules: BTreeSet<String>,
    /// module → module it names → files where it does.
    edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    /// (module, extern path) → files.
    externs: BTreeMap<(String, String), Vec<String>>,
}

fn scan_tree(src: &Path) -> Deps {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let mut deps = Deps::default();
    let toks = tokens(&strip(&lib));
    for w in toks.windows(3) {
        if w[0] == "mod" && w[2] == ";" {
            deps.modules.insert(w[1].clone());
        }
    }
    let mut files = Vec::new();
    rust_files(src, &mut files);
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let name = rel.display().to_string();
        if name == "lib.rs" || name == "main.rs" {
            continue;
        }
        let mut path: Vec<String> = rel
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if path.last().is_some_and(|l| l == "mod") {
            path.pop();
        }
        let text = std::fs::read_to_string(&file).unwrap();
        scan_file(&mut deps, &path, &text, &name);
    }
    deps
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Records the edges of one file whose module path is `path` (`["config", "value"]`).
fn scan_file(deps: &mut Deps, path: &[String], text: &str, name: &str) {
    let from = path[0].clone();
    let toks = tokens(&strip(text));
    // Inline modules (`mod tests { … }`) deepen the path `super` climbs from.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let add = |deps: &mut Deps, to: &str| {
        if to != from && deps.modules.contains(to) {
            deps.edges
                .entry(from.clone())
                .or_default()
                .entry(to.to_owned())
                .or_default()
                .insert(name.to_owned());
        }
    };
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].as_str();
        match t {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            "mod" if toks.get(i + 2).is_some_and(|t| t == "{") => {
                inline.push((toks[i + 1].clone(), depth));
            }
            "tokio" | "std" if toks.get(i + 1).is_some_and(|t| t == "::") => {
                let prev_is_path = i > 0 && toks[i - 1] == "::";
                if !prev_is_path {
                    let ext = if t == "std" {
                        format!("std::{}", toks.get(i + 2).map_or("", String::as_str))
                    } else {
                        "tokio".to_owned()
                    };
                    let files = deps.externs.entry((from.clone(), ext)).or_default();
                    if !files.contains(&name.to_owned()) {
                        files.push(name.to_owned());
                    }
                }
            }
            "crate" | "super" if toks.get(i + 1).is_some_and(|t| t == "::") => {
                if i > 0 && toks[i - 1] == "::" {
                    i += 1;
                    continue;
                }
                let mut here: Vec<String> = path.to_vec();
                here.extend(inline.iter().map(|(m, _)| m.clone()));
                let mut j = i;
                if t == "crate" {
                    here.clear();
                    j += 2;
                } else {
                    while toks.get(j).is_some_and(|t| t == "super")
                        && toks.get(j + 1).is_some_and(|t| t == "::")
                    {
                        here.pop();
                        j += 2;
                    }
                }
                if let Some(top) = here.first() {
                    add(deps, &top.clone());
                } else if toks.get(j).is_some_and(|t| t == "{") {
                    for first in group_heads(&toks, j) {
                        add(deps, &first);
                    }
                } else if let Some(next) = toks.get(j) {
                    add(deps, &next.clone());
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

/// The first name of each item of the `{ … }` group opening at `toks[open]`.
fn group_heads(toks: &[String], open: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut expect = true;
    for t in &toks[open..] {
        match t.as_str() {
            "{" => {
                depth += 1;
                if depth == 1 {
                    expect = true;
                }
            }
            "}" => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            "," if depth == 1 => expect = true,
            name if depth == 1 && expect => {
                out.push(name.to_owned());
                expect = false;
            }
            _ => {}
        }
    }
    out
}

/// `text` with comments, strings and character literals blanked out.
fn strip(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
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
        } else if c == 'r' && (next == Some('#') || next == Some('"')) && !ident_before(&b, i) {
            let mut hashes = 0;
            let mut j = i + 1;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
            out.push_str(" \"\" ");
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str(" \"\" ");
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{1F600}'); else a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str(" ' ");
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str(" ' ");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

/// Identifiers, `::` and single punctuation characters.
fn tokens(text: &str) -> Vec<String> {
    let b: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(b[start..i].iter().collect());
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            out.push("::".to_owned());
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
            i += 1;
        }
    }
    out
}

type Edges = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Every module `from` reaches, each with the module it was reached through.
fn reach(edges: &Edges, from: &str) -> BTreeMap<String, String> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut todo = vec![from.to_owned()];
    while let Some(m) = todo.pop() {
        for to in edges.get(&m).into_iter().flat_map(BTreeMap::keys) {
            if to != from && !seen.contains_key(to) {
                seen.insert(to.clone(), m.clone());
                todo.push(to.clone());
            }
        }
    }
    seen
}

/// `a -> b -> c (b imports c in b/x.rs)`: how `from` reaches `to`.
fn route(edges: &Edges, reached: &BTreeMap<String, String>, from: &str, to: &str) -> String {
    let mut chain = vec![to.to_owned()];
    while chain.last().unwrap() != from {
        let prev = reached[chain.last().unwrap()].clone();
        chain.push(prev);
    }
    chain.reverse();
    let last = &chain[chain.len() - 2];
    let files: Vec<&String> = edges[last][to].iter().collect();
    format!(
        "{} ({last} names {to} in {})",
        chain.join(" -> "),
        files
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The import circles among top-level modules, one per strongly connected group.
fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    let modules: BTreeSet<&String> = edges
        .keys()
        .chain(edges.values().flat_map(BTreeMap::keys))
        .collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for m in modules {
        if done.contains(m) {
            continue;
        }
        let from_m = reach(edges, m);
        let mut group: Vec<String> = from_m
            .keys()
            .filter(|o| reach(edges, o).contains_key(m.as_str()))
            .cloned()
            .collect();
        if group.is_empty() {
            continue;
        }
        group.insert(0, m.clone());
        done.extend(group.iter().cloned());
        out.push(group);
    }
    out
}

fn describe(edges: &Edges) -> String {
    let mut out = String::new();
    for (from, tos) in edges {
        for (to, files) in tos {
            let files: Vec<&str> = files.iter().map(String::as_str).collect();
            out.push_str(&format!("{from} -> {to}: {}\n", files.join(", ")));
        }
    }
    out
}
