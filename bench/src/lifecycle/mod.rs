//! Lifecycle: a detached sandbox's life against its peers'. How long `isola
//! run -d` takes to return with the workload started (against the floor's
//! start to exit, `podman run -d`, `ctr run -d`, and runc's own `create` +
//! `start`); how long `isola exec` takes to run `true` in it (against
//! `runc exec`, the floor for joining a sandbox, `nsenter -a`, and a VM
//! where its kernel has the agent channel); and what
//! the process that supervises one idle sandbox keeps resident (isola's
//! shim, podman's conmon, containerd-shim-runc-v2). Everything it starts
//! it stops and removes: sandboxes, containers, containerd itself, and
//! the cgroups and directories the peers leave.

mod cgroups;
// Public for tests/runtime_peers.rs, which runs isola-runtime under it.
pub mod containerd;
pub(crate) mod cycle;
pub mod podman;
mod runc;

pub use crate::interrupt::{end_if_interrupted, interrupted};

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::interrupt;
use crate::peers::{found, PeersError};
use crate::procfs;
use crate::results::{Goal, IsolaBuild, Lifecycle, LifecycleSeries, RunError, ShimMemory, Subject};
use crate::sandbox::{instance_ids, IsolaCli, SandboxError};
use cycle::{Cycle, Runner};
use isola_core::chain::chain;
use runc::Runc;

/// The peers this dimension knows, as `--peers` names them.
pub const PEERS: [&str; 4] = ["floor", "runc", "podman", "containerd"];

/// What the long-lived sandboxes run, and what the exec runs run.
const IDLE: [&str; 2] = ["/bin/sleep", "3600"];
/// Let a sandbox's start-up work (page cache, lazy allocations) settle
/// before its supervisor's memory is read.
const SETTLE: Duration = Duration::from_millis(300);
/// After the exec runs, how long before the shim's memory is read again:
/// it gives back what a burst of work touched a second after the burst,
/// and a shim at rest is what a host pays for.
const AFTER_EXECS: Duration = Duration::from_millis(1500);
/// The subject whose figures are paired against every other.
const ISOLA: &str = "container";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// `unshare` + `chroot` to start, `nsenter -a` to join.
    Floor,
    Runc,
    Podman,
    Containerd,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Floor => "floor",
            Peer::Runc => "runc",
            Peer::Podman => "podman",
            Peer::Containerd => "containerd",
        }
    }

    /// The programs it needs on PATH.
    fn programs(self) -> &'static [&'static str] {
        match self {
            Peer::Floor => &["unshare", "chroot", "nsenter"],
            Peer::Runc => &["runc"],
            Peer::Podman => &["podman", "conmon", "runc"],
            Peer::Containerd => &["containerd", "ctr", "containerd-shim-runc-v2", "runc"],
        }
    }
}

/// The peers of `wanted` (any names; those this dimension does not know
/// are left out) whose programs are installed. One named but missing is
/// an error; with `auto` it is reported as not run, with why.
pub fn peers(wanted: &[&str], auto: bool) -> Result<(Vec<Peer>, Vec<RunError>), PeersError> {
    let mut out = Vec::new();
    let mut not_run = Vec::new();
    for peer in [Peer::Floor, Peer::Runc, Peer::Podman, Peer::Containerd] {
        if !wanted.contains(&peer.name()) {
            continue;
        }
        match peer.programs().iter().find(|p| !found(p)) {
            None => out.push(peer),
            Some(missing) if auto => not_run.push(error(
                peer.name(),
                format!("not run: {missing} is not installed (scripts/setup --peers installs it)"),
            )),
            Some(_) => return Err(PeersError::NotInstalled(peer.name().to_string())),
        }
    }
    Ok((out, not_run))
}

