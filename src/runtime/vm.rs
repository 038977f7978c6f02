//! The microVM behind isola-runtime (`io.isola.backend=vm`): the bundle's
//! rootfs and process run in a guest through the VM backend, as Kata runs
//! pods behind its shim. `create` forks a keeper that boots the guest
//! (parked before the process starts) and waits on the start fifo; the
//! keeper is the PID in the pid file, sits in linux.cgroupsPath (so the
//! shim's stats and OOM events are the VM's), passes the signals it gets
//! to the guest's init, and exits with the workload's code.

use std::io::Read;
use std::path::{Path, PathBuf};

use isola_core::oci::hooks::{self, Point};
use isola_core::oci::runtime::{Created, StatsJson};
use isola_core::oci::{
    gate, Bundle, BundleRuntime, CreateOptions, Record, RuntimeError, State, Status,
};
use isola_core::spec::{Limits, RunSpec, User};
use nix::sys::signal::Signal;
use nix::unistd::ForkResult;
use oci_spec::runtime::LinuxNamespaceType;

use crate::backends::{self, Cgroup};

/// Annotations that size and boot the microVM.
pub const KERNEL_ANNOTATION: &str = "io.isola.vm.kernel";
pub const MEMORY_ANNOTATION: &str = "io.isola.vm.memory";
pub const MONITOR_ANNOTATION: &str = "io.isola.vm.monitor";

/// (destination, type) of the mounts isola-init makes in every guest.
const GUEST_MOUNTS: &[(&str, &str)] = &[
    ("/proc", "proc"),
    ("/sys", "sysfs"),
    ("/dev", "tmpfs"),
    ("/dev/pts", "devpts"),
    ("/dev/shm", "tmpfs"),
    ("/dev/mqueue", "mqueue"),
    ("/run", "tmpfs"),
    ("/tmp", "tmpfs"),
];

pub struct VmRuntime {
    /// isola's state directory: its kernel store.
    pub isola_root: PathBuf,
}

fn unsupported(field: &str, why: &str) -> RuntimeError {
    RuntimeError::unsupported(field, &format!("{why} in a microVM (io.isola.backend=vm)"))
}

impl VmRuntime {
    fn options(
        &self,
        bundle: &Bundle,
        state_dir: &Path,
    ) -> Result<backends::Options, RuntimeError> {
        let kernel = match bundle.annotation(KERNEL_ANNOTATION) {
            Some(k) => PathBuf::from(k),
            None => backends::vm::kernel::find(&self.isola_root, None).map_err(|e| {
                RuntimeError::Unsupported(format!(
                    "{e}; or name one with the annotation {KERNEL_ANNOTATION}"
                ))
            })?,
        };
        Ok(backends::Options {
            // The guest's root filesystem archive is built per container,
            // in its own state directory, and goes with it.
            state_dir: state_dir.to_path_buf(),
            vmm: Some(
                bundle
                    .annotation(MONITOR_ANNOTATION)
                    .unwrap_or("auto")
                    .to_string(),
            ),
            kernel: Some(kernel),
        })
    }
}

