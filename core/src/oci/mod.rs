//! What isola-runtime shares with the backends: an OCI bundle (config.json
//! and its root filesystem) read and checked, the record a created
//! container leaves in the runtime's state directory, runc's state JSON,
//! and the trait through which a backend runs a bundle.

pub mod bundle;
pub mod gate;
pub mod hooks;
pub mod record;
pub mod runtime;
pub mod state;

pub use bundle::{Bundle, BundleError};
pub use record::Record;
pub use runtime::{BundleRuntime, CreateOptions, RuntimeError};
pub use state::{State, Status};

/// The annotation that picks the backend of a bundle: `container` (the
/// default) or `vm`.
pub const BACKEND_ANNOTATION: &str = "io.isola.backend";

/// Where a container's cgroup goes when config.json names none.
pub const DEFAULT_CGROUP_PARENT: &str = "/isola-runtime";

/// config.json's `linux.cgroupsPath`, else isola's default for `id`.
pub fn cgroup_path(bundle: &Bundle, id: &str) -> String {
    match bundle
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
    {
        Some(p) if !p.as_os_str().is_empty() => p.to_string_lossy().into_owned(),
        _ => format!("{DEFAULT_CGROUP_PARENT}/{id}"),
    }
}
