//! The container backend behind isola-runtime: a bundle's config.json run
//! the way runc runs it. `create` clones the init into its namespaces and
//! cgroup, waits until it is parked on the start fifo, and returns: the
//! init outlives the runtime's process (its subreaper, containerd's shim,
//! inherits it). The later calls find it again by its record.

mod exec;
mod init;
mod mount_options;
mod plan;
mod process;

use std::ffi::CString;
use std::os::fd::AsFd;
use std::path::Path;

use isola_core::oci::gate;
use isola_core::oci::hooks::{self, Point};
use isola_core::oci::record::START_FIFO;
use isola_core::oci::runtime::{Created, StatsJson};
use isola_core::oci::{Bundle, BundleRuntime, CreateOptions, Record, RuntimeError, State, Status};
use nix::sys::signal::Signal;

use crate::cgroup::oci::OciCgroup;
use crate::message::{self, Report};
use crate::security::caps::CapSet;
use crate::spawn;

use self::init::{CgroupView, InitConfig};

/// The namespaces a process joins to be "in the container" (a hook, an
/// exec'd process): its user namespace if it has one of its own, and the
/// others but the pid one (which only a process's children can enter).
fn in_the_container(pid: i32) -> nix::sched::CloneFlags {
    use nix::sched::CloneFlags;
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWCGROUP;
    let user = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/user")).ok();
    if user(&pid.to_string()) != user("self") {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    flags
}

#[derive(Default)]
pub struct ContainerRuntime;

fn cgroup_error(step: &str, e: crate::cgroup::CgroupError) -> RuntimeError {
    RuntimeError::step(step.to_string(), e)
}

/// The cgroup a record names, with the parents to remove once empty
/// (the VM runtime's keeper's too).
pub fn cgroup_of(rec: &Record) -> Result<OciCgroup, RuntimeError> {
    let path = rec
        .cgroup
        .as_deref()
        .ok_or_else(|| RuntimeError::State(format!("container {} has no cgroup", rec.id)))?;
    OciCgroup::open(path)
        .map(|g| g.with_parents_made(rec.cgroup_parents()))
        .map_err(|e| cgroup_error("finding the container's cgroup", e))
}

impl BundleRuntime for ContainerRuntime {
    fn name(&self) -> &'static str {
        "container"
    }

    fn check(&self, bundle: &Bundle) -> Result<(), RuntimeError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(RuntimeError::Unsupported(
                "isola-runtime needs root (rootless containers are not supported yet)".into(),
            ));
        }
        plan::plan(bundle)?;
        OciCgroup::check(bundle.resources()).map_err(|e| RuntimeError::Unsupported(e.to_string()))
    }

    fn create(&self, bundle: &Bundle, opts: &CreateOptions) -> Result<Created, RuntimeError> {
        let plan = plan::plan(bundle)?;
        if plan.process.terminal && opts.console_socket.is_none() {
            return Err(RuntimeError::Unsupported(
                "process.terminal is true: give --console-socket to receive the terminal".into(),
            ));
        }
        let linux = bundle.config.linux().clone().unwrap_or_default();
        let path = isola_core::oci::cgroup_path(bundle, opts.id);
        let group = OciCgroup::create(&path, linux.resources().as_ref())
            .map_err(|e| cgroup_error("making the container's cgroup", e))?;
        match create_in(bundle, opts, &plan, &group) {
            Ok(pid) => Ok(Created {
                pid,
                cgroup: Some(group.path().to_string()),
                cgroup_parents_made: group.parents_made(),
            }),
            Err(e) => {
                let _ = group.destroy();
                let _ = std::fs::remove_file(opts.state_dir.join(START_FIFO));
                Err(e)
            }
        }
    }

    fn start(&self, rec: &Record, state_dir: &Path) -> Result<(), RuntimeError> {
        let config = stored_config(state_dir)?;
        let before = hooks::at(&config, Point::StartContainer);
        if !before.is_empty() {
            let init = spawn::open_pidfd(nix::unistd::Pid::from_raw(rec.pid))
                .map_err(|e| RuntimeError::step("finding the container's init", e))?;
            let state = rec.state(Status::Created).for_hooks();
            hooks::run(
                Point::StartContainer,
                &before,
                &state,
                Some((init.as_fd(), in_the_container(rec.pid))),
            )?;
        }
        gate::release(state_dir, &rec.id)?;
        hooks::poststart(rec, state_dir)
    }

    fn kill(&self, rec: &Record, signal: i32, all: bool) -> Result<(), RuntimeError> {
        let sig = Signal::try_from(signal)
            .map_err(|_| RuntimeError::State(format!("{signal} is not a signal")))?;
        if all {
            return cgroup_of(rec)?
                .kill_all(sig)
                .map_err(|e| cgroup_error("signalling the container's processes", e));
        }
        signal_init(rec, sig)
    }

    fn paused(&self, rec: &Record) -> bool {
        cgroup_of(rec).is_ok_and(|g| g.frozen())
    }

    fn pause(&self, rec: &Record) -> Result<(), RuntimeError> {
        cgroup_of(rec)?
            .freeze()
            .map_err(|e| cgroup_error("freezing the container", e))
    }

    fn resume(&self, rec: &Record) -> Result<(), RuntimeError> {
        cgroup_of(rec)?
            .thaw()
            .map_err(|e| cgroup_error("thawing the container", e))
    }

    fn pids(&self, rec: &Record) -> Result<Vec<i32>, RuntimeError> {
        Ok(cgroup_of(rec)?.pids())
    }

    fn exec(
        &self,
        rec: &Record,
        process: &oci_spec::runtime::Process,
        opts: &isola_core::oci::runtime::ExecOptions,
    ) -> Result<isola_core::oci::runtime::Execd, RuntimeError> {
        exec::exec(rec, &cgroup_of(rec)?, process, opts)
    }

    fn update(
        &self,
        rec: &Record,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<(), RuntimeError> {
        OciCgroup::check(Some(resources)).map_err(|e| RuntimeError::Unsupported(e.to_string()))?;
        cgroup_of(rec)?
            .update(resources)
            .map_err(|e| cgroup_error("updating the container's resources", e))
    }

    fn stats(&self, rec: &Record) -> Result<StatsJson, RuntimeError> {
        Ok(cgroup_of(rec)?.stats_json())
    }

    fn delete(&self, rec: &Record) -> Result<(), RuntimeError> {
        if rec.cgroup.is_none() {
            return Ok(());
        }
        cgroup_of(rec)?
            .destroy()
            .map_err(|e| cgroup_error("removing the container's cgroup", e))
    }
}

