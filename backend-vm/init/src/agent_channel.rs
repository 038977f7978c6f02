//! The agent channel's byte stream as PID 1 sees it: a virtio-serial port
//! named `isola.agent` (QEMU), else a vsock listener on the agent port
//! (isola's monitor), else none. Non-blocking both ways; the host's
//! comings and goings are noticed so that PID 1 never spins on a port
//! nobody holds: while the host is away, the port reports a hang-up
//! whenever it is polled, so PID 1 waits instead for the SIGIO the port
//! sends when the host comes.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use isola_guest_spec::ports::{AGENT_SERIAL_NAME, AGENT_VSOCK_PORT};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// How often a port whose host side is closed is looked at again where
/// its SIGIO cannot be had, and, where it can, in case one was missed.
pub const RECHECK: Duration = Duration::from_millis(200);
pub const RECHECK_WITH_SIGIO: Duration = Duration::from_secs(5);

/// What a read of the channel brought.
pub enum Got {
    Bytes(usize),
    /// Nothing now.
    Nothing,
    /// The host went away: what was said is void.
    HungUp,
}

pub enum Channel {
    /// The port, whether its host side is closed, and the port's SIGIO
    /// (sent when the host comes or goes, or data comes) if it could be
    /// had.
    Serial {
        port: File,
        hung_up: bool,
        sigio: Option<SignalFd>,
    },
    /// The listener, and the host's connection when there is one.
    Vsock {
        listener: OwnedFd,
        conn: Option<File>,
    },
}

impl Channel {
    /// The channel this guest has, if any.
    pub fn open() -> Option<Channel> {
        if let Some(port) = crate::virtio_ports::find(AGENT_SERIAL_NAME, false) {
            let port = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&port)
                .ok()?;
            let hung_up = is_hung_up(&port);
            let sigio = sigio(&port);
            return Some(Channel::Serial {
                port,
                hung_up,
                sigio,
            });
        }
        if has_vsock_device() {
            return vsock_listener().map(|listener| Channel::Vsock {
                listener,
                conn: None,
            });
        }
        None
    }

    /// A host is there to talk to.
    pub fn connected(&self) -> bool {
        match self {
            Channel::Serial { hung_up, .. } => !hung_up,
            Channel::Vsock { conn, .. } => conn.is_some(),
        }
    }

    /// What to poll: the stream (writable too when `writing`), or the
    /// listener; nothing for a port whose host side is closed.
    pub fn poll_fd(&self, writing: bool) -> Option<PollFd<'_>> {
        let events = if writing {
            PollFlags::POLLIN | PollFlags::POLLOUT
        } else {
            PollFlags::POLLIN
        };
        match self {
            Channel::Serial {
                hung_up: true,
                sigio,
                ..
            } => sigio
                .as_ref()
                .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN)),
            Channel::Serial { port, .. } => Some(PollFd::new(port.as_fd(), events)),
            Channel::Vsock { conn: Some(c), .. } => Some(PollFd::new(c.as_fd(), events)),
            Channel::Vsock { listener, .. } => {
                Some(PollFd::new(listener.as_fd(), PollFlags::POLLIN))
            }
        }
    }

    /// How long PID 1 may sleep before [`Channel::recheck`] is due.
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            Channel::Serial {
                hung_up: true,
                sigio,
                ..
            } => Some(if sigio.is_some() {
                RECHECK_WITH_SIGIO
            } else {
                RECHECK
            }),
            _ => None,
        }
    }

    /// A closed port: whether the host has come. True when it has.
    pub fn recheck(&mut self) -> bool {
        match self {
            Channel::Serial {
                port,
                hung_up,
                sigio,
            } if *hung_up => {
                if let Some(s) = sigio {
                    while let Ok(Some(_)) = s.read_signal() {}
                }
                *hung_up = is_hung_up(port);
                !*hung_up
            }
            _ => false,
        }
    }

    /// A listener that is readable, with no connection: the host's.
    /// True when one came. (A second host waits in the backlog until the
    /// first is gone.)
    pub fn accept(&mut self) -> bool {
        let Channel::Vsock { listener, conn } = self else {
            return false;
        };
        // SAFETY: accept4(2) with no address wanted writes nothing of ours.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            return false;
        }
        // SAFETY: accept4 returned a new descriptor that nothing else owns.
        *conn = Some(unsafe { File::from_raw_fd(fd) });
        true
    }

    /// Reads what is there into `buf`.
    pub fn read(&mut self, buf: &mut [u8]) -> Got {
        let stream = match self {
            Channel::Serial { hung_up: true, .. } | Channel::Vsock { conn: None, .. } => {
                return Got::Nothing
            }
            Channel::Serial { port, .. } => port,
            Channel::Vsock { conn: Some(c), .. } => c,
        };
        loop {
            return match stream.read(buf) {
                Ok(0) => {
                    self.hang_up();
                    Got::HungUp
                }
                Ok(n) => Got::Bytes(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Got::Nothing,
                Err(_) => {
                    self.hang_up();
                    Got::HungUp
                }
            };
        }
    }

    /// Writes as much of `out` as goes now and removes it from `out`.
    /// False when the host has gone.
    pub fn write(&mut self, out: &mut Vec<u8>) -> bool {
        let stream = match self {
            Channel::Serial { hung_up: true, .. } | Channel::Vsock { conn: None, .. } => {
                return false
            }
            Channel::Serial { port, .. } => port,
            Channel::Vsock { conn: Some(c), .. } => c,
        };
        while !out.is_empty() {
            match stream.write(out) {
                Ok(0) => break,
                Ok(n) => {
                    out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.hang_up();
                    return false;
                }
            }
        }
        true
    }

    /// Sends `out` whole, waiting at most `limit` for the host to take
    /// it: the last words before the guest ends.
    pub fn flush(&mut self, out: &mut Vec<u8>, limit: Duration) {
        let until = std::time::Instant::now() + limit;
        while !out.is_empty() && self.write(out) && !out.is_empty() {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            let Some(fd) = self.poll_fd(true) else {
                return;
            };
            let ms = PollTimeout::try_from(left.as_millis().min(60_000) as u32)
                .unwrap_or(PollTimeout::MAX);
            let _ = poll(&mut [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)], ms);
        }
    }

    fn hang_up(&mut self) {
        match self {
            Channel::Serial { hung_up, .. } => *hung_up = true,
            Channel::Vsock { conn, .. } => *conn = None,
        }
    }
}

