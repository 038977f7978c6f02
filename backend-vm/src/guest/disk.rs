//! The image as a read-only erofs disk, for kernels with virtio-blk: the
//! merged layers staged as hard links to the store's files (no data copied)
//! and packed by mkfs.erofs, once per image digest under `vm/rootfs/`.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use super::archive_error::ArchiveError;
use super::cache::{digest_hex, GuestError};
use super::initramfs::{add_mount_points, MOUNT_POINTS};
use super::merge::{self, Node, Origin};

/// Bumped when the disk's content rules change, so older disks are rebuilt.
const LAYOUT: &str = "1";

/// The tool that writes erofs images (Debian's erofs-utils).
pub const MKFS_EROFS: &str = "mkfs.erofs";

/// The disk of the image `image_digest` whose unpacked layers are `layers`
/// (bottom first), under the state directory `root_dir`: built on first use,
/// then reused by every VM of that image (the host's page cache serves them
/// all).
pub fn root_disk(
    root_dir: &Path,
    image_digest: &str,
    layers: &[PathBuf],
) -> Result<PathBuf, GuestError> {
    let hex = digest_hex(image_digest)?;
    let dir = root_dir.join("vm").join("rootfs");
    let path = dir.join(format!("{hex}-disk{LAYOUT}.erofs"));
    if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        return Ok(path);
    }
    let store = |source| GuestError::Store {
        path: dir.clone(),
        source,
    };
    let build = |source| GuestError::Build {
        image: image_digest.to_string(),
        source,
    };
    fs::create_dir_all(&dir).map_err(store)?;
    let mut tree = merge::merge(layers).map_err(build)?;
    add_mount_points(&mut tree, &MOUNT_POINTS);
    // Beside the final name: the staged links need the store's filesystem,
    // and a crashed build's leftovers match `.building-*`, which prune
    // collects.
    let staging = tempfile::Builder::new()
        .prefix(".building-")
        .tempdir_in(&dir)
        .map_err(store)?;
    let top = staging.path().join("root");
    Stager { layers }
        .node(&tree, &top, &mut PathBuf::new())
        .map_err(build)?;
    let tmp = tempfile::Builder::new()
        .prefix(".building-")
        .suffix(".erofs")
        .tempfile_in(&dir)
        .map_err(store)?;
    mkfs(tmp.path(), &top)?;
    drop(staging);
    tmp.as_file().sync_data().map_err(store)?;
    tmp.persist(&path).map_err(|e| store(e.error))?;
    Ok(path)
}

fn mkfs(image: &Path, dir: &Path) -> Result<(), GuestError> {
    let out = Command::new(MKFS_EROFS)
        .arg(image)
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| GuestError::Tool {
            tool: MKFS_EROFS,
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let last: Vec<&str> = said.lines().rev().take(5).collect();
    Err(GuestError::ToolFailed {
        tool: MKFS_EROFS,
        status: out.status.to_string(),
        said: last.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

struct Stager<'a> {
    layers: &'a [PathBuf],
}

impl Stager<'_> {
    /// Make `node` at `at` (`rel` is its path in the image), its children
    /// first for a directory, whose times are set last.
    fn node(&self, node: &Node, at: &Path, rel: &mut PathBuf) -> Result<(), ArchiveError> {
        let s = node.stat;
        let kind = SFlag::from_bits_truncate(s.kind());
        let shown = self.source(node, rel).unwrap_or_else(|| at.to_path_buf());
        let fail = |source: io::Error| ArchiveError::Copy {
            path: shown.clone(),
            source,
        };
        let errno = |e: nix::errno::Errno| fail(io::Error::from(e));
        match kind {
            SFlag::S_IFDIR => {
                fs::create_dir(at).map_err(fail)?;
                for (name, child) in &node.children {
                    rel.push(name);
                    let r = self.node(child, &at.join(name), rel);
                    rel.pop();
                    r?;
                }
            }
            SFlag::S_IFREG => {
                let Some(src) = self.source(node, rel) else {
                    return Err(ArchiveError::Unsupported {
                        path: show(rel),
                        why: "a file isola made has no content to stage".into(),
                    });
                };
                // The stored inode itself: owner, mode, times and xattrs
                // (file capabilities) are already right.
                match fs::hard_link(&src, at) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                        fs::copy(&src, at).map_err(fail)?;
                    }
                    Err(e) => return Err(fail(e)),
                }
            }
            SFlag::S_IFLNK => {
                let src = self
                    .source(node, rel)
                    .ok_or_else(|| ArchiveError::Unsupported {
                        path: show(rel),
                        why: "a link isola made has no target".into(),
                    })?;
                let target = fs::read_link(&src).map_err(fail)?;
                std::os::unix::fs::symlink(target, at).map_err(fail)?;
            }
            SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO | SFlag::S_IFSOCK => {
                nix::sys::stat::mknod(at, kind, Mode::from_bits_truncate(s.mode), s.rdev)
                    .map_err(errno)?;
            }
            _ => {
                return Err(ArchiveError::Unsupported {
                    path: show(rel),
                    why: format!("unknown file type {:o}", s.kind()),
                })
            }
        }
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            at,
            Some(Uid::from_raw(s.uid)),
            Some(Gid::from_raw(s.gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(errno)?;
        if kind != SFlag::S_IFLNK {
            // After chown, which clears set-id bits.
            fs::set_permissions(at, fs::Permissions::from_mode(s.mode & 0o7777)).map_err(fail)?;
        }
        let t = TimeSpec::new(s.mtime, 0);
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            at,
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(errno)?;
        Ok(())
    }

    fn source(&self, node: &Node, rel: &Path) -> Option<PathBuf> {
        match node.origin {
            Origin::Layer(i) => self.layers.get(i).map(|l| l.join(rel)),
            Origin::Init | Origin::Made => None,
        }
    }
}

fn show(rel: &Path) -> String {
    format!("/{}", String::from_utf8_lossy(rel.as_os_str().as_bytes()))
}
