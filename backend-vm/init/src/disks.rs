//! The guest's virtio-blk disks, found by the serial isola gave each (the
//! order of virtio-mmio slots differs between monitors), and the named
//! volumes among them mounted where the spec says.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::mount::{mount, umount, MsFlags};
use nix::sys::wait::{waitpid, WaitPidFlag};

use crate::fail::{describe_io, Failure};
use crate::mounts::make_dir;
use isola_guest_spec::VolumeDisk;

/// `/dev/vdX` of the disk whose serial is `serial`.
pub fn find(serial: &str) -> Result<String, Failure> {
    let entries = std::fs::read_dir("/sys/block")
        .map_err(|e| Failure::setup("cannot list /sys/block", describe_io(&e)))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(found) = std::fs::read_to_string(entry.path().join("serial")) else {
            continue;
        };
        if found.trim_end_matches(['\n', '\0']) == serial {
            return Ok(format!("/dev/{name}"));
        }
    }
    Err(Failure::setup(
        format!("no disk with the serial {serial:?}"),
        "the guest's kernel found no such virtio-blk disk",
    ))
}

/// The targets of the volumes mounted, to unmount at the end.
static MOUNTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// How long the end waits for killed processes to let go of the volumes.
const LET_GO: Duration = Duration::from_secs(2);

/// Each volume's ext4 disk at its target, created if missing, read-only
/// when asked.
pub fn mount_volumes(volumes: &[VolumeDisk]) -> Result<(), Failure> {
    for v in volumes {
        let dev = find(&v.serial)?;
        make_dir(&v.target)?;
        let flags = if v.read_only {
            MsFlags::MS_RDONLY
        } else {
            MsFlags::empty()
        };
        mount(
            Some(dev.as_str()),
            v.target.as_str(),
            Some("ext4"),
            flags,
            None::<&str>,
        )
        .map_err(|e| {
            Failure::errno(
                format!("cannot mount the volume disk {dev} on {}", v.target),
                e,
            )
        })?;
        if let Ok(mut m) = MOUNTED.lock() {
            m.push(v.target.clone());
        }
    }
    Ok(())
}

/// Unmount the volumes once every other process is killed, so that each
/// is left clean: its next user, in a VM or a container, read-only even,
/// mounts it with no journal to replay. A volume still busy is at least
/// synced.
pub fn unmount_volumes() {
    let Ok(targets) = MOUNTED.lock().map(|m| m.clone()) else {
        return;
    };
    if targets.is_empty() {
        return;
    }
    let deadline = Instant::now() + LET_GO;
    // The killed die asynchronously; their open files go when they do.
    while Instant::now() < deadline {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    nix::unistd::sync();
    for t in targets.iter().rev() {
        let _ = umount(t.as_str());
    }
}
