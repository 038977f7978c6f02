//! Which of the drivers isola's devices need a kernel has built in (a
//! module is of no use: the guest has no modules), found by looking for
//! strings that only the built-in driver puts into the kernel image: a
//! built-in driver's parameters are named `<module>.<param>`, and its
//! class and cache names are its own. A bzImage is looked into unpacked.
//! The answer is cached per version of the kernel file under
//! `vm/kernel-features/`, as the vmlinux itself is.

use std::path::Path;

use super::format::{self, Format};
use super::vmlinux;

/// What a kernel can use of isola's devices and guest layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelFeatures {
    /// virtio-mmio devices described on the command line.
    pub virtio_mmio: bool,
    pub virtio_blk: bool,
    /// virtio-serial ports (the agent channel under QEMU).
    pub virtio_console: bool,
    /// virtio-vsock (the agent channel on isola's monitor).
    pub vsock: bool,
    pub erofs: bool,
    pub overlay: bool,
}

/// Each feature's marker: a NUL-terminated string only the built-in
/// driver brings.
const MARKERS: [(&str, &[u8]); 6] = [
    // module_param(device, ...) of virtio_mmio.c, with
    // VIRTIO_MMIO_CMDLINE_DEVICES.
    ("virtio_mmio", b"virtio_mmio.device\0"),
    ("virtio_blk", b"virtio_blk.queue_depth\0"),
    // The class virtio_console makes for its ports.
    ("virtio_console", b"virtio-ports\0"),
    ("vsock", b"vmw_vsock_virtio_transport\0"),
    ("erofs", b"erofs_inode\0"),
    ("overlay", b"ovl_inode\0"),
];

/// Cached answers kept; older ones go as new ones are added.
const KEEP: usize = 8;

impl KernelFeatures {
    /// Everything the agent channel needs under QEMU.
    pub fn virtio_serial(&self) -> bool {
        self.virtio_mmio && self.virtio_console
    }

    fn from_names(text: &str) -> KernelFeatures {
        let has = |name: &str| text.split_whitespace().any(|w| w == name);
        KernelFeatures {
            virtio_mmio: has("virtio_mmio"),
            virtio_blk: has("virtio_blk"),
            virtio_console: has("virtio_console"),
            vsock: has("vsock"),
            erofs: has("erofs"),
            overlay: has("overlay"),
        }
    }

    fn names(&self) -> String {
        let on = [
            self.virtio_mmio,
            self.virtio_blk,
            self.virtio_console,
            self.vsock,
            self.erofs,
            self.overlay,
        ];
        MARKERS
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|((name, _), _)| *name)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The features the kernel image `image` (an ELF vmlinux, or raw
    /// bytes of any kind) shows.
    pub fn scan(image: &[u8]) -> KernelFeatures {
        let has = |i: usize| memchr::memmem::find(image, MARKERS[i].1).is_some();
        KernelFeatures {
            virtio_mmio: has(0),
            virtio_blk: has(1),
            virtio_console: has(2),
            vsock: has(3),
            erofs: has(4),
            overlay: has(5),
        }
    }
}

/// The features of the kernel at `kernel`; none if it cannot be read.
/// `state_dir` holds the cache.
pub fn features(state_dir: &Path, kernel: &Path) -> KernelFeatures {
    let dir = state_dir.join("vm/kernel-features");
    let key = crate::file_key::key(kernel);
    let cached = key.as_ref().map(|k| dir.join(k));
    if let Some(text) = cached
        .as_ref()
        .and_then(|c| std::fs::read_to_string(c).ok())
    {
        return KernelFeatures::from_names(&text);
    }
    let Ok(bytes) = std::fs::read(kernel) else {
        return KernelFeatures::default();
    };
    let found = match format::format(&bytes) {
        Some(Format::BzImage { .. }) => vmlinux::extract(&bytes)
            .map(|elf| KernelFeatures::scan(&elf))
            .unwrap_or_default(),
        _ => KernelFeatures::scan(&bytes),
    };
    if let Some(c) = cached {
        // A cache that cannot be written only costs the next scan.
        if std::fs::create_dir_all(&dir).is_ok() {
            let tmp = dir.join(format!(".{}.tmp", std::process::id()));
            if std::fs::write(&tmp, found.names()).is_ok() && std::fs::rename(&tmp, &c).is_ok() {
                crate::file_key::trim(&dir, KEEP);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_and_the_answer_is_cached() {
        let image = b"\x7fELF....virtio_mmio.device\0...virtio-ports\0..ovl_inode\0";
        let f = KernelFeatures::scan(image);
        assert_eq!(
            f,
            KernelFeatures {
                virtio_mmio: true,
                virtio_console: true,
                overlay: true,
                ..KernelFeatures::default()
            }
        );
        assert!(f.virtio_serial());
        // A module's name without its built-in marker is not the driver.
        assert!(!KernelFeatures::scan(b"virtio_mmio\0virtio_ports\0").virtio_mmio);

        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, image).unwrap();
        assert_eq!(features(dir.path(), &kernel), f);
        let cache = dir.path().join("vm/kernel-features");
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
        // Served from the cache now.
        assert_eq!(features(dir.path(), &kernel), f);
        assert_eq!(
            features(dir.path(), &dir.path().join("missing")),
            KernelFeatures::default()
        );
    }

    #[test]
    fn the_host_kernel_agrees_with_its_config() {
        // /boot/vmlinuz-R beside /boot/config-R, as Debian installs them.
        let Some(k) = super::super::in_boot() else {
            return;
        };
        let name = k.file_name().unwrap().to_string_lossy().into_owned();
        let Some(release) = name.strip_prefix("vmlinuz-") else {
            return;
        };
        let Ok(config) = std::fs::read_to_string(k.with_file_name(format!("config-{release}")))
        else {
            return;
        };
        let built_in = |option: &str| config.lines().any(|l| l == format!("{option}=y"));
        let dir = tempfile::tempdir().unwrap();
        let f = features(dir.path(), &k);
        assert_eq!(f.virtio_mmio, built_in("CONFIG_VIRTIO_MMIO"), "{f:?}");
        assert_eq!(f.virtio_console, built_in("CONFIG_VIRTIO_CONSOLE"), "{f:?}");
        assert_eq!(f.virtio_blk, built_in("CONFIG_VIRTIO_BLK"), "{f:?}");
        assert_eq!(f.vsock, built_in("CONFIG_VIRTIO_VSOCKETS"), "{f:?}");
        assert_eq!(f.erofs, built_in("CONFIG_EROFS_FS"), "{f:?}");
        assert_eq!(f.overlay, built_in("CONFIG_OVERLAY_FS"), "{f:?}");
    }
}
