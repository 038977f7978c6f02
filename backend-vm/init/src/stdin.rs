//! The workload's stdin with `-i` (no terminal): a pipe, fed from COM1.
//! The host frames what it sends (`isola_guest_spec::wire`) so that the end
//! of its input travels in the same stream: a tty in raw mode cannot carry
//! one. At the end the pipe is closed and the workload reads EOF.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use isola_guest_spec::wire::Decoder;
use nix::poll::{PollFd, PollFlags};

/// Copies COM1 into the workload's stdin pipe from PID 1's loop, without
/// ever blocking it: COM1 is read only when the pipe has taken everything
/// read before (so a workload that does not read holds the host back
/// through the UART, not PID 1), and the pipe is closed at the end.
pub struct Relay {
    com1: File,
    pipe: Option<File>,
    decoder: Decoder,
    pending: Vec<u8>,
}

impl Relay {
    /// `com1`: a non-blocking reader of COM1; `pipe`: the non-blocking
    /// write end of the workload's stdin.
    pub fn new(com1: File, pipe: OwnedFd) -> Relay {
        Relay {
            com1,
            pipe: Some(File::from(pipe)),
            decoder: Decoder::default(),
            pending: Vec::new(),
        }
    }

    /// What to wait for: COM1 readable, or the pipe writable while data is
    /// pending. None once the pipe is closed.
    pub fn poll_fd(&self) -> Option<PollFd<'_>> {
        let pipe = self.pipe.as_ref()?;
        Some(if self.pending.is_empty() {
            PollFd::new(self.com1.as_fd(), PollFlags::POLLIN)
        } else {
            PollFd::new(pipe.as_fd(), PollFlags::POLLOUT)
        })
    }

    /// Moves what can be moved now.
    pub fn step(&mut self) {
        let Some(pipe) = self.pipe.as_mut() else {
            return;
        };
        if self.pending.is_empty() && !self.decoder.ended() {
            let mut buf = [0u8; 4096];
            match self.com1.read(&mut buf) {
                Ok(n) if n > 0 => self.decoder.decode(&buf[..n], &mut self.pending),
                // A hung-up line will not bring the end marker: end here.
                Ok(_) => self.decoder.end(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.decoder.end(),
            }
        }
        while !self.pending.is_empty() {
            match pipe.write(&self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                // The workload closed its stdin: nothing more to give it.
                Err(_) => {
                    self.pending.clear();
                    self.decoder.end();
                }
            }
        }
        if self.decoder.ended() {
            self.pipe = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_feeds_the_pipe_and_closes_it_at_the_end() {
        let (com1_r, com1_w) = nix::unistd::pipe().unwrap();
        let (stdin_r, stdin_w) = nix::unistd::pipe().unwrap();
        nix::fcntl::fcntl(
            &com1_r,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .unwrap();
        let mut relay = Relay::new(File::from(com1_r), stdin_w);
        // The host's end stays open: only the marker ends the input.
        let mut host = File::from(com1_w);
        host.write_all(b"line\n\xff\xff\xff\x00").unwrap();
        while relay.poll_fd().is_some() {
            relay.step();
        }
        let mut got = Vec::new();
        File::from(stdin_r).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"line\n\xff");
        drop(host);
    }
}
