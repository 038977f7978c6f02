//! `-t`: the workload gets a pseudo-terminal. The caller's terminal goes raw
//! while it runs (so Ctrl-C and arrows reach the workload), bytes are copied
//! both ways, and window-size changes are passed on.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::pty::{openpty, OpenptyResult, Winsize};
use nix::sys::termios::{self, SetArg, Termios};

use crate::child::Fail;

/// The caller's window size, if stdin is a terminal.
pub fn window_size(fd: BorrowedFd<'_>) -> Option<Winsize> {
    let mut ws: Winsize = Winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`, which outlives the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some(ws)
}

pub fn set_window_size(fd: BorrowedFd<'_>, ws: &Winsize) {
    // SAFETY: TIOCSWINSZ reads one winsize from `ws`.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws) };
}

/// A new pty pair sized like the caller's terminal.
pub fn open() -> Result<OpenptyResult, Fail> {
    let ws = window_size(std::io::stdin().as_fd());
    openpty(ws.as_ref(), None).map_err(|e| Fail::sys("opening a pseudo-terminal", e))
}

/// In the child: a session of its own with the pty as controlling terminal
/// and as stdin, stdout and stderr.
pub fn become_controlling(slave: &OwnedFd) -> Result<(), Fail> {
    nix::unistd::setsid().map_err(|e| Fail::sys("setsid", e))?;
    // SAFETY: TIOCSCTTY takes an int argument; 0 means do not steal.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(Fail::sys("making the pty the controlling terminal", nix::errno::Errno::last()));
    }
    nix::unistd::dup2_stdin(slave).map_err(|e| Fail::sys("dup2 pty", e))?;
    nix::unistd::dup2_stdout(slave).map_err(|e| Fail::sys("dup2 pty", e))?;
    nix::unistd::dup2_stderr(slave).map_err(|e| Fail::sys("dup2 pty", e))?;
    Ok(())
}

/// Puts the caller's terminal in raw mode; restores it when dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}
