//! isola-probe for real: the same static binary on the host and in a
//! container of the default image, and what differs between the two.

mod common;

use std::path::Path;

use common::Isola;
use serde_json::Value;

const PROBE: &str = "target/x86_64-unknown-linux-gnu/release/isola-probe";

fn probe_on_host(probe: &Path) -> Value {
    let out = std::process::Command::new(probe).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_probe_sees_a_container_apart_from_its_host() {
    if !common::root_user() {
        return;
    }
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join(PROBE);
    if !common::host_has(
        "isola-probe built static (make test builds it)",
        probe.is_file(),
    ) {
        return;
    }
    let host = probe_on_host(&probe);
    let isola = Isola::new();
    isola.ok(["image", "default"]);
    let bind = format!("{}:/probe:ro", probe.display());
    let out = isola.cmd(["run", "--rm", "-v", &bind, "isola/busybox", "/probe"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inside: Value = serde_json::from_slice(&out.stdout).unwrap();

    // The same kernel: a container is not a VM.
    assert_eq!(inside["schema"], 1);
    assert_eq!(inside["boot_id"], host["boot_id"]);
    assert_eq!(inside["kernel_release"], host["kernel_release"]);
    // Its own process tree, hostname, network and mounts.
    assert_eq!(inside["pid"], 1);
    assert_eq!(inside["pid1"], "probe");
    assert_eq!(inside["processes_visible"], 1);
    assert_ne!(inside["hostname"], host["hostname"]);
    assert_eq!(inside["net_interfaces"], serde_json::json!(["lo"]));
    // Docker's default capabilities, seccomp and no_new_privs.
    assert_eq!(inside["cap_eff_count"], 14);
    assert_eq!(inside["seccomp"], 2);
    assert_eq!(inside["no_new_privs"], true);
    // Only harmless devices; the host's kernel knobs out of reach.
    assert_eq!(
        inside["devices"],
        serde_json::json!(["full", "null", "random", "tty", "urandom", "zero"])
    );
    assert_eq!(inside["dev_kvm"], "absent");
    assert_ne!(inside["proc_kcore"], "readable");
    assert_eq!(inside["kernel_log"], "denied");
}

#[test]
fn bad_arguments_get_the_usage_and_exit_2() {
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join(PROBE);
    if !common::host_has(
        "isola-probe built static (make test builds it)",
        probe.is_file(),
    ) {
        return;
    }
    let out = std::process::Command::new(&probe)
        .arg("nonsense")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: isola-probe"));
}
