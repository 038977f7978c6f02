//! The default image, made with no network from the host's static busybox:
//! `isola/busybox:latest`, one layer holding busybox, its applet links, a
//! minimal /etc and the usual empty directories. Built deterministically, so
//! the same busybox always gives the same image ID.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use oci_spec::image::{
    ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, RootFsBuilder, SCHEMA_VERSION,
};

use super::digest;
use super::error::{io_ctx, ImageError};
use super::{Image, ImageStore, ImportOptions};
use crate::fsutil::Lock;

pub const NAME: &str = "isola/busybox:latest";
const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

#[derive(Debug, thiserror::Error)]
pub enum DefaultImageError {
    #[error("no busybox found (looked in {0}); install a static busybox (Debian: apt-get install busybox-static)")]
    NoBusybox(String),
    #[error("{0} is dynamically linked and would not run inside an image; install a static busybox (Debian: apt-get install busybox-static)")]
    NotStatic(PathBuf),
    #[error("running {0} --list-full")]
    List(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] ImageError),
}

/// The default image, built first if the store lacks it.
pub fn ensure(store: &ImageStore) -> Result<Image, DefaultImageError> {
    match store.get(NAME) {
        Ok(image) => Ok(image),
        Err(ImageError::NotFound(_)) => {
            build(store)?;
            Ok(store.get(NAME)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Look an image up; the default image is built on first use, so a fresh
/// store can run `isola inspect isola/busybox` (and later `isola run`).
pub fn get(store: &ImageStore, given: &str) -> Result<Image, DefaultImageError> {
    let is_default = super::Reference::parse(given).is_ok_and(|r| r.to_string() == NAME);
    match store.get(given) {
        Err(ImageError::NotFound(_)) if is_default => ensure(store),
        other => Ok(other?),
    }
}

/// Build the default image from the host's busybox and store it as [`NAME`].
pub fn build(store: &ImageStore) -> Result<super::Imported, DefaultImageError> {
    let busybox = find_busybox()?;
    let bytes = fs::read(&busybox).map_err(|e| DefaultImageError::List(busybox.clone(), e))?;
    if !is_static_elf(&bytes) {
        return Err(DefaultImageError::NotStatic(busybox));
    }
    let out = Command::new(&busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| DefaultImageError::List(busybox.clone(), e))?;
    let applets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && l != "bin/busybox")
        .collect();
    let version = String::from_utf8_lossy(
        &Command::new(&busybox)
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .lines()
    .next()
    .unwrap_or("BusyBox")
    .trim_end_matches(" multi-call binary.")
    .to_string();

    let layer = layer_tar(&bytes, &applets).map_err(io_ctx("building the busybox layer"))?;
    let root = store.root();
    let imported = {
        // Keep garbage collection off the layout while it is built in tmp/.
        let _lock = Lock::shared(&root.store_lock()).map_err(io_ctx("locking the image store"))?;
        let layout = tempfile::Builder::new()
            .prefix("default-image-")
            .tempdir_in(root.tmp())
            .map_err(io_ctx("creating a directory for the default image"))?;
        write_layout(layout.path(), &layer, &busybox, &version)
            .map_err(io_ctx("writing the default image layout"))?;
        let opts = ImportOptions {
            name: Some(NAME.to_string()),
            ..ImportOptions::default()
        };
        super::import::import(store, layout.path(), &opts)?
    };
    // A rebuild from another busybox leaves the old image nameless.
    if imported.orphaned.is_some() {
        super::gc::prune(store)?;
    }
    Ok(imported)
}

fn find_busybox() -> Result<PathBuf, DefaultImageError> {
    let mut candidates: Vec<PathBuf> = vec!["/bin/busybox".into(), "/usr/bin/busybox".into()];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("busybox")));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            DefaultImageError::NoBusybox(
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
}

/// An x86-64 ELF with no PT_INTERP program header needs no dynamic loader.
pub fn is_static_elf(b: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| {
        b.get(o..o + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]) as usize)
    };
    let u64_at = |o: usize| {
        b.get(o..o + 8)
            .map(|s| u64::from_le_bytes(s.try_into().unwrap_or_default()) as usize)
    };
    if !b.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        b.get(at..at + 4)
            .is_some_and(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) != PT_INTERP)
    })
}

