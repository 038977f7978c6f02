//! Manifests and configs from a registry: fetched with a size cap, checked
//! against their digest, and an index (OCI or Docker manifest list) followed
//! to the manifest for the wanted platform.

use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest};
use ureq::http::{self, Response};
use ureq::Body;

use super::client::{describe, Access, Payload, Registry};
use super::reference::RemoteRef;
use super::RegistryError;
use crate::image::candidate::MAX_METADATA_BYTES;
use crate::image::digest;
use crate::image::oci_layout::{is_index, platform_matches};
use crate::image::Platform;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1";

/// A manifest as the registry sent it, verified.
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

/// The image manifest for `platform` that `r` names, and the digest `r`
/// itself resolved to (an index's, for a multi-platform image).
pub fn resolve(
    reg: &Registry,
    r: &RemoteRef,
    platform: &Platform,
) -> Result<(Fetched, ImageManifest, Digest), RegistryError> {
    let image = r.to_string();
    let top = get(reg, r, &r.manifest_ref(), r.digest.as_ref(), None)?;
    let repo_digest = top.digest.clone();
    let invalid = |what: String| RegistryError::Invalid {
        registry: reg.name.clone(),
        image: image.clone(),
        what,
    };
    let fetched = if top.media_type == OCI_INDEX || top.media_type == DOCKER_LIST {
        let index: ImageIndex = serde_json::from_slice(&top.bytes)
            .map_err(|e| invalid(format!("the image index is not valid ({e})")))?;
        let desc = pick(&index, platform).ok_or_else(|| RegistryError::Platform {
            image: image.clone(),
            want: platform.to_string(),
            available: available(&index),
        })?;
        let d = desc.digest().to_string();
        let m = get(reg, r, &d, Some(desc.digest()), Some(desc.size()))?;
        if m.media_type == OCI_INDEX || m.media_type == DOCKER_LIST {
            return Err(invalid(format!("the index entry for {platform} ({d}) is another index")));
        }
        m
    } else {
        top
    };
    if fetched.media_type.starts_with(DOCKER_SCHEMA1) {
        return Err(invalid(
            "it has a Docker schema 1 manifest, which isola does not read; push it again with a current docker, podman or skopeo".into(),
        ));
    }
    let manifest: ImageManifest = serde_json::from_slice(&fetched.bytes)
        .map_err(|e| invalid(format!("its manifest {} is not a valid image manifest ({e})", fetched.digest)))?;
    if is_index(manifest.media_type().as_ref().unwrap_or(&oci_spec::image::MediaType::ImageManifest)) {
        return Err(invalid("its manifest says it is an index".into()));
    }
    Ok((fetched, manifest, repo_digest))
}

fn pick<'a>(index: &'a ImageIndex, want: &Platform) -> Option<&'a Descriptor> {
    index
        .manifests()
        .iter()
        .filter(|d| d.platform().is_some())
        .find(|d| platform_matches(d, want))
}

fn available(index: &ImageIndex) -> String {
    let mut all: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .filter(|s| s != "unknown/unknown")
        .collect();
    all.dedup();
    if all.is_empty() {
        "no platform at all".into()
    } else {
        all.join(", ")
    }
}

