//! Where isola-vmm, isola's monitor process, is on the host: `ISOLA_VMM`,
//! else beside the running binary (where `make release` puts it), or one
//! directory up (a test binary in cargo's target/*/deps).

use std::path::{Path, PathBuf};

use super::VmmError;

pub fn find_vmm() -> Result<PathBuf, VmmError> {
    if let Some(p) = std::env::var_os("ISOLA_VMM").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(VmmError::NotAFile(p))
        };
    }
    let exe = std::env::current_exe().map_err(VmmError::OwnBinary)?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let beside = dir.join("isola-vmm");
    if beside.is_file() {
        return Ok(beside);
    }
    if dir.file_name().is_some_and(|n| n == "deps") {
        if let Some(up) = dir.parent().map(|d| d.join("isola-vmm")) {
            if up.is_file() {
                return Ok(up);
            }
        }
    }
    Err(VmmError::Missing(beside))
}
