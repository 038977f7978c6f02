//! The mounts a build makes on the host: overlays of a stage's layers, for
//! COPY and ADD to write through and for `COPY --from` to read. They live
//! in the build's own mount namespace ([`private_namespace`]), so that
//! whatever way the build ends, none is left on the host.

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Give this process a mount namespace of its own, with nothing
/// propagating back to the host's. Must be called while the process has a
/// single thread (unshare refuses a shared filesystem context otherwise).
pub fn private_namespace() -> io::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// A mounted overlay, unmounted when dropped.
pub struct Overlay {
    target: PathBuf,
}

impl Overlay {
    /// `lower` bottom first. With `upper` (and its work dir) the overlay is
    /// writable; without, read-only. `empty` is a directory of the build's
    /// own for empty fillers: an overlay needs a lower, and without an
    /// upper, two (distinct: overlapping layers are refused).
    pub fn mount(
        lower: &[PathBuf],
        upper: Option<(&Path, &Path)>,
        empty: &Path,
        target: &Path,
    ) -> io::Result<Overlay> {
        let mut dirs: Vec<String> = lower
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect();
        let least = if upper.is_some() { 1 } else { 2 };
        for i in dirs.len()..least {
            let filler = empty.join(i.to_string());
            std::fs::create_dir_all(&filler)?;
            dirs.push(filler.display().to_string());
        }
        let mut data = format!("lowerdir={}", dirs.join(":"));
        if let Some((upper, work)) = upper {
            data.push_str(&format!(
                ",upperdir={},workdir={}",
                upper.display(),
                work.display()
            ));
        }
        if data.len() >= 4096 {
            return Err(io::Error::other(format!(
                "the image has too many layers for one overlay mount ({} bytes of options, the limit is 4095)",
                data.len()
            )));
        }
        let flags = if upper.is_some() {
            MsFlags::empty()
        } else {
            MsFlags::MS_RDONLY
        };
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            flags,
            Some(data.as_str()),
        )
        .map_err(|e| {
            io::Error::other(format!("mounting an overlay on {}: {e}", target.display()))
        })?;
        Ok(Overlay {
            target: target.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if let Err(e) = umount2(&self.target, MntFlags::MNT_DETACH) {
            tracing::warn!(target = %self.target.display(), error = %e, "unmounting a build overlay");
        }
    }
}