/// What the dimension runs.
pub struct LifecyclePlan {
    pub isola: IsolaCli,
    /// `isola run`'s flags for the container backend (`--backend container`).
    pub flags: Vec<String>,
    pub image: String,
    /// The image flattened, for the peers.
    pub rootfs: PathBuf,
    /// Scratch: podman's and containerd's state, runc's bundle.
    pub work: PathBuf,
    pub peers: Vec<Peer>,
    pub runs: usize,
    pub warmup: usize,
    /// The VM row and its `isola run` flags, where `isola exec` reaches a
    /// VM (its kernel has the agent channel): its exec is timed beside the
    /// container's.
    pub vm: Option<(Subject, Vec<String>)>,
}

impl LifecyclePlan {
    fn has(&self, peer: Peer) -> bool {
        self.peers.contains(&peer)
    }
}

/// The figures, the subjects they name, and what could not run.
pub struct Outcome {
    pub lifecycle: Lifecycle,
    pub subjects: Vec<Subject>,
    pub errors: Vec<RunError>,
}

fn error(subject: &str, message: String) -> RunError {
    RunError {
        subject: subject.into(),
        dimension: "lifecycle".into(),
        message,
    }
}

pub fn run(plan: &LifecyclePlan, progress: &mut dyn FnMut(&str)) -> Outcome {
    // Dropped last: a signal meanwhile stops the runs, everything below is
    // removed, and then the signal takes its course.
    let _interrupt = interrupt::Guard::install();
    let tag = format!("isola-bench-{}", std::process::id());
    let mut errors = Vec::new();
    let mut fail = |subject: &str, e: &dyn Error| errors.push(error(subject, chain(e)));
    let runner = Runner::new(&plan.work);
    let isola = Isola::new(plan);
    let mut subjects = vec![subject(ISOLA, "container", "isola")];
    if plan.has(Peer::Floor) {
        subjects.push(subject("floor", "floor (unshare+chroot)", "peer"));
        subjects.push(subject("nsenter", "floor (nsenter -a)", "peer"));
    }
    let runc = plan
        .has(Peer::Runc)
        .then(|| Runc::new(&plan.work.join("runc"), &plan.rootfs, &IDLE))
        .and_then(|r| r.map_err(|e| fail("runc", &e)).ok());
    if runc.is_some() {
        subjects.push(subject("runc", "runc", "peer"));
    }
    let podman = plan
        .has(Peer::Podman)
        .then(|| podman::Podman::new(&plan.work.join("podman")))
        .and_then(|p| p.map_err(|e| fail("podman", &e)).ok());
    if let Some(p) = &podman {
        subjects.push(subject("podman", &p.label, "peer"));
    }
    let containerd = plan
        .has(Peer::Containerd)
        .then(|| {
            progress("lifecycle: starting containerd");
            containerd::Containerd::start(&plan.work.join("containerd"))
        })
        .and_then(|c| c.map_err(|e| fail("containerd", &e)).ok());
    if let Some(c) = &containerd {
        subjects.push(subject("containerd", &c.label, "peer"));
    }
    let peers = Peers {
        runc: runc.as_ref(),
        podman: podman.as_ref(),
        containerd: containerd.as_ref(),
    };

    // 1. Started detached, each removed after its run.
    let name = format!("{tag}-start");
    let cycles = start_cycles(plan, &isola, &peers, &name);
    let results = runner.measure(&cycles, plan.runs, plan.warmup, |n| {
        progress(&format!("lifecycle, run -d: run {n}/{}", plan.runs))
    });
    for r in &results {
        if let Some(e) = &r.error {
            errors.push(error(&r.name, e.clone()));
        }
    }
    let start = cycle::series(&cycles, &results, ISOLA);

    // 2. One idle sandbox each: their supervisors' memory, and exec.
    progress("lifecycle: idle sandboxes");
    let name = format!("{tag}-idle");
    let idle = if interrupt::interrupted() {
        Idle::none()
    } else {
        Idle::start(&runner, &isola, &peers, plan, &name)
    };
    for (subject, e) in &idle.errors {
        errors.push(error(subject, e.clone()));
    }
    std::thread::sleep(SETTLE);
    let mut shims = idle.shims();
    let mut cycles = exec_cycles(&isola, &peers, &idle, &name);
    let vm_name = format!("{name}-vm");
    if let Some((vm, flags)) = plan.vm.as_ref().filter(|_| !interrupt::interrupted()) {
        progress("lifecycle: an idle VM");
        match runner.run(&isola.run_d_with(flags, &vm_name, &IDLE), &[]) {
            Ok(_) => {
                subjects.push(vm.clone());
                cycles.push(Cycle::new(
                    &vm.id,
                    "isola exec ID true (into a VM, over its agent channel)",
                    vec![isola.cli.argv(&["exec", &vm_name, "true"])],
                ));
            }
            Err(e) => errors.push(error(&vm.id, format!("the idle VM: {}", chain(&e)))),
        }
    }
    let results = runner.measure(&cycles, plan.runs, plan.warmup, |n| {
        progress(&format!("lifecycle, exec: run {n}/{}", plan.runs))
    });
    for r in &results {
        if let Some(e) = &r.error {
            errors.push(error(&r.name, e.clone()));
        }
    }
    let exec = cycle::series(&cycles, &results, ISOLA);
    if let (Some(s), Some(pid)) = (
        shims.iter_mut().find(|s| s.subject == ISOLA),
        idle.isola_shim,
    ) {
        std::thread::sleep(AFTER_EXECS);
        s.rss_after_exec_kib = procfs::vm_rss_kib(pid);
        s.pss_after_exec_kib = procfs::pss_kib(pid);
    }
    progress("lifecycle: removing what it started");
    idle.remove(&runner, &isola, &peers, &name);
    if interrupt::interrupted() {
        errors.push(error(
            ISOLA,
            "interrupted by a signal: the runs stopped, what they started was removed".into(),
        ));
    }
    // Then, as each is dropped: any sandbox or container left, containerd
    // itself, and the peers' cgroups and directories.
    drop(isola);

    let goals = goals(&start, &exec, &shims);
    Outcome {
        lifecycle: Lifecycle {
            isola: build(&plan.isola.exe),
            start,
            exec,
            shims,
            goals,
        },
        subjects,
        errors,
    }
}