/// config.json as a run spec for the VM backend, every field it cannot
/// honour refused by name.
fn run_spec(bundle: &Bundle, id: &str) -> Result<RunSpec, RuntimeError> {
    let spec = &bundle.config;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| unsupported("process", "it is missing"))?;
    let linux = spec.linux().clone().unwrap_or_default();
    if process.terminal().unwrap_or(false) {
        return Err(unsupported(
            "process.terminal",
            "a terminal is not supported yet",
        ));
    }
    for (set, field) in [
        (linux.seccomp().is_some(), "linux.seccomp"),
        (
            linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()),
            "linux.uidMappings",
        ),
        (
            linux.devices().as_ref().is_some_and(|d| !d.is_empty()),
            "linux.devices",
        ),
        (
            linux.sysctl().as_ref().is_some_and(|d| !d.is_empty()),
            "linux.sysctl",
        ),
        (
            process.apparmor_profile().is_some(),
            "process.apparmorProfile",
        ),
        (process.selinux_label().is_some(), "process.selinuxLabel"),
    ] {
        if set {
            return Err(unsupported(field, "it is not applied yet"));
        }
    }
    for point in [Point::CreateContainer, Point::StartContainer] {
        if !hooks::at(spec, point).is_empty() {
            return Err(unsupported(
                &format!("hooks.{}", point.name()),
                "a hook cannot run in the guest's namespaces",
            ));
        }
    }
    for ns in linux.namespaces().iter().flatten() {
        if ns.path().is_some() {
            return Err(unsupported(
                "linux.namespaces[].path",
                "a guest has namespaces of its own kernel; joining the host's is not possible",
            ));
        }
    }
    if !linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Network)
    {
        return Err(unsupported(
            "linux.namespaces",
            "the host's network is not reachable (the guest has only its loopback)",
        ));
    }
    // The guest's init mounts the standard filesystems itself (the
    // guest's own kernel's); anything else a mount could ask for is not
    // done in a guest yet.
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let typ = m.typ().as_deref().unwrap_or_default();
        let dest = m.destination().to_string_lossy();
        let bind = typ == "bind"
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        let standard = GUEST_MOUNTS.contains(&(dest.trim_end_matches('/'), typ));
        if bind || !standard {
            return Err(unsupported(
                &format!("mounts[{i}] ({dest}, {})", if bind { "bind" } else { typ }),
                "only the guest's own /proc, /sys, /dev, /dev/pts, /dev/shm, /dev/mqueue, /run \
                 and /tmp are mounted",
            ));
        }
    }
    let args = process.args().clone().unwrap_or_default();
    // The VM backend names the guest's root filesystem archive by image
    // digest; a bundle has none, so the container's ID stands in.
    let digest = isola_core::image::digest::of_bytes(id.as_bytes()).to_string();
    let mut rs = RunSpec::new(id, "oci-bundle", &digest, vec![bundle.rootfs.clone()], args);
    rs.process.env = process.env().clone().unwrap_or_default();
    rs.process.cwd = process.cwd().to_string_lossy().into_owned();
    let user = process.user();
    rs.process.user = User {
        uid: user.uid(),
        gid: user.gid(),
        groups: user.additional_gids().clone().unwrap_or_default(),
    };
    rs.hostname = spec.hostname().clone().unwrap_or_else(|| id.to_string());
    rs.read_only = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    rs.limits = limits(bundle)?;
    rs.validate()
        .map_err(|e| RuntimeError::Unsupported(e.to_string()))?;
    Ok(rs)
}

/// The guest's size: io.isola.vm.memory, else the memory limit; vCPUs
/// from the CPU quota.
fn limits(bundle: &Bundle) -> Result<Limits, RuntimeError> {
    let resources = bundle
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone());
    let mut limits = Limits::default();
    if let Some(text) = bundle.annotation(MEMORY_ANNOTATION) {
        limits.memory = Some(parse_size(text).ok_or_else(|| {
            RuntimeError::Unsupported(format!(
                "the annotation {MEMORY_ANNOTATION}={text:?} is not a size: give bytes, or a number with k, m or g"
            ))
        })?);
    } else if let Some(m) = resources
        .as_ref()
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
    {
        if m > 0 {
            limits.memory = Some(m as u64);
        }
    }
    if let Some(cpu) = resources.as_ref().and_then(|r| r.cpu().as_ref()) {
        if let (Some(q), Some(p)) = (cpu.quota(), cpu.period()) {
            if q > 0 && p > 0 {
                limits.cpus = Some(q as f64 / p as f64);
            }
        }
    }
    Ok(limits)
}

fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let (num, shift) = match t.strip_suffix(['k', 'm', 'g']) {
        Some(n) => (
            n,
            match t.as_bytes()[t.len() - 1] {
                b'k' => 10,
                b'm' => 20,
                _ => 30,
            },
        ),
        None => (t.as_str(), 0),
    };
    num.parse::<u64>().ok()?.checked_mul(1 << shift)
}

