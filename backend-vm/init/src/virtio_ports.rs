//! virtio-serial ports found by the name the host gave them: no udev makes
//! the /dev/virtio-ports links in the guest, so the name is read in sysfs.

use std::time::{Duration, Instant};

/// How often sysfs is looked at again while a port is awaited.
const STEP: Duration = Duration::from_millis(1);
/// How long a port with no name yet is waited for: the name comes from the
/// host a moment after the port appears.
const UNNAMED_PATIENCE: Duration = Duration::from_millis(200);
/// How long a port the host said it offers is waited for: the driver adds
/// ports from a work queue, which may not have run when PID 1 starts.
const PROMISED_PATIENCE: Duration = Duration::from_secs(2);

/// `/dev/vportNpM` of the port named `name`. `promised`: the host offers
/// it, so it is waited for even while no port is there at all.
pub fn find(name: &str, promised: bool) -> Option<String> {
    let started = Instant::now();
    let patience = if promised {
        PROMISED_PATIENCE
    } else {
        UNNAMED_PATIENCE
    };
    loop {
        let mut unnamed = false;
        if let Ok(entries) = std::fs::read_dir("/sys/class/virtio-ports") {
            for entry in entries.flatten() {
                let found = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
                if found.trim_end() == name {
                    return Some(format!("/dev/{}", entry.file_name().to_string_lossy()));
                }
                unnamed |= found.trim().is_empty();
            }
        }
        if (!promised && !unnamed) || started.elapsed() >= patience {
            return None;
        }
        std::thread::sleep(STEP);
    }
}
