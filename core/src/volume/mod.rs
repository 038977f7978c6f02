//! Named volumes: sparse ext4 images under volumes/, shared by both backends
//! (loop-mounted into a container, attached to a VM as a virtio-blk disk).

mod error;
mod mkfs;
mod naming;

pub use error::{Access, VolumeError, Want};
pub use naming::{parse_size, validate_name};

use error::io_ctx;
use mkfs::mkfs;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::Root;

/// Size of a volume created without one (like `-v NAME:/path` on first use).
pub const DEFAULT_SIZE: u64 = 1 << 30;
/// Smallest volume: below this ext4's journal and metadata leave little room.
pub const MIN_SIZE: u64 = 8 << 20;
/// Largest volume: what a 4 KiB-block ext4 file can be on the host.
pub const MAX_SIZE: u64 = 16 << 40;
pub const MAX_NAME_LEN: usize = 64;

const IMAGE: &str = "volume.img";
const META: &str = "volume.json";
const LOCK: &str = "lock";

/// One named volume, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub name: String,
    /// Bytes the filesystem spans (the image file's apparent size).
    pub size: u64,
    /// Unix seconds.
    pub created: u64,
    /// The ext4 image: loop-mounted for containers, a virtio-blk disk for VMs.
    pub image: PathBuf,
}

/// A volume with what `inspect` and `ls` show besides its stored facts.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeInfo {
    #[serde(flatten)]
    pub volume: Volume,
    /// Bytes the sparse image really takes on the host's disk.
    pub disk_bytes: u64,
    /// Some sandbox holds the volume (read-write or read-only).
    pub in_use: bool,
}

/// volume.json: the facts fixed at creation.
#[derive(Serialize, Deserialize)]
struct Meta {
    name: String,
    size: u64,
    created: u64,
}

/// A sandbox's hold on a volume, for as long as it is mounted: exclusive when
/// read-write, shared when read-only. Released when dropped. The lock's file
/// descriptor is close-on-exec, so the holder keeps it, not its children.
#[derive(Debug)]
pub struct VolumeLease {
    _lock: Flock<File>,
    volume: Volume,
    access: Access,
}

impl VolumeLease {
    pub fn volume(&self) -> &Volume {
        &self.volume
    }

    pub fn read_only(&self) -> bool {
        self.access == Access::ReadOnly
    }
}

/// Where volume `name`'s ext4 image is under `root` (or will be once
/// created); nothing is opened or made.
pub fn image_path(root: &Root, name: &str) -> Result<PathBuf, VolumeError> {
    validate_name(name)?;
    Ok(root.volumes().join(name).join(IMAGE))
}

/// The named volumes under one ISOLA_ROOT.
pub struct VolumeStore {
    root: Root,
    /// The mkfs.ext4 to run instead of the one found on PATH (tests).
    mkfs: Option<PathBuf>,
}

impl VolumeStore {
    /// Open (creating if need be) the volume directory under `root`.
    pub fn open(root: Root) -> Result<VolumeStore, VolumeError> {
        let dir = root.volumes();
        fs::create_dir_all(&dir).map_err(io_ctx(format!(
            "creating {} (set --root or ISOLA_ROOT to a writable directory)",
            dir.display()
        )))?;
        Ok(VolumeStore { root, mkfs: None })
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.volumes().join(name)
    }

