//! Disk: what the store holds for the image (shared and unique), what one
//! sandbox adds while it exists, what a VM needs besides (kernel, rootfs
//! archive), and the layer-sharing lesson on real data: N images on one
//! base cost the base once plus their deltas.

use std::fs;
use std::path::Path;

use isola_core::fsutil::disk_usage;
use isola_core::image::default_image::DefaultImageError;
use isola_core::image::derive::{self, NewFile};
use isola_core::image::{default_image, usage, ImageError, ImageStore};
use isola_core::Root;

use crate::plan::BackendPlan;
use crate::results::{DiskItem, ImageDisk, Sharing};
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

/// A VM's needs beyond the store: its kernel and rootfs archive(s).
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
        if let Ok(m) = fs::metadata(a) {
            items.push(DiskItem {
                subject: b.subject.id.clone(),
                what: "rootfs archive (the image flattened, with isola-init)".into(),
                bytes: m.len(),
            });
        }
    }
    items
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

fn measure_store(store: &ImageStore) -> Result<Sharing, DiskError> {
    let u = usage::usage(store)?;
    Ok(Sharing {
        images: u.images.len(),
        store_bytes: u.store_total,
        sum_of_images_bytes: u.sum_of_images,
    })
}
