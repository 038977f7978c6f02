//! What the tests of every crate share: the rule for a test that needs
//! something of the host, and the checks built on it; and the registries
//! the pull and push tests run.

pub mod registry;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// True when the test can run. Without what it needs it fails under CI
/// (CI=true), whose host scripts/setup prepares, and elsewhere skips,
/// saying why: a developer's machine may lack it, CI's must not.
pub fn host_has(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("this test needs {what}, which this CI host lacks; scripts/setup should provide it");
    }
    eprintln!("SKIPPED: this test needs {what}");
    false
}

/// Running as root, which real namespaces, mounts and cgroups need.
pub fn root_user() -> bool {
    host_has("root (uid 0)", nix::unistd::geteuid().is_root())
}

/// `name` is a program on PATH.
pub fn tool(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    host_has(&format!("`{name}` on PATH (run scripts/setup)"), found)
}

/// isola's guest kernel for this host as `make test` builds it
/// (scripts/build-kernel --for-host): the PVM test kernel on a PVM host.
pub fn isola_kernel_for_host() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-kernel");
    let out = Command::new(script)
        .args(["--for-host", "--cached"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("running scripts/build-kernel");
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    host_has(
        "isola's guest kernel for this host (make test runs scripts/build-kernel --for-host)",
        out.status.success() && path.is_file(),
    )
    .then_some(path)
}

/// A writer that keeps what it is given, readable while a clone writes
/// (a guest's UART, a child's output).
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut kept) = self.0.lock() {
            kept.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|kept| String::from_utf8_lossy(&kept).into_owned())
            .unwrap_or_default()
    }
}
