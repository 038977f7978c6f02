//! A forked child that reports to its parent through a pipe, for the probes
//! that may get a process killed (a seccomp KILL action, the OOM killer).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// What a child wrote, and how it ended.
#[derive(Debug)]
pub struct Report {
    pub bytes: Vec<u8>,
    pub exit: Exit,
    /// Killed by us for outliving its time.
    pub timed_out: bool,
}

pub struct Child {
    pid: libc::pid_t,
    read: OwnedFd,
    reaped: bool,
}

/// Fork, and run `body` in the child with the write end of a pipe; what it
/// returns is the child's exit status.
pub fn spawn(body: impl FnOnce(RawFd) -> i32) -> io::Result<Child> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just made both descriptors; nothing else owns them.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the child runs `body` and leaves through _exit, never returning
    // into its caller's frames.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            drop(read);
            let code = catch_unwind(AssertUnwindSafe(|| body(write.as_raw_fd()))).unwrap_or(101);
            // SAFETY: _exit skips the atexit handlers and stdio buffers the
            // child shares with its parent (a test harness, say).
            unsafe { libc::_exit(code) }
        }
        pid => {
            drop(write);
            // Non-blocking: the parent reads between checks on the child,
            // since another fork of this process may hold the write end
            // open and keep EOF from coming when the child dies.
            // SAFETY: `read` is a valid descriptor owned here.
            unsafe { libc::fcntl(read.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
            Ok(Child {
                pid,
                read,
                reaped: false,
            })
        }
    }
}

/// Write all of `bytes` to `fd`, as a child reports to its parent.
pub fn send(fd: RawFd, bytes: &[u8]) -> io::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: `rest` is valid for `rest.len()` bytes.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        rest = &rest[n as usize..];
    }
    Ok(())
}

impl Child {
    /// Read what the child writes until it ends; past `limit`, kill it.
    pub fn wait(mut self, limit: Duration) -> io::Result<Report> {
        let deadline = Instant::now() + limit;
        let mut bytes = Vec::new();
        let mut eof = false;
        loop {
            if !eof {
                eof = self.drain(&mut bytes)?;
            }
            if let Some(exit) = self.try_reap()? {
                self.drain(&mut bytes)?;
                return Ok(Report {
                    bytes,
                    exit,
                    timed_out: false,
                });
            }
            let now = Instant::now();
            if now >= deadline {
                // SAFETY: `pid` is our unreaped child, so the number is still its.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
                let exit = self.reap()?;
                self.drain(&mut bytes)?;
                return Ok(Report {
                    bytes,
                    exit,
                    timed_out: true,
                });
            }
            // After EOF, poll would return at once: sleep instead, briefly,
            // since the child is about to become reapable.
            let wait = if eof {
                Duration::from_millis(1)
            } else {
                Duration::from_millis(20)
            };
            let wait = wait.min(deadline - now);
            let mut pfd = libc::pollfd {
                fd: self.read.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let nfds = if eof { 0 } else { 1 };
            // SAFETY: `pfd` is one valid pollfd (or none is looked at).
            unsafe { libc::poll(&mut pfd, nfds, wait.as_millis() as libc::c_int) };
        }
    }

    /// Read what is there; true at EOF.
    fn drain(&mut self, bytes: &mut Vec<u8>) -> io::Result<bool> {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: `buf` is writable for its length.
            let n =
                unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            match n {
                0 => return Ok(true),
                n if n > 0 => bytes.extend_from_slice(&buf[..n as usize]),
                _ => {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::Interrupted => continue,
                        io::ErrorKind::WouldBlock => return Ok(false),
                        _ => return Err(e),
                    }
                }
            }
        }
    }

    fn try_reap(&mut self) -> io::Result<Option<Exit>> {
        self.waitpid(libc::WNOHANG)
    }

    fn reap(&mut self) -> io::Result<Exit> {
        loop {
            if let Some(exit) = self.waitpid(0)? {
                return Ok(exit);
            }
        }
    }

    fn waitpid(&mut self, flags: libc::c_int) -> io::Result<Option<Exit>> {
        let mut status = 0;
        // SAFETY: `status` is writable; `pid` is our child.
        match unsafe { libc::waitpid(self.pid, &mut status, flags) } {
            0 => Ok(None),
            -1 => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    return Ok(None);
                }
                Err(e)
            }
            _ => {
                self.reaped = true;
                Ok(Some(exit_of(status)))
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: `pid` is our unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.reap();
        }
    }
}

/// A wait status as an [`Exit`].
pub fn exit_of(status: libc::c_int) -> Exit {
    if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_child_writes_and_how_it_ends_come_back() {
        let child = spawn(|out| {
            let _ = send(out, b"hello");
            7
        })
        .unwrap();
        let r = child.wait(Duration::from_secs(10)).unwrap();
        assert_eq!(r.bytes, b"hello");
        assert_eq!(r.exit, Exit::Code(7));
        assert!(!r.timed_out);
    }

    #[test]
    fn a_killed_child_shows_its_signal() {
        let child = spawn(|out| {
            let _ = send(out, b"x");
            // SAFETY: raising a signal in this child alone.
            unsafe { libc::raise(libc::SIGKILL) };
            0
        })
        .unwrap();
        let r = child.wait(Duration::from_secs(10)).unwrap();
        assert_eq!(r.bytes, b"x");
        assert_eq!(r.exit, Exit::Signal(libc::SIGKILL));
    }

    #[test]
    fn a_hung_child_is_killed_at_its_limit() {
        let child = spawn(|_| {
            std::thread::sleep(Duration::from_secs(60));
            0
        })
        .unwrap();
        let r = child.wait(Duration::from_millis(100)).unwrap();
        assert!(r.timed_out);
        assert_eq!(r.exit, Exit::Signal(libc::SIGKILL));
    }
}
