//! `isola kernel ls|add|default` through the real binary: kernels are copied
//! into the store, the first becomes the default, a file that is not a
//! kernel is refused with nothing stored, and /boot's kernel is listed last.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::Isola;
use serde_json::Value;

/// A file that passes the format check: the ELF magic, then padding.
fn fake_elf(dir: &Path, file: &str, fill: u8) -> PathBuf {
    let mut bytes = b"\x7fELF".to_vec();
    bytes.resize(8192, fill);
    let p = dir.join(file);
    fs::write(&p, bytes).unwrap();
    p
}

/// Stored kernels only (ls also lists /boot's, where the host has one).
fn stored(listed: &Value) -> Vec<(String, u64, bool)> {
    listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["source"] == "store")
        .map(|k| {
            (
                k["name"].as_str().unwrap().to_string(),
                k["size"].as_u64().unwrap(),
                k["default"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn add_list_and_choose_the_default() {
    let isola = Isola::new();
    let dir = isola.scratch("kernels");
    let first = fake_elf(&dir, "vmlinuz-6.1.0-test", 0);
    assert_eq!(
        isola.ok([Path::new("kernel"), Path::new("add"), &first]),
        "vmlinuz-6.1.0-test\n"
    );
    let second = fake_elf(&dir, "other", 1);
    assert_eq!(
        isola.ok([
            Path::new("kernel"),
            Path::new("add"),
            &second,
            Path::new("--name"),
            Path::new("custom")
        ]),
        "custom\n"
    );
    let stored_path = isola.root().join("kernels/custom");
    assert_eq!(fs::read(&stored_path).unwrap(), fs::read(&second).unwrap());

    // The first kernel added is the default until another is chosen.
    let listed = isola.json(["kernel", "ls", "--json"]);
    assert_eq!(
        stored(&listed),
        [
            ("custom".to_string(), 8192, false),
            ("vmlinuz-6.1.0-test".to_string(), 8192, true)
        ]
    );
    assert_eq!(listed[0]["path"], stored_path.to_str().unwrap());
    isola.ok(["kernel", "default", "custom"]);
    let listed = isola.json(["kernel", "ls", "--json"]);
    assert_eq!(
        stored(&listed),
        [
            ("custom".to_string(), 8192, true),
            ("vmlinuz-6.1.0-test".to_string(), 8192, false)
        ]
    );

    let table = isola.ok(["kernel", "ls"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE", "DEFAULT", "SOURCE", "NOTE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row, ["custom", "8.0", "KiB", "yes", "store"]);

    // The same bytes again are fine; other bytes under a taken name are not.
    isola.ok([Path::new("kernel"), Path::new("add"), &first]);
    let changed = fake_elf(&dir, "vmlinuz-6.1.0-test", 2);
    let err = isola.fail([Path::new("kernel"), Path::new("add"), &changed]);
    assert!(err.contains("kernel vmlinuz-6.1.0-test exists"), "{err}");
    let err = isola.fail(["kernel", "default", "missing"]);
    assert!(err.contains("kernel missing not found"), "{err}");
    for bad in [".hidden", "default", "a/b"] {
        let err = isola.fail([
            Path::new("kernel"),
            Path::new("add"),
            &first,
            Path::new("--name"),
            Path::new(bad),
        ]);
        assert!(err.contains("invalid kernel name"), "{bad}: {err}");
    }
    assert_eq!(stored(&isola.json(["kernel", "ls", "--json"])).len(), 2);
}

#[test]
fn a_file_that_is_not_a_kernel_changes_nothing() {
    let isola = Isola::new();
    let dir = isola.scratch("files");
    let script = dir.join("vmlinuz-fake");
    fs::write(&script, "#!/bin/sh\necho not a kernel\n").unwrap();

    // Into an empty root, and into a store that has a kernel.
    for _ in 0..2 {
        let before = isola.snapshot();
        let err = isola.fail([Path::new("kernel"), Path::new("add"), &script]);
        assert!(
            err.contains(&format!(
                "{} is not a kernel isola can boot",
                script.display()
            )),
            "{err}"
        );
        assert_eq!(before, isola.snapshot());
        isola.ok([
            Path::new("kernel"),
            Path::new("add"),
            &fake_elf(&dir, "k", 0),
        ]);
    }
    let err = isola.fail(["kernel", "add", "/nonexistent/vmlinuz"]);
    assert!(err.contains("/nonexistent/vmlinuz"), "{err}");
}

#[test]
fn the_kernel_in_boot_is_listed_after_the_store() {
    let Some(boot) = isola_vm::kernel::in_boot() else {
        common::host_has(
            "a guest kernel in /boot (scripts/setup installs linux-image-cloud-amd64)",
            false,
        );
        return;
    };
    let isola = Isola::new();
    let is_boot = |k: &Value| k["source"] == "/boot";

    // With an empty store, /boot's kernel is what --backend vm boots.
    let listed = isola.json(["kernel", "ls", "--json"]);
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{listed}");
    assert!(is_boot(&rows[0]), "{listed}");
    assert_eq!(rows[0]["path"], boot.to_str().unwrap());
    assert_eq!(rows[0]["default"], true);
    assert_eq!(rows[0]["size"], fs::metadata(&boot).unwrap().len());

    isola.ok([
        Path::new("kernel"),
        Path::new("add"),
        &fake_elf(&isola.scratch("k"), "mine", 0),
    ]);
    let listed = isola.json(["kernel", "ls", "--json"]);
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(is_boot(&rows[1]), "{listed}");
    assert_eq!(rows[1]["default"], false);
    let table = isola.ok(["kernel", "ls"]);
    let last = table.lines().last().unwrap();
    let name = boot.file_name().unwrap().to_str().unwrap();
    assert!(last.starts_with(name) && last.ends_with("/boot"), "{table}");
}
