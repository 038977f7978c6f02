//! A small pool of pristine sandbox directories for `--rm` sandboxes. On some
//! filesystems every directory made and removed costs a millisecond (freeing
//! its block means a discard); a sandbox that wrote nothing leaves its empty
//! `upper/` and `work/` as they were, so the next one takes them over by
//! rename instead. Anything else is removed as usual.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Root;

/// Enough for the sandboxes one host starts back to back.
const POOL_MAX: usize = 8;

fn pool(root: &Root) -> PathBuf {
    root.dir().join("instances/.pool")
}

/// Move a pooled directory to `dest`; false if the pool is empty (or another
/// process took the last one first).
pub fn claim(root: &Root, dest: &Path) -> bool {
    let Ok(entries) = fs::read_dir(pool(root)) else {
        return false;
    };
    for entry in entries.flatten() {
        if fs::rename(entry.path(), dest).is_ok() {
            return true;
        }
    }
    false
}

/// Return `dir` to the pool if it is pristine and the pool has room.
/// Returns false when the caller must remove it.
pub fn recycle(root: &Root, dir: &Path, id: &str) -> bool {
    let pool = pool(root);
    if !pristine(dir) || fs::read_dir(&pool).map(|d| d.count()).unwrap_or(0) >= POOL_MAX {
        return false;
    }
    let _ = fs::create_dir(&pool);
    fs::rename(dir, pool.join(id)).is_ok()
}

/// Exactly an empty `upper/` (root-owned, 0755, no xattrs but overlay's
/// uuid: the merged root takes its attributes from it) and a `work/` holding at most overlayfs' own
/// empty `work/`.
fn pristine(dir: &Path) -> bool {
    let names: Vec<_> = match fs::read_dir(dir) {
        Ok(d) => d.flatten().map(|e| e.file_name()).collect(),
        Err(_) => return false,
    };
    if names.len() != 2 || !names.iter().all(|n| n == "upper" || n == "work") {
        return false;
    }
    let upper = dir.join("upper");
    let upper_ok = fs::symlink_metadata(&upper).is_ok_and(|m| {
        m.is_dir() && m.uid() == 0 && m.gid() == 0 && m.permissions().mode() & 0o7777 == 0o755
    }) && empty(&upper)
        // Overlayfs marks an upper root with its own uuid: that may stay.
        && xattr::list(&upper).map(|mut l| l.all(|n| n == "trusted.overlay.uuid")).unwrap_or(false);
    let work = dir.join("work");
    let work_ok = match fs::read_dir(&work) {
        Ok(d) => d
            .flatten()
            .all(|e| e.file_name() == "work" && empty(&e.path())),
        Err(_) => false,
    };
    upper_ok && work_ok
}

fn empty(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pristine_dirs_go_back() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        fs::create_dir_all(t.path().join("instances")).unwrap();
        let make = |name: &str| {
            let d = t.path().join("instances").join(name);
            fs::create_dir_all(d.join("upper")).unwrap();
            fs::create_dir_all(d.join("work/work")).unwrap();
            fs::set_permissions(d.join("upper"), fs::Permissions::from_mode(0o755)).unwrap();
            d
        };
        let clean = make("a");
        let wrote = make("b");
        fs::write(wrote.join("upper/file"), "x").unwrap();
        let chmodded = make("c");
        fs::set_permissions(chmodded.join("upper"), fs::Permissions::from_mode(0o700)).unwrap();
        if nix::unistd::geteuid().is_root() {
            assert!(recycle(&root, &clean, "a"));
            assert!(!clean.exists());
        }
        assert!(
            !recycle(&root, &wrote, "b"),
            "a sandbox that wrote is not reused"
        );
        assert!(
            !recycle(&root, &chmodded, "c"),
            "nor one whose root changed mode"
        );
        let dest = t.path().join("instances/new");
        assert_eq!(claim(&root, &dest), nix::unistd::geteuid().is_root());
    }
}
