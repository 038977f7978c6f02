//! The guest's UARTs under QEMU: FIFO pairs isola relays, so that it can do
//! what a plain stdio chardev cannot. COM1 out goes to our stdout, and our
//! stdin goes in only once isola-init says the workload started (before
//! that the guest's tty would echo it, and the UART's small FIFO drop it).
//! COM2 out goes to our stderr, minus isola-init's records; into COM2 goes
//! isola-init's control channel (see `crate::control`), held until
//! isola-init reads it: it is parked, or the workload runs. The relay also
//! kills QEMU when the deadline passes.
//!
//! Records (asked for with `isola.status=com2` on the kernel command line):
//! `ESC _ isola-init ESC \` once isola-init runs (until then COM2 carries
//! the kernel's console, held back: see `console_tail`), `ESC _
//! isola-parked ESC \` when it waits for the go-ahead (only if asked to),
//! `ESC _ isola-started ESC \` when the workload starts, and `ESC _
//! isola-exit N ESC \` at the end, since QEMU's exit code keeps only 7 bits of the
//! status.
//!
//! With `stdio_ports`, the workload's stdout and stderr come on two
//! virtio-serial ports' FIFOs instead, relayed to our stdout and stderr
//! as they are (no records travel there), in larger reads. isola-init ends
//! each with the run's end marker (`GuestSpec::stdio_end`): the relay holds
//! back as many bytes as the marker has, drops the marker when a port's
//! stream ends with it, and once both have, answers `STDIO_DRAINED` on
//! COM2, so that isola-init reports the status only when QEMU holds none
//! of the output any more.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use isola_guest_spec::ports::Mark;
use isola_guest_spec::wire;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{Input, QemuError, Running};
use crate::console_tail::Tail;
use crate::deadline::Deadline;

const RECORD: &[u8] = wire::RECORD_START.as_bytes();
const END: &[u8] = wire::RECORD_END.as_bytes();

/// A FIFO pair QEMU's `-chardev pipe,path=DIR/NAME` opens: NAME.in and
/// NAME.out in the run's FIFO directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fifo {
    Com1,
    Com2,
    /// The virtio-serial port of the workload's stdout.
    Stdout,
    Stderr,
}

impl Fifo {
    pub fn name(self) -> &'static str {
        match self {
            Fifo::Com1 => "com1",
            Fifo::Com2 => "com2",
            Fifo::Stdout => "stdout",
            Fifo::Stderr => "stderr",
        }
    }
}

/// A pipe's capacity for the stdio ports' FIFOs: the most an unprivileged
/// process may ask for by default. QEMU stops taking a port's buffers
/// (and the guest's writes wait) while its FIFO is full.
const PORT_FIFO_BYTES: libc::c_int = 1 << 20;

/// Make the FIFOs of COM1 and COM2 in `dir`, and of the stdio ports when
/// the guest has them.
pub fn make_fifos(dir: &Path, stdio_ports: bool) -> Result<(), QemuError> {
    let mut pairs = vec![Fifo::Com1, Fifo::Com2];
    if stdio_ports {
        pairs.extend([Fifo::Stdout, Fifo::Stderr]);
    }
    for pair in pairs {
        let base = dir.join(pair.name());
        for end in ["in", "out"] {
            let path = base.with_extension(end);
            nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(
                |source| QemuError::MakeFifo {
                    path: path.clone(),
                    source,
                },
            )?;
        }
    }
    Ok(())
}

/// Relays both UARTs until `finish`.
pub struct Relay {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Relayed>,
}

/// What the relay learnt from COM2.
#[derive(Debug, Default)]
pub struct Relayed {
    /// The status from isola-init's exit record, if one came.
    pub status: Option<u8>,
    /// The console's last lines, if isola-init never said it runs.
    pub console: Option<String>,
    /// When isola-init's records came (the boot-timer marks of isola's own
    /// monitor).
    pub marks: Vec<(Mark, Instant)>,
}

/// What the relay reads and acts on besides the UARTs.
pub struct RelayEnds {
    pub stdin: Input,
    /// Hold COM2 back until isola-init's first record.
    pub hold_console: bool,
    /// isola-init's control channel (see `crate::control`).
    pub control: File,
    /// When QEMU is to be killed if it has not ended.
    pub deadline: Deadline,
    /// QEMU, not reaped before the relay is finished.
    pub qemu: Pid,
    /// Told when isola-init is parked.
    pub running: Running,
    /// The marker that ends each stdio port's stream.
    pub stdio_end: Option<Vec<u8>>,
}

