//! The image store's errors. Each names the image (and layer) it is about and
//! says what to do; the cause, when there is one, is chained as the source.

use std::io;
use std::path::PathBuf;

use super::reference::ReferenceError;
use super::unpack::UnpackError;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {0:?} not found (`isola images` lists the stored images; `isola pull REF` or `isola import PATH` adds one)")]
    NotFound(String),
    #[error(transparent)]
    BadReference(#[from] ReferenceError),
    /// The name an import took from its source (or its file name) is no
    /// image name: the user is told to give one.
    #[error("{0}; name the image with --name NAME:TAG")]
    BadSourceName(ReferenceError),
    #[error("{given:?} matches several images ({matches}); give more of the ID, or a name")]
    Ambiguous { given: String, matches: String },
    #[error("cannot import {path}: {why}")]
    BadSource { path: PathBuf, why: String },
    #[error("{image}: {what}")]
    Invalid { image: String, what: String },
    #[error("{image}: layer {index}/{count} ({digest})")]
    Layer {
        image: String,
        index: usize,
        count: usize,
        digest: String,
        #[source]
        source: UnpackError,
    },
    #[error("image {given} is also named {others}; remove those names first, or pass --force to remove them all")]
    MultipleNames { given: String, others: String },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

/// Attach what was being done to an I/O error.
pub fn io_ctx(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
    let context = context.into();
    move |source| ImageError::Io { context, source }
}
