//! `isola push`: every blob the registry lacks goes up — skipped when a HEAD
//! finds it, mounted from another repository of the same registry when a
//! stored image came from one, else uploaded (in one PUT, or in chunks when
//! large) — and the manifest last, so the tag never names a partial image.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use oci_spec::image::{Descriptor, Digest, MediaType};
use ureq::http;

use super::client::{Access, Payload, Registry};
use super::manifest::{registry_message, OCI_MANIFEST};
use super::pull::Progress;
use super::reference::RemoteRef;
use super::RegistryError;
use crate::image::digest::{self, HashingWriter};
use crate::image::media::{Compression, Decoder};
use crate::image::{Image, ImageStore};

/// Blobs larger than this go up in chunks of this size.
pub const CHUNK: u64 = 8 << 20;

#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Re-compress layers that are not already in this format.
    pub compress: Option<Compression>,
    pub max_concurrent: usize,
}

#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: Digest,
    pub uploaded: usize,
    pub mounted: usize,
    pub skipped: usize,
}

struct Blob {
    index: usize,
    digest: Digest,
    size: u64,
    /// Where its bytes are; `None` for a layer the store holds only
    /// unpacked (pulled from a blob of other compression).
    path: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Skipped,
    Mounted,
    Uploaded,
}

pub fn push(
    store: &ImageStore,
    reg: &Registry,
    image: &Image,
    target: &RemoteRef,
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<Pushed, RegistryError> {
    let root = store.root();
    let name = target.to_string();
    let invalid = |what: String| RegistryError::Invalid {
        registry: reg.name.clone(),
        image: name.clone(),
        what,
    };
    let stored = std::fs::read(root.blob(image.digest.digest())).map_err(super::error::io_ctx(
        format!("reading the manifest of {}", image.digest),
    ))?;
    let scratch = tempfile::Builder::new()
        .prefix("push-")
        .tempdir_in(root.tmp())
        .map_err(super::error::io_ctx("creating a scratch directory"))?;

    let mut manifest = image.manifest.clone();
    let mut blobs = Vec::new();
    let mut layers = Vec::new();
    let diff_ids = image.config.rootfs().diff_ids();
    let count = manifest.layers().len();
    for (i, desc) in manifest.layers().iter().enumerate() {
        let index = i + 1;
        let stored_path = root.blob(desc.digest().digest());
        let stored = stored_path.exists();
        match opts.compress {
            Some(want) if !stored || Compression::of_layer(desc.media_type()) != Some(want) => {
                // A layer held only unpacked is re-compressed from any blob
                // of the same content.
                let src = if stored {
                    stored_path
                } else {
                    diff_ids
                        .get(i)
                        .and_then(|d| digest::parse(d).ok())
                        .and_then(|d| store.layer_meta(d.digest()))
                        .and_then(|m| m.blobs.iter().map(|b| root.blob(b.digest())).find(|p| p.exists()))
                        .ok_or_else(|| invalid(format!("layer {index}/{count}: the store has no blob of it to compress from")))?
                };
                let from = Compression::sniff(&head(&src)?);
                let (path, d, size) = recompress(&src, from, want, scratch.path(), index).map_err(
                    super::error::io_ctx(format!("re-compressing layer {index}/{count}")),
                )?;
                blobs.push(Blob {
                    index,
                    digest: d.clone(),
                    size,
                    path: Some(path),
                });
                layers.push(Descriptor::new(want.layer_media_type(), size, d));
            }
            _ => {
                blobs.push(Blob {
                    index,
                    digest: desc.digest().clone(),
                    size: desc.size(),
                    path: stored.then_some(stored_path),
                });
                layers.push(desc.clone());
            }
        }
    }
    let changed = layers
        .iter()
        .zip(manifest.layers())
        .any(|(a, b)| a.digest() != b.digest());
    let (manifest_bytes, media_type) = if changed {
        let mut config = manifest.config().clone();
        config.set_media_type(MediaType::ImageConfig);
        manifest.set_config(config);
        manifest.set_layers(layers);
        manifest.set_media_type(Some(MediaType::ImageManifest));
        let bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
        (bytes, OCI_MANIFEST.to_string())
    } else {
        let media = media_type_of(&stored).unwrap_or_else(|| OCI_MANIFEST.to_string());
        (stored, media)
    };
    let config = manifest.config();
    blobs.push(Blob {
        index: count + 1,
        digest: config.digest().clone(),
        size: config.size(),
        path: Some(root.blob(config.digest().digest())),
    });

    let mount_from = mount_sources(store, image, target);
    let pusher = Pusher {
        reg,
        target,
        progress,
        mount_from,
        cancel: AtomicBool::new(false),
    };
    let outcomes = pusher.run(&blobs, opts.max_concurrent.max(1))?;

    let digest = digest::of_bytes(&manifest_bytes);
    let tag = target.tag.clone().unwrap_or_else(|| "latest".into());
    let reference = match &target.digest {
        Some(d) if target.tag.is_none() => d.to_string(),
        _ => tag,
    };
    let mut resp = reg.send(
        http::Method::PUT,
        &format!("/v2/{}/manifests/{reference}", target.repository),
        &target.repository,
        Access::Push,
        &[("Content-Type", &media_type)],
        Payload::Bytes(&manifest_bytes),
    )?;
    if !resp.status().is_success() {
        return Err(invalid(format!(
            "the registry refused the manifest: {}{}",
            resp.status().as_u16(),
            registry_message(&mut resp)
        )));
    }
    if let Some(theirs) = resp
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| digest::parse(v).ok())
    {
        if theirs != digest {
            return Err(invalid(format!(
                "the registry stored the manifest as {theirs}, but isola sent {digest}"
            )));
        }
    }
    let n = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    Ok(Pushed {
        digest,
        uploaded: n(Outcome::Uploaded),
        mounted: n(Outcome::Mounted),
        skipped: n(Outcome::Skipped),
    })
}

