//! Tearing a sandbox's cgroup down: kill whatever still runs in it, then
//! remove its directories, child cgroups first.

use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{fs, CgroupError};

/// Long enough for SIGKILLed processes to exit, short enough not to hang the
/// caller on one stuck in uninterruptible sleep.
pub(super) const TIMEOUT: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(5);

/// Kills every process in `dirs` (and in cgroups below them), then removes
/// them all. Directories already gone are fine, so this is idempotent.
pub(super) fn destroy(dirs: &[PathBuf], timeout: Duration) -> Result<(), CgroupError> {
    // The usual case, the workload gone and no child cgroups: rmdir alone
    // (the kernel refuses it while anything is left, so this is safe).
    if dirs.iter().all(|d| match std::fs::remove_dir(d) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }) {
        return Ok(());
    }
    let deadline = Instant::now() + timeout;
    let me = std::process::id() as i32;
    loop {
        let tree: Vec<PathBuf> = dirs
            .iter()
            .flat_map(|d| fs::tree_deepest_first(d))
            .collect();
        if tree.is_empty() {
            return Ok(());
        }
        let pids: Vec<(i32, &Path)> = tree
            .iter()
            .flat_map(|dir| {
                fs::procs(dir)
                    .into_iter()
                    .map(move |pid| (pid, dir.as_path()))
            })
            .collect();
        if let Some((_, dir)) = pids.iter().find(|(pid, _)| *pid == me) {
            return Err(CgroupError::SelfInside {
                pid: me,
                path: dir.to_path_buf(),
            });
        }
        let busy = if pids.is_empty() {
            match remove_all(&tree)? {
                None => return Ok(()),
                busy => busy,
            }
        } else {
            kill_all(dirs, &pids);
            None
        };
        if Instant::now() >= deadline {
            return Err(match busy {
                // Empty, yet the kernel still counts a process in it.
                Some((path, source)) => CgroupError::Remove { path, source },
                None => CgroupError::Busy {
                    path: pids[0].1.to_path_buf(),
                    pids: pids.iter().map(|(pid, _)| *pid).collect(),
                    waited: timeout,
                },
            });
        }
        thread::sleep(POLL);
    }
}

/// cgroup.kill (v2, Linux 5.14) kills the whole subtree at once, with no
/// window for a pid to be reused between reading and killing it; elsewhere
/// each listed process gets SIGKILL, repeated by the caller until none is left
/// (a process may fork while we read).
fn kill_all(dirs: &[PathBuf], pids: &[(i32, &Path)]) {
    let mut killed_by_file = false;
    for dir in dirs {
        let file = dir.join("cgroup.kill");
        if file.exists() {
            match fs::write(&file, 1) {
                Ok(()) => killed_by_file = true,
                Err(err) => tracing::debug!("{err}"),
            }
        }
    }
    if killed_by_file {
        return;
    }
    for &(pid, _) in pids {
        match kill(Pid::from_raw(pid), Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => tracing::debug!("SIGKILL to {pid}: {err}"),
        }
    }
}

/// Removes the cgroups, deepest first. Returns the first one still busy (its
/// last processes are still exiting), if any; an error for anything else.
fn remove_all(tree: &[PathBuf]) -> Result<Option<(PathBuf, io::Error)>, CgroupError> {
    for dir in tree {
        match std::fs::remove_dir(dir) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) => {
                return Ok(Some((dir.clone(), err)))
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.clone(),
                    source,
                })
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destroying_what_is_gone_succeeds() {
        let tmp = tempfile::tempdir().unwrap();
        destroy(&[tmp.path().join("a"), tmp.path().join("b")], TIMEOUT).unwrap();
    }

    #[test]
    fn empty_cgroups_are_removed_children_first() {
        // Plain directories stand in for cgroups without processes.
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        std::fs::create_dir_all(a.join("child/grandchild")).unwrap();
        let b = tmp.path().join("b");
        std::fs::create_dir(&b).unwrap();
        destroy(&[a.clone(), b.clone()], TIMEOUT).unwrap();
        assert!(!a.exists() && !b.exists());
    }

    #[test]
    fn refuses_to_kill_its_own_process() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join(fs::PROCS),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        let err = destroy(&[tmp.path().to_path_buf()], TIMEOUT).unwrap_err();
        assert!(matches!(err, CgroupError::SelfInside { .. }), "{err}");
        assert!(tmp.path().exists());
    }
}
