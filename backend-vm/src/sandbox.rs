//! One guest as a handle whose methods are its stages: made by `create`
//! (kernel and monitor chosen, artifact built), `start` boots it on a thread
//! of the monitor's own, `wait` passes the caller's signals on until it ends
//! and turns its end into the sandbox's outcome, `teardown` stops a guest
//! still running and removes the run's files, also on Drop. A parked
//! create (`RunContext::park`) boots the guest already and waits until
//! isola-init is parked, waiting for the go-ahead that `start` sends.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use isola_core::backend::{
    BackendError, ExecSpec, Execd, ExitStatus, Outcome, Phase, Sandbox, Stats,
};
use isola_core::explain::Explain;
use isola_core::terminal::RawMode;
use isola_guest_spec::ports::Mark;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use crate::agent::{self, Client, Dial};
use crate::caller_signals::CallerSignals;
use crate::control::{self, Control};
use crate::deadline::SIGNAL_GRACE;
use crate::guest_exit::{Failure, GuestExit, GuestFailed};
use crate::monitor::{Artifact, Input, Monitor, MonitorError, Running};
use crate::notice::Notice;

/// What `create` hands the sandbox.
pub struct Parts {
    pub monitor: Box<dyn Monitor>,
    pub artifact: Artifact,
    pub input: Input,
    pub tty: bool,
    /// The per-run spec archive, removed at teardown.
    pub spec_archive: PathBuf,
    pub explain: Explain,
    pub clock: Instant,
    /// The phases so far (the root filesystem's).
    pub phases: Vec<(Phase, Duration)>,
    /// isola-init is to park (see [`VmSandbox::park`]).
    pub park: bool,
    /// How to reach the guest's agent for exec, or why it has none.
    pub agent: Result<Dial, String>,
    /// Its address on a bridge network, given back at teardown.
    pub network: Option<isola_core::network::Attachment>,
}

/// Where a guest is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Created,
    Started,
    /// Its monitor's thread has ended and been joined.
    Ended,
}

/// The monitor's thread, running the guest.
struct Booted {
    thread: JoinHandle<Result<GuestExit, MonitorError>>,
    /// Hung up when the thread is done.
    done: OwnedFd,
    /// When booting began, since the run's clock.
    at: Duration,
}

pub struct VmSandbox {
    monitor: Option<Box<dyn Monitor>>,
    monitor_name: &'static str,
    /// A SIGTERM passed on arms the deadline (isola's monitor).
    term_arms_deadline: bool,
    artifact: Artifact,
    input: Input,
    tty: bool,
    spec_archive: PathBuf,
    explain: Explain,
    clock: Instant,
    phases: Vec<(Phase, Duration)>,
    running: Running,
    /// isola's end of isola-init's control channel, and the monitor's
    /// until `start` hands it over.
    control: Option<Control>,
    control_for_monitor: Option<File>,
    signals: Option<CallerSignals>,
    raw: Option<RawMode>,
    booted: Option<Booted>,
    /// Set when isola-init is parked, if it was asked to park.
    parked: Option<Notice>,
    stage: Stage,
    agent_dial: Result<Dial, String>,
    /// Connected at the first exec, kept while the guest runs.
    /// Connected at the first exec (or stats), kept while the guest runs.
    agent: Mutex<Option<Client>>,
    network: Option<isola_core::network::Attachment>,
}

/// Why the guest boots on a monitor, for `--explain`.
const BOOT_WHY: &str = "the workload gets a kernel of its own: the host kernel is reached only through the monitor's few devices";

impl VmSandbox {
    /// The sandbox for `parts`, ready to start: the control channel open
    /// and the caller's signals blocked, before any thread of its starts.
    pub fn new(parts: Parts) -> Result<VmSandbox, BackendError> {
        let (control, control_for_monitor) = control::channel()
            .map_err(|e| BackendError::step("opening isola-init's control channel", e))?;
        let mut sandbox = VmSandbox {
            monitor_name: parts.monitor.name(),
            term_arms_deadline: parts.monitor.stops_unresponsive_guests(),
            monitor: Some(parts.monitor),
            artifact: parts.artifact,
            input: parts.input,
            tty: parts.tty,
            spec_archive: parts.spec_archive,
            explain: parts.explain,
            clock: parts.clock,
            phases: parts.phases,
            running: Running::default(),
            control: Some(control),
            control_for_monitor: Some(control_for_monitor),
            signals: None,
            raw: None,
            booted: None,
            parked: None,
            stage: Stage::Created,
            agent_dial: parts.agent,
            agent: Mutex::new(None),
            network: parts.network,
        };
        if parts.park {
            let notice = Notice::new()
                .map_err(|e| BackendError::step("opening the guest's parked notice", e))?;
            sandbox.running.watch_parked(notice.clone());
            sandbox.parked = Some(notice);
        }
        sandbox.signals = Some(
            CallerSignals::block(sandbox.tty)
                .map_err(|e| BackendError::step("blocking the signals isola passes on", e))?,
        );
        Ok(sandbox)
    }

