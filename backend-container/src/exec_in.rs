//! `exec`: a second process in a started container, in its first process's
//! namespaces, cgroup and confinement. Joining a pid namespace moves only
//! the caller's future children, so, as nsenter and runc do, a helper child
//! joins (setns on the first process's pidfd) and clones the process
//! into it with CLONE_PARENT, which makes isola its parent; the helper exits.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use isola_core::backend::{BackendError, Execd, ExitStatus};
use isola_core::spec::{Process, SpecError, User};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::cgroup::{Cgroup, Entry};
use crate::fail::Fail;
use crate::message::{self, Channel, Report};
use crate::{exec, policy, spawn};

/// The sandbox the process joins.
pub struct Target<'a> {
    /// The first process: its namespaces are joined.
    pub pidfd: BorrowedFd<'a>,
    /// Its namespaces but the cgroup one, which the process joins itself
    /// once it is in the cgroup.
    pub namespaces: CloneFlags,
    pub cgroup: &'a Cgroup,
    pub policy: &'a policy::Prepared,
}

/// What the helper and the process need, made before the first clone, so
/// that they do little more than system calls.
struct Plan<'a> {
    target: &'a Target<'a>,
    user: &'a User,
    args: Vec<CString>,
    env: Vec<CString>,
    cwd: CString,
    entry: Entry,
    /// Without `stdin`: the host's /dev/null, opened here (a /dev/null
    /// opened in the sandbox is whatever its workload made of it).
    null: Option<File>,
    /// The caller's descriptors for its stdin, stdout and stderr.
    stdio: Option<[BorrowedFd<'a>; 3]>,
    /// A terminal of the sandbox's devpts instead.
    tty: bool,
}

/// The exec'd process, a child of isola. Dropped before it is reaped, it
/// is killed and reaped: the kernel holds a pid namespace's init in its
/// exit until every process of the namespace is reaped, so one left
/// unreaped would hang `wait` and teardown on the first process.
pub struct Running {
    pid: Pid,
    /// Readable once it exits, whichever thread SIGCHLD goes to.
    pidfd: OwnedFd,
    /// With a terminal: its master end.
    pub terminal: Option<OwnedFd>,
    reaped: bool,
}

impl Execd for Running {
    fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    fn take_terminal(&mut self) -> Option<OwnedFd> {
        self.terminal.take()
    }

    fn signal(&self, signal: Signal) -> Result<(), BackendError> {
        spawn::send_signal(&self.pidfd, signal)
            .map_err(|e| BackendError::step(format!("sending {signal} to the process"), e))
    }

