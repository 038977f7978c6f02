//! Shared by the integration tests: a throwaway ISOLA_ROOT driven through the
//! real `isola` binary, the host checks (skip, or fail under CI) of
//! isola-test-support and those of this crate, and fixtures made at test
//! time.
#![allow(dead_code)]

pub mod background;
pub mod fixture;
pub mod oci;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// Each test binary uses some of these, none all of them.
#[allow(unused_imports)]
pub use isola_test_support::{host_has, isola_kernel_for_host, root_user, tool};
use sha2::{Digest, Sha256};

/// `isola exec -t NAME sh -c SCRIPT` on a terminal of 27 rows and 91
/// columns (util-linux's `script` makes it), its output; None (skipped,
/// or failing under CI) without `script`.
pub fn exec_on_a_terminal(root: &Path, name: &str, script: &str) -> Option<String> {
    if !tool("script") {
        return None;
    }
    let cmd = format!(
        "stty cols 91 rows 27; ISOLA_ROOT={} {} exec -t {name} sh -c '{script}'",
        root.display(),
        env!("CARGO_BIN_EXE_isola")
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running script");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// isola-init as `make test` builds it (static, for the guest), or as
/// ISOLA_INIT names it (a build in another target directory).
pub fn guest_init() -> PathBuf {
    std::env::var_os("ISOLA_INIT")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/x86_64-unknown-linux-gnu/release/isola-init")
        })
}

/// One test's ISOLA_ROOT, removed with it.
pub struct Isola {
    pub tmp: tempfile::TempDir,
}

impl Isola {
    pub fn new() -> Isola {
        Isola {
            tmp: tempfile::Builder::new()
                .prefix("isola-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    /// A scratch directory beside the root, for fixtures.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.tmp.path().join(name);
        fs::create_dir_all(&p).expect("scratch dir");
        p
    }

    /// A build context beside the root: its Dockerfile and `files` (path,
    /// content).
    pub fn context(&self, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.scratch(name);
        fs::write(dir.join("Dockerfile"), dockerfile).expect("writing the Dockerfile");
        for (path, data) in files {
            let p = dir.join(path);
            fs::create_dir_all(p.parent().expect("a file in a directory")).expect("context dir");
            fs::write(p, data).expect("writing a context file");
        }
        dir
    }

    /// `isola ARGS` on this root, not yet started.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(env!("CARGO_BIN_EXE_isola"));
        c.args(args)
            .env("ISOLA_ROOT", self.root())
            .env_remove("ISOLA_LOG");
        c
    }

    pub fn cmd<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args).output().expect("running isola")
    }

    /// Run isola and insist on success (or failure); the output either way.
    pub fn expect<I, S>(&self, args: I, success: bool) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let out = self.cmd(&args);
        assert_eq!(
            out.status.success(),
            success,
            "isola {args:?} exited {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Run isola, expect success, return stdout.
    pub fn ok<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> String {
        String::from_utf8(self.expect(args, true).stdout).expect("utf-8 stdout")
    }

    /// Run isola, expect failure, return stderr.
    pub fn fail<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> String {
        String::from_utf8(self.expect(args, false).stderr).expect("utf-8 stderr")
    }

    pub fn json<I, S>(&self, args: I) -> serde_json::Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        serde_json::from_str(&self.ok(args)).expect("isola printed valid JSON")
    }

    /// Every path in the store with its type, mode, owner, size and content
    /// hash: two equal snapshots mean nothing stored was changed. Lock files
    /// are left out (taking a lock creates them).
    pub fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        walk(&self.root(), &self.root(), &mut out);
        out
    }
}

fn walk(root: &Path, path: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    let rel = path.strip_prefix(root).unwrap().to_path_buf();
    if rel.extension().is_some_and(|e| e == "lock") {
        return;
    }
    let ft = meta.file_type();
    let what = if ft.is_dir() {
        "dir".to_string()
    } else if ft.is_symlink() {
        format!("link {}", fs::read_link(path).unwrap().display())
    } else if ft.is_file() {
        format!(
            "file {}",
            hex::encode(Sha256::digest(fs::read(path).unwrap()))
        )
    } else if ft.is_char_device() {
        format!("chr {}", meta.rdev())
    } else {
        "other".to_string()
    };
    out.insert(
        rel,
        format!(
            "{what} mode={:o} {}:{} size={}",
            meta.mode(),
            meta.uid(),
            meta.gid(),
            if ft.is_dir() { 0 } else { meta.size() }
        ),
    );
    if ft.is_dir() {
        let mut names: Vec<_> = fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            walk(root, &p, out);
        }
    }
}

/// Run a host tool (skopeo, umoci...) and insist it worked.
pub fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
