//! The microVM's keeper: the process in the pid file. It boots the guest
//! parked, waits for `start`, and then serves until the workload ends:
//! the signals it gets go to the guest's init, and `isola-runtime exec`
//! asks it, over `exec.sock` in the container's directory, for processes
//! in the guest, since it holds the guest's one agent channel.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use isola_core::backend::{Backend, ExecSpec, Execd, IdleWork, RunContext, Sandbox};
use isola_core::chain::chain;
use isola_core::explain::Explain;
use isola_core::oci::gate;
use isola_core::spec::{Process, RunSpec, User};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::backends::Cgroup;
use crate::relay::Relayed;
use crate::wire;

/// The keeper's socket in the container's directory.
pub const EXEC_SOCKET: &str = "exec.sock";

/// What `isola-runtime exec` asks of the keeper.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// A process in the guest, on the three descriptors that come with it
    /// (none with a terminal: its master end comes back).
    Exec {
        process: Box<oci_spec::runtime::Process>,
    },
    /// A signal for the process this connection started.
    Signal { signal: i32 },
}

/// What the keeper answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// It runs (a terminal's master end comes with it).
    Started,
    /// It ended with `code` (128+N for signal N).
    Exited { code: i32 },
    /// One sentence: why it was not started.
    Refused { message: String },
}

/// The code of a process killed with the guest (SIGKILL's, as a
/// container's exec'd processes die with its init).
pub const KILLED: i32 = 128 + 9;

/// The keeper's life: into the cgroup, boot the guest parked, say so,
/// wait for `start`, serve until the workload's end; its exit code.
pub fn keeper(
    backend: &dyn Backend,
    spec: &RunSpec,
    state_dir: &Path,
    group: &Cgroup,
    start: &OwnedFd,
    ready: OwnedFd,
) -> i32 {
    let mut ready = std::fs::File::from(ready);
    let mut say = |text: &str| {
        let _ = ready.write_all(text.as_bytes());
    };
    if let Err(e) = group.add_pid(std::process::id() as i32) {
        say(&format!("putting the microVM in its cgroup: {e}"));
        return 1;
    }
    let instance_dir = state_dir.join("vm");
    if let Err(e) = std::fs::create_dir_all(&instance_dir) {
        say(&format!("making {}: {e}", instance_dir.display()));
        return 1;
    }
    let ctx = RunContext {
        instance_dir,
        state_dir: state_dir.to_path_buf(),
        explain: Explain::default(),
        idle: IdleWork::default(),
        ephemeral: true,
        park: true,
        clock: Instant::now(),
    };
    let mut sandbox = match backend.create(spec, &ctx) {
        Ok(s) => s,
        Err(e) => {
            say(&format!("booting the microVM: {}", chain(&e)));
            return 1;
        }
    };
    // Blocked before `start`: a signal that comes meanwhile waits for the
    // loop below instead of ending the keeper.
    let signals = match Relayed::block() {
        Ok(s) => s,
        Err(e) => {
            say(&format!("blocking the signals passed to the guest: {e:#}"));
            return 1;
        }
    };
    let listener = match wire::listen(&state_dir.join(EXEC_SOCKET)) {
        Ok(l) => l,
        Err(e) => {
            say(&e.to_string());
            return 1;
        }
    };
    say("ok");
    drop(ready);
    if !gate::wait(start) {
        return 1;
    }
    if let Err(e) = sandbox.start() {
        eprintln!(
            "isola-runtime: starting the microVM's process: {}",
            chain(&e)
        );
        return 1;
    }
    serve(sandbox.as_mut(), &signals, &listener);
    drop(listener);
    let outcome = sandbox.wait();
    let _ = sandbox.teardown();
    match outcome {
        Ok(o) => {
            if let Some(m) = o.message {
                eprintln!("isola-runtime: {m}");
            }
            o.status.code()
        }
        Err(e) => {
            eprintln!("isola-runtime: {}", chain(&e));
            1
        }
    }
}

/// One `isola-runtime exec`'s connection, and its process once started.
struct Client {
    socket: OwnedFd,
    process: Option<Box<dyn Execd>>,
}

/// What woke the loop.
enum Source {
    Ended,
    Signals,
    Listener,
    Client(usize),
    Process(usize),
}

