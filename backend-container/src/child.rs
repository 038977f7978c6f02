//! What runs in the cloned child, in its new namespaces, between clone and
//! exec: build the mount table, pivot into the image, set hostname and
//! network, join the cgroup, then user, capabilities, no_new_privs and
//! seccomp; report ready and wait for the go-ahead; exec. Every failure is
//! reported to isola as a typed message (see `message`).

use std::ffi::CString;

use isola_core::explain::Explain;
use isola_core::spec::RunSpec;
use nix::sched::{unshare, CloneFlags};

use crate::fail::Fail;
use crate::message::{Channel, Order, Report};
use crate::rootfs::{Rootfs, Source};
use crate::{exec, mounts, network, policy};

/// Everything the child needs: the spec itself and what the parent made
/// of it before clone, so that the child does little more than system calls.
pub struct ChildConfig<'a> {
    pub spec: &'a RunSpec,
    pub rootfs: &'a Rootfs<'a>,
    /// The child's end of the channel to isola (closed at exec).
    pub channel: &'a Channel,
    pub args: &'a [CString],
    pub env: &'a [CString],
    pub policy: &'a policy::Prepared,
    pub explain: Explain,
}

/// The child's life; the exit code when it does not end in the workload.
pub fn main(cfg: &ChildConfig) -> i32 {
    if let Err(fail) = setup(cfg) {
        let _ = cfg.channel.report(&Report::SetupFailed(fail), &[]);
        return 1;
    }
    if let Err(fail) = ready(cfg) {
        let _ = cfg.channel.report(&Report::SetupFailed(fail), &[]);
        return 1;
    }
    let failure = exec::exec(cfg.args, cfg.env);
    let _ = cfg.channel.report(
        &Report::ExecFailed {
            code: failure.code,
            message: failure.message,
        },
        &[],
    );
    failure.code
}

