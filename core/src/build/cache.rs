//! The layer cache: what a step made, under a key that chains its parent's
//! key, the instruction as recorded, the build args it sees and the digest
//! of the files it copies (as kaniko and buildah key theirs). An entry
//! lives as long as an image built with it does: `isola prune` and `rmi`
//! collect the rest with the layers only they kept.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::layer_ref::LayerRef;
use crate::fsutil::atomic_write_nosync;
use crate::Root;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// `None`: the step changed no file.
    pub layer: Option<LayerRef>,
    /// The images built with this step, by manifest digest.
    #[serde(default)]
    pub images: Vec<Digest>,
}

/// The key of a step: its parent's key and what makes the step itself.
pub fn chain(parent: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

pub struct Cache {
    root: Root,
}

impl Cache {
    pub fn new(root: &Root) -> Cache {
        Cache { root: root.clone() }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.build_cache().join(format!("{key}.json"))
    }

    /// The entry for `key`, if there is one whose layer is still stored.
    pub fn lookup(&self, key: &str) -> Option<Entry> {
        let bytes = fs::read(self.path(key)).ok()?;
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        if let Some(l) = &entry.layer {
            let stored = self.root.layer_dir(l.diff_id.digest()).is_dir()
                && self.root.blob(l.digest.digest()).is_file();
            if !stored {
                return None;
            }
        }
        Some(entry)
    }

    pub fn record(&self, key: &str, layer: Option<&LayerRef>) -> std::io::Result<()> {
        fs::create_dir_all(self.root.build_cache())?;
        let entry = Entry {
            layer: layer.cloned(),
            images: Vec::new(),
        };
        let json = serde_json::to_vec_pretty(&entry).map_err(std::io::Error::other)?;
        atomic_write_nosync(&self.path(key), &json)
    }

    /// Tie these steps' entries to the image they built, so they live as
    /// long as it does.
    pub fn mark_used(&self, keys: &[String], image: &Digest) -> std::io::Result<()> {
        for key in keys {
            let Ok(bytes) = fs::read(self.path(key)) else {
                continue;
            };
            let Ok(mut entry) = serde_json::from_slice::<Entry>(&bytes) else {
                continue;
            };
            if !entry.images.contains(image) {
                entry.images.push(image.clone());
                let json = serde_json::to_vec_pretty(&entry).map_err(std::io::Error::other)?;
                atomic_write_nosync(&self.path(key), &json)?;
            }
        }
        Ok(())
    }
}

/// For garbage collection, under the exclusive store lock: drop the entries
/// no living image uses, and say which layers (diff-id hex) and blobs (hex)
/// the others keep. Returns how many entries went.
pub(crate) fn collect(
    root: &Root,
    live_images: &HashSet<String>,
    live_layers: &mut HashSet<String>,
    live_blobs: &mut HashSet<String>,
) -> std::io::Result<usize> {
    let Ok(dir) = fs::read_dir(root.build_cache()) else {
        return Ok(0);
    };
    let mut removed = 0;
    for item in dir.flatten() {
        let path = item.path();
        let entry = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Entry>(&b).ok());
        let alive = entry
            .as_ref()
            .is_some_and(|e| e.images.iter().any(|d| live_images.contains(d.digest())));
        match (alive, entry) {
            (true, Some(Entry { layer: Some(l), .. })) => {
                live_layers.insert(l.diff_id.digest().to_string());
                live_blobs.insert(l.digest.digest().to_string());
            }
            (true, _) => {}
            (false, _) => {
                fs::remove_file(&path)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_chain_and_differ_by_every_part() {
        let a = chain("base", &["RUN make", ""]);
        assert_eq!(a, chain("base", &["RUN make", ""]));
        assert_ne!(a, chain("other", &["RUN make", ""]));
        assert_ne!(a, chain("base", &["RUN make ", ""]));
        assert_ne!(a, chain("base", &["RUN make", "A=1"]));
        // The separator keeps parts from running into each other.
        assert_ne!(chain("k", &["ab", "c"]), chain("k", &["a", "bc"]));
    }

    #[test]
    fn entries_live_with_their_images() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let cache = Cache::new(&root);
        let d = |c: char| {
            crate::image::digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
        };
        let layer = LayerRef {
            diff_id: d('1'),
            digest: d('2'),
            size: 3,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        };
        cache.record("k1", Some(&layer)).unwrap();
        cache.record("k2", None).unwrap();
        // The layer is not stored: the entry is no use.
        assert!(cache.lookup("k1").is_none());
        assert!(cache.lookup("k2").is_some_and(|e| e.layer.is_none()));
        cache.mark_used(&["k1".into()], &d('a')).unwrap();

        let live: HashSet<String> = ["a".repeat(64)].into_iter().collect();
        let (mut layers, mut blobs) = (HashSet::new(), HashSet::new());
        assert_eq!(collect(&root, &live, &mut layers, &mut blobs).unwrap(), 1);
        assert!(layers.contains(&"1".repeat(64)) && blobs.contains(&"2".repeat(64)));
        assert!(!root.build_cache().join("k2.json").exists());
        assert_eq!(
            collect(&root, &HashSet::new(), &mut layers, &mut blobs).unwrap(),
            1
        );
    }
}
