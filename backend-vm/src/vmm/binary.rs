//! Where isola-vmm, isola's monitor process, is on the host: `ISOLA_VMM`,
//! else beside the running binary.

use std::path::PathBuf;

use super::VmmError;
use crate::beside::{self, NotFound};

pub fn find_vmm() -> Result<PathBuf, VmmError> {
    beside::find("ISOLA_VMM", "isola-vmm").map_err(|e| match e {
        NotFound::NotAFile(p) => VmmError::NotAFile(p),
        NotFound::OwnBinary(e) => VmmError::OwnBinary(e),
        NotFound::Missing(p) => VmmError::Missing(p),
    })
}
