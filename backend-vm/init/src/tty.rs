//! The two UARTs: COM1 carries the workload's stdin/stdout, COM2 its stderr
//! out and the host's signals in. Raw, so bytes pass through unchanged.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::sys::termios::{
    self, ControlFlags, FlowArg, InputFlags, LocalFlags, OutputFlags, SetArg,
    SpecialCharacterIndices,
};

use crate::fail::{describe_io, Failure};

pub const COM1: &str = "/dev/ttyS0";
pub const COM2: &str = "/dev/ttyS1";

/// The open UARTs. Every descriptor is close-on-exec; the child dups what
/// the workload gets.
pub struct Ttys {
    /// COM1, read-write: stdout, and stdin when the spec forwards it.
    pub com1: File,
    /// COM2 for writing: the workload's stderr (blocking, as programs expect).
    pub com2: File,
    /// COM2 for reading the host's signal bytes: non-blocking, its own open
    /// file so the workload's stderr does not become non-blocking too.
    pub control: File,
}

/// Opens both UARTs, raw. [`make_terminal`] turns COM1 into the workload's
/// terminal afterwards when the spec asks for one.
pub fn open() -> Result<Ttys, Failure> {
    let com1 = open_one(COM1, true, true, 0)?;
    let com2 = open_one(COM2, false, true, 0)?;
    let control = open_one(COM2, true, false, libc::O_NONBLOCK)?;
    make_raw(&com1).map_err(|e| Failure::errno(format!("cannot configure {COM1}"), e))?;
    make_raw(&com2).map_err(|e| Failure::errno(format!("cannot configure {COM2}"), e))?;
    Ok(Ttys {
        com1,
        com2,
        control,
    })
}

/// COM1 once more, for reading only and non-blocking: the stdin relay's
/// own open file, so the workload's stdout on COM1 stays blocking.
pub fn open_input() -> Result<File, Failure> {
    open_one(COM1, true, false, libc::O_NONBLOCK)
}

fn open_one(path: &str, read: bool, write: bool, extra: libc::c_int) -> Result<File, Failure> {
    OpenOptions::new()
        .read(read)
        .write(write)
        .custom_flags(libc::O_NOCTTY | extra)
        .open(path)
        .map_err(|e| Failure::setup(format!("cannot open {path}"), describe_io(&e)))
}

/// Raw both ways: no "\n" → "\r\n" on output (OPOST), and on input no echo,
/// no CR → NL, no line buffering, and no byte taken as ^C, ^S/^Q or ^V: on
/// COM2 every byte is a signal number, 3, 17 and 19 included.
pub fn make_raw(fd: impl AsFd) -> nix::Result<()> {
    let mut t = termios::tcgetattr(fd.as_fd())?;
    termios::cfmakeraw(&mut t);
    t.input_flags.remove(InputFlags::IXOFF);
    // CLOCAL: no modem lines to wait for; CREAD: do receive.
    t.control_flags
        .insert(ControlFlags::CLOCAL | ControlFlags::CREAD);
    t.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    termios::tcsetattr(fd.as_fd(), SetArg::TCSANOW, &t)
}

/// The spec's `tty`: what a fresh pty gives under `docker run -t` — line
/// editing, echo, signals from ^C, ^\\ and ^Z, "\n" written as "\r\n" (the host's
/// own terminal is raw meanwhile).
pub fn make_terminal(fd: impl AsFd) -> nix::Result<()> {
    let mut t = termios::tcgetattr(fd.as_fd())?;
    t.input_flags = InputFlags::ICRNL | InputFlags::IXON | InputFlags::IUTF8;
    t.output_flags = OutputFlags::OPOST | OutputFlags::ONLCR;
    // The rate bits stay as they are: a rate of 0 would mean "hang up".
    t.control_flags
        .remove(ControlFlags::CSIZE | ControlFlags::PARENB);
    t.control_flags
        .insert(ControlFlags::CS8 | ControlFlags::CREAD | ControlFlags::CLOCAL);
    t.local_flags = LocalFlags::ISIG
        | LocalFlags::ICANON
        | LocalFlags::IEXTEN
        | LocalFlags::ECHO
        | LocalFlags::ECHOE
        | LocalFlags::ECHOK
        | LocalFlags::ECHOCTL
        | LocalFlags::ECHOKE;
    termios::tcsetattr(fd.as_fd(), SetArg::TCSANOW, &t)
}

/// The terminal's window size (TIOCSWINSZ), as the caller's is.
pub fn set_size(fd: impl AsFd, rows: u16, cols: u16) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from `ws`, which outlives the call.
    let r = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    nix::errno::Errno::result(r).map(drop)
}

/// Waits until both UARTs have sent what was written to them, so stopping
/// the VM loses no output. Restarts output first in case a terminal's ^S
/// stopped it, which would otherwise make the wait endless.
pub fn drain_all() {
    for path in [COM1, COM2] {
        let flags = libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC;
        if let Ok(port) = OpenOptions::new()
            .write(true)
            .custom_flags(flags)
            .open(path)
        {
            let _ = termios::tcflow(&port, FlowArg::TCOON);
            let _ = termios::tcdrain(&port);
        }
    }
}
