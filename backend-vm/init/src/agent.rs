//! The agent: PID 1 serving the host's requests on the agent channel
//! (`isola_guest_spec::agent`) from its loop while the workload runs —
//! processes started, fed, signalled, resized, their output and end sent
//! back. A process the host can no longer hear from (the channel was
//! closed, the guest is ending) is killed, as `docker exec`'s are.

use std::os::fd::AsFd;
use std::time::Duration;

use isola_guest_spec::agent::{self, GuestMessage, HostMessage, Reader, Status, MAX_DATA};
use nix::poll::{PollFd, PollFlags};

use crate::agent_channel::{Channel, Got};
use crate::agent_session::{Session, Shared, Stream};

/// Output waiting for the channel above which the processes' output is
/// not read: they then wait, not PID 1's memory.
const OUT_HIGH: usize = 256 << 10;

/// How long the guest's end waits for the host to take the last frames.
const LAST_WORDS: Duration = Duration::from_secs(2);

pub struct Agent {
    channel: Channel,
    reader: Reader,
    out: Vec<u8>,
    /// The host said hello in our version.
    greeted: bool,
    sessions: Vec<Session>,
    shared: Shared,
    /// Signals the host sent the workload (session 0), for PID 1's loop
    /// to pass on as it does COM2's, grace period and all.
    for_workload: Vec<i32>,
}

/// Which descriptor a poll entry is, to route its readiness.
#[derive(Debug, Clone, Copy)]
pub enum Slot {
    Channel,
    Output { session: usize, output: usize },
    Input { session: usize },
}

impl Agent {
    /// The agent, if the guest has a channel.
    pub fn open(shared: Shared) -> Option<Agent> {
        Channel::open().map(|channel| Agent {
            channel,
            reader: Reader::default(),
            out: Vec::new(),
            greeted: false,
            sessions: Vec::new(),
            shared,
            for_workload: Vec::new(),
        })
    }

    /// The signals the host sent the workload since the last call.
    pub fn take_workload_signals(&mut self) -> Vec<i32> {
        std::mem::take(&mut self.for_workload)
    }

    /// The descriptors to poll, each with its slot.
    pub fn poll_fds(&self) -> Vec<(Slot, PollFd<'_>)> {
        let mut fds = Vec::new();
        if let Some(fd) = self.channel.poll_fd(!self.out.is_empty()) {
            fds.push((Slot::Channel, fd));
        }
        let reading = self.out.len() < OUT_HIGH && self.channel.connected();
        for (i, s) in self.sessions.iter().enumerate() {
            if reading {
                for (j, (_, f)) in s.outputs.iter().enumerate() {
                    fds.push((
                        Slot::Output {
                            session: i,
                            output: j,
                        },
                        PollFd::new(f.as_fd(), PollFlags::POLLIN),
                    ));
                }
            }
            if let (false, Some(input)) = (s.pending.is_empty(), &s.input) {
                fds.push((
                    Slot::Input { session: i },
                    PollFd::new(input.as_fd(), PollFlags::POLLOUT),
                ));
            }
        }
        fds
    }

    /// How long PID 1 may sleep for the agent's sake.
    pub fn timeout(&self) -> Option<Duration> {
        self.channel.timeout()
    }

    /// Acts on what poll found ready (slots from [`Agent::poll_fds`] of
    /// this same state), then on what is due whatever the poll said.
    pub fn step(&mut self, ready: &[Slot]) {
        // By index: nothing here removes a session. An output at its end is
        // removed, so a later slot of its session may find nothing: that
        // output is read after the next poll.
        let mut buf = vec![0u8; MAX_DATA];
        for slot in ready {
            match *slot {
                Slot::Channel => {}
                Slot::Output { session, output } => self.pump_output(session, output, &mut buf),
                Slot::Input { session } => self.feed(session),
            }
        }
        if ready.iter().any(|s| matches!(s, Slot::Channel)) {
            if matches!(self.channel, Channel::Vsock { .. }) && !self.channel.connected() {
                if self.channel.accept() {
                    self.host_gone();
                }
            } else {
                self.read_channel(&mut buf);
            }
        }
        if self.channel.recheck() {
            self.host_gone();
        }
        self.send_ends();
    }

