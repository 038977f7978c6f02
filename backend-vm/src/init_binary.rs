//! Where isola-init, the guest's PID 1, is on the host: `ISOLA_INIT`, else
//! beside the isola binary (where `make release` puts both).

use std::path::PathBuf;

use crate::beside::{self, NotFound};

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
    beside::find("ISOLA_INIT", "isola-init").map_err(|e| match e {
        NotFound::NotAFile(p) => InitError::NotAFile(p),
        NotFound::OwnBinary(e) => InitError::OwnBinary(e),
        NotFound::Missing(p) => InitError::Missing(p),
    })
}
