//! skopeo with a home of its own, so that no real ~/.docker/config.json,
//! auth.json or registries.conf plays a part: copies into and out of the
//! test registries and raw inspections of what they hold.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::image::sha256;

pub struct Skopeo {
    home: PathBuf,
}

impl Skopeo {
    /// skopeo whose HOME, DOCKER_CONFIG, auth file and registries.conf are
    /// all in `home` (made if missing).
    pub fn new(home: &Path) -> Skopeo {
        fs::create_dir_all(home.join(".docker")).expect("skopeo's home");
        fs::write(home.join("registries.conf"), "").expect("an empty registries.conf");
        Skopeo {
            home: home.to_path_buf(),
        }
    }

    /// `skopeo --insecure-policy ARGS`, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("skopeo");
        c.arg("--insecure-policy")
            .args(args)
            .env("HOME", &self.home)
            .env("DOCKER_CONFIG", self.home.join(".docker"))
            .env("XDG_RUNTIME_DIR", &self.home)
            .env("REGISTRY_AUTH_FILE", self.home.join("auth.json"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.home.join("registries.conf"),
            )
            .env("TMPDIR", &self.home);
        c
    }

    /// Run skopeo; its output whether or not it worked.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running skopeo")
    }

    /// Run skopeo and insist it worked; its stdout.
    pub fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "skopeo {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// `skopeo copy --quiet EXTRA FROM TO`.
    pub fn copy(&self, from: &str, to: &str, extra: &[&str]) {
        let mut args = vec!["copy", "--quiet"];
        args.extend_from_slice(extra);
        args.extend([from, to]);
        self.ok(&args);
    }

    /// The manifest (or index) exactly as stored: `skopeo inspect --raw`.
    pub fn inspect_raw(&self, reference: &str, extra: &[&str]) -> Vec<u8> {
        let mut args = vec!["inspect", "--raw"];
        args.extend_from_slice(extra);
        args.push(reference);
        self.ok(&args)
    }

    /// The digest of [`Skopeo::inspect_raw`]'s bytes: what a registry
    /// serves as Docker-Content-Digest.
    pub fn digest(&self, reference: &str, extra: &[&str]) -> String {
        sha256(&self.inspect_raw(reference, extra))
    }

    /// The image's config: `skopeo inspect --config --raw`.
    pub fn config(&self, reference: &str, extra: &[&str]) -> Value {
        let mut args = vec!["inspect", "--config", "--raw"];
        args.extend_from_slice(extra);
        args.push(reference);
        serde_json::from_slice(&self.ok(&args)).expect("skopeo printed a JSON config")
    }
}

/// The `rootfs.diff_ids` of an image config.
pub fn diff_ids(config: &Value) -> Vec<String> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
