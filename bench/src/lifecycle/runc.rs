//! runc on its own: `create` and `start` of a bundle made from the
//! flattened image (its config from `runc spec`), `exec` into it, `delete`;
//! its state under a `--root` of ours, not /run/runc.

use std::fs;
use std::path::{Path, PathBuf};

use crate::bundle::{self, BundleError};

pub struct Runc {
    root: PathBuf,
    bundle: PathBuf,
}

impl Runc {
    /// A bundle under `dir` running `cmd` in `rootfs`.
    pub fn new(dir: &Path, rootfs: &Path, cmd: &[&str]) -> Result<Runc, BundleError> {
        let bundle = dir.join("bundle");
        bundle::write_config("runc", &bundle, rootfs, cmd, None)?;
        Ok(Runc {
            root: dir.join("state"),
            bundle,
        })
    }

    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![
            "runc".to_string(),
            "--root".into(),
            self.root.display().to_string(),
        ];
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }

    /// `runc create`, then `runc start`: a running container `id`.
    pub fn create_start(&self, id: &str) -> Vec<Vec<String>> {
        let bundle = self.bundle.display().to_string();
        vec![
            self.argv(&["create", "--bundle", &bundle, id]),
            self.argv(&["start", id]),
        ]
    }

    pub fn delete(&self, id: &str) -> Vec<String> {
        self.argv(&["delete", "-f", id])
    }
}

impl Drop for Runc {
    /// Every container under our root deleted, whatever its state.
    fn drop(&mut self) {
        let Ok(dir) = fs::read_dir(&self.root) else {
            return;
        };
        for id in dir
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
        {
            super::quietly(&self.delete(&id), &[]);
        }
    }
}
