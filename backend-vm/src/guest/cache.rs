//! The root filesystem archives under `<root>/vm/rootfs/`, one per image and
//! isola-init build: written beside the final name and renamed into place,
//! so a crash never leaves half an archive where a later run would boot it.

use std::fs;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::archive_error::ArchiveError;
use super::initramfs;

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("{0:?} is not an image digest of the form sha256:<64 hex digits>")]
    BadDigest(String),
    /// isola-init is missing or unreadable.
    #[error(transparent)]
    Init(ArchiveError),
    #[error("building the guest root filesystem of image {image}")]
    Build {
        image: String,
        #[source]
        source: ArchiveError,
    },
    #[error("{tool} is needed to make the image's disk for the guest (Debian's erofs-utils; scripts/setup installs it)")]
    Tool {
        tool: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{tool} could not make the image's disk ({status}): {said}")]
    ToolFailed {
        tool: &'static str,
        status: String,
        said: String,
    },
    #[error("cannot store the guest root filesystem in {}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The root filesystem archive of the image `image_digest` ("sha256:<hex>")
/// whose unpacked layers are `layers` (bottom first), with `init` as /.isola/init,
/// under the state directory `root_dir`: built on first use, then reused.
pub fn rootfs(
    root_dir: &Path,
    image_digest: &str,
    layers: &[PathBuf],
    init: &Path,
) -> Result<PathBuf, GuestError> {
    let hex = digest_hex(image_digest)?;
    let dir = root_dir.join("vm").join("rootfs");
    let name = format!("{hex}-{}.cpio", remembered_init_id(root_dir, init)?);
    archive_once(&dir, &name, image_digest, |out| {
        initramfs::write_rootfs(layers, init, out).map(drop)
    })
}

/// The initramfs of a guest whose root is the image's disk: isola-init and
/// the directories it mounts on, nothing of any image. One per isola-init.
pub fn init_only(root_dir: &Path, init: &Path) -> Result<PathBuf, GuestError> {
    let dir = root_dir.join("vm").join("init");
    let name = format!("{}.cpio", remembered_init_id(root_dir, init)?);
    let path = archive_once(&dir, &name, "(none)", |out| {
        initramfs::write_rootfs(&[], init, out).map(drop)
    })?;
    crate::file_key::trim(&dir, INIT_IDS_KEPT);
    Ok(path)
}

/// `dir/name`, written by `write` unless it is there: beside the final
/// name and renamed into place.
fn archive_once(
    dir: &Path,
    name: &str,
    image: &str,
    write: impl FnOnce(BufWriter<&fs::File>) -> Result<(), ArchiveError>,
) -> Result<PathBuf, GuestError> {
    let path = dir.join(name);
    if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        return Ok(path);
    }
    let store = |source| GuestError::Store {
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(store)?;
    // Concurrent builders each write their own temporary file; the last
    // rename wins, with the same bytes. A failed build's file is removed on drop.
    let tmp = tempfile::Builder::new()
        .prefix(".building-")
        .suffix(".cpio")
        .tempfile_in(dir)
        .map_err(store)?;
    let out = BufWriter::with_capacity(256 * 1024, tmp.as_file());
    write(out).map_err(|source| GuestError::Build {
        image: image.to_string(),
        source,
    })?;
    // On disk before the rename: after a power cut the final name holds the
    // whole archive or nothing, never a hole a later boot would trip on.
    tmp.as_file().sync_data().map_err(store)?;
    tmp.persist(&path).map_err(|e| store(e.error))?;
    Ok(path)
}

pub(crate) fn digest_hex(image_digest: &str) -> Result<&str, GuestError> {
    // The hex becomes a file name: nothing but 64 lowercase hex digits.
    match image_digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(hex)
        }
        _ => Err(GuestError::BadDigest(image_digest.to_string())),
    }
}

/// Bumped when the archive's layout changes (where isola-init goes, which
/// nodes are added), so archives cached by an older isola are not booted.
const LAYOUT: &[u8] = b"isola-initramfs-layout-2";

/// Hashes of isola-init kept, one per version of the file seen.
const INIT_IDS_KEPT: usize = 8;

/// [`init_id`], remembered under `vm/init-ids/` per version of the file
/// (see `file_key`): hashing the 3 MB binary took ~40 ms of every VM run.
fn remembered_init_id(root_dir: &Path, init: &Path) -> Result<String, GuestError> {
    let Some(key) = crate::file_key::key(init) else {
        return init_id(init);
    };
    let dir = root_dir.join("vm").join("init-ids");
    let memo = dir.join(&key);
    if let Ok(id) = fs::read_to_string(&memo) {
        if id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(id);
        }
    }
    let id = init_id(init)?;
    // Best effort: without the memo the next run hashes again.
    let remembered = fs::create_dir_all(&dir)
        .and_then(|()| tempfile::NamedTempFile::new_in(&dir))
        .and_then(|tmp| {
            fs::write(tmp.path(), &id)?;
            tmp.persist(&memo).map_err(|e| e.error)?;
            Ok(())
        });
    if remembered.is_ok() {
        crate::file_key::trim(&dir, INIT_IDS_KEPT);
    }
    Ok(id)
}

/// The first 16 hex digits of the SHA-256 of the layout and the isola-init
/// binary: a new init or layout gives a new archive, and stale ones are
/// never booted with it.
fn init_id(init: &Path) -> Result<String, GuestError> {
    let mut file = initramfs::open_init(init).map_err(GuestError::Init)?;
    let mut hasher = Sha256::new();
    hasher.update(LAYOUT);
    io::copy(&mut file, &mut hasher).map_err(|source| {
        GuestError::Init(ArchiveError::Read {
            path: init.to_path_buf(),
            source,
        })
    })?;
    let mut id = hex::encode(hasher.finalize());
    id.truncate(16);
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_digests_name_a_file() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(digest_hex(&good).unwrap(), "ab".repeat(32));
        for bad in [
            "ab".repeat(32),
            format!("sha512:{}", "ab".repeat(32)),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha256:{}", "ab".repeat(31)),
            format!("sha256:../../{}", "a".repeat(58)),
        ] {
            let err = digest_hex(&bad).unwrap_err();
            assert!(matches!(err, GuestError::BadDigest(_)), "{bad}");
        }
    }

    #[test]
    fn a_missing_init_says_how_to_build_it() {
        let tmp = tempfile::tempdir().unwrap();
        let init = tmp.path().join("isola-init");
        let digest = format!("sha256:{}", "0".repeat(64));
        let err = rootfs(tmp.path(), &digest, &[], &init).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "isola-init not found at {}: build it with make (it is built static for the guest)",
                init.display()
            )
        );
    }
}
