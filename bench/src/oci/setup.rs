//! Before the first timed run: the bundle (isola's busybox image flattened,
//! config.json from `isola-runtime spec` running `/bin/true`) and, for
//! containerd, the same image as an OCI archive.

use std::io;
use std::path::{Path, PathBuf};

use isola_core::image::default_image::{self, DefaultImageError};
use isola_core::image::save::save_layout;
use isola_core::image::{ImageError, ImageStore};
use isola_core::Root;

use crate::bundle::{self, BundleError};
use crate::lifecycle::cycle::Runner;
use crate::sandbox::SandboxError;

/// The image's name in the store, in the archive and so in containerd.
pub const IMAGE: &str = default_image::NAME;

/// What the bundle runs.
pub const ARGS: [&str; 1] = ["/bin/true"];

#[derive(Debug, thiserror::Error)]
pub enum SetUpError {
    #[error("making the default image in a scratch store")]
    Image(#[from] DefaultImageError),
    // Boxed: an ImageError is large, and this error is rare.
    #[error("flattening the image into {}", .0.display())]
    Rootfs(PathBuf, #[source] Box<ImageError>),
    #[error("creating {}", .0.display())]
    Dir(PathBuf, #[source] io::Error),
    #[error("writing the bundle's config.json")]
    Config(#[from] BundleError),
    #[error("writing the image as an OCI layout")]
    Layout(#[source] Box<ImageError>),
    #[error("packing the OCI layout into an archive")]
    Archive(#[source] SandboxError),
}

pub struct SetUp {
    /// The bundle: config.json and rootfs.
    pub bundle: PathBuf,
    /// The OCI archive, when containerd is to run.
    pub archive: Option<PathBuf>,
}

impl SetUp {
    /// The bundle under `work`, its config from `runtime spec`; the
    /// archive too if `archive`.
    pub fn new(
        work: &Path,
        runtime: &Path,
        archive: bool,
        runner: &Runner,
    ) -> Result<SetUp, SetUpError> {
        let store =
            ImageStore::open(Root::new(work.join("store"))).map_err(DefaultImageError::from)?;
        let image = default_image::ensure(&store)?;
        let bundle = work.join("bundle");
        let rootfs = bundle.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(|e| SetUpError::Dir(rootfs.clone(), e))?;
        store
            .export(&image, &rootfs)
            .map_err(|e| SetUpError::Rootfs(rootfs.clone(), Box::new(e)))?;
        bundle::write_config(
            &runtime.display().to_string(),
            &bundle,
            &rootfs,
            &ARGS,
            None,
        )?;
        let archive = archive
            .then(|| {
                let layout = work.join("layout");
                save_layout(&store, &image, &layout, IMAGE)
                    .map_err(|e| SetUpError::Layout(Box::new(e)))?;
                let tar = work.join("image.oci.tar");
                let argv = ["tar", "-C", &layout.display().to_string(), "-cf"]
                    .map(String::from)
                    .into_iter()
                    .chain([tar.display().to_string(), ".".into()])
                    .collect::<Vec<_>>();
                runner.run(&argv, &[]).map_err(SetUpError::Archive)?;
                Ok::<_, SetUpError>(tar)
            })
            .transpose()?;
        Ok(SetUp { bundle, archive })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_runs_true_from_a_busybox_rootfs_and_the_archive_is_a_layout() {
        // The default image needs the host's static busybox.
        if !std::path::Path::new("/bin/busybox").exists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(dir.path());
        // runc's own `spec` stands in for isola-runtime's, which a unit
        // test of this crate cannot build.
        if !crate::peers::found("runc") {
            return;
        }
        let s = SetUp::new(dir.path(), Path::new("runc"), true, &runner).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(s.bundle.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["process"]["args"], serde_json::json!(ARGS));
        assert_eq!(config["process"]["terminal"], false);
        assert!(s.bundle.join("rootfs/bin/true").exists());
        let list = std::process::Command::new("tar")
            .arg("-tf")
            .arg(s.archive.unwrap())
            .output()
            .unwrap();
        let names = String::from_utf8_lossy(&list.stdout);
        assert!(names.contains("./index.json"), "{names}");
        assert!(names.contains("./oci-layout"), "{names}");
    }
}
