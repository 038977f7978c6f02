//! The shim's one thread: a poll loop over the control socket and its
//! clients, the workload's pipes or terminal, the sandbox's end, the
//! exec'd processes and the timers (a stop's SIGKILL, a restart's
//! back-off). One thread, so that creating a sandbox (a fork-like clone)
//! never races another thread holding a lock.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use isola_core::backend::{ExecSpec, Execd, ExitStatus, Sandbox};
use isola_core::instance::Status;
use isola_core::logs::Stream;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::socket::{accept4, SockFlag};

use super::wire::{self, ExecRequest, Request, Response, Usage};
use super::Shim;

/// How long a sandbox that ignored SIGKILL's request (a VM whose guest does
/// not answer) gets before it is torn down regardless.
const FORCE_AFTER: Duration = Duration::from_secs(5);

/// Where the sandbox is in the shim's hands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    #[default]
    Created,
    Running,
    /// Ended; started again at the instant (the restart policy).
    BackOff(Instant),
    Ended,
}

#[derive(Default)]
pub struct Life {
    sandbox: Option<Box<dyn Sandbox>>,
    terminal: Option<OwnedFd>,
    phase: Phase,
    clients: BTreeMap<u64, Client>,
    next_client: u64,
    execs: Vec<Exec>,
    stop: Option<Stop>,
    /// `isola stop` or `kill` ended it: no restart.
    stopped_by_user: bool,
    started_at: Option<Instant>,
    /// The last end, for a `wait` that comes after it.
    last: Option<(i32, bool)>,
    /// When to drop the pages a burst of work brought back in (an exec's,
    /// a restart's): a second after it, if nothing else came.
    shed_at: Option<Instant>,
}

struct Client {
    fd: OwnedFd,
    attach: Option<Attacher>,
    /// Answered with the sandbox's end.
    waiting: bool,
}

/// An attached CLI's pipes: the workload's output goes into the first two,
/// what the third gives goes to its stdin or terminal.
struct Attacher {
    out: OwnedFd,
    err: OwnedFd,
    input: Option<OwnedFd>,
}

struct Exec {
    id: u64,
    execd: Box<dyn Execd>,
    /// Told the process's end, unless it detached (`exec -d`).
    client: Option<u64>,
}

struct Stop {
    kill_at: Instant,
    force_at: Option<Instant>,
}

/// What a poll found ready.
#[derive(Debug, Clone, Copy)]
enum Source {
    Listener,
    Client(u64),
    AttachInput(u64),
    Out,
    Err,
    Terminal,
    SandboxEnd,
    Exec(u64),
    /// SIGTERM or SIGINT to the shim itself.
    Signal,
}

impl Shim {
    /// Create the sandbox and, for `run -d`, start it.
    pub fn begin(&mut self, start: bool) -> Result<()> {
        self.create_sandbox()?;
        if start {
            self.start_sandbox()?;
        }
        Ok(())
    }