    pub fn artifact(&self) -> &Artifact {
        &self.artifact
    }

    fn boot_step(&self) -> String {
        format!("boot the guest on the {} monitor", self.monitor_name)
    }

    /// `signal` for the workload, into the control channel. A SIGTERM gives
    /// a guest on isola's monitor [`SIGNAL_GRACE`] to end.
    fn pass_on(&self, signal: Signal) -> std::io::Result<()> {
        if signal == Signal::SIGTERM && self.term_arms_deadline {
            self.running.deadline.arm(SIGNAL_GRACE);
        }
        // A detached guest's agent channel where it has one (`isola stop`,
        // `isola kill`); the control channel, which every guest has,
        // otherwise.
        if self.signal_over_agent(signal) {
            return Ok(());
        }
        match &self.control {
            Some(control) => control.signal(signal),
            None => Ok(()),
        }
    }

    /// The caller's signals that came, passed on; with -t a SIGWINCH is the
    /// caller's new window size.
    fn relay_signals(&self) {
        let Some(signals) = &self.signals else {
            return;
        };
        for signal in signals.take() {
            let passed = match (signal, &self.control) {
                (Signal::SIGWINCH, Some(control)) => control.window_size(),
                _ => self.pass_on(signal),
            };
            if let Err(e) = passed {
                tracing::debug!("passing {signal} on to the guest: {e}");
            }
        }
    }

    /// Relay the caller's signals until the monitor's thread is done.
    fn relay_until_done(&self, done: &OwnedFd) -> Result<(), BackendError> {
        self.relay_until(&[done.as_fd()]).map(drop)
    }

