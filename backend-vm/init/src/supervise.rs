//! PID 1's loop while the workload runs: forwards signals (the host's bytes
//! on COM2, and those sent to PID 1), feeds the workload's stdin pipe,
//! serves the agent channel, reaps every child (an exec'd process's end
//! goes to the agent), and returns when the workload itself has ended.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signalfd::SignalFd;

use crate::agent::{Agent, Slot};
use crate::signals;
use crate::status::Ended;
use crate::stop::Stop;

pub fn until_exit(
    workload: libc::pid_t,
    signals_in: &SignalFd,
    mut control: Option<&File>,
    mut stdin: Option<&mut crate::stdin::Relay>,
    terminal: Option<&File>,
    mut parser: signals::ControlParser,
    mut agent: Option<&mut Agent>,
) -> Ended {
    let mut stop = Stop::default();
    loop {
        // First, so an end that happened before the loop is not missed.
        if let Some(ended) = reap(workload, agent.as_deref_mut()) {
            return ended;
        }
        let mut fds = vec![PollFd::new(signals_in.as_fd(), PollFlags::POLLIN)];
        if let Some(c) = control {
            fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
        }
        let stdin_fd = stdin.as_deref().and_then(crate::stdin::Relay::poll_fd);
        let stdin_at = stdin_fd.is_some().then_some(fds.len());
        fds.extend(stdin_fd);
        let agent_at = fds.len();
        let agent_fds = agent.as_deref().map(Agent::poll_fds).unwrap_or_default();
        let slots: Vec<Slot> = agent_fds.iter().map(|(slot, _)| *slot).collect();
        fds.extend(agent_fds.into_iter().map(|(_, fd)| fd));
        // Wake for the end of a grace period, or when the agent is due.
        let due = [stop.timeout(), agent.as_deref().and_then(Agent::timeout)];
        let timeout = due
            .into_iter()
            .flatten()
            .min()
            .map_or(PollTimeout::NONE, |t| {
                PollTimeout::try_from(t.as_millis().min(60_000) as u32 + 1)
                    .unwrap_or(PollTimeout::MAX)
            });
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            // Cannot happen with valid descriptors; without poll, wait for
            // the workload alone rather than spin.
            Err(_) => return wait_blocking(workload),
        }
        let control_events = fds
            .get(1)
            .filter(|_| control.is_some())
            .and_then(|f| f.revents())
            .unwrap_or(PollFlags::empty());
        let stdin_ready = stdin_at
            .and_then(|i| fds[i].revents())
            .is_some_and(|r| !r.is_empty());
        let agent_ready: Vec<Slot> = fds[agent_at..]
            .iter()
            .zip(&slots)
            .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, slot)| *slot)
            .collect();
        drop(fds);
        if let Some(agent) = agent.as_deref_mut() {
            agent.step(&agent_ready);
            for signal in agent.take_workload_signals() {
                stop.forward(workload, signal);
            }
        }
        if stdin_ready {
            if let Some(relay) = stdin.as_deref_mut() {
                relay.step();
            }
        }
        while let Ok(Some(info)) = signals_in.read_signal() {
            if info.ssi_signo != libc::SIGCHLD as u32 {
                stop.forward(workload, info.ssi_signo as libc::c_int);
            }
        }
        if control_events.intersects(
            PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL,
        ) {
            if let Some(c) = control {
                if !forward_bytes(workload, c, &mut parser, terminal, &mut stop) {
                    // Hung up or broken: signals from the host are over, the
                    // workload is not. Stop polling it to avoid a busy loop.
                    control = None;
                }
            }
        }
        stop.check(workload);
    }
}

/// Acts on the host's messages waiting on COM2: signals go to the
/// workload, window sizes to its terminal (whose kernel then sends it
/// SIGWINCH). False once the port cannot be read any more.
fn forward_bytes(
    workload: libc::pid_t,
    mut control: &File,
    parser: &mut signals::ControlParser,
    terminal: Option<&File>,
    stop: &mut Stop,
) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match control.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                for message in buf[..n].iter().filter_map(|b| parser.feed(*b)) {
                    match message {
                        signals::Control::Signal(signal) => stop.forward(workload, signal),
                        signals::Control::WindowSize { rows, cols } => {
                            if let Some(t) = terminal {
                                let _ = crate::tty::set_size(t, rows, cols);
                            }
                        }
                        // The workload runs already.
                        signals::Control::GoAhead => {}
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Reaps every child that has ended (orphans are re-parented to PID 1);
/// returns how the workload ended if it is among them. An exec'd
/// process's end goes to the agent, which tells the host.
fn reap(workload: libc::pid_t, mut agent: Option<&mut Agent>) -> Option<Ended> {
    let mut found = None;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid(2) writes only into `status`, which outlives it.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid == 0 || (pid < 0 && Errno::last() != Errno::EINTR) {
            return found;
        }
        let Some(ended) = Ended::from_wait_status(status) else {
            continue;
        };
        if pid == workload {
            found = found.or(Some(ended));
        } else if let Some(agent) = agent.as_deref_mut() {
            agent.reaped(pid, ended.into());
        }
    }
}

fn wait_blocking(workload: libc::pid_t) -> Ended {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: as in `reap`.
        let pid = unsafe { libc::waitpid(workload, &mut status, 0) };
        if pid == workload {
            if let Some(ended) = Ended::from_wait_status(status) {
                return ended;
            }
        } else if pid < 0 && Errno::last() != Errno::EINTR {
            // No such child: it was reaped already and its status is lost.
            return Ended::Exited(crate::fail::SETUP as i32);
        }
    }
}
