//! `isola exec`: a process in a running sandbox, started by its shim on
//! this process's own stdin, stdout and stderr (or on a terminal of the
//! sandbox's, relayed here). Its pidfd comes back, so the signals isola
//! gets go to it without a PID that could be reused; isola exits as it did.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use isola_core::instance;
use isola_core::Root;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use super::relay::{self, Relayed};
use crate::cli::ExecArgs;
use crate::shim::client;
use crate::shim::wire::{ExecRequest, Request, Response};

pub fn exec(root: &Root, args: &ExecArgs) -> Result<i32> {
    let state = instance::find(root, &args.id)?;
    let conn = client::connect_running(root, &state)?;
    let request = Request::Exec(ExecRequest {
        args: args.command.clone(),
        env: args.env.clone(),
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        tty: args.tty,
        stdin: args.interactive,
        privileged: args.privileged,
    });
    // Blocked before it starts: a Ctrl-C meanwhile is the process's.
    let signals = Relayed::block()?;
    let null = std::fs::File::open("/dev/null").context("opening /dev/null")?;
    let stdin_fd = if args.interactive {
        0
    } else {
        null.as_raw_fd()
    };
    let fds: Vec<i32> = if args.tty {
        Vec::new()
    } else {
        vec![stdin_fd, 1, 2]
    };
    let (_, mut got) = conn.ask(&request, &fds)?;
    if got.is_empty() {
        bail!("the shim sent no handle for the process");
    }
    let pidfd = got.remove(0);
    let master = got.pop();
    if args.detach {
        return Ok(0);
    }
    let _raw = master
        .as_ref()
        .and_then(|_| isola_core::terminal::RawMode::enter());
    if let Some(m) = &master {
        if let Some(ws) = isola_core::terminal::window_size(std::io::stdin().as_fd()) {
            isola_core::terminal::set_window_size(m.as_fd(), &ws);
        }
    }
    relay(&conn, &pidfd, master.as_ref(), args.interactive, &signals)
}

/// Until the shim says the process ended: signals to its pidfd, and with a
/// terminal its bytes both ways.
fn relay(
    conn: &client::Conn,
    pidfd: &OwnedFd,
    master: Option<&OwnedFd>,
    interactive: bool,
    signals: &Relayed,
) -> Result<i32> {
    let stdin = std::io::stdin();
    let mut stdin_open = master.is_some() && interactive;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: the connection's descriptor outlives this function.
    let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(conn.fd()) };
    loop {
        let mut fds = vec![
            PollFd::new(sock, PollFlags::POLLIN),
            PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(m) = master {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[1] {
            while let Ok(Some(info)) = signals.fd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGWINCH) => {
                        if let (Some(m), Some(ws)) =
                            (master, isola_core::terminal::window_size(stdin.as_fd()))
                        {
                            isola_core::terminal::set_window_size(m.as_fd(), &ws);
                        }
                    }
                    Ok(sig) => {
                        // A VM's process has no pidfd here: the shim
                        // passes it on.
                        if relay::send_signal(pidfd, sig) == Err(nix::errno::Errno::EBADF) {
                            let _ = conn.send(&Request::SignalExec { signal: sig as i32 }, &[]);
                        }
                    }
                    Err(_) => {}
                }
            }
        }
        if let Some(m) = master {
            if ready[2] {
                relay::copy_once(m, &mut std::io::stdout(), &mut buf);
            }
            if stdin_open && ready.get(3) == Some(&true) {
                match nix::unistd::read(&stdin, &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        let _ = nix::unistd::write(m, &buf[..n]);
                    }
                }
            }
        }
        if ready[0] {
            return match conn.recv()? {
                (Response::Exited { code, .. }, _) => {
                    if let Some(m) = master {
                        relay::drain(m, &mut std::io::stdout(), &mut buf);
                    }
                    Ok(code)
                }
                (Response::Error { message }, _) => bail!("{message}"),
                (other, _) => bail!("the shim answered {other:?}"),
            };
        }
    }
}
