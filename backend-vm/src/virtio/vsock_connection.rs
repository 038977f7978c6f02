//! One host-initiated vsock stream: the host's unix stream, the guest
//! port it reaches, its state, and the credit each side grants the other
//! (virtio 1.2, 5.10.6.3): the guest's buffer space bounds what the host
//! sends, and ours what the guest may send before we drain it.

use std::io::{self, Read, Write};
use std::num::Wrapping;
use std::os::unix::net::UnixStream;

/// What we tell the guest it may have in flight towards us.
pub const BUF_ALLOC: u32 = 256 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// REQUEST sent, the guest's RESPONSE (or RST) awaited.
    Connecting,
    Established,
}

pub struct Connection {
    pub stream: UnixStream,
    /// The guest's port.
    pub peer_port: u32,
    pub state: State,
    /// In the muxer's epoll set.
    pub registered: bool,
    /// The host closed its side (read gave EOF).
    pub host_eof: bool,
    /// Once the pending bytes are written, end the host's read side.
    pub close_write: bool,
    /// The guest shut the stream both ways: end it once the pending
    /// bytes are written.
    pub guest_done: bool,
    /// Bytes from the guest not yet taken by the host's stream.
    pub pending_tx: Vec<u8>,
    /// Bytes the host sent after its CONNECT line, for the guest first.
    pub early: Vec<u8>,
    peer_buf_alloc: u32,
    peer_fwd_cnt: Wrapping<u32>,
    /// Bytes sent to the guest.
    rx_cnt: Wrapping<u32>,
    /// Bytes of the guest's written to the host's stream.
    fwd_cnt: Wrapping<u32>,
    /// `fwd_cnt` as the guest last heard it.
    fwd_cnt_told: Wrapping<u32>,
}

impl Connection {
    pub fn new(stream: UnixStream, peer_port: u32) -> Connection {
        Connection {
            stream,
            peer_port,
            state: State::Connecting,
            registered: false,
            host_eof: false,
            close_write: false,
            guest_done: false,
            pending_tx: Vec::new(),
            early: Vec::new(),
            peer_buf_alloc: 0,
            peer_fwd_cnt: Wrapping(0),
            rx_cnt: Wrapping(0),
            fwd_cnt: Wrapping(0),
            fwd_cnt_told: Wrapping(0),
        }
    }

    /// What every packet of this connection's carries.
    pub fn note_peer_credit(&mut self, buf_alloc: u32, fwd_cnt: u32) {
        self.peer_buf_alloc = buf_alloc;
        self.peer_fwd_cnt = Wrapping(fwd_cnt);
    }

    /// Bytes the guest has room for now.
    pub fn peer_credit(&self) -> u32 {
        let in_flight = (self.rx_cnt - self.peer_fwd_cnt).0;
        self.peer_buf_alloc.saturating_sub(in_flight)
    }

    /// Our credit fields for a packet to the guest; the guest now knows
    /// our `fwd_cnt`.
    pub fn credit(&mut self) -> (u32, u32) {
        self.fwd_cnt_told = self.fwd_cnt;
        (BUF_ALLOC, self.fwd_cnt.0)
    }

    /// Whether the guest should hear of our freed space before it runs
    /// out: half our buffer drained since it last heard.
    pub fn credit_update_due(&self) -> bool {
        (self.fwd_cnt - self.fwd_cnt_told).0 >= BUF_ALLOC / 2
    }

    /// Data from the guest, for the host's stream. False when the guest
    /// sent beyond the credit we gave it.
    pub fn take_from_guest(&mut self, data: &[u8]) -> bool {
        if self.pending_tx.len() + data.len() > BUF_ALLOC as usize {
            return false;
        }
        self.pending_tx.extend_from_slice(data);
        true
    }

    /// Write what the guest sent into the host's stream, as far as it
    /// takes it now. An error means the host is gone.
    pub fn flush(&mut self) -> io::Result<()> {
        while !self.pending_tx.is_empty() {
            match self.stream.write(&self.pending_tx) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.pending_tx.drain(..n);
                    self.fwd_cnt += Wrapping(n as u32);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.pending_tx.is_empty() && self.close_write {
            let _ = self.stream.shutdown(std::net::Shutdown::Write);
        }
        Ok(())
    }

    /// Read up to `max` bytes from the host for the guest: `Ok(None)` when
    /// there is nothing now, an empty vector at the host's end.
    pub fn read_for_guest(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        if !self.early.is_empty() {
            let n = self.early.len().min(max);
            let data: Vec<u8> = self.early.drain(..n).collect();
            self.rx_cnt += Wrapping(n as u32);
            return Ok(Some(data));
        }
        let mut buf = vec![0u8; max];
        loop {
            return match self.stream.read(&mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    self.rx_cnt += Wrapping(n as u32);
                    Ok(Some(buf))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }
}
