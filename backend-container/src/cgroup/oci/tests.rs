//! Real cgroups, as root, on this host.
