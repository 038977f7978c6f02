//! `isola info` reports the host as it is: stable JSON keys, and a KVM
//! flavour that agrees with what /dev/kvm and /sys/module show.

mod common;

use std::path::Path;

#[test]
fn info_json_has_its_keys_and_matches_the_host() {
    let isola = common::Isola::new();
    let info = isola.json(["info", "--json"]);
    for key in ["version", "root", "kernel", "cgroups", "kvm", "kvm_detail"] {
        assert!(info[key].is_string(), "{key} should be a string: {info}");
    }
    for key in ["overlayfs", "vm_linux_guests"] {
        assert!(info[key].is_boolean(), "{key} should be a bool: {info}");
    }
    assert_eq!(info["root"], isola.root().display().to_string());
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));

    let kvm = info["kvm"].as_str().unwrap_or_default();
    assert!(["hardware", "pvm", "none"].contains(&kvm), "kvm = {kvm:?}");
    let dev_kvm_opens = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !dev_kvm_opens {
        assert_eq!(kvm, "none");
    } else if Path::new("/sys/module/kvm_pvm").exists() {
        assert_eq!(kvm, "pvm");
    }
    // Only hardware KVM boots a Linux guest on isola's monitor.
    assert_eq!(info["vm_linux_guests"], kvm == "hardware");
    // info only looks: it makes no store.
    assert!(
        !isola.root().exists(),
        "isola info created {:?}",
        isola.root()
    );
}

#[test]
fn info_for_people_is_key_value_lines() {
    let isola = common::Isola::new();
    let out = isola.ok(["info"]);
    for key in ["version:", "cgroups:", "overlayfs:", "kvm:", "vm backend:"] {
        assert!(
            out.lines().any(|l| l.starts_with(key)),
            "no {key} line in:\n{out}"
        );
    }
}
