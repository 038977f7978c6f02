//! isola's monitor process as a user of `isola run --backend vm` meets
//! it: a syscall outside one of its threads' seccomp filters (its test
//! hook, honoured by debug builds only) ends the run at once, before the
//! guest runs its first instruction, with one sentence naming the thread,
//! and leaves no monitor and no jail behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::background::Background;
use common::Isola;

/// The monitor is killed before the guest runs: no boot to wait for.
const BOUND: Duration = Duration::from_secs(120);

fn init() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/x86_64-unknown-linux-gnu/release/isola-init")
}

#[test]
fn a_monitor_killed_by_its_seccomp_filter_is_said_in_one_sentence() {
    if !common::host_has(
        "/dev/kvm (hardware KVM or PVM)",
        Path::new("/dev/kvm").exists(),
    ) || !common::host_has(
        "isola-init built static (make test builds it)",
        init().is_file(),
    ) {
        return;
    }
    let Some(kernel) = common::isola_kernel_for_host() else {
        return;
    };
    let isola = Isola::new();
    isola.ok(["image", "default"]);
    // The device kind has three threads, which trap at once: repeated,
    // since a handler that only the first of them ran once lost the
    // record to the second's trap now and then.
    let device = std::iter::repeat_n(("device", "its device thread"), 8);
    let kinds = [("vcpu", "a vCPU thread"), ("main", "its main thread")];
    for (kind, thread) in device.chain(kinds) {
        let mut c = Command::new(env!("CARGO_BIN_EXE_isola"));
        c.args([
            "run",
            "--rm",
            "--backend",
            "vm",
            "--vmm",
            "isola",
            "--kernel",
        ])
        .arg(&kernel)
        .args(["isola/busybox", "true"])
        .env("ISOLA_ROOT", isola.root())
        .env("ISOLA_INIT", init())
        .env("ISOLA_VMM_TEST_FORBIDDEN", kind)
        .env_remove("ISOLA_LOG")
        .stdin(Stdio::null());
        let out = Background::start(c).collect_within(BOUND, &format!("isola run ({kind})"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{stderr}");
        let sentence = format!(
            "the VM monitor was killed by its seccomp filter: {thread} made syscall {}, outside its allowed set\n",
            libc::SYS_reboot
        );
        assert!(stderr.ends_with(&sentence), "{kind}: {stderr}");
        let instances = isola.root().join("instances");
        let left: Vec<_> = std::fs::read_dir(&instances)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
    let monitors = Command::new("pgrep")
        .args(["-f", "isola-vmm"])
        .output()
        .unwrap();
    let root = isola.root();
    let ours = String::from_utf8_lossy(&monitors.stdout)
        .lines()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/cmdline")).ok())
        .any(|cmdline| cmdline.contains(&*root.to_string_lossy()));
    assert!(!ours, "a monitor of this test's root is still running");
}
