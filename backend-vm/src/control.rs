//! isola-init's control channel: a pipe whose write end isola keeps (a
//! signal number a byte, with -t window sizes, and a parked guest's
//! go-ahead, as `isola_guest_spec::wire` has them) and whose read end the
//! monitor copies into COM2's receive side, holding what comes before
//! isola-init reads it.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::Signal;

/// The write end. Non-blocking: a guest that takes nothing never holds up
/// isola (the monitors read the pipe as it fills, whatever the guest does).
pub struct Control(File);

/// The channel's two ends: isola's, and the monitor's.
pub fn channel() -> io::Result<(Control, File)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    fcntl(&write, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok((Control(File::from(write)), File::from(read)))
}

impl Control {
    /// `signal` for the workload, as isola-init reads it: its number.
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        (&self.0).write_all(&[signal as u8])
    }

    /// Start the workload of an isola-init that is parked.
    pub fn go_ahead(&self) -> io::Result<()> {
        (&self.0).write_all(&[isola_guest_spec::wire::GO_AHEAD])
    }

    /// The caller's window size for the workload's terminal, if stdin is
    /// a terminal.
    pub fn window_size(&self) -> io::Result<()> {
        match isola_core::terminal::window_size(io::stdin().as_fd()) {
            Some(ws) => {
                (&self.0).write_all(&isola_guest_spec::wire::window_size(ws.ws_row, ws.ws_col))
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn a_signal_is_its_number_and_the_end_is_eof() {
        let (control, mut reader) = channel().unwrap();
        control.signal(Signal::SIGTERM).unwrap();
        control.signal(Signal::SIGUSR2).unwrap();
        control.go_ahead().unwrap();
        drop(control);
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        assert_eq!(got, [15, 12, isola_guest_spec::wire::GO_AHEAD]);
    }
}
