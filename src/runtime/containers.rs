//! The runtime's state directory (`--root`): one directory per container
//! ID, holding its record, a copy of its config.json and, until `start`,
//! its start fifo.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use isola_core::oci::{Record, Status};

use isola_core::oci::BundleRuntime;

use crate::backends;
use crate::runtime_vm::VmRuntime;

/// The runtime of a bundle's backend, by the name its `io.isola.backend`
/// annotation gives (or a record keeps).
pub fn bundle_runtime(name: &str) -> Result<Box<dyn BundleRuntime>> {
    Ok(match name {
        "container" => backends::container_runtime(),
        "vm" => Box::new(VmRuntime {
            isola_root: std::env::var_os("ISOLA_ROOT")
                .filter(|r| !r.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(isola_core::root::DEFAULT_ROOT)),
        }),
        other => bail!(
            "unknown backend {other:?} in the annotation io.isola.backend: use container or vm"
        ),
    })
}

/// runc's rule for IDs: letters, digits and `_+-.`, not `.` or `..`.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if !ok {
        bail!("invalid container ID {id:?}: use letters, digits and _ + - . only");
    }
    Ok(())
}

pub fn dir(root: &Path, id: &str) -> Result<PathBuf> {
    check_id(id)?;
    Ok(root.join(id))
}

/// A container's record and its status now.
pub struct Found {
    pub dir: PathBuf,
    pub record: Record,
    pub status: Status,
}

pub fn find(root: &Path, id: &str) -> Result<Found> {
    let dir = dir(root, id)?;
    let record = Record::load(&dir, id)?;
    let runtime = bundle_runtime(&record.backend)?;
    let status = record.status(&dir, || runtime.paused(&record));
    Ok(Found {
        dir,
        record,
        status,
    })
}

/// The IDs under `root`, sorted.
pub fn ids(root: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    };
    let mut ids: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join(isola_core::oci::record::RECORD).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// The PID as go-runc reads it (`strconv.Atoi` of the whole file): bare
/// digits, no newline; written whole through a rename.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("pid")
    ));
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("writing the pid file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runcs_rule() {
        for good in ["c1", "a.b-c_d+e", "0123"] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "../x", "é"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_pid_file_holds_bare_digits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("init.pid");
        write_pid_file(&p, 4242).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"4242");
    }
}
