//! The boundaries docs/architecture.md draws, checked on the source: the
//! frontend names backend crates only in src/backends.rs, no two files of
//! a crate import each other in a circle, and a third backend (the
//! test-only `process` backend, one crate and one line in backends.rs)
//! runs `isola run` through the traits alone.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The source without comments, so that a doc link is not an import.
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_frontend_names_backend_crates_only_in_backends_rs() {
    let backend_crates = ["isola_container", "isola_vm", "isola_test_backend"];
    let src = Path::new(REPO).join("src");
    let mut offenders = Vec::new();
    for file in rust_files(&src) {
        if file.ends_with("src/backends.rs") {
            continue;
        }
        let text = code(&fs::read_to_string(&file).unwrap());
        for name in backend_crates {
            if text.contains(name) {
                offenders.push(format!("{} names {name}", file.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
    // And the frontend's manifest is where the backends come in, once each.
    let manifest = fs::read_to_string(Path::new(REPO).join("Cargo.toml")).unwrap();
    for name in ["isola-container", "isola-vm"] {
        assert_eq!(manifest.matches(&format!("{name} =")).count(), 1, "{name}");
    }
}

/// A crate's modules: path (`a::b`) → the file that holds it.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).unwrap().with_extension("");
        let mut path: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if matches!(
            path.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            path.pop();
        }
        // A binary's own modules (src/bin/x.rs) are not the library's.
        if path.first().map(String::as_str) == Some("bin") {
            continue;
        }
        out.insert(path, file);
    }
    out
}

/// `a::{b, c::{d, e}}` → a::b, a::c::d, a::c::e (the text after `prefix::`).
fn expand(prefix: &[String], text: &str, out: &mut Vec<Vec<String>>) {
    let text = text.trim();
    if let Some(open) = text.find('{') {
        let head: Vec<String> = text[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let mut base = prefix.to_vec();
        base.extend(head);
        let inner = &text[open + 1..text.rfind('}').unwrap_or(text.len())];
        let (mut depth, mut start) = (0, 0);
        for (i, ch) in inner.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&base, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&base, &inner[start..], out);
    } else {
        let mut path = prefix.to_vec();
        path.extend(
            text.split(" as ")
                .next()
                .unwrap_or("")
                .split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty() && *s != "self" && *s != "*")
                .map(String::from),
        );
        out.push(path);
    }
}

/// The paths `module` refers to through `crate::`, `super::`, `self::` and
/// its own child modules, as module paths.
fn references(module: &[String], is_dir_module: bool, text: &str) -> Vec<Vec<String>> {
    let text = code(text);
    let mut out = Vec::new();
    // The module a `super::` in this file means: for `a/b.rs` and
    // `a/b/mod.rs` alike, `a`.
    let parent: Vec<String> = module[..module.len().saturating_sub(1)].to_vec();
    let _ = is_dir_module;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let boundary = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':');
        let base = if !boundary {
            None
        } else if rest.starts_with("crate::") {
            Some((Vec::new(), "crate::".len()))
        } else if rest.starts_with("super::") {
            let mut base = parent.clone();
            let mut len = "super::".len();
            while text[i + len..].starts_with("super::") {
                base.pop();
                len += "super::".len();
            }
            Some((base, len))
        } else if rest.starts_with("self::") {
            Some((module.to_vec(), "self::".len()))
        } else {
            None
        };
        if let Some((base, len)) = base {
            let tail = &text[i + len..];
            let end = if tail.starts_with('{') {
                let mut depth = 0;
                tail.char_indices()
                    .find(|&(_, c)| {
                        match c {
                            '{' => depth += 1,
                            '}' => depth -= 1,
                            _ => {}
                        }
                        depth == 0
                    })
                    .map_or(tail.len(), |(j, _)| j + 1)
            } else {
                tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(tail.len())
            };
            expand(&base, &tail[..end], &mut out);
            i += len + end;
            continue;
        }
        // `child::item` for a child module declared here.
        if boundary && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_') {
            let word_end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if rest[word_end..].starts_with("::") {
                let mut path = module.to_vec();
                path.push(rest[..word_end].to_string());
                out.push(path);
            }
            i += word_end.max(1);
            continue;
        }
        i += text[i..].chars().next().map_or(1, char::len_utf8);
    }
    out
}

