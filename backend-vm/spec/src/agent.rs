//! The agent protocol: what isola and isola-init say over the guest's
//! agent channel (a vsock connection on isola's monitor, a virtio-serial
//! port under QEMU) to run more processes in a running guest (`isola
//! exec`). One byte stream carries every process's streams, multiplexed
//! by a session id the host picks per process.
//!
//! Each message is one frame: a big-endian u32 length (of what follows,
//! at most [`MAX_FRAME`]), a tag byte, a big-endian u32 session id, then
//! the payload. Both sides start with [`Hello`](HostMessage::Hello), whose
//! layout never changes, so that versions that differ are named, not
//! misread. The host sends [`HostMessage`]s and the guest
//! [`GuestMessage`]s: each side's decoder accepts only what it receives.
//!
//! Flow control: the host has at most one `Stdin` frame per session
//! unanswered; the guest answers it with `StdinWritten` once the process
//! took it, so a process that does not read holds back only its own input.
//! Output flows as the guest reads it and waits while the channel is full.

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks.
pub const VERSION: u32 = 3;

/// The largest frame, header included: far above any message either side
/// sends, small enough that a hostile peer cannot make the other allocate
/// much.
pub const MAX_FRAME: usize = 1 << 20;

/// The most data one `Stdin`, `Stdout` or `Stderr` frame carries.
pub const MAX_DATA: usize = 32 << 10;

/// Length, tag and session.
const HEADER: usize = 4 + 1 + 4;

/// One process started over the channel; picked by the host, unique
/// while the process runs. 0 is the channel itself (its `Hello`) and,
/// in a `Signal`, the guest's workload ([`WORKLOAD`]).
pub type Session = u32;

/// The session a `Signal` for the workload names (`isola stop`, `isola
/// kill`): PID 1 passes it on as it does the control channel's, with the
/// same grace period before SIGKILL.
pub const WORKLOAD: Session = 0;

/// A process to start, as `isola exec` asks for it: what the guest's
/// workload gets from the run spec, chosen per process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    /// argv; `args[0]` is looked up in PATH as for the workload.
    pub args: Vec<String>,
    /// `KEY=VALUE`, in order (later wins); PATH and HOME are added when
    /// missing, as for the workload.
    pub env: Vec<String>,
    /// Absolute working directory; it must exist.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// Its stdin comes in `Stdin` frames (else /dev/null).
    pub stdin: bool,
    /// A terminal of this many rows and columns, which carries stdin,
    /// stdout and stderr (`Stdout` frames only).
    pub tty: Option<[u16; 2]>,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
}

/// host → guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMessage {
    Hello {
        version: u32,
    },
    Exec {
        session: Session,
        exec: Exec,
    },
    Stdin {
        session: Session,
        data: Vec<u8>,
    },
    /// The process's stdin ends (EOF) once what came before is written.
    CloseStdin {
        session: Session,
    },
    Signal {
        session: Session,
        signal: i32,
    },
    Resize {
        session: Session,
        rows: u16,
        cols: u16,
    },
    /// What the guest sees of itself now (`isola stats`); answered with
    /// [`GuestMessage::Stats`] on the same session number.
    Stats {
        session: Session,
    },
}

/// The guest's own view, for `isola stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuestStats {
    /// Processes in the guest (kernel threads not counted).
    pub processes: u64,
    pub mem_total_kib: u64,
    pub mem_available_kib: u64,
}

/// guest → host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestMessage {
    Hello {
        version: u32,
    },
    /// The process runs (its command may still turn out missing: that is
    /// its exit status, 127, with a message on its stderr).
    Started {
        session: Session,
    },
    /// The process could not be started; the sentence says why.
    Refused {
        session: Session,
        message: String,
    },
    Stdout {
        session: Session,
        data: Vec<u8>,
    },
    Stderr {
        session: Session,
        data: Vec<u8>,
    },
    /// The last `Stdin` frame was written to the process (or dropped: it
    /// closed its stdin); the next may come.
    StdinWritten {
        session: Session,
    },
    /// The process ended and all its output has been sent.
    Exited {
        session: Session,
        status: Status,
    },
    Stats {
        session: Session,
        stats: GuestStats,
    },
}

