//! The forked child's side: everything between fork and execve, done as
//! the workload's session leader. A failure goes back to PID 1 through a
//! close-on-exec pipe, so PID 1 knows whether the exec happened.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
use nix::unistd::{Gid, Uid};

use crate::command;
use crate::fail::Failure;

/// Everything the child needs, prepared by PID 1 before the fork so the
/// child only makes system calls.
pub struct Launch {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    /// `args[0]` and the PATH to find it in (the workload's own).
    pub program: String,
    pub search_path: String,
    pub cwd: CString,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// The workload's fds 0, 1 and 2, in that order.
    pub stdio: [RawFd; 3],
    /// Make fd 0 the controlling terminal (the spec's `tty`).
    pub terminal: bool,
    /// The pids cgroup's `cgroup.procs`, when there is a limit.
    pub cgroup_procs: Option<File>,
}

/// Runs in the child after fork; never returns. On failure the child
/// writes the code and the message to `report` and exits with the code.
pub fn exec(launch: &Launch, report: OwnedFd) -> ! {
    let failure = match prepare_and_exec(launch) {
        Err(failure) => failure,
        Ok(never) => match never {},
    };
    let mut pipe = File::from(report);
    let _ = pipe.write_all(&encode(&failure));
    // SAFETY: _exit(2) ends this process without running the parent's atexit
    // handlers or flushing buffers the parent also holds.
    unsafe { libc::_exit(failure.code as libc::c_int) }
}

fn prepare_and_exec(l: &Launch) -> Result<Infallible, Failure> {
    // PID 1 blocked signals for its signalfd, and a signal mask survives
    // execve: the workload must start with none blocked.
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| Failure::errno("cannot unblock signals", e))?;
    // Its own session and process group: the host's signals go to the
    // whole group, and a terminal needs a session leader.
    nix::unistd::setsid().map_err(|e| Failure::errno("cannot start a session", e))?;
    if let Some(mut procs) = l.cgroup_procs.as_ref() {
        // "0" is the writer itself; before exec, so all it forks counts.
        procs.write_all(b"0").map_err(|e| {
            Failure::setup("cannot join the pids cgroup", crate::fail::describe_io(&e))
        })?;
    }
    set_stdio(&l.stdio)?;
    if l.terminal {
        // SAFETY: TIOCSCTTY takes an integer argument, no pointer.
        if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
            return Err(Failure::errno(
                "cannot make the terminal the controlling one",
                Errno::last(),
            ));
        }
    }
    // Groups first: setgroups and setgid need the privileges setuid drops.
    let groups: Vec<Gid> = l.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups)
        .map_err(|e| Failure::errno(format!("cannot set the groups {:?}", l.groups), e))?;
    nix::unistd::setgid(Gid::from_raw(l.gid))
        .map_err(|e| Failure::errno(format!("cannot set the group id {}", l.gid), e))?;
    nix::unistd::setuid(Uid::from_raw(l.uid))
        .map_err(|e| Failure::errno(format!("cannot set the user id {}", l.uid), e))?;
    nix::unistd::chdir(l.cwd.as_c_str()).map_err(|e| {
        Failure::errno(
            format!(
                "cannot enter the working directory {}",
                l.cwd.to_string_lossy()
            ),
            e,
        )
    })?;
    // Looked up as the workload's user, in its working directory, as runc does.
    let program = command::lookup(&l.program, &l.search_path, command::is_executable_file)
        .ok_or_else(|| command::not_found(&l.program))?;
    let program_c = CString::new(program.as_os_str().as_encoded_bytes()).map_err(|_| {
        Failure::setup(
            format!("bad command {:?}", l.program),
            "it contains a NUL byte",
        )
    })?;
    let errno = match nix::unistd::execve(&program_c, &l.args, &l.env) {
        Err(errno) => errno,
        Ok(never) => match never {},
    };
    Err(command::exec_failed(Path::new(&program), errno))
}

/// Puts the three descriptors on 0, 1 and 2. They are first copied above 2,
/// so one sitting on a target number (PID 1 may have started without 0-2)
/// is not overwritten before it is used.
fn set_stdio(stdio: &[RawFd; 3]) -> Result<(), Failure> {
    let mut high = [0; 3];
    for (slot, fd) in high.iter_mut().zip(stdio) {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) only duplicates a descriptor.
        *slot = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3) };
        if *slot < 0 {
            return Err(Failure::errno(
                "cannot set up the standard streams",
                Errno::last(),
            ));
        }
    }
    for (target, fd) in high.iter().enumerate() {
        // SAFETY: dup2(2) on descriptors this process owns; the targets are
        // 0-2, which the workload is meant to get (without close-on-exec).
        if unsafe { libc::dup2(*fd, target as RawFd) } < 0 {
            return Err(Failure::errno(
                "cannot set up the standard streams",
                Errno::last(),
            ));
        }
    }
    Ok(())
}

/// The pipe's message: the status byte, then the text.
fn encode(failure: &Failure) -> Vec<u8> {
    // One write of at most PIPE_BUF bytes is atomic: keep it under that.
    let text = failure.message.as_bytes();
    let mut out = Vec::with_capacity(1 + text.len().min(4000));
    out.push(failure.code);
    out.extend_from_slice(&text[..text.len().min(4000)]);
    out
}

/// What PID 1 read from the pipe until it closed: nothing means the exec
/// happened.
pub fn decode(bytes: &[u8]) -> Option<Failure> {
    let (&code, text) = bytes.split_first()?;
    Some(Failure {
        code,
        message: String::from_utf8_lossy(text).into_owned(),
    })
}

/// Reads the child's report until the pipe closes (at its exec or exit).
pub fn wait_for_exec(report: OwnedFd) -> Option<Failure> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match nix::unistd::read(&report, &mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => continue,
            Err(e) => {
                return Some(Failure::errno(
                    "cannot learn whether the workload started",
                    e,
                ));
            }
        }
    }
    decode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_cross_the_pipe_intact() {
        let f = command::not_found("nope");
        assert_eq!(decode(&encode(&f)), Some(f));
        assert_eq!(decode(b""), None);
        let long = Failure {
            code: 125,
            message: "x".repeat(10_000),
        };
        assert_eq!(encode(&long).len(), 4001);
    }
}
