//! Finding the guest kernel: `--kernel`, then `ISOLA_KERNEL`, then the
//! kernel store's default, then the running kernel's
//! `/boot/vmlinuz-$(uname -r)`, then the newest `/boot/vmlinuz-*`.

use std::path::{Path, PathBuf};

pub mod elf_notes;
pub mod features;
pub mod format;
pub mod store;
pub mod vmlinux;

use self::store::{self as kernel_store, KernelStoreError};

/// Why no kernel was found; each says how to give one.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("the kernel given by {from} ({}) is not a file", path.display())]
    NotAFile { from: &'static str, path: PathBuf },
    /// A broken default is an error, not a reason to boot another kernel.
    #[error(transparent)]
    Store(#[from] KernelStoreError),
    #[error(
        "no guest kernel: give one with --kernel PATH or ISOLA_KERNEL, add one with \
         `isola kernel add PATH`, or install one in /boot \
         (on Debian: apt-get install linux-image-cloud-amd64)"
    )]
    NoKernel,
}

/// The kernel to boot, or why there is none. `state_dir` is isola's state
/// directory, which holds the kernel store.
pub fn find(state_dir: &Path, flag: Option<&Path>) -> Result<PathBuf, FindError> {
    let env = std::env::var_os("ISOLA_KERNEL").filter(|k| !k.is_empty());
    find_from(
        flag,
        env.as_deref().map(Path::new),
        state_dir,
        Path::new("/boot"),
        &running_release(),
    )
}

/// The kernel found in /boot, the last resort of [`find`] (`isola kernel ls`
/// shows it so users see what an empty store falls back to).
pub fn in_boot() -> Option<PathBuf> {
    find_in(Path::new("/boot"), &running_release())
}

/// [`find`] with its sources given, so the order can be tested.
fn find_from(
    flag: Option<&Path>,
    env: Option<&Path>,
    state_dir: &Path,
    boot: &Path,
    release: &str,
) -> Result<PathBuf, FindError> {
    if let Some(k) = flag {
        return existing(k, "--kernel");
    }
    if let Some(k) = env {
        return existing(k, "ISOLA_KERNEL");
    }
    if let Some(k) = kernel_store::default_path(state_dir)? {
        return Ok(k);
    }
    find_in(boot, release).ok_or(FindError::NoKernel)
}

fn existing(path: &Path, from: &'static str) -> Result<PathBuf, FindError> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(FindError::NotAFile {
            from,
            path: path.to_path_buf(),
        })
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
        let e = find(
            Path::new("/nonexistent"),
            Some(Path::new("/nonexistent/vmlinuz")),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--kernel"), "{e}");
    }

    #[test]
    fn the_flag_then_the_environment_then_the_store_then_boot() {
        let t = tempfile::tempdir().unwrap();
        let (state, boot) = (t.path().join("state"), t.path().join("boot"));
        std::fs::create_dir(&boot).unwrap();
        let find = |flag: Option<&Path>, env: Option<&Path>| {
            find_from(flag, env, &state, &boot, "6.1").map_err(|e| e.to_string())
        };
        let e = find(None, None).unwrap_err();
        assert!(e.contains("isola kernel add"), "{e}");

        let from_boot = boot.join("vmlinuz-6.1");
        std::fs::write(&from_boot, b"\x7fELF").unwrap();
        assert_eq!(find(None, None), Ok(from_boot.clone()));

        let stored = t.path().join("vmlinux");
        std::fs::write(&stored, b"\x7fELF stored").unwrap();
        kernel_store::add(&state, &stored, None).unwrap();
        let in_store = state.join("kernels/vmlinux");
        assert_eq!(find(None, None), Ok(in_store));

        let other = t.path().join("other");
        std::fs::write(&other, b"k").unwrap();
        assert_eq!(find(None, Some(&other)), Ok(other.clone()));
        assert_eq!(find(Some(&from_boot), Some(&other)), Ok(from_boot.clone()));
        let e = find(None, Some(&t.path().join("missing"))).unwrap_err();
        assert!(e.contains("ISOLA_KERNEL"), "{e}");
    }
}
