//! The OCI distribution API: pulling images into the store and pushing them
//! out, with the authentication registries ask for. Blocking HTTP on a few
//! threads: no async runtime, and nothing here is on `isola run`'s path.

pub mod authfile;
mod challenge;
pub mod client;
pub mod download;
mod error;
pub mod manifest;
mod parallel;
pub mod pull;
pub mod push;
pub mod reference;

pub use authfile::{AuthFiles, Credentials};
pub use client::{ClientOptions, Registry};
pub use error::RegistryError;
pub use pull::{pull, Progress, PullOptions, Pulled};
pub use push::{push, PushOptions, Pushed};
pub use reference::RemoteRef;
