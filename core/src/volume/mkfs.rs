//! Making a volume's ext4 filesystem with mkfs.ext4, quickly and sparsely.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::{io_ctx, VolumeError};

/// The longest label ext4 takes.
const LABEL_LEN: usize = 16;

/// Make an ext4 filesystem filling `image`, quickly: inode tables and the
/// journal are left for the kernel to initialise lazily, so the file stays
/// sparse.
pub(super) fn mkfs(program: Option<PathBuf>, name: &str, image: &Path) -> Result<(), VolumeError> {
    let program = program.or_else(find_mkfs).ok_or(VolumeError::MkfsMissing)?;
    let label: String = name.chars().take(LABEL_LEN).collect();
    let out = Command::new(&program)
        .args(["-q", "-F", "-m", "0", "-L", &label, "-E"])
        .arg("lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0")
        .arg(image)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => VolumeError::MkfsMissing,
            _ => io_ctx(format!("volume {name}: running {}", program.display()))(e),
        })?;
    if !out.status.success() {
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.is_empty() {
            stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        return Err(VolumeError::Mkfs {
            name: name.to_string(),
            status: out.status.to_string(),
            stderr: stderr.replace('\n', "; "),
        });
    }
    Ok(())
}

/// mkfs.ext4 on PATH, or in the sbin directories a non-root PATH may lack.
pub(super) fn find_mkfs() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("mkfs.ext4"))
        .find(|p| p.is_file())
}
