//! COM2 under QEMU: a pair of FIFOs isola relays. Out of the guest comes the
//! workload's stderr, ended by isola-init's status record (QEMU's exit code
//! keeps only 7 bits of the status); into it go the signals isola receives,
//! one byte each, as isola-init expects them.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::kvm::VmError;

const PREFIX: &[u8] = b"\x1b_isola-exit ";
const END: &[u8] = b"\x1b\\";
/// What isola-init is told on the command line to send the record.
pub const CMDLINE_FLAG: &str = "isola.status=com2";

/// The FIFOs QEMU's `-chardev pipe,path=BASE` opens: BASE.in and BASE.out.
pub fn make_fifos(dir: &Path) -> Result<PathBuf, VmError> {
    let base = dir.join("com2");
    for end in ["in", "out"] {
        let path = base.with_extension(end);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| VmError::Config(format!("making the FIFO {}: {e}", path.display())))?;
    }
    Ok(base)
}

/// Relays COM2 until `stop` is set and the FIFO is drained; returns the
/// status from isola-init's record, if one came.
pub struct Relay {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Option<u8>>,
}

impl Relay {
    pub fn start(base: &Path) -> Result<Relay, VmError> {
        // Read-write, non-blocking: opening never waits for QEMU, and the
        // read end never sees EOF while we hold it; `stop` ends the loop.
        let open = |end: &str| {
            let path = base.with_extension(end);
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&path)
                .map_err(|e| VmError::Config(format!("opening {}: {e}", path.display())))
        };
        let (out, into) = (open("out")?, open("in")?);
        let mut mask = SigSet::empty();
        for s in isola_core::backend::RELAYED_SIGNALS {
            mask.add(s);
        }
        mask.thread_block()
            .map_err(|e| VmError::Config(format!("blocking signals: {e}")))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| VmError::Config(format!("signalfd: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("isola-com2".into())
            .spawn(move || relay(out, into, signals, &flag))
            .map_err(|e| VmError::Config(format!("starting the COM2 relay: {e}")))?;
        Ok(Relay { stop, thread })
    }

    pub fn finish(self) -> Option<u8> {
        self.stop.store(true, Ordering::SeqCst);
        let status = self.thread.join().ok().flatten();
        let _ = nix::sys::signal::pthread_sigmask(
            SigmaskHow::SIG_SETMASK,
            Some(&SigSet::empty()),
            None,
        );
        status
    }
}

fn relay(mut out: File, mut into: File, signals: SignalFd, stop: &AtomicBool) -> Option<u8> {
    let mut stderr = std::io::stderr();
    let mut held: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut fds = [
            PollFd::new(out.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        let timeout = if stopping { 0u16 } else { 50 };
        let _ = poll(&mut fds, PollTimeout::from(timeout));
        while let Ok(Some(info)) = signals.read_signal() {
            let _ = into.write_all(&[info.ssi_signo as u8]);
        }
        let mut got = false;
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            got = true;
            held.extend_from_slice(&buf[..n]);
            let keep = record_start(&held);
            let _ = stderr.write_all(&held[..keep]);
            held.drain(..keep);
        }
        if stopping && !got {
            break;
        }
    }
    let status = parse_record(&held);
    if status.is_none() {
        let _ = stderr.write_all(&held);
    }
    status
}

/// Where a possible status record starts in `bytes` (everything before it
/// can be passed on), or `bytes.len()`.
fn record_start(bytes: &[u8]) -> usize {
    for (i, _) in bytes.iter().enumerate().filter(|(_, b)| **b == 0x1b) {
        let rest = &bytes[i..];
        let n = rest.len().min(PREFIX.len());
        if rest[..n] == PREFIX[..n] {
            return i;
        }
    }
    bytes.len()
}

fn parse_record(bytes: &[u8]) -> Option<u8> {
    let body = bytes.strip_prefix(PREFIX)?;
    let digits = body.strip_suffix(END)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_is_held_back_and_parsed() {
        let stream = b"some stderr\x1b[0mred\x1b_isola-exit 137\x1b\\";
        let cut = record_start(stream);
        assert_eq!(&stream[..cut], b"some stderr\x1b[0mred");
        assert_eq!(parse_record(&stream[cut..]), Some(137));
        // A partial record at the end of a read is held too.
        assert_eq!(record_start(b"abc\x1b_iso"), 3);
        assert_eq!(record_start(b"abc\x1b[31m"), 8);
        assert_eq!(parse_record(b"\x1b_isola-exit x\x1b\\"), None);
    }
}
