//! The container backend: the workload runs on the host's kernel in new
//! namespaces, inside a cgroup with the sandbox's limits, on an overlayfs of
//! the image's shared layers, with capabilities and syscalls cut down.

pub mod cgroup;
pub mod loopdev;
pub mod security;