/// A stdio port's FIFO and the bytes held back in case they are the end
/// marker.
struct Port {
    out: File,
    /// Held open so that QEMU's open of it never waits.
    _in: File,
    held: Vec<u8>,
}

struct Ends {
    /// The stdio ports' FIFOs, when the guest has them.
    stdout_port: Option<Port>,
    stderr_port: Option<Port>,
    stdio_end: Option<Vec<u8>>,
    com1_out: File,
    com1_in: File,
    com2_out: File,
    com2_in: File,
    /// `None` once isola has closed its end.
    control: Option<File>,
    stdin: Input,
    hold_console: bool,
    deadline: Deadline,
    qemu: Pid,
    running: Running,
}

impl Relay {
    pub fn start(dir: &Path, stdio_ports: bool, rest: RelayEnds) -> Result<Relay, QemuError> {
        // Read-write, non-blocking: opening never waits for QEMU, and a read
        // end never sees EOF while we hold it; `stop` ends the loop.
        let open = |pair: Fifo, end: &str| {
            let path = dir.join(pair.name()).with_extension(end);
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&path)
                .map_err(|source| QemuError::OpenFifo { path, source })
        };
        let port = |pair: Fifo| -> Result<Option<Port>, QemuError> {
            if !stdio_ports {
                return Ok(None);
            }
            let out = open(pair, "out")?;
            // A larger pipe lets QEMU run further ahead of the relay;
            // refused, the default one does.
            // SAFETY: F_SETPIPE_SZ takes an integer, no pointer.
            let _ = unsafe { libc::fcntl(out.as_raw_fd(), libc::F_SETPIPE_SZ, PORT_FIFO_BYTES) };
            Ok(Some(Port {
                out,
                _in: open(pair, "in")?,
                held: Vec::new(),
            }))
        };
        // Polled with the UARTs, read as it fills.
        fcntl(&rest.control, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(|e| QemuError::Control(e.into()))?;
        let ends = Ends {
            stdout_port: port(Fifo::Stdout)?,
            stderr_port: port(Fifo::Stderr)?,
            com1_out: open(Fifo::Com1, "out")?,
            com1_in: open(Fifo::Com1, "in")?,
            com2_out: open(Fifo::Com2, "out")?,
            com2_in: open(Fifo::Com2, "in")?,
            control: Some(rest.control),
            stdin: rest.stdin,
            hold_console: rest.hold_console,
            deadline: rest.deadline,
            qemu: rest.qemu,
            running: rest.running,
            stdio_end: rest.stdio_end,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("isola-serial".into())
            .spawn(move || relay(ends, &flag))
            .map_err(QemuError::RelayThread)?;
        Ok(Relay { stop, thread })
    }

    pub fn finish(self) -> Relayed {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_default()
    }
}

fn relay(mut e: Ends, stop: &AtomicBool) -> Relayed {
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    // Where COM2's text goes: the held console, until isola-init runs.
    let mut console = e.hold_console.then(Tail::default);
    let mut to_stderr = |console: &mut Option<Tail>, bytes: &[u8]| match console {
        Some(tail) => tail.push(bytes),
        None => {
            let _ = stderr.write_all(bytes);
        }
    };
    let stdin_fd = std::io::stdin();
    let mut stdin_open = e.stdin != Input::None;
    let framed = e.stdin == Input::Pipe;
    let mut started = false;
    // isola-init reads COM2: it is parked, or the workload runs.
    let mut control_open = false;
    let mut killed = false;
    // The control channel's bytes, held until isola-init reads them:
    // before, they would be lost.
    let mut control_bytes: Vec<u8> = Vec::new();
    let mut status = None;
    let mut marks = Vec::new();
    let mut held: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    // The stdio ports' bytes pass through as they are, in large reads.
    let mut port_buf = vec![0u8; 256 << 10];
    let mut stderr_port = std::io::stderr();
    // STDIO_DRAINED was sent.
    let mut drained = false;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut feed = stdin_open && started;
        {
            let mut fds = vec![
                PollFd::new(e.com1_out.as_fd(), PollFlags::POLLIN),
                PollFd::new(e.com2_out.as_fd(), PollFlags::POLLIN),
            ];
            for port in [&e.stdout_port, &e.stderr_port].into_iter().flatten() {
                fds.push(PollFd::new(port.out.as_fd(), PollFlags::POLLIN));
            }
            if let Some(control) = &e.control {
                fds.push(PollFd::new(control.as_fd(), PollFlags::POLLIN));
            }
            let stdin_at = fds.len();
            if feed {
                // SAFETY: fd 0 stays open for the life of the process.
                let fd0 = unsafe { BorrowedFd::borrow_raw(0) };
                fds.push(PollFd::new(fd0, PollFlags::POLLIN));
            }
            let _ = poll(
                &mut fds,
                PollTimeout::from(if stopping { 0u16 } else { 50 }),
            );
            // Read stdin only when poll says there is something (or its
            // end): a terminal's read would block the whole relay.
            feed = feed
                && fds
                    .get(stdin_at)
                    .and_then(|f| f.revents())
                    .is_some_and(|r| !r.is_empty());
        }
        if let Some(control) = &mut e.control {
            if read_available(control, &mut control_bytes) {
                e.control = None;
            }
        }
        if control_open && !control_bytes.is_empty() {
            let _ = write_all(&mut e.com2_in, &control_bytes);
            control_bytes.clear();
        }
        if !killed && e.deadline.passed() {
            // Not reaped before `finish`: the pid is still QEMU's.
            let _ = kill(e.qemu, Signal::SIGKILL);
            killed = true;
        }
        let mut got = false;
        let end = e.stdio_end.as_deref().unwrap_or_default();
        if let Some(port) = &mut e.stdout_port {
            got |= pass_on(port, &mut stdout, &mut port_buf, end);
        }
        if let Some(port) = &mut e.stderr_port {
            got |= pass_on(port, &mut stderr_port, &mut port_buf, end);
        }
        if !drained && !end.is_empty() {
            let ended = [&e.stdout_port, &e.stderr_port]
                .into_iter()
                .flatten()
                .all(|p| p.held == end);
            if ended {
                let _ = write_all(&mut e.com2_in, &[wire::STDIO_DRAINED]);
                drained = true;
            }
        }
        while let Ok(n) = e.com1_out.read(&mut buf) {
            if n == 0 {
                break;
            }
            got = true;
            let _ = stdout.write_all(&buf[..n]);
        }
        let _ = stdout.flush();
        while let Ok(n) = e.com2_out.read(&mut buf) {
            if n == 0 {
                break;
            }
            got = true;
            held.extend_from_slice(&buf[..n]);
            while let Some((at, len, body)) = next_record(&held) {
                to_stderr(&mut console, &held[..at]);
                match Mark::from_record(&body) {
                    Some(mark) => {
                        if mark == Mark::InitUp {
                            console = None;
                        }
                        started |= mark == Mark::WorkloadStarted;
                        control_open |= matches!(mark, Mark::WorkloadStarted | Mark::Parked);
                        if mark == Mark::Parked {
                            e.running.note_parked();
                        }
                        marks.push((mark, Instant::now()));
                    }
                    None => status = parse_exit(&body).or(status),
                }
                held.drain(..at + len);
            }
            let keep = record_start(&held);
            to_stderr(&mut console, &held[..keep]);
            held.drain(..keep);
        }
        if feed {
            // Framed (see isola_guest_spec::wire), ending with the marker that makes
            // isola-init close the workload's stdin.
            match nix::unistd::read(&stdin_fd, &mut buf) {
                Ok(0) => {
                    stdin_open = false;
                    if framed {
                        let _ = write_all(&mut e.com1_in, &isola_guest_spec::wire::END);
                    }
                }
                Ok(n) if framed => {
                    let mut bytes = Vec::with_capacity(n + 16);
                    isola_guest_spec::wire::encode(&buf[..n], &mut bytes);
                    let _ = write_all(&mut e.com1_in, &bytes);
                }
                Ok(n) => {
                    let _ = write_all(&mut e.com1_in, &buf[..n]);
                }
                Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => {
                    stdin_open = false;
                    if framed {
                        let _ = write_all(&mut e.com1_in, &isola_guest_spec::wire::END);
                    }
                }
            }
        }
        if stopping && !got {
            break;
        }
    }
    to_stderr(&mut console, &held);
    // What was held back and is not the end marker is output after all.
    let end = e.stdio_end.as_deref().unwrap_or_default();
    if let Some(p) = e.stdout_port.as_ref().filter(|p| p.held != end) {
        let _ = stdout.write_all(&p.held);
        let _ = stdout.flush();
    }
    if let Some(p) = e.stderr_port.as_ref().filter(|p| p.held != end) {
        let _ = stderr_port.write_all(&p.held);
    }
    Relayed {
        status,
        console: console.and_then(|t| t.text()),
        marks,
    }
}

