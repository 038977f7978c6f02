//! The connection to one guest's agent: the greeting, then a thread
//! (pump.rs) that alone reads and writes the channel, and the state the
//! callers share with it: frames to send, each session's start and end.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use isola_guest_spec::agent::{
    self, Exec, GuestMessage, GuestStats, HostMessage, Reader, Session, Status,
};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::pump;
use super::shared::{Io, Seen, Shared, State};
use super::{AgentError, Dial};
use crate::notice::Notice;

/// How long a started guest's agent may take to answer at all (a guest
/// under TCG is slow to come up).
pub const ANSWER: Duration = Duration::from_secs(60);

/// One agent connection. Dropping it closes the channel: the guest then
/// kills what it started over it.
pub struct Client {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    /// Connects and greets the agent; refused if the guest speaks another
    /// version. Waits up to [`ANSWER`] for a guest still coming up.
    pub fn connect(dial: &Dial) -> Result<Client, AgentError> {
        Client::connect_within(dial, ANSWER)
    }

    /// [`Client::connect`], giving the guest `within` to answer.
    pub fn connect_within(dial: &Dial, within: Duration) -> Result<Client, AgentError> {
        let deadline = Instant::now() + within;
        let mut stream = dial.connect(deadline)?;
        let mut hello = Vec::new();
        HostMessage::Hello {
            version: agent::VERSION,
        }
        .encode(&mut hello);
        stream.write_all(&hello).map_err(AgentError::Io)?;
        let reader = greeting(&mut stream, deadline)?;
        stream.set_nonblocking(true).map_err(AgentError::Io)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                next: 1,
                ..State::default()
            }),
            changed: Condvar::new(),
            wake: EventFd::new(EFD_NONBLOCK).map_err(AgentError::Io)?,
        });
        let for_pump = shared.clone();
        let thread = std::thread::Builder::new()
            .name("isola-agent".into())
            .spawn(move || pump::run(stream, reader, &for_pump))
            .map_err(AgentError::Io)?;
        Ok(Client {
            shared,
            thread: Some(thread),
        })
    }

    /// `signal` for the guest's workload (PID 1 passes it on).
    pub fn signal_workload(&self, signal: i32) -> Result<(), AgentError> {
        self.shared.signal(agent::WORKLOAD, signal)
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Whether the channel still works (the guest has not ended).
    pub fn is_open(&self) -> bool {
        !self.shared.lock().closed
    }

    /// The guest's own view of itself now; None if it does not answer
    /// within `within` (a guest busy under emulation) or the channel is
    /// gone: `isola stats` then shows the host's view alone.
    pub fn stats(&self, within: Duration) -> Option<GuestStats> {
        let shared = &self.shared;
        let mut state = shared.lock();
        if state.closed {
            return None;
        }
        let session = state.next;
        state.next = state.next.wrapping_add(1).max(1);
        state.stats_asked.insert(session, None);
        shared.send(&mut state, &HostMessage::Stats { session });
        let deadline = Instant::now() + within;
        loop {
            if let Some(Some(stats)) = state.stats_asked.get(&session) {
                let stats = *stats;
                state.stats_asked.remove(&session);
                return Some(stats);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || state.closed {
                state.stats_asked.remove(&session);
                return None;
            }
            state = shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        let _ = self.shared.wake.write(1);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads the agent's hello, with what came after it kept for the pump.
fn greeting(stream: &mut UnixStream, deadline: Instant) -> Result<Reader, AgentError> {
    let mut reader = Reader::default();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AgentError::Timeout(ANSWER.as_secs()));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(AgentError::Io)?;
        match stream.read(&mut buf) {
            Ok(0) => return Err(AgentError::Closed),
            Ok(n) => reader.push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(AgentError::Timeout(ANSWER.as_secs()))
            }
            Err(e) => return Err(AgentError::Io(e)),
        }
        match reader.next_guest().map_err(AgentError::Frame)? {
            None => {}
            Some(GuestMessage::Hello { version }) => {
                agent::check_version(version)?;
                return Ok(reader);
            }
            Some(_) => {
                return Err(AgentError::Frame(
                    isola_guest_spec::agent::FrameError::Malformed {
                        what: "greeting",
                        why: "the guest spoke before its hello".into(),
                    },
                ))
            }
        }
    }
}

impl Shared {
    fn send(&self, state: &mut State, m: &HostMessage) {
        m.encode(&mut state.out);
        let _ = self.wake.write(1);
    }

    /// Starts `exec` on `io`; returns once the guest has (or has refused).
    pub(crate) fn exec(&self, exec: Exec, io: Io) -> Result<(Session, Notice), AgentError> {
        let ended = Notice::new().map_err(AgentError::Io)?;
        let mut state = self.lock();
        if state.closed {
            return Err(AgentError::Closed);
        }
        let session = state.next;
        state.next = state.next.wrapping_add(1).max(1);
        state.sessions.insert(
            session,
            Seen {
                started: None,
                status: None,
                ended: ended.clone(),
                abandoned: false,
            },
        );
        state.new_io.push((session, io));
        self.send(&mut state, &HostMessage::Exec { session, exec });
        let deadline = Instant::now() + ANSWER;
        loop {
            let seen = state.sessions.get(&session);
            match seen.and_then(|s| s.started.clone()) {
                Some(Ok(())) => return Ok((session, ended)),
                Some(Err(message)) => {
                    state.sessions.remove(&session);
                    return Err(AgentError::Refused(message));
                }
                None if state.closed || seen.is_none() => {
                    state.sessions.remove(&session);
                    return Err(AgentError::Closed);
                }
                None => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                state.sessions.remove(&session);
                return Err(AgentError::Timeout(ANSWER.as_secs()));
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub(crate) fn signal(&self, session: Session, signal: i32) -> Result<(), AgentError> {
        let mut state = self.lock();
        if state.closed {
            return Err(AgentError::Closed);
        }
        self.send(&mut state, &HostMessage::Signal { session, signal });
        Ok(())
    }

    /// The session's end, waiting for it; forgotten then. A channel that
    /// closed first is the guest's end, which killed the process.
    pub(crate) fn wait(&self, session: Session) -> Status {
        let mut state = self.lock();
        loop {
            match state.sessions.get(&session).map(|s| s.status) {
                Some(Some(status)) => {
                    state.sessions.remove(&session);
                    return status;
                }
                Some(None) if !state.closed => {}
                _ => {
                    state.sessions.remove(&session);
                    return Status::Signaled(libc::SIGKILL);
                }
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Its handle is gone unwaited: killed if it runs, forgotten once
    /// it has ended.
    pub(crate) fn abandon(&self, session: Session) {
        let mut state = self.lock();
        let closed = state.closed;
        match state.sessions.get_mut(&session) {
            Some(seen) if seen.status.is_none() && !closed => {
                seen.abandoned = true;
                self.send(
                    &mut state,
                    &HostMessage::Signal {
                        session,
                        signal: libc::SIGKILL,
                    },
                );
            }
            _ => {
                state.sessions.remove(&session);
            }
        }
    }
}