/// The port's SIGIO, through a signalfd of its own: blocked for PID 1
/// (its child unblocks every signal before exec), and never passed on
/// to the workload.
fn sigio(port: &File) -> Option<SignalFd> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGIO);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).ok()?;
    let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok()?;
    // SAFETY: F_SETOWN takes an integer, no pointer.
    if unsafe { libc::fcntl(port.as_raw_fd(), libc::F_SETOWN, libc::getpid()) } < 0 {
        return None;
    }
    let flags = fcntl(port.as_fd(), FcntlArg::F_GETFL).ok()?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_ASYNC;
    fcntl(port.as_fd(), FcntlArg::F_SETFL(flags)).ok()?;
    Some(fd)
}

/// A port reports POLLHUP while its host side is closed.
fn is_hung_up(port: &File) -> bool {
    let mut fds = [PollFd::new(port.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP)),
        Err(_) => true,
    }
}

/// A virtio-vsock device is bound to its driver: without one, a listener
/// would wait for a host that has no way to connect.
fn has_vsock_device() -> bool {
    std::fs::read_dir("/sys/bus/virtio/drivers/vmw_vsock_virtio_transport")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("virtio"))
        })
        .unwrap_or(false)
}

fn vsock_listener() -> Option<OwnedFd> {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe {
        libc::socket(
            libc::AF_VSOCK,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all zeroes is a valid sockaddr_vm; the fields are set below.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    addr.svm_port = AGENT_VSOCK_PORT;
    addr.svm_cid = libc::VMADDR_CID_ANY;
    // SAFETY: bind(2) reads `addr`, of the size given, which outlives it.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_vm).cast(),
            std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
        )
    };
    // SAFETY: listen(2) takes no pointers.
    if bound < 0 || unsafe { libc::listen(fd.as_raw_fd(), 4) } < 0 {
        return None;
    }
    Some(fd)
}
