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
