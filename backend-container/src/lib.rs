//! The container backend: the workload runs on the host's kernel in new
//! namespaces, inside a cgroup with the sandbox's limits, on an overlayfs of
//! the image's shared layers, with capabilities and syscalls cut down.

pub mod cgroup;
mod child;
mod exec;
mod exec_in;
mod fail;
pub mod loopdev;
mod message;
mod mounts;
mod network;
pub mod oci;
mod policy;
mod relay;
mod rootfs;
mod sandbox;
pub mod security;
mod spawn;
mod tty;

use std::cell::OnceCell;

use isola_core::backend::{Backend, BackendError, Description, HostFact, RunContext, Sandbox};
use isola_core::spec::RunSpec;

pub use sandbox::ContainerSandbox;

/// The sentence for a host (or user) that cannot run containers.
const NEEDS_ROOT: &str = "the container backend needs root (rootless containers are not \
                          supported yet); run isola as root";

#[derive(Default)]
pub struct ContainerBackend {
    /// The host's cgroup layout, found once per process.
    hierarchy: OnceCell<cgroup::Hierarchy>,
}

impl ContainerBackend {
    fn hierarchy(&self) -> Result<&cgroup::Hierarchy, cgroup::CgroupError> {
        if let Some(h) = self.hierarchy.get() {
            return Ok(h);
        }
        let found = cgroup::detect()?;
        Ok(self.hierarchy.get_or_init(|| found))
    }

    fn unavailable(e: cgroup::CgroupError) -> BackendError {
        BackendError::Unavailable {
            reason: e.to_string(),
            source: None,
        }
    }
}

impl Backend for ContainerBackend {
    fn name(&self) -> &'static str {
        "container"
    }

    fn check_host(&self) -> Result<(), BackendError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(BackendError::unavailable(NEEDS_ROOT));
        }
        Ok(())
    }

    fn check(&self, spec: &RunSpec) -> Result<(), BackendError> {
        spec.validate()?;
        self.check_host()?;
        if spec.layers.is_empty() {
            return Err(BackendError::Unsupported(
                "the image has no layers; there is nothing to run".into(),
            ));
        }
        // Without limits any cgroup layout will do; the layout is then
        // found later, while the child builds its mounts.
        if spec.limits != Default::default() {
            self.hierarchy()
                .and_then(|h| h.check(&spec.limits))
                .map_err(Self::unavailable)?;
        }
        let s = &spec.security;
        if !s.cap_add.is_empty() || !s.cap_drop.is_empty() {
            security::caps::resolve(&s.cap_add, &s.cap_drop, s.privileged)
                .map_err(|e| BackendError::step("preparing the security policy", e))?;
        }
        Ok(())
    }

    fn describe(&self, _spec: &RunSpec) -> Result<Description, BackendError> {
        let cgroups = self.hierarchy().map_err(Self::unavailable)?;
        Ok(Description {
            runs_on: format!("the host's kernel: namespaces, {cgroups}, overlayfs"),
            volumes: true,
            exec: true,
            networks: true,
            ..Description::default()
        })
    }

    fn host_report(&self) -> Vec<HostFact> {
        let overlayfs = has_overlayfs();
        vec![
            // The error's sentence already says what to do; it is the value here.
            HostFact::text(
                "cgroups",
                "cgroups",
                match self.hierarchy() {
                    Ok(h) => h.to_string(),
                    Err(e) => e.to_string(),
                },
            ),
            HostFact::flag(
                "overlayfs",
                overlayfs,
                Some((
                    "overlayfs",
                    if overlayfs {
                        "yes".to_string()
                    } else {
                        "no: not in /proc/filesystems; load it with `modprobe overlay`".to_string()
                    },
                )),
            ),
        ]
    }

    fn create(&self, spec: &RunSpec, ctx: &RunContext) -> Result<Box<dyn Sandbox>, BackendError> {
        let hierarchy = || self.hierarchy().map_err(Self::unavailable);
        Ok(Box::new(sandbox::create(spec, ctx, &hierarchy)?))
    }

    /// A dead sandbox's cgroup: whatever is still in it is killed, then it goes.
    fn cleanup(&self, id: &str) -> Result<(), BackendError> {
        let Ok(hierarchy) = self.hierarchy() else {
            return Ok(());
        };
        let group = hierarchy
            .open(id)
            .map_err(|e| BackendError::step(format!("finding the cgroup of sandbox {id}"), e))?;
        if group.paths().iter().any(|p| p.exists()) {
            group.destroy().map_err(|e| {
                BackendError::step(format!("removing the cgroup of sandbox {id}"), e)
            })?;
        }
        Ok(())
    }
}

/// Whether the kernel knows overlayfs now (built in, or its module loaded).
fn has_overlayfs() -> bool {
    std::fs::read_to_string("/proc/filesystems").is_ok_and(|text| {
        text.lines()
            .any(|line| line.split_whitespace().last() == Some("overlay"))
    })
}
