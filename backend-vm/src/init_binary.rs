//! Where isola-init, the guest's PID 1, is on the host: `ISOLA_INIT`, else
//! beside the isola binary (where `make release` puts both).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("ISOLA_INIT names {}, which is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error("cannot find isola's own binary")]
    OwnBinary(#[source] std::io::Error),
    #[error("isola-init (the guest's init) is not at {}: build it with `make release`, or name it with ISOLA_INIT", .0.display())]
    Missing(PathBuf),
}

/// The isola-init to put in the guest.
pub fn find_init() -> Result<PathBuf, InitError> {
    if let Some(p) = std::env::var_os("ISOLA_INIT").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(InitError::NotAFile(p))
        };
    }
    let exe = std::env::current_exe().map_err(InitError::OwnBinary)?;
    let beside = exe.parent().unwrap_or(Path::new("/")).join("isola-init");
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(InitError::Missing(beside))
    }
}
