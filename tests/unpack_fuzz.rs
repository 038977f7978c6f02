//! Property test (the unpacker's fuzz target): whatever sequence of entries a
//! layer holds — `..`, absolute paths, symlinks to anywhere, hard links,
//! whiteouts, replacements — unpacking either succeeds or fails, and nothing
//! outside the layer directory is created, changed or removed.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::fixture::Tar;
use isola_core::image::unpack::unpack;
use proptest::prelude::*;
use tar::EntryType;

#[derive(Debug, Clone)]
enum Op {
    File(String, u8),
    Dir(String),
    Symlink(String, String),
    Hardlink(String, String),
    Whiteout(String),
}

fn component() -> impl Strategy<Value = String> {
    // Mostly plain names, so that sequences which build on each other
    // (a symlink, then a write below it) come up often.
    prop_oneof![
        4 => Just("a".to_string()),
        4 => Just("b".to_string()),
        1 => Just("..".to_string()),
        1 => Just(".".to_string()),
        1 => Just(".wh.a".to_string()),
        1 => Just(".wh..wh..opq".to_string()),
    ]
}

fn path() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.1),
        prop::collection::vec(component(), 1..4),
    )
        .prop_map(|(abs, parts)| format!("{}{}", if abs { "/" } else { "" }, parts.join("/")))
}

/// Link targets aim at the layer, its parent, the sentinel and the root.
fn target(sentinel: String) -> impl Strategy<Value = String> {
    prop_oneof![
        2 => path(),
        1 => Just("..".to_string()),
        2 => Just("../sentinel".to_string()),
        1 => Just("../../../../..".to_string()),
        1 => Just("/".to_string()),
        2 => Just(sentinel.clone()),
        2 => Just(format!("{sentinel}/file")),
    ]
}

fn op(sentinel: String) -> impl Strategy<Value = Op> {
    prop_oneof![
        (path(), any::<u8>()).prop_map(|(p, b)| Op::File(p, b)),
        path().prop_map(Op::Dir),
        (path(), target(sentinel.clone())).prop_map(|(p, t)| Op::Symlink(p, t)),
        (path(), target(sentinel)).prop_map(|(p, t)| Op::Hardlink(p, t)),
        path().prop_map(Op::Whiteout),
    ]
}

fn layer(ops: &[Op]) -> Vec<u8> {
    let mut tar = Tar::new();
    for op in ops {
        tar = match op {
            Op::File(p, b) => tar.raw(p.as_bytes(), EntryType::Regular, &[*b; 3], None),
            Op::Dir(p) => tar.raw(p.as_bytes(), EntryType::Directory, b"", None),
            Op::Symlink(p, t) => tar.raw(p.as_bytes(), EntryType::Symlink, b"", Some(t.as_bytes())),
            Op::Hardlink(p, t) => tar.raw(p.as_bytes(), EntryType::Link, b"", Some(t.as_bytes())),
            Op::Whiteout(p) => tar.raw(
                format!("{p}/.wh.x").as_bytes(),
                EntryType::Regular,
                b"",
                None,
            ),
        };
    }
    tar.build()
}

/// Path → (kind, mode, size, content, nlink, mtime) for everything below
/// `dir` (not `dir` itself, whose mtime moves as the layer dir comes and goes).
fn state(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let content = if m.is_file() {
            fs::read(&p).unwrap()
        } else {
            Vec::new()
        };
        out.insert(
            p.display().to_string(),
            format!(
                "{:o} {} {} {:?} {:?}",
                m.mode(),
                m.size(),
                m.nlink(),
                content,
                m.mtime()
            ),
        );
        if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

#[test]
fn nothing_escapes_the_layer_dir() {
    if !common::root_user() {
        return;
    }
    let sandbox = tempfile::Builder::new()
        .prefix("isola-test-fuzz-")
        .tempdir()
        .unwrap();
    let sentinel = sandbox.path().join("sentinel");
    fs::create_dir(&sentinel).unwrap();
    fs::write(sentinel.join("file"), "sentinel").unwrap();
    let before = state(sandbox.path());
    let config = ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let s = sentinel.display().to_string();
    proptest!(config, |(ops in prop::collection::vec(op(s.clone()), 1..12))| {
        let layer_dir = sandbox.path().join("layer");
        fs::create_dir(&layer_dir).unwrap();
        let _ = unpack(&layer(&ops)[..], &layer_dir);
        fs::remove_dir_all(&layer_dir).unwrap();
        prop_assert_eq!(&before, &state(sandbox.path()), "the sandbox around the layer changed: {:?}", ops);
    });
}