    /// Relay the caller's signals until one of `ends` is readable (or hung
    /// up); which one, the first if more are.
    fn relay_until(&self, ends: &[BorrowedFd<'_>]) -> Result<usize, BackendError> {
        loop {
            let mut fds: Vec<PollFd> = ends
                .iter()
                .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
                .collect();
            if let Some(signals) = &self.signals {
                fds.push(PollFd::new(signals.fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(BackendError::step("waiting for the guest", e)),
            }
            let ready = fds[..ends.len()]
                .iter()
                .position(|f| f.revents().is_some_and(|r| !r.is_empty()));
            drop(fds);
            self.relay_signals();
            if let Some(i) = ready {
                return Ok(i);
            }
        }
    }

    /// Boot the guest on a thread of the monitor's own.
    fn boot(&mut self) -> Result<(), BackendError> {
        let (Some(monitor), Some(control)) = (self.monitor.take(), self.control_for_monitor.take())
        else {
            return Err(BackendError::State("has no monitor to start"));
        };
        let (done, done_by_monitor) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| BackendError::step("starting the guest", e))?;
        self.explain
            .say(&format!("{} — {BOOT_WHY}", self.boot_step()));
        let at = self.clock.elapsed();
        let (artifact, input, running) = (self.artifact.clone(), self.input, self.running.clone());
        // Spawned with the caller's signals blocked: the monitor's threads
        // inherit the mask.
        let thread = std::thread::Builder::new()
            .name("isola-monitor".into())
            .spawn(move || {
                let ran = monitor.run(&artifact, input, control, &running);
                drop(done_by_monitor);
                ran
            })
            .map_err(|e| BackendError::step("starting the monitor's thread", e))?;
        self.booted = Some(Booted { thread, done, at });
        Ok(())
    }

    /// A parked create's second half: boot the guest and wait, passing the
    /// caller's signals on, until isola-init has set everything up and
    /// waits for the go-ahead. A guest that ends first is the create's
    /// error.
    pub fn park(&mut self) -> Result<(), BackendError> {
        let Some(parked) = self.parked.clone() else {
            return Err(BackendError::State("was not made to park"));
        };
        self.boot()?;
        let Some(booted) = self.booted.take() else {
            return Err(BackendError::State("has no guest running"));
        };
        match self.relay_until(&[booted.done.as_fd(), parked.fd()]) {
            Ok(1) => {
                let at = booted.at;
                self.booted = Some(booted);
                if self.explain.enabled {
                    let ms = (self.clock.elapsed() - at).as_secs_f64() * 1e3;
                    self.explain.say(&format!(
                        "  isola-init is up and waits for the go-ahead, {ms:.3} ms after booting began"
                    ));
                }
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => {
                self.booted = Some(booted);
                return Err(e);
            }
        }
        // The guest ended before it was parked.
        let joined = booted.thread.join();
        self.stage = Stage::Ended;
        let exit = joined
            .map_err(|_| {
                BackendError::step(
                    "booting the guest",
                    std::io::Error::other("the monitor's thread panicked"),
                )
            })?
            .map_err(BackendError::from)?;
        let outcome = self.outcome(exit, booted.at)?;
        Err(BackendError::step(
            "booting the guest",
            std::io::Error::other(format!(
                "the guest ended with status {} before its workload was ready to start{}",
                outcome.status.code(),
                outcome
                    .message
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )),
        ))
    }

    /// The guest's end as the sandbox's: its status, the phases from its
    /// boot-timer marks, the message of a guest whose isola-init failed
    /// before it could announce itself.
    fn outcome(&self, exit: GuestExit, booting: Duration) -> Result<Outcome, BackendError> {
        // Without the marks (a guest that never got that far) only the
        // boot's start.
        let mark = |m: Mark| exit.mark(m).map(|at| booting + at);
        let mut phases = self.phases.clone();
        // Parked: created once isola-init waits for the go-ahead.
        let created = mark(Mark::Parked).or(mark(Mark::InitUp));
        phases.push((Phase::SandboxCreated, created.unwrap_or(booting)));
        if let Some(at) = mark(Mark::WorkloadStarted) {
            phases.push((Phase::WorkloadStarted, at));
        }
        phases.push((Phase::WorkloadExited, self.clock.elapsed()));
        let Some(code) = exit.status else {
            return Err(BackendError::step(
                "running the guest",
                GuestFailed {
                    what: Failure::Reset,
                    console: exit.console,
                },
            ));
        };
        Ok(Outcome {
            status: ExitStatus::Exited(i32::from(code)),
            // Held console lines with an exit status: isola-init ran but
            // failed before it could announce itself (QEMU only), and its
            // own message is among them.
            message: exit.console.map(|lines| {
                format!(
                    "the guest ended before isola-init was up; its last console lines:\n{lines}"
                )
            }),
            phases,
            counters: Vec::new(),
        })
    }
}

impl Sandbox for VmSandbox {
    fn start(&mut self) -> Result<(), BackendError> {
        if self.stage != Stage::Created {
            return Err(BackendError::State("was started already"));
        }
        // -t: the caller's terminal raw while the guest runs, so that
        // Ctrl-C and the like reach the guest's terminal as bytes.
        self.raw = self.tty.then(RawMode::enter).flatten();
        let started = match (&self.booted, &self.control) {
            // Parked: the go-ahead. Into the pipe even if the guest has
            // ended meanwhile; `wait` then says how.
            (Some(_), Some(control)) => control
                .go_ahead()
                .map_err(|e| BackendError::step("giving the guest the go-ahead", e)),
            (Some(_), None) => Err(BackendError::State("has no control channel")),
            (None, _) => self.boot(),
        };
        if started.is_err() {
            self.raw = None;
        }
        started?;
        self.stage = Stage::Started;
        Ok(())
    }

    fn signal(&mut self, signal: Signal) -> Result<(), BackendError> {
        if self.stage == Stage::Ended {
            return Err(BackendError::State("has exited"));
        }
        self.pass_on(signal)
            .map_err(|e| BackendError::step(format!("passing {signal} on to the guest"), e))
    }

    fn wait(&mut self) -> Result<Outcome, BackendError> {
        match self.stage {
            // Parked and not started: its end (a signal ends it).
            Stage::Created if self.booted.is_some() => {}
            Stage::Created => return Err(BackendError::State("was not started")),
            Stage::Ended => return Err(BackendError::State("has exited already")),
            Stage::Started => {}
        }
        let Some(booted) = self.booted.take() else {
            return Err(BackendError::State("has no guest running"));
        };
        let relayed = self.relay_until_done(&booted.done);
        if relayed.is_err() {
            // Stopped rather than left running with no one waiting.
            self.running.deadline.arm(Duration::ZERO);
        }
        let joined = booted.thread.join();
        self.stage = Stage::Ended;
        self.raw = None;
        if self.explain.enabled {
            let ms = (self.clock.elapsed() - booted.at).as_secs_f64() * 1e3;
            self.explain
                .say(&format!("  done in {ms:.3} ms: {}", self.boot_step()));
        }
        relayed?;
        let exit = joined
            .map_err(|_| {
                BackendError::step(
                    "running the guest",
                    std::io::Error::other("the monitor's thread panicked"),
                )
            })?
            .map_err(BackendError::from)?;
        self.outcome(exit, booted.at)
    }

    fn exec(&mut self, exec: &ExecSpec<'_>) -> Result<Box<dyn Execd>, BackendError> {
        if self.stage != Stage::Started || self.booted.is_none() {
            return Err(BackendError::State("is not running"));
        }
        let dial = self
            .agent_dial
            .as_ref()
            .map_err(|why| BackendError::Unsupported(why.clone()))?;
        let mut agent = self.agent.lock().unwrap_or_else(|p| p.into_inner());
        if !agent.as_ref().is_some_and(Client::is_open) {
            *agent = None;
            let client = Client::connect(dial)
                .map_err(|e| BackendError::step("reaching the guest's agent", e))?;
            *agent = Some(client);
        }
        match agent.as_ref() {
            Some(client) => Ok(Box::new(agent::start(client, exec)?)),
            None => Err(BackendError::State("has no agent channel")),
        }
    }

    fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        self.booted.as_ref().map(|b| b.done.as_fd())
    }

    fn stats(&self) -> Result<Stats, BackendError> {
        // The monitor's own process (isola's, or QEMU's) while it runs.
        let used = match (&self.booted, self.running.process()) {
            (Some(_), Some(pid)) => crate::proc_stat::cpu_and_memory(pid).ok(),
            _ => None,
        };
        // What the monitor read and wrote: the guest's disks, once it has
        // some; isola's monitor is the caller's own process.
        let io = match (&self.booted, self.running.process()) {
            (Some(_), Some(pid)) => isola_core::proc_io::block_io(&[pid as i32]),
            _ => None,
        };
        Ok(Stats {
            cpu_usec: used.map(|(cpu, _)| cpu),
            memory_bytes: used.map(|(_, memory)| memory),
            memory_limit: Some(self.artifact.memory_bytes),
            pids: self.guest_stats().map(|g| g.processes),
            block_read: io.map(|(r, _)| r),
            block_written: io.map(|(_, w)| w),
        })
    }

    fn teardown(&mut self) -> Result<(), BackendError> {
        if let Some(booted) = self.booted.take() {
            // Still running: stopped now (isola's vCPUs are kicked out,
            // QEMU is killed), and its thread joined.
            self.running.deadline.arm(Duration::ZERO);
            let _ = booted.thread.join();
            self.stage = Stage::Ended;
        }
        if self.stage == Stage::Started {
            self.stage = Stage::Ended;
        }
        self.raw = None;
        // Its thread has seen the channel end with the monitor.
        *self.agent.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Ok(dial) = &self.agent_dial {
            let _ = std::fs::remove_file(dial.path());
        }
        // The monitor's readers of the channel see its end.
        self.control = None;
        self.control_for_monitor = None;
        // Every thread that blocked the signals is done: they may reach
        // isola again.
        self.signals = None;
        // The monitor is gone: the tap goes with isola's last descriptor.
        self.artifact.net = None;
        if let Some(att) = self.network.take() {
            if let Err(e) = att.leave() {
                tracing::warn!("leaving the network: {e}");
            }
        }
        match std::fs::remove_file(&self.spec_archive) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(BackendError::step("removing the guest's run spec", e))
            }
            _ => Ok(()),
        }
    }
}

