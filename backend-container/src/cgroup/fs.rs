//! Small reads and writes of cgroupfs files, shared by the v1 and v2 managers.
//! Every failure names the file and says what to do.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::CgroupError;

pub(super) const PROCS: &str = "cgroup.procs";

/// Writes `value` to an existing cgroup file. Never creates the file: a missing
/// file means a missing controller, which callers must see as such.
pub(super) fn write(path: &Path, value: impl ToString) -> Result<(), CgroupError> {
    let value = value.to_string();
    // O_TRUNC is harmless on cgroupfs and keeps the temp-dir test doubles
    // honest when a shorter value replaces a longer one.
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| CgroupError::Write {
            path: path.to_path_buf(),
            hint: hint(&source),
            value,
            source,
        })
}

/// What to do about a failed cgroupfs operation, by cause.
pub(super) fn hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
            "run isola as root, or from a cgroup delegated to this user"
        }
        Some(libc::ENOENT) => {
            "no such cgroup file or directory; is the controller mounted and enabled?"
        }
        Some(libc::EINVAL) => "the kernel refused the value; check the limit given",
        Some(libc::EBUSY) => {
            "cgroup v2 delegates controllers only from cgroups without processes of their own; \
             run isola from a cgroup whose children may use the controller"
        }
        Some(libc::ESRCH) => "no such process; it may have exited already",
        Some(libc::EEXIST) => "another sandbox is using this cgroup name",
        _ => "check that the cgroup filesystem is mounted read-write",
    }
}

/// A whole kernel-made file (cgroupfs, procfs). They report size 0, so
/// std's read_to_string asks for the size, then grows its buffer read by
/// read (32, 64, 128... bytes); one large read takes most in a single call.
pub(crate) fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub(super) fn read(path: &Path) -> Result<String, CgroupError> {
    read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A file holding one number, or `None` when it is absent or unreadable
/// (statistics are best effort: a missing controller file is not an error).
pub(super) fn read_u64(path: &Path) -> Option<u64> {
    read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in a flat keyed file ("key value" lines), such as
/// memory.events, memory.oom_control or cpu.stat.
pub(super) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some(k), Some(v)) if k == key => v.parse().ok(),
            _ => None,
        }
    })
}

/// The pids listed in a cgroup.procs file; none when the cgroup is gone.
pub(super) fn procs(dir: &Path) -> Vec<i32> {
    read_to_string(dir.join(PROCS))
        .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// `dir` and every cgroup below it, deepest first, so removing them in order
/// never meets a non-empty parent. Nothing when `dir` is gone.
pub(super) fn tree_deepest_first(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        // On cgroupfs every directory is a child cgroup.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&entry.path(), out);
        }
    }
    out.push(dir.to_path_buf());
}

/// `mkdir` that accepts an existing directory (another sandbox may create the
/// shared parent at the same moment).
pub(super) fn mkdir_all(path: &Path) -> Result<(), CgroupError> {
    fs::create_dir_all(path).map_err(|source| CgroupError::Create {
        path: path.to_path_buf(),
        hint: hint(&source),
        source,
    })
}

/// `mkdir` of the sandbox's own directory: it must not exist yet.
pub(super) fn mkdir(path: &Path) -> Result<(), CgroupError> {
    fs::create_dir(path).map_err(|source| CgroupError::Create {
        path: path.to_path_buf(),
        hint: hint(&source),
        source,
    })
}

/// A temp dir standing in for one controller's cgroup directory.
#[cfg(test)]
pub(super) fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for (name, content) in files {
        fs::write(tmp.path().join(name), content).unwrap();
    }
    tmp
}

#[cfg(test)]
pub(super) fn read_file(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_finds_the_exact_key() {
        let text = "nr_periods 12\nnr_throttled 3\nthrottled_time 4500\n";
        assert_eq!(keyed(text, "nr_throttled"), Some(3));
        assert_eq!(keyed(text, "throttled_time"), Some(4500));
        assert_eq!(keyed(text, "throttled"), None);
        assert_eq!(keyed("", "x"), None);
    }

    #[test]
    fn write_replaces_a_longer_value_and_never_creates() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("pids.max");
        fs::write(&file, "max").unwrap();
        write(&file, 7).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "7");

        let missing = tmp.path().join("memory.max");
        let err = write(&missing, 1).unwrap_err();
        assert!(!missing.exists());
        let msg = err.to_string();
        assert!(msg.contains("memory.max"), "{msg}");
        assert!(msg.contains("mounted and enabled"), "{msg}");
    }

    #[test]
    fn procs_of_a_missing_cgroup_is_empty() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(procs(&tmp.path().join("gone")).is_empty());
        fs::write(tmp.path().join(PROCS), "12\n34\n").unwrap();
        assert_eq!(procs(tmp.path()), vec![12, 34]);
    }

    #[test]
    fn tree_lists_children_before_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("top");
        fs::create_dir_all(top.join("a/b")).unwrap();
        fs::write(top.join(PROCS), "").unwrap();
        let tree = tree_deepest_first(&top);
        assert_eq!(tree, vec![top.join("a/b"), top.join("a"), top.clone()]);
        assert!(tree_deepest_first(&tmp.path().join("gone")).is_empty());
    }
}
