//! Stack unpacked layer directories into one plain root filesystem, applying
//! the whiteouts overlayfs would (0/0 character devices delete, the opaque
//! xattr hides what lower layers put in a directory). For the VM backend's
//! root filesystem and for `isola export`.

use std::collections::HashMap;
use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use filetime::FileTime;
use nix::sys::stat::{mknod, Mode, SFlag};

use super::unpack::OPAQUE_XATTR;
use crate::fsutil::remove_any;

/// Apply `layers` (bottom first) onto `dest`, which must exist.
pub fn flatten(layers: &[impl AsRef<Path>], dest: &Path) -> io::Result<()> {
    for layer in layers {
        let layer = layer.as_ref();
        if is_opaque(layer) {
            clear_dir(dest)?;
        }
        // Hard links inside one layer stay hard links: inode → first copy.
        let mut links = HashMap::new();
        apply_dir(layer, dest, &mut links)?;
    }
    Ok(())
}

fn is_opaque(dir: &Path) -> bool {
    matches!(xattr::get(dir, OPAQUE_XATTR), Ok(Some(v)) if v == b"y")
}

fn is_whiteout(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn clear_dir(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        remove_any(&entry?.path())?;
    }
    Ok(())
}

/// Copy the children of `src` into `dst` (an existing real directory). The
/// destination is inspected with lstat at every level and anything of the
/// wrong type is replaced, so no symlink from a lower layer is followed.
fn apply_dir(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&from)?;
        if is_whiteout(&meta) {
            remove_any(&to)?;
            continue;
        }
        let existing = fs::symlink_metadata(&to).ok();
        if meta.is_dir() {
            match existing {
                Some(m) if m.is_dir() => {
                    if is_opaque(&from) {
                        clear_dir(&to)?;
                    }
                }
                Some(_) => {
                    fs::remove_file(&to)?;
                    fs::create_dir(&to)?;
                }
                None => fs::create_dir(&to)?,
            }
            apply_dir(&from, &to, links)?;
            copy_meta(&from, &to, &meta)?;
            continue;
        }
        if existing.is_some() {
            remove_any(&to)?;
        }
        let key = (meta.dev(), meta.ino());
        if meta.nlink() > 1 {
            if let Some(first) = links.get(&key) {
                fs::hard_link(first, &to)?;
                continue;
            }
        }
        let ft = meta.file_type();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
        } else if ft.is_file() {
            fs::copy(&from, &to)?;
        } else {
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_char_device() {
                SFlag::S_IFCHR
            } else if ft.is_block_device() {
                SFlag::S_IFBLK
            } else if ft.is_fifo() {
                SFlag::S_IFIFO
            } else {
                continue; // sockets are not layer content
            };
            mknod(
                &to,
                kind,
                Mode::from_bits_truncate(meta.mode()),
                meta.rdev(),
            )
            .map_err(io::Error::from)?;
        }
        copy_meta(&from, &to, &meta)?;
        if meta.nlink() > 1 {
            links.insert(key, to);
        }
    }
    Ok(())
}

/// Owner, mode, xattrs (not overlay's own) and times, on the node itself.
fn copy_meta(from: &Path, to: &Path, meta: &fs::Metadata) -> io::Result<()> {
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    }
    let is_link = meta.file_type().is_symlink();
    if !is_link {
        fs::set_permissions(to, Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    if let Ok(names) = xattr::list(from) {
        for name in names {
            let n = name.to_string_lossy();
            if n.starts_with("trusted.overlay.") || n.starts_with("user.overlay.") {
                continue;
            }
            if let Ok(Some(v)) = xattr::get(from, &name) {
                let _ = xattr::set(to, &name, &v);
            }
        }
    }
    let mtime = FileTime::from_last_modification_time(meta);
    filetime::set_symlink_file_times(to, mtime, mtime)
}