fn setup(cfg: &ChildConfig) -> Result<(), Fail> {
    let ex = cfg.explain;
    let spec = cfg.spec;
    let rootfs = cfg.rootfs;
    let privileged = spec.security.privileged;
    mounts::make_private()?;
    ex.step(
        "mount overlay (image layers + a private upper dir)",
        "the shared read-only layers stay untouched; writes land in this sandbox's upper dir",
        || mounts::overlay(rootfs),
    )?;
    ex.step(
        "mount /proc, /sys (read-only), /dev (tmpfs with 6 devices), /dev/pts, /dev/shm, /dev/mqueue",
        "the workload sees its own processes and only harmless devices",
        || mounts::kernel_filesystems(&rootfs.target, privileged),
    )?;
    // After /dev, /proc and /sys, as Docker does: a bind at /dev/foo must
    // not end up under the /dev tmpfs.
    ex.step(
        "mount binds and volumes",
        "host directories and named volumes appear inside",
        || {
            for m in &rootfs.mounts {
                // --privileged binds the host's /dev: a mount point made
                // under it would be made on the host.
                if privileged
                    && mounts::inside(&rootfs.target, m.target)?
                        .starts_with(mounts::inside(&rootfs.target, "/dev")?)
                {
                    return Err(Fail::msg(format!(
                        "{}: with --privileged, /dev is the host's own; mount volumes elsewhere",
                        m.target
                    )));
                }
                match &m.source {
                    Source::Bind(src) => mounts::bind(src, &rootfs.target, m.target, m.read_only)?,
                    Source::Device(dev) => {
                        mounts::volume(dev, &rootfs.target, m.target, m.read_only)?
                    }
                }
            }
            Ok::<(), Fail>(())
        },
    )?;
    if !privileged {
        ex.step(
            "mask /proc/kcore, /proc/keys, ... and make /proc/sys, /proc/sysrq-trigger ... read-only",
            "they expose or configure the host's kernel",
            || mounts::mask_paths(&rootfs.target),
        )?;
    }
    if !spec.process.stdin && !spec.process.tty {
        let null =
            std::fs::File::open("/dev/null").map_err(|e| Fail::io("opening /dev/null", e))?;
        nix::unistd::dup2_stdin(&null).map_err(|e| Fail::sys("redirecting stdin", e))?;
    }
    ex.step(
        "pivot_root into the image, unmount the host's root",
        "unlike chroot, the host's filesystem is gone from this mount namespace, not just out of sight",
        || mounts::pivot(&rootfs.target, spec.read_only),
    )?;
    ex.step(
        "sethostname",
        "the UTS namespace gives the sandbox its own hostname",
        || {
            nix::unistd::sethostname(&spec.hostname)
                .map_err(|e| Fail::sys("setting the hostname", e))
        },
    )?;
    if spec.network.is_private() {
        ex.step(
            "bring lo up",
            "a new network namespace has only a loopback interface, down",
            network::loopback_up,
        )?;
    }
    if spec.process.tty {
        ex.step(
            "open a pty in the sandbox's own /dev/pts",
            "with -t the workload gets a terminal; isola relays it",
            || {
                let (master, slave) = crate::tty::open_in_sandbox()?;
                cfg.channel
                    .report(
                        &Report::Terminal,
                        &[std::os::fd::AsRawFd::as_raw_fd(&master)],
                    )
                    .map_err(|_| Fail::msg("passing the pty to isola failed"))?;
                drop(master);
                crate::tty::become_controlling(&slave)
            },
        )?;
    }
    mounts::workdir(&spec.process.cwd)?;
    // isola makes the cgroup meanwhile (on v1) and hands over its files.
    let (order, files) = match cfg.channel.next_order() {
        Ok(Some(got)) => got,
        _ => return Err(Fail::msg("isola could not put the sandbox in its cgroup")),
    };
    let Order::Join(eth0) = order else {
        return Err(Fail::msg(
            "isola sent something else than the cgroup to join",
        ));
    };
    // isola made the veth before it sent the cgroup.
    if let Some(eth0) = eth0 {
        ex.step(
            &format!(
                "address eth0 {}/{}, route through {}",
                eth0.ip, eth0.prefix, eth0.gateway
            ),
            "from inside the namespace, five ioctls: no netlink socket to open from outside",
            || network::eth0(&eth0),
        )?;
    }
    // None on cgroup v2: the child was born in its cgroup (CLONE_INTO_CGROUP).
    if !files.is_empty() {
        ex.step(
        "join the cgroup: write 0 to each controller's tasks file",
        "the sandbox moves itself before anything of the workload runs; a single thread moving \
         itself takes no global lock, where moving a process from outside waits for an RCU \
         grace period (milliseconds)",
        || {
            crate::cgroup::move_self(&files)
                .map_err(|e| Fail::sys("joining the sandbox's cgroup", e))
        },
        )?;
    }
    drop(files);
    ex.step(
        "unshare(CLONE_NEWCGROUP)",
        "now that it is in its cgroup, that cgroup becomes the root of what it sees in /sys/fs/cgroup",
        || unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|e| Fail::sys("unshare(CLONE_NEWCGROUP)", e)),
    )?;
    ex.step(
        "set user, drop capabilities, no_new_privs, seccomp",
        "root in the sandbox keeps only Docker's default capabilities, cannot gain more, and most dangerous syscalls fail with EPERM",
        || policy::apply(cfg.policy, &spec.process.user),
    )?;
    exec::seal()
}

/// Say so, and wait for the go-ahead; an isola gone meanwhile ends it.
fn ready(cfg: &ChildConfig) -> Result<(), Fail> {
    cfg.channel
        .report(&Report::Ready, &[])
        .map_err(|_| Fail::msg("isola is gone"))?;
    match cfg.channel.next_order() {
        Ok(Some((Order::Start, _))) => Ok(()),
        _ => Err(Fail::msg("isola is gone, or did not say to start")),
    }
}
