//! One process the host started over the agent channel (`isola exec`):
//! forked and set up as the workload is (child.rs), on pipes or a
//! terminal of its own, its streams moved between its descriptors and
//! the channel by PID 1's loop.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use isola_guest_spec::agent::{Exec, Session as Id, Status};
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::unistd::ForkResult;

use crate::child::{self, Launch};
use crate::command;
use crate::fail::Failure;

/// Which of the process's streams an output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

pub struct Session {
    pub id: Id,
    pub pid: libc::pid_t,
    /// Its stdin's write end (a pipe, or its terminal's master), while
    /// open; and the `Stdin` frame not written yet.
    pub input: Option<File>,
    pub pending: Vec<u8>,
    /// The host asked for the end of the input once `pending` is written.
    pub closing: bool,
    /// Read ends of its output, until each ends.
    pub outputs: Vec<(Stream, File)>,
    /// Its terminal's master, for window sizes.
    pub terminal: Option<File>,
    /// Set when it has been reaped.
    pub status: Option<Status>,
    /// Why it could not run, for its stderr (a missing command).
    pub failure: Option<String>,
}

/// What the workload's setup offers every exec'd process.
pub struct Shared {
    /// The workload's pids cgroup, which exec'd processes join too.
    pub cgroup_procs: Option<File>,
}

