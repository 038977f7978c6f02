//! `isola build`: a Dockerfile turned into an image. The Dockerfile is
//! parsed and expanded here, each step runs against the layers before it
//! (RUN in a sandbox of a backend, COPY and ADD on an overlay of those
//! layers), and each change becomes a layer in the store, with a cache
//! keyed the way kaniko and buildah key theirs.
pub mod dockerfile;
