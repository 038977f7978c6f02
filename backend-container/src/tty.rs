//! `-t`: the workload gets a pseudo-terminal. The caller's terminal goes raw
//! while it runs (`isola_core::terminal`), bytes are copied both ways, and
//! window-size changes are passed on.

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::stat::Mode;

use crate::fail::Fail;

/// In the child, once its own devpts is mounted at /dev/pts: a pty pair
/// from that instance, so `tty` and ttyname() inside name a device that
/// exists there (a pty of the host's devpts would not).
pub fn open_in_sandbox() -> Result<(OwnedFd, OwnedFd), Fail> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = posix_openpt(flags).map_err(|e| Fail::sys("opening /dev/ptmx", e))?;
    grantpt(&master).map_err(|e| Fail::sys("grantpt", e))?;
    unlockpt(&master).map_err(|e| Fail::sys("unlockpt", e))?;
    let name = ptsname_r(&master).map_err(|e| Fail::sys("ptsname", e))?;
    let slave = nix::fcntl::open(name.as_str(), flags, Mode::empty())
        .map_err(|e| Fail::sys(format!("opening {name}"), e))?;
    // SAFETY: into_raw_fd hands over sole ownership of the open master fd.
    let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    Ok((master, slave))
}

/// In the child: a session of its own with the pty as controlling terminal
/// and as stdin, stdout and stderr.
pub fn become_controlling(slave: &OwnedFd) -> Result<(), Fail> {
    nix::unistd::setsid().map_err(|e| Fail::sys("setsid", e))?;
    // SAFETY: TIOCSCTTY takes an int argument; 0 means do not steal.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(Fail::sys(
            "making the pty the controlling terminal",
            nix::errno::Errno::last(),
        ));
    }
    nix::unistd::dup2_stdin(slave).map_err(|e| Fail::sys("dup2 pty", e))?;
    nix::unistd::dup2_stdout(slave).map_err(|e| Fail::sys("dup2 pty", e))?;
    nix::unistd::dup2_stderr(slave).map_err(|e| Fail::sys("dup2 pty", e))?;
    Ok(())
}
