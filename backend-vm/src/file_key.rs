//! Naming a file's current version without reading it, for caches of what
//! is derived from big files (a kernel's vmlinux, isola-init's hash): where
//! the file is and which inode, size and times it has. Any rewrite changes
//! the ctime, which no one can set back.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// 24 hex digits naming `path`'s current version; None if it cannot be read.
pub fn key(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let m = std::fs::metadata(&path).ok()?;
    let mut h = Sha256::new();
    h.update(path.as_os_str().as_encoded_bytes());
    for n in [
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime() as u64,
        m.mtime_nsec() as u64,
        m.ctime() as u64,
        m.ctime_nsec() as u64,
    ] {
        h.update(n.to_le_bytes());
    }
    Some(hex::encode(&h.finalize()[..12]))
}

/// Keeps the `keep` newest files of the cache directory `dir`.
pub fn trim(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort();
    let excess = files.len().saturating_sub(keep);
    for (_, path) in files.into_iter().take(excess) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_changes_the_key_and_trim_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"one").unwrap();
        let first = key(&f).unwrap();
        assert_eq!(key(&f).unwrap(), first);
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&f, b"two").unwrap();
        assert_ne!(key(&f).unwrap(), first);
        assert_eq!(key(&dir.path().join("missing")), None);

        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        for i in 0..5 {
            std::fs::write(cache.join(format!("{i}")), b"x").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        trim(&cache, 2);
        let mut left: Vec<String> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["3", "4"]);
    }
}
