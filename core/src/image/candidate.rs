//! What an import finds in a source, whatever its format: the image's config,
//! its layers in order and where each is, and the names the source gives it.

use std::io::Read;

use oci_spec::image::{Digest, MediaType};

use super::digest;
use super::error::ImageError;
use super::media::Compression;
use super::source::Source;

/// Manifests, indexes and configs are small; anything bigger is refused
/// rather than read into memory.
pub const MAX_METADATA_BYTES: u64 = 16 << 20;

pub struct Candidate {
    /// The manifest exactly as the source holds it (verified), or `None`
    /// when the source has none in OCI form and one is written at import.
    pub manifest: Option<Vec<u8>>,
    pub config: Vec<u8>,
    pub layers: Vec<LayerSrc>,
    /// Names the source gives the image (a ref annotation, RepoTags).
    pub names: Vec<String>,
}

pub struct LayerSrc {
    pub member: String,
    /// The blob's digest and size when the source states them.
    pub digest: Option<Digest>,
    pub size: Option<u64>,
    /// `None`: recognise it from the first bytes.
    pub compression: Option<Compression>,
    pub media_type: Option<MediaType>,
}

/// An OS/architecture pair such as `linux/amd64`, for multi-arch indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

/// A platform that is not `OS/ARCH[/VARIANT]`.
#[derive(Debug, thiserror::Error)]
#[error("invalid platform {0:?}: expected OS/ARCH[/VARIANT], e.g. linux/amd64")]
pub struct PlatformError(String);

impl std::str::FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: Some(variant.to_string()),
                })
            }
            _ => Err(PlatformError(s.to_string())),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Read a whole member of at most [`MAX_METADATA_BYTES`].
pub fn read_small(src: &Source, member: &str, what: &str) -> Result<Vec<u8>, ImageError> {
    let bad = |why: String| ImageError::BadSource {
        path: src.path().to_path_buf(),
        why,
    };
    let (reader, size) = src
        .open_member(member)
        .map_err(|e| bad(format!("{what} ({member}): {e}")))?;
    if size > MAX_METADATA_BYTES {
        return Err(bad(format!(
            "{what} ({member}) is {size} bytes, more than a {what} can be"
        )));
    }
    let mut out = Vec::with_capacity(size as usize);
    reader
        .take(MAX_METADATA_BYTES)
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("reading {what} ({member}): {e}")))?;
    Ok(out)
}

/// Read a small blob and check it is exactly what its descriptor says.
pub fn read_verified(
    src: &Source,
    image: &str,
    what: &str,
    digest: &Digest,
    size: Option<u64>,
) -> Result<Vec<u8>, ImageError> {
    digest::parse(digest.as_ref()).map_err(|why| ImageError::Invalid {
        image: image.to_string(),
        what: format!("the {what} descriptor: {why}"),
    })?;
    let member = format!("blobs/sha256/{}", digest.digest());
    if !src.exists(&member) {
        return Err(ImageError::Invalid {
            image: image.to_string(),
            what: format!(
                "the {what} blob {digest} is missing from {}",
                src.path().display()
            ),
        });
    }
    let data = read_small(src, &member, what)?;
    verify(image, what, digest, size, &data)?;
    Ok(data)
}

pub fn verify(
    image: &str,
    what: &str,
    want: &Digest,
    size: Option<u64>,
    data: &[u8],
) -> Result<(), ImageError> {
    let got = digest::of_bytes(data);
    if let Some(size) = size {
        if data.len() as u64 != size {
            return Err(ImageError::Invalid {
                image: image.to_string(),
                what: format!("the {what} blob {want} is {} bytes, but its descriptor says {size} (truncated or altered)", data.len()),
            });
        }
    }
    if &got != want {
        return Err(ImageError::Invalid {
            image: image.to_string(),
            what: format!(
                "the {what} blob has digest {got}, but it should be {want} (corrupt or altered)"
            ),
        });
    }
    Ok(())
}
