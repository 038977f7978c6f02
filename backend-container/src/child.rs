//! What runs in the cloned child, in its new namespaces, between clone and
//! exec: build the mount table, pivot into the image,
//! set hostname, network, wait to be in the cgroup, then user, capabilities, no_new_privs and seccomp, exec.
//! It reports a failure to the parent over a close-on-exec pipe: silence
//! until EOF means the workload started.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use isola_core::explain::Explain;
use isola_core::spec::User;
use nix::errno::Errno;
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};

use crate::{exec, mounts, network, policy};

/// A setup step that failed, with the errno behind it.
#[derive(Debug)]
pub struct Fail {
    what: String,
    cause: Option<String>,
}

impl Fail {
    pub fn sys(what: impl Into<String>, e: Errno) -> Fail {
        Fail {
            what: what.into(),
            cause: Some(e.desc().to_lowercase()),
        }
    }
    pub fn io(what: impl Into<String>, e: io::Error) -> Fail {
        Fail {
            what: what.into(),
            cause: Some(e.to_string()),
        }
    }
    pub fn msg(what: impl Into<String>) -> Fail {
        Fail {
            what: what.into(),
            cause: None,
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Some(c) => write!(f, "{}: {c}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

pub enum ChildMount {
    Bind(PathBuf),
    /// An attached loop device holding a volume's ext4 filesystem.
    Volume(PathBuf),
}

/// Everything the child needs, prepared by the parent before clone so the
/// child does little more than system calls.
pub struct ChildConfig {
    pub go: OwnedFd,
    pub report: OwnedFd,
    pub layers_dir: PathBuf,
    pub lower: String,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Mount the overlay `volatile`: no sync of the upper filesystem, ever.
    pub volatile: bool,
    pub rootfs: PathBuf,
    pub mounts: Vec<(ChildMount, String, bool)>,
    pub hostname: String,
    pub new_net: bool,
    pub read_only: bool,
    pub privileged: bool,
    pub cwd: String,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub user: User,
    pub stdin_null: bool,
    /// With -t: the socket the pty master is sent back over.
    pub tty: Option<OwnedFd>,
    pub policy: policy::Prepared,
    pub explain: Explain,
}

/// Report protocol on the pipe: `S<message>` setup failed, `E<code>\t<message>` exec failed.
pub fn main(cfg: &ChildConfig) -> isize {
    match setup(cfg) {
        Ok(()) => {
            let failure = exec::exec(&cfg.args, &cfg.env);
            report(cfg, &format!("E{}\t{}", failure.code, failure.message));
            failure.code as isize
        }
        Err(fail) => {
            report(cfg, &format!("S{fail}"));
            1
        }
    }
}

fn report(cfg: &ChildConfig, msg: &str) {
    let _ = nix::unistd::write(&cfg.report, msg.as_bytes());
}

fn setup(cfg: &ChildConfig) -> Result<(), Fail> {
    let ex = cfg.explain;
    mounts::make_private()?;
    ex.step(
        "mount overlay (image layers + a private upper dir)",
        "the shared read-only layers stay untouched; writes land in this sandbox's upper dir",
        || {
            mounts::overlay(
                &cfg.layers_dir,
                &cfg.lower,
                &cfg.upper,
                &cfg.work,
                cfg.volatile,
                &cfg.rootfs,
            )
        },
    )?;
    ex.step(
        "mount /proc, /sys (read-only), /dev (tmpfs with 6 devices), /dev/pts, /dev/shm, /dev/mqueue",
        "the workload sees its own processes and only harmless devices",
        || mounts::kernel_filesystems(&cfg.rootfs, cfg.privileged),
    )?;
    // After /dev, /proc and /sys, as Docker does: a bind at /dev/foo must
    // not end up under the /dev tmpfs.
    ex.step(
        "mount binds and volumes",
        "host directories and named volumes appear inside",
        || {
            for (source, target, ro) in &cfg.mounts {
                // --privileged binds the host's /dev: a mount point made
                // under it would be made on the host.
                if cfg.privileged
                    && mounts::secure_join(&cfg.rootfs, target).starts_with(cfg.rootfs.join("dev"))
                {
                    return Err(Fail::msg(format!(
                        "{target}: with --privileged, /dev is the host's own; mount volumes elsewhere"
                    )));
                }
                match source {
                    ChildMount::Bind(src) => mounts::bind(src, &cfg.rootfs, target, *ro)?,
                    ChildMount::Volume(dev) => mounts::volume(dev, &cfg.rootfs, target, *ro)?,
                }
            }
            Ok::<(), Fail>(())
        },
    )?;
    if !cfg.privileged {
        ex.step(
            "mask /proc/kcore, /proc/keys, ... and make /proc/sys, /proc/sysrq-trigger ... read-only",
            "they expose or configure the host's kernel",
            || mounts::mask_paths(&cfg.rootfs),
        )?;
    }
    if cfg.stdin_null {
        let null =
            std::fs::File::open("/dev/null").map_err(|e| Fail::io("opening /dev/null", e))?;
        nix::unistd::dup2_stdin(&null).map_err(|e| Fail::sys("redirecting stdin", e))?;
    }
    ex.step(
        "pivot_root into the image, unmount the host's root",
        "unlike chroot, the host's filesystem is gone from this mount namespace, not just out of sight",
        || mounts::pivot(&cfg.rootfs, cfg.read_only),
    )?;
    ex.step(
        "sethostname",
        "the UTS namespace gives the sandbox its own hostname",
        || {
            nix::unistd::sethostname(&cfg.hostname)
                .map_err(|e| Fail::sys("setting the hostname", e))
        },
    )?;
    if cfg.new_net {
        ex.step(
            "bring lo up",
            "a new network namespace has only a loopback interface, down",
            network::loopback_up,
        )?;
    }
    if let Some(sock) = &cfg.tty {
        ex.step(
            "open a pty in the sandbox's own /dev/pts",
            "with -t the workload gets a terminal; isola relays it",
            || {
                let (master, slave) = crate::tty::open_in_sandbox()?;
                crate::tty::send_fd(sock, &master)?;
                drop(master);
                crate::tty::become_controlling(&slave)
            },
        )?;
    }
    mounts::workdir(&cfg.cwd)?;
    // Moving a task between cgroups costs an RCU grace period on cgroup v1
    // (milliseconds), so the parent does it while we build the mounts; the
    // workload itself never runs outside the limits: we wait for it here.
    let mut b = [0u8; 1];
    match nix::unistd::read(&cfg.go, &mut b) {
        Ok(1) => {}
        _ => return Err(Fail::msg("isola could not put the sandbox in its cgroup")),
    }
    ex.step(
        "unshare(CLONE_NEWCGROUP)",
        "now that it is in its cgroup, that cgroup becomes the root of what it sees in /sys/fs/cgroup",
        || unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|e| Fail::sys("unshare(CLONE_NEWCGROUP)", e)),
    )?;
    ex.step(
        "set user, drop capabilities, no_new_privs, seccomp",
        "root in the sandbox keeps only Docker's default capabilities, cannot gain more, and most dangerous syscalls fail with EPERM",
        || policy::apply(&cfg.policy, &cfg.user),
    )?;
    // The parent blocked signals to read them from a signalfd; the workload
    // starts with none blocked.
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| Fail::sys("sigprocmask", e))?;
    // Nothing of isola's (or of whoever started it) beyond stdio reaches the
    // workload: every other fd closes at exec.
    // SAFETY: close_range only changes flags on this process's fds.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Ok(())
}
