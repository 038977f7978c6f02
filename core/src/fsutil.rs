//! Small filesystem helpers every store writer needs: atomic replace, advisory
//! locks, and measuring how much disk a tree really uses.

use nix::fcntl::{Flock, FlockArg};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

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
