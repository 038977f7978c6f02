//! The workload's stdout and stderr as virtio-serial ports, where the spec
//! says the monitor offers them: a write there moves 32 KiB at a time
//! where a UART moves a byte. isola-init's own messages stay on COM2.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;

use isola_guest_spec::ports::{STDERR_PORT_NAME, STDOUT_PORT_NAME};

use crate::report;

pub struct StdioPorts {
    pub stdout: File,
    pub stderr: File,
}

/// Both ports, opened for writing (blocking, as programs expect of their
/// stdout), or `None` with a message on COM2: the workload then writes to
/// the UARTs, which the host relays too.
pub fn open() -> Option<StdioPorts> {
    let stdout = open_port(STDOUT_PORT_NAME)?;
    let stderr = open_port(STDERR_PORT_NAME)?;
    Some(StdioPorts { stdout, stderr })
}

fn open_port(name: &str) -> Option<File> {
    let Some(path) = crate::virtio_ports::find(name, true) else {
        report::say(&format!(
            "the virtio-serial port {name} the host offers is missing: the workload writes to the UARTs"
        ));
        return None;
    };
    // A port takes one opener at a time: the workload inherits this one.
    match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(port) => Some(port),
        Err(e) => {
            report::say(&format!(
                "cannot open {path} ({name}): {}: the workload writes to the UARTs",
                crate::fail::describe_io(&e)
            ));
            None
        }
    }
}
