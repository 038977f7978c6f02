//! Safe, single-pass extraction of one layer tar into a directory of its own.
//! Nothing may be created or written outside that directory, whatever the tar
//! holds; OCI whiteouts become the form overlayfs reads (0/0 character devices
//! and the `trusted.overlay.opaque` xattr), so the directory can be an overlay
//! lower as it is.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use filetime::FileTime;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use tar::EntryType;

/// The overlayfs xattr marking a directory whose lower contents are hidden.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("entry {path:?} escapes the layer: {why}")]
    Escape { path: String, why: &'static str },
    #[error("entry {path:?} would be written through the symbolic link {link:?}")]
    ThroughSymlink { path: String, link: String },
    #[error("entry {path:?} is a hard link to {target:?}, which is not a file inside the layer")]
    BadHardlink { path: String, target: String },
    #[error("entry {path:?}: {op} failed")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the layer data is corrupt or truncated")]
    Read(#[source] io::Error),
}

/// What one unpack produced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    /// Sum of the sizes of the regular files written.
    pub content_bytes: u64,
}

/// Extract the tar stream `reader` into `dest`, an existing empty directory.
/// On error, `dest` holds a partial layer that the caller throws away.
pub fn unpack<R: Read>(reader: R, dest: &Path) -> Result<UnpackStats, UnpackError> {
    let mut archive = tar::Archive::new(reader);
    let mut unpacker = Unpacker::new(dest);
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        unpacker.entry(&mut entry)?;
    }
    unpacker.finish()?;
    Ok(unpacker.stats)
}

/// Extract a tar archive that ADD names into `dest`, an existing directory
/// that may already hold files (an entry replaces what is at its path, a
/// directory merges): the same refusals as for a layer, but `.wh.` names are
/// ordinary files, as docker's ADD keeps them, and `owner`, when given
/// (`--chown`), replaces the owners the archive records.
pub fn unpack_archive<R: Read>(
    reader: R,
    dest: &Path,
    owner: Option<(u32, u32)>,
) -> Result<UnpackStats, UnpackError> {
    let mut archive = tar::Archive::new(reader);
    let mut unpacker = Unpacker::new(dest);
    unpacker.whiteouts = false;
    unpacker.owner = owner;
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        unpacker.entry(&mut entry)?;
    }
    unpacker.finish()?;
    Ok(unpacker.stats)
}

/// Turn an entry's path into a path relative to the layer root, refusing
/// anything that could name a place outside it. `None` is the root itself.
pub fn clean_path(raw: &[u8]) -> Result<Option<PathBuf>, &'static str> {
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err("it contains a '..' component"),
            Component::RootDir | Component::Prefix(_) => return Err("it is an absolute path"),
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

struct DirMeta {
    rel: PathBuf,
    mode: u32,
    mtime: FileTime,
}

struct Unpacker<'a> {
    root: &'a Path,
    /// Directories (relative) verified to be real directories, not symlinks,
    /// since the last time anything was removed.
    known_dirs: HashSet<PathBuf>,
    /// Directory modes and mtimes are applied last: a read-only directory
    /// must still take its children, and each child changes the mtime.
    dirs: Vec<DirMeta>,
    buf: Vec<u8>,
    is_root: bool,
    umask: u32,
    stats: UnpackStats,
    /// Layers turn `.wh.` entries into whiteouts; ADD archives do not.
    whiteouts: bool,
    /// Owner forced on every entry instead of the recorded one.
    owner: Option<(u32, u32)>,
}

fn show(rel: &Path) -> String {
    rel.to_string_lossy().into_owned()
}

fn io_err<'a>(rel: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> UnpackError + 'a {
    move |source| UnpackError::Io {
        path: show(rel),
        op,
        source,
    }
}

