//! Starting a shim from the CLI: `isola shim` re-executed in a session of
//! its own, stdio on /dev/null, a pipe on fd 3 on which it says how
//! creating (and starting) went. The CLI waits for that line only.

use std::io::{BufRead, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use isola_core::Root;

use super::REPORT_FD;

/// How the shim begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// `isola create`: made, waiting for `isola start`.
    Create,
    /// `isola run -d`: made and started.
    Run,
    /// `isola start` of a sandbox that ended: its kept config made again,
    /// waiting for the start (so that `start -a` attaches first).
    Again,
}

/// Start the shim of sandbox `id` for `run_args` (`isola run`'s arguments
/// after the subcommand) and wait until it has done `begin`.
pub fn shim(root: &Root, id: &str, run_args: &[String], begin: Begin, verbose: u8) -> Result<()> {
    let exe = std::env::current_exe().context("finding isola's own binary")?;
    let (report, theirs) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .context("making the shim's report pipe")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--root").arg(root.dir());
    for _ in 0..verbose {
        cmd.arg("-v");
    }
    cmd.arg("shim").arg("--id").arg(id);
    match begin {
        Begin::Create => {}
        Begin::Run => {
            cmd.arg("--start");
        }
        Begin::Again => {
            cmd.arg("--again");
        }
    }
    cmd.arg("--").args(run_args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let fd = theirs.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls: setsid,
    // dup2, fcntl.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            if fd == REPORT_FD {
                nix::fcntl::fcntl(
                    std::os::fd::BorrowedFd::borrow_raw(fd),
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                )?;
            } else if nix::libc::dup2(fd, REPORT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().context("starting the sandbox's shim")?;
    drop(theirs);
    drop(cmd);
    // "ok" is one line, and the end of what we wait for: the sandbox's
    // first process, forked from the shim, holds the pipe open too. An
    // error is the rest of what the shim writes before it exits.
    let mut said = String::new();
    let mut reader = std::io::BufReader::new(std::fs::File::from(report));
    let _ = reader.read_line(&mut said);
    if said != "ok\n" {
        let _ = reader.read_to_string(&mut said);
    }
    // It lives on; the kernel reaps it once we are gone (init adopts it).
    drop(child);
    match said.trim_end() {
        "ok" => Ok(()),
        "" => bail!(
            "the sandbox's shim ended without a word (see {}/instances/{id}/shim.log)",
            root.dir().display()
        ),
        error => bail!("{error}"),
    }
}