fn head(path: &Path) -> Result<Vec<u8>, RegistryError> {
    let mut b = [0u8; 4];
    let mut f =
        File::open(path).map_err(super::error::io_ctx(format!("reading {}", path.display())))?;
    let n = f
        .read(&mut b)
        .map_err(super::error::io_ctx(format!("reading {}", path.display())))?;
    Ok(b[..n].to_vec())
}

fn media_type_of(manifest: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Probe>(manifest).ok()?.media_type
}

/// Decompress `src` and compress it again as `to`, into `dir`.
fn recompress(
    src: &Path,
    from: Compression,
    to: Compression,
    dir: &Path,
    index: usize,
) -> io::Result<(PathBuf, Digest, u64)> {
    let path = dir.join(format!("layer-{index}"));
    let out = HashingWriter::new(BufWriter::new(File::create(&path)?));
    let mut plain = Decoder::new(from, BufReader::with_capacity(256 * 1024, File::open(src)?))?;
    let out = match to {
        Compression::None => {
            let mut out = out;
            io::copy(&mut plain, &mut out)?;
            out
        }
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            io::copy(&mut plain, &mut enc)?;
            enc.finish()?
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(out, 3)?;
            io::copy(&mut plain, &mut enc)?;
            enc.finish()?
        }
    };
    let (mut w, d, n) = out.finish();
    w.flush()?;
    Ok((path, d, n))
}

/// For each repository of the target registry that a stored image came from
/// (by its names), the blobs it has: candidates for a cross-repository mount.
fn mount_sources(
    store: &ImageStore,
    image: &Image,
    target: &RemoteRef,
) -> Vec<(String, Vec<Digest>)> {
    let Ok(images) = store.list() else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<Digest>)> = Vec::new();
    for other in images.iter().chain(std::iter::once(image)) {
        for n in &other.names {
            let Ok(r) = RemoteRef::parse(n) else { continue };
            if r.registry != target.registry || r.repository == target.repository {
                continue;
            }
            let mut digests: Vec<Digest> = other
                .manifest
                .layers()
                .iter()
                .map(|l| l.digest().clone())
                .collect();
            digests.push(other.manifest.config().digest().clone());
            out.push((r.repository, digests));
        }
    }
    out
}

struct Pusher<'a> {
    reg: &'a Registry,
    target: &'a RemoteRef,
    progress: &'a dyn Progress,
    mount_from: Vec<(String, Vec<Digest>)>,
    cancel: AtomicBool,
}