    fn create_sandbox(&mut self) -> Result<()> {
        self.ctx.clock = Instant::now();
        let mut sandbox = self
            .backend
            .create(&self.spec, &self.ctx)
            .map_err(anyhow::Error::new)
            .with_context(|| {
                format!("creating {} in a {}", self.spec.image, self.backend.name())
            })?;
        self.life.terminal = sandbox.take_terminal();
        if let Some(t) = &self.life.terminal {
            // A size until someone attaches with theirs: 0x0 confuses
            // full-screen programs.
            let ws = isola_core::terminal::Winsize {
                ws_row: 24,
                ws_col: 80,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            isola_core::terminal::set_window_size(t.as_fd(), &ws);
            let _ = nix::fcntl::fcntl(
                t,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
        }
        self.life.sandbox = Some(sandbox);
        self.life.phase = Phase::Created;
        self.record(|s| s.status = Status::Created);
        Ok(())
    }

    fn start_sandbox(&mut self) -> Result<()> {
        let Some(sandbox) = self.life.sandbox.as_mut() else {
            anyhow::bail!("the sandbox is gone");
        };
        sandbox
            .start()
            .map_err(anyhow::Error::new)
            .context("starting the workload")?;
        self.life.phase = Phase::Running;
        self.life.started_at = Some(Instant::now());
        self.life.stopped_by_user = false;
        self.record(|s| {
            s.status = Status::Running;
            s.started = Some(isola_core::instance::now());
            s.finished = None;
            s.exit_code = None;
            s.oom_killed = false;
        });
        Ok(())
    }

    /// Change and save the state; a failure to save is logged (the shim
    /// goes on serving: the sandbox is still there).
    fn record(&mut self, change: impl FnOnce(&mut isola_core::instance::State)) {
        if let Some(inst) = self.instance.as_mut() {
            change(&mut inst.state);
            if let Err(e) = inst.save() {
                tracing::warn!("saving the state of sandbox {}: {e}", inst.state.id);
            }
        }
    }

    /// Serve until the sandbox has ended for good and its exec'd processes
    /// are reaped.
    pub fn serve(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if self.life.phase == Phase::Ended && self.life.execs.is_empty() {
                return;
            }
            let ready = match self.poll_once() {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("the shim's poll failed: {e}");
                    return;
                }
            };
            for source in ready {
                self.handle(source, &mut buf);
            }
            self.timers();
        }
    }

    fn poll_once(&self) -> nix::Result<Vec<Source>> {
        let life = &self.life;
        let mut sources = vec![Source::Listener, Source::Out, Source::Err];
        let mut fds = vec![
            PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.out.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.err.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(signals) = &self.signals {
            sources.push(Source::Signal);
            fds.push(PollFd::new(signals.as_fd(), PollFlags::POLLIN));
        }
        if let Some(t) = &life.terminal {
            sources.push(Source::Terminal);
            fds.push(PollFd::new(t.as_fd(), PollFlags::POLLIN));
        }
        if life.phase == Phase::Running {
            if let Some(fd) = life.sandbox.as_ref().and_then(|s| s.exit_fd()) {
                sources.push(Source::SandboxEnd);
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
        }
        for (id, c) in &life.clients {
            sources.push(Source::Client(*id));
            fds.push(PollFd::new(c.fd.as_fd(), PollFlags::POLLIN));
            if let Some(input) = c.attach.as_ref().and_then(|a| a.input.as_ref()) {
                sources.push(Source::AttachInput(*id));
                fds.push(PollFd::new(input.as_fd(), PollFlags::POLLIN));
            }
        }
        for e in &life.execs {
            sources.push(Source::Exec(e.id));
            fds.push(PollFd::new(e.execd.pidfd(), PollFlags::POLLIN));
        }
        let timeout = self
            .next_deadline()
            .map(|at| at.saturating_duration_since(Instant::now()))
            .map(|d| {
                PollTimeout::try_from(d.as_millis().min(60_000) as u32 + 1)
                    .unwrap_or(PollTimeout::MAX)
            })
            .unwrap_or(PollTimeout::NONE);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
        let ready = sources
            .into_iter()
            .zip(&fds)
            .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(s, _)| s)
            .collect();
        Ok(ready)
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut at = Vec::new();
        if let Some(stop) = &self.life.stop {
            at.push(stop.force_at.unwrap_or(stop.kill_at));
        }
        if let Phase::BackOff(when) = self.life.phase {
            at.push(when);
        }
        at.extend(self.life.shed_at);
        at.into_iter().min()
    }

    fn handle(&mut self, source: Source, buf: &mut [u8]) {
        if matches!(
            source,
            Source::Client(_) | Source::Exec(_) | Source::SandboxEnd
        ) {
            self.life.shed_at = Some(Instant::now() + Duration::from_secs(1));
        }
        match source {
            Source::Listener => self.accept(),
            Source::Client(id) => self.client_ready(id),
            Source::AttachInput(id) => self.attach_input(id, buf),
            Source::Out => self.output(Source::Out, buf),
            Source::Err => self.output(Source::Err, buf),
            Source::Terminal => self.output(Source::Terminal, buf),
            Source::SandboxEnd => self.sandbox_ended(false),
            Source::Exec(id) => self.exec_ended(id),
            Source::Signal => self.own_signal(),
        }
    }

    /// A SIGTERM or SIGINT to the shim (a shutdown, a user's kill): the
    /// sandbox is stopped as `isola stop` would, or ended if not running.
    fn own_signal(&mut self) {
        let came = self
            .signals
            .as_ref()
            .is_some_and(|s| matches!(s.read_signal(), Ok(Some(_))));
        if !came {
            return;
        }
        self.life.stopped_by_user = true;
        match self.life.phase {
            Phase::Running if self.life.stop.is_none() => {
                self.life.stop = Some(Stop {
                    kill_at: Instant::now() + Duration::from_secs(10),
                    force_at: None,
                });
                if let Some(s) = self.life.sandbox.as_mut() {
                    let _ = s.signal(Signal::SIGTERM);
                }
            }
            Phase::Running => {}
            Phase::Created => {
                self.sandbox_ended(true);
                self.end_for_good();
            }
            Phase::BackOff(_) => self.end_for_good(),
            Phase::Ended => {}
        }
    }

    fn accept(&mut self) {
        loop {
            let fd = match accept4(self.listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                Ok(fd) => fd,
                Err(Errno::EINTR) => continue,
                Err(_) => return,
            };
            // SAFETY: accept4 just gave us this descriptor.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            if !wire::peer_allowed(&fd) {
                tracing::warn!("refused a control connection from another user");
                continue;
            }
            let id = self.life.next_client;
            self.life.next_client += 1;
            self.life.clients.insert(
                id,
                Client {
                    fd,
                    attach: None,
                    waiting: false,
                },
            );
        }
    }

