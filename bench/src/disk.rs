//! Disk: what the store holds for the image (shared and unique), what one
//! sandbox adds while it exists, what a VM needs besides (kernel, rootfs
//! archive), and the layer-sharing lesson on real data: N images on one
//! base cost the base once plus their deltas, and a pull of an image whose
//! base is stored fetches only the delta.

use std::fs;
use std::path::Path;

use isola_core::fsutil::disk_usage;
use isola_core::image::default_image::DefaultImageError;
use isola_core::image::derive::{self, NewFile};
use isola_core::image::{default_image, usage, ImageError, ImageStore};
use isola_core::Root;

use crate::distribution::copy;
use crate::distribution::registry::{LocalRegistry, LocalRegistryError};
use crate::plan::BackendPlan;
use crate::results::{DiskItem, ImageDisk, PullOnBase, Sharing};
use crate::sandbox::{self, remove_new_instances, IsolaCli, SandboxError};

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error(transparent)]
    Store(#[from] ImageError),
    #[error(transparent)]
    DefaultImage(#[from] DefaultImageError),
    #[error("{0} is not in the store's usage")]
    NotInUsage(String),
    #[error("only isola's sandboxes are measured here")]
    NotIsola,
    #[error(transparent)]
    Run(#[from] SandboxError),
    #[error("reading isola-probe at {0}")]
    Probe(String, #[source] std::io::Error),
    #[error(transparent)]
    LocalRegistry(#[from] LocalRegistryError),
    #[error(transparent)]
    Registry(#[from] isola_core::registry::RegistryError),
}

/// The image's figures from the store's own accounting (`isola du`).
pub fn image(store: &ImageStore, name: &str) -> Result<ImageDisk, DiskError> {
    let digest = store.resolve(name)?;
    let u = usage::usage(store)?;
    let mine = u
        .images
        .iter()
        .find(|i| i.digest == digest)
        .ok_or_else(|| DiskError::NotInUsage(name.to_string()))?;
    Ok(ImageDisk {
        name: name.to_string(),
        layers: mine.layers,
        bytes: mine.size,
        shared_bytes: mine.shared,
        unique_bytes: mine.unique,
    })
}

/// What one kept sandbox's directory holds after a run that wrote one
/// small file (the container's upper dir; the VM's spec archive).
pub fn per_sandbox(isola: &IsolaCli, b: &BackendPlan) -> Result<DiskItem, DiskError> {
    let before = sandbox::instance_ids(&isola.root);
    let argv = b
        .runner
        .isola_run(&[], true, &["sh", "-c", "echo sandbox > /written"])
        .ok_or(DiskError::NotIsola)?;
    let ran = sandbox::output(&argv);
    let new: Vec<String> = sandbox::instance_ids(&isola.root)
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    let bytes = new
        .iter()
        .map(|id| disk_usage(&isola.root.join("instances").join(id)).unwrap_or(0))
        .sum();
    remove_new_instances(isola, &before)?;
    ran?;
    Ok(DiskItem {
        subject: b.subject.id.clone(),
        what: if b.is_vm() {
            "sandbox directory (spec archive, log, state)".into()
        } else {
            "sandbox directory (overlay upper and work dirs, log, state)".into()
        },
        bytes,
    })
}

/// A VM's needs beyond the store: its kernel, and its root disk or rootfs
/// initramfs.
pub fn vm_extra(b: &BackendPlan) -> Vec<DiskItem> {
    let mut items = Vec::new();
    if let Some(k) = &b.kernel {
        items.push(DiskItem {
            subject: b.subject.id.clone(),
            what: format!("guest kernel {}", k.display()),
            bytes: fs::metadata(k).map(|m| m.len()).unwrap_or(0),
        });
    }
    for a in b.artefact_files() {
        let Ok(m) = fs::metadata(&a) else { continue };
        let disk = a.extension().is_some_and(|e| e == "erofs");
        items.push(DiskItem {
            subject: b.subject.id.clone(),
            what: if disk {
                "root disk (the image flattened, erofs, read-only; shared by every VM of the image through the page cache)"
            } else {
                "rootfs initramfs (the image flattened, with isola-init; copied into each VM's memory at boot)"
            }
            .into(),
            bytes: m.len(),
        });
        // With a disk, what each VM copies into memory is isola-init alone.
        if let Some(init) = disk.then(|| init_archive(&a)).flatten() {
            items.push(DiskItem {
                subject: b.subject.id.clone(),
                what: "initramfs beside the disk (isola-init only)".into(),
                bytes: fs::metadata(init).map(|m| m.len()).unwrap_or(0),
            });
        }
    }
    items
}

/// The init-only initramfs that goes with the root disk `disk`
/// (`vm/rootfs/X.erofs` → the newest of `vm/init/*.cpio`).
fn init_archive(disk: &Path) -> Option<std::path::PathBuf> {
    let dir = disk.parent()?.parent()?.join("init");
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
}

/// In a scratch store under `scratch`: the default image, then `n - 1`
/// images on top of it, each adding one small file of its own.
pub fn sharing(scratch: &Path, n: usize) -> Result<Vec<Sharing>, DiskError> {
    let store = ImageStore::open(Root::new(scratch))?;
    default_image::build(&store)?;
    let base = store.get(default_image::NAME)?;
    let mut out = vec![measure_store(&store)?];
    for i in 1..n {
        let file = NewFile {
            path: format!("etc/app-{i}.conf"),
            mode: 0o644,
            data: format!("app {i}\n").repeat(512).into_bytes(),
        };
        derive::add_layer(
            &store,
            &base,
            &format!("lesson/app{i}:latest"),
            &[file],
            &format!("COPY app-{i}.conf /etc/"),
        )?;
        out.push(measure_store(&store)?);
    }
    Ok(out)
}

/// The benchmark's image (the default image plus `probe`, made in a
/// scratch store as `isola bench` makes it) and its base pushed to a
/// registry started under `scratch`, then pulled into an empty store: the
/// base first, then the image. What the second pull fetched (isola's own
/// count) against the image's size.
pub fn distribution(scratch: &Path, probe: &Path) -> Result<PullOnBase, DiskError> {
    const IMAGE: &str = "isola/bench:latest";
    let probe_bytes =
        fs::read(probe).map_err(|e| DiskError::Probe(probe.display().to_string(), e))?;
    let src = ImageStore::open(Root::new(scratch.join("source")))?;
    default_image::build(&src)?;
    let base = src.get(default_image::NAME)?;
    let file = NewFile {
        path: "usr/bin/isola-probe".into(),
        mode: 0o755,
        data: probe_bytes,
    };
    derive::add_layer(&src, &base, IMAGE, &[file], "COPY isola-probe /usr/bin/")?;
    let registry = LocalRegistry::start(&scratch.join("registry"))?;
    for name in [default_image::NAME, IMAGE] {
        copy::push(&src, name, &registry.host, name, None)?;
    }
    let dst = ImageStore::open(Root::new(scratch.join("pulled")))?;
    Ok(copy::pull_on_base(
        &dst,
        &registry.host,
        default_image::NAME,
        IMAGE,
    )?)
}

fn measure_store(store: &ImageStore) -> Result<Sharing, DiskError> {
    let u = usage::usage(store)?;
    Ok(Sharing {
        images: u.images.len(),
        store_bytes: u.store_total,
        sum_of_images_bytes: u.sum_of_images,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_on_the_stored_base_fetches_only_the_probe_s_layer() {
        if !(isola_test_support::tool(crate::distribution::registry::PROGRAM)
            && isola_test_support::tool("busybox"))
        {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // Any file stands for the probe: its bytes are the second layer.
        let probe = dir.path().join("probe");
        fs::write(&probe, vec![7u8; 300 << 10]).unwrap();
        let p = distribution(&dir.path().join("scratch"), &probe).unwrap();
        assert_eq!((p.layers, p.layers_fetched), (2, 1), "{p:?}");
        assert!(p.bytes_fetched >= 300 << 10, "{p:?}");
        assert!(p.bytes_fetched < p.bytes_total, "{p:?}");
        assert_eq!(p.base, default_image::NAME);
    }
}
