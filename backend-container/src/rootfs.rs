//! The first stage of a container: what its root filesystem and mounts
//! need on the host before the child is cloned. The image's layers are
//! shared as they are; the sandbox gets a private upper/work pair, and each
//! named volume a loop device. The overlay itself is mounted by the child,
//! in its own mount namespace, over the instance directory.

use std::fs;
use std::path::{Path, PathBuf};

use isola_core::backend::BackendError;
use isola_core::spec::{MountSource, RunSpec};

use crate::loopdev::{self, LoopDevice};

/// A mount's source as the child sees it.
pub enum Source {
    /// A host directory or file, bound in.
    Bind(PathBuf),
    /// An attached loop device holding a volume's ext4 filesystem.
    Device(PathBuf),
}

pub struct ChildMount<'a> {
    pub source: Source,
    pub target: &'a str,
    pub read_only: bool,
}

pub struct Rootfs<'a> {
    /// The directory the layers share, and the `lowerdir=` list relative
    /// to it, top layer first.
    pub layers_dir: PathBuf,
    pub lower: String,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Where the overlay is mounted: the instance directory itself (in the
    /// child's mount namespace only), one directory fewer to make and remove.
    pub target: PathBuf,
    /// Mount the overlay `volatile`: no sync of the upper filesystem, ever.
    pub volatile: bool,
    pub mounts: Vec<ChildMount<'a>>,
    /// Held until teardown; AUTOCLEAR detaches each once nothing mounts it.
    pub loops: Vec<LoopDevice>,
}

pub fn prepare<'a>(
    spec: &'a RunSpec,
    instance_dir: &Path,
    volatile: bool,
) -> Result<Rootfs<'a>, BackendError> {
    let (upper, work) = (instance_dir.join("upper"), instance_dir.join("work"));
    for d in [&upper, &work] {
        fs::create_dir_all(d)
            .map_err(|e| BackendError::step(format!("creating {}", d.display()), e))?;
    }
    let (layers_dir, lower) = lower_dirs(&spec.layers)?;
    let mut loops = Vec::new();
    let mut mounts = Vec::new();
    for m in &spec.mounts {
        let source = match &m.source {
            MountSource::Bind(p) => Source::Bind(p.clone()),
            MountSource::Volume { name, image } => {
                let dev = loopdev::attach(image, m.read_only)
                    .map_err(|e| BackendError::step(format!("attaching volume {name}"), e))?;
                let path = dev.path().to_path_buf();
                loops.push(dev);
                Source::Device(path)
            }
        };
        mounts.push(ChildMount {
            source,
            target: &m.target,
            read_only: m.read_only,
        });
    }
    Ok(Rootfs {
        layers_dir,
        lower,
        upper,
        work,
        target: instance_dir.to_path_buf(),
        volatile,
        mounts,
        loops,
    })
}

/// The `lowerdir=` value, top layer first. Layers from the store share one
/// parent, so their names alone (64 characters) are given relative to it.
fn lower_dirs(layers: &[PathBuf]) -> Result<(PathBuf, String), BackendError> {
    let Some(first) = layers.first() else {
        return Err(BackendError::Unsupported(
            "the image has no layers; there is nothing to run".into(),
        ));
    };
    let parent = first.parent().unwrap_or(Path::new("/")).to_path_buf();
    let names: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| match l.parent() {
            Some(p) if p == parent => l
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            _ => l.display().to_string(),
        })
        .collect();
    Ok((parent, names.join(":")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_dirs_are_top_first_and_short_when_they_share_a_parent() {
        let layers = [
            PathBuf::from("/s/layers/aa"),
            PathBuf::from("/s/layers/bb"),
            PathBuf::from("/elsewhere/cc"),
        ];
        let (dir, lower) = lower_dirs(&layers).unwrap();
        assert_eq!(dir, Path::new("/s/layers"));
        assert_eq!(lower, "/elsewhere/cc:bb:aa");
        assert!(lower_dirs(&[]).is_err());
    }
}