impl Pusher<'_> {
    fn run(&self, blobs: &[Blob], workers: usize) -> Result<Vec<Outcome>, RegistryError> {
        super::parallel::each(blobs, workers, &self.cancel, |_, b| self.blob(b))
    }

    fn err(&self, b: &Blob, why: String) -> RegistryError {
        RegistryError::Blob {
            registry: self.reg.name.clone(),
            image: self.target.to_string(),
            digest: b.digest.to_string(),
            why,
        }
    }

    fn send(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        payload: Payload,
    ) -> Result<http::Response<ureq::Body>, RegistryError> {
        self.reg.send(
            method,
            path,
            &self.target.repository,
            Access::Push,
            headers,
            payload,
        )
    }

    /// Ask the registry to mount `b` from repository `from`: `Ok(None)`
    /// when it did, the upload location when it started an upload instead
    /// (or `Err` for "not possible": then a plain upload follows).
    fn mount(&self, b: &Blob, from: &str) -> Result<Option<String>, RegistryError> {
        let repo = &self.target.repository;
        let resp = self.reg.send(
            http::Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?mount={}&from={from}", b.digest),
            repo,
            Access::Mount { from },
            &[("Content-Length", "0")],
            Payload::Empty,
        )?;
        match resp.status().as_u16() {
            201 => Ok(None),
            202 => self.location(b, &resp).map(Some),
            s => Err(self.err(
                b,
                format!("mounting from {from}: the registry answered {s}"),
            )),
        }
    }

    fn blob(&self, b: &Blob) -> Result<Outcome, RegistryError> {
        let repo = &self.target.repository;
        let resp = self.send(
            http::Method::HEAD,
            &format!("/v2/{repo}/blobs/{}", b.digest),
            &[],
            Payload::Empty,
        )?;
        if resp.status() == 200 {
            self.progress.layer_reused(b.index, &b.digest);
            return Ok(Outcome::Skipped);
        }
        let mut location = None;
        for (from, _) in self
            .mount_from
            .iter()
            .filter(|(_, ds)| ds.contains(&b.digest))
        {
            match self.mount(b, from) {
                Ok(None) => {
                    tracing::info!(blob = %b.digest, from = %from, "mounted");
                    self.progress.layer_done(b.index, &b.digest);
                    return Ok(Outcome::Mounted);
                }
                Ok(Some(l)) => {
                    location = Some(l);
                    break;
                }
                // Not readable there, or not allowed: upload it instead.
                Err(e) => tracing::debug!(blob = %b.digest, from = %from, error = %e, "no mount"),
            }
        }
        let Some(path) = &b.path else {
            return Err(self.err(b, "the store holds this layer only unpacked (it was pulled as another blob of the same content), and the registry lacks it; push with --compress gzip to upload it re-compressed".into()));
        };
        let mut location = match location {
            Some(l) => l,
            None => {
                let mut resp = self.send(
                    http::Method::POST,
                    &format!("/v2/{repo}/blobs/uploads/"),
                    &[("Content-Length", "0")],
                    Payload::Empty,
                )?;
                if resp.status() != 202 {
                    let msg = registry_message(&mut resp);
                    return Err(self.err(
                        b,
                        format!(
                            "starting an upload: the registry answered {}{msg}",
                            resp.status().as_u16()
                        ),
                    ));
                }
                self.location(b, &resp)?
            }
        };
        self.progress.layer_started(b.index, &b.digest, b.size, 0);
        let mut sent = 0;
        if b.size > CHUNK {
            while sent < b.size {
                if self.cancel.load(Ordering::SeqCst) {
                    return Err(self.err(b, "stopped: another blob failed".into()));
                }
                let len = CHUNK.min(b.size - sent);
                let range = format!("{sent}-{}", sent + len - 1);
                let chunk = read_range(path, sent, len)
                    .map_err(super::error::io_ctx(format!("reading {}", path.display())))?;
                let mut resp = self.send(
                    http::Method::PATCH,
                    &location,
                    &[
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Range", &range),
                    ],
                    Payload::Bytes(&chunk),
                )?;
                if resp.status() != 202 {
                    let msg = registry_message(&mut resp);
                    return Err(self.err(
                        b,
                        format!(
                            "uploading bytes {range}: the registry answered {}{msg}",
                            resp.status().as_u16()
                        ),
                    ));
                }
                location = self.location(b, &resp)?;
                sent += len;
                self.progress.layer_bytes(b.index, len);
            }
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", b.digest);
        let payload = if sent == 0 {
            Payload::File(path)
        } else {
            Payload::Empty
        };
        let mut resp = self.send(
            http::Method::PUT,
            &url,
            &[("Content-Type", "application/octet-stream")],
            payload,
        )?;
        if resp.status() != 201 {
            let msg = registry_message(&mut resp);
            return Err(self.err(
                b,
                format!(
                    "finishing the upload: the registry answered {}{msg}",
                    resp.status().as_u16()
                ),
            ));
        }
        if sent == 0 {
            self.progress.layer_bytes(b.index, b.size);
        }
        self.progress.layer_done(b.index, &b.digest);
        Ok(Outcome::Uploaded)
    }

    /// The upload URL a registry answered with, made absolute.
    fn location(
        &self,
        b: &Blob,
        resp: &http::Response<ureq::Body>,
    ) -> Result<String, RegistryError> {
        let loc = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                self.err(
                    b,
                    "the registry started an upload but gave no Location".into(),
                )
            })?;
        if loc.starts_with("http://") || loc.starts_with("https://") {
            Ok(loc.to_string())
        } else if loc.starts_with('/') {
            Ok(format!("{}{loc}", self.reg.base()?))
        } else {
            Err(self.err(b, format!("the upload Location {loc:?} is not a URL")))
        }
    }
}

fn read_range(path: &Path, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = File::open(path)?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}