/// The init by a pidfd opened once the record says it is still that
/// process, so the signal cannot reach a recycled PID.
fn signal_init(rec: &Record, sig: Signal) -> Result<(), RuntimeError> {
    let pidfd = spawn::open_pidfd(nix::unistd::Pid::from_raw(rec.pid));
    if !rec.alive() {
        return Err(RuntimeError::State(format!(
            "container {} is not running",
            rec.id
        )));
    }
    let pidfd = pidfd.map_err(|e| RuntimeError::step("finding the container's init", e))?;
    spawn::send_signal(&pidfd, sig)
        .map_err(|e| RuntimeError::step(format!("sending {sig} to the container's init"), e))
}

fn create_in(
    bundle: &Bundle,
    opts: &CreateOptions,
    plan: &plan::Plan,
    group: &OciCgroup,
) -> Result<i32, RuntimeError> {
    let start = gate::make(opts.state_dir)?;

    let entry = group
        .entry()
        .map_err(|e| cgroup_error("opening the container's cgroup", e))?;
    let (born_in, tasks): (Option<std::fs::File>, Vec<std::fs::File>) = match entry {
        crate::cgroup::Entry::Directory(dir) => (Some(dir), Vec::new()),
        crate::cgroup::Entry::Tasks(files) => (None, files),
    };
    let view = match group.hierarchy_dirs() {
        None => CgroupView::Unified,
        Some(dirs) => CgroupView::Hierarchies(dirs),
    };
    // Namespaces given by path are joined here, before clone: the init is
    // born in them (a pid namespace can only be entered that way).
    for (flag, path) in &plan.joins {
        let ns = std::fs::File::open(path).map_err(|e| {
            RuntimeError::step(format!("opening the namespace {}", path.display()), e)
        })?;
        nix::sched::setns(ns.as_fd(), *flag).map_err(|e| {
            RuntimeError::step(format!("joining the namespace {}", path.display()), e)
        })?;
    }
    let keyring = (!opts.no_new_keyring)
        .then(|| CString::new(format!("_ses.{}", opts.id)).ok())
        .flatten();
    let (ours, theirs) = message::pair().map_err(|e| RuntimeError::step("socketpair", e))?;
    let cfg = InitConfig {
        plan,
        rootfs: &bundle.rootfs,
        channel: &theirs,
        start: &start,
        cgroup_tasks: &tasks,
        cgroup_view: &view,
        bounding: CapSet::bounding(),
        preserve_fds: opts.preserve_fds,
        no_pivot: opts.no_pivot,
        keyring,
        userns: plan.id_maps.is_some(),
        hooks_pause: [
            Point::Prestart,
            Point::CreateRuntime,
            Point::CreateContainer,
        ]
        .iter()
        .any(|p| !hooks::at(&bundle.config, *p).is_empty()),
    };
    // SAFETY: isola-runtime is single-threaded.
    let spawned = unsafe {
        spawn::spawn(
            plan.new_namespaces,
            born_in.as_ref().map(|d| d.as_fd()),
            || init::main(&cfg),
        )
    }
    .map_err(|e| RuntimeError::step("clone3", e))?;
    drop(theirs);
    drop(tasks);
    let fail = |e: RuntimeError| {
        let _ = spawn::send_signal(&spawned.pidfd, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(spawned.pid, None);
        e
    };
    if let Some((uid_map, gid_map)) = &plan.id_maps {
        // The init waits, unmapped, until its namespace has its ids.
        let proc = std::path::PathBuf::from(format!("/proc/{}", spawned.pid));
        for (file, map) in [("uid_map", uid_map), ("gid_map", gid_map)] {
            std::fs::write(proc.join(file), map).map_err(|e| {
                fail(RuntimeError::step(
                    format!(
                        "writing the user namespace's {file} ({})",
                        map.trim().replace('\n', ", ")
                    ),
                    e,
                ))
            })?;
        }
        ours.order(&crate::message::Order::Start, &[])
            .map_err(|e| fail(RuntimeError::step("letting the container go on", e)))?;
    }
    loop {
        match ours.next_report() {
            Ok(Some((Report::Terminal, mut fds))) => {
                if let Some(master) = fds.pop() {
                    process::pass_terminal(master, plan.process.console_size, opts.console_socket)
                        .map_err(fail)?;
                }
            }
            Ok(Some((Report::Ready, _))) => break,
            Ok(Some((Report::Mounted, _))) => {
                let state =
                    State::of_bundle(bundle, opts.id, spawned.pid.as_raw(), Status::Creating)
                        .for_hooks();
                let ran = (|| {
                    for point in [Point::Prestart, Point::CreateRuntime] {
                        hooks::run(point, &hooks::at(&bundle.config, point), &state, None)?;
                    }
                    hooks::run(
                        Point::CreateContainer,
                        &hooks::at(&bundle.config, Point::CreateContainer),
                        &state,
                        Some((
                            spawned.pidfd.as_fd(),
                            in_the_container(spawned.pid.as_raw()),
                        )),
                    )
                })();
                ran.map_err(fail)?;
                ours.order(&crate::message::Order::Start, &[])
                    .map_err(|e| fail(RuntimeError::step("letting the container go on", e)))?;
            }
            Ok(Some((Report::SetupFailed(f), _))) => {
                return Err(fail(RuntimeError::step("setting up the container", f)))
            }
            Ok(Some((other, _))) => {
                return Err(fail(RuntimeError::step(
                    "setting up the container",
                    message::MessageError::Unexpected(format!("{other:?}")),
                )))
            }
            Ok(None) => {
                return Err(fail(RuntimeError::step(
                    "setting up the container",
                    message::MessageError::Closed,
                )))
            }
            Err(e) => return Err(fail(RuntimeError::step("setting up the container", e))),
        }
    }
    Ok(spawned.pid.as_raw())
}

/// The copy of config.json `create` kept.
fn stored_config(state_dir: &Path) -> Result<oci_spec::runtime::Spec, RuntimeError> {
    let path = state_dir.join(isola_core::oci::record::CONFIG);
    let bytes = std::fs::read(&path)
        .map_err(|e| RuntimeError::step(format!("reading {}", path.display()), e))?;
    Ok(isola_core::oci::bundle::parse_config(&bytes)?)
}