    /// Create volume `name` of `size` bytes (default [`DEFAULT_SIZE`], rounded
    /// up to 4 KiB). Other processes see the whole volume or none of it.
    pub fn create(&self, name: &str, size: Option<u64>) -> Result<Volume, VolumeError> {
        validate_name(name)?;
        let size = size.unwrap_or(DEFAULT_SIZE);
        if size < MIN_SIZE {
            return Err(VolumeError::TooSmall {
                name: name.to_string(),
                size,
            });
        }
        if size > MAX_SIZE {
            return Err(VolumeError::TooLarge {
                name: name.to_string(),
                size,
            });
        }
        let size = size.div_ceil(4096) * 4096;
        let dir = self.dir(name);
        if fs::symlink_metadata(&dir).is_ok() {
            return Err(VolumeError::Exists(name.to_string()));
        }

        // Built beside its final place, then renamed in: a failure or a crash
        // leaves no half-made volume under its name. The TempDir removes
        // everything on an early return.
        let volumes = self.root.volumes();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".tmp-{name}-"))
            .tempdir_in(&volumes)
            .map_err(io_ctx(format!(
                "creating a directory in {}",
                volumes.display()
            )))?;
        let image = tmp.path().join(IMAGE);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&image)
            .map_err(io_ctx(format!("creating {}", image.display())))?;
        // Sparse: only what ext4 writes takes disk space.
        file.set_len(size).map_err(io_ctx(format!(
            "volume {name}: making {} {size} bytes long",
            image.display()
        )))?;
        drop(file);
        mkfs(self.mkfs.clone(), name, &image)?;
        let lock = tmp.path().join(LOCK);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&lock)
            .map_err(io_ctx(format!("creating {}", lock.display())))?;
        let meta = Meta {
            name: name.to_string(),
            size,
            created: now(),
        };
        let json = serde_json::to_vec_pretty(&meta).expect("volume metadata serialises");
        let meta_path = tmp.path().join(META);
        fsutil::atomic_write(&meta_path, &json)
            .map_err(io_ctx(format!("writing {}", meta_path.display())))?;

        let staged = tmp.keep();
        if let Err(e) = fs::rename(&staged, &dir) {
            let _ = fsutil::remove_any(&staged);
            let errno = e.raw_os_error().map(Errno::from_raw);
            if matches!(errno, Some(Errno::ENOTEMPTY | Errno::EEXIST)) {
                return Err(VolumeError::Exists(name.to_string()));
            }
            return Err(io_ctx(format!(
                "volume {name}: moving it into {}",
                dir.display()
            ))(e));
        }
        tracing::debug!(volume = name, size, "created volume");
        Ok(Volume {
            name: meta.name,
            size,
            created: meta.created,
            image: dir.join(IMAGE),
        })
    }

    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        validate_name(name)?;
        let dir = self.dir(name);
        let damaged = |what: String| VolumeError::Damaged {
            name: name.to_string(),
            what,
        };
        let meta_path = dir.join(META);
        let raw = match fs::read(&meta_path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(if dir.is_dir() {
                    damaged("its volume.json is missing".to_string())
                } else {
                    VolumeError::NotFound(name.to_string())
                });
            }
            Err(e) => return Err(io_ctx(format!("reading {}", meta_path.display()))(e)),
        };
        let meta: Meta = serde_json::from_slice(&raw)
            .map_err(|e| damaged(format!("its volume.json is not valid ({e})")))?;
        let image = dir.join(IMAGE);
        if !image.is_file() {
            return Err(damaged("its volume.img is missing".to_string()));
        }
        Ok(Volume {
            name: name.to_string(),
            size: meta.size,
            created: meta.created,
            image,
        })
    }

    /// The volume `name`, created with the default size if it does not exist
    /// (what `-v NAME:/path` does).
    pub fn get_or_create(&self, name: &str) -> Result<Volume, VolumeError> {
        match self.get(name) {
            Err(VolumeError::NotFound(_)) => match self.create(name, None) {
                // Another process created it first: use theirs.
                Err(VolumeError::Exists(_)) => self.get(name),
                Ok(v) => {
                    tracing::info!(volume = name, "created volume on first use");
                    Ok(v)
                }
                other => other,
            },
            other => other,
        }
    }

    /// What `isola volume inspect` shows.
    pub fn inspect(&self, name: &str) -> Result<VolumeInfo, VolumeError> {
        let volume = self.get(name)?;
        let disk_bytes = fs::metadata(&volume.image)
            .map(|m| m.blocks() * 512)
            .map_err(io_ctx(format!("reading {}", volume.image.display())))?;
        let in_use = self.in_use(name)?;
        Ok(VolumeInfo {
            volume,
            disk_bytes,
            in_use,
        })
    }

    /// Every volume, by name. A damaged one is left out with a warning.
    pub fn list(&self) -> Result<Vec<VolumeInfo>, VolumeError> {
        let volumes = self.root.volumes();
        let entries =
            fs::read_dir(&volumes).map_err(io_ctx(format!("listing {}", volumes.display())))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_ctx(format!("listing {}", volumes.display())))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            // Dot-names are volumes being created or removed.
            if validate_name(&name).is_err() {
                continue;
            }
            match self.inspect(&name) {
                Ok(info) => out.push(info),
                // Removed while we looked.
                Err(VolumeError::NotFound(_)) => {}
                Err(e @ VolumeError::Damaged { .. }) => tracing::warn!("{e}"),
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.volume.name.cmp(&b.volume.name));
        Ok(out)
    }

    /// Whether some sandbox holds the volume.
    pub fn in_use(&self, name: &str) -> Result<bool, VolumeError> {
        match self.lock(name, Want::Remove) {
            Ok(_) => Ok(false),
            Err(VolumeError::InUse { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Hold the volume for a sandbox that mounts it: read-write excludes every
    /// other holder, read-only excludes only writers. Never waits.
    pub fn acquire(&self, name: &str, read_only: bool) -> Result<VolumeLease, VolumeError> {
        let volume = self.get(name)?;
        let access = if read_only {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        };
        let lock = self.lock(name, Want::Mount(access))?;
        Ok(VolumeLease {
            _lock: lock,
            volume,
            access,
        })
    }

    /// Remove a volume no sandbox holds, with its data.
    pub fn remove(&self, name: &str) -> Result<(), VolumeError> {
        validate_name(name)?;
        let dir = self.dir(name);
        if !dir.is_dir() {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        let lock = self.lock(name, Want::Remove)?;
        // Out of sight in one rename (onto an empty placeholder, which rename
        // replaces), then deleted at leisure.
        let volumes = self.root.volumes();
        let trash = tempfile::Builder::new()
            .prefix(&format!(".rm-{name}-"))
            .tempdir_in(&volumes)
            .map_err(io_ctx(format!(
                "creating a directory in {}",
                volumes.display()
            )))?
            .keep();
        if let Err(e) = fs::rename(&dir, &trash) {
            let _ = fs::remove_dir(&trash);
            return Err(io_ctx(format!("volume {name}: removing {}", dir.display()))(e));
        }
        let removed = fsutil::remove_any(&trash);
        drop(lock);
        removed.map_err(io_ctx(format!(
            "volume {name}: deleting {} (the volume is gone; delete that directory by hand)",
            trash.display()
        )))?;
        tracing::debug!(volume = name, "removed volume");
        Ok(())
    }

    /// Take the volume's lock without waiting: shared for a read-only mount,
    /// exclusive otherwise.
    fn lock(&self, name: &str, wanted: Want) -> Result<Flock<File>, VolumeError> {
        validate_name(name)?;
        let dir = self.dir(name);
        let path = dir.join(LOCK);
        let file = match OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.to_string()))
            }
            Err(e) => return Err(io_ctx(format!("opening {}", path.display()))(e)),
        };
        let how = match wanted {
            Want::Mount(Access::ReadOnly) => FlockArg::LockSharedNonblock,
            _ => FlockArg::LockExclusiveNonblock,
        };
        match Flock::lock(file, how) {
            Ok(lock) => {
                // A remover may have moved the volume away between our open
                // and our lock: then the lock guards nothing.
                let same = match (fs::metadata(&path), lock.metadata()) {
                    (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                    _ => false,
                };
                if !same {
                    return Err(VolumeError::NotFound(name.to_string()));
                }
                Ok(lock)
            }
            Err((_, Errno::EWOULDBLOCK)) => {
                if !dir.is_dir() {
                    return Err(VolumeError::NotFound(name.to_string()));
                }
                Err(VolumeError::InUse {
                    name: name.to_string(),
                    held: holders(&path, how),
                    wanted,
                })
            }
            Err((_, e)) => Err(io_ctx(format!("locking {}", path.display()))(
                io::Error::from(e),
            )),
        }
    }
}

/// How the holders of a lock we could not take use it: if a shared lock is
/// free, they are all readers.
fn holders(path: &Path, refused: FlockArg) -> Access {
    if matches!(refused, FlockArg::LockSharedNonblock) {
        return Access::ReadWrite;
    }
    let probe = File::open(path)
        .ok()
        .map(|f| Flock::lock(f, FlockArg::LockSharedNonblock).is_ok());
    if probe == Some(true) {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use isola_test_support::host_has;

    /// Volumes need mkfs.ext4 (not root).
    fn have_mkfs() -> bool {
        host_has("mkfs.ext4 (e2fsprogs)", mkfs::find_mkfs().is_some())
    }

    fn store() -> (tempfile::TempDir, VolumeStore) {
        let tmp = tempfile::tempdir().unwrap();
        let store = VolumeStore::open(Root::new(tmp.path())).unwrap();
        (tmp, store)
    }

    #[test]
    fn create_get_list_remove() {
        if !have_mkfs() {
            return;
        }
        let (_tmp, store) = store();
        let v = store.create("data", Some(10 << 20)).unwrap();
        assert_eq!(v.size, 10 << 20);
        assert_eq!(fs::metadata(&v.image).unwrap().len(), 10 << 20);
        assert_eq!(store.get("data").unwrap(), v);
        assert!(matches!(
            store.create("data", None),
            Err(VolumeError::Exists(_))
        ));
        let info = store.inspect("data").unwrap();
        assert!(!info.in_use);
        assert!(
            info.disk_bytes < v.size / 2,
            "{} of {}",
            info.disk_bytes,
            v.size
        );
        let names: Vec<_> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|i| i.volume.name)
            .collect();
        assert_eq!(names, ["data"]);
        store.remove("data").unwrap();
        assert!(matches!(store.get("data"), Err(VolumeError::NotFound(_))));
        assert!(matches!(
            store.remove("data"),
            Err(VolumeError::NotFound(_))
        ));
        // Nothing left behind, not even staging or trash directories.
        assert_eq!(fs::read_dir(store.root().volumes()).unwrap().count(), 0);
    }

    #[test]
    fn sizes_are_checked_and_rounded() {
        if !have_mkfs() {
            return;
        }
        let (_tmp, store) = store();
        assert!(matches!(
            store.create("small", Some(MIN_SIZE - 1)),
            Err(VolumeError::TooSmall { .. })
        ));
        assert!(matches!(
            store.create("huge", Some(MAX_SIZE + 1)),
            Err(VolumeError::TooLarge { .. })
        ));
        let v = store.create("odd", Some(MIN_SIZE + 1)).unwrap();
        assert_eq!(v.size, MIN_SIZE + 4096);
        assert!(matches!(
            store.create("../x", None),
            Err(VolumeError::BadName { .. })
        ));
    }

    #[test]
    fn get_or_create_makes_a_default_volume_once() {
        if !have_mkfs() {
            return;
        }
        let (_tmp, store) = store();
        let v = store.get_or_create("auto").unwrap();
        assert_eq!(v.size, DEFAULT_SIZE);
        assert_eq!(store.get_or_create("auto").unwrap(), v);
    }

    #[test]
    fn leases_exclude_writers() {
        if !have_mkfs() {
            return;
        }
        let (_tmp, store) = store();
        store.create("shared", Some(MIN_SIZE)).unwrap();

        let rw = store.acquire("shared", false).unwrap();
        assert!(!rw.read_only());
        assert!(store.in_use("shared").unwrap());
        let err = store.acquire("shared", false).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("volume shared is in use read-write by another sandbox; "),
            "{err}"
        );
        let err = store.acquire("shared", true).unwrap_err();
        assert!(err.to_string().contains("in use read-write"), "{err}");
        let err = store.remove("shared").unwrap_err();
        assert!(matches!(err, VolumeError::InUse { .. }), "{err}");
        drop(rw);

        let ro1 = store.acquire("shared", true).unwrap();
        let ro2 = store.acquire("shared", true).unwrap();
        assert!(ro1.read_only() && ro2.read_only());
        let err = store.acquire("shared", false).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("volume shared is in use read-only by another sandbox; "),
            "{err}"
        );
        assert!(store.inspect("shared").unwrap().in_use);
        drop((ro1, ro2));

        assert!(!store.in_use("shared").unwrap());
        store.remove("shared").unwrap();
        assert!(matches!(
            store.acquire("shared", false),
            Err(VolumeError::NotFound(_))
        ));
    }

    #[test]
    fn failed_mkfs_leaves_nothing() {
        let (_tmp, mut store) = store();
        // An mkfs.ext4 that fails, as one would on a full disk.
        store.mkfs = Some(PathBuf::from("/bin/false"));
        let err = store.create("broken", Some(MIN_SIZE)).unwrap_err();
        assert!(
            matches!(&err, VolumeError::Mkfs { name, .. } if name == "broken"),
            "{err}"
        );
        assert_eq!(fs::read_dir(store.root().volumes()).unwrap().count(), 0);
    }
}
