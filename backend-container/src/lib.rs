//! The container backend: the workload runs on the host's kernel in new
//! namespaces, inside a cgroup with the sandbox's limits, on an overlayfs of
//! the image's shared layers, with capabilities and syscalls cut down.

pub mod cgroup;
mod child;
mod exec;
pub mod loopdev;
mod mounts;
mod network;
mod policy;
mod relay;
mod runtime;
pub mod security;
mod tty;

use isola_core::backend::{Backend, BackendError, Outcome, RunContext};
use isola_core::spec::RunSpec;

pub struct ContainerBackend;

impl Backend for ContainerBackend {
    fn name(&self) -> &'static str {
        "container"
    }

    fn run(&self, spec: &RunSpec, ctx: &RunContext) -> Result<Outcome, BackendError> {
        runtime::run(spec, ctx)
    }

    /// A dead sandbox's cgroup: whatever is still in it is killed, then it goes.
    fn cleanup(&self, id: &str) -> Result<(), BackendError> {
        let Ok(hierarchy) = cgroup::detect() else {
            return Ok(());
        };
        let group = hierarchy.open(id).map_err(|e| BackendError::Setup {
            what: format!("finding the cgroup of sandbox {id}"),
            source: Box::new(e),
        })?;
        if group.paths().iter().any(|p| p.exists()) {
            group.destroy().map_err(|e| BackendError::Setup {
                what: format!("removing the cgroup of sandbox {id}"),
                source: Box::new(e),
            })?;
        }
        Ok(())
    }
}
