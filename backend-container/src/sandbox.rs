//! One container as a handle whose methods are its stages: `create` (prepare
//! the root filesystem → spawn the child into new namespaces → join the
//! cgroup → wait until the child is parked just before exec), then `start`
//! (release it), `exec` (another process in it, `exec_in`), `wait` (relay
//! signals and the terminal until it exits), and `teardown` (the child,
//! the cgroup, the loop devices), also on Drop.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use isola_core::backend::{
    BackendError, ExecSpec, Execd, ExitStatus, IdleWork, Outcome, Phase, RunContext, Sandbox, Stats,
};
use isola_core::explain::Explain;
use isola_core::network::{self, Attachment};
use isola_core::spec::{Network, RunSpec};
use isola_core::Root;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::cgroup::{self, Cgroup, Entry};
use crate::child::{self, ChildConfig};
use crate::loopdev::LoopDevice;
use crate::message::{self, Channel, Order, Report};
use crate::network::Eth0;
use crate::relay::{self, relay_until_exit, Blocked};
use crate::spawn::{self, Spawned};
use crate::{exec, exec_in, policy, rootfs};

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Parked before exec, waiting for `start`.
    Created,
    Started,
    /// Its first process has exited and been reaped.
    Exited,
}

pub struct ContainerSandbox {
    id: String,
    explain: Explain,
    clock: std::time::Instant,
    ephemeral: bool,
    idle: IdleWork,
    /// For the message when the OOM killer ends the workload.
    memory_limit: Option<u64>,
    /// `-i`: the caller's stdin goes to the pty (without -t the child
    /// reads isola's stdin directly).
    interactive: bool,
    phases: Vec<(Phase, Duration)>,
    pid: Pid,
    pidfd: OwnedFd,
    /// The namespaces it was cloned with, which `exec` joins.
    namespaces: CloneFlags,
    /// Its confinement, which `exec` applies to each process it starts.
    policy: policy::Prepared,
    channel: Channel,
    /// With -t: the pty's master end, which isola relays.
    terminal: Option<OwnedFd>,
    group: Option<Cgroup>,
    loops: Vec<LoopDevice>,
    /// Its address on a bridge network, given back at teardown.
    network: Option<Attachment>,
    blocked: Option<Blocked>,
    stage: Stage,
}