fn subject(id: &str, label: &str, kind: &str) -> Subject {
    Subject {
        id: id.into(),
        label: label.into(),
        kind: kind.into(),
        emulated: false,
    }
}

/// The peers that could be set up.
struct Peers<'a> {
    runc: Option<&'a Runc>,
    podman: Option<&'a podman::Podman>,
    containerd: Option<&'a containerd::Containerd>,
}

/// isola's side: its commands, and on drop, `rm -f` of every sandbox made
/// since it began.
struct Isola<'a> {
    cli: &'a IsolaCli,
    flags: &'a [String],
    image: &'a str,
    before: Vec<String>,
}

impl<'a> Isola<'a> {
    fn new(plan: &'a LifecyclePlan) -> Isola<'a> {
        Isola {
            cli: &plan.isola,
            flags: &plan.flags,
            image: &plan.image,
            before: instance_ids(&plan.isola.root),
        }
    }

    fn run_d(&self, name: &str, cmd: &[&str]) -> Vec<String> {
        self.run_d_with(self.flags, name, cmd)
    }

    /// `run -d` with other flags than the container row's (the VM's).
    fn run_d_with(&self, flags: &[String], name: &str, cmd: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec!["run".into()];
        a.extend(flags.iter().cloned());
        a.extend(["-d".into(), "--name".into(), name.into(), self.image.into()]);
        a.extend(cmd.iter().map(|c| c.to_string()));
        self.cli.argv(&a)
    }

    fn rm(&self, names: &[&str]) -> Vec<String> {
        let mut a = vec!["rm", "-f"];
        a.extend(names);
        self.cli.argv(&a)
    }

    /// The shim's PID, as `isola inspect` gives it.
    fn shim_pid(&self, runner: &Runner, name: &str) -> Result<u32, SandboxError> {
        let text = runner.capture(&self.cli.argv(&["inspect", name]), &[])?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|parse| SandboxError::NoJson {
                command: "inspect".into(),
                printed: text.chars().take(200).collect(),
                parse,
            })?;
        v["pid"]
            .as_u64()
            .map(|p| p as u32)
            .ok_or_else(|| SandboxError::Failed(format!("isola inspect {name} gave no pid")))
    }
}

