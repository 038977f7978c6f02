//! The registry client's errors: each names the registry, and the image and
//! blob when one is at fault, and says what to do where there is something.

use std::path::PathBuf;

use super::reference::RemoteRefError;
use crate::image::ImageError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] RemoteRefError),
    #[error("cannot reach registry {registry} at {url}: {why}{hint}")]
    Unreachable {
        registry: String,
        url: String,
        why: String,
        hint: String,
    },
    #[error("registry {registry}: {what}: {why}")]
    Protocol {
        registry: String,
        what: String,
        why: String,
    },
    #[error("registry {registry}: authentication failed: {why}")]
    Auth { registry: String, why: String },
    #[error("{image}: not found in registry {registry}{what}")]
    NotFound {
        registry: String,
        image: String,
        what: String,
    },
    #[error("{image} (registry {registry}): {what}")]
    Invalid {
        registry: String,
        image: String,
        what: String,
    },
    #[error("{image} (registry {registry}), blob {digest}: {why}")]
    Blob {
        registry: String,
        image: String,
        digest: String,
        why: String,
    },
    #[error("{image}: the registry has no image for platform {want}; it has {available} (choose one with --platform)")]
    Platform {
        image: String,
        want: String,
        available: String,
    },
    #[error("auth file {path}: {why}")]
    AuthFile { path: PathBuf, why: String },
    #[error(transparent)]
    Store(#[from] ImageError),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn io_ctx(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RegistryError {
    let context = context.into();
    move |source| RegistryError::Io { context, source }
}