/// `hierarchy` finds the host's cgroup layout (once); on v1 it is asked
/// only after the clone, while the child builds its mounts.
pub fn create<'h>(
    spec: &RunSpec,
    ctx: &RunContext,
    hierarchy: &dyn Fn() -> Result<&'h cgroup::Hierarchy, BackendError>,
) -> Result<ContainerSandbox, BackendError> {
    let ex = ctx.explain;
    // Stage 1: the root filesystem's pieces on the host.
    let mut rootfs = rootfs::prepare(spec, &ctx.instance_dir, ctx.ephemeral)?;
    let prepared = policy::prepare(&spec.security)
        .map_err(|e| BackendError::step("preparing the security policy", e))?;
    let args = exec::cstrings(&spec.process.args, "argument")?;
    let env = exec::cstrings(&spec.process.env, "environment variable")?;
    // On a bridge network, its name files, bound in by the child: made
    // empty now (the network found, the default one made), written once
    // the address is taken, while the child builds its mounts.
    bind_name_files(spec, ctx, &mut rootfs)?;
    let mut phases = vec![(Phase::RootfsReady, ctx.clock.elapsed())];

    // On v2 the cgroup comes first: the child is born in it. On v1 it is
    // made while the child builds its mounts.
    let mut group = None;
    let mut born_in = None;
    if cgroup::unified_at_default() {
        let g = make_cgroup(hierarchy()?, spec, ex)?;
        born_in = match g.entry() {
            Ok(Entry::Directory(dir)) => Some(dir),
            Ok(Entry::Tasks(_)) => None,
            Err(e) => {
                let _ = g.destroy();
                return Err(BackendError::step("opening the sandbox's cgroup", e));
            }
        };
        group = Some(g);
    }

    // Stage 2: spawn. Signals are read from a signalfd, so they are blocked
    // first; the child inherits the mask and clears it before exec.
    let blocked = Blocked::new()?;
    let (ours, theirs) = message::pair().map_err(|e| BackendError::step("socketpair", e))?;
    let cfg = ChildConfig {
        spec,
        rootfs: &rootfs,
        channel: &theirs,
        args: &args,
        env: &env,
        policy: &prepared,
        explain: ex,
    };
    let mut flags = CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if spec.network.is_private() {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    let spawned = ex.step(
        "clone3(CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWNET|CLONE_PIDFD)",
        "the workload gets its own process tree (it is PID 1), mount table, hostname, IPC and network",
        || {
            // SAFETY: isola is single-threaded here (the frontend starts no
            // thread before a container is created).
            unsafe {
                spawn::spawn(flags, born_in.as_ref().map(|d| d.as_fd()), || {
                    // Die with isola rather than linger.
                    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                    child::main(&cfg)
                })
            }
        },
    );
    drop(theirs); // EOF on our end now means the child exec'd or died
    drop(born_in);
    let Spawned { pid, pidfd } = match spawned {
        Ok(s) => s,
        Err(e) => {
            if let Some(g) = group {
                let _ = g.destroy();
            }
            return Err(BackendError::step("clone3", e));
        }
    };
    phases.push((Phase::SandboxCreated, ctx.clock.elapsed()));
    let mut sandbox = ContainerSandbox {
        id: spec.id.clone(),
        explain: ex,
        clock: ctx.clock,
        ephemeral: ctx.ephemeral,
        idle: ctx.idle.clone(),
        memory_limit: spec.limits.memory,
        interactive: spec.process.stdin,
        phases,
        pid,
        pidfd,
        namespaces: flags,
        policy: prepared,
        channel: ours,
        terminal: None,
        group,
        loops: std::mem::take(&mut rootfs.loops),
        network: None,
        blocked: Some(blocked),
        stage: Stage::Created,
    };
    // From here on, a failure tears down through Drop.
    sandbox.plug_in(spec, ctx)?;
    sandbox.join_cgroup(hierarchy, spec)?;
    sandbox.await_ready()?;
    Ok(sandbox)
}

/// With `--network NAME`: /etc/hosts and /etc/resolv.conf bound to the
/// files isola keeps for the sandbox on the network.
fn bind_name_files(
    spec: &RunSpec,
    ctx: &RunContext,
    rootfs: &mut rootfs::Rootfs,
) -> Result<(), BackendError> {
    let Network::Bridge(join) = &spec.network else {
        return Ok(());
    };
    let files = network::name_files(&Root::new(&ctx.state_dir), &join.network, &spec.id)
        .map_err(|e| BackendError::step(format!("joining network {}", join.network), e))?;
    for (path, target) in files.into_iter().zip(["/etc/hosts", "/etc/resolv.conf"]) {
        rootfs.mounts.push(rootfs::ChildMount {
            source: rootfs::Source::Bind(path),
            target,
            read_only: false,
        });
    }
    Ok(())
}

/// `isola/<id>` with the spec's limits.
fn make_cgroup(
    hierarchy: &cgroup::Hierarchy,
    spec: &RunSpec,
    ex: Explain,
) -> Result<Cgroup, BackendError> {
    ex.step(
        &format!("create cgroup isola/{} with the limits", spec.id),
        "memory, CPU time and the number of processes are capped by the kernel, not by the workload's good will",
        || hierarchy.create(&spec.id, &spec.limits),
    )
    .map_err(cgroup_error)
}

fn cgroup_error(e: cgroup::CgroupError) -> BackendError {
    if e.is_host_unavailable() {
        BackendError::Unavailable {
            reason: e.to_string(),
            source: None,
        }
    } else {
        BackendError::step("creating the sandbox's cgroup", e)
    }
}

impl ContainerSandbox {
    /// Stage 3: on v1, make the cgroup and hand the child its `tasks`
    /// files (it moves itself); on v2 it is in already.
    fn join_cgroup<'h>(
        &mut self,
        hierarchy: &dyn Fn() -> Result<&'h cgroup::Hierarchy, BackendError>,
        spec: &RunSpec,
    ) -> Result<(), BackendError> {
        let files = match &self.group {
            Some(_) => Vec::new(),
            None => {
                let group = self
                    .group
                    .insert(make_cgroup(hierarchy()?, spec, self.explain)?);
                match group
                    .entry()
                    .map_err(|e| BackendError::step("opening the sandbox's cgroup", e))?
                {
                    Entry::Tasks(files) => files,
                    // A v2 hierarchy found after a v1 one: the old way.
                    Entry::Directory(_) => {
                        group.add_pid(self.pid.as_raw()).map_err(|e| {
                            BackendError::step("moving the sandbox into its cgroup", e)
                        })?;
                        Vec::new()
                    }
                }
            }
        };
        let fds: Vec<_> = files.iter().map(|f| f.as_raw_fd()).collect();
        match self.channel.order(&Order::Join(self.eth0()), &fds) {
            // The child failed and is gone: what it reported says why.
            Err(message::MessageError::Io(
                nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET,
            )) => Ok(()),
            other => other.map_err(|e| BackendError::step("handing the sandbox its cgroup", e)),
        }
    }

    /// Stage 2b, while the child builds its mounts: with `--network NAME`,
    /// an address on the network, the published ports held, the name files
    /// written, and a veth pair whose eth0 end is made right in the
    /// child's network namespace.
    fn plug_in(&mut self, spec: &RunSpec, ctx: &RunContext) -> Result<(), BackendError> {
        let Network::Bridge(join) = &spec.network else {
            return Ok(());
        };
        let ex = self.explain;
        let att = ex
            .step(
                &format!("take an address on network {}, hold its published ports", join.network),
                "the network's leases give each sandbox its own address; a published port is held on the host so nothing else takes it",
                || network::join(&Root::new(&ctx.state_dir), &spec.id, &spec.hostname, join, true),
            )
            .map_err(|e| BackendError::step(format!("joining network {}", join.network), e))?;
        let att = self.network.insert(att);
        let path = format!("/proc/{}/ns/net", self.pid);
        let ns = std::fs::File::open(&path)
            .map_err(|e| BackendError::step(format!("opening {path}"), e))?;
        ex.step(
            &format!(
                "create veth {} on bridge {} with its peer eth0 ({}/{}) in the sandbox",
                att.veth_name(),
                att.net.bridge,
                att.ip,
                att.prefix()
            ),
            "a veth pair is a virtual cable: one end in the sandbox's network namespace, the other on the host's bridge",
            || att.veth_into(ns.as_fd()),
        )
        .map_err(|e| BackendError::step(format!("plugging into network {}", att.net.name), e))
    }

    /// What the child sets on eth0, with the order to join its cgroup.
    fn eth0(&self) -> Option<Eth0> {
        self.network.as_ref().map(|a| Eth0 {
            ip: a.ip,
            prefix: a.prefix(),
            gateway: a.net.gateway,
            mtu: a.mtu,
        })
    }

    /// Stage 4: the child's reports until it is parked before exec (or
    /// failed, which is the error).
    fn await_ready(&mut self) -> Result<(), BackendError> {
        loop {
            match self.channel.next_report() {
                Ok(Some((Report::Terminal, mut fds))) => {
                    if let Some(master) = fds.pop() {
                        if let Some(ws) =
                            isola_core::terminal::window_size(std::io::stdin().as_fd())
                        {
                            isola_core::terminal::set_window_size(master.as_fd(), &ws);
                        }
                        self.terminal = Some(master);
                    }
                }
                Ok(Some((Report::Ready, _))) => return Ok(()),
                Ok(Some((Report::SetupFailed(fail), _))) => {
                    return Err(BackendError::step("setting up the container", fail))
                }
                Ok(Some((report, _))) => {
                    return Err(BackendError::step(
                        "setting up the container",
                        message::MessageError::Unexpected(format!("{report:?}")),
                    ))
                }
                Ok(None) => {
                    return Err(BackendError::step(
                        "setting up the container",
                        message::MessageError::Closed,
                    ))
                }
                Err(e) => return Err(BackendError::step("setting up the container", e)),
            }
        }
    }

    fn exit_status(&self, status: WaitStatus) -> ExitStatus {
        match status {
            WaitStatus::Exited(_, code) => ExitStatus::Exited(code),
            WaitStatus::Signaled(_, Signal::SIGKILL, _)
                if self.group.as_ref().is_some_and(|g| g.oom_killed()) =>
            {
                ExitStatus::OutOfMemory
            }
            WaitStatus::Signaled(_, sig, _) => ExitStatus::Signaled(sig as i32),
            _ => ExitStatus::Exited(1),
        }
    }
}