impl Drop for Isola<'_> {
    fn drop(&mut self) {
        let new: Vec<String> = instance_ids(&self.cli.root)
            .into_iter()
            .filter(|id| !id.starts_with('.') && !self.before.contains(id))
            .collect();
        if new.is_empty() {
            return;
        }
        let ids: Vec<&str> = new.iter().map(String::as_str).collect();
        quietly(&self.rm(&ids), &[]);
    }
}

/// Run `argv` for its effect only: the end of the dimension sweeps what
/// may or may not be there.
pub(crate) fn quietly(argv: &[String], env: &[(String, String)]) {
    let _ = Command::new(&argv[0])
        .args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// isola `run -d`, the floor, then each peer's own way of starting a
/// sandbox detached, all on `name`.
fn start_cycles(plan: &LifecyclePlan, isola: &Isola, peers: &Peers, name: &str) -> Vec<Cycle> {
    let mut cycles = vec![Cycle {
        cleanup: vec![isola.rm(&[name])],
        ..Cycle::new(ISOLA, "isola run -d", vec![isola.run_d(name, &IDLE)])
    }];
    if plan.has(Peer::Floor) {
        let rootfs = plan.rootfs.display().to_string();
        cycles.push(Cycle::new(
            "floor",
            "unshare -fpmiun + chroot, /bin/true to its exit",
            vec![[
                "unshare",
                "-fpmiun",
                &format!("--mount-proc={rootfs}/proc"),
                "chroot",
                &rootfs,
                "/bin/true",
            ]
            .map(String::from)
            .to_vec()],
        ));
    }
    if let Some(p) = peers.podman {
        cycles.push(Cycle {
            cleanup: vec![p.rm(name)],
            env: p.env().to_vec(),
            ..Cycle::new(
                "podman",
                "podman run -d",
                vec![p.run_d(name, &plan.rootfs, &IDLE)],
            )
        });
    }
    if let Some(c) = peers.containerd {
        cycles.push(Cycle {
            cleanup: c.rm(name),
            ..Cycle::new(
                "containerd",
                "ctr run -d",
                vec![c.run_d(name, &plan.rootfs, &IDLE)],
            )
        });
    }
    if let Some(r) = peers.runc {
        cycles.push(Cycle {
            cleanup: vec![r.delete(name)],
            ..Cycle::new("runc", "runc create + runc start", r.create_start(name))
        });
    }
    cycles
}

/// `true` in the idle sandboxes: isola exec, runc exec, and nsenter into
/// isola's sandbox.
fn exec_cycles(isola: &Isola, peers: &Peers, idle: &Idle, name: &str) -> Vec<Cycle> {
    let mut cycles = Vec::new();
    if idle.isola_shim.is_some() {
        cycles.push(Cycle::new(
            ISOLA,
            "isola exec ID true",
            vec![isola.cli.argv(&["exec", name, "true"])],
        ));
    }
    if let (Some(r), true) = (peers.runc, idle.runc) {
        cycles.push(Cycle::new(
            "runc",
            "runc exec ID /bin/true",
            vec![r.argv(&["exec", name, "/bin/true"])],
        ));
    }
    if let Some(pid) = idle.isola_workload.filter(|_| idle.nsenter) {
        cycles.push(Cycle::new(
            "nsenter",
            "nsenter -a -t PID true (into isola's sandbox)",
            vec![["nsenter", "-a", "-t", &pid.to_string(), "true"]
                .map(String::from)
                .to_vec()],
        ));
    }
    cycles
}

/// One idle sandbox per subject, and their supervisors.
struct Idle {
    isola_shim: Option<u32>,
    isola_workload: Option<u32>,
    nsenter: bool,
    runc: bool,
    conmon: Option<u32>,
    containerd_shim: Option<u32>,
    errors: Vec<(String, String)>,
}

impl Idle {
    /// Nothing started (the runs were interrupted).
    fn none() -> Idle {
        Idle {
            isola_shim: None,
            isola_workload: None,
            nsenter: false,
            runc: false,
            conmon: None,
            containerd_shim: None,
            errors: Vec::new(),
        }
    }

    fn start(
        runner: &Runner,
        isola: &Isola,
        peers: &Peers,
        plan: &LifecyclePlan,
        name: &str,
    ) -> Idle {
        let rootfs = &plan.rootfs;
        let mut idle = Idle {
            isola_shim: None,
            isola_workload: None,
            nsenter: plan.has(Peer::Floor),
            runc: false,
            conmon: None,
            containerd_shim: None,
            errors: Vec::new(),
        };
        let mut errors: Vec<(String, String)> = Vec::new();
        let mut note = |subject: &str, e: &dyn Error| {
            errors.push((subject.into(), format!("the idle sandbox: {}", chain(e))))
        };

        match runner
            .run(&isola.run_d(name, &IDLE), &[])
            .and_then(|_| isola.shim_pid(runner, name))
        {
            Ok(shim) => {
                idle.isola_shim = Some(shim);
                // The sandbox's first process is the shim's child (found
                // by its parent: `run -d` may return as its exec is seen,
                // before its name changes).
                idle.isola_workload = procfs::tree(shim)
                    .into_iter()
                    .skip(1)
                    .find(|&p| procfs::ppid(p) == Some(shim));
                if idle.nsenter && idle.isola_workload.is_none() {
                    note(
                        "nsenter",
                        &SandboxError::Failed("no process under isola's shim to join".into()),
                    );
                }
            }
            Err(e) => note(ISOLA, &e),
        }
        if let Some(r) = peers.runc {
            match r
                .create_start(name)
                .iter()
                .try_for_each(|s| runner.run(s, &[]).map(drop))
            {
                Ok(()) => idle.runc = true,
                Err(e) => note("runc", &e),
            }
        }
        if let Some(p) = peers.podman {
            let pid = runner
                .run(&p.run_d(name, rootfs, &IDLE), p.env())
                .and_then(|_| runner.capture(&p.conmon_pid_argv(name), p.env()));
            match pid {
                Ok(pid) => {
                    idle.conmon = pid.parse().ok();
                    if idle.conmon.is_none() {
                        let why = format!("podman inspect gave {pid:?} for conmon's PID");
                        note("podman", &SandboxError::Failed(why));
                    }
                }
                Err(e) => note("podman", &e),
            }
        }
        if let Some(c) = peers.containerd {
            match runner.run(&c.run_d(name, rootfs, &IDLE), &[]) {
                Ok(_) => {
                    idle.containerd_shim = c.shim_pid(name);
                    if idle.containerd_shim.is_none() {
                        let why = "no containerd-shim-runc-v2 found for the task".to_string();
                        note("containerd", &SandboxError::Failed(why));
                    }
                }
                Err(e) => note("containerd", &e),
            }
        }
        idle.errors = errors;
        idle
    }

    /// Each supervisor's memory now.
    fn shims(&self) -> Vec<ShimMemory> {
        [
            (ISOLA, self.isola_shim),
            ("podman", self.conmon),
            ("containerd", self.containerd_shim),
        ]
        .into_iter()
        .filter_map(|(subject, pid)| {
            let pid = pid?;
            Some(ShimMemory {
                subject: subject.into(),
                process: procfs::exe_name(pid).or_else(|| procfs::comm(pid))?,
                rss_kib: procfs::vm_rss_kib(pid)?,
                pss_kib: procfs::pss_kib(pid)?,
                private_kib: procfs::private_kib(pid)?,
                rss_after_exec_kib: None,
                pss_after_exec_kib: None,
            })
        })
        .collect()
    }

    /// Every idle sandbox removed (what fails here, the drops sweep).
    fn remove(&self, runner: &Runner, isola: &Isola, peers: &Peers, name: &str) {
        if self.isola_shim.is_some() {
            let _ = runner.run(&isola.rm(&[name]), &[]);
        }
        if let (Some(r), true) = (peers.runc, self.runc) {
            let _ = runner.run(&r.delete(name), &[]);
        }
        if let Some(p) = peers.podman {
            let _ = runner.run(&p.rm(name), p.env());
        }
        if let Some(c) = peers.containerd {
            for step in c.rm(name) {
                let _ = runner.run(&step, &[]);
            }
        }
    }
}

/// The binary the sandboxes ran with: this one's build, since the bench
/// starts its sandboxes with its own binary.
pub(crate) fn build(exe: &Path) -> IsolaBuild {
    let mut profile = if cfg!(debug_assertions) {
        "debug".to_string()
    } else {
        "release".to_string()
    };
    if cfg!(target_feature = "crt-static") {
        profile.push_str(", static");
    }
    IsolaBuild {
        path: exe.display().to_string(),
        profile,
        bytes: std::fs::metadata(exe).map_or(0, |m| m.len()),
    }
}

/// The lifecycle issue's goals against what was measured.
fn goals(start: &[LifecycleSeries], exec: &[LifecycleSeries], shims: &[ShimMemory]) -> Vec<Goal> {
    let paired = |series: &[LifecycleSeries], other: &str| {
        series
            .iter()
            .find(|s| s.subject == ISOLA)
            .and_then(|s| s.paired.iter().find(|(o, _)| o == other))
            .map(|(_, r)| *r)
    };
    let shim_rss = shims
        .iter()
        .find(|s| s.subject == ISOLA)
        .map(|s| s.rss_kib as f64);
    [
        (
            "start_vs_floor",
            "isola run -d against the floor's start to exit (paired)",
            2.0,
            "x",
            paired(start, "floor"),
        ),
        (
            "exec_vs_runc",
            "isola exec against runc exec (paired)",
            0.5,
            "x",
            paired(exec, "runc"),
        ),
        (
            "exec_vs_nsenter",
            "isola exec against nsenter -a (paired)",
            2.0,
            "x",
            paired(exec, "nsenter"),
        ),
        (
            "shim_rss",
            "isola's shim, resident (VmRSS)",
            1024.0,
            "KiB",
            shim_rss,
        ),
    ]
    .into_iter()
    .map(|(key, label, limit, unit, value)| Goal::at_most(key, label, limit, unit, value))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(subject: &str, paired: &[(&str, f64)]) -> LifecycleSeries {
        LifecycleSeries::with_ratios(subject, paired)
    }

    #[test]
    fn goals_read_isola_s_paired_ratios_and_its_shim() {
        let start = [series(ISOLA, &[("floor", 1.5), ("podman", 0.1)])];
        let exec = [series(ISOLA, &[("runc", 0.6), ("nsenter", 1.9)])];
        let shims = [ShimMemory {
            subject: ISOLA.into(),
            process: "isola".into(),
            rss_kib: 2048,
            pss_kib: 900,
            private_kib: 500,
            rss_after_exec_kib: None,
            pss_after_exec_kib: None,
        }];
        let g = goals(&start, &exec, &shims);
        let met: Vec<(&str, Option<bool>)> = g.iter().map(|g| (g.key.as_str(), g.met)).collect();
        assert_eq!(
            met,
            [
                ("start_vs_floor", Some(true)),
                ("exec_vs_runc", Some(false)),
                ("exec_vs_nsenter", Some(true)),
                ("shim_rss", Some(false)),
            ]
        );
        let none = goals(&[], &[], &[]);
        assert!(none.iter().all(|g| g.value.is_none() && g.met.is_none()));
    }

    #[test]
    fn a_peer_asked_for_by_name_must_be_there() {
        let (peers, not_run) = peers(&["floor", "crun", "qemu"], true).unwrap();
        // crun and qemu are not this dimension's.
        assert!(not_run.iter().all(|e| e.subject == "floor"));
        assert!(peers.len() + not_run.len() == 1);
        if !found("containerd") {
            assert!(matches!(
                super::peers(&["containerd"], false),
                Err(PeersError::NotInstalled(_))
            ));
            let (_, not_run) = super::peers(&["containerd"], true).unwrap();
            assert!(not_run[0].message.contains("scripts/setup --peers"));
        }
    }
}
