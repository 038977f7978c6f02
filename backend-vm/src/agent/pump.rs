//! The agent client's thread: the only reader and writer of the channel.
//! It sends the frames callers queue, reads the guest's and routes them
//! (output into each process's descriptors, starts and ends to the
//! callers), feeds each process's input one frame at a time, and watches
//! a terminal's window size, whose changes a pty's slave cannot be told.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use isola_guest_spec::agent::{GuestMessage, HostMessage, Reader, Session, MAX_DATA};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::shared::{Io, Shared, State};

/// How often a terminal's window size is looked at.
const WINDOW_POLL: Duration = Duration::from_millis(200);

pub(crate) fn run(mut stream: UnixStream, mut reader: Reader, shared: &Shared) {
    let mut ios: HashMap<Session, Io> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATA];
    let why = loop {
        let writing = {
            let mut state = shared.lock();
            if state.stop {
                // What callers queued last (a signal) still goes, as far
                // as the channel takes it now.
                let _ = write_stream(&mut stream, &mut state.out);
                break None;
            }
            ios.extend(state.new_io.drain(..));
            !state.out.is_empty()
        };
        // The hello's reply may have brought more frames already.
        if let Err(e) = route_all(&mut reader, &mut ios, shared) {
            break Some(e);
        }
        let mut fds = vec![
            PollFd::new(
                stream.as_fd(),
                if writing {
                    PollFlags::POLLIN | PollFlags::POLLOUT
                } else {
                    PollFlags::POLLIN
                },
            ),
            PollFd::new(shared.wake_fd(), PollFlags::POLLIN),
        ];
        let inputs: Vec<Session> = ios
            .iter()
            .filter(|(_, io)| !io.in_flight && io.input.is_some())
            .map(|(s, _)| *s)
            .collect();
        for s in &inputs {
            if let Some(input) = ios.get(s).and_then(|io| io.input.as_ref()) {
                fds.push(PollFd::new(input.as_fd(), PollFlags::POLLIN));
            }
        }
        let watching = ios.values().any(|io| io.terminal.is_some());
        let timeout = if watching {
            PollTimeout::try_from(WINDOW_POLL.as_millis() as u32).unwrap_or(PollTimeout::MAX)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => break Some(format!("poll: {e}")),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[1] {
            let _ = shared.wake.read();
        }
        if ready[0] {
            // What came before an end is routed first: a process's last
            // output and its exit may come just before the guest's end.
            let read = read_stream(&mut stream, &mut reader, &mut buf);
            if let Err(e) = route_all(&mut reader, &mut ios, shared).and(read) {
                break Some(e);
            }
        }
        let mut state = shared.lock();
        for (s, _) in inputs.iter().zip(&ready[2..]).filter(|(_, r)| **r) {
            if let Some(io) = ios.get_mut(s) {
                take_input(*s, io, &mut state, &mut buf);
            }
        }
        for (s, io) in ios.iter_mut() {
            watch_size(*s, io, &mut state);
        }
        if let Err(e) = write_stream(&mut stream, &mut state.out) {
            break Some(e);
        }
    };
    if let Some(why) = why {
        tracing::debug!("the agent channel ended: {why}");
    }
    // Every caller still waiting learns that the channel is gone.
    let mut state = shared.lock();
    state.closed = true;
    for seen in state.sessions.values() {
        seen.ended.set();
    }
    drop(state);
    shared.notify();
}

