//! isola-bench: the comparative harness. It measures startup, memory, disk,
//! runtime overhead, density, isolation and the lifecycle of a detached
//! sandbox for each isola backend and the peers installed on the host,
//! pulls and pushes against podman and skopeo, builds against buildah,
//! runs an OCI bundle through isola-runtime against runc and crun, and
//! writes the results and their report.

pub mod build;
pub mod bundle;
pub mod compare;
pub mod corpus;
pub mod disk;
pub mod distribution;
pub mod interrupt;
pub mod isolation;
pub mod lifecycle;
pub mod memory;
pub mod net_peer;
pub mod oci;
pub mod peers;
pub mod plan;
pub mod procfs;
pub mod report;
pub mod results;
pub mod runtime;
pub mod sandbox;
pub mod startup;
pub mod suite;
mod time;
pub mod vmm_surface;
