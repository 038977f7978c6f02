//! The one place in the frontend that names backend crates: a backend is
//! built here from its name and the options the CLI gives, and everything
//! else goes through `isola_core::backend::Backend`. A new backend is a
//! crate and a line in [`build`] (and its name in [`NAMES`]).

use std::path::PathBuf;

use anyhow::{bail, Result};
use isola_core::backend::Backend;
use isola_core::oci::BundleRuntime;

/// Every backend, by the name `--backend` takes.
pub const NAMES: &[&str] = &[
    "container",
    "vm",
    #[cfg(feature = "test-backend")]
    "process",
];

/// What the CLI may say about how a backend runs sandboxes.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// isola's state directory.
    pub state_dir: PathBuf,
    /// `--vmm`: isola, qemu or auto (VM only).
    pub vmm: Option<String>,
    /// `--kernel` (VM only).
    pub kernel: Option<PathBuf>,
}

/// The backend called `name`.
pub fn build(name: &str, options: &Options) -> Result<Box<dyn Backend>> {
    Ok(match name {
        "container" => Box::new(isola_container::ContainerBackend::default()),
        "vm" => Box::new(isola_vm::backend::VmBackend {
            vmm: match options.vmm.as_deref().unwrap_or("isola") {
                "isola" => isola_vm::backend::Vmm::Isola,
                "qemu" => isola_vm::backend::Vmm::Qemu,
                "auto" => isola_vm::backend::Vmm::Auto,
                other => bail!("unknown --vmm {other:?}: use isola, qemu or auto"),
            },
            kernel: options.kernel.clone(),
            state_dir: options.state_dir.clone(),
        }),
        #[cfg(feature = "test-backend")]
        "process" => Box::new(isola_test_backend::ProcessBackend),
        other => bail!(
            "unknown backend {other:?}: use {}",
            NAMES
                .join(" or ")
                .replacen(" or ", ", ", NAMES.len().saturating_sub(2))
        ),
    })
}

/// Every backend, with default options: for what concerns them all
/// (`isola info`, clearing what a dead sandbox left).
pub fn all(state_dir: &std::path::Path) -> Vec<Box<dyn Backend>> {
    let options = Options {
        state_dir: state_dir.to_path_buf(),
        ..Options::default()
    };
    NAMES
        .iter()
        .filter_map(|name| build(name, &options).ok())
        .collect()
}

/// The VM backend's own tools, for the commands that exist only for it
/// (`isola kernel`, `isola vm boot`, the benchmark's bare-monitor rows).
pub mod vm {
    pub use isola_vm::kernel::{self, elf_notes, store as kernel_store};
    pub use isola_vm::kvm;
    pub use isola_vm::monitor::qemu::BINARY as QEMU;
}

/// Clear what a sandbox whose isola died left outside its directory (its
/// cgroups, say). `ran_on` names its backend when known; a `--rm` sandbox
/// or a build's RUN step left no state saying which, so every backend
/// clears what it may have left under that ID.
pub fn cleanup(state_dir: &std::path::Path, id: &str, ran_on: Option<&str>) -> Result<()> {
    for backend in all(state_dir) {
        if ran_on.is_none_or(|name| name == backend.name()) {
            backend.cleanup(id)?;
        }
    }
    Ok(())
}

/// Clear what builds whose isola died left: their RUN sandboxes' cgroups
/// (the processes died with isola) and their scratch directories.
pub fn sweep_dead_builds(root: &isola_core::Root) -> Result<()> {
    for stale in isola_core::build::sweep::stale(root) {
        for id in &stale.sandboxes {
            cleanup(root.dir(), id, None)?;
        }
        isola_core::fsutil::remove_any(&stale.dir)
            .map_err(|e| anyhow::anyhow!("removing {}: {e}", stale.dir.display()))?;
    }
    Ok(())
}

/// The cgroup of a bundle's container or microVM (config.json's
/// linux.cgroupsPath): the container backend's, which the VM runtime's
/// keeper uses too. (isola-runtime's only, like [`container_runtime`].)
#[allow(unused_imports)]
pub use isola_container::{cgroup::oci::OciCgroup as Cgroup, oci::cgroup_of};

/// The container backend's OCI runtime, for isola-runtime (whose VM
/// runtime is its own, on [`build`]'s `vm` backend).
#[allow(dead_code)] // the isola binary includes this file too
pub fn container_runtime() -> Box<dyn BundleRuntime> {
    Box::new(isola_container::oci::ContainerRuntime)
}
