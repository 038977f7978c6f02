//! `exec` into a microVM: a relay, in the VM's cgroup, asks the keeper for
//! the process (on the relay's stdio, or a terminal whose master goes to
//! `--console-socket`), passes the signals it gets on, and exits as the
//! process did. With `--detach` the relay is a child left for the
//! caller's subreaper (containerd's shim) to wait for, as runc's exec'd
//! process is; its PID is the one in the pid file.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use isola_core::oci::runtime::{ExecOptions, Execd};
use isola_core::oci::{Record, RuntimeError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::ForkResult;

use crate::relay::Relayed;
use crate::vm_keeper::{Answer, Request, EXEC_SOCKET, KILLED};
use crate::wire;

/// Refusals of a process.json a guest cannot take, each by its field.
fn check(process: &oci_spec::runtime::Process, opts: &ExecOptions) -> Result<(), RuntimeError> {
    let refuse = |field: &str, why: &str| {
        Err(RuntimeError::Unsupported(format!(
            "the process's {field} is not supported in a microVM (io.isola.backend=vm): {why}"
        )))
    };
    if process.terminal().unwrap_or(false) && opts.console_socket.is_none() {
        return Err(RuntimeError::Unsupported(
            "a terminal (--tty) needs --console-socket to hand its master end to".into(),
        ));
    }
    if opts.preserve_fds > 0 {
        return Err(RuntimeError::Unsupported(
            "--preserve-fds is not supported in a microVM (io.isola.backend=vm): the host's descriptors cannot reach a guest".into(),
        ));
    }
    if process.apparmor_profile().is_some() {
        return refuse("apparmorProfile", "the guest's kernel has no AppArmor");
    }
    if process.selinux_label().is_some() {
        return refuse("selinuxLabel", "the guest's kernel has no SELinux");
    }
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(RuntimeError::State("exec needs a command to run".into()));
    }
    Ok(())
}

pub fn exec(
    rec: &Record,
    process: &oci_spec::runtime::Process,
    opts: &ExecOptions,
) -> Result<Execd, RuntimeError> {
    check(process, opts)?;
    if !opts.detach {
        let signals = block()?;
        let socket = begin(rec, process, opts)?;
        return Ok(Execd::Exited {
            code: follow(&socket, &signals),
        });
    }
    let (said_r, said_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| RuntimeError::step("pipe", e))?;
    // SAFETY: isola-runtime is single-threaded.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(RuntimeError::step("fork", e)),
        Ok(ForkResult::Child) => {
            drop(said_r);
            let mut said = std::fs::File::from(said_w);
            let started = block().and_then(|s| begin(rec, process, opts).map(|c| (s, c)));
            let code = match started {
                Ok((signals, socket)) => {
                    let _ = std::io::Write::write_all(&mut said, b"ok");
                    drop(said);
                    follow(&socket, &signals)
                }
                Err(e) => {
                    let _ = std::io::Write::write_all(&mut said, e.to_string().as_bytes());
                    1
                }
            };
            // SAFETY: ends the relay without running the runtime's exit path.
            unsafe { nix::libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(said_w);
            let mut said = String::new();
            let _ = std::fs::File::from(said_r).read_to_string(&mut said);
            if said == "ok" {
                return Ok(Execd::Detached {
                    pid: child.as_raw(),
                });
            }
            let _ = nix::sys::wait::waitpid(child, None);
            Err(RuntimeError::State(if said.is_empty() {
                "the exec's relay ended before the process started".into()
            } else {
                said
            }))
        }
    }
}

fn block() -> Result<Relayed, RuntimeError> {
    Relayed::block().map_err(|e| RuntimeError::step("blocking the signals passed on", e))
}

/// Into the VM's cgroup, and the process started by the keeper; the
/// connection it is followed on.
fn begin(
    rec: &Record,
    process: &oci_spec::runtime::Process,
    opts: &ExecOptions,
) -> Result<OwnedFd, RuntimeError> {
    crate::backends::cgroup_of(rec)?
        .add_pid(std::process::id() as i32)
        .map_err(|e| RuntimeError::step("joining the microVM's cgroup", e))?;
    let socket = connect(&opts.state_dir.join(EXEC_SOCKET))?;
    let tty = process.terminal().unwrap_or(false);
    let fds: &[i32] = if tty { &[] } else { &[0, 1, 2] };
    let request = Request::Exec {
        process: Box::new(process.clone()),
    };
    let lost = |e: wire::WireError| RuntimeError::step("asking the microVM's keeper", e);
    wire::send(socket.as_raw_fd(), &request, fds).map_err(lost)?;
    match wire::recv::<Answer>(socket.as_raw_fd()).map_err(lost)? {
        Some((Answer::Started, mut got)) => {
            if let (Some(master), Some(path)) = (got.pop(), opts.console_socket) {
                if let Some(size) = process.console_size() {
                    let ws = nix::pty::Winsize {
                        ws_row: size.height() as u16,
                        ws_col: size.width() as u16,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    isola_core::terminal::set_window_size(master.as_fd(), &ws);
                }
                isola_core::oci::runtime::send_console(path, &master)?;
            }
            Ok(socket)
        }
        Some((Answer::Refused { message }, _)) => Err(RuntimeError::State(message)),
        Some((other, _)) => Err(RuntimeError::State(format!(
            "the microVM's keeper answered {other:?} to an exec"
        ))),
        None => Err(RuntimeError::State(
            "the microVM's keeper went away before the process started".into(),
        )),
    }
}

fn connect(path: &Path) -> Result<OwnedFd, RuntimeError> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let step = |e| {
        RuntimeError::step(
            format!("reaching the microVM's keeper at {}", path.display()),
            e,
        )
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(step)?;
    let addr = UnixAddr::new(path).map_err(step)?;
    match connect(fd.as_raw_fd(), &addr) {
        Ok(()) => Ok(fd),
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ECONNREFUSED) => Err(
            RuntimeError::State("the microVM is not running (its keeper has ended)".into()),
        ),
        Err(e) => Err(step(e)),
    }
}

/// Until the keeper says the process ended: the signals this relay gets,
/// passed on. Its code; SIGKILL's if the keeper went away first.
fn follow(socket: &OwnedFd, signals: &Relayed) -> i32 {
    loop {
        let mut fds = [
            PollFd::new(socket.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return KILLED,
        }
        let [heard, signalled] = fds.map(|f| f.revents().is_some_and(|r| !r.is_empty()));
        if signalled {
            while let Ok(Some(info)) = signals.fd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGWINCH) | Err(_) => {}
                    Ok(signal) => {
                        let request = Request::Signal {
                            signal: signal as i32,
                        };
                        let _ = wire::send(socket.as_raw_fd(), &request, &[]);
                    }
                }
            }
        }
        if heard {
            match wire::recv::<Answer>(socket.as_raw_fd()) {
                Ok(Some((Answer::Exited { code }, _))) => return code,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return KILLED,
            }
        }
    }
}
