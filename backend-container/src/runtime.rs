//! The parent side of a container run: prepare (dirs, loop devices, security
//! policy), clone the child into new namespaces, create its cgroup and move
//! it in while it builds its mounts (it waits for that before exec), relay
//! signals (and the pty) until it exits, and tear everything down.

use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use isola_core::backend::{BackendError, ExitStatus, Outcome, Phase, RunContext};
use isola_core::spec::{MountSource, Network, RunSpec};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::pipe2;

use crate::child::{self, ChildConfig, ChildMount};
use crate::relay::{relay_until_exit, RestoreMask};
use crate::{cgroup, exec, loopdev, policy, tty};

pub(crate) fn setup_err(
    what: impl Into<String>,
    e: impl std::error::Error + Send + Sync + 'static,
) -> BackendError {
    BackendError::Setup {
        what: what.into(),
        source: Box::new(e),
    }
}

pub fn run(spec: &RunSpec, ctx: &RunContext) -> Result<Outcome, BackendError> {
    let ex = ctx.explain;
    let t0 = Instant::now();
    let mut phases = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        return Err(BackendError::Unavailable(
            "the container backend needs root (rootless containers are not supported yet); run isola as root".into(),
        ));
    }

    // The rootfs: a private upper/work pair; the layers are shared as they
    // are. The overlay is mounted over the instance dir itself (in the
    // child's mount namespace only): one directory fewer to make and remove.
    let dir = &ctx.instance_dir;
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    for d in [&upper, &work] {
        fs::create_dir_all(d).map_err(|e| setup_err(format!("creating {}", d.display()), e))?;
    }
    let (layers_dir, lower) = lower_dirs(&spec.layers)?;

    let prepared = policy::prepare(&spec.security)
        .map_err(|e| setup_err("preparing the security policy", e))?;
    let mut loops = Vec::new();
    let mut child_mounts = Vec::new();
    for m in &spec.mounts {
        let source = match &m.source {
            MountSource::Bind(p) => ChildMount::Bind(p.clone()),
            MountSource::Volume { name, image } => {
                let dev = loopdev::attach(image, m.read_only)
                    .map_err(|e| setup_err(format!("attaching volume {name}"), e))?;
                let path = dev.path().to_path_buf();
                loops.push(dev);
                ChildMount::Volume(path)
            }
        };
        child_mounts.push((source, m.target.clone(), m.read_only));
    }
    phases.push((Phase::RootfsReady, t0.elapsed()));

    // Made once the child is running, so that it builds its mounts meanwhile.
    let mut group = None;
    let result = start_and_wait(
        spec,
        ctx,
        &mut group,
        layers_dir,
        lower,
        child_mounts,
        prepared,
        &mut phases,
        t0,
    );

    let (counters, destroyed) = match group {
        Some(group) => (
            // Kept with the sandbox's state; a `--rm` one keeps nothing.
            if ctx.ephemeral {
                Vec::new()
            } else {
                counters(&group.stats())
            },
            ex.step(
                "remove the cgroup",
                "nothing of the sandbox may outlive it",
                || group.destroy(),
            ),
        ),
        None => (Vec::new(), Ok(())),
    };
    drop(loops); // AUTOCLEAR: the devices detach now that nothing mounts them
    phases.push((Phase::TornDown, t0.elapsed()));
    let mut outcome = result?;
    destroyed.map_err(|e| setup_err("removing the cgroup", e))?;
    outcome.phases = phases;
    outcome.counters = counters;
    Ok(outcome)
}

/// Create the sandbox's cgroup and move `pid` into it.
fn join_cgroup(
    spec: &RunSpec,
    ex: isola_core::explain::Explain,
    pid: i32,
    slot: &mut Option<cgroup::Cgroup>,
) -> Result<(), BackendError> {
    let group = ex
        .step(
            &format!("create cgroup isola/{} with the limits", spec.id),
            "memory, CPU time and the number of processes are capped by the kernel, not by the workload's good will",
            || cgroup::detect().and_then(|h| h.create(&spec.id, &spec.limits)),
        )
        .map_err(|e| {
            if e.is_host_unavailable() {
                BackendError::Unavailable(e.to_string())
            } else {
                setup_err("creating the sandbox's cgroup", e)
            }
        })?;
    let group = slot.insert(group);
    ex.step(
        "move the sandbox into its cgroup",
        "from here on the kernel charges everything it does to the sandbox's limits",
        || group.add_pid(pid),
    )
    .map_err(|e| setup_err("moving the sandbox into its cgroup", e))
}

fn counters(stats: &cgroup::Stats) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    if let Some(cpu) = stats.cpu {
        out.push(("cpu.nr_periods".to_string(), cpu.nr_periods));
        out.push(("cpu.nr_throttled".to_string(), cpu.nr_throttled));
        out.push(("cpu.throttled_usec".to_string(), cpu.throttled_usec));
        if let Some(u) = cpu.usage_usec {
            out.push(("cpu.usage_usec".to_string(), u));
        }
    }
    if let Some(peak) = stats.memory.and_then(|m| m.peak) {
        out.push(("memory.peak_bytes".to_string(), peak));
    }
    out
}

/// The `lowerdir=` value, top layer first. Layers from the store share one
/// parent, so their names alone (64 characters) are given relative to it.
fn lower_dirs(layers: &[std::path::PathBuf]) -> Result<(std::path::PathBuf, String), BackendError> {
    let Some(first) = layers.first() else {
        return Err(BackendError::Unavailable(
            "the image has no layers; there is nothing to run".into(),
        ));
    };
    let parent = first.parent().unwrap_or(Path::new("/")).to_path_buf();
    let names: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| match l.parent() {
            Some(p) if p == parent => l
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            _ => l.display().to_string(),
        })
        .collect();
    Ok((parent, names.join(":")))
}