impl<'a> Unpacker<'a> {
    fn new(root: &'a Path) -> Self {
        // umask is process-wide; read it once by setting and restoring it.
        let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
        nix::sys::stat::umask(old);
        Unpacker {
            root,
            known_dirs: HashSet::new(),
            dirs: Vec::new(),
            buf: vec![0; 256 * 1024],
            is_root: nix::unistd::geteuid().is_root(),
            umask: old.bits() as u32,
            stats: UnpackStats::default(),
            whiteouts: true,
            owner: None,
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let rel = match clean_path(&raw) {
            Ok(Some(rel)) => rel,
            Ok(None) => return Ok(()), // "./": the layer root keeps its own metadata
            Err(why) => {
                return Err(UnpackError::Escape {
                    path: String::from_utf8_lossy(&raw).into_owned(),
                    why,
                })
            }
        };
        self.stats.entries += 1;
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        self.ensure_dir_chain(&parent, &rel)?;

        let name = rel.file_name().map(|n| n.as_bytes()).unwrap_or_default();
        if self.whiteouts && name.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(&rel, &parent, name);
        }

        let xattrs = read_xattrs(entry)?;
        let header = entry.header();
        let mode = header.mode().map_err(UnpackError::Read)? & 0o7777;
        let (uid, gid) = match self.owner {
            Some(owner) => owner,
            None => (
                header.uid().map_err(UnpackError::Read)? as u32,
                header.gid().map_err(UnpackError::Read)? as u32,
            ),
        };
        let mtime = FileTime::from_unix_time(header.mtime().unwrap_or(0) as i64, 0);

        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(entry, &rel, mode, uid, gid, mtime, &xattrs)
            }
            EntryType::Directory => self.dir(&rel, mode, uid, gid, mtime, &xattrs),
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                let path = self.root.join(&rel);
                self.create(&rel, || {
                    std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                })?;
                self.finish_node(&rel, uid, gid, mtime, &xattrs)
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.hardlink(&rel, &target)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (sflag, dev) = match kind {
                    EntryType::Char => (SFlag::S_IFCHR, device(header)?),
                    EntryType::Block => (SFlag::S_IFBLK, device(header)?),
                    _ => (SFlag::S_IFIFO, 0),
                };
                let path = self.root.join(&rel);
                self.create(&rel, || {
                    mknod(&path, sflag, Mode::from_bits_truncate(mode), dev)
                        .map_err(io::Error::from)
                })?;
                self.finish_node(&rel, uid, gid, mtime, &xattrs)?;
                if uid != 0 || gid != 0 || mode & self.umask != 0 {
                    // chown dropped any set-id bits and umask trimmed the mode.
                    fs::set_permissions(self.root.join(&rel), Permissions::from_mode(mode))
                        .map_err(io_err(&rel, "chmod"))?;
                }
                Ok(())
            }
            other => {
                tracing::warn!(entry = %show(&rel), kind = ?other, "skipping tar entry of unsupported type");
                Ok(())
            }
        }
    }

    /// Make sure every component of `dir` is a real directory inside the
    /// layer, creating missing ones; a symlink on the way is refused.
    fn ensure_dir_chain(&mut self, dir: &Path, entry: &Path) -> Result<(), UnpackError> {
        if dir.as_os_str().is_empty() || self.known_dirs.contains(dir) {
            return Ok(());
        }
        let mut prefix = PathBuf::new();
        for c in dir.components() {
            prefix.push(c);
            if self.known_dirs.contains(&prefix) {
                continue;
            }
            let path = self.root.join(&prefix);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(UnpackError::ThroughSymlink {
                        path: show(entry),
                        link: show(&prefix),
                    })
                }
                Ok(_) => {
                    return Err(UnpackError::Io {
                        path: show(entry),
                        op: "creating parent directory",
                        source: io::Error::from_raw_os_error(nix::libc::ENOTDIR),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&path).map_err(io_err(entry, "creating parent directory"))?;
                }
                Err(e) => return Err(io_err(entry, "inspecting parent directory")(e)),
            }
            self.known_dirs.insert(prefix.clone());
        }
        Ok(())
    }

    /// Run `make`; if something is already there, remove it (a later entry
    /// replaces an earlier one, as with `tar -x`) and run it again. The old
    /// entry is removed, never followed.
    fn create<T>(
        &mut self,
        rel: &Path,
        mut make: impl FnMut() -> io::Result<T>,
    ) -> Result<T, UnpackError> {
        match make() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.remove(rel)?;
                make().map_err(io_err(rel, "create"))
            }
            r => r.map_err(io_err(rel, "create")),
        }
    }

    fn remove(&mut self, rel: &Path) -> Result<(), UnpackError> {
        let path = self.root.join(rel);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(rel, "replace")(e)),
        };
        if meta.is_dir() {
            fs::remove_dir_all(&path).map_err(io_err(rel, "replace"))?;
            self.known_dirs.clear();
        } else {
            fs::remove_file(&path).map_err(io_err(rel, "replace"))?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        rel: &Path,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: FileTime,
        xattrs: &[(String, Vec<u8>)],
    ) -> Result<(), UnpackError> {
        let path = self.root.join(rel);
        let mut file = self.create(rel, || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&path)
        })?;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(UnpackError::Read(e)),
            };
            file.write_all(&self.buf[..n])
                .map_err(io_err(rel, "write"))?;
            self.stats.content_bytes += n as u64;
        }
        let chowned = self.is_root && (uid != 0 || gid != 0);
        if chowned {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(io_err(rel, "chown"))?;
        }
        if chowned || mode & self.umask != 0 {
            file.set_permissions(Permissions::from_mode(mode))
                .map_err(io_err(rel, "chmod"))?;
        }
        for (name, value) in xattrs {
            set_xattr(rel, name, value, |n, v| {
                xattr::FileExt::set_xattr(&file, n, v)
            })?;
        }
        filetime::set_file_handle_times(&file, Some(mtime), Some(mtime))
            .map_err(io_err(rel, "set times"))
    }

    fn dir(
        &mut self,
        rel: &Path,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: FileTime,
        xattrs: &[(String, Vec<u8>)],
    ) -> Result<(), UnpackError> {
        let path = self.root.join(rel);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                self.remove(rel)?;
                fs::create_dir(&path).map_err(io_err(rel, "mkdir"))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&path).map_err(io_err(rel, "mkdir"))?;
            }
            Err(e) => return Err(io_err(rel, "mkdir")(e)),
        }
        self.known_dirs.insert(rel.to_path_buf());
        if self.is_root && (uid != 0 || gid != 0) {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(io_err(rel, "chown"))?;
        }
        for (name, value) in xattrs {
            set_xattr(rel, name, value, |n, v| xattr::set(&path, n, v))?;
        }
        self.dirs.push(DirMeta {
            rel: rel.to_path_buf(),
            mode,
            mtime,
        });
        Ok(())
    }

    /// Ownership, xattrs and times of a node that is not opened (symlink,
    /// device, fifo); every call acts on the node itself, never a link target.
    fn finish_node(
        &mut self,
        rel: &Path,
        uid: u32,
        gid: u32,
        mtime: FileTime,
        xattrs: &[(String, Vec<u8>)],
    ) -> Result<(), UnpackError> {
        let path = self.root.join(rel);
        if self.is_root && (uid != 0 || gid != 0) {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(io_err(rel, "chown"))?;
        }
        for (name, value) in xattrs {
            set_xattr(rel, name, value, |n, v| xattr::set(&path, n, v))?;
        }
        filetime::set_symlink_file_times(&path, mtime, mtime).map_err(io_err(rel, "set times"))
    }

    fn hardlink(&mut self, rel: &Path, raw_target: &[u8]) -> Result<(), UnpackError> {
        let bad = || UnpackError::BadHardlink {
            path: show(rel),
            target: String::from_utf8_lossy(raw_target).into_owned(),
        };
        let target = clean_path(raw_target).map_err(|_| bad())?.ok_or_else(bad)?;
        // Every directory on the way must be a real one inside the layer,
        // and the target must already exist and not be a directory.
        if let Some(parent) = target.parent() {
            let mut prefix = PathBuf::new();
            for c in parent.components() {
                prefix.push(c);
                match fs::symlink_metadata(self.root.join(&prefix)) {
                    Ok(m) if m.is_dir() => {}
                    _ => return Err(bad()),
                }
            }
        }
        match fs::symlink_metadata(self.root.join(&target)) {
            Ok(m) if !m.is_dir() => {}
            _ => return Err(bad()),
        }
        if target == rel {
            return Ok(());
        }
        let (from, to) = (self.root.join(&target), self.root.join(rel));
        // linkat without AT_SYMLINK_FOLLOW links a symlink itself, not its target.
        self.create(rel, || fs::hard_link(&from, &to))
    }

    fn whiteout(&mut self, rel: &Path, parent: &Path, name: &[u8]) -> Result<(), UnpackError> {
        if name == OPAQUE_MARKER.as_bytes() {
            let dir = self.root.join(parent);
            return xattr::set(&dir, OPAQUE_XATTR, b"y")
                .map_err(io_err(rel, "marking directory opaque"));
        }
        let hidden = &name[WHITEOUT_PREFIX.len()..];
        if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return Ok(()); // other .wh..wh. names are reserved metadata, not whiteouts
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(UnpackError::Escape {
                path: show(rel),
                why: "it is a whiteout of no valid name",
            });
        }
        let target = parent.join(OsStr::from_bytes(hidden));
        let path = self.root.join(&target);
        self.create(&target, || {
            mknod(&path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(io::Error::from)
        })
        .map_err(|e| match e {
            UnpackError::Io { source, .. } if source.raw_os_error() == Some(nix::libc::EPERM) => {
                UnpackError::Io {
                    path: show(rel),
                    op: "creating a whiteout (a 0/0 character device, which needs root)",
                    source,
                }
            }
            e => e,
        })
    }

    /// Apply directory modes and times, deepest last-seen first. A directory
    /// that a later entry replaced is skipped: its path may now cross a symlink.
    fn finish(&mut self) -> Result<(), UnpackError> {
        for d in self.dirs.iter().rev() {
            if !real_dir_chain(self.root, &d.rel) {
                continue;
            }
            let dir = OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
                .open(self.root.join(&d.rel))
                .map_err(io_err(&d.rel, "open directory"))?;
            dir.set_permissions(Permissions::from_mode(d.mode))
                .map_err(io_err(&d.rel, "chmod"))?;
            filetime::set_file_handle_times(&dir, Some(d.mtime), Some(d.mtime))
                .map_err(io_err(&d.rel, "set times"))?;
        }
        Ok(())
    }
}

