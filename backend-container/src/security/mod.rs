//! Capabilities and the default seccomp filter: what the workload may still do.
