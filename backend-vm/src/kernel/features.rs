//! What a guest kernel has built in, of what isola's devices need: read
//! from strings only a built-in driver puts in the kernel image (a module
//! parameter's full name, a filesystem's registered name), since a guest
//! boots with no modules. Scanned once per version of the file and
//! remembered under `vm/kernel-features/`.

use std::path::Path;

use memchr::memmem;
use serde::{Deserialize, Serialize};

/// Per kernel file version (see `file_key`); older entries are trimmed.
const KEEP: usize = 8;
/// Bumped when the markers change, so remembered answers are not reused.
const VERSION: u32 = 2;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    /// virtio-mmio devices described on the command line.
    pub virtio_mmio: bool,
    pub virtio_blk: bool,
    /// virtio-serial ports (`/dev/virtio-ports/NAME`).
    pub virtio_console: bool,
    /// AF_VSOCK over virtio.
    pub vsock: bool,
    /// eth0 on a bridge network.
    #[serde(default)]
    pub virtio_net: bool,
    pub erofs: bool,
    pub overlay: bool,
}

impl Features {
    /// The image can be a read-only disk under an overlay.
    pub fn root_disk(&self) -> bool {
        self.virtio_mmio && self.virtio_blk && self.erofs && self.overlay
    }
}

/// A string and the feature it shows.
type Marker = (&'static [u8], fn(&mut Features));

/// One marker each: strings a modular build keeps out of the image (checked
/// against Debian's cloud kernel, which has all seven as modules).
const MARKERS: [Marker; 7] = [
    (b"virtio_mmio.device\0", |f| f.virtio_mmio = true),
    (b"virtio_blk.queue_depth\0", |f| f.virtio_blk = true),
    (b"virtio-ports\0", |f| f.virtio_console = true),
    (b"vmw_vsock_virtio_transport\0", |f| f.vsock = true),
    (b"virtio_net.napi_tx\0", |f| f.virtio_net = true),
    (b"\0erofs\0", |f| f.erofs = true),
    (b"overlay.redirect_dir\0", |f| f.overlay = true),
];

/// What the kernel image `bytes` has built in. A compressed kernel (a
/// bzImage booted as it is) shows nothing: it gets no virtio devices.
pub fn scan(bytes: &[u8]) -> Features {
    let mut f = Features::default();
    for (marker, set) in MARKERS {
        if memmem::find(bytes, marker).is_some() {
            set(&mut f);
        }
    }
    f
}

#[derive(Serialize, Deserialize)]
struct Remembered {
    version: u32,
    features: Features,
}

/// [`scan`] of the kernel file at `kernel`, remembered under `state_dir`;
/// an unreadable kernel has no features.
pub fn of(state_dir: &Path, kernel: &Path) -> Features {
    let dir = state_dir.join("vm").join("kernel-features");
    let key = crate::file_key::key(kernel);
    let memo = key.as_ref().map(|k| dir.join(format!("{k}.json")));
    if let Some(r) = memo
        .as_ref()
        .and_then(|m| std::fs::read(m).ok())
        .and_then(|b| serde_json::from_slice::<Remembered>(&b).ok())
        .filter(|r| r.version == VERSION)
    {
        return r.features;
    }
    let Ok(bytes) = std::fs::read(kernel) else {
        return Features::default();
    };
    let features = scan(&bytes);
    if let Some(memo) = memo {
        // Best effort: without the memo the next run scans again.
        let json = serde_json::to_vec(&Remembered {
            version: VERSION,
            features,
        })
        .unwrap_or_default();
        let _ = std::fs::create_dir_all(&dir)
            .and_then(|()| tempfile::NamedTempFile::new_in(&dir))
            .and_then(|tmp| {
                std::fs::write(tmp.path(), &json)?;
                tmp.persist(&memo).map_err(|e| e.error)?;
                Ok(())
            });
        crate::file_key::trim(&dir, KEEP);
    }
    features
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_marker_sets_its_feature_and_nothing_else() {
        assert_eq!(scan(b"nothing here"), Features::default());
        let all: Vec<u8> = MARKERS
            .iter()
            .flat_map(|(m, _)| m.iter().copied())
            .collect();
        let f = scan(&all);
        assert!(f.root_disk() && f.virtio_console && f.vsock && f.virtio_net);
        let only_blk = scan(b"x\0virtio_blk.queue_depth\0y");
        assert_eq!(
            only_blk,
            Features {
                virtio_blk: true,
                ..Features::default()
            }
        );
        assert!(!only_blk.root_disk());
        // A longer name that merely starts like a marker is not it.
        assert!(!scan(b"\0erofs_fs_type\0").erofs);
    }

    #[test]
    fn a_kernel_file_is_scanned_once_then_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, b"..\0erofs\0..overlay.redirect_dir\0").unwrap();
        let f = of(dir.path(), &kernel);
        assert!(f.erofs && f.overlay && !f.virtio_blk);
        let memos: Vec<_> = std::fs::read_dir(dir.path().join("vm/kernel-features"))
            .unwrap()
            .collect();
        assert_eq!(memos.len(), 1);
        assert_eq!(of(dir.path(), &kernel), f);
        assert_eq!(
            of(dir.path(), &dir.path().join("absent")),
            Features::default()
        );
    }
}
