//! The messages between isola and the container's first process while it
//! is set up, over a SOCK_SEQPACKET pair (one datagram a message, file
//! descriptors alongside). isola orders the child to join its cgroup and,
//! later, to start; the child reports its terminal, that it is ready (parked
//! just before exec), or what failed. Its end closes at exec, so an end of
//! stream after `Start` means the workload runs.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

use crate::fail::Fail;
use crate::network::Eth0;

/// What the child tells isola.
#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    /// With `-t`: the pty's master end comes with this message.
    Terminal,
    /// Set up, in its cgroup, confined; waiting for [`Order::Start`].
    Ready,
    /// isola-runtime's init: its mounts are made and it has not pivoted
    /// yet, the moment config.json's createRuntime and createContainer
    /// hooks run; it waits for [`Order::Start`] to go on.
    Mounted,
    /// A set-up step failed; the child exits.
    SetupFailed(Fail),
    /// execve failed: the exit code shells use (126, 127) and why.
    ExecFailed { code: i32, message: String },
}

/// What isola tells the child.
#[derive(Debug, PartialEq, Eq)]
pub enum Order {
    /// Join the cgroup: write "0" to each file that comes with this
    /// message (none when isola moved the child itself); and, on a bridge
    /// network, set eth0 so and bind the name files in.
    Join(Option<Eth0>),
    /// Exec the workload.
    Start,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("the channel to the sandbox's first process failed")]
    Io(#[source] Errno),
    #[error("a malformed message came from the sandbox's first process ({0} bytes)")]
    Malformed(usize),
    #[error("the sandbox's first process sent {0} out of turn")]
    Unexpected(String),
    #[error("the sandbox's first process ended before it was ready")]
    Closed,
}

/// The largest message: set-up sentences are short; longer ones are cut.
const MAX: usize = 4096;
/// The most descriptors one message carries (a v1 cgroup's files, one
/// per hierarchy).
const MAX_FDS: usize = 16;

const TERMINAL: u8 = b't';
const READY: u8 = b'r';
const MOUNTED: u8 = b'm';
const SETUP_FAILED: u8 = b's';
const EXEC_FAILED: u8 = b'e';
const JOIN: u8 = b'j';
const START: u8 = b'g';

/// A message's bytes and the descriptors that came with it.
type Received = (Vec<u8>, Vec<OwnedFd>);

/// One end of the channel.
#[derive(Debug)]
pub struct Channel(OwnedFd);

/// A connected pair: isola's end and the child's (both close-on-exec).
pub fn pair() -> Result<(Channel, Channel), MessageError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(MessageError::Io)?;
    Ok((Channel(a), Channel(b)))
}

impl Report {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Report::Terminal => out.push(TERMINAL),
            Report::Ready => out.push(READY),
            Report::Mounted => out.push(MOUNTED),
            Report::SetupFailed(fail) => {
                out.push(SETUP_FAILED);
                out.extend(fail.errno().map_or(0, |e| e as i32).to_le_bytes());
                out.extend(fail.step.as_bytes());
            }
            Report::ExecFailed { code, message } => {
                out.push(EXEC_FAILED);
                out.extend(code.to_le_bytes());
                out.extend(message.as_bytes());
            }
        }
        cut(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Report, MessageError> {
        let malformed = || MessageError::Malformed(bytes.len());
        let (&tag, rest) = bytes.split_first().ok_or_else(malformed)?;
        let number_and_text = || -> Result<(i32, String), MessageError> {
            let (n, text) = rest.split_first_chunk::<4>().ok_or_else(malformed)?;
            Ok((
                i32::from_le_bytes(*n),
                String::from_utf8_lossy(text).into_owned(),
            ))
        };
        match tag {
            TERMINAL if rest.is_empty() => Ok(Report::Terminal),
            READY if rest.is_empty() => Ok(Report::Ready),
            MOUNTED if rest.is_empty() => Ok(Report::Mounted),
            SETUP_FAILED => {
                let (errno, step) = number_and_text()?;
                Ok(Report::SetupFailed(if errno == 0 {
                    Fail::msg(step)
                } else {
                    Fail::sys(step, Errno::from_raw(errno))
                }))
            }
            EXEC_FAILED => {
                let (code, message) = number_and_text()?;
                Ok(Report::ExecFailed { code, message })
            }
            _ => Err(malformed()),
        }
    }
}

impl Order {
    fn encode(&self) -> Vec<u8> {
        match self {
            Order::Join(None) => vec![JOIN],
            Order::Join(Some(eth0)) => std::iter::once(JOIN).chain(eth0.to_bytes()).collect(),
            Order::Start => vec![START],
        }
    }

    fn decode(bytes: &[u8]) -> Result<Order, MessageError> {
        match bytes {
            [JOIN] => Ok(Order::Join(None)),
            [JOIN, rest @ ..] => match <&[u8; Eth0::LEN]>::try_from(rest) {
                Ok(eth0) => Ok(Order::Join(Some(Eth0::from_bytes(eth0)))),
                Err(_) => Err(MessageError::Malformed(bytes.len())),
            },
            [START] => Ok(Order::Start),
            _ => Err(MessageError::Malformed(bytes.len())),
        }
    }
}

/// A message cut to [`MAX`] bytes, on a character boundary.
fn cut(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() > MAX {
        let mut end = MAX;
        while end > 5 && (bytes[end] & 0xc0) == 0x80 {
            end -= 1;
        }
        bytes.truncate(end);
    }
    bytes
}

impl Channel {
    pub fn report(&self, report: &Report, fds: &[RawFd]) -> Result<(), MessageError> {
        self.send(&report.encode(), fds)
    }