#[allow(clippy::too_many_arguments)]
fn start_and_wait(
    spec: &RunSpec,
    ctx: &RunContext,
    group: &mut Option<cgroup::Cgroup>,
    layers_dir: std::path::PathBuf,
    lower: String,
    mounts: Vec<(ChildMount, String, bool)>,
    prepared: policy::Prepared,
    phases: &mut Vec<(Phase, std::time::Duration)>,
    t0: Instant,
) -> Result<Outcome, BackendError> {
    let ex = ctx.explain;
    let args = exec::cstrings(&spec.process.args, "argument").map_err(BackendError::Unavailable)?;
    let env = exec::cstrings(&spec.process.env, "environment variable")
        .map_err(BackendError::Unavailable)?;
    // Sockets, not pipes, where isola writes to the child: a child that
    // already failed must not kill isola with SIGPIPE (MSG_NOSIGNAL).
    let (go_w, go_r) = socketpair()?;
    let (rep_r, rep_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| setup_err("pipe", e))?;
    let pty_sock = if spec.process.tty {
        Some(socketpair()?)
    } else {
        None
    };

    // Signals are read from a signalfd, so they must be blocked first (the
    // child inherits the mask and clears it before exec).
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.add(Signal::SIGWINCH);
    for s in isola_core::backend::RELAYED_SIGNALS {
        mask.add(s);
    }
    let mut old_mask = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old_mask))
        .map_err(|e| setup_err("blocking signals", e))?;
    let _restore = RestoreMask(old_mask);
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| setup_err("signalfd", e))?;

    let (parent_sock, child_sock) = match pty_sock {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let cfg = ChildConfig {
        go: go_r,
        report: rep_w,
        layers_dir,
        lower,
        upper: ctx.instance_dir.join("upper"),
        work: ctx.instance_dir.join("work"),
        volatile: ctx.ephemeral,
        rootfs: ctx.instance_dir.clone(),
        mounts,
        hostname: spec.hostname.clone(),
        new_net: spec.network == Network::None,
        read_only: spec.read_only,
        privileged: spec.security.privileged,
        cwd: spec.process.cwd.clone(),
        args,
        env,
        user: spec.process.user.clone(),
        stdin_null: !spec.process.stdin && !spec.process.tty,
        tty: child_sock,
        policy: prepared,
        explain: ex,
    };
    let mut flags = CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if spec.network == Network::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    let mut stack = vec![0u8; 256 * 1024];
    let pid = ex.step(
        "clone(CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWNET)",
        "the workload gets its own process tree (it is PID 1), mount table, hostname, IPC and network",
        || {
            // SAFETY: isola is single-threaded here, so the child (a copy of
            // this process on its own stack) may run ordinary Rust code; it
            // ends in exec or exit and never returns into the parent's frames.
            unsafe {
                nix::sched::clone(
                    Box::new(|| {
                        // Die with isola rather than linger.
                        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                        child::main(&cfg)
                    }),
                    &mut stack,
                    flags,
                    Some(Signal::SIGCHLD as i32),
                )
            }
        },
    )
    .map_err(|e| setup_err("clone", e))?;
    drop(cfg); // our copies of the child's ends: EOF on the report pipe now means exec
    phases.push((Phase::SandboxCreated, t0.elapsed()));

    // The child builds its mounts meanwhile, and waits for this before exec.
    if let Err(e) = join_cgroup(spec, ex, pid.as_raw(), group) {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        return Err(e);
    }
    let _ = nix::sys::socket::send(
        go_w.as_raw_fd(),
        b"c",
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
    );
    drop(go_w);
    // The child needs nothing more from isola before exec.
    ctx.idle.run();
    // With -t, the child sends the pty master before it execs (or fails).
    let master = parent_sock.as_ref().and_then(tty::recv_fd);
    if let Some(m) = &master {
        if let Some(ws) = isola_core::terminal::window_size(std::io::stdin().as_fd()) {
            isola_core::terminal::set_window_size(m.as_fd(), &ws);
        }
    }

    let mut report = String::new();
    let _ = fs::File::from(rep_r).read_to_string(&mut report);
    phases.push((Phase::WorkloadStarted, t0.elapsed()));
    if let Some(msg) = report.strip_prefix('S') {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        return Err(BackendError::Setup {
            what: "setting up the container".into(),
            source: msg.to_string().into(),
        });
    }
    let exec_failure = report
        .strip_prefix('E')
        .and_then(|r| r.split_once('\t'))
        .map(|(_, m)| m.to_string());

    let status = relay_until_exit(pid, &sfd, master.as_ref(), spec.process.stdin)?;
    drop(parent_sock);
    phases.push((Phase::WorkloadExited, t0.elapsed()));
    let status = match status {
        WaitStatus::Exited(_, code) => ExitStatus::Exited(code),
        WaitStatus::Signaled(_, Signal::SIGKILL, _)
            if group.as_ref().is_some_and(|g| g.oom_killed()) =>
        {
            ExitStatus::OutOfMemory
        }
        WaitStatus::Signaled(_, sig, _) => ExitStatus::Signaled(sig as i32),
        _ => ExitStatus::Exited(1),
    };
    let message =
        match status {
            ExitStatus::OutOfMemory => Some(format!(
            "the workload ran out of memory: the kernel's OOM killer stopped it at the {} limit",
            spec.limits.memory.map(human).unwrap_or_else(|| "memory".into())
        )),
            _ => exec_failure,
        };
    Ok(Outcome {
        status,
        message,
        phases: Vec::new(),
        counters: Vec::new(),
    })
}

fn socketpair() -> Result<(OwnedFd, OwnedFd), BackendError> {
    nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| setup_err("socketpair", e))
}

fn human(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}
