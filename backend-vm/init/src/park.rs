//! A parked start (`isola create`): with everything set up, isola-init
//! says so (the `Parked` mark) and waits on COM2 for the host's go-ahead
//! before it forks the workload. A signal that would have ended the
//! workload ends the guest instead, with 128+N; window sizes go to the
//! terminal; anything else is dropped.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signalfd::SignalFd;

use crate::fail::Failure;
use crate::signals::{self, Control, ControlParser};

/// Wait for the go-ahead. The control channel is read a byte at a time,
/// so that what follows the go-ahead (a signal sent right after `start`)
/// stays for the workload's supervisor; `parser` goes on with it.
pub fn until_go_ahead(
    mut control: &File,
    signals_in: &SignalFd,
    terminal: Option<&File>,
    parser: &mut ControlParser,
) -> Result<(), Failure> {
    crate::report::parked();
    let mut control_open = true;
    loop {
        let mut fds = vec![PollFd::new(signals_in.as_fd(), PollFlags::POLLIN)];
        if control_open {
            fds.push(PollFd::new(control.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Failure::errno("cannot wait for the go-ahead", e)),
        }
        drop(fds);
        while let Ok(Some(info)) = signals_in.read_signal() {
            end_on(info.ssi_signo as libc::c_int)?;
        }
        let mut byte = [0u8; 1];
        while control_open {
            match control.read(&mut byte) {
                Ok(1) => match parser.feed(byte[0]) {
                    Some(Control::GoAhead) => return Ok(()),
                    Some(Control::Signal(signal)) => end_on(signal)?,
                    Some(Control::WindowSize { rows, cols }) => {
                        if let Some(t) = terminal {
                            let _ = crate::tty::set_size(t, rows, cols);
                        }
                    }
                    None => {}
                },
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // Hung up or broken: only a signal can end the wait now (the
                // host stops the guest when it is done with it).
                _ => control_open = false,
            }
        }
    }
}

/// A signal for the workload that is not started: one that would have
/// ended it ends the guest with 128+N, quietly, as the workload's death
/// would.
fn end_on(signal: libc::c_int) -> Result<(), Failure> {
    if signals::ends_by_default(signal) {
        return Err(Failure {
            code: (128 + signal).min(255) as u8,
            message: String::new(),
        });
    }
    Ok(())
}