    /// Tells the host of the processes reaped, and sends what it can now.
    fn send_ends(&mut self) {
        self.finish_ended();
        if !self.out.is_empty() && !self.channel.write(&mut self.out) {
            self.host_gone();
        }
    }

    /// A child was reaped: its status, if it is one of the sessions'.
    pub fn reaped(&mut self, pid: libc::pid_t, status: Status) {
        if let Some(s) = self.sessions.iter_mut().find(|s| s.pid == pid) {
            s.status = Some(status);
            // Now: nothing else may wake PID 1 for a while.
            self.send_ends();
        }
    }

    /// The guest is ending: each process is killed and reaped, and the
    /// host told, briefly waited for.
    pub fn end(&mut self) {
        for s in &self.sessions {
            // SAFETY: kill(2) takes no pointers.
            unsafe { libc::kill(s.pid, libc::SIGKILL) };
        }
        for s in &mut self.sessions {
            let mut status = 0;
            // SAFETY: waitpid(2) writes only into `status`, which outlives it.
            if unsafe { libc::waitpid(s.pid, &mut status, 0) } == s.pid {
                s.status = crate::status::Ended::from_wait_status(status).map(Status::from);
            }
            s.status.get_or_insert(Status::Signaled(libc::SIGKILL));
        }
        self.finish_ended();
        self.channel.flush(&mut self.out, LAST_WORDS);
    }

    fn send(&mut self, m: GuestMessage) {
        if self.channel.connected() {
            m.encode(&mut self.out);
        }
    }

    fn read_channel(&mut self, buf: &mut [u8]) {
        loop {
            match self.channel.read(buf) {
                Got::Bytes(n) => self.reader.push(&buf[..n]),
                Got::Nothing => break,
                Got::HungUp => return self.host_gone(),
            }
            loop {
                match self.reader.next_host() {
                    Ok(Some(m)) => self.handle(m),
                    Ok(None) => break,
                    Err(e) => {
                        crate::report::say(&format!("the agent channel is corrupt: {e}"));
                        return self.host_gone();
                    }
                }
            }
        }
    }

    fn handle(&mut self, m: HostMessage) {
        match m {
            HostMessage::Hello { version } => {
                self.greeted = version == agent::VERSION;
                // Answered whatever it is: the host names both versions.
                self.send(GuestMessage::Hello {
                    version: agent::VERSION,
                });
            }
            // Nothing else before the hello in our version.
            _ if !self.greeted => {}
            HostMessage::Exec { session, exec } => {
                if self.sessions.iter().any(|s| s.id == session) {
                    return self.send(GuestMessage::Refused {
                        session,
                        message: format!("session {session} is in use"),
                    });
                }
                match Session::start(session, &exec, &self.shared) {
                    Ok(s) => {
                        self.sessions.push(s);
                        self.send(GuestMessage::Started { session });
                    }
                    Err(f) => self.send(GuestMessage::Refused {
                        session,
                        message: f.message,
                    }),
                }
            }
            HostMessage::Stdin { session, data } => {
                if let Some(i) = self.index(session) {
                    self.sessions[i].pending.extend_from_slice(&data);
                    self.feed(i);
                }
            }
            HostMessage::CloseStdin { session } => {
                if let Some(i) = self.index(session) {
                    self.sessions[i].closing = true;
                    self.sessions[i].feed();
                }
            }
            HostMessage::Signal {
                session: agent::WORKLOAD,
                signal,
            } => {
                if (1..=64).contains(&signal) {
                    self.for_workload.push(signal);
                }
            }
            HostMessage::Signal { session, signal } => {
                if let Some(s) = self.sessions.iter().find(|s| s.id == session) {
                    if s.status.is_none() && (1..=64).contains(&signal) {
                        // SAFETY: kill(2) takes no pointers.
                        unsafe { libc::kill(s.pid, signal) };
                    }
                }
            }
            HostMessage::Resize {
                session,
                rows,
                cols,
            } => {
                if let Some(t) = self
                    .sessions
                    .iter()
                    .find(|s| s.id == session)
                    .and_then(|s| s.terminal.as_ref())
                {
                    let _ = crate::tty::set_size(t, rows, cols);
                }
            }
            HostMessage::Stats { session } => self.send(GuestMessage::Stats {
                session,
                stats: crate::guest_stats::now(),
            }),
        }
    }