    fn wait(mut self: Box<Self>) -> Result<ExitStatus, BackendError> {
        let status = loop {
            match waitpid(self.pid, None) {
                Err(Errno::EINTR) => continue,
                other => break other,
            }
        };
        self.reaped = true;
        match status {
            Ok(WaitStatus::Exited(_, code)) => Ok(ExitStatus::Exited(code)),
            Ok(WaitStatus::Signaled(_, signal, _)) => Ok(ExitStatus::Signaled(signal as i32)),
            Ok(other) => Err(BackendError::step(
                "waiting for the process",
                Fail::msg(format!("unexpected wait status {other:?}")),
            )),
            Err(e) => Err(BackendError::step("waiting for the process", e)),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        // Unreaped, the PID still names our child.
        let _ = kill(self.pid, Signal::SIGKILL);
        reap(self.pid);
    }
}

const STARTING: &str = "starting a process in the sandbox";

/// Start `process` in the sandbox, on `stdio` (the caller's own if `None`)
/// or, with `process.tty`, on a terminal whose master end comes back. On
/// return it has exec'd, or failed to and exits with 127 or 126 (the
/// reason logged); a failure before exec (joining, the working directory,
/// confinement) is the error.
pub fn start<'a>(
    target: &'a Target<'a>,
    process: &Process,
    stdio: Option<[BorrowedFd<'a>; 3]>,
) -> Result<Running, BackendError> {
    if process.args.is_empty() {
        return Err(SpecError::NoCommand.into());
    }
    if !process.cwd.starts_with('/') {
        return Err(SpecError::RelativeCwd(process.cwd.clone()).into());
    }
    let cwd = CString::new(process.cwd.as_bytes()).map_err(|_| SpecError::Nul {
        what: "working directory",
        value: process.cwd.clone(),
    })?;
    let null = if process.stdin || process.tty || stdio.is_some() {
        None
    } else {
        Some(File::open("/dev/null").map_err(|e| BackendError::step("opening /dev/null", e))?)
    };
    let plan = Plan {
        target,
        user: &process.user,
        args: exec::cstrings(&process.args, "argument")?,
        env: exec::cstrings(&process.env, "environment variable")?,
        cwd,
        entry: target
            .cgroup
            .entry()
            .map_err(|e| BackendError::step("opening the sandbox's cgroup", e))?,
        null,
        stdio,
        tty: process.tty,
    };
    let (ours, theirs) = message::pair().map_err(|e| BackendError::step("socketpair", e))?;
    let (pid_in, pid_out) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| BackendError::step("pipe2", e))?;
    // SAFETY: isola is single-threaded here, as when it created the
    // sandbox (the frontend starts no thread of its own).
    let helper = unsafe {
        spawn::spawn(CloneFlags::empty(), None, || {
            helper_main(&plan, &theirs, &pid_out)
        })
    };
    // EOF on ours now means the process exec'd, or died with the helper.
    drop(theirs);
    drop(pid_out);
    let helper = helper.map_err(|e| BackendError::step("clone3", e))?;
    let pid = read_pid(&pid_in);
    reap(helper.pid);
    // Ours (CLONE_PARENT) and not reaped: the PID still names it.
    let running = match pid.map(|pid| (pid, spawn::open_pidfd(pid))) {
        Some((pid, Ok(pidfd))) => Some(Running {
            pid,
            pidfd,
            terminal: None,
            reaped: false,
        }),
        Some((pid, Err(e))) => {
            let _ = kill(pid, Signal::SIGKILL);
            reap(pid);
            return Err(BackendError::step("opening the process's pidfd", e));
        }
        None => None,
    };
    let mut report = ours
        .next_report()
        .map_err(|e| BackendError::step(STARTING, e))?;
    let mut terminal = None;
    if let Some((Report::Terminal, mut fds)) = report {
        terminal = fds.pop();
        report = ours
            .next_report()
            .map_err(|e| BackendError::step(STARTING, e))?;
    }
    match report {
        // Its end of the channel closed at exec.
        None => {}
        // It exits with the code shells use, which the caller gets.
        Some((Report::ExecFailed { message, .. }, _)) => tracing::warn!("{message}"),
        Some((Report::SetupFailed(fail), _)) => {
            return Err(BackendError::step("entering the sandbox", fail))
        }
        Some((other, _)) => {
            let fail = Fail::msg(format!("it sent {other:?} out of turn"));
            return Err(BackendError::step(STARTING, fail));
        }
    }
    let mut running = running.ok_or_else(|| {
        BackendError::step(
            STARTING,
            Fail::msg("the helper that joins it ended without a word"),
        )
    })?;
    running.terminal = terminal;
    Ok(running)
}

/// The process's PID as isola sees it, written by the helper; `None` when
/// the helper ended without cloning it (its report says why).
fn read_pid(pipe: &OwnedFd) -> Option<Pid> {
    let mut bytes = [0u8; 4];
    loop {
        // Four bytes into a pipe are written, and read, at once.
        return match nix::unistd::read(pipe, &mut bytes) {
            Err(Errno::EINTR) => continue,
            Ok(4) => Some(Pid::from_raw(i32::from_ne_bytes(bytes))).filter(|p| p.as_raw() > 0),
            _ => None,
        };
    }
}

fn reap(pid: Pid) {
    while waitpid(pid, None) == Err(Errno::EINTR) {}
}

