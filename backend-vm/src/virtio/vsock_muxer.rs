//! Host-initiated vsock streams through one unix socket, in the hybrid
//! style of Firecracker and Cloud Hypervisor: a host program connects,
//! writes `CONNECT <port>\n`, reads `OK <hostport>\n` once the guest's
//! listener on `<port>` accepted, and the unix stream is then that vsock
//! stream. The muxer keeps every host socket in an epoll set of its own,
//! whose fd the device thread waits on.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use super::vsock_connection::{Connection, State};
use super::vsock_header::{
    Header, HOST_CID, OP_CREDIT_REQUEST, OP_CREDIT_UPDATE, OP_REQUEST, OP_RESPONSE, OP_RST, OP_RW,
    OP_SHUTDOWN, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM,
};

/// The longest `CONNECT <port>\n` line taken.
const CONNECT_LINE_MAX: usize = 32;
/// Host ports handed out from here up, far from the guest's own.
const FIRST_LOCAL_PORT: u32 = 1 << 30;
/// Host connections waiting at once, before the guest took them.
const MAX_CONNECTIONS: usize = 1024;
const EVENTS: usize = 32;
/// Packets waiting for the guest's receive buffers: a guest that sends
/// without ever giving buffers gets its answers dropped past this, rather
/// than the monitor's memory growing.
const CONTROL_MAX: usize = 4096;
const SHUTDOWN_BOTH: u32 = SHUTDOWN_RCV | SHUTDOWN_SEND;

/// A host socket that has not finished its CONNECT line.
struct Handshake {
    stream: UnixStream,
    line: Vec<u8>,
}

/// A packet for the guest without data, its header made when it is sent
/// (so that it carries the credit of that moment).
#[derive(Debug, Clone, Copy)]
struct Control {
    op: u16,
    local_port: u32,
    peer_port: u32,
    flags: u32,
}

pub struct Muxer {
    path: PathBuf,
    listener: UnixListener,
    epoll: Epoll,
    guest_cid: u64,
    handshakes: HashMap<RawFd, Handshake>,
    /// By local (host) port.
    connections: HashMap<u32, Connection>,
    by_fd: HashMap<RawFd, u32>,
    control: VecDeque<Control>,
    /// Established connections whose host stream may have data.
    readable: BTreeSet<u32>,
    next_port: u32,
}

impl Muxer {
    /// Listen on `path` (a stale socket there is replaced).
    pub fn bind(path: &Path, guest_cid: u64) -> io::Result<Muxer> {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let epoll = Epoll::new()?;
        epoll.ctl(
            ControlOperation::Add,
            listener.as_raw_fd(),
            EpollEvent::new(EventSet::IN, listener.as_raw_fd() as u64),
        )?;
        Ok(Muxer {
            path: path.to_path_buf(),
            listener,
            epoll,
            guest_cid,
            handshakes: HashMap::new(),
            connections: HashMap::new(),
            by_fd: HashMap::new(),
            control: VecDeque::new(),
            readable: BTreeSet::new(),
            next_port: FIRST_LOCAL_PORT,
        })
    }

    /// Readable when a host socket needs attention.
    pub fn fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    /// Serve what the host sockets have now, without blocking.
    pub fn poll(&mut self) {
        let mut events = [EpollEvent::default(); EVENTS];
        let Ok(n) = self.epoll.wait(0, &mut events) else {
            return;
        };
        for event in &events[..n] {
            let fd = event.data() as RawFd;
            if fd == self.listener.as_raw_fd() {
                self.accept();
            } else if self.handshakes.contains_key(&fd) {
                self.handshake(fd);
            } else if let Some(&port) = self.by_fd.get(&fd) {
                let set = event.event_set();
                if set.intersects(EventSet::IN | EventSet::HANG_UP | EventSet::ERROR) {
                    self.readable.insert(port);
                }
                if set.contains(EventSet::OUT) {
                    self.flush(port);
                }
                self.rearm(port);
            }
        }
    }

    /// Whether `next_rx` may have a packet for the guest.
    pub fn has_rx(&self) -> bool {
        !self.control.is_empty() || !self.readable.is_empty()
    }