    fn index(&self, session: agent::Session) -> Option<usize> {
        self.sessions.iter().position(|s| s.id == session)
    }

    fn feed(&mut self, i: usize) {
        let Some(s) = self.sessions.get_mut(i) else {
            return;
        };
        let had = !s.pending.is_empty();
        if s.feed() && had {
            let session = s.id;
            self.send(GuestMessage::StdinWritten { session });
        }
    }

    fn pump_output(&mut self, i: usize, j: usize, buf: &mut [u8]) {
        let Some(s) = self.sessions.get_mut(i) else {
            return;
        };
        let Some(&(stream, _)) = s.outputs.get(j) else {
            return;
        };
        let session = s.id;
        if let Some(n) = s.read_output(j, buf).filter(|&n| n > 0) {
            let data = buf[..n].to_vec();
            self.send(match stream {
                Stream::Stdout => GuestMessage::Stdout { session, data },
                Stream::Stderr => GuestMessage::Stderr { session, data },
            });
        }
    }

    /// Sends the end of each reaped process, after what its output still
    /// holds; it is then forgotten.
    fn finish_ended(&mut self) {
        let mut buf = vec![0u8; MAX_DATA];
        let mut i = 0;
        while i < self.sessions.len() {
            let Some(status) = self.sessions[i].status else {
                i += 1;
                continue;
            };
            // What it wrote before it ended; later writers (its orphans)
            // are not waited for.
            while let Some(&(stream, _)) = self.sessions[i].outputs.first() {
                let session = self.sessions[i].id;
                match self.sessions[i].read_output(0, &mut buf) {
                    // At its end, and removed.
                    None => {}
                    Some(0) => {
                        self.sessions[i].outputs.remove(0);
                    }
                    Some(n) => {
                        let data = buf[..n].to_vec();
                        self.send(match stream {
                            Stream::Stdout => GuestMessage::Stdout { session, data },
                            Stream::Stderr => GuestMessage::Stderr { session, data },
                        });
                    }
                }
            }
            let s = self.sessions.remove(i);
            if let Some(message) = s.failure {
                let data = format!("isola: {message}\r\n").into_bytes();
                let session = s.id;
                self.send(if s.terminal.is_some() {
                    GuestMessage::Stdout { session, data }
                } else {
                    GuestMessage::Stderr { session, data }
                });
            }
            self.send(GuestMessage::Exited {
                session: s.id,
                status,
            });
        }
    }

    fn host_gone(&mut self) {
        for s in &self.sessions {
            // SAFETY: kill(2) takes no pointers.
            unsafe { libc::kill(s.pid, libc::SIGKILL) };
        }
        // Nobody is left to tell their ends: the loop reaps them as it
        // reaps any orphan.
        self.sessions.clear();
        self.reset();
    }

    /// A new host: a new conversation.
    fn reset(&mut self) {
        self.reader = Reader::default();
        self.out.clear();
        self.greeted = false;
    }
}

impl From<crate::status::Ended> for Status {
    fn from(e: crate::status::Ended) -> Status {
        match e {
            crate::status::Ended::Exited(c) => Status::Exited(c),
            crate::status::Ended::Signaled(s) => Status::Signaled(s),
        }
    }
}
