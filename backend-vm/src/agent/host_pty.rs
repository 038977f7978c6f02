//! A host terminal for `exec -t`: the caller gets its master, as from the
//! container backend, and the agent's pump relays its slave, raw, to the
//! guest's own terminal for the process, which does the line discipline.

use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::termios;

use super::AgentError;

pub struct HostPty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// A pty pair, the slave raw so that bytes pass through unchanged.
pub fn open() -> Result<HostPty, AgentError> {
    let pty = nix::pty::openpty(None, None).map_err(AgentError::Pty)?;
    for fd in [&pty.master, &pty.slave] {
        fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(AgentError::Pty)?;
    }
    fcntl(pty.slave.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(AgentError::Pty)?;
    let mut t = termios::tcgetattr(pty.slave.as_fd()).map_err(AgentError::Pty)?;
    termios::cfmakeraw(&mut t);
    termios::tcsetattr(pty.slave.as_fd(), termios::SetArg::TCSANOW, &t).map_err(AgentError::Pty)?;
    Ok(HostPty {
        master: pty.master,
        slave: pty.slave,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_cross_the_raw_slave_unchanged() {
        let pty = open().unwrap();
        nix::unistd::write(&pty.master, b"a\r\x03\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut buf = [0u8; 16];
        let n = nix::unistd::read(&pty.slave, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"a\r\x03\n");
    }
}
