//! The cgroups the peers make under a parent we name (podman's
//! `--cgroup-parent`, ctr's `--cgroup`, containerd's namespace): removed
//! at the end, in every hierarchy, since no runtime removes the parent
//! itself; and, as a last resort, the processes a failed run left in them
//! killed.

use std::fs;
use std::io::Write;
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

/// Every process in `name`'s tree, in any hierarchy, sent SIGKILL; a
/// frozen cgroup is thawed first (v1's freezer.state, v2's
/// cgroup.freeze), as a frozen process would not die of it until thawed.
pub fn kill(name: &str) {
    kill_in(Path::new(CGROUP_ROOT), name);
}

fn kill_in(root: &Path, name: &str) {
    for d in tree(root, name) {
        // Opened without O_CREAT: a file only a controller's cgroups have.
        for (file, thawed) in [("freezer.state", "THAWED"), ("cgroup.freeze", "0")] {
            if let Ok(mut f) = fs::OpenOptions::new().write(true).open(d.join(file)) {
                let _ = f.write_all(thawed.as_bytes());
            }
        }
        let procs = fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
        for pid in procs
            .lines()
            .filter_map(|l| l.trim().parse::<libc::pid_t>().ok())
        {
            // SAFETY: kill only sends a signal, to a process in our cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn remove_in(root: &Path, name: &str) {
    for d in tree(root, name) {
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

/// The directories of `name`'s tree in every hierarchy under `root`
/// (and in `root` itself, v2's), deepest first. None for a name that is
/// not one top-level cgroup.
fn tree(root: &Path, name: &str) -> Vec<PathBuf> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Vec::new();
    }
    let mut tops = vec![root.join(name)];
    if let Ok(dir) = fs::read_dir(root) {
        tops.extend(dir.flatten().map(|e| e.path().join(name)));
    }
    let mut dirs = Vec::new();
    for top in tops.into_iter().filter(|t| t.is_dir()) {
        below(&top, &mut dirs);
        dirs.push(top);
    }
    dirs
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
    use std::os::unix::process::ExitStatusExt;

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

    #[test]
    fn the_processes_in_the_named_tree_are_thawed_and_killed() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let mut sleeper = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        // A cgroup's files stand in for cgroupfs's: the freezer's state,
        // and the process listed in a child cgroup.
        fs::create_dir_all(r.join("freezer/x/a")).unwrap();
        fs::write(r.join("freezer/x/freezer.state"), "FROZEN").unwrap();
        fs::write(
            r.join("freezer/x/a/cgroup.procs"),
            format!("{}\n", sleeper.id()),
        )
        .unwrap();
        kill_in(r, "x");
        let status = sleeper.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_eq!(
            fs::read_to_string(r.join("freezer/x/freezer.state")).unwrap(),
            "THAWED"
        );
        assert!(
            !r.join("freezer/x/a/cgroup.freeze").exists(),
            "no file is made"
        );
    }
}
