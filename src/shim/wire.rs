//! The shim's control protocol: one JSON message per SEQPACKET datagram on
//! `instances/<id>/shim.sock`, descriptors beside it (SCM_RIGHTS): an
//! attaching CLI's pipes, an exec'd process's stdio, its pidfd and pty.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};

/// The largest message either side sends (an exec's arguments and
/// environment fit many times over).
pub const MAX: usize = 64 * 1024;
const MAX_FDS: usize = 4;

/// What a CLI asks of the shim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Let a created sandbox's workload run.
    Start,
    /// Copy the workload's output into the descriptors that come with it
    /// (stdout's and stderr's pipes; with `stdin`, a third to read input
    /// from) until the sandbox ends or the connection closes.
    Attach {
        stdin: bool,
    },
    /// The attached terminal's new size.
    Resize {
        rows: u16,
        cols: u16,
    },
    /// A process in the sandbox, on the three descriptors that come with it
    /// (none with `tty`: its terminal's master end comes back).
    Exec(ExecRequest),
    Signal {
        signal: i32,
    },
    /// A signal for the process this connection exec'd, where its handle
    /// is no pidfd (a VM's process lives in the guest); not answered.
    SignalExec {
        signal: i32,
    },
    /// SIGTERM, then SIGKILL after `timeout` seconds; answered at the end.
    Stop {
        timeout: u64,
    },
    /// Answered with the exit when the sandbox ends.
    Wait,
    /// Tear the sandbox down now, whatever its phase, and end the shim
    /// (`rm -f`).
    End,
    Stats,
    Top,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub args: Vec<String>,
    /// `KEY=VALUE` added to the sandbox's own environment.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    pub stdin: bool,
    pub privileged: bool,
}

/// What the shim answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok,
    /// One sentence for the user.
    Error {
        message: String,
    },
    /// The exec'd process runs; its pidfd (and master end) come with it.
    Started,
    /// The sandbox's workload, or an exec'd process, ended with `code`
    /// (docker's: 128+N for signal N).
    Exited {
        code: i32,
        oom_killed: bool,
    },
    Stats(Usage),
    Pids {
        pids: Vec<i32>,
    },
}

/// A running sandbox's use, as `isola stats` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_usec: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit: Option<u64>,
    pub pids: Option<u64>,
    #[serde(default)]
    pub block_read: Option<u64>,
    #[serde(default)]
    pub block_written: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the control socket: {0}")]
    Io(#[from] Errno),
    #[error("a malformed message on the control socket: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("a message of {0} bytes, more than the control socket carries")]
    TooLong(usize),
    #[error("listening on {}: {source}", path.display())]
    Listen { path: PathBuf, source: Errno },
}

/// A control socket listening at `path`, mode 0600 (in a 0700 directory).
pub fn listen(path: &Path) -> Result<OwnedFd, WireError> {
    use nix::sys::socket::{bind, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    let failed = |source| WireError::Listen {
        path: path.to_path_buf(),
        source,
    };
    let _ = std::fs::remove_file(path);
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(failed)?;
    let addr = UnixAddr::new(path).map_err(failed)?;
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = bind(fd.as_raw_fd(), &addr);
    nix::sys::stat::umask(old);
    bound.map_err(failed)?;
    nix::sys::socket::listen(&fd, Backlog::new(64).unwrap_or(Backlog::MAXCONN)).map_err(failed)?;
    Ok(fd)
}

pub fn send<T: Serialize>(socket: RawFd, message: &T, fds: &[RawFd]) -> Result<(), WireError> {
    let bytes = serde_json::to_vec(message)?;
    if bytes.len() > MAX {
        return Err(WireError::TooLong(bytes.len()));
    }
    let iov = [IoSlice::new(&bytes)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    loop {
        // MSG_NOSIGNAL: a peer that went away must not kill us with SIGPIPE.
        match sendmsg::<()>(socket, &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(()),
        }
    }
}

/// The next message and its descriptors; `None` when the peer closed.
pub fn recv<T: for<'de> Deserialize<'de>>(
    socket: RawFd,
) -> Result<Option<(T, Vec<OwnedFd>)>, WireError> {
    // Sized to the datagram (MSG_PEEK|MSG_TRUNC says how long it is): a
    // long-lived shim should not touch 64 KiB of heap for every request.
    let mut buf = vec![0u8; pending_len(socket)?.clamp(1, MAX)];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (len, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            socket,
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            Err(Errno::ECONNRESET) => return Ok(None),
            Err(e) => return Err(e.into()),
            Ok(msg) => msg,
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(received) = c {
                // SAFETY: the kernel just installed these descriptors in
                // our table for us; nothing else owns them.
                fds.extend(
                    received
                        .iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) }),
                );
            }
        }
        break (msg.bytes, fds);
    };
    if len == 0 {
        return Ok(None);
    }
    Ok(Some((decode(&buf[..len])?, fds)))
}

/// The length of the next datagram, without taking it; 0 at the peer's end.
fn pending_len(socket: RawFd) -> Result<usize, WireError> {
    loop {
        // SAFETY: a zero-length read into no buffer; MSG_TRUNC makes the
        // kernel return the datagram's real length.
        let n = unsafe {
            nix::libc::recv(
                socket,
                std::ptr::null_mut(),
                0,
                nix::libc::MSG_PEEK | nix::libc::MSG_TRUNC,
            )
        };
        match Errno::result(n) {
            Ok(n) => return Ok(n as usize),
            Err(Errno::EINTR) => continue,
            Err(Errno::ECONNRESET) => return Ok(0),
            Err(e) => return Err(e.into()),
        }
    }
}

/// A message from its bytes: whatever the peer sent, an error at worst.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, WireError> {
    Ok(serde_json::from_slice(bytes)?)
}

/// Whether `socket`'s peer is root or our own user: the socket's mode
/// already says so, and this says it again for a socket passed around.
pub fn peer_allowed(socket: &impl AsRawFd) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    // SAFETY: the descriptor outlives this call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    match getsockopt(&fd, PeerCredentials) {
        Ok(cred) => cred.uid() == 0 || cred.uid() == nix::unistd::geteuid().as_raw(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn messages_round_trip_with_descriptors() {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let exec = Request::Exec(ExecRequest {
            args: vec!["sh".into(), "-c".into(), "echo ünïcode".into()],
            env: vec!["A=1".into()],
            user: Some("1000:1000".into()),
            workdir: None,
            tty: false,
            stdin: true,
            privileged: false,
        });
        let null = std::fs::File::open("/dev/null").unwrap();
        send(a.as_raw_fd(), &exec, &[null.as_raw_fd()]).unwrap();
        let (got, fds) = recv::<Request>(b.as_raw_fd()).unwrap().unwrap();
        assert_eq!(got, exec);
        assert_eq!(fds.len(), 1);
        assert!(peer_allowed(&b));
        drop(a);
        assert!(recv::<Request>(b.as_raw_fd()).unwrap().is_none());
    }

    proptest! {
        #[test]
        fn any_bytes_decode_to_a_message_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<Request>(&bytes);
            let _ = decode::<Response>(&bytes);
        }

        #[test]
        fn any_signal_request_round_trips(signal in any::<i32>(), timeout in any::<u64>()) {
            for r in [Request::Signal { signal }, Request::Stop { timeout }] {
                let bytes = serde_json::to_vec(&r).unwrap();
                prop_assert_eq!(decode::<Request>(&bytes).unwrap(), r);
            }
        }
    }
}
