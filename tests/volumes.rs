//! `isola volume create|ls|inspect|rm` through the real binary: volumes are
//! sparse, names and sizes are checked, and a volume in use is not removed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::Isola;
use isola_core::volume::VolumeStore;
use isola_core::Root;

/// Volumes need mkfs.ext4 (isola also looks in the sbin directories a
/// non-root PATH may lack); they do not need root.
fn have_mkfs() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|d| d.join("mkfs.ext4").is_file());
    common::host_has("mkfs.ext4 (e2fsprogs; run scripts/setup)", found)
}

/// What is under ISOLA_ROOT/volumes, staging and trash directories included.
fn volume_dirs(isola: &Isola) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(isola.root().join("volumes")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[test]
fn create_inspect_ls_rm() {
    if !have_mkfs() {
        return;
    }
    let isola = Isola::new();
    assert_eq!(
        isola.ok(["volume", "create", "data", "--size", "64m"]),
        "data\n"
    );

    let info = isola.json(["volume", "inspect", "data"]);
    assert_eq!(info["name"], "data");
    assert_eq!(info["size"], 67108864u64);
    assert_eq!(info["in_use"], false);
    let image = PathBuf::from(info["image"].as_str().unwrap());
    assert_eq!(image, isola.root().join("volumes/data/volume.img"));
    assert_eq!(fs::metadata(&image).unwrap().len(), 64 << 20);
    // Sparse: ext4's metadata only, far below the size.
    let disk = info["disk_bytes"].as_u64().unwrap();
    assert!(
        disk > 0 && disk < 8 << 20,
        "64 MiB volume takes {disk} bytes"
    );
    let created = info["created"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        created <= now && created + 600 > now,
        "created {created}, now {now}"
    );

    isola.ok(["volume", "create", "other"]);
    let listed = isola.json(["volume", "ls", "--json"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["data", "other"]);
    // Without --size: 1 GiB, still sparse.
    assert_eq!(listed[1]["size"], 1u64 << 30);
    assert!(listed[1]["disk_bytes"].as_u64().unwrap() < 16 << 20);

    let table = isola.ok(["volume", "ls"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("SIZE"),
        "{table}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("data ") && row.contains("64.0 MiB"),
        "{table}"
    );
    assert!(lines.next().unwrap().starts_with("other "), "{table}");

    assert_eq!(isola.ok(["volume", "rm", "data", "other"]), "data\nother\n");
    assert!(!image.exists());
    assert_eq!(
        isola.json(["volume", "ls", "--json"]),
        serde_json::json!([])
    );
    assert_eq!(volume_dirs(&isola), Vec::<String>::new());
}

#[test]
fn creating_an_existing_volume_fails() {
    if !have_mkfs() {
        return;
    }
    let isola = Isola::new();
    isola.ok(["volume", "create", "twice", "--size", "8m"]);
    let image = isola.root().join("volumes/twice/volume.img");
    let before = fs::read(&image).unwrap();
    let err = isola.fail(["volume", "create", "twice", "--size", "16m"]);
    assert!(err.contains("volume twice exists"), "{err}");
    // The first one is untouched.
    assert_eq!(fs::read(&image).unwrap(), before);
    assert_eq!(volume_dirs(&isola), ["twice"]);
}

#[test]
fn bad_names_and_sizes_are_refused() {
    if !have_mkfs() {
        return;
    }
    let isola = Isola::new();
    for name in ["bad/name", ".hidden", "..", "a b", &"x".repeat(65)] {
        let err = isola.fail(["volume", "create", name]);
        assert!(
            err.contains(&format!("invalid volume name {name:?}")),
            "{name}: {err}"
        );
    }
    let err = isola.fail(["volume", "create", "sized", "--size", "12x"]);
    assert!(err.contains("invalid size \"12x\""), "{err}");
    let err = isola.fail(["volume", "create", "tiny", "--size", "1m"]);
    assert!(
        err.contains("volume tiny") && err.contains("too small"),
        "{err}"
    );
    let err = isola.fail(["volume", "inspect", "../blobs"]);
    assert!(err.contains("invalid volume name \"../blobs\""), "{err}");
    assert_eq!(volume_dirs(&isola), Vec::<String>::new());
}

#[test]
fn removing_a_missing_volume_fails_and_the_others_go() {
    if !have_mkfs() {
        return;
    }
    let isola = Isola::new();
    let err = isola.fail(["volume", "rm", "nope"]);
    assert!(err.contains("volume nope not found"), "{err}");
    let err = isola.fail(["volume", "inspect", "nope"]);
    assert!(err.contains("volume nope not found"), "{err}");

    isola.ok(["volume", "create", "a", "--size", "8m"]);
    isola.ok(["volume", "create", "b", "--size", "8m"]);
    let out = isola.expect(["volume", "rm", "a", "nope", "b"], false);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("volume nope not found"), "{err}");
    assert_eq!(volume_dirs(&isola), Vec::<String>::new());
}

#[test]
fn a_volume_in_use_is_not_removed() {
    if !have_mkfs() {
        return;
    }
    let isola = Isola::new();
    isola.ok(["volume", "create", "busy", "--size", "8m"]);
    let store = VolumeStore::open(Root::new(isola.root())).unwrap();

    // Held read-write, as by a running sandbox.
    let lease = store.acquire("busy", false).unwrap();
    let err = isola.fail(["volume", "rm", "busy"]);
    assert!(
        err.contains("volume busy is in use read-write by a sandbox"),
        "{err}"
    );
    assert_eq!(isola.json(["volume", "inspect", "busy"])["in_use"], true);
    let table = isola.ok(["volume", "ls"]);
    assert!(table.lines().nth(1).unwrap().contains(" yes "), "{table}");
    // Another sandbox may not have it either way while it is written.
    let err = store.acquire("busy", true).unwrap_err().to_string();
    assert!(err.starts_with("volume busy is in use read-write by another sandbox; "));
    drop(lease);

    // Held read-only: readers share, removal still waits.
    let r1 = store.acquire("busy", true).unwrap();
    let r2 = store.acquire("busy", true).unwrap();
    let err = isola.fail(["volume", "rm", "busy"]);
    assert!(
        err.contains("volume busy is in use read-only by a sandbox"),
        "{err}"
    );
    drop((r1, r2));

    assert_eq!(isola.json(["volume", "inspect", "busy"])["in_use"], false);
    assert_eq!(isola.ok(["volume", "rm", "busy"]), "busy\n");
    assert!(!Path::new(&isola.root().join("volumes/busy")).exists());
}