/// GET one manifest by tag or digest. `want`: the digest it must have.
fn get(
    reg: &Registry,
    r: &RemoteRef,
    reference: &str,
    want: Option<&Digest>,
    size: Option<u64>,
) -> Result<Fetched, RegistryError> {
    let image = r.to_string();
    let accept = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ");
    let path = format!("/v2/{}/manifests/{reference}", r.repository);
    let mut resp = reg.send(
        http::Method::GET,
        &path,
        &r.repository,
        Access::Pull,
        &[("Accept", &accept)],
        Payload::Empty,
    )?;
    let invalid = |what: String| RegistryError::Invalid {
        registry: reg.name.clone(),
        image: image.clone(),
        what,
    };
    match resp.status().as_u16() {
        200 => {}
        404 => {
            return Err(RegistryError::NotFound {
                registry: reg.name.clone(),
                image: image.clone(),
                what: format!(" (no manifest {reference}{})", registry_message(&mut resp)),
            })
        }
        s => {
            return Err(invalid(format!(
                "fetching manifest {reference}: the registry answered {s}{}",
                registry_message(&mut resp)
            )))
        }
    }
    let bytes = read_small(&mut resp, "manifest")
        .map_err(|why| invalid(format!("manifest {reference}: {why}")))?;
    let got = digest::of_bytes(&bytes);
    if let Some(want) = want {
        if &got != want {
            return Err(invalid(format!(
                "the registry sent a manifest with digest {got} for {want} (corrupt or altered)"
            )));
        }
    }
    if let Some(size) = size.filter(|s| *s != bytes.len() as u64) {
        return Err(invalid(format!(
            "manifest {got} is {} bytes, but the index says {size}",
            bytes.len()
        )));
    }
    let header_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(&bytes).map_err(|e| {
        invalid(format!("manifest {reference} ({got}) is not JSON ({e})"))
    })?;
    let media_type = probe
        .media_type
        .or(header_type.filter(|t| t.starts_with("application/vnd.")))
        .unwrap_or_else(|| {
            if probe.manifests.is_some() { OCI_INDEX } else { OCI_MANIFEST }.to_string()
        });
    Ok(Fetched {
        bytes,
        media_type,
        digest: got,
    })
}

/// A small blob (a config) by digest, checked.
pub fn get_small_blob(
    reg: &Registry,
    r: &RemoteRef,
    what: &str,
    desc: &Descriptor,
) -> Result<Vec<u8>, RegistryError> {
    let d = desc.digest();
    let blob_err = |why: String| RegistryError::Blob {
        registry: reg.name.clone(),
        image: r.to_string(),
        digest: d.to_string(),
        why,
    };
    if desc.size() > MAX_METADATA_BYTES {
        return Err(blob_err(format!("the manifest says the {what} is {} bytes, more than a {what} can be", desc.size())));
    }
    let mut resp = reg.send(
        http::Method::GET,
        &format!("/v2/{}/blobs/{d}", r.repository),
        &r.repository,
        Access::Pull,
        &[],
        Payload::Empty,
    )?;
    if resp.status() != 200 {
        return Err(blob_err(format!(
            "fetching the {what}: the registry answered {}{}",
            resp.status().as_u16(),
            registry_message(&mut resp)
        )));
    }
    let bytes = read_small(&mut resp, what).map_err(blob_err)?;
    if bytes.len() as u64 != desc.size() || &digest::of_bytes(&bytes) != d {
        return Err(blob_err(format!(
            "the {what} the registry sent ({} bytes, digest {}) is not the one the manifest names ({} bytes) (corrupt or altered)",
            bytes.len(),
            digest::of_bytes(&bytes),
            desc.size()
        )));
    }
    Ok(bytes)
}

/// Read a body of at most [`MAX_METADATA_BYTES`], refusing a larger
/// announced length up front rather than waiting for it.
pub fn read_small(resp: &mut Response<Body>, what: &str) -> Result<Vec<u8>, String> {
    if let Some(n) = content_length(resp).filter(|n| *n > MAX_METADATA_BYTES) {
        return Err(format!(
            "the registry announces {n} bytes, more than a {what} can be (limit {MAX_METADATA_BYTES})"
        ));
    }
    resp.body_mut()
        .with_config()
        .limit(MAX_METADATA_BYTES)
        .read_to_vec()
        .map_err(|e| describe(&e))
}

pub fn content_length(resp: &Response<Body>) -> Option<u64> {
    resp.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The registry's own words from an error body (`{"errors":[{"message"}]}`),
/// as ": message", or nothing.
pub fn registry_message(resp: &mut Response<Body>) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    let Ok(body) = resp.body_mut().with_config().limit(64 * 1024).read_to_vec() else {
        return String::new();
    };
    match serde_json::from_slice::<Errors>(&body) {
        Ok(e) => e
            .errors
            .into_iter()
            .map(|i| {
                format!(
                    ": {}",
                    i.message.or(i.code).unwrap_or_default().chars().take(300).collect::<String>()
                )
            })
            .collect(),
        Err(_) => String::new(),
    }
}
