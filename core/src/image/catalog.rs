//! images.json: which name:tag points at which manifest. Read without a lock
//! (it is only ever replaced whole, by rename); changed under images.lock.

use std::collections::BTreeMap;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};

use super::error::{io_ctx, ImageError};
use crate::fsutil::{atomic_write, Lock};
use crate::Root;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Catalog {
    /// `name:tag` → the image it names.
    pub images: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub manifest: Digest,
    /// When the name was given (seconds since the epoch).
    pub added: u64,
    /// The digest the registry gave for this name when it was pulled (an
    /// index's, for a multi-platform image): `isola images --digests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_digest: Option<Digest>,
}

impl Catalog {
    pub fn load(root: &Root) -> Result<Catalog, ImageError> {
        let path = root.images_json();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ImageError::Invalid {
                image: path.display().to_string(),
                what: format!("the image catalog is not valid JSON ({e}); restore it or remove it to start afresh"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Catalog::default()),
            Err(e) => Err(io_ctx(format!("reading {}", path.display()))(e)),
        }
    }

    /// Read-modify-write under the catalog lock. `change` sees the current
    /// catalog; if it fails, nothing is written.
    pub fn update<T>(
        root: &Root,
        change: impl FnOnce(&mut Catalog) -> Result<T, ImageError>,
    ) -> Result<T, ImageError> {
        let _lock =
            Lock::exclusive(&root.images_lock()).map_err(io_ctx("locking the image catalog"))?;
        let mut catalog = Catalog::load(root)?;
        let out = change(&mut catalog)?;
        let json = serde_json::to_vec_pretty(&catalog).expect("the catalog serialises");
        atomic_write(&root.images_json(), &json).map_err(io_ctx("writing the image catalog"))?;
        Ok(out)
    }

    /// Point `name` at `digest`. Returns the image the name pointed at
    /// before when that image is left with no name at all, so the caller can
    /// collect it (a renamed-over image must not linger unseen).
    pub fn set_name(
        root: &Root,
        name: &str,
        digest: &Digest,
    ) -> Result<Option<Digest>, ImageError> {
        Catalog::set_name_from(root, name, digest, None)
    }

    /// [`Catalog::set_name`] for an image pulled from a registry, which
    /// knows it by `repo_digest`.
    pub fn set_name_from(
        root: &Root,
        name: &str,
        digest: &Digest,
        repo_digest: Option<&Digest>,
    ) -> Result<Option<Digest>, ImageError> {
        let added = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Catalog::update(root, |c| {
            let entry = Entry {
                manifest: digest.clone(),
                added,
                repo_digest: repo_digest.cloned(),
            };
            let old = c.images.insert(name.to_string(), entry);
            Ok(old
                .map(|e| e.manifest)
                .filter(|d| d != digest && c.names_of(d).is_empty()))
        })
    }

    /// The names that point at `digest`, sorted.
    pub fn names_of(&self, digest: &Digest) -> Vec<String> {
        self.images
            .iter()
            .filter(|(_, e)| &e.manifest == digest)
            .map(|(n, _)| n.clone())
            .collect()
    }
}
