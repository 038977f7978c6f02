//! cgroup v2 device rules: v2 has no devices controller; rules are an eBPF
//! program attached to the container's cgroup.

use std::path::Path;

use super::devices::Rule;
use crate::cgroup::CgroupError;

/// Why `rules` cannot be honoured on this host, if they cannot.
pub(super) fn check(_rules: &[Rule]) -> Result<(), String> {
    Err(
        "needs an eBPF device program on cgroup v2, which isola does not load yet; \
         remove the device rules to run without device restrictions"
            .to_owned(),
    )
}

/// Attaches the program for `rules` to the cgroup at `dir`.
pub(super) fn install(_dir: &Path, _rules: &[Rule]) -> Result<(), CgroupError> {
    Ok(())
}
