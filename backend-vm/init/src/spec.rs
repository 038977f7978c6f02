//! Reads the run spec isola put in the initramfs, then removes it (and
//! isola-init's own /.isola) so the workload never sees them.

use std::path::Path;

use isola_guest_spec::{GuestSpec, PATH};

use crate::fail::{describe_io, Failure};

pub fn load() -> Result<GuestSpec, Failure> {
    let bytes = std::fs::read(PATH)
        .map_err(|e| Failure::setup(format!("cannot read the run spec {PATH}"), describe_io(&e)))?;
    let spec = GuestSpec::from_json(&bytes).map_err(|e| Failure::setup("bad run spec", e))?;
    std::fs::remove_file(PATH)
        .map_err(|e| Failure::setup(format!("cannot remove {PATH}"), describe_io(&e)))?;
    Ok(spec)
}

/// Remove /.isola, isola-init's own binary with it (it keeps running). Not
/// on a read-only root: the kernel refuses to remount a filesystem
/// read-only while it holds a removed file still in use (EBUSY), and the
/// remount must come first; there /.isola/init stays visible.
pub fn remove_isola_dir() -> Result<(), Failure> {
    if let Some(dir) = Path::new(PATH).parent().filter(|d| d != &Path::new("/")) {
        std::fs::remove_dir_all(dir).map_err(|e| {
            Failure::setup(format!("cannot remove {}", dir.display()), describe_io(&e))
        })?;
    }
    Ok(())
}