/// In the helper: join the namespaces, clone the process, tell isola its
/// PID. Its exit code.
fn helper_main(plan: &Plan, channel: &Channel, pid_out: &OwnedFd) -> i32 {
    match join_and_clone(plan, channel) {
        // Only a dead isola closes the pipe early; the process dies with it.
        Ok(pid) => match nix::unistd::write(pid_out, &pid.as_raw().to_ne_bytes()) {
            Ok(4) => 0,
            _ => 1,
        },
        Err(fail) => {
            let _ = channel.report(&Report::SetupFailed(fail), &[]);
            1
        }
    }
}

fn join_and_clone(plan: &Plan, channel: &Channel) -> Result<Pid, Fail> {
    // Through a pidfd, setns joins them all at once (Linux 5.8).
    setns(plan.target.pidfd, plan.target.namespaces)
        .map_err(|e| Fail::sys("joining the sandbox's namespaces (setns)", e))?;
    // On v2 the process is born in the cgroup; on v1 it moves itself.
    let born_in = match &plan.entry {
        Entry::Directory(dir) => Some(dir.as_fd()),
        Entry::Tasks(_) => None,
    };
    // SAFETY: the helper has one thread, a copy of isola's calling one.
    let spawned = unsafe {
        spawn::spawn(CloneFlags::CLONE_PARENT, born_in, || {
            process_main(plan, channel)
        })
    }
    .map_err(|e| Fail::sys("cloning into the sandbox's pid namespace", e))?;
    Ok(spawned.pid)
}

/// In the process: set up, then the program; the exit code if neither
/// could be done.
fn process_main(plan: &Plan, channel: &Channel) -> i32 {
    if let Err(fail) = enter(plan, channel) {
        let _ = channel.report(&Report::SetupFailed(fail), &[]);
        return 1;
    }
    exec::exec_or_report(&plan.args, &plan.env, channel)
}

/// The cgroup, then the cgroup namespace, stdin, the working directory,
/// the user and confinement: the first process's order (child.rs).
fn enter(plan: &Plan, channel: &Channel) -> Result<(), Fail> {
    // Die with isola, its parent, as the first process does.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if let Entry::Tasks(files) = &plan.entry {
        // A single thread writing 0 moves itself without the global lock
        // a move from outside takes (see `Cgroup::entry`).
        crate::cgroup::move_self(files)
            .map_err(|e| Fail::sys("joining the sandbox's cgroup", e))?;
    }
    // Here, not in the helper: with cgroup2's nsdelegate (systemd's
    // default) the kernel refuses CLONE_INTO_CGROUP from a caller whose
    // cgroup lies outside its cgroup namespace, as isola's does.
    setns(plan.target.pidfd, CloneFlags::CLONE_NEWCGROUP)
        .map_err(|e| Fail::sys("joining the sandbox's cgroup namespace (setns)", e))?;
    if let Some(null) = &plan.null {
        nix::unistd::dup2_stdin(null).map_err(|e| Fail::sys("redirecting stdin", e))?;
    }
    if let Some([stdin, stdout, stderr]) = &plan.stdio {
        for (fd, to) in [(stdin, 0), (stdout, 1), (stderr, 2)] {
            // SAFETY: dup2 onto 0..2 of this single-threaded process; the
            // caller's descriptor stays open in it until exec.
            if fd.as_raw_fd() != to && unsafe { libc::dup2(fd.as_raw_fd(), to) } < 0 {
                return Err(Fail::sys("redirecting stdio", Errno::last()));
            }
        }
    }
    if plan.tty {
        // From the sandbox's own devpts, which joining its mount namespace
        // made /dev/pts; the caller relays the master end.
        let (master, slave) = crate::tty::open_in_sandbox()?;
        channel
            .report(&Report::Terminal, &[master.as_raw_fd()])
            .map_err(|e| Fail::msg(format!("handing over the terminal: {e}")))?;
        drop(master);
        crate::tty::become_controlling(&slave)?;
    }
    // Joining the mount namespace put the root and cwd at the sandbox's
    // root; nothing is created: docker exec refuses a missing directory too.
    nix::unistd::chdir(plan.cwd.as_c_str()).map_err(|e| {
        Fail::sys(
            format!(
                "entering the working directory {}",
                plan.cwd.to_string_lossy()
            ),
            e,
        )
    })?;
    policy::apply(plan.target.policy, plan.user)?;
    exec::seal()
}