impl Session {
    /// Forks the process. A failure before the fork is the error (the
    /// host is refused); one after it is the process's exit status, with
    /// its message kept for its stderr.
    pub fn start(id: Id, exec: &Exec, shared: &Shared) -> Result<Session, Failure> {
        if exec.args.is_empty() {
            return Err(Failure::setup("cannot exec", "no command was given"));
        }
        if !exec.cwd.starts_with('/') {
            return Err(Failure::setup(
                format!("cannot exec in {:?}", exec.cwd),
                "the working directory is not absolute",
            ));
        }
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let env = command::environment(&exec.env, exec.uid, &passwd);
        let ends = Ends::make(exec)?;
        let cgroup_procs = shared
            .cgroup_procs
            .as_ref()
            .and_then(|f| f.try_clone().ok());
        let launch = Launch {
            args: command::c_strings(&exec.args, "argument")?,
            env: command::c_strings(&env, "environment variable")?,
            program: exec.args[0].clone(),
            search_path: command::search_path(&env).to_string(),
            cwd: std::ffi::CString::new(exec.cwd.as_bytes()).map_err(|_| {
                Failure::setup(
                    format!("bad working directory {:?}", exec.cwd),
                    "it contains a NUL byte",
                )
            })?,
            uid: exec.uid,
            gid: exec.gid,
            groups: exec.groups.clone(),
            stdio: ends.child_stdio(),
            terminal: exec.tty.is_some(),
            cgroup_procs,
        };
        let (report_r, report_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .map_err(|e| Failure::errno("cannot create a pipe", e))?;
        // SAFETY: PID 1 is single-threaded, so the child may do anything
        // after fork, allocation included.
        match unsafe { nix::unistd::fork() } {
            Err(e) => Err(Failure::errno("cannot fork", e)),
            Ok(ForkResult::Child) => {
                drop(report_r);
                child::exec(&launch, report_w)
            }
            Ok(ForkResult::Parent { child }) => {
                drop(report_w);
                drop(launch);
                // The child's ends closed here: its end is then seen as
                // the end of its output.
                let mine = ends.parent();
                // Brief: it returns at the exec, or at a failure before.
                let failure = child::wait_for_exec(report_r).map(|f| f.message);
                Ok(Session {
                    id,
                    pid: child.as_raw(),
                    input: mine.input,
                    pending: Vec::new(),
                    closing: false,
                    outputs: mine.outputs,
                    terminal: mine.terminal,
                    status: None,
                    failure,
                })
            }
        }
    }

    /// Writes what is pending into its stdin; true once all of it is
    /// (or dropped, the process having closed its stdin).
    pub fn feed(&mut self) -> bool {
        while !self.pending.is_empty() {
            let Some(input) = self.input.as_mut() else {
                self.pending.clear();
                break;
            };
            match input.write(&self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(_) => {
                    self.input = None;
                    self.pending.clear();
                }
            }
        }
        // A terminal's input has no end to give: only a pipe is closed.
        if self.closing && self.terminal.is_none() {
            self.input = None;
        }
        true
    }

    /// Reads what output `i` has into `buf`: None at its end (removed).
    pub fn read_output(&mut self, i: usize, buf: &mut [u8]) -> Option<usize> {
        let (_, file) = self.outputs.get_mut(i)?;
        loop {
            match file.read(buf) {
                Ok(0) => break,
                Ok(n) => return Some(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(0),
                // EIO: a terminal whose last user closed it.
                Err(_) => break,
            }
        }
        self.outputs.remove(i);
        None
    }
}

/// A session's descriptors, before and after the fork.
struct Ends {
    /// What the child gets as 0, 1 and 2, and keeps no more of.
    child: Vec<OwnedFd>,
    stdio: [i32; 3],
    input: Option<OwnedFd>,
    outputs: Vec<(Stream, OwnedFd)>,
    terminal: Option<OwnedFd>,
}

struct Mine {
    input: Option<File>,
    outputs: Vec<(Stream, File)>,
    terminal: Option<File>,
}

impl Ends {
    fn make(exec: &Exec) -> Result<Ends, Failure> {
        if let Some([rows, cols]) = exec.tty {
            let size = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            let pty = nix::pty::openpty(Some(&size), None)
                .map_err(|e| Failure::errno("cannot open a terminal", e))?;
            for fd in [&pty.master, &pty.slave] {
                cloexec(fd)?;
            }
            nonblocking(&pty.master)?;
            let slave = pty.slave.as_raw_fd();
            let dup = |fd: &OwnedFd| {
                fd.try_clone()
                    .map_err(|e| Failure::setup("cannot open a terminal", e))
            };
            return Ok(Ends {
                stdio: [slave; 3],
                input: Some(dup(&pty.master)?),
                outputs: vec![(Stream::Stdout, dup(&pty.master)?)],
                terminal: Some(pty.master),
                child: vec![pty.slave],
            });
        }
        let pipe = || {
            nix::unistd::pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| Failure::errno("cannot create a pipe", e))
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        nonblocking(&out_r)?;
        nonblocking(&err_r)?;
        let (stdin_child, input) = if exec.stdin {
            let (r, w) = pipe()?;
            nonblocking(&w)?;
            (r, Some(w))
        } else {
            let null =
                File::open("/dev/null").map_err(|e| Failure::setup("cannot open /dev/null", e))?;
            (OwnedFd::from(null), None)
        };
        Ok(Ends {
            stdio: [
                stdin_child.as_raw_fd(),
                out_w.as_raw_fd(),
                err_w.as_raw_fd(),
            ],
            child: vec![stdin_child, out_w, err_w],
            input,
            outputs: vec![(Stream::Stdout, out_r), (Stream::Stderr, err_r)],
            terminal: None,
        })
    }

    fn child_stdio(&self) -> [i32; 3] {
        self.stdio
    }

    fn parent(self) -> Mine {
        drop(self.child);
        Mine {
            input: self.input.map(File::from),
            outputs: self
                .outputs
                .into_iter()
                .map(|(s, fd)| (s, File::from(fd)))
                .collect(),
            terminal: self.terminal.map(File::from),
        }
    }
}

fn cloexec(fd: &OwnedFd) -> Result<(), Failure> {
    fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map(drop)
        .map_err(|e| Failure::errno("cannot configure a descriptor", e))
}

fn nonblocking(fd: &OwnedFd) -> Result<(), Failure> {
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .map(drop)
        .map_err(|e| Failure::errno("cannot configure a descriptor", e))
}
