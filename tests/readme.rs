//! The README's tour runs as written: every `$ ` line of its sh blocks, in
//! order, against a fresh ISOLA_ROOT, with /tmp/ moved to a test directory.

mod common;

use std::process::Command;

#[test]
fn the_readme_tour_runs() {
    if !(common::root_user()
        && common::tool("umoci")
        && common::tool("skopeo")
        && common::tool("jq")
        && common::tool("docker-registry")
        && common::tool("curl")
        && common::tool("qemu-system-x86_64")
        && common::tool("nft"))
    {
        return;
    }
    let readme = include_str!("../README.md");
    let tour = readme
        .split("## Tour")
        .nth(1)
        .expect("README has a Tour section");
    let tour = tour.split("\n## ").next().unwrap();
    let isola = common::Isola::new();
    let scratch = isola.scratch("tour-tmp");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_isola"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/x86_64-unknown-linux-gnu/release");
    // The tour starts a registry and stops it in a later line; if a line
    // fails first, it must not outlive the test.
    let _registry = KillOnDrop(scratch.join("registry.pid"));
    let mut ran = 0;
    for line in tour.lines().filter_map(|l| l.strip_prefix("$ ")) {
        let line = line.replace("/tmp/", &format!("{}/", scratch.display()));
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &line])
            .env("PATH", &path)
            .env("ISOLA_ROOT", isola.root())
            // `isola bench` puts the static probe in its image.
            .env("ISOLA_PROBE", built.join("isola-probe"))
            // The VM run of the built image boots isola-init as built.
            .env("ISOLA_INIT", built.join("isola-init"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "README line failed: {line}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if line.contains("cat ") && line.contains("hello.txt") {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello");
        }
        if line.starts_with("isola run --rm") && line.ends_with(" hello") {
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(
                said.starts_with("hello, tour: uid 1000 on kernel "),
                "{said}"
            );
        }
        if line.starts_with("isola-runtime ") && line.contains(" run ") {
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(said.starts_with("hello from "), "{said}");
        }
        if line.contains("wget -qO- http://tourweb/") {
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(said.starts_with("hello from "), "{said}");
        }
        if line.contains("cat /data/f") {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "kept");
        }
        ran += 1;
    }
    assert!(ran >= 10, "the tour should have its commands ({ran} found)");
}

/// Kills the process whose pid the file holds, if it still runs.
struct KillOnDrop(std::path::PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let Ok(pid) = std::fs::read_to_string(&self.0) else {
            return;
        };
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let pid = nix::unistd::Pid::from_raw(pid);
            if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_ok() {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
        }
    }
}
