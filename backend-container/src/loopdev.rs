//! Loop devices: a volume image file attached as a block device, through the
//! kernel's loop ioctls (no losetup), detached by the kernel after its last user.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

const LOOP_CONTROL: &str = "/dev/loop-control";
const LOOP_MAJOR: u64 = 7;
/// How often to try again when another process takes the free device first.
const ATTEMPTS: u32 = 8;

const LO_NAME_SIZE: usize = 64;
const LO_KEY_SIZE: usize = 32;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64` from linux/loop.h.
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; LO_KEY_SIZE],
    lo_init: [u64; 2],
}

/// `struct loop_config` from linux/loop.h (LOOP_CONFIGURE, Linux 5.8).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

mod ioctl {
    use super::{LoopConfig, LoopInfo64};

    nix::ioctl_none_bad!(loop_ctl_get_free, 0x4C82);
    nix::ioctl_write_int_bad!(loop_set_fd, 0x4C00);
    nix::ioctl_none_bad!(loop_clr_fd, 0x4C01);
    nix::ioctl_write_ptr_bad!(loop_set_status64, 0x4C04, LoopInfo64);
    nix::ioctl_write_ptr_bad!(loop_configure, 0x4C0A, LoopConfig);
}

#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error("loop devices are unavailable: {LOOP_CONTROL} is missing; load the loop module (modprobe loop)")]
    NoControl,
    #[error("loop devices need root (CAP_SYS_ADMIN): {LOOP_CONTROL} cannot be opened")]
    NotPermitted,
    #[error("opening {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no free loop device for {file}; the host's loop devices are all in use (raise max_loop or detach some)")]
    NoneFree {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("creating the missing device node {path}")]
    Node {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("attaching {file} to {device}")]
    Attach {
        file: PathBuf,
        device: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("attaching {file}: other processes took every free loop device {ATTEMPTS} times in a row; try again")]
    Busy { file: PathBuf },
    #[error("detaching {device}")]
    Detach {
        device: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// An attached loop device, open. The kernel detaches it once nothing uses it
/// any more (autoclear): dropping this before anything mounted the device
/// detaches it at once; after a mount, the unmount does.
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
    number: u32,
    file: File,
}

impl LoopDevice {
    /// `/dev/loopN`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// N in `/dev/loopN`.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Detach now (or, if the device is mounted, as soon as it is unmounted).
    pub fn detach(self) -> Result<(), LoopError> {
        // SAFETY: LOOP_CLR_FD takes no argument; the fd is our open loop device.
        match unsafe { ioctl::loop_clr_fd(self.file.as_raw_fd()) } {
            // ENXIO: already detached.
            Ok(_) | Err(Errno::ENXIO) => Ok(()),
            Err(e) => Err(LoopError::Detach {
                device: self.path.clone(),
                source: e.into(),
            }),
        }
    }
}

impl AsFd for LoopDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Attach `file` to a free loop device, read-only if asked, set to detach
/// itself when its last user goes away.
pub fn attach(file: &Path, read_only: bool) -> Result<LoopDevice, LoopError> {
    attach_via(file, read_only, Method::Configure)
}

/// How to bind a file to a device.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    /// LOOP_CONFIGURE, falling back to SetFd on kernels before 5.8.
    Configure,
    /// LOOP_SET_FD + LOOP_SET_STATUS64.
    SetFd,
}

fn attach_via(file: &Path, read_only: bool, method: Method) -> Result<LoopDevice, LoopError> {
    // The device reads and writes through this open file; read-only opening
    // also makes the kernel refuse writes on the older attach path.
    let backing = OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(file)
        .map_err(|source| LoopError::Open {
            path: file.to_path_buf(),
            source,
        })?;
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(LOOP_CONTROL)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => LoopError::NoControl,
            io::ErrorKind::PermissionDenied => LoopError::NotPermitted,
            _ => LoopError::Open {
                path: LOOP_CONTROL.into(),
                source: e,
            },
        })?;
    let info = loop_info(file, read_only);
    for attempt in 0..ATTEMPTS {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device
        // number; the fd is /dev/loop-control, open.
        let number = unsafe { ioctl::loop_ctl_get_free(control.as_raw_fd()) }.map_err(|e| {
            LoopError::NoneFree {
                file: file.to_path_buf(),
                source: e.into(),
            }
        })?;
        let number = u32::try_from(number).expect("the kernel returns a device number");
        let path = PathBuf::from(format!("/dev/loop{number}"));
        let device = open_device(number, &path)?;
        match configure(&device, &backing, info, method) {
            Ok(()) => {
                tracing::debug!(file = %file.display(), device = %path.display(), read_only, "attached loop device");
                return Ok(LoopDevice {
                    path,
                    number,
                    file: device,
                });
            }
            // Another process attached a file to this device first.
            Err(Errno::EBUSY) => {
                tracing::debug!(device = %path.display(), attempt, "loop device taken meanwhile; trying another");
                thread::sleep(Duration::from_millis(1 << attempt));
            }
            Err(e) => {
                return Err(LoopError::Attach {
                    file: file.to_path_buf(),
                    device: path,
                    source: e.into(),
                })
            }
        }
    }
    Err(LoopError::Busy {
        file: file.to_path_buf(),
    })
}

fn loop_info(file: &Path, read_only: bool) -> LoopInfo64 {
    let mut info = LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: LO_FLAGS_AUTOCLEAR | if read_only { LO_FLAGS_READ_ONLY } else { 0 },
        lo_file_name: [0; LO_NAME_SIZE],
        lo_crypt_name: [0; LO_NAME_SIZE],
        lo_encrypt_key: [0; LO_KEY_SIZE],
        lo_init: [0; 2],
    };
    // Shown by losetup; the kernel wants it NUL-terminated, so a long path is cut.
    let name = file.as_os_str().as_bytes();
    let n = name.len().min(LO_NAME_SIZE - 1);
    info.lo_file_name[..n].copy_from_slice(&name[..n]);
    info
}

/// Open /dev/loopN, making the node if this /dev lacks it (a container's
/// /dev, or one populated before the kernel created the device).
fn open_device(number: u32, path: &Path) -> Result<File, LoopError> {
    let open = || OpenOptions::new().read(true).write(true).open(path);
    match open() {
        Ok(f) => return Ok(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(LoopError::Open {
                path: path.to_path_buf(),
                source,
            })
        }
    }
    let (major, minor) = device_numbers(number);
    match mknod(
        path,
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(0o660),
        makedev(major, minor),
    ) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => {
            return Err(LoopError::Node {
                path: path.to_path_buf(),
                source: e.into(),
            })
        }
    }
    open().map_err(|source| LoopError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// The device's major:minor as sysfs says (the minor is N only when the loop
/// module has no partitions per device), else 7:N.
fn device_numbers(number: u32) -> (u64, u64) {
    fs::read_to_string(format!("/sys/block/loop{number}/dev"))
        .ok()
        .and_then(|s| {
            let (major, minor) = s.trim().split_once(':')?;
            Some((major.parse().ok()?, minor.parse().ok()?))
        })
        .unwrap_or((LOOP_MAJOR, u64::from(number)))
}

/// Bind `backing` to the device with `info` in one step (LOOP_CONFIGURE), or
/// in two on kernels before 5.8.
fn configure(device: &File, backing: &File, info: LoopInfo64, method: Method) -> Result<(), Errno> {
    if method == Method::Configure {
        configure_at_once(device, backing, info)?;
        return Ok(());
    }
    // SAFETY: LOOP_SET_FD takes the backing file's fd as an int; both fds are
    // open.
    unsafe { ioctl::loop_set_fd(device.as_raw_fd(), backing.as_raw_fd()) }?;
    // SAFETY: LOOP_SET_STATUS64 reads a `struct loop_info64`, which LoopInfo64
    // matches (size checked in the tests); it lives across the call.
    if let Err(e) = unsafe { ioctl::loop_set_status64(device.as_raw_fd(), &info) } {
        // SAFETY: LOOP_CLR_FD takes no argument; undoes our LOOP_SET_FD.
        let _ = unsafe { ioctl::loop_clr_fd(device.as_raw_fd()) };
        return Err(e);
    }
    Ok(())
}

/// LOOP_CONFIGURE; where the kernel lacks it, the two-step way.
fn configure_at_once(device: &File, backing: &File, info: LoopInfo64) -> Result<(), Errno> {
    let config = LoopConfig {
        fd: backing.as_raw_fd() as u32,
        block_size: 0,
        info,
        reserved: [0; 8],
    };
    // SAFETY: LOOP_CONFIGURE reads a `struct loop_config`, which LoopConfig
    // matches (size checked in the tests); it lives across the call and both
    // fds are open.
    match unsafe { ioctl::loop_configure(device.as_raw_fd(), &config) } {
        Ok(_) => Ok(()),
        Err(Errno::EINVAL | Errno::ENOTTY) => {
            tracing::debug!("LOOP_CONFIGURE unsupported; using LOOP_SET_FD");
            configure(device, backing, info, Method::SetFd)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isola_test_support::{host_has, root_user};
    use nix::mount::{mount, umount, umount2, MntFlags, MsFlags};
    use std::process::Command;
    use std::time::Instant;

    #[test]
    fn structs_match_linux_loop_h() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
        assert_eq!(std::mem::offset_of!(LoopInfo64, lo_flags), 52);
        assert_eq!(std::mem::offset_of!(LoopInfo64, lo_file_name), 56);
        assert_eq!(std::mem::offset_of!(LoopConfig, info), 8);
    }

    #[test]
    fn long_names_are_cut_and_terminated() {
        let long = PathBuf::from(format!("/{}", "x".repeat(100)));
        let info = loop_info(&long, true);
        assert_eq!(info.lo_file_name[62], b'x');
        assert_eq!(info.lo_file_name[63], 0);
        assert_eq!(info.lo_flags, LO_FLAGS_AUTOCLEAR | LO_FLAGS_READ_ONLY);
        assert_eq!(
            loop_info(Path::new("/a"), false).lo_flags,
            LO_FLAGS_AUTOCLEAR
        );
    }

    fn mkfs_ext4() -> Option<PathBuf> {
        ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
            .map(PathBuf::from)
            .into_iter()
            .find(|p| p.is_file())
    }

    /// The loop devices whose backing file is `file`.
    fn backed_by(file: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in fs::read_dir("/sys/block").unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !name.starts_with("loop") {
                continue;
            }
            if let Ok(b) = fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")) {
                if Path::new(b.trim()) == file {
                    out.push(name);
                }
            }
        }
        out
    }

    /// Autoclear runs asynchronously after the last close: give it a second.
    fn wait_detached(number: u32) {
        let backing = format!("/sys/block/loop{number}/loop/backing_file");
        let start = Instant::now();
        while Path::new(&backing).exists() {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "loop{number} still attached 1 s after its last user went away"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// A mount undone even if the test fails halfway.
    struct Mounted<'a>(Option<&'a Path>);

    impl Mounted<'_> {
        fn unmount(mut self) {
            let target = self.0.take().unwrap();
            umount(target).unwrap();
        }
    }

    impl Drop for Mounted<'_> {
        fn drop(&mut self) {
            if let Some(target) = self.0 {
                let _ = umount2(target, MntFlags::MNT_DETACH);
            }
        }
    }

    #[test]
    fn attach_mount_autoclear_and_reattach_read_only() {
        if !root_user() {
            return;
        }
        let Some(mkfs) = mkfs_ext4() else {
            host_has("mkfs.ext4 (e2fsprogs)", false);
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let image = dir.join("volume.img");
        File::create(&image).unwrap().set_len(16 << 20).unwrap();
        let out = Command::new(mkfs)
            .args(["-q", "-F"])
            .arg(&image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mnt = dir.join("mnt");
        fs::create_dir(&mnt).unwrap();

        let dev = attach(&image, false).unwrap();
        let number = dev.number();
        assert_eq!(backed_by(&image), [format!("loop{number}")]);
        mount(
            Some(dev.path()),
            &mnt,
            Some("ext4"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let mounted = Mounted(Some(&mnt));
        // From here the mount alone keeps the device attached.
        drop(dev);
        assert_eq!(backed_by(&image), [format!("loop{number}")]);
        fs::write(mnt.join("hello"), "from a loop device\n").unwrap();
        mounted.unmount();
        wait_detached(number);

        let dev = attach(&image, true).unwrap();
        let number = dev.number();
        let ro = fs::read_to_string(format!("/sys/block/loop{number}/ro")).unwrap();
        assert_eq!(ro.trim(), "1");
        mount(
            Some(dev.path()),
            &mnt,
            Some("ext4"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .unwrap();
        let mounted = Mounted(Some(&mnt));
        assert_eq!(
            fs::read_to_string(mnt.join("hello")).unwrap(),
            "from a loop device\n"
        );
        assert!(fs::write(mnt.join("other"), "x").is_err());
        mounted.unmount();
        // Still ours (we hold it open): detach explicitly this time.
        assert_eq!(backed_by(&image), [format!("loop{number}")]);
        dev.detach().unwrap();
        wait_detached(number);
        assert!(backed_by(&image).is_empty());
    }

    #[test]
    fn the_two_step_attach_sets_read_only_and_autoclear() {
        if !root_user() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let image = tmp.path().canonicalize().unwrap().join("disk.img");
        File::create(&image).unwrap().set_len(1 << 20).unwrap();
        for read_only in [true, false] {
            let dev = attach_via(&image, read_only, Method::SetFd).unwrap();
            let number = dev.number();
            assert_eq!(backed_by(&image), [format!("loop{number}")]);
            let ro = fs::read_to_string(format!("/sys/block/loop{number}/ro")).unwrap();
            assert_eq!(ro.trim(), if read_only { "1" } else { "0" });
            let autoclear =
                fs::read_to_string(format!("/sys/block/loop{number}/loop/autoclear")).unwrap();
            assert_eq!(autoclear.trim(), "1");
            // Nothing mounted it: closing it detaches it.
            drop(dev);
            wait_detached(number);
        }
        assert!(backed_by(&image).is_empty());
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = attach(Path::new("/nonexistent/volume.img"), true).unwrap_err();
        assert_eq!(err.to_string(), "opening /nonexistent/volume.img");
    }
}
