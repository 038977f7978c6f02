//! isola-probe for real: the same static binary on the host and in a
//! container of the default image, and what differs between the two.

mod common;

use std::path::{Path, PathBuf};

use common::Isola;
use serde_json::Value;

const PROBE: &str = "target/x86_64-unknown-linux-gnu/release/isola-probe";

/// A successful run's stdout as JSON, else its stderr in the failure.
fn json_of(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn probe_on_host(probe: &Path, args: &[&str]) -> Value {
    let out = std::process::Command::new(probe)
        .args(args)
        .output()
        .unwrap();
    json_of(&out)
}

#[test]
fn the_probe_sees_a_container_apart_from_its_host() {
    let Some(probe) = probe_for_containers() else {
        return;
    };
    let host = probe_on_host(&probe, &[]);
    let isola = Isola::new();
    isola.ok(["image", "default"]);
    let inside = probe_in_container(&isola, &probe, &[], &[]);

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

/// The static probe, when this host can run it in a container: root, and
/// the probe built.
fn probe_for_containers() -> Option<PathBuf> {
    if !common::root_user() {
        return None;
    }
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join(PROBE);
    common::host_has(
        "isola-probe built static (make test builds it)",
        probe.is_file(),
    )
    .then_some(probe)
}

/// `isola run <run_opts> isola/busybox /probe <args>`: its JSON.
fn probe_in_container(isola: &Isola, probe: &Path, run_opts: &[&str], args: &[&str]) -> Value {
    let bind = format!("{}:/probe:ro", probe.display());
    let mut cmd = vec!["run", "--rm"];
    cmd.extend(run_opts);
    cmd.extend(["-v", &bind, "isola/busybox", "/probe"]);
    cmd.extend(args);
    let out = isola.cmd(&cmd);
    json_of(&out)
}

#[test]
fn the_container_filter_blocks_system_calls_the_host_lets_through() {
    let Some(probe) = probe_for_containers() else {
        return;
    };
    let host = probe_on_host(&probe, &["facts"]);
    let isola = Isola::new();
    isola.ok(["image", "default"]);
    let inside = probe_in_container(&isola, &probe, &[], &["facts"]);

    let (h, i) = (&host["syscalls"], &inside["syscalls"]);
    assert!(h.is_object(), "host: {}", host["syscalls_error"]);
    assert!(i.is_object(), "container: {}", inside["syscalls_error"]);
    assert_eq!(h["tested"], i["tested"]);
    if host["seccomp"] == 0 {
        assert_eq!(h["blocked"], 0, "{h}");
    }
    assert!(
        i["reached"].as_u64().unwrap() < h["reached"].as_u64().unwrap(),
        "{i} vs {h}"
    );
    assert!(i["blocked"].as_u64().unwrap() > 0, "{i}");
    // keyctl: Docker's profile refuses it, the kernel keyring being global.
    let keyctl = serde_json::json!(250);
    assert!(
        i["blocked_nrs"].as_array().unwrap().contains(&keyctl),
        "{i}"
    );
}

#[test]
fn memory_and_pids_limits_are_observed_in_a_container() {
    let Some(probe) = probe_for_containers() else {
        return;
    };
    let args = ["limits", "--memory-mib", "96", "--pids", "64"];
    let host = probe_on_host(&probe, &args);
    assert_eq!(host["memory"]["touched_mib"], 96, "{host}");
    assert_eq!(host["memory"]["killed_by"], Value::Null, "{host}");
    assert_eq!(host["pids"]["started"], 64, "{host}");

    let isola = Isola::new();
    isola.ok(["image", "default"]);
    let limits = ["--memory", "48m", "--pids-limit", "16"];
    let inside = probe_in_container(&isola, &probe, &limits, &args);
    // The OOM killer ends the child before it holds the whole limit.
    let memory = &inside["memory"];
    assert_eq!(memory["killed_by"], 9, "SIGKILL: {inside}");
    assert!(memory["touched_mib"].as_u64().unwrap() < 48, "{inside}");
    // The probe itself is one of the 16.
    let pids = &inside["pids"];
    assert!(pids["started"].as_u64().unwrap() < 16, "{inside}");
    assert_eq!(pids["error"], "EAGAIN", "{inside}");
}