/// Pass what the port's non-blocking FIFO holds now on to `out`, a few
/// reads at most so that COM2's records are not starved, keeping back
/// what may be the start of the end marker; whether there was anything.
fn pass_on(port: &mut Port, out: &mut impl Write, buf: &mut [u8], end: &[u8]) -> bool {
    let mut got = false;
    for _ in 0..8 {
        match port.out.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                got = true;
                port.held.extend_from_slice(&buf[..n]);
                let pass = marker_start(&port.held, end);
                // A reader that went away (EPIPE) loses the output, not
                // the guest.
                let _ = out.write_all(&port.held[..pass]);
                port.held.drain(..pass);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if got {
        let _ = out.flush();
    }
    got
}

/// Where the longest end of `bytes` that `end` starts with begins (all of
/// `end` included), or `bytes.len()`: what comes before it is output.
fn marker_start(bytes: &[u8], end: &[u8]) -> usize {
    let from = bytes.len().saturating_sub(end.len());
    (from..bytes.len())
        .find(|&i| end.starts_with(&bytes[i..]))
        .unwrap_or(bytes.len())
}

/// Append what the non-blocking `pipe` holds now to `out`; whether its
/// write end is closed (or it failed: it is not read again either way).
fn read_available(pipe: &mut File, out: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Write all of `bytes` to a non-blocking FIFO, waiting while it is full.
fn write_all(f: &mut File, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match f.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The first whole record in `bytes`: where it starts, its length, its body.
fn next_record(bytes: &[u8]) -> Option<(usize, usize, Vec<u8>)> {
    let at = bytes.windows(RECORD.len()).position(|w| w == RECORD)?;
    let body_start = at + RECORD.len();
    let end = bytes[body_start..]
        .windows(END.len())
        .position(|w| w == END)?;
    let body = bytes[body_start..body_start + end].to_vec();
    Some((at, RECORD.len() + end + END.len(), body))
}

/// Where a possible record starts in `bytes` (everything before it can be
/// passed on), or `bytes.len()`.
fn record_start(bytes: &[u8]) -> usize {
    for (i, _) in bytes.iter().enumerate().filter(|(_, b)| **b == 0x1b) {
        let rest = &bytes[i..];
        let n = rest.len().min(RECORD.len());
        if rest[..n] == RECORD[..n] {
            return i;
        }
    }
    bytes.len()
}

fn parse_exit(body: &[u8]) -> Option<u8> {
    let digits = body.strip_prefix(b"exit ")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_found_held_back_and_parsed() {
        let stream = b"err\x1b_isola-started\x1b\\more\x1b[0m\x1b_isola-exit 137\x1b\\";
        let (at, len, body) = next_record(stream).unwrap();
        assert_eq!(
            (&stream[..at], body.as_slice()),
            (&b"err"[..], &b"started"[..])
        );
        let rest = &stream[at + len..];
        let (at, _, body) = next_record(rest).unwrap();
        assert_eq!(&rest[..at], b"more\x1b[0m");
        assert_eq!(parse_exit(&body), Some(137));
        // A partial record at the end of a read is held back.
        assert_eq!(record_start(b"abc\x1b_iso"), 3);
        assert_eq!(record_start(b"abc\x1b[31m"), 8);
        assert_eq!(next_record(b"abc\x1b_isola-exi"), None);
        assert_eq!(parse_exit(b"exit x"), None);
    }

    #[test]
    fn only_what_may_start_the_end_marker_is_held_back() {
        let end = b"\x1b_isola-end 12\x1b\\";
        assert_eq!(marker_start(b"guest-up\n", end), 9);
        assert_eq!(marker_start(b"data\x1b_iso", end), 4);
        assert_eq!(marker_start(b"data\x1b_isola-end 12\x1b\\", end), 4);
        assert_eq!(marker_start(b"\x1b[0m", end), 4);
        assert_eq!(marker_start(b"", end), 0);
        assert_eq!(marker_start(b"anything", b""), 8);
    }
}