/// The circles among a crate's modules; an edge from a module to one of
/// its ancestors (a child using its parent's items) does not count.
fn circles(src: &Path) -> Vec<Vec<String>> {
    let mods = modules(src);
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, file) in &mods {
        let text = fs::read_to_string(file).unwrap();
        let dir_module = file.file_name().is_some_and(|n| n == "mod.rs");
        let targets = edges.entry(module.clone()).or_default();
        for path in references(module, dir_module, &text) {
            let Some(target) = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| mods.contains_key(p))
            else {
                continue;
            };
            let ancestor = target.len() < module.len() && module[..target.len()] == target[..];
            if target != *module && !ancestor && !target.is_empty() {
                targets.insert(target);
            }
        }
    }
    // Tarjan's strongly connected components.
    struct State<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<Vec<String>, usize>,
        low: BTreeMap<Vec<String>, usize>,
        stack: Vec<Vec<String>>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit(s: &mut State, v: &Vec<String>) {
        s.index.insert(v.clone(), s.next);
        s.low.insert(v.clone(), s.next);
        s.next += 1;
        s.stack.push(v.clone());
        for w in s.edges.get(v).cloned().unwrap_or_default() {
            if !s.index.contains_key(&w) {
                visit(s, &w);
                let lw = s.low[&w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[&w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                let done = w == *v;
                component.push(w.join("::"));
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.found
}

/// Every crate's `src/` in the repository.
fn crate_sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
            out.push(dir.join("src"));
        }
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name();
            if p.is_dir() && name != "target" && !name.to_string_lossy().starts_with('.') {
                walk(&p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new(REPO), &mut out);
    out
}

#[test]
fn no_two_files_of_a_crate_import_each_other_in_a_circle() {
    let sources = crate_sources();
    assert!(sources.len() >= 8, "found only {sources:?}");
    let mut all = Vec::new();
    for src in &sources {
        for circle in circles(src) {
            all.push(format!("{}: {}", src.display(), circle.join(" <-> ")));
        }
    }
    assert!(all.is_empty(), "import circles:\n{}", all.join("\n"));
}

#[test]
fn the_circle_check_finds_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\n").unwrap();
    fs::write(src.join("a.rs"), "use crate::b::Thing;\n").unwrap();
    fs::write(src.join("b.rs"), "use super::{c::{self, X}};\n").unwrap();
    fs::create_dir(src.join("c")).unwrap();
    fs::write(
        src.join("c/mod.rs"),
        "mod d;\npub struct X;\nfn f() { d::f() }\n// crate::b in a comment\n",
    )
    .unwrap();
    fs::write(src.join("c/d.rs"), "fn f() { crate::a::g(); super::X; }\n").unwrap();
    let found = circles(src);
    assert_eq!(found.len(), 1, "{found:?}");
    let mut members = found[0].clone();
    members.sort();
    assert_eq!(members, ["a", "b", "c", "c::d"]);
    // A child using its parent's items is no circle.
    fs::write(src.join("c/d.rs"), "fn f() { super::X; }\n").unwrap();
    assert!(circles(src).is_empty());
}

/// `isola run` through a backend that is one crate and one line in
/// src/backends.rs: the frontend needs nothing else.
#[test]
#[cfg_attr(
    not(feature = "test-backend"),
    ignore = "needs the test-backend feature, which make test turns on"
)]
fn a_third_backend_runs_through_the_traits_alone() {
    let isola = common::Isola::new();
    // The process backend runs the host's programs, not the image's; it
    // still needs an image to name.
    isola.ok(["image", "default"]);
    let out = isola.expect(
        [
            "run",
            "--backend",
            "process",
            "--rm",
            "-e",
            "GREETING=from a third backend",
            "isola/busybox",
            "sh",
            "-c",
            "echo \"$GREETING\"; exit 7",
        ],
        false,
    );
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from a third backend\n"
    );
    // What it cannot do is refused up front, in its words, leaving nothing.
    let err = isola.fail([
        "run",
        "--backend",
        "process",
        "-v",
        "/tmp:/x",
        "isola/busybox",
        "true",
    ]);
    assert!(err.contains("takes no -v volumes"), "{err}");
    assert_eq!(
        fs::read_dir(isola.root().join("instances"))
            .map(|d| d
                .flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count())
            .unwrap_or(0),
        0
    );
    // And isola info has its line.
    assert!(isola.ok(["info"]).contains("process backend:"));
}