fn read_stream(stream: &mut UnixStream, reader: &mut Reader, buf: &mut [u8]) -> Result<(), String> {
    loop {
        match stream.read(buf) {
            Ok(0) => return Err("the guest closed it".into()),
            Ok(n) => {
                reader.push(&buf[..n]);
                // One frame's worth at most before it is routed.
                if reader.pending() >= MAX_DATA {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn write_stream(stream: &mut UnixStream, out: &mut Vec<u8>) -> Result<(), String> {
    while !out.is_empty() {
        match stream.write(out) {
            Ok(0) => return Err("the guest closed it".into()),
            Ok(n) => {
                out.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// Routes every whole frame read so far. An error (a corrupt or hostile
/// stream) ends the channel.
fn route_all(
    reader: &mut Reader,
    ios: &mut HashMap<Session, Io>,
    shared: &Shared,
) -> Result<(), String> {
    while let Some(m) = reader.next_guest().map_err(|e| e.to_string())? {
        route(m, ios, shared);
    }
    Ok(())
}

fn route(m: GuestMessage, ios: &mut HashMap<Session, Io>, shared: &Shared) {
    match m {
        // A repeated greeting says nothing new.
        GuestMessage::Hello { .. } => {}
        GuestMessage::Stdout { session, data } => {
            if let Some(io) = ios.get_mut(&session) {
                if write_out(&mut io.stdout, &data) == Written::Broke {
                    broken_pipe(session, shared);
                }
            }
        }
        GuestMessage::Stderr { session, data } => {
            if let Some(io) = ios.get_mut(&session) {
                if write_out(&mut io.stderr, &data) == Written::Broke {
                    broken_pipe(session, shared);
                }
            }
        }
        GuestMessage::StdinWritten { session } => {
            if let Some(io) = ios.get_mut(&session) {
                io.in_flight = false;
            }
        }
        GuestMessage::Started { session } => {
            let mut state = shared.lock();
            if let Some(seen) = state.sessions.get_mut(&session) {
                seen.started.get_or_insert(Ok(()));
            }
            drop(state);
            shared.notify();
        }
        GuestMessage::Refused { session, message } => {
            ios.remove(&session);
            let mut state = shared.lock();
            if let Some(seen) = state.sessions.get_mut(&session) {
                seen.started.get_or_insert(Err(message));
            }
            drop(state);
            shared.notify();
        }
        GuestMessage::Stats { session, stats } => {
            let mut state = shared.lock();
            if let Some(answer) = state.stats_asked.get_mut(&session) {
                *answer = Some(stats);
            }
            drop(state);
            shared.notify();
        }
        GuestMessage::Exited { session, status } => {
            // Its descriptors closed: a terminal's master then reads EOF.
            ios.remove(&session);
            let mut state = shared.lock();
            if let Some(seen) = state.sessions.get_mut(&session) {
                seen.started.get_or_insert(Ok(()));
                seen.status = Some(status);
                seen.ended.set();
                if seen.abandoned {
                    state.sessions.remove(&session);
                }
            }
            drop(state);
            shared.notify();
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Written {
    Whole,
    /// The descriptor failed now (its reader is gone).
    Broke,
    /// It had failed before: dropped.
    Dropped,
}

/// Into a caller's descriptor, whole, waiting while it is full; one that
/// fails takes no more.
fn write_out(sink: &mut Option<OwnedFd>, mut data: &[u8]) -> Written {
    let Some(fd) = sink.as_ref() else {
        return Written::Dropped;
    };
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => wait_writable(fd.as_fd()),
            Err(_) => {
                *sink = None;
                return Written::Broke;
            }
        }
    }
    Written::Whole
}

/// Its output's reader went away: the process gets the SIGPIPE it would
/// have had writing into that pipe itself (`isola exec x yes | head -1`
/// ends, as with a container).
fn broken_pipe(session: Session, shared: &Shared) {
    let mut state = shared.lock();
    HostMessage::Signal {
        session,
        signal: libc::SIGPIPE,
    }
    .encode(&mut state.out);
}

fn wait_writable(fd: BorrowedFd<'_>) {
    let _ = poll(
        &mut [PollFd::new(fd, PollFlags::POLLOUT)],
        PollTimeout::from(1000u16),
    );
}

/// Its input is readable: one `Stdin` frame, or its end.
fn take_input(session: Session, io: &mut Io, state: &mut State, buf: &mut [u8]) {
    let Some(input) = io.input.as_ref() else {
        return;
    };
    let n = match nix::unistd::read(input, buf) {
        Ok(n) => n,
        Err(Errno::EINTR | Errno::EAGAIN) => return,
        // EIO: a terminal whose master was closed.
        Err(_) => 0,
    };
    if n == 0 {
        io.input = None;
        if io.input_ends {
            HostMessage::CloseStdin { session }.encode(&mut state.out);
        }
        return;
    }
    HostMessage::Stdin {
        session,
        data: buf[..n].to_vec(),
    }
    .encode(&mut state.out);
    io.in_flight = true;
}

/// A terminal's new window size, passed on.
fn watch_size(session: Session, io: &mut Io, state: &mut State) {
    let Some(t) = io.terminal.as_ref() else {
        return;
    };
    let Some(ws) = isola_core::terminal::window_size(t.as_fd()) else {
        return;
    };
    let size = (ws.ws_row, ws.ws_col);
    if ws.ws_row > 0 && ws.ws_col > 0 && io.size != Some(size) {
        io.size = Some(size);
        HostMessage::Resize {
            session,
            rows: size.0,
            cols: size.1,
        }
        .encode(&mut state.out);
    }
}