mod tag {
    pub const HELLO: u8 = 1;
    // host → guest
    pub const EXEC: u8 = 2;
    pub const STDIN: u8 = 3;
    pub const CLOSE_STDIN: u8 = 4;
    pub const SIGNAL: u8 = 5;
    pub const RESIZE: u8 = 6;
    pub const STATS_ASKED: u8 = 7;
    // guest → host
    pub const STARTED: u8 = 20;
    pub const REFUSED: u8 = 21;
    pub const STDOUT: u8 = 22;
    pub const STDERR: u8 = 23;
    pub const STDIN_WRITTEN: u8 = 24;
    pub const EXITED: u8 = 25;
    pub const STATS: u8 = 26;
}

/// Why a stream of frames cannot be read on; the channel is then unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of {0} bytes, more than the {MAX_FRAME} allowed")]
    TooLong(usize),
    #[error("a frame of {0} bytes, shorter than its header")]
    TooShort(usize),
    #[error("a frame with the unknown tag {0}")]
    UnknownTag(u8),
    #[error("a malformed {what} message: {why}")]
    Malformed { what: &'static str, why: String },
}

/// The greeting's version differs from ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the guest's isola-init speaks agent protocol version {guest}, this isola speaks version \
     {host}: rebuild the guest's initramfs with the same isola"
)]
pub struct VersionMismatch {
    pub host: u32,
    pub guest: u32,
}

/// Checks the guest's greeting against [`VERSION`].
pub fn check_version(guest: u32) -> Result<(), VersionMismatch> {
    if guest == VERSION {
        Ok(())
    } else {
        Err(VersionMismatch {
            host: VERSION,
            guest,
        })
    }
}

fn frame(out: &mut Vec<u8>, tag: u8, session: Session, payload: &[&[u8]]) {
    let len: usize = 1 + 4 + payload.iter().map(|p| p.len()).sum::<usize>();
    // Senders chunk data by MAX_DATA; the rest is small.
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.push(tag);
    out.extend_from_slice(&session.to_be_bytes());
    for p in payload {
        out.extend_from_slice(p);
    }
}

impl HostMessage {
    /// Appends the message's frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            HostMessage::Hello { version } => frame(out, tag::HELLO, 0, &[&version.to_be_bytes()]),
            HostMessage::Exec { session, exec } => {
                // Plain strings and numbers: serialising cannot fail.
                let json = serde_json::to_vec(exec).unwrap_or_default();
                frame(out, tag::EXEC, *session, &[&json])
            }
            HostMessage::Stdin { session, data } => frame(out, tag::STDIN, *session, &[data]),
            HostMessage::CloseStdin { session } => frame(out, tag::CLOSE_STDIN, *session, &[]),
            HostMessage::Signal { session, signal } => {
                frame(out, tag::SIGNAL, *session, &[&signal.to_be_bytes()])
            }
            HostMessage::Resize {
                session,
                rows,
                cols,
            } => frame(
                out,
                tag::RESIZE,
                *session,
                &[&rows.to_be_bytes(), &cols.to_be_bytes()],
            ),
            HostMessage::Stats { session } => frame(out, tag::STATS_ASKED, *session, &[]),
        }
    }

    pub fn decode(tag: u8, session: Session, payload: &[u8]) -> Result<HostMessage, FrameError> {
        Ok(match tag {
            tag::HELLO => HostMessage::Hello {
                version: u32::from_be_bytes(fixed(payload, "hello")?),
            },
            tag::EXEC => HostMessage::Exec {
                session,
                exec: serde_json::from_slice(payload).map_err(|e| FrameError::Malformed {
                    what: "exec",
                    why: e.to_string(),
                })?,
            },
            tag::STDIN => HostMessage::Stdin {
                session,
                data: payload.to_vec(),
            },
            tag::CLOSE_STDIN => {
                fixed::<0>(payload, "close-stdin")?;
                HostMessage::CloseStdin { session }
            }
            tag::SIGNAL => HostMessage::Signal {
                session,
                signal: i32::from_be_bytes(fixed(payload, "signal")?),
            },
            tag::RESIZE => {
                let [r0, r1, c0, c1] = fixed(payload, "resize")?;
                HostMessage::Resize {
                    session,
                    rows: u16::from_be_bytes([r0, r1]),
                    cols: u16::from_be_bytes([c0, c1]),
                }
            }
            tag::STATS_ASKED => {
                fixed::<0>(payload, "stats request")?;
                HostMessage::Stats { session }
            }
            other => return Err(FrameError::UnknownTag(other)),
        })
    }
}

