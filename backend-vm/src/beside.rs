//! Where a helper binary of isola's is on the host: named by an
//! environment variable, else beside the running binary (where `make
//! release` puts them all), or one directory up (a test binary in cargo's
//! target/*/deps).

use std::path::{Path, PathBuf};

/// Why the binary was not found.
#[derive(Debug)]
pub enum NotFound {
    /// The variable names this, which is not a file.
    NotAFile(PathBuf),
    OwnBinary(std::io::Error),
    /// Not beside the running binary, where it would be.
    Missing(PathBuf),
}

pub fn find(var: &str, name: &str) -> Result<PathBuf, NotFound> {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(NotFound::NotAFile(p))
        };
    }
    let exe = std::env::current_exe().map_err(NotFound::OwnBinary)?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let beside = dir.join(name);
    if beside.is_file() {
        return Ok(beside);
    }
    if dir.file_name().is_some_and(|n| n == "deps") {
        if let Some(up) = dir.parent().map(|d| d.join(name)) {
            if up.is_file() {
                return Ok(up);
            }
        }
    }
    Err(NotFound::Missing(beside))
}
