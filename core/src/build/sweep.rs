//! What a build leaves when its isola dies mid-step (SIGKILL, a crash):
//! its scratch directory under tmp/, and the RUN sandbox it was running,
//! whose processes die with isola but whose cgroups a backend must clear.
//! The next `isola build` and `isola prune` sweep them up.

use std::fs;
use std::path::PathBuf;

use crate::fsutil::Lock;
use crate::Root;

/// The file a live build holds locked in its scratch directory.
pub const LOCK: &str = "lock";
/// The file naming a RUN step's sandbox, in the step's directory.
pub const ID: &str = "id";
/// How build scratch directories start.
pub const PREFIX: &str = "build-";

/// A dead build's scratch directory and the sandboxes it ran.
#[derive(Debug)]
pub struct Stale {
    pub dir: PathBuf,
    pub sandboxes: Vec<String>,
}

/// The scratch directories of builds no isola runs any more.
pub fn stale(root: &Root) -> Vec<Stale> {
    let Ok(entries) = fs::read_dir(root.tmp()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let dir = e.path();
        let is_build = e.file_name().to_string_lossy().starts_with(PREFIX)
            && e.file_type().is_ok_and(|t| t.is_dir());
        if !is_build {
            continue;
        }
        // Taken, it is released at once: nobody holds it, so nobody uses the dir.
        if !matches!(Lock::try_exclusive(&dir.join(LOCK)), Ok(Some(_))) {
            continue;
        }
        let sandboxes = fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|step| fs::read_to_string(step.path().join(ID)).ok())
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
            .collect();
        out.push(Stale { dir, sandboxes });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_build_is_not_stale_and_a_dead_one_names_its_sandboxes() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let live = root.tmp().join("build-live");
        let dead = root.tmp().join("build-dead");
        fs::create_dir_all(live.join("run-1")).unwrap();
        fs::create_dir_all(dead.join("run-2")).unwrap();
        fs::create_dir_all(root.tmp().join("import-x")).unwrap();
        fs::write(dead.join("run-2").join(ID), "abc123\n").unwrap();
        let _held = Lock::exclusive(&live.join(LOCK)).unwrap();
        let found = stale(&root);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].dir, dead);
        assert_eq!(found[0].sandboxes, ["abc123"]);
    }
}
