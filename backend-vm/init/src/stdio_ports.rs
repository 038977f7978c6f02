//! The workload's stdout and stderr as virtio-serial ports, where the spec
//! says the monitor offers them: a write there moves 32 KiB at a time
//! where a UART moves a byte. isola-init's own messages stay on COM2.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use isola_guest_spec::ports::{STDERR_PORT_NAME, STDOUT_PORT_NAME};
use isola_guest_spec::wire;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::report;
use crate::tty;

/// How long the host may take to say it has all the output (see [`end`]):
/// it waits for the caller to read it, so a slow reader is given time; a
/// host that never answers costs this much at the end.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

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

/// The workload and what it left are gone: write `marker` last on both
/// ports and wait for the host's [`wire::STDIO_DRAINED`] on COM2, so that
/// the status is reported only once the host has every byte before the
/// marker (QEMU drops what it still holds when it exits at the exit port).
pub fn end(mut ports: StdioPorts, marker: &str) {
    for port in [&mut ports.stdout, &mut ports.stderr] {
        if port.write_all(marker.as_bytes()).is_err() {
            return;
        }
    }
    let Ok(mut com2) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(tty::COM2)
    else {
        return;
    };
    let deadline = Instant::now() + DRAIN_WAIT;
    let mut buf = [0u8; 64];
    // Other bytes (a signal the host passed on late) no longer matter.
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let mut fds = [PollFd::new(com2.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(left.as_millis().min(60_000) as u32 + 1)
            .unwrap_or(PollTimeout::MAX);
        if poll(&mut fds, ms).is_err() {
            return;
        }
        match com2.read(&mut buf) {
            Ok(n) if buf[..n].contains(&wire::STDIO_DRAINED) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
    report::say("the host did not confirm it has all of the workload's output");
}