    fn answer(&mut self, client: u64, response: &Response, fds: &[i32]) {
        let Some(c) = self.life.clients.get(&client) else {
            return;
        };
        if wire::send(c.fd.as_raw_fd(), response, fds).is_err() {
            self.life.clients.remove(&client);
        }
    }

    fn client_ready(&mut self, id: u64) {
        let Some(c) = self.life.clients.get(&id) else {
            return;
        };
        let received = wire::recv::<Request>(c.fd.as_raw_fd());
        match received {
            Ok(Some((request, fds))) => self.request(id, request, fds),
            Ok(None) => {
                self.life.clients.remove(&id);
            }
            Err(e) => {
                let message = e.to_string();
                self.answer(id, &Response::Error { message }, &[]);
                self.life.clients.remove(&id);
            }
        }
    }

    fn id(&self) -> String {
        self.spec.id.clone()
    }

    fn not_running(&self) -> Response {
        Response::Error {
            message: format!("sandbox {} is not running", self.id()),
        }
    }

    fn request(&mut self, client: u64, request: Request, mut fds: Vec<OwnedFd>) {
        tracing::debug!("request {request:?}");
        let response = match request {
            Request::Start => match self.life.phase {
                Phase::Created => match self.start_sandbox() {
                    Ok(()) => Response::Ok,
                    Err(e) => {
                        let message = format!("{e:#}");
                        self.sandbox_ended(true);
                        Response::Error { message }
                    }
                },
                _ => Response::Error {
                    message: format!("sandbox {} is already running", self.id()),
                },
            },
            Request::Attach { stdin } => {
                let mut fds = fds.drain(..);
                let (out, err) = (fds.next(), fds.next());
                let input = if stdin { fds.next() } else { None };
                match (out, err) {
                    _ if self.life.phase == Phase::Ended => self.exited_response(),
                    (Some(out), Some(err)) if input.is_some() == stdin => {
                        for fd in [Some(&out), Some(&err), input.as_ref()]
                            .into_iter()
                            .flatten()
                        {
                            let _ = nix::fcntl::fcntl(
                                fd,
                                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                            );
                        }
                        if let Some(c) = self.life.clients.get_mut(&client) {
                            c.attach = Some(Attacher { out, err, input });
                            c.waiting = true;
                        }
                        Response::Ok
                    }
                    _ => Response::Error {
                        message: "attach needs the output pipes (and the input's with stdin)"
                            .into(),
                    },
                }
            }
            Request::Resize { rows, cols } => {
                if let Some(t) = &self.life.terminal {
                    let ws = isola_core::terminal::Winsize {
                        ws_row: rows,
                        ws_col: cols,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    isola_core::terminal::set_window_size(t.as_fd(), &ws);
                }
                return;
            }
            Request::Exec(exec) => match self.exec(client, &exec, fds) {
                Ok(()) => return,
                Err(message) => Response::Error { message },
            },
            Request::SignalExec { signal } => {
                if let Ok(signal) = Signal::try_from(signal) {
                    let exec = self.life.execs.iter().find(|e| e.client == Some(client));
                    if let Some(Err(e)) = exec.map(|e| e.execd.signal(signal)) {
                        tracing::debug!("passing {signal} to an exec'd process: {e}");
                    }
                }
                return;
            }
            Request::Signal { signal } => match Signal::try_from(signal) {
                Err(_) => Response::Error {
                    message: format!("{signal} is not a signal number"),
                },
                Ok(_) if self.life.phase != Phase::Running => self.not_running(),
                Ok(signal) => {
                    if matches!(signal, Signal::SIGKILL | Signal::SIGTERM | Signal::SIGINT) {
                        self.life.stopped_by_user = true;
                    }
                    match self.life.sandbox.as_mut().map(|s| s.signal(signal)) {
                        Some(Ok(())) => Response::Ok,
                        Some(Err(e)) => Response::Error {
                            message: e.to_string(),
                        },
                        None => self.not_running(),
                    }
                }
            },
            Request::Stop { timeout } => {
                match self.life.phase {
                    Phase::Running => {
                        self.life.stopped_by_user = true;
                        if let Some(c) = self.life.clients.get_mut(&client) {
                            c.waiting = true;
                        }
                        if self.life.stop.is_none() {
                            let now = Instant::now();
                            let kill_at = now + Duration::from_secs(timeout.min(24 * 3600));
                            self.life.stop = Some(Stop {
                                kill_at,
                                force_at: None,
                            });
                            if let Some(s) = self.life.sandbox.as_mut() {
                                if let Err(e) = s.signal(Signal::SIGTERM) {
                                    tracing::warn!("stop: SIGTERM: {e}");
                                }
                            }
                        }
                        return;
                    }
                    Phase::BackOff(_) => {
                        // Stopped between two runs: it stays ended.
                        self.life.stopped_by_user = true;
                        self.end_for_good();
                        self.exited_response()
                    }
                    Phase::Created | Phase::Ended => self.exited_response(),
                }
            }
            Request::End => {
                self.life.stopped_by_user = true;
                match self.life.phase {
                    Phase::Running => self.sandbox_ended(true),
                    Phase::Created => {
                        self.sandbox_ended(true);
                        self.end_for_good();
                    }
                    Phase::BackOff(_) => self.end_for_good(),
                    Phase::Ended => {}
                }
                self.exited_response()
            }
            Request::Wait => {
                if matches!(self.life.phase, Phase::Ended) {
                    self.exited_response()
                } else {
                    if let Some(c) = self.life.clients.get_mut(&client) {
                        c.waiting = true;
                    }
                    return;
                }
            }
            Request::Stats => match (&self.life.sandbox, self.life.phase) {
                (Some(s), Phase::Running) => match s.stats() {
                    Ok(st) => Response::Stats(Usage {
                        cpu_usec: st.cpu_usec,
                        memory_bytes: st.memory_bytes,
                        memory_limit: st.memory_limit,
                        pids: st.pids,
                        block_read: st.block_read,
                        block_written: st.block_written,
                    }),
                    Err(e) => Response::Error {
                        message: e.to_string(),
                    },
                },
                _ => self.not_running(),
            },
            Request::Top => match (&self.life.sandbox, self.life.phase) {
                (Some(s), Phase::Running) => match s.pids() {
                    Ok(pids) => Response::Pids { pids },
                    Err(e) => Response::Error {
                        message: e.to_string(),
                    },
                },
                _ => self.not_running(),
            },
        };
        self.answer(client, &response, &[]);
    }

    fn exited_response(&self) -> Response {
        match self.life.last {
            Some((code, oom_killed)) => Response::Exited { code, oom_killed },
            None => Response::Exited {
                code: 0,
                oom_killed: false,
            },
        }
    }

    /// `isola exec`: the process on the CLI's descriptors (or a terminal,
    /// whose master goes back with the process's pidfd).
    fn exec(&mut self, client: u64, req: &ExecRequest, fds: Vec<OwnedFd>) -> Result<(), String> {
        if self.life.phase != Phase::Running {
            return Err(format!(
                "sandbox {} is not running: start it first (`isola start {}`)",
                self.id(),
                self.id()
            ));
        }
        if req.args.is_empty() {
            return Err("exec needs a command to run".into());
        }
        let mut process = self.spec.process.clone();
        process.args = req.args.clone();
        process.env = crate::commands::run_flags::merge_env(&process.env, &req.env);
        if let Some(w) = &req.workdir {
            process.cwd = w.clone();
        }
        if let Some(u) = &req.user {
            process.user =
                isola_core::user::resolve(u, &self.spec.layers).map_err(|e| e.to_string())?;
        }
        process.tty = req.tty;
        process.stdin = req.stdin;
        let stdio = match (req.tty, fds.as_slice()) {
            (true, _) => None,
            (false, [i, o, e, ..]) => Some([i.as_fd(), o.as_fd(), e.as_fd()]),
            (false, _) => return Err("exec needs the three stdio descriptors".into()),
        };
        let spec = ExecSpec {
            process,
            privileged: req.privileged,
            stdio,
        };
        let sandbox = self
            .life
            .sandbox
            .as_mut()
            .ok_or_else(|| "the sandbox is gone".to_string())?;
        let mut execd = sandbox.exec(&spec).map_err(|e| match e {
            isola_core::backend::BackendError::State(_) => {
                format!("sandbox {} is not running", self.spec.id)
            }
            other => format!("{:#}", anyhow::Error::new(other)),
        })?;
        drop(fds);
        let terminal = execd.take_terminal();
        let mut out: Vec<i32> = vec![execd.pidfd().as_raw_fd()];
        if let Some(t) = &terminal {
            out.push(t.as_raw_fd());
        }
        self.answer(client, &Response::Started, &out);
        drop(terminal);
        let id = self.life.next_client;
        self.life.next_client += 1;
        self.life.execs.push(Exec {
            id,
            execd,
            client: Some(client),
        });
        Ok(())
    }

    fn exec_ended(&mut self, id: u64) {
        let Some(i) = self.life.execs.iter().position(|e| e.id == id) else {
            return;
        };
        let exec = self.life.execs.swap_remove(i);
        let code = match exec.execd.wait() {
            Ok(status) => status.code(),
            Err(e) => {
                tracing::warn!("waiting for an exec'd process: {e}");
                125
            }
        };
        if let Some(client) = exec.client {
            self.answer(
                client,
                &Response::Exited {
                    code,
                    oom_killed: false,
                },
                &[],
            );
        }
    }

    fn attach_input(&mut self, id: u64, buf: &mut [u8]) {
        let Some(input) = self
            .life
            .clients
            .get(&id)
            .and_then(|c| c.attach.as_ref())
            .and_then(|a| a.input.as_ref())
        else {
            return;
        };
        let n = match nix::unistd::read(input, buf) {
            Ok(n) => n,
            Err(Errno::EAGAIN | Errno::EINTR) => return,
            Err(_) => 0,
        };
        if n == 0 {
            if let Some(a) = self
                .life
                .clients
                .get_mut(&id)
                .and_then(|c| c.attach.as_mut())
            {
                a.input = None;
            }
            return;
        }
        let target = self.life.terminal.as_ref().or(self.stdin.as_ref());
        if let Some(t) = target {
            write_all_blocking(t.as_fd(), &buf[..n]);
        }
    }

    /// The workload wrote: into the log, and to whoever is attached.
    fn output(&mut self, source: Source, buf: &mut [u8]) {
        loop {
            let (fd, stream) = match source {
                Source::Out => (self.out.as_fd(), Stream::Stdout),
                Source::Err => (self.err.as_fd(), Stream::Stderr),
                _ => match &self.life.terminal {
                    Some(t) => (t.as_fd(), Stream::Stdout),
                    None => return,
                },
            };
            let n = match nix::unistd::read(fd, buf) {
                Ok(0) | Err(Errno::EIO) => {
                    // A terminal whose last user closed it: nothing more
                    // will come.
                    if matches!(source, Source::Terminal) {
                        self.life.terminal = None;
                    }
                    return;
                }
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(_) => return,
            };
            let data = &buf[..n];
            if let Err(e) = self.log.write(stream, data) {
                tracing::warn!("writing the log: {e}");
            }
            let mut gone = Vec::new();
            for (id, c) in &self.life.clients {
                if let Some(a) = &c.attach {
                    let to = if stream == Stream::Stderr {
                        &a.err
                    } else {
                        &a.out
                    };
                    // A slow reader loses output rather than holding up
                    // the workload; the log has it all.
                    match nix::unistd::write(to, data) {
                        Ok(_) | Err(Errno::EAGAIN) => {}
                        Err(_) => gone.push(*id),
                    }
                }
            }
            for id in gone {
                if let Some(c) = self.life.clients.get_mut(&id) {
                    c.attach = None;
                }
            }
            if n < buf.len() {
                return;
            }
        }
    }

    fn drain_output(&mut self, buf: &mut [u8]) {
        self.output(Source::Out, buf);
        self.output(Source::Err, buf);
        self.output(Source::Terminal, buf);
    }

    /// The workload ended (or `forced`: it would not, and was torn down):
    /// its end recorded and told, then restarted or done.
    fn sandbox_ended(&mut self, forced: bool) {
        let Some(mut sandbox) = self.life.sandbox.take() else {
            return;
        };
        let outcome = if forced { None } else { Some(sandbox.wait()) };
        let mut buf = vec![0u8; 16 * 1024];
        self.drain_output(&mut buf);
        self.life.terminal = None;
        if let Err(e) = sandbox.teardown() {
            tracing::warn!("tearing down sandbox {}: {e}", self.spec.id);
        }
        drop(sandbox);
        let (code, oom, message, counters) = match outcome {
            Some(Ok(o)) => (
                o.status.code(),
                o.status == ExitStatus::OutOfMemory,
                o.message,
                o.counters,
            ),
            Some(Err(e)) => (
                125,
                false,
                Some(format!("{:#}", anyhow::Error::new(e))),
                Vec::new(),
            ),
            None => (137, false, None, Vec::new()),
        };
        if let Some(m) = &message {
            let _ = self
                .log
                .write(Stream::Stderr, format!("isola: {m}\n").as_bytes());
        }
        self.life.last = Some((code, oom));
        self.life.stop = None;
        self.life.phase = Phase::Ended;
        let ran_for = self
            .life
            .started_at
            .map(|t| t.elapsed())
            .unwrap_or_default();
        let restarts = self.instance.as_ref().map_or(0, |i| i.state.restarts);
        let again = self
            .restart
            .again(code, restarts, self.life.stopped_by_user, ran_for);
        if let Some(delay) = again {
            self.life.phase = Phase::BackOff(Instant::now() + delay);
        }
        self.record(|s| {
            s.status = if again.is_some() {
                Status::Restarting
            } else {
                Status::Exited
            };
            s.exit_code = Some(code);
            s.oom_killed = oom;
            s.finished = Some(isola_core::instance::now());
            if again.is_none() {
                s.pid = None;
            }
            s.counters = counters;
        });
        // Told only once recorded: whoever waited may act on the state.
        let response = self.exited_response();
        let waiting: Vec<u64> = self
            .life
            .clients
            .iter()
            .filter(|(_, c)| c.waiting)
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            if let Some(c) = self.life.clients.get_mut(&id) {
                c.waiting = false;
                c.attach = None;
            }
            self.answer(id, &response, &[]);
        }
    }