/// Until the workload ends: signals to the guest's init, execs started,
/// their signals passed on and their ends told.
fn serve(sandbox: &mut dyn Sandbox, signals: &Relayed, listener: &OwnedFd) {
    let mut clients: Vec<Client> = Vec::new();
    while let Some(ended) = sandbox.exit_fd() {
        let mut sources = vec![Source::Ended, Source::Signals, Source::Listener];
        let mut fds = vec![
            PollFd::new(ended, PollFlags::POLLIN),
            PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
        ];
        for (i, c) in clients.iter().enumerate() {
            sources.push(Source::Client(i));
            fds.push(PollFd::new(c.socket.as_fd(), PollFlags::POLLIN));
            if let Some(p) = &c.process {
                sources.push(Source::Process(i));
                fds.push(PollFd::new(p.pidfd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                eprintln!("isola-runtime: the microVM's keeper: poll: {e}");
                break;
            }
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        // Clients that went are removed after, highest first, so that no
        // index in `sources` moves while they are read.
        let mut gone = Vec::new();
        for (source, _) in sources.iter().zip(&ready).filter(|(_, r)| **r) {
            match source {
                Source::Ended => {}
                Source::Signals => pass_signals(sandbox, signals),
                Source::Listener => accept(listener, &mut clients),
                Source::Client(i) => {
                    if !heard(sandbox, &mut clients[*i]) {
                        gone.push(*i);
                    }
                }
                Source::Process(i) => tell_end(&mut clients[*i]),
            }
        }
        gone.sort_unstable();
        gone.dedup();
        for i in gone.into_iter().rev() {
            // Dropped before its end: the guest's process is killed.
            clients.swap_remove(i);
        }
        if ready[0] {
            break;
        }
    }
    for mut c in clients {
        if c.process.take().is_some() {
            tell(&c.socket, &Answer::Exited { code: KILLED }, &[]);
        }
    }
}

fn pass_signals(sandbox: &mut dyn Sandbox, signals: &Relayed) {
    while let Ok(Some(info)) = signals.fd.read_signal() {
        match Signal::try_from(info.ssi_signo as i32) {
            Ok(Signal::SIGWINCH) | Err(_) => {}
            Ok(signal) => {
                if let Err(e) = sandbox.signal(signal) {
                    tracing::debug!("passing {signal} to the guest: {e}");
                }
            }
        }
    }
}

fn accept(listener: &OwnedFd, clients: &mut Vec<Client>) {
    use nix::sys::socket::{accept4, SockFlag};
    while let Ok(fd) = accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
        // SAFETY: accept4 returned a new descriptor that nothing else owns.
        let socket = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        clients.push(Client {
            socket,
            process: None,
        });
    }
}

/// A client's message acted on; false when it has gone (or spoke
/// nonsense), so that it and its process go.
fn heard(sandbox: &mut dyn Sandbox, client: &mut Client) -> bool {
    let (request, fds) = match wire::recv::<Request>(client.socket.as_raw_fd()) {
        Ok(Some(got)) => got,
        Ok(None) => return false,
        Err(e) => {
            tracing::debug!("an exec's connection: {e}");
            return false;
        }
    };
    match request {
        Request::Signal { signal } => {
            let sent =
                Signal::try_from(signal).map(|s| client.process.as_ref().map(|p| p.signal(s)));
            if let Ok(Some(Err(e))) = sent {
                tracing::debug!("passing signal {signal} to an exec'd process: {e}");
            }
        }
        Request::Exec { .. } if client.process.is_some() => {
            let message = "one process per connection".to_string();
            tell(&client.socket, &Answer::Refused { message }, &[]);
        }
        Request::Exec { process } => match start(sandbox, &process, &fds) {
            Ok(mut p) => {
                let master = p.take_terminal();
                let out: Vec<i32> = master.iter().map(|m| m.as_raw_fd()).collect();
                tell(&client.socket, &Answer::Started, &out);
                client.process = Some(p);
            }
            Err(message) => tell(&client.socket, &Answer::Refused { message }, &[]),
        },
    }
    true
}

/// The OCI process started in the guest on `fds` (stdin, stdout, stderr),
/// or on a terminal.
fn start(
    sandbox: &mut dyn Sandbox,
    p: &oci_spec::runtime::Process,
    fds: &[OwnedFd],
) -> Result<Box<dyn Execd>, String> {
    let tty = p.terminal().unwrap_or(false);
    let stdio: Option<[BorrowedFd<'_>; 3]> = match (tty, fds) {
        (true, _) => None,
        (false, [i, o, e, ..]) => Some([i.as_fd(), o.as_fd(), e.as_fd()]),
        (false, _) => return Err("exec needs the three stdio descriptors".into()),
    };
    let user = p.user();
    let process = Process {
        args: p.args().clone().unwrap_or_default(),
        env: p.env().clone().unwrap_or_default(),
        cwd: p.cwd().to_string_lossy().into_owned(),
        user: User {
            uid: user.uid(),
            gid: user.gid(),
            groups: user.additional_gids().clone().unwrap_or_default(),
        },
        tty,
        stdin: true,
    };
    let spec = ExecSpec {
        process,
        privileged: false,
        stdio,
    };
    sandbox.exec(&spec).map_err(|e| chain(&e))
}

/// A process's end, told to the client that started it.
fn tell_end(client: &mut Client) {
    let Some(process) = client.process.take() else {
        return;
    };
    let code = match process.wait() {
        Ok(status) => status.code(),
        Err(e) => {
            tracing::debug!("waiting for an exec'd process: {e}");
            KILLED
        }
    };
    tell(&client.socket, &Answer::Exited { code }, &[]);
}

fn tell(socket: &OwnedFd, answer: &Answer, fds: &[i32]) {
    if let Err(e) = wire::send(socket.as_raw_fd(), answer, fds) {
        tracing::debug!("answering an exec: {e}");
    }
}