fn real_dir_chain(root: &Path, rel: &Path) -> bool {
    let mut path = root.to_path_buf();
    rel.components().all(|c| {
        path.push(c);
        fs::symlink_metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false)
    })
}

fn device(header: &tar::Header) -> Result<u64, UnpackError> {
    let major = header
        .device_major()
        .map_err(UnpackError::Read)?
        .unwrap_or(0);
    let minor = header
        .device_minor()
        .map_err(UnpackError::Read)?
        .unwrap_or(0);
    Ok(makedev(major as u64, minor as u64))
}

/// The entry's `SCHILY.xattr.*` records, minus overlayfs' own attributes: a
/// layer must not be able to forge overlay metadata (redirects, origins).
fn read_xattrs<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> Result<Vec<(String, Vec<u8>)>, UnpackError> {
    let mut out = Vec::new();
    let Some(exts) = entry.pax_extensions().map_err(UnpackError::Read)? else {
        return Ok(out);
    };
    for ext in exts {
        let ext = ext.map_err(UnpackError::Read)?;
        let Ok(key) = ext.key() else { continue };
        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
            if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
                continue;
            }
            out.push((name.to_string(), ext.value_bytes().to_vec()));
        }
    }
    Ok(out)
}

/// Set one xattr; a filesystem or an unprivileged caller that cannot hold it
/// costs the attribute, not the import (as with containerd).
fn set_xattr(
    rel: &Path,
    name: &str,
    value: &[u8],
    set: impl FnOnce(&str, &[u8]) -> io::Result<()>,
) -> Result<(), UnpackError> {
    match set(name, value) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(nix::libc::ENOTSUP) | Some(nix::libc::EPERM)
            ) =>
        {
            tracing::warn!(entry = %show(rel), xattr = name, error = %e, "extended attribute not kept");
            Ok(())
        }
        Err(e) => Err(io_err(rel, "set extended attribute")(e)),
    }
}