impl VmSandbox {
    /// The agent channel of a guest whose workload runs, connected if it
    /// was not, the guest given `within` to answer; None where the guest
    /// has none or does not answer.
    fn reach_agent(&self, within: Duration) -> Option<MutexGuard<'_, Option<Client>>> {
        if self.stage != Stage::Started || self.booted.is_none() {
            return None;
        }
        let dial = self.agent_dial.as_ref().ok()?;
        let mut agent = self.agent.lock().unwrap_or_else(|p| p.into_inner());
        if !agent.as_ref().is_some_and(Client::is_open) {
            *agent = Client::connect_within(dial, within).ok();
        }
        agent.is_some().then_some(agent)
    }

    /// The guest's own view over its agent channel, if it has one and
    /// answers soon: a stats call must not wait on a busy guest.
    fn guest_stats(&self) -> Option<isola_guest_spec::agent::GuestStats> {
        self.reach_agent(AGENT_SOON)?.as_ref()?.stats(AGENT_SOON)
    }

    /// `signal` for the workload over the agent channel; false where it
    /// could not go that way (no channel, or no answer soon).
    fn signal_over_agent(&self, signal: Signal) -> bool {
        let Some(agent) = self.reach_agent(AGENT_SOON) else {
            return false;
        };
        let sent = agent
            .as_ref()
            .is_some_and(|c| c.signal_workload(signal as i32).is_ok());
        if sent {
            tracing::debug!("{signal} to the guest's workload over the agent channel");
        }
        sent
    }
}

/// How long `isola stats` waits for the guest's own view, and a signal
/// for the agent channel before it takes the control channel.
const AGENT_SOON: Duration = Duration::from_secs(2);

impl Drop for VmSandbox {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!("tearing down a guest: {e}");
        }
    }
}
