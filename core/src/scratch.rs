//! A small pool of pristine sandbox directories for `--rm` sandboxes. On some
//! filesystems every directory made and removed costs a millisecond (freeing
//! its block means a discard); a sandbox that wrote nothing leaves its empty
//! `upper/` and `work/` as they were, so the next one takes them over by
//! rename instead. Anything else is removed as usual.
//!
//! overlayfs removes and remakes `work/work` at every mount: the same cost
//! again, on the start-up path. So a directory comes back "dirty"
//! (`dirty-<id>`, with `work/work`) and [`tidy`] removes that while a later
//! sandbox's workload runs, when isola would otherwise only wait.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::fsutil::remove_any;
use crate::Root;

/// Enough for the sandboxes one host starts back to back.
const POOL_MAX: usize = 8;
/// A pooled directory whose `work/work` is still there.
const DIRTY: &str = "dirty-";
/// A directory being tidied (a leftover if its isola was killed meanwhile).
const TIDYING: &str = ".tidy";

fn pool(root: &Root) -> PathBuf {
    root.dir().join("instances/.pool")
}

fn entries(pool: &Path) -> Vec<String> {
    match fs::read_dir(pool) {
        Ok(d) => d
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Move a pooled directory to `dest`, a tidy one if there is any; false if
/// the pool is empty (or other processes took the last ones first).
pub fn claim(root: &Root, dest: &Path) -> bool {
    let pool = pool(root);
    let names = entries(&pool);
    let (dirty, tidy): (Vec<&String>, Vec<&String>) = names
        .iter()
        .filter(|n| !n.ends_with(TIDYING))
        .partition(|n| n.starts_with(DIRTY));
    tidy.into_iter()
        .chain(dirty)
        .any(|name| fs::rename(pool.join(name), dest).is_ok())
}

/// Return `dir` to the pool if it is pristine and the pool has room.
/// Returns false when the caller must remove it.
pub fn recycle(root: &Root, dir: &Path, id: &str) -> bool {
    let pool = pool(root);
    if !pristine(dir) || entries(&pool).len() >= POOL_MAX {
        return false;
    }
    let _ = fs::create_dir(&pool);
    let name = if dir.join("work/work").exists() {
        format!("{DIRTY}{id}")
    } else {
        id.to_string()
    };
    fs::rename(dir, pool.join(name)).is_ok()
}

/// Make one dirty pooled directory tidy: remove its `work/work`, so that
/// the overlayfs mount of the sandbox that claims it does not have to. With
/// nothing to tidy and fewer than two tidy ones (each run claims one and
/// returns one dirty), make a new one. Errors only mean the pool stays as
/// it is.
pub fn tidy(root: &Root) {
    let pool = pool(root);
    let names = entries(&pool);
    let Some(name) = names.iter().find(|n| n.starts_with(DIRTY)) else {
        let ready = names.iter().filter(|n| !n.ends_with(TIDYING)).count();
        if ready < 2 {
            let _ = add_fresh(&pool);
        }
        return;
    };
    let id = &name[DIRTY.len()..];
    // Renamed first, so that no other isola claims or tidies it meanwhile.
    let busy = pool.join(format!("{id}{TIDYING}"));
    if fs::rename(pool.join(name), &busy).is_err() {
        return;
    }
    if fs::remove_dir(busy.join("work/work")).is_err() || fs::rename(&busy, pool.join(id)).is_err()
    {
        let _ = remove_any(&busy);
    }
}

fn add_fresh(pool: &Path) -> std::io::Result<()> {
    let id = crate::instance::new_id()?;
    let busy = pool.join(format!("{id}{TIDYING}"));
    fs::create_dir_all(busy.join("work"))?;
    fs::create_dir(busy.join("upper"))?;
    // The merged root takes its mode from upper/: that of a fresh sandbox dir.
    fs::set_permissions(busy.join("upper"), fs::Permissions::from_mode(0o755))?;
    fs::rename(&busy, pool.join(id))
}

/// Remove what a killed isola left half-tidied in the pool.
pub fn prune(root: &Root) -> usize {
    let pool = pool(root);
    entries(&pool)
        .into_iter()
        .filter(|n| n.ends_with(TIDYING))
        .filter(|n| remove_any(&pool.join(n)).is_ok())
        .count()
}

/// Exactly an empty `upper/` (root-owned, 0755, no xattrs but overlay's
/// uuid: the merged root takes its attributes from it) and a `work/` holding at most overlayfs' own
/// empty `work/`.
fn pristine(dir: &Path) -> bool {
    let names: Vec<_> = match fs::read_dir(dir) {
        Ok(d) => d.flatten().map(|e| e.file_name()).collect(),
        Err(_) => return false,
    };
    if names.len() != 2 || !names.iter().all(|n| n == "upper" || n == "work") {
        return false;
    }
    let upper = dir.join("upper");
    let upper_ok = fs::symlink_metadata(&upper).is_ok_and(|m| {
        m.is_dir() && m.uid() == 0 && m.gid() == 0 && m.permissions().mode() & 0o7777 == 0o755
    }) && empty(&upper)
        // Overlayfs marks an upper root with its own uuid: that may stay.
        && xattr::list(&upper).map(|mut l| l.all(|n| n == "trusted.overlay.uuid")).unwrap_or(false);
    let work = dir.join("work");
    let work_ok = match fs::read_dir(&work) {
        Ok(d) => d
            .flatten()
            .all(|e| e.file_name() == "work" && empty(&e.path())),
        Err(_) => false,
    };
    upper_ok && work_ok
}

fn empty(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(root: &Path, name: &str) -> PathBuf {
        let d = root.join("instances").join(name);
        fs::create_dir_all(d.join("upper")).unwrap();
        fs::create_dir_all(d.join("work/work")).unwrap();
        fs::set_permissions(d.join("upper"), fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    fn pooled(root: &Root) -> Vec<String> {
        let mut names = entries(&pool(root));
        names.sort();
        names
    }

    #[test]
    fn only_pristine_dirs_go_back() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let clean = make(t.path(), "a");
        let wrote = make(t.path(), "b");
        fs::write(wrote.join("upper/file"), "x").unwrap();
        let chmodded = make(t.path(), "c");
        fs::set_permissions(chmodded.join("upper"), fs::Permissions::from_mode(0o700)).unwrap();
        if nix::unistd::geteuid().is_root() {
            assert!(recycle(&root, &clean, "a"));
            assert!(!clean.exists());
        }
        assert!(
            !recycle(&root, &wrote, "b"),
            "a sandbox that wrote is not reused"
        );
        assert!(
            !recycle(&root, &chmodded, "c"),
            "nor one whose root changed mode"
        );
        let dest = t.path().join("instances/new");
        assert_eq!(claim(&root, &dest), nix::unistd::geteuid().is_root());
    }

    #[test]
    fn dirty_dirs_are_tidied_and_tidy_ones_claimed_first() {
        if !nix::unistd::geteuid().is_root() {
            // pristine() wants a root-owned upper/.
            eprintln!("SKIPPED: needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        assert!(recycle(&root, &make(t.path(), "a"), "a"));
        assert!(recycle(&root, &make(t.path(), "b"), "b"));
        assert_eq!(pooled(&root), ["dirty-a", "dirty-b"]);

        tidy(&root);
        let after = pooled(&root);
        assert_eq!(after.len(), 2);
        let tidied = after
            .iter()
            .find(|n| !n.starts_with(DIRTY))
            .unwrap()
            .clone();
        assert!(pool(&root).join(&tidied).join("work").is_dir());
        assert!(!pool(&root).join(&tidied).join("work/work").exists());

        let dest = t.path().join("instances/new");
        assert!(claim(&root, &dest));
        assert!(!dest.join("work/work").exists(), "the tidy one comes first");
        assert_eq!(pooled(&root).len(), 1);
        // A sandbox that mounted nothing comes back tidy.
        assert!(recycle(&root, &dest, "new"));
        assert!(pooled(&root).contains(&"new".to_string()));
    }

    #[test]
    fn with_nothing_to_tidy_the_pool_grows_to_two_ready_dirs() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        fs::create_dir_all(t.path().join("instances")).unwrap();
        tidy(&root);
        tidy(&root);
        tidy(&root);
        let names = pooled(&root);
        assert_eq!(names.len(), 2, "{names:?}");
        let fresh = pool(&root).join(&names[0]);
        assert!(pristine(&fresh), "a made dir is as a pristine returned one");
        assert!(!fresh.join("work/work").exists());
        let dest = t.path().join("instances/new");
        assert!(claim(&root, &dest));
    }

    #[test]
    fn prune_clears_half_tidied_leftovers_only() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        fs::create_dir_all(pool(&root).join("x.tidy/work")).unwrap();
        fs::create_dir_all(pool(&root).join("y")).unwrap();
        assert_eq!(prune(&root), 1);
        assert_eq!(pooled(&root), ["y"]);
        let dest = t.path().join("instances/new");
        fs::create_dir_all(pool(&root).join("z.tidy")).unwrap();
        assert!(claim(&root, &dest));
        assert_eq!(
            pooled(&root),
            ["z.tidy"],
            "a dir being tidied is not claimed"
        );
    }
}
