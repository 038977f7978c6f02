//! What the isola-runtime tests share: the test process as a subreaper
//! (as containerd's shim is), reaping an init, a busybox bundle from
//! `isola-runtime spec`, and whether a microVM can boot here.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use serde_json::{json, Value};

pub const RUNTIME: &str = env!("CARGO_BIN_EXE_isola-runtime");

/// Each container's init becomes this process's child once `create`
/// exits, as it becomes the shim's: the tests reap it and read its status.
pub fn become_subreaper() {
    static SUBREAPER: Once = Once::new();
    SUBREAPER.call_once(|| {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    });
}

/// The init's exit status, reaped as the shim reaps it (128+N for signal N).
pub fn reap(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: waitpid on a child of ours (we are its subreaper).
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "the init became our child");
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// A bundle in `dir`: busybox and `applets` in its rootfs, config.json
/// from `isola-runtime spec` running `args` with no terminal on a
/// writable root, then `edit`ed.
pub fn busybox_bundle(
    dir: &Path,
    applets: &[&str],
    args: &[&str],
    edit: impl FnOnce(&mut Value),
) -> PathBuf {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in applets {
        symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let out = Command::new(RUNTIME)
        .args(["spec", "--bundle"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut config: Value =
        serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(args);
    config["root"]["readonly"] = json!(false);
    edit(&mut config);
    fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir.to_path_buf()
}

/// isola-init as `make test` builds it (static), for the guest.
pub fn guest_init() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/x86_64-unknown-linux-gnu/release/isola-init")
}

/// Whether a microVM can boot here under QEMU (skip, or fail under CI).
pub fn vm_host() -> bool {
    let kernel = fs::read_dir("/boot").is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
    });
    super::tool("qemu-system-x86_64")
        && super::host_has(
            "a guest kernel in /boot (scripts/setup installs linux-image-cloud-amd64)",
            kernel,
        )
        && super::host_has(
            "isola-init built static (make test builds it)",
            guest_init().is_file(),
        )
}