impl GuestMessage {
    /// Appends the message's frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            GuestMessage::Hello { version } => frame(out, tag::HELLO, 0, &[&version.to_be_bytes()]),
            GuestMessage::Started { session } => frame(out, tag::STARTED, *session, &[]),
            GuestMessage::Refused { session, message } => {
                frame(out, tag::REFUSED, *session, &[message.as_bytes()])
            }
            GuestMessage::Stdout { session, data } => frame(out, tag::STDOUT, *session, &[data]),
            GuestMessage::Stderr { session, data } => frame(out, tag::STDERR, *session, &[data]),
            GuestMessage::StdinWritten { session } => frame(out, tag::STDIN_WRITTEN, *session, &[]),
            GuestMessage::Exited { session, status } => {
                let (kind, n) = match status {
                    Status::Exited(c) => (0u8, *c),
                    Status::Signaled(s) => (1u8, *s),
                };
                frame(out, tag::EXITED, *session, &[&[kind], &n.to_be_bytes()])
            }
            GuestMessage::Stats { session, stats } => frame(
                out,
                tag::STATS,
                *session,
                &[
                    &stats.processes.to_be_bytes(),
                    &stats.mem_total_kib.to_be_bytes(),
                    &stats.mem_available_kib.to_be_bytes(),
                ],
            ),
        }
    }

    pub fn decode(tag: u8, session: Session, payload: &[u8]) -> Result<GuestMessage, FrameError> {
        Ok(match tag {
            tag::HELLO => GuestMessage::Hello {
                version: u32::from_be_bytes(fixed(payload, "hello")?),
            },
            tag::STARTED => {
                fixed::<0>(payload, "started")?;
                GuestMessage::Started { session }
            }
            tag::REFUSED => GuestMessage::Refused {
                session,
                message: String::from_utf8_lossy(payload).into_owned(),
            },
            tag::STDOUT => GuestMessage::Stdout {
                session,
                data: payload.to_vec(),
            },
            tag::STDERR => GuestMessage::Stderr {
                session,
                data: payload.to_vec(),
            },
            tag::STDIN_WRITTEN => {
                fixed::<0>(payload, "stdin-written")?;
                GuestMessage::StdinWritten { session }
            }
            tag::EXITED => {
                let [kind, a, b, c, d] = fixed(payload, "exited")?;
                let n = i32::from_be_bytes([a, b, c, d]);
                let status = match kind {
                    0 => Status::Exited(n),
                    1 => Status::Signaled(n),
                    k => {
                        return Err(FrameError::Malformed {
                            what: "exited",
                            why: format!("unknown kind {k}"),
                        })
                    }
                };
                GuestMessage::Exited { session, status }
            }
            tag::STATS => {
                let b: [u8; 24] = fixed(payload, "stats")?;
                let n = |i: usize| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&b[i * 8..i * 8 + 8]);
                    u64::from_be_bytes(w)
                };
                GuestMessage::Stats {
                    session,
                    stats: GuestStats {
                        processes: n(0),
                        mem_total_kib: n(1),
                        mem_available_kib: n(2),
                    },
                }
            }
            other => return Err(FrameError::UnknownTag(other)),
        })
    }
}

fn fixed<const N: usize>(payload: &[u8], what: &'static str) -> Result<[u8; N], FrameError> {
    payload.try_into().map_err(|_| FrameError::Malformed {
        what,
        why: format!("{} bytes instead of {N}", payload.len()),
    })
}

/// Cuts a byte stream into frames, a read at a time. It holds at most one
/// frame and a read's worth of bytes: a length above [`MAX_FRAME`] is
/// refused before anything is allocated for it.
#[derive(Debug, Default)]
pub struct Reader {
    buf: Vec<u8>,
    /// Where the unread bytes of `buf` begin.
    at: usize,
}

