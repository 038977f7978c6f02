//! The cgroups the peers make under a parent we name (podman's
//! `--cgroup-parent`, ctr's `--cgroup`): removed at the end, in every
//! hierarchy, since neither runtime removes the parent itself.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// `name` (a top-level cgroup) and everything below it, removed in each
/// hierarchy where it is: empty cgroups only, as rmdir removes nothing
/// else. A cgroup whose last process has only just exited may be busy for
/// a moment, so each is tried a few times.
pub fn remove(name: &str) {
    remove_in(Path::new(CGROUP_ROOT), name);
}

fn remove_in(root: &Path, name: &str) {
    if name.is_empty() || name.contains('/') {
        return;
    }
    let mut tops = vec![root.join(name)];
    if let Ok(dir) = fs::read_dir(root) {
        tops.extend(dir.flatten().map(|e| e.path().join(name)));
    }
    for top in tops.into_iter().filter(|t| t.is_dir()) {
        let mut dirs = Vec::new();
        below(&top, &mut dirs);
        dirs.push(top);
        for d in dirs {
            for attempt in 0..10 {
                if fs::remove_dir(&d).is_ok() || !d.exists() {
                    break;
                }
                if attempt < 9 {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

/// Every directory below `dir`, deepest first.
fn below(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            below(&e.path(), out);
            out.push(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_tree_goes_from_every_hierarchy_and_nothing_else() {
        // Directories standing in for cgroupfs (where rmdir of a cgroup
        // with only its control files works; here they hold none).
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in ["memory/x/a/b", "pids/x/c", "memory/y", "x/d"] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        remove_in(r, "x");
        assert!(!r.join("memory/x").exists());
        assert!(!r.join("pids/x").exists());
        assert!(!r.join("x").exists());
        assert!(r.join("memory/y").exists());
        remove_in(r, "../memory");
        assert!(r.join("memory").exists());
    }
}