impl BundleRuntime for VmRuntime {
    fn name(&self) -> &'static str {
        "vm"
    }

    fn check(&self, bundle: &Bundle) -> Result<(), RuntimeError> {
        run_spec(bundle, "check")?;
        Cgroup::check(bundle.resources()).map_err(|e| RuntimeError::Unsupported(e.to_string()))
    }

    fn create(&self, bundle: &Bundle, opts: &CreateOptions) -> Result<Created, RuntimeError> {
        let spec = run_spec(bundle, opts.id)?;
        let options = self.options(bundle, opts.state_dir)?;
        let backend = backends::build("vm", &options)
            .map_err(|e| RuntimeError::Unsupported(format!("{e:#}")))?;
        backend
            .check(&spec)
            .map_err(|e| RuntimeError::Unsupported(e.to_string()))?;
        let linux = bundle.config.linux().clone().unwrap_or_default();
        let path = isola_core::oci::cgroup_path(bundle, opts.id);
        let group = Cgroup::create(&path, linux.resources().as_ref())
            .map_err(|e| RuntimeError::step("making the microVM's cgroup", e))?;
        let start = gate::make(opts.state_dir)?;
        let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| RuntimeError::step("pipe", e))?;
        // SAFETY: isola-runtime is single-threaded.
        let pid = match unsafe { nix::unistd::fork() } {
            Err(e) => {
                let _ = group.destroy();
                return Err(RuntimeError::step("fork", e));
            }
            Ok(ForkResult::Child) => {
                drop(ready_r);
                let code = crate::vm_keeper::keeper(
                    backend.as_ref(),
                    &spec,
                    opts.state_dir,
                    &group,
                    &start,
                    ready_w,
                );
                // SAFETY: ends the keeper without running the runtime's exit path.
                unsafe { nix::libc::_exit(code) }
            }
            Ok(ForkResult::Parent { child }) => child,
        };
        drop(ready_w);
        drop(start);
        let mut said = String::new();
        let _ = std::fs::File::from(ready_r).read_to_string(&mut said);
        let fail = |e: RuntimeError| {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
            let _ = Self::destroy(&group);
            e
        };
        if said != "ok" {
            return Err(fail(RuntimeError::State(if said.is_empty() {
                "the microVM's keeper ended before the guest was ready".to_string()
            } else {
                said
            })));
        }
        let state = State::of_bundle(bundle, opts.id, pid.as_raw(), Status::Creating).for_hooks();
        for point in [
            Point::Prestart,
            Point::CreateRuntime,
            Point::CreateContainer,
        ] {
            hooks::run(point, &hooks::at(&bundle.config, point), &state, None).map_err(fail)?;
        }
        Ok(Created {
            pid: pid.as_raw(),
            cgroup: Some(group.path().to_string()),
            cgroup_parents_made: group.parents_made(),
        })
    }

    fn start(&self, rec: &Record, state_dir: &Path) -> Result<(), RuntimeError> {
        gate::release(state_dir, &rec.id)?;
        hooks::poststart(rec, state_dir)
    }

    /// To the keeper, which passes it to the guest's init (SIGKILL ends
    /// the keeper, and the monitor with it).
    fn kill(&self, rec: &Record, signal: i32, all: bool) -> Result<(), RuntimeError> {
        let sig = Signal::try_from(signal)
            .map_err(|_| RuntimeError::State(format!("{signal} is not a signal")))?;
        if all {
            return backends::cgroup_of(rec)?
                .kill_all(sig)
                .map_err(|e| RuntimeError::step("signalling the microVM", e));
        }
        if !rec.alive() {
            return Err(RuntimeError::State(format!(
                "container {} is not running",
                rec.id
            )));
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(rec.pid), sig)
            .map_err(|e| RuntimeError::step(format!("sending {sig} to the microVM"), e))
    }

    fn paused(&self, rec: &Record) -> bool {
        backends::cgroup_of(rec).is_ok_and(|g| g.frozen())
    }

    fn pause(&self, rec: &Record) -> Result<(), RuntimeError> {
        backends::cgroup_of(rec)?
            .freeze()
            .map_err(|e| RuntimeError::step("freezing the microVM", e))
    }

    fn resume(&self, rec: &Record) -> Result<(), RuntimeError> {
        backends::cgroup_of(rec)?
            .thaw()
            .map_err(|e| RuntimeError::step("thawing the microVM", e))
    }

    fn pids(&self, rec: &Record) -> Result<Vec<i32>, RuntimeError> {
        Ok(backends::cgroup_of(rec)?.pids())
    }

    fn stats(&self, rec: &Record) -> Result<StatsJson, RuntimeError> {
        Ok(backends::cgroup_of(rec)?.stats_json())
    }

    fn delete(&self, rec: &Record) -> Result<(), RuntimeError> {
        Self::destroy(&backends::cgroup_of(rec)?)
    }

    /// Through the keeper, which holds the guest's agent channel.
    fn exec(
        &self,
        rec: &Record,
        process: &oci_spec::runtime::Process,
        opts: &isola_core::oci::runtime::ExecOptions,
    ) -> Result<isola_core::oci::runtime::Execd, RuntimeError> {
        crate::vm_exec::exec(rec, process, opts)
    }
}

impl VmRuntime {
    fn destroy(group: &Cgroup) -> Result<(), RuntimeError> {
        group
            .clone()
            .destroy()
            .map_err(|e| RuntimeError::step("removing the microVM's cgroup", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_k_m_and_g() {
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("lots"), None);
    }
}
