//! While the workload runs: signals isola gets are passed on (read from a
//! signalfd that `Blocked` sets up before the child is cloned), and with
//! -t the pty's bytes are relayed, until it exits.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use isola_core::backend::BackendError;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The relayed signals (and SIGCHLD, SIGWINCH) blocked and readable from a
/// signalfd, from before the child is cloned (it inherits the mask and
/// clears it before exec) until this is dropped.
pub struct Blocked {
    pub fd: SignalFd,
    old: SigSet,
}

impl Blocked {
    pub fn new() -> Result<Blocked, BackendError> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.add(Signal::SIGWINCH);
        for s in isola_core::backend::RELAYED_SIGNALS {
            mask.add(s);
        }
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))
            .map_err(|e| BackendError::step("blocking signals", e))?;
        let blocked = |fd| Blocked { fd, old };
        match SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
            Ok(fd) => Ok(blocked(fd)),
            Err(e) => {
                let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
                Err(BackendError::step("signalfd", e))
            }
        }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

/// Wait for the workload, passing on the signals isola gets and, with a pty,
/// its output (and, with -i, its input). A third Ctrl-C/SIGTERM kills the workload outright,
/// for one that ignores them (as a PID 1 without handlers does). Its exit
/// is seen on its pidfd, not only by SIGCHLD: in a process with other
/// threads the kernel may hand SIGCHLD to one of those.
pub fn relay_until_exit(
    pid: Pid,
    pidfd: &OwnedFd,
    sfd: &SignalFd,
    master: Option<&OwnedFd>,
    interactive: bool,
) -> Result<WaitStatus, BackendError> {
    // As with docker run: -t puts the caller's terminal in raw mode (the
    // sandbox's pty does the line discipline) and shows the output; -i also
    // sends what is typed.
    let _raw = master.and_then(|_| isola_core::terminal::RawMode::enter());
    let stdin = std::io::stdin();
    let mut stdin_open = master.is_some() && interactive;
    let mut stops = 0;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                if let Some(m) = master {
                    drain(m, &mut buf);
                }
                return Ok(status);
            }
            Ok(_) => {}
            Err(e) => return Err(BackendError::step("waiting for the workload", e)),
        }
        let mut fds = vec![
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(m) = master {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(BackendError::step("poll", e)),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            while let Ok(Some(info)) = sfd.read_signal() {
                let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                match sig {
                    Signal::SIGCHLD => {}
                    Signal::SIGWINCH => {
                        if let (Some(m), Some(ws)) =
                            (master, isola_core::terminal::window_size(stdin.as_fd()))
                        {
                            isola_core::terminal::set_window_size(m.as_fd(), &ws);
                        }
                    }
                    s => {
                        if matches!(s, Signal::SIGINT | Signal::SIGTERM) {
                            stops += 1;
                        }
                        let s = if stops >= 3 { Signal::SIGKILL } else { s };
                        let _ = kill(pid, s);
                    }
                }
            }
        }
        if let Some(m) = master {
            if ready.get(2) == Some(&true) {
                match nix::unistd::read(m, &mut buf) {
                    Ok(n) if n > 0 => {
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(&buf[..n]);
                        let _ = out.flush();
                    }
                    _ => {}
                }
            }
            if stdin_open && ready.get(3) == Some(&true) {
                match nix::unistd::read(&stdin, &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        let _ = nix::unistd::write(m, &buf[..n]);
                    }
                }
            }
        }
    }
}

/// Whether isola has nothing to do for the workload right now: it has not
/// exited, no signal waits to be passed on and its pty has nothing to show.
pub fn quiet(pidfd: &OwnedFd, sfd: &SignalFd, master: Option<&OwnedFd>) -> bool {
    let mut fds = vec![
        PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
    ];
    if let Some(m) = master {
        fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
    }
    poll(&mut fds, PollTimeout::ZERO) == Ok(0)
}

/// What the workload wrote to the pty before it exited.
fn drain(master: &OwnedFd, buf: &mut [u8]) {
    let _ = nix::fcntl::fcntl(
        master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let mut out = std::io::stdout().lock();
    while let Ok(n) = nix::unistd::read(master, buf) {
        if n == 0 {
            break;
        }
        let _ = out.write_all(&buf[..n]);
    }
    let _ = out.flush();
}
