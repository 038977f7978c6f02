//! `isola attach`: the running sandbox's output here, and what is typed
//! there, through pipes handed to its shim; Ctrl-p Ctrl-q detaches and
//! leaves it running. isola exits as the workload does if it ends first.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use isola_core::instance::State;
use isola_core::Root;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use super::relay::{copy_once, drain, Relayed};
use crate::shim::client;
use crate::shim::wire::{Request, Response};

/// docker's detach keys.
const DETACH: [u8; 2] = [0x10, 0x11];

/// Attach; with `start`, a connection to a created sandbox's shim, which
/// is then told to start it (`start -a`).
pub fn attach(root: &Root, state: &State, stdin: bool, start: Option<client::Conn>) -> Result<i32> {
    let conn = client::connect_running(root, state)?;
    let tty = has_terminal(root, state);
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("making pipes");
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (in_r, in_w) = if stdin {
        let (r, w) = pipe()?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let mut fds = vec![out_w.as_raw_fd(), err_w.as_raw_fd()];
    if let Some(r) = &in_r {
        fds.push(r.as_raw_fd());
    }
    let signals = Relayed::block()?;
    conn.ask(&Request::Attach { stdin }, &fds)?;
    drop((out_w, err_w, in_r));
    if let Some(starter) = start {
        starter.ask(&Request::Start, &[])?;
    }
    let _raw = tty.then(isola_core::terminal::RawMode::enter).flatten();
    if tty {
        resize(&conn);
    }
    let stdin_fd = std::io::stdin();
    let mut stdin_open = stdin;
    let mut outs: Vec<Option<OwnedFd>> = vec![Some(out_r), Some(err_r)];
    let mut buf = vec![0u8; 16 * 1024];
    // A Ctrl-p held back until the next key says whether it detaches.
    let mut held = false;
    // SAFETY: the connection's descriptor outlives this function.
    let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(conn.fd()) };
    loop {
        let mut pfds = vec![
            PollFd::new(sock, PollFlags::POLLIN),
            PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN),
        ];
        let mut which = Vec::new();
        for (i, o) in outs.iter().enumerate() {
            if let Some(o) = o {
                pfds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
                which.push(i);
            }
        }
        if stdin_open {
            pfds.push(PollFd::new(stdin_fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut pfds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let ready: Vec<bool> = pfds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(pfds);
        if ready[1] {
            while let Ok(Some(info)) = signals.fd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGWINCH) if tty => resize(&conn),
                    // As docker's --sig-proxy: the workload gets them.
                    Ok(sig) if sig != Signal::SIGWINCH => {
                        let _ = conn.send(&Request::Signal { signal: sig as i32 }, &[]);
                    }
                    _ => {}
                }
            }
        }
        for (k, i) in which.iter().enumerate() {
            if !ready[2 + k] {
                continue;
            }
            if let Some(o) = outs[*i].as_ref() {
                let open = if *i == 0 {
                    copy_once(o, &mut std::io::stdout(), &mut buf)
                } else {
                    copy_once(o, &mut std::io::stderr(), &mut buf)
                };
                if !open {
                    outs[*i] = None;
                }
            }
        }
        if stdin_open && ready[2 + which.len()] {
            match nix::unistd::read(&stdin_fd, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let mut send = Vec::with_capacity(n + 1);
                    for &b in &buf[..n] {
                        if held {
                            held = false;
                            if b == DETACH[1] {
                                return Ok(0);
                            }
                            send.push(DETACH[0]);
                        }
                        if b == DETACH[0] {
                            held = true;
                        } else {
                            send.push(b);
                        }
                    }
                    if let Some(w) = &in_w {
                        if nix::unistd::write(w, &send).is_err() {
                            stdin_open = false;
                        }
                    }
                }
            }
        }
        if ready[0] {
            // The end (or an error on the way), or the answer to a signal
            // passed on, which changes nothing here.
            let said = conn.recv();
            if let Ok((Response::Ok, _)) = said {
                continue;
            }
            if let Some(o) = &outs[0] {
                drain(o, &mut std::io::stdout(), &mut buf);
            }
            if let Some(o) = &outs[1] {
                drain(o, &mut std::io::stderr(), &mut buf);
            }
            return match said? {
                (Response::Exited { code, .. }, _) => Ok(code),
                (Response::Error { message }, _) => bail!("{message}"),
                (other, _) => bail!("the shim answered {other:?}"),
            };
        }
    }
}

/// Whether the sandbox runs on a terminal (`-t`), from its kept config.
fn has_terminal(root: &Root, state: &State) -> bool {
    let path = root
        .dir()
        .join("instances")
        .join(&state.id)
        .join("config.json");
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<crate::shim::Config>(&b).ok())
        .and_then(|c| crate::cli::parse_run_tokens(&c.args).ok())
        .is_some_and(|r| r.tty)
}

fn resize(conn: &client::Conn) {
    if let Some(ws) = isola_core::terminal::window_size(std::io::stdin().as_fd()) {
        let _ = conn.send(
            &Request::Resize {
                rows: ws.ws_row,
                cols: ws.ws_col,
            },
            &[],
        );
    }
}
