//! Reads the run spec isola put in the initramfs, then removes it so the
//! workload never sees it.

use std::path::Path;

use isola_guest_spec::{GuestSpec, PATH};

use crate::fail::{describe_io, Failure};

pub fn load() -> Result<GuestSpec, Failure> {
    let bytes = std::fs::read(PATH)
        .map_err(|e| Failure::setup(format!("cannot read the run spec {PATH}"), describe_io(&e)))?;
    let spec = GuestSpec::from_json(&bytes).map_err(|e| Failure::setup("bad run spec", e))?;
    // The spec's directory, /.isola: it holds nothing else of the image's.
    if let Some(dir) = Path::new(PATH).parent().filter(|d| d != &Path::new("/")) {
        std::fs::remove_dir_all(dir).map_err(|e| {
            Failure::setup(format!("cannot remove {}", dir.display()), describe_io(&e))
        })?;
    }
    Ok(spec)
}