    /// The next packet for the guest, its data at most `max` bytes.
    pub fn next_rx(&mut self, max: usize) -> Option<(Header, Vec<u8>)> {
        if let Some(c) = self.control.pop_front() {
            return Some((
                self.header(c.op, c.local_port, c.peer_port, c.flags, 0),
                Vec::new(),
            ));
        }
        let ports: Vec<u32> = self.readable.iter().copied().collect();
        for port in ports {
            let Some(conn) = self.connections.get_mut(&port) else {
                self.readable.remove(&port);
                continue;
            };
            let room = (conn.peer_credit() as usize).min(max);
            if room == 0 {
                // Kept: a credit update or new rx buffers bring it back.
                continue;
            }
            match conn.read_for_guest(room) {
                Ok(Some(data)) if data.is_empty() => {
                    // The host sends no more; it may still read (a half
                    // close looks the same as a close here, and a closed
                    // host shows when the guest's data cannot be written).
                    conn.host_eof = true;
                    self.readable.remove(&port);
                    let peer = conn.peer_port;
                    self.rearm(port);
                    let flags = SHUTDOWN_SEND;
                    return Some((self.header(OP_SHUTDOWN, port, peer, flags, 0), Vec::new()));
                }
                Ok(Some(data)) => {
                    let peer = conn.peer_port;
                    let len = data.len() as u32;
                    return Some((self.header(OP_RW, port, peer, 0, len), data));
                }
                Ok(None) => {
                    self.readable.remove(&port);
                    self.rearm(port);
                }
                Err(_) => self.reset(port),
            }
        }
        None
    }

    /// A packet the guest sent, with its data.
    pub fn guest_packet(&mut self, h: &Header, data: &[u8]) {
        if h.src_cid != self.guest_cid || h.dst_cid != HOST_CID {
            return;
        }
        let known = self
            .connections
            .get(&h.dst_port)
            .is_some_and(|c| c.peer_port == h.src_port);
        if !known || h.type_ != TYPE_STREAM {
            // Nothing listens on the host: the guest's connects are refused.
            if h.op != OP_RST {
                self.push_control(Control {
                    op: OP_RST,
                    local_port: h.dst_port,
                    peer_port: h.src_port,
                    flags: 0,
                });
            }
            return;
        }
        let port = h.dst_port;
        let Some(conn) = self.connections.get_mut(&port) else {
            return;
        };
        conn.note_peer_credit(h.buf_alloc, h.fwd_cnt);
        match (h.op, conn.state) {
            (OP_RESPONSE, State::Connecting) => {
                conn.state = State::Established;
                let ok = format!("OK {port}\n");
                // A new unix stream takes these few bytes at once.
                if conn.stream.write_all(ok.as_bytes()).is_err() {
                    self.reset(port);
                    return;
                }
                if !conn.early.is_empty() {
                    self.readable.insert(port);
                }
            }
            (OP_RW, State::Established) => {
                if !conn.take_from_guest(data) {
                    tracing::debug!(port, "vsock: the guest sent beyond its credit");
                    self.reset(port);
                    return;
                }
                self.flush(port);
            }
            (OP_CREDIT_REQUEST, State::Established) => self.push_control(Control {
                op: OP_CREDIT_UPDATE,
                local_port: port,
                peer_port: h.src_port,
                flags: 0,
            }),
            (OP_CREDIT_UPDATE, _) => {}
            (OP_SHUTDOWN, State::Established) => {
                conn.close_write |= h.flags & SHUTDOWN_SEND != 0;
                // Both ways: what the guest sent still reaches the host,
                // then the stream ends (see `flush`).
                conn.guest_done |= h.flags & SHUTDOWN_BOTH == SHUTDOWN_BOTH;
                self.flush(port);
                if !self.connections.contains_key(&port) {
                    return;
                }
            }
            (OP_RST, _) => {
                let _ = conn.flush();
                self.drop_connection(port);
                return;
            }
            _ => {
                self.reset(port);
                return;
            }
        }
        self.rearm(port);
    }

    /// The guest reset its device: every stream it knew is gone.
    pub fn forget_guest(&mut self) {
        let ports: Vec<u32> = self.connections.keys().copied().collect();
        for port in ports {
            self.drop_connection(port);
        }
        self.control.clear();
    }