/// A layer entry's header as every layer isola makes has it: owner root,
/// mtime 0, so the same files always give the same layer digest.
pub(super) fn tar_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// The layer, deterministic: sorted entries, owner root, mtime 0.
fn layer_tar(busybox: &[u8], applets: &[String]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs: std::collections::BTreeSet<String> = [
        "bin", "dev", "etc", "home", "proc", "root", "run", "sbin", "sys", "tmp", "usr", "usr/bin",
        "usr/sbin", "var",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for a in applets {
        let mut p = Path::new(a).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_string_lossy().into_owned());
            p = d.parent();
        }
    }
    for d in &dirs {
        let mode = match d.as_str() {
            "tmp" => 0o1777,
            "root" => 0o700,
            _ => 0o755,
        };
        b.append_data(
            &mut tar_header(tar::EntryType::Directory, mode, 0),
            format!("{d}/"),
            std::io::empty(),
        )?;
    }
    b.append_data(
        &mut tar_header(tar::EntryType::Regular, 0o755, busybox.len() as u64),
        "bin/busybox",
        busybox,
    )?;
    for (path, body) in [("etc/passwd", PASSWD), ("etc/group", GROUP)] {
        b.append_data(
            &mut tar_header(tar::EntryType::Regular, 0o644, body.len() as u64),
            path,
            body.as_bytes(),
        )?;
    }
    let mut links: Vec<&String> = applets.iter().collect();
    links.sort();
    links.dedup();
    for a in links {
        b.append_link(
            &mut tar_header(tar::EntryType::Symlink, 0o777, 0),
            a,
            "/bin/busybox",
        )?;
    }
    b.into_inner()
}

/// An OCI image layout holding the one-layer image.
fn write_layout(dir: &Path, layer: &[u8], busybox: &Path, version: &str) -> std::io::Result<()> {
    let invalid = |e: oci_spec::OciSpecError| std::io::Error::other(e.to_string());
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    let put = |data: &[u8]| -> std::io::Result<oci_spec::image::Digest> {
        let d = digest::of_bytes(data);
        fs::write(blobs.join(d.digest()), data)?;
        Ok(d)
    };
    let layer_digest = put(layer)?;
    let config = ImageConfigurationBuilder::default()
        .architecture("amd64")
        .os("linux")
        .created("1970-01-01T00:00:00Z")
        .config(
            ConfigBuilder::default()
                .env(vec![format!("PATH={}", crate::spec::DEFAULT_PATH)])
                .cmd(vec!["sh".to_string()])
                .working_dir("/")
                .build()
                .map_err(invalid)?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![layer_digest.to_string()])
                .build()
                .map_err(invalid)?,
        )
        .history(vec![HistoryBuilder::default()
            .created("1970-01-01T00:00:00Z")
            .created_by(format!(
                "isola image default: {version} from {}",
                busybox.display()
            ))
            .build()
            .map_err(invalid)?])
        .build()
        .map_err(invalid)?;
    let config = serde_json::to_vec(&config)?;
    let config_digest = put(&config)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config.len() as u64,
            config_digest,
        ))
        .layers(vec![Descriptor::new(
            MediaType::ImageLayer,
            layer.len() as u64,
            layer_digest,
        )])
        .build()
        .map_err(invalid)?;
    let manifest = serde_json::to_vec(&manifest)?;
    let manifest_digest = put(&manifest)?;
    write_index(dir, &manifest, manifest_digest)
}

/// The layout's index, naming its one manifest, and its oci-layout marker.
pub(super) fn write_index(
    dir: &Path,
    manifest: &[u8],
    manifest_digest: oci_spec::image::Digest,
) -> std::io::Result<()> {
    let index = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .manifests(vec![Descriptor::new(
            MediaType::ImageManifest,
            manifest.len() as u64,
            manifest_digest,
        )])
        .build()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_elf_check() {
        assert!(!is_static_elf(b"not an elf"));
        let ls = fs::read("/bin/ls").unwrap();
        assert!(!is_static_elf(&ls), "/bin/ls is dynamic on Debian");
    }
}