    pub fn order(&self, order: &Order, fds: &[RawFd]) -> Result<(), MessageError> {
        self.send(&order.encode(), fds)
    }

    /// The next report and the descriptors that came with it; `None` when
    /// the child's end closed (it exec'd, or died).
    pub fn next_report(&self) -> Result<Option<(Report, Vec<OwnedFd>)>, MessageError> {
        match self.recv()? {
            None => Ok(None),
            Some((bytes, fds)) => Ok(Some((Report::decode(&bytes)?, fds))),
        }
    }

    /// The next order; `None` when isola's end closed (isola is gone).
    pub fn next_order(&self) -> Result<Option<(Order, Vec<OwnedFd>)>, MessageError> {
        match self.recv()? {
            None => Ok(None),
            Some((bytes, fds)) => Ok(Some((Order::decode(&bytes)?, fds))),
        }
    }

    fn send(&self, bytes: &[u8], fds: &[RawFd]) -> Result<(), MessageError> {
        let iov = [IoSlice::new(bytes)];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
        // MSG_NOSIGNAL: a child that already died must not kill isola with SIGPIPE.
        loop {
            match sendmsg::<()>(
                self.0.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(MessageError::Io(e)),
                Ok(_) => return Ok(()),
            }
        }
    }

    fn recv(&self) -> Result<Option<Received>, MessageError> {
        let mut buf = vec![0u8; MAX];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                // ECONNRESET: the peer closed with our last message unread;
                // what it sent before is still queued, and the error is
                // reported (and cleared) ahead of it.
                Err(Errno::EINTR | Errno::ECONNRESET) => continue,
                Err(e) => return Err(MessageError::Io(e)),
                Ok(msg) => msg,
            };
            let mut fds = Vec::new();
            for c in msg.cmsgs().map_err(MessageError::Io)? {
                if let ControlMessageOwned::ScmRights(received) = c {
                    // SAFETY: the kernel just installed these fds in our
                    // table for us; nothing else owns them.
                    fds.extend(
                        received
                            .iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) }),
                    );
                }
            }
            let len = msg.bytes;
            if len == 0 && fds.is_empty() {
                return Ok(None);
            }
            buf.truncate(len);
            return Ok(Some((buf, fds)));
        }
    }
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reports_and_orders_round_trip_with_their_descriptors() {
        let (isola, child) = pair().unwrap();
        let reports = [
            Report::Terminal,
            Report::Ready,
            Report::SetupFailed(Fail::sys("mounting proc on /proc", Errno::EPERM)),
            Report::SetupFailed(Fail::msg("isola is gone")),
            Report::ExecFailed {
                code: 127,
                message: "nope: executable file not found".into(),
            },
        ];
        for r in &reports {
            child.report(r, &[]).unwrap();
            let (got, fds) = isola.next_report().unwrap().unwrap();
            assert_eq!(&got, r);
            assert!(fds.is_empty());
        }
        let devnull = std::fs::File::open("/dev/null").unwrap();
        isola
            .order(&Order::Join(None), &[devnull.as_raw_fd(); 3])
            .unwrap();
        let (order, fds) = child.next_order().unwrap().unwrap();
        assert_eq!((order, fds.len()), (Order::Join(None), 3));
        let eth0 = Eth0 {
            ip: [10, 89, 0, 7].into(),
            prefix: 24,
            gateway: [10, 89, 0, 1].into(),
            mtu: 1400,
        };
        isola.order(&Order::Join(Some(eth0)), &[]).unwrap();
        assert_eq!(
            child.next_order().unwrap().unwrap().0,
            Order::Join(Some(eth0))
        );
        isola.order(&Order::Start, &[]).unwrap();
        assert_eq!(child.next_order().unwrap().unwrap().0, Order::Start);
        drop(child);
        assert!(isola.next_report().unwrap().is_none());
    }

    #[test]
    fn a_report_sent_before_the_peer_closed_on_an_unread_order_still_arrives() {
        let (isola, child) = pair().unwrap();
        child
            .report(&Report::SetupFailed(Fail::msg("early")), &[])
            .unwrap();
        isola.order(&Order::Join(None), &[]).unwrap();
        drop(child);
        let (got, _) = isola.next_report().unwrap().unwrap();
        assert_eq!(got, Report::SetupFailed(Fail::msg("early")));
        assert!(isola.next_report().unwrap().is_none());
    }

    #[test]
    fn long_sentences_are_cut_on_a_character_boundary() {
        let message = "é".repeat(MAX);
        let bytes = Report::ExecFailed { code: 1, message }.encode();
        assert!(bytes.len() <= MAX);
        match Report::decode(&bytes).unwrap() {
            Report::ExecFailed { message, .. } => assert!(!message.contains('\u{fffd}')),
            other => panic!("{other:?}"),
        }
    }

    proptest! {
        /// Whatever bytes arrive, decoding says what they are or refuses
        /// them; it never panics.
        #[test]
        fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Report::decode(&bytes);
            let _ = Order::decode(&bytes);
        }

        #[test]
        fn any_failure_round_trips(
            errno in proptest::sample::select(vec![None, Some(Errno::EPERM), Some(Errno::ENOENT), Some(Errno::EBUSY)]),
            step in "[ -~]{0,80}",
        ) {
            let fail = match errno { None => Fail::msg(step), Some(e) => Fail::sys(step, e) };
            let r = Report::SetupFailed(fail);
            prop_assert_eq!(Report::decode(&r.encode()).unwrap(), r);
        }
    }
}