    fn accept(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if self.handshakes.len() + self.connections.len() >= MAX_CONNECTIONS
                || stream.set_nonblocking(true).is_err()
            {
                continue;
            }
            let fd = stream.as_raw_fd();
            let event = EpollEvent::new(EventSet::IN, fd as u64);
            if self.epoll.ctl(ControlOperation::Add, fd, event).is_ok() {
                self.handshakes.insert(
                    fd,
                    Handshake {
                        stream,
                        line: Vec::new(),
                    },
                );
            }
        }
    }

    /// Read the CONNECT line; once whole, ask the guest for the stream.
    fn handshake(&mut self, fd: RawFd) {
        let Some(hs) = self.handshakes.get_mut(&fd) else {
            return;
        };
        let mut buf = [0u8; CONNECT_LINE_MAX];
        let n = match hs.stream.read(&mut buf) {
            Ok(0) => 0,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => 0,
        };
        hs.line.extend_from_slice(&buf[..n]);
        let newline = hs.line.iter().position(|&b| b == b'\n');
        if n != 0 && newline.is_none() && hs.line.len() < CONNECT_LINE_MAX {
            return;
        }
        let _ = self
            .epoll
            .ctl(ControlOperation::Delete, fd, EpollEvent::default());
        let Some(hs) = self.handshakes.remove(&fd) else {
            return;
        };
        let Some(at) = newline else {
            return;
        };
        let Some(peer_port) = parse_connect(&hs.line[..at]) else {
            // Dropping the stream tells the host: no OK line.
            return;
        };
        let local_port = self.allocate_port();
        let mut conn = Connection::new(hs.stream, peer_port);
        conn.early = hs.line[at + 1..].to_vec();
        self.by_fd.insert(fd, local_port);
        self.connections.insert(local_port, conn);
        self.push_control(Control {
            op: OP_REQUEST,
            local_port,
            peer_port,
            flags: 0,
        });
    }

    /// Queue a packet for the guest. A host's REQUEST always goes (host
    /// connections are bounded by MAX_CONNECTIONS); the guest's own
    /// answers (RST to a stray packet, credit updates) only while there is
    /// room.
    fn push_control(&mut self, c: Control) {
        if c.op == OP_REQUEST || self.control.len() < CONTROL_MAX {
            self.control.push_back(c);
        } else {
            tracing::debug!(op = c.op, "vsock: the guest takes no packets; one dropped");
        }
    }

    fn allocate_port(&mut self) -> u32 {
        loop {
            let port = self.next_port;
            self.next_port = self.next_port.checked_add(1).unwrap_or(FIRST_LOCAL_PORT);
            if !self.connections.contains_key(&port) {
                return port;
            }
        }
    }

    fn flush(&mut self, port: u32) {
        let Some(conn) = self.connections.get_mut(&port) else {
            return;
        };
        if conn.flush().is_err() || (conn.guest_done && conn.pending_tx.is_empty()) {
            self.reset(port);
            return;
        }
        if conn.credit_update_due() {
            let peer = conn.peer_port;
            self.push_control(Control {
                op: OP_CREDIT_UPDATE,
                local_port: port,
                peer_port: peer,
                flags: 0,
            });
        }
    }

    /// Wait for what the connection can use now: host data when the
    /// guest may get it and none is known waiting, room to write when
    /// guest data is pending. A stream with neither is out of the set,
    /// so that a hung-up host does not wake the thread over and over.
    fn rearm(&mut self, port: u32) {
        let waiting = self.readable.contains(&port);
        let Some(conn) = self.connections.get_mut(&port) else {
            return;
        };
        let mut events = EventSet::empty();
        if conn.state == State::Established && !conn.host_eof && !waiting {
            events |= EventSet::IN;
        }
        if !conn.pending_tx.is_empty() {
            events |= EventSet::OUT;
        }
        let fd = conn.stream.as_raw_fd();
        let event = EpollEvent::new(events, fd as u64);
        let op = match (conn.registered, events.is_empty()) {
            (false, true) => return,
            (false, false) => ControlOperation::Add,
            (true, true) => ControlOperation::Delete,
            (true, false) => ControlOperation::Modify,
        };
        if self.epoll.ctl(op, fd, event).is_ok() {
            conn.registered = !events.is_empty();
        }
    }

    /// End the stream on both sides: RST to the guest, close to the host.
    fn reset(&mut self, port: u32) {
        if let Some(conn) = self.connections.get(&port) {
            self.push_control(Control {
                op: OP_RST,
                local_port: port,
                peer_port: conn.peer_port,
                flags: 0,
            });
        }
        self.drop_connection(port);
    }

    fn drop_connection(&mut self, port: u32) {
        self.readable.remove(&port);
        if let Some(conn) = self.connections.remove(&port) {
            let fd = conn.stream.as_raw_fd();
            self.by_fd.remove(&fd);
            if conn.registered {
                let _ = self
                    .epoll
                    .ctl(ControlOperation::Delete, fd, EpollEvent::default());
            }
        }
    }

    fn header(&mut self, op: u16, local_port: u32, peer_port: u32, flags: u32, len: u32) -> Header {
        let (buf_alloc, fwd_cnt) = self
            .connections
            .get_mut(&local_port)
            .map_or((0, 0), Connection::credit);
        Header {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: local_port,
            dst_port: peer_port,
            len,
            type_: TYPE_STREAM,
            op,
            flags,
            buf_alloc,
            fwd_cnt,
        }
    }
}

impl Drop for Muxer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The port of a `CONNECT <port>` line.
fn parse_connect(line: &[u8]) -> Option<u32> {
    let line = std::str::from_utf8(line).ok()?;
    let port = line.trim_end_matches('\r').strip_prefix("CONNECT ")?;
    port.trim().parse().ok()
}
