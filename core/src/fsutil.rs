//! Small filesystem helpers every store writer needs: atomic replace, advisory
//! locks, measuring how much disk a tree really uses, and resolving a path
//! inside an image's root filesystem without leaving it.

use nix::fcntl::{Flock, FlockArg};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Replace `path` with `data` so readers see either the old or the new file,
/// never a torn one: write a temporary sibling, fsync it, rename it over.
pub fn atomic_write(path: &Path, data: &[u8]) -> io::Result<()> {
    replace(path, data, true)
}

/// [`atomic_write`] without the fsync, for state that is only advisory after
/// a crash (a sandbox's state.json): never torn, but not forced to disk on
/// the start-up path.
pub fn atomic_write_nosync(path: &Path, data: &[u8]) -> io::Result<()> {
    replace(path, data, false)
}

fn replace(path: &Path, data: &[u8], sync: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(data)?;
    if sync {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A held advisory lock; released when dropped.
pub struct Lock {
    _flock: Flock<File>,
}

impl Lock {
    pub fn shared(path: &Path) -> io::Result<Lock> {
        Self::take(path, FlockArg::LockShared)
    }

    pub fn exclusive(path: &Path) -> io::Result<Lock> {
        Self::take(path, FlockArg::LockExclusive)
    }

    /// The lock if nobody holds it; `None` if somebody does.
    pub fn try_exclusive(path: &Path) -> io::Result<Option<Lock>> {
        match Self::take(path, FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn take(path: &Path, how: FlockArg) -> io::Result<Lock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)?;
        let flock = Flock::lock(file, how).map_err(|(_, e)| io::Error::from(e))?;
        Ok(Lock { _flock: flock })
    }
}

/// Disk bytes used by the files under `dir` (like `du -s`): allocated blocks,
/// each inode counted once however many hard links it has.
pub fn disk_usage(dir: &Path) -> io::Result<u64> {
    let mut seen = HashSet::new();
    disk_usage_into(dir, &mut seen)
}

/// Like [`disk_usage`], sharing `seen` across calls so that inodes already
/// counted elsewhere are not counted again.
pub fn disk_usage_into(path: &Path, seen: &mut HashSet<(u64, u64)>) -> io::Result<u64> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0;
    if seen.insert((meta.dev(), meta.ino())) {
        total += meta.blocks() * 512;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            total += disk_usage_into(&entry?.path(), seen)?;
        }
    }
    Ok(total)
}

/// Remove a file or a whole tree; absent is fine.
pub fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Resolve `path` inside `root` as a process chrooted there would see it:
/// symlinks are followed but can never lead out of `root` (an absolute link
/// restarts at `root`, `..` stops at it), like runc's securejoin. A path
/// needing more than 40 links is refused (ELOOP): joined unresolved, the
/// rest could still cross a link when the result is used.
pub fn try_secure_join(root: &Path, path: &str) -> io::Result<PathBuf> {
    match join_resolving(root, path) {
        (joined, false) => Ok(joined),
        (_, true) => Err(io::Error::from_raw_os_error(nix::libc::ELOOP)),
    }
}

const MAX_LINK_HOPS: u32 = 40;

/// The joined path, and whether the link limit cut the resolution short.
fn join_resolving(root: &Path, path: &str) -> (PathBuf, bool) {
    let mut parts: Vec<PathBuf> = vec![PathBuf::from(path)];
    let mut out = PathBuf::new();
    let mut hops = 0;
    let mut cut_short = false;
    while let Some(p) = parts.pop() {
        let mut comps = p.components();
        while let Some(c) = comps.next() {
            match c {
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(n) => {
                    let candidate = out.join(n);
                    match fs::read_link(root.join(&candidate)) {
                        Ok(_) if hops >= MAX_LINK_HOPS => {
                            cut_short = true;
                            out = candidate;
                        }
                        Ok(target) => {
                            hops += 1;
                            let rest: PathBuf = comps.collect();
                            if target.is_absolute() {
                                out = PathBuf::new();
                            }
                            if !rest.as_os_str().is_empty() {
                                parts.push(rest);
                            }
                            parts.push(target);
                            break;
                        }
                        Err(_) => out = candidate,
                    }
                }
            }
        }
    }
    (root.join(out), cut_short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn try_secure_join_stays_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("real/dir")).unwrap();
        symlink("/real", root.join("abs")).unwrap();
        symlink("../../../../etc", root.join("up")).unwrap();
        symlink("dir", root.join("real/rel")).unwrap();
        assert_eq!(
            try_secure_join(root, "/abs/dir").unwrap(),
            root.join("real/dir")
        );
        assert_eq!(
            try_secure_join(root, "/up/passwd").unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            try_secure_join(root, "/real/rel/x").unwrap(),
            root.join("real/dir/x")
        );
        assert_eq!(try_secure_join(root, "/../../x").unwrap(), root.join("x"));
        assert_eq!(
            try_secure_join(root, "plain/new").unwrap(),
            root.join("plain/new")
        );
    }

    #[test]
    fn try_secure_join_refuses_a_chain_too_long_to_resolve() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        for i in 0..45 {
            symlink(format!("l{}", i + 1), root.join(format!("l{i}"))).unwrap();
        }
        symlink("/", root.join("l45")).unwrap();
        let err = try_secure_join(root, "/l0/etc/passwd").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::ELOOP));
        assert_eq!(
            try_secure_join(root, "/l44/etc/passwd").unwrap(),
            root.join("etc/passwd")
        );
    }
}