impl Sandbox for ContainerSandbox {
    fn start(&mut self) -> Result<(), BackendError> {
        if self.stage != Stage::Created {
            return Err(BackendError::State("was started already"));
        }
        self.channel
            .order(&Order::Start, &[])
            .map_err(|e| BackendError::step("starting the workload", e))?;
        self.stage = Stage::Started;
        Ok(())
    }

    /// As `docker exec`: the process joins the first one's namespaces and
    /// cgroup, confined alike (or, privileged, with every capability and
    /// no filter). Being in the pid namespace, it dies with the first
    /// process.
    fn exec(&mut self, exec: &ExecSpec<'_>) -> Result<Box<dyn Execd>, BackendError> {
        match self.stage {
            Stage::Created => return Err(BackendError::State("was not started")),
            Stage::Exited => return Err(BackendError::State("has exited")),
            Stage::Started if spawn::exited(&self.pidfd) => {
                return Err(BackendError::State("has exited"))
            }
            Stage::Started => {}
        }
        let Some(group) = &self.group else {
            return Err(BackendError::State("has no cgroup"));
        };
        let privileged;
        let policy = if exec.privileged {
            privileged = policy::prepare(&isola_core::spec::Security {
                privileged: true,
                ..Default::default()
            })
            .map_err(|e| BackendError::step("preparing the security policy", e))?;
            &privileged
        } else {
            &self.policy
        };
        let target = exec_in::Target {
            pidfd: self.pidfd.as_fd(),
            namespaces: self.namespaces,
            cgroup: group,
            policy,
        };
        let started = self.explain.step(
            "exec: a helper joins the namespaces (setns on PID 1's pidfd) and clones the process (CLONE_PARENT)",
            "joining a pid namespace moves only the caller's children; CLONE_PARENT makes isola the process's parent, to wait for it",
            || exec_in::start(&target, &exec.process, exec.stdio),
        );
        match started {
            Ok(running) => Ok(Box::new(running)),
            // It exited meanwhile: that is why.
            Err(_) if spawn::exited(&self.pidfd) => Err(BackendError::State("has exited")),
            Err(e) => Err(e),
        }
    }

    fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        (self.stage != Stage::Created).then(|| self.pidfd.as_fd())
    }

    fn take_terminal(&mut self) -> Option<OwnedFd> {
        self.terminal.take()
    }

    fn pids(&self) -> Result<Vec<i32>, BackendError> {
        match &self.group {
            Some(group) => Ok(group.pids()),
            None => Err(BackendError::State("has no cgroup")),
        }
    }

    fn signal(&mut self, signal: Signal) -> Result<(), BackendError> {
        if self.stage == Stage::Exited {
            return Err(BackendError::State("has exited"));
        }
        spawn::send_signal(&self.pidfd, signal)
            .map_err(|e| BackendError::step(format!("sending {signal} to the workload"), e))
    }

    fn wait(&mut self) -> Result<Outcome, BackendError> {
        match self.stage {
            Stage::Created => return Err(BackendError::State("was not started")),
            Stage::Exited => return Err(BackendError::State("has exited already")),
            Stage::Started => {}
        }
        // The end of the child's channel is its exec; a report before it
        // says why exec failed.
        let exec_failure = match self.channel.next_report() {
            Ok(Some((Report::ExecFailed { message, .. }, _))) => Some(message),
            _ => None,
        };
        self.phases
            .push((Phase::WorkloadStarted, self.clock.elapsed()));
        let blocked = self
            .blocked
            .as_ref()
            .ok_or(BackendError::State("has no signal relay"))?;
        // isola is idle while the workload runs and wants nothing of it.
        self.idle
            .run(&|| relay::quiet(&self.pidfd, &blocked.fd, self.terminal.as_ref()));
        let status = relay_until_exit(
            self.pid,
            &self.pidfd,
            &blocked.fd,
            self.terminal.as_ref(),
            self.interactive,
        )?;
        self.stage = Stage::Exited;
        self.terminal = None;
        self.phases
            .push((Phase::WorkloadExited, self.clock.elapsed()));
        let status = self.exit_status(status);
        let message = match status {
            ExitStatus::OutOfMemory => Some(format!(
                "the workload ran out of memory: the kernel's OOM killer stopped it at the {} limit",
                self.memory_limit
                    .map(human)
                    .unwrap_or_else(|| "memory".into())
            )),
            _ => exec_failure,
        };
        // Kept with the sandbox's state; a `--rm` one keeps nothing.
        let counters = match &self.group {
            Some(g) if !self.ephemeral => counters(&g.stats()),
            _ => Vec::new(),
        };
        Ok(Outcome {
            status,
            message,
            phases: self.phases.clone(),
            counters,
        })
    }

    fn stats(&self) -> Result<Stats, BackendError> {
        let Some(group) = &self.group else {
            return Err(BackendError::State("has no cgroup"));
        };
        let s = group.stats();
        let pids = group.pids();
        let io = isola_core::proc_io::block_io(&pids);
        Ok(Stats {
            // Where cpuacct is a hierarchy of its own (which isola does
            // not join) the processes' own times, as ps adds them up.
            cpu_usec: s
                .cpu
                .and_then(|c| c.usage_usec)
                .or_else(|| processes_cpu_usec(&pids)),
            memory_bytes: s.memory.map(|m| m.current),
            memory_limit: self.memory_limit,
            pids: s.pids,
            block_read: io.map(|(r, _)| r),
            block_written: io.map(|(_, w)| w),
        })
    }

    fn teardown(&mut self) -> Result<(), BackendError> {
        if self.stage != Stage::Exited {
            // Killing PID 1 of the namespace ends every process in it.
            let _ = spawn::send_signal(&self.pidfd, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
            self.stage = Stage::Exited;
        }
        self.terminal = None;
        let destroyed = match self.group.take() {
            Some(group) => self.explain.step(
                "remove the cgroup",
                "nothing of the sandbox may outlive it",
                || group.destroy(),
            ),
            None => Ok(()),
        };
        // AUTOCLEAR: the devices detach now that nothing mounts them.
        self.loops.clear();
        let left = match self.network.take() {
            Some(att) => att.leave(),
            None => Ok(()),
        };
        if let Err(e) = left {
            tracing::warn!("sandbox {} leaving its network: {e}", self.id);
        }
        self.blocked = None;
        destroyed.map_err(|e| {
            BackendError::step(format!("removing the cgroup of sandbox {}", self.id), e)
        })
    }
}

impl Drop for ContainerSandbox {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!("tearing down sandbox {}: {e}", self.id);
        }
    }
}

/// The CPU time of `pids` and their reaped children, from /proc.
fn processes_cpu_usec(pids: &[i32]) -> Option<u64> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)? as u64;
    let mut total = 0;
    for pid in pids {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        // After the name: utime, stime, cutime, cstime are fields 11 to 14.
        total += rest
            .split_whitespace()
            .skip(11)
            .take(4)
            .filter_map(|v| v.parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(total * 1_000_000 / ticks)
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

fn human(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}
