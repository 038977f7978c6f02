//! `isola build`: a Dockerfile turned into an image. The Dockerfile is
//! parsed and expanded here, each step runs against the layers before it
//! (RUN in a sandbox of a backend, COPY and ADD on an overlay of those
//! layers), and each change becomes a layer in the store, with a cache
//! keyed the way kaniko and buildah key theirs.

pub(crate) mod cache;
mod commit;
pub mod config;
pub mod context;
pub mod copy;
pub mod diff;
pub mod dockerfile;
mod error;
mod exec;
pub mod ignore;
mod layer;
mod layer_ref;
pub mod mount;
mod plan;
mod settings;
pub mod sweep;

pub use error::BuildError;
pub use exec::{build, BuildOptions, Built, Driver};
pub use layer_ref::LayerRef;

use oci_spec::image::Digest;

use crate::image::{ImageError, ImageStore};

/// Collect the images a build's tags moved away from (see
/// [`Built::orphaned`]), once the build no longer holds the store.
pub fn collect(store: &ImageStore, orphaned: &[Digest]) -> Result<(), ImageError> {
    if orphaned.is_empty() {
        return Ok(());
    }
    store.collect_orphan(&orphaned.first().cloned())
}