    fn end_for_good(&mut self) {
        self.life.phase = Phase::Ended;
        let last = self.life.last;
        self.record(|s| {
            s.status = Status::Exited;
            s.exit_code = last.map(|(c, _)| c);
            s.pid = None;
        });
    }

    fn timers(&mut self) {
        let now = Instant::now();
        if self.life.shed_at.is_some_and(|at| now >= at) {
            self.life.shed_at = None;
            super::resident::shed_unused_pages();
        }
        if let Some(stop) = &mut self.life.stop {
            if let Some(force_at) = stop.force_at {
                if now >= force_at {
                    tracing::warn!(
                        "sandbox {} did not end on SIGKILL: tearing it down",
                        self.spec.id
                    );
                    self.sandbox_ended(true);
                }
            } else if now >= stop.kill_at {
                stop.force_at = Some(now + FORCE_AFTER);
                if let Some(s) = self.life.sandbox.as_mut() {
                    if let Err(e) = s.signal(Signal::SIGKILL) {
                        tracing::warn!("stop: SIGKILL: {e}");
                    }
                }
            }
        }
        if let Phase::BackOff(at) = self.life.phase {
            if now >= at {
                self.record(|s| s.restarts += 1);
                let again = self.create_sandbox().and_then(|()| self.start_sandbox());
                if let Err(e) = again {
                    let _ = self.log.write(
                        Stream::Stderr,
                        format!("isola: restarting: {e:#}\n").as_bytes(),
                    );
                    self.life.sandbox = None;
                    self.life.last = Some((125, false));
                    self.end_for_good();
                }
            }
        }
    }

    /// Creating (or starting) failed: what was made goes, as with
    /// [`super::abandon`].
    pub fn abandon(&mut self, again: bool) {
        if let Some(mut sandbox) = self.life.sandbox.take() {
            let _ = sandbox.teardown();
        }
        if let Some(inst) = self.instance.take() {
            super::abandon(&self.root, inst, again);
        }
    }

    /// The sandbox is over for good: the socket goes, and with `--rm` the
    /// whole directory and the name.
    pub fn finish(&mut self) {
        let Some(inst) = self.instance.take() else {
            return;
        };
        let _ = std::fs::remove_file(super::socket_path(&inst.dir));
        self.life.clients.clear();
        if self.remove_at_end {
            let name = inst.state.name.clone();
            if let Err(e) = inst.remove() {
                tracing::warn!("removing sandbox {}: {e}", self.spec.id);
            }
            if let Some(name) = name {
                isola_core::instance::release_name(&self.root, &name, &self.spec.id);
            }
        }
    }
}

/// A write of input to the workload: it is the workload that must keep up.
fn write_all_blocking(fd: BorrowedFd<'_>, mut data: &[u8]) {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(100u8));
            }
            Err(_) => return,
        }
    }
}
