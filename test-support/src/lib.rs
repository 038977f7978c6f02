//! What the tests of every crate share: the rule for a test that needs
//! something of the host, and the checks built on it; and the registries
//! the pull and push tests run.

pub mod registry;

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