/// One frame's parts, borrowed from the reader.
pub struct Frame<'a> {
    pub tag: u8,
    pub session: Session,
    pub payload: &'a [u8],
}

impl Reader {
    /// Takes bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        // What was returned goes first, so the buffer holds only what is
        // unread: at most a frame in progress and this read.
        self.buf.drain(..self.at);
        self.at = 0;
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that are not part of a frame returned yet.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.at
    }

    /// The next whole frame, if one has come. An error means the stream
    /// is corrupt (or hostile) and cannot be read on.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        let rest = &self.buf[self.at..];
        let Some(len) = rest.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len + 4 > MAX_FRAME {
            return Err(FrameError::TooLong(len + 4));
        }
        if len < HEADER - 4 {
            return Err(FrameError::TooShort(len + 4));
        }
        if rest.len() < 4 + len {
            return Ok(None);
        }
        let start = self.at;
        self.at += 4 + len;
        let f = &self.buf[start + 4..start + 4 + len];
        Ok(Some(Frame {
            tag: f[0],
            session: u32::from_be_bytes([f[1], f[2], f[3], f[4]]),
            payload: &f[5..],
        }))
    }

    /// The next host message, for the guest.
    pub fn next_host(&mut self) -> Result<Option<HostMessage>, FrameError> {
        match self.next_frame()? {
            None => Ok(None),
            Some(f) => HostMessage::decode(f.tag, f.session, f.payload).map(Some),
        }
    }

    /// The next guest message, for the host.
    pub fn next_guest(&mut self) -> Result<Option<GuestMessage>, FrameError> {
        match self.next_frame()? {
            None => Ok(None),
            Some(f) => GuestMessage::decode(f.tag, f.session, f.payload).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exec() -> Exec {
        Exec {
            args: vec!["sh".into(), "-c".into(), "echo \"hi\"".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 1000,
            gid: 100,
            groups: vec![10, 20],
            stdin: true,
            tty: Some([24, 80]),
        }
    }

    fn host_messages() -> Vec<HostMessage> {
        vec![
            HostMessage::Hello { version: VERSION },
            HostMessage::Exec {
                session: 7,
                exec: exec(),
            },
            HostMessage::Stdin {
                session: 7,
                data: vec![0, 1, 255],
            },
            HostMessage::Stdin {
                session: 7,
                data: Vec::new(),
            },
            HostMessage::CloseStdin { session: 7 },
            HostMessage::Signal {
                session: 7,
                signal: 15,
            },
            HostMessage::Resize {
                session: 7,
                rows: 40,
                cols: 300,
            },
            HostMessage::Stats { session: 8 },
        ]
    }

    fn guest_messages() -> Vec<GuestMessage> {
        vec![
            GuestMessage::Hello { version: 9 },
            GuestMessage::Started { session: 1 },
            GuestMessage::Refused {
                session: 1,
                message: "no such directory".into(),
            },
            GuestMessage::Stdout {
                session: 1,
                data: b"out".to_vec(),
            },
            GuestMessage::Stderr {
                session: u32::MAX,
                data: b"err".to_vec(),
            },
            GuestMessage::StdinWritten { session: 1 },
            GuestMessage::Exited {
                session: 1,
                status: Status::Exited(-1),
            },
            GuestMessage::Exited {
                session: 1,
                status: Status::Signaled(9),
            },
            GuestMessage::Stats {
                session: 8,
                stats: GuestStats {
                    processes: 3,
                    mem_total_kib: u64::MAX,
                    mem_available_kib: 1,
                },
            },
        ]
    }

    #[test]
    fn every_message_round_trips_across_reads_of_any_size() {
        let mut bytes = Vec::new();
        for m in host_messages() {
            m.encode(&mut bytes);
        }
        for chunk in [1, 3, 1000] {
            let mut r = Reader::default();
            let mut got = Vec::new();
            for c in bytes.chunks(chunk) {
                r.push(c);
                while let Some(m) = r.next_host().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, host_messages());
            assert_eq!(r.pending(), 0);
        }
        let mut bytes = Vec::new();
        for m in guest_messages() {
            m.encode(&mut bytes);
        }
        let mut r = Reader::default();
        r.push(&bytes);
        let mut got = Vec::new();
        while let Some(m) = r.next_guest().unwrap() {
            got.push(m);
        }
        assert_eq!(got, guest_messages());
    }

    #[test]
    fn each_side_refuses_the_other_sides_messages_and_bad_frames() {
        let mut bytes = Vec::new();
        GuestMessage::Started { session: 1 }.encode(&mut bytes);
        let mut r = Reader::default();
        r.push(&bytes);
        assert_eq!(r.next_host().err(), Some(FrameError::UnknownTag(20)));
        let mut r = Reader::default();
        r.push(&(MAX_FRAME as u32).to_be_bytes());
        assert!(matches!(r.next_guest(), Err(FrameError::TooLong(_))));
        let mut r = Reader::default();
        r.push(&[0, 0, 0, 2, 1, 0]);
        assert!(matches!(r.next_guest(), Err(FrameError::TooShort(6))));
        // A hello of the wrong size is no hello.
        let mut r = Reader::default();
        r.push(&[0, 0, 0, 6, 1, 0, 0, 0, 0, 7]);
        assert!(matches!(
            r.next_guest(),
            Err(FrameError::Malformed { what: "hello", .. })
        ));
    }

    #[test]
    fn a_version_mismatch_names_both_versions() {
        assert!(check_version(VERSION).is_ok());
        let e = check_version(VERSION + 1).unwrap_err().to_string();
        assert!(e.contains(&format!("version {}", VERSION + 1)), "{e}");
        assert!(e.contains(&format!("version {VERSION}")), "{e}");
    }

    #[test]
    fn the_hello_frame_is_fixed_forever() {
        let mut bytes = Vec::new();
        HostMessage::Hello { version: 1 }.encode(&mut bytes);
        assert_eq!(bytes, [0, 0, 0, 9, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_the_decoders(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)
        ) {
            for guest in [false, true] {
                let mut r = Reader::default();
                'chunks: for c in &chunks {
                    r.push(c);
                    loop {
                        let next = if guest {
                            r.next_guest().map(|m| m.is_some())
                        } else {
                            r.next_host().map(|m| m.is_some())
                        };
                        match next {
                            Ok(true) => {}
                            Ok(false) => break,
                            Err(_) => break 'chunks,
                        }
                    }
                    prop_assert!(r.pending() <= MAX_FRAME + c.len());
                }
            }
        }

        /// Well-formed lengths with any tag and payload, so that the
        /// messages' own parsers are reached, not only the length check.
        #[test]
        fn random_frames_never_panic_the_decoders(
            frames in proptest::collection::vec((any::<u8>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..48)), 0..8)
        ) {
            let mut bytes = Vec::new();
            for (t, session, payload) in &frames {
                frame(&mut bytes, *t % 32, *session, &[payload]);
            }
            for guest in [false, true] {
                let mut r = Reader::default();
                r.push(&bytes);
                for _ in 0..frames.len() {
                    let next = if guest {
                        r.next_guest().map(|_| ())
                    } else {
                        r.next_host().map(|_| ())
                    };
                    if next.is_err() {
                        break;
                    }
                }
            }
        }

        #[test]
        fn data_round_trips(session in any::<u32>(), data in proptest::collection::vec(any::<u8>(), 0..MAX_DATA), split in 0usize..64) {
            let m = GuestMessage::Stdout { session, data };
            let mut bytes = Vec::new();
            m.encode(&mut bytes);
            let at = split.min(bytes.len());
            let mut r = Reader::default();
            r.push(&bytes[..at]);
            let first = r.next_guest().unwrap();
            r.push(&bytes[at..]);
            let got = match first {
                Some(g) => g,
                None => r.next_guest().unwrap().unwrap(),
            };
            prop_assert_eq!(got, m);
        }

        #[test]
        fn exec_requests_round_trip(args in proptest::collection::vec(".*", 1..4), uid in any::<u32>(), tty in any::<Option<[u16; 2]>>()) {
            let m = HostMessage::Exec { session: 3, exec: Exec { args, uid, tty, ..exec() } };
            let mut bytes = Vec::new();
            m.encode(&mut bytes);
            let mut r = Reader::default();
            r.push(&bytes);
            prop_assert_eq!(r.next_host().unwrap(), Some(m));
        }
    }
}
