//! `isola-runtime exec`: another process in a running container. The
//! runtime's process enters the container's pid namespace (which only its
//! children feel) and clones the process into the container's cgroup; the
//! process joins the other namespaces itself, becomes what process.json
//! says, and execs. The runtime keeps its own mounts, so the console
//! socket and pid file are reached by their host paths.

use std::os::fd::{AsFd, BorrowedFd};

use isola_core::oci::runtime::{ExecOptions, Execd};
use isola_core::oci::{Record, RuntimeError};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use oci_spec::runtime::Process;

use super::plan::{self, ProcessPlan};
use super::process;
use crate::cgroup::oci::OciCgroup;
use crate::cgroup::Entry;
use crate::fail::Fail;
use crate::message::{self, Channel, Report};
use crate::security::caps::CapSet;
use crate::spawn;

pub fn exec(
    rec: &Record,
    group: &OciCgroup,
    process: &Process,
    opts: &ExecOptions,
) -> Result<Execd, RuntimeError> {
    let mut p = plan::process_plan(process)?;
    // An exec'd process is held to the container's filter, as runc does.
    p.seccomp = plan::seccomp(&super::stored_config(opts.state_dir)?)?;
    if p.terminal && opts.console_socket.is_none() {
        return Err(RuntimeError::Unsupported(
            "process.terminal is true: give --console-socket to receive the terminal".into(),
        ));
    }
    let init = spawn::open_pidfd(nix::unistd::Pid::from_raw(rec.pid))
        .map_err(|e| RuntimeError::step("finding the container's init", e))?;
    if !rec.alive() {
        return Err(RuntimeError::State(format!(
            "container {} is not running",
            rec.id
        )));
    }
    let entry = group
        .entry()
        .map_err(|e| RuntimeError::step("opening the container's cgroup", e))?;
    let (born_in, tasks) = match entry {
        Entry::Directory(dir) => (Some(dir), Vec::new()),
        Entry::Tasks(files) => (None, files),
    };
    setns(init.as_fd(), CloneFlags::CLONE_NEWPID)
        .map_err(|e| RuntimeError::step("entering the container's pid namespace", e))?;
    let (ours, theirs) = message::pair().map_err(|e| RuntimeError::step("socketpair", e))?;
    let bounding = CapSet::bounding();
    let joined = super::in_the_container(rec.pid);
    let child = || {
        let result = enter(init.as_fd(), joined, &tasks)
            .and_then(|()| process::become_it(&p, &theirs, bounding, opts.preserve_fds, false));
        if let Err(fail) = result {
            let _ = theirs.report(&Report::SetupFailed(fail), &[]);
            return 1;
        }
        crate::exec::exec_or_report(&p.args, &process::env(&p), &theirs)
    };
    // SAFETY: isola-runtime is single-threaded.
    let spawned = unsafe {
        spawn::spawn(
            CloneFlags::empty(),
            born_in.as_ref().map(|d| d.as_fd()),
            child,
        )
    }
    .map_err(|e| RuntimeError::step("clone3", e))?;
    drop(theirs);
    if let Err(e) = await_exec(&ours, &p, opts) {
        let _ = spawn::send_signal(&spawned.pidfd, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(spawned.pid, None);
        return Err(e);
    }
    if opts.detach {
        return Ok(Execd::Detached {
            pid: spawned.pid.as_raw(),
        });
    }
    let code = match nix::sys::wait::waitpid(spawned.pid, None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => c,
        Ok(nix::sys::wait::WaitStatus::Signaled(_, s, _)) => 128 + s as i32,
        _ => 255,
    };
    Ok(Execd::Exited { code })
}

fn setns(ns: BorrowedFd, flags: CloneFlags) -> nix::Result<()> {
    nix::sched::setns(ns, flags)
}

/// In the new process: the container's namespaces and cgroup.
fn enter(init: BorrowedFd, joined: CloneFlags, tasks: &[std::fs::File]) -> Result<(), Fail> {
    if !tasks.is_empty() {
        crate::cgroup::move_self(tasks)
            .map_err(|e| Fail::sys("joining the container's cgroup", e))?;
    }
    setns(init, joined).map_err(|e| Fail::sys("entering the container's namespaces", e))
}

/// Until the process has exec'd: its terminal goes to the console socket
/// on the way; a report of failure is the error.
fn await_exec(ours: &Channel, p: &ProcessPlan, opts: &ExecOptions) -> Result<(), RuntimeError> {
    loop {
        match ours.next_report() {
            Ok(None) => return Ok(()),
            Ok(Some((Report::Terminal, mut fds))) => {
                if let Some(master) = fds.pop() {
                    process::pass_terminal(master, p.console_size, opts.console_socket)?;
                }
            }
            Ok(Some((Report::SetupFailed(f), _))) => {
                return Err(RuntimeError::step("setting up the process", f))
            }
            Ok(Some((Report::ExecFailed { message, .. }, _))) => {
                return Err(RuntimeError::State(format!("exec failed: {message}")))
            }
            Ok(Some((other, _))) => {
                return Err(RuntimeError::step(
                    "setting up the process",
                    message::MessageError::Unexpected(format!("{other:?}")),
                ))
            }
            Err(e) => return Err(RuntimeError::step("setting up the process", e)),
        }
    }
}
