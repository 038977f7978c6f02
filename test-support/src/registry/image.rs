//! An image made in memory for the servers that serve it by hand: tar
//! layers (hostile entries included), their config and manifest, each with
//! its right digest, to be served as they are or lied about.

use std::io::Write;

use serde_json::json;
use sha2::{Digest, Sha256};

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A blob as a registry serves it.
#[derive(Clone, Debug)]
pub struct Blob {
    pub digest: String,
    pub media_type: String,
    pub data: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, data: Vec<u8>) -> Blob {
        Blob {
            digest: sha256(&data),
            media_type: media_type.to_string(),
            data,
        }
    }
}

/// One layer: its blob and the diff-id the config gives it.
#[derive(Clone, Debug)]
pub struct Layer {
    pub blob: Blob,
    pub diff_id: String,
}

impl Layer {
    /// A gzip layer of `tar`, its diff-id right.
    pub fn gzip(tar: &[u8]) -> Layer {
        Layer {
            blob: Blob::new(LAYER_GZIP, gzip(tar)),
            diff_id: sha256(tar),
        }
    }
}

/// An OCI image: manifest, config and layers.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Layer>,
}

impl Image {
    pub fn new(layers: Vec<Layer>) -> Image {
        let diff_ids: Vec<_> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let config = json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = Blob::new(CONFIG, serde_json::to_vec(&config).unwrap());
        let desc =
            |b: &Blob| json!({"mediaType": b.media_type, "digest": b.digest, "size": b.data.len()});
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": desc(&config),
            "layers": layers.iter().map(|l| desc(&l.blob)).collect::<Vec<_>>(),
        });
        Image {
            manifest: Blob::new(MANIFEST, serde_json::to_vec(&manifest).unwrap()),
            config,
            layers,
        }
    }

    /// The config or a layer, by digest.
    pub fn blob(&self, digest: &str) -> Option<&Blob> {
        std::iter::once(&self.config)
            .chain(self.layers.iter().map(|l| &l.blob))
            .find(|b| b.digest == digest)
    }
}

/// A tar stream entry by entry, names written byte for byte (so `../x` and
/// `/x` get through, as an attacker would send them).
#[derive(Default)]
pub struct Tar {
    b: Vec<u8>,
}

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    fn entry(mut self, path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>) -> Tar {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        let gnu = h.as_gnu_mut().unwrap();
        assert!(path.len() <= 100, "a short path only");
        gnu.name = [0; 100];
        gnu.name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(link) = link {
            gnu.linkname = [0; 100];
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        self.b.extend_from_slice(h.as_bytes());
        self.b.extend_from_slice(data);
        self.b.resize(self.b.len().div_ceil(512) * 512, 0);
        self
    }

    pub fn dir(self, path: &str) -> Tar {
        self.entry(path, tar::EntryType::Directory, b"", None)
    }

    pub fn file(self, path: &str, data: &[u8]) -> Tar {
        self.entry(path, tar::EntryType::Regular, data, None)
    }

    pub fn symlink(self, path: &str, target: &str) -> Tar {
        self.entry(path, tar::EntryType::Symlink, b"", Some(target))
    }

    /// The archive, with its two zero blocks of end.
    pub fn build(mut self) -> Vec<u8> {
        self.b.extend_from_slice(&[0; 1024]);
        self.b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tar_reads_back_names_and_all() {
        let t = Tar::new()
            .dir("etc")
            .file("etc/a", b"hello")
            .file("../escape", b"x")
            .symlink("l", "/")
            .build();
        let mut a = tar::Archive::new(&t[..]);
        let names: Vec<_> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                assert_eq!(
                    (e.header().uid().unwrap(), e.header().gid().unwrap()),
                    (0, 0)
                );
                let p = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                (p, e.header().entry_type(), e.size())
            })
            .collect();
        assert_eq!(
            names,
            [
                ("etc".into(), tar::EntryType::Directory, 0),
                ("etc/a".into(), tar::EntryType::Regular, 5),
                ("../escape".into(), tar::EntryType::Regular, 1),
                ("l".into(), tar::EntryType::Symlink, 0),
            ]
        );
        let img = Image::new(vec![Layer::gzip(&t)]);
        let m: serde_json::Value = serde_json::from_slice(&img.manifest.data).unwrap();
        assert_eq!(m["layers"][0]["digest"], img.layers[0].blob.digest);
        assert_eq!(img.blob(&img.config.digest).unwrap().media_type, CONFIG);
    }
}
