//! Finding the guest kernel: `--kernel`, then `ISOLA_KERNEL`, then the
//! running kernel's `/boot/vmlinuz-$(uname -r)`, then the newest
//! `/boot/vmlinuz-*`.

use std::path::{Path, PathBuf};

/// The kernel to boot, or a sentence saying how to give one.
pub fn find(flag: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(k) = flag {
        return existing(k, "--kernel");
    }
    if let Some(k) = std::env::var_os("ISOLA_KERNEL").filter(|k| !k.is_empty()) {
        return existing(Path::new(&k), "ISOLA_KERNEL");
    }
    find_in(Path::new("/boot"), &running_release()).ok_or_else(|| {
        "no guest kernel: give one with --kernel PATH or ISOLA_KERNEL, or install one in /boot \
         (on Debian: apt-get install linux-image-cloud-amd64)"
            .to_string()
    })
}

fn existing(path: &Path, from: &str) -> Result<PathBuf, String> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(format!(
            "the kernel given by {from} ({}) is not a file",
            path.display()
        ))
    }
}

fn running_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `boot/vmlinuz-<release>` if present, else the newest `vmlinuz-*` there
/// (by modification time, then name).
fn find_in(boot: &Path, release: &str) -> Option<PathBuf> {
    let own = boot.join(format!("vmlinuz-{release}"));
    if !release.is_empty() && own.is_file() {
        return Some(own);
    }
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(boot)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        .filter_map(|e| {
            let md = e.metadata().ok().filter(|m| m.is_file())?;
            Some((md.modified().ok()?, e.path()))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_the_running_release_then_the_newest() {
        let t = tempfile::tempdir().unwrap();
        let boot = t.path();
        assert_eq!(find_in(boot, "6.1"), None);
        std::fs::write(boot.join("vmlinuz-5.10"), b"k").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(boot.join("vmlinuz-6.1"), b"k").unwrap();
        std::fs::write(boot.join("config-9.9"), b"not a kernel").unwrap();
        assert_eq!(find_in(boot, "9.9"), Some(boot.join("vmlinuz-6.1")));
        assert_eq!(find_in(boot, "5.10"), Some(boot.join("vmlinuz-5.10")));
    }

    #[test]
    fn a_flag_naming_nothing_is_an_error() {
        let e = find(Some(Path::new("/nonexistent/vmlinuz"))).unwrap_err();
        assert!(e.contains("--kernel"), "{e}");
    }
}
