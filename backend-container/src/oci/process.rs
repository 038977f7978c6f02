//! The last steps before a container's process execs, shared by the init
//! and by `exec`: limits, working directory, terminal, umask, the fds it
//! keeps, user and capabilities, no_new_privs; then exec itself.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

use super::plan::ProcessPlan;
use crate::fail::Fail;
use crate::message::{Channel, Report};
use crate::security::caps::{self, CapSet};
use crate::security::seccomp;
use crate::{exec, mounts};

/// Become the process `p` describes, in the container already.
/// `console`: the terminal is also the container's /dev/console (the
/// init's, not an exec'd process's).
pub fn become_it(
    p: &ProcessPlan,
    channel: &Channel,
    bounding: CapSet,
    preserve_fds: u32,
    console: bool,
) -> Result<(), Fail> {
    if let Some(adj) = p.oom_score_adj {
        fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| Fail::io("setting process.oomScoreAdj", e))?;
    }
    for &(resource, soft, hard) in &p.rlimits {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads a valid rlimit.
        if unsafe { libc::setrlimit(resource as _, &lim) } != 0 {
            return Err(Fail::sys(
                format!("setting rlimit {resource} to {soft}/{hard}"),
                Errno::last(),
            ));
        }
    }
    mounts::workdir(&p.cwd)?;
    if p.terminal {
        terminal(channel, console)?;
    }
    // SAFETY: umask only sets this process's mask.
    unsafe { libc::umask(p.umask.unwrap_or(0o022) as libc::mode_t) };
    keep_preserved(preserve_fds)?;
    let fail = |e: crate::security::SecurityError| Fail::msg(e.to_string());
    // runc's order: without no_new_privs a filter needs CAP_SYS_ADMIN to
    // install, so it goes in while the process still has it; with it, as
    // late as can be, so that fewer of the runtime's own calls pass it.
    if !p.no_new_privs {
        install(p)?;
    }
    caps::apply_sets(&p.caps, bounding, p.uid, p.gid, &p.groups).map_err(fail)?;
    if p.no_new_privs {
        seccomp::set_no_new_privs().map_err(fail)?;
        install(p)?;
    }
    Ok(())
}

fn install(p: &ProcessPlan) -> Result<(), Fail> {
    match &p.seccomp {
        Some(f) => {
            seccomp::install_with_flags(&f.program, f.flags).map_err(|e| Fail::msg(e.to_string()))
        }
        None => Ok(()),
    }
}

/// In the runtime: a terminal's master end, sized as process.consoleSize
/// says, sent to `--console-socket` (the shim reads it from there).
pub fn pass_terminal(
    master: std::os::fd::OwnedFd,
    size: Option<(u16, u16)>,
    socket: Option<&Path>,
) -> Result<(), isola_core::oci::RuntimeError> {
    if let Some((rows, cols)) = size {
        let ws = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        isola_core::terminal::set_window_size(std::os::fd::AsFd::as_fd(&master), &ws);
    }
    match socket {
        Some(s) => isola_core::oci::runtime::send_console(s, &master),
        None => Ok(()),
    }
}

/// Exec the process; on failure say why on its stderr (which the shim
/// shows) and return the exit code shells use.
pub fn exec(p: &ProcessPlan) -> i32 {
    let failure = exec::exec(&p.args, &env(p));
    let line = format!("isola-runtime: {}\n", failure.message);
    let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
    failure.code
}

/// The process's environment, with HOME added as runc adds it when
/// config.json has none: the user's home in the container's /etc/passwd,
/// else `/`.
pub fn env(p: &ProcessPlan) -> Vec<std::ffi::CString> {
    let mut env = p.env.clone();
    if !env.iter().any(|e| e.to_bytes().starts_with(b"HOME=")) {
        let home = fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|text| home_of(&text, p.uid))
            .unwrap_or_else(|| "/".into());
        if let Ok(c) = std::ffi::CString::new(format!("HOME={home}")) {
            env.push(c);
        }
    }
    env
}

/// The home directory of `uid` in passwd(5) text.
fn home_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 6 && f[2].parse() == Ok(uid) && !f[5].is_empty()).then(|| f[5].to_string())
    })
}

/// A pty from the container's own devpts, its master end sent to the
/// runtime (for the console socket), its slave end the process's stdio,
/// controlling terminal and /dev/console.
fn terminal(channel: &Channel, console: bool) -> Result<(), Fail> {
    let (master, slave) = crate::tty::open_in_sandbox()?;
    channel
        .report(&Report::Terminal, &[master.as_raw_fd()])
        .map_err(|_| Fail::msg("passing the terminal to isola-runtime failed"))?;
    drop(master);
    if !console {
        return crate::tty::become_controlling(&slave);
    }
    let console = Path::new("/dev/console");
    if fs::symlink_metadata(console).is_err() {
        let _ = fs::write(console, b"");
    }
    let name = format!("/proc/self/fd/{}", slave.as_raw_fd());
    let _ = mount(
        Some(name.as_str()),
        console,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    );
    crate::tty::become_controlling(&slave)
}

/// `--preserve-fds N`: 3 .. 3+N reach the process; every other fd of the
/// runtime's closes at exec.
fn keep_preserved(n: u32) -> Result<(), Fail> {
    exec::seal()?;
    for fd in 3..3 + n as i32 {
        // SAFETY: F_SETFD on an fd number; a closed one fails harmlessly.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_comes_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\nbad line\n";
        assert_eq!(home_of(passwd, 0).as_deref(), Some("/root"));
        assert_eq!(home_of(passwd, 1000).as_deref(), Some("/home/u"));
        assert_eq!(home_of(passwd, 7), None);
    }
}
