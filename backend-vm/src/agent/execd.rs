//! A process started in the guest over the agent channel, as core's
//! `Execd`: its "pidfd" is an eventfd set when its end arrives (a guest's
//! process has no host pid), its signals and end travel as frames.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

use isola_core::backend::{BackendError, ExecSpec, Execd, ExitStatus};
use isola_guest_spec::agent::{Exec, Session, Status};
use nix::sys::signal::Signal;

use super::client::Client;
use super::shared::Io;
use super::shared::Shared;
use super::{host_pty, AgentError};
use crate::notice::Notice;

pub struct VmExecd {
    shared: Arc<Shared>,
    session: Session,
    ended: Notice,
    terminal: Option<OwnedFd>,
    waited: bool,
}

/// A terminal's size until the caller's is known (the pump passes it on
/// once the caller sets it on the master).
const FIRST_SIZE: [u16; 2] = [24, 80];

/// Starts `spec`'s process in the guest behind `client`.
pub fn start(client: &Client, spec: &ExecSpec<'_>) -> Result<VmExecd, BackendError> {
    let p = &spec.process;
    let exec = Exec {
        args: p.args.clone(),
        env: p.env.clone(),
        cwd: p.cwd.clone(),
        uid: p.user.uid,
        gid: p.user.gid,
        groups: p.user.groups.clone(),
        stdin: p.stdin,
        tty: p.tty.then_some(FIRST_SIZE),
    };
    let step = |e: AgentError| BackendError::step("starting the process in the guest", e);
    let (io, terminal) = if p.tty {
        let pty = host_pty::open().map_err(step)?;
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| step(AgentError::Io(e)));
        let io = Io {
            input: if p.stdin {
                Some(dup(&pty.slave)?)
            } else {
                None
            },
            stdout: Some(dup(&pty.slave)?),
            stderr: None,
            terminal: Some(pty.slave),
            input_ends: false,
            size: None,
            in_flight: false,
        };
        (io, Some(pty.master))
    } else {
        // SAFETY: 0, 1 and 2 are this process's own for its whole life.
        let own = [0, 1, 2].map(|fd| unsafe { BorrowedFd::borrow_raw(fd) });
        let [i, o, e] = spec.stdio.unwrap_or(own);
        let dup = |fd: BorrowedFd<'_>| fd.try_clone_to_owned().map_err(|e| step(AgentError::Io(e)));
        let io = Io {
            input: if p.stdin { Some(dup(i)?) } else { None },
            stdout: Some(dup(o)?),
            stderr: Some(dup(e)?),
            terminal: None,
            input_ends: true,
            size: None,
            in_flight: false,
        };
        (io, None)
    };
    let shared = client.shared();
    let (session, ended) = shared.exec(exec, io).map_err(|e| match e {
        AgentError::Refused(_) => BackendError::Unsupported(e.to_string()),
        other => step(other),
    })?;
    Ok(VmExecd {
        shared,
        session,
        ended,
        terminal,
        waited: false,
    })
}

impl Execd for VmExecd {
    fn pidfd(&self) -> BorrowedFd<'_> {
        self.ended.fd()
    }

    fn take_terminal(&mut self) -> Option<OwnedFd> {
        self.terminal.take()
    }

    fn signal(&self, signal: Signal) -> Result<(), BackendError> {
        self.shared
            .signal(self.session, signal as i32)
            .map_err(|e| BackendError::step(format!("sending {signal} to the process"), e))
    }

    fn wait(mut self: Box<Self>) -> Result<ExitStatus, BackendError> {
        self.waited = true;
        Ok(match self.shared.wait(self.session) {
            Status::Exited(c) => ExitStatus::Exited(c),
            Status::Signaled(s) => ExitStatus::Signaled(s),
        })
    }
}

impl Drop for VmExecd {
    /// Not waited for: killed, as a container's exec'd process is.
    fn drop(&mut self) {
        if !self.waited {
            self.shared.abandon(self.session);
        }
    }
}
