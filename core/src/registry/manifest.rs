//! Manifests and configs from a registry: fetched with a size cap, checked
//! against their digest, and an index (OCI or Docker manifest list) followed
//! to the manifest for the wanted platform.

use std::io::Read;
use std::time::{Duration, Instant};

use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest};
use ureq::http::{self, Response};
use ureq::Body;

use super::client::{Access, Payload, Registry};
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
    let fetched = match parse(&top).map_err(invalid)? {
        Parsed::Index(index) => {
            let desc = pick(&index, platform).ok_or_else(|| RegistryError::Platform {
                image: image.clone(),
                want: platform.to_string(),
                available: available(&index),
            })?;
            let d = desc.digest().to_string();
            get(reg, r, &d, Some(desc.digest()), Some(desc.size()))?
        }
        Parsed::Manifest(_) => top,
    };
    let manifest = match parse(&fetched).map_err(invalid)? {
        Parsed::Manifest(m) => *m,
        Parsed::Index(_) => {
            return Err(invalid(format!(
                "the index entry for {platform} ({}) is another index",
                fetched.digest
            )))
        }
    };
    Ok((fetched, manifest, repo_digest))
}

pub enum Parsed {
    Index(Box<ImageIndex>),
    Manifest(Box<ImageManifest>),
}

/// What a manifest body is, by its media type. Untrusted bytes: any input
/// gives a value or an error in words.
pub fn parse(f: &Fetched) -> Result<Parsed, String> {
    let what = &f.digest;
    if f.media_type.starts_with(DOCKER_SCHEMA1) {
        return Err(format!(
            "manifest {what} is a Docker schema 1 manifest, which isola does not read; push the image again with a current docker, podman or skopeo"
        ));
    }
    if f.media_type == OCI_INDEX || f.media_type == DOCKER_LIST {
        let index: ImageIndex = serde_json::from_slice(&f.bytes)
            .map_err(|e| format!("the image index {what} is not valid ({e})"))?;
        return Ok(Parsed::Index(Box::new(index)));
    }
    let manifest: ImageManifest = serde_json::from_slice(&f.bytes)
        .map_err(|e| format!("manifest {what} is not a valid image manifest ({e})"))?;
    if manifest.media_type().as_ref().is_some_and(is_index) {
        return Err(format!(
            "manifest {what} says it is an index but has no manifests"
        ));
    }
    Ok(Parsed::Manifest(Box::new(manifest)))
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
    let bytes = read_small(&mut resp, "manifest", reg.timeout())
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
        .and_then(|v| v.to_str().ok());
    let media_type = media_type(&bytes, header_type)
        .map_err(|e| invalid(format!("manifest {reference} ({got}) is not JSON ({e})")))?;
    Ok(Fetched {
        bytes,
        media_type,
        digest: got,
    })
}

/// A manifest's media type: its own `mediaType`, else the Content-Type the
/// registry sent, else guessed from its shape.
pub fn media_type(bytes: &[u8], header: Option<&str>) -> Result<String, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes)?;
    let header = header
        .map(|s| s.split(';').next().unwrap_or(s).trim())
        .filter(|t| t.starts_with("application/vnd."));
    Ok(probe
        .media_type
        .or(header.map(str::to_string))
        .unwrap_or_else(|| {
            if probe.manifests.is_some() {
                OCI_INDEX
            } else {
                OCI_MANIFEST
            }
            .to_string()
        }))
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
        return Err(blob_err(format!(
            "the manifest says the {what} is {} bytes, more than a {what} can be",
            desc.size()
        )));
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
    let bytes = read_small(&mut resp, what, reg.timeout()).map_err(blob_err)?;
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
pub fn read_small(
    resp: &mut Response<Body>,
    what: &str,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    if let Some(n) = content_length(resp).filter(|n| *n > MAX_METADATA_BYTES) {
        return Err(format!(
            "the registry announces {n} bytes, more than a {what} can be (limit {MAX_METADATA_BYTES})"
        ));
    }
    // Per-read timeouts alone let a body that trickles a byte at a time
    // last for ever: the whole read gets a deadline too.
    let deadline = Instant::now() + timeout * 4;
    let mut reader = resp
        .body_mut()
        .with_config()
        .limit(MAX_METADATA_BYTES)
        .reader();
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if Instant::now() > deadline {
            return Err(format!(
                "the registry sent only {} bytes of a {what} in {:.0?}, too slowly to wait for",
                out.len(),
                timeout * 4
            ));
        }
    }
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
                    i.message
                        .or(i.code)
                        .unwrap_or_default()
                        .chars()
                        .take(300)
                        .collect::<String>()
                )
            })
            .collect(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fetched(bytes: &[u8], header: Option<&str>) -> Option<Fetched> {
        let media_type = media_type(bytes, header).ok()?;
        Some(Fetched {
            bytes: bytes.to_vec(),
            media_type,
            digest: digest::of_bytes(bytes),
        })
    }

    #[test]
    fn tells_indexes_from_manifests() {
        let index = br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":1,"platform":{"os":"linux","architecture":"arm64"}}]}"#;
        let f = fetched(index, None).unwrap();
        assert_eq!(f.media_type, OCI_INDEX);
        let Ok(Parsed::Index(i)) = parse(&f) else {
            panic!("an index")
        };
        assert!(pick(&i, &Platform::default()).is_none());
        assert_eq!(available(&i), "linux/arm64");
        let want: Platform = "linux/arm64".parse().unwrap();
        assert!(pick(&i, &want).is_some());
        let f = fetched(
            br#"{"schemaVersion":1}"#,
            Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
        )
        .unwrap();
        assert!(matches!(parse(&f), Err(e) if e.contains("schema 1")));
        assert!(media_type(b"not json", None).is_err());
    }

    proptest! {
        // Registry answers are untrusted: whatever the bytes, an answer or
        // an error, never a panic.
        #[test]
        fn any_manifest_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400), header in proptest::option::of(".{0,40}")) {
            if let Some(f) = fetched(&bytes, header.as_deref()) {
                if let Ok(Parsed::Index(i)) = parse(&f) {
                    let _ = pick(&i, &Platform::default());
                    let _ = available(&i);
                }
            }
        }

        #[test]
        fn any_json_manifest(media in "(application/vnd\\.(oci|docker)\\.[a-z.]{0,30}(\\+json)?)?", layers in proptest::collection::vec("[a-z0-9:]{0,70}", 0..4), n in 0u64..1000) {
            let layers: Vec<String> = layers.iter().map(|d| format!(r#"{{"mediaType":"x","digest":"{d}","size":{n}}}"#)).collect();
            let body = format!(
                r#"{{"schemaVersion":2,"mediaType":"{media}","config":{{"mediaType":"x","digest":"sha256:{}","size":{n}}},"layers":[{}],"manifests":[{}]}}"#,
                "a".repeat(64), layers.join(","), layers.join(",")
            );
            if let Some(f) = fetched(body.as_bytes(), None) {
                if let Ok(Parsed::Index(i)) = parse(&f) {
                    let _ = pick(&i, &Platform::default());
                    let _ = available(&i);
                }
            }
        }
    }
}
