//! A small pool of pristine sandbox directories for `--rm` sandboxes. On some
//! filesystems every directory made and removed costs a millisecond (freeing
//! its block means a discard); a sandbox that wrote nothing leaves its empty
//! `upper/` and `work/` as they were, so the next one takes them over by
//! rename instead. Anything else is removed as usual.
//!
//! overlayfs removes and remakes `work/work` at every mount: the same cost
//! again, on the start-up path. So a directory comes back "dirty"
//! (`dirty-<id>`, with `work/work`) and [`tidy`] moves that out of the way
//! while a later sandbox starts, when isola would otherwise only wait for
//! its child. A `--rm` sandbox's overlay is mounted `volatile`, which leaves
//! `work/work/incompat/volatile/dirty` and makes overlayfs refuse the work
//! dir until that is gone: so only tidied directories are claimed.
//!
//! What is moved out goes to a trash directory and is removed, a file at a
//! time, only while isola is idle: on ext4 without a journal, removing a
//! directory waits for the discard of its block, and for a minute or more
//! afterwards every new inode in that group is allocated only after
//! skipping the recently freed ones (`recently_deleted()`): sandboxes
//! started back to back would pay both on their start-up path. The trash
//! is kept below [`TRASH_MAX`] entries, and `isola prune` empties it.

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
/// Where tidied-away `work/work` trees wait to be removed.
const TRASH: &str = ".trash";
/// The most trash kept: beyond it, tidying removes some even when busy.
pub const TRASH_MAX: u64 = 256;

fn pool(root: &Root) -> PathBuf {
    root.dir().join("instances/.pool")
}

fn entries(pool: &Path) -> Vec<String> {
    match fs::read_dir(pool) {
        Ok(d) => d
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n != TRASH)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Move a tidy pooled directory to `dest`; false if there is none (or
/// other processes took the last ones first).
pub fn claim(root: &Root, dest: &Path) -> bool {
    let pool = pool(root);
    entries(&pool)
        .iter()
        .filter(|n| !n.ends_with(TIDYING) && !n.starts_with(DIRTY))
        .any(|name| fs::rename(pool.join(name), dest).is_ok())
}

/// Return `dir` to the pool, to be tidied, if its `upper/` shows that the
/// sandbox wrote nothing and the pool has room. Returns false when the
/// caller must remove it. Only `upper/` is checked here, on the exit path;
/// the rest of the directory (isola's and overlayfs' own) is checked by
/// [`tidy`] before anyone may claim it.
pub fn recycle(root: &Root, dir: &Path, id: &str) -> bool {
    let pool = pool(root);
    if !upper_pristine(&dir.join("upper")) || entries(&pool).len() >= POOL_MAX {
        return false;
    }
    let dest = pool.join(format!("{DIRTY}{id}"));
    fs::rename(dir, &dest).is_ok()
        || (fs::create_dir(&pool).is_ok() && fs::rename(dir, &dest).is_ok())
}

/// Make one dirty pooled directory tidy: move its `work/work` to the
/// trash, so that the overlayfs mount of the sandbox that claims it does
/// not have to remove it, and check that nothing else is in it (otherwise
/// it goes). With nothing to tidy and fewer than two tidy ones (each run
/// claims one and returns one dirty), make a new one. Then, while `idle()`,
/// empty the trash. Errors only mean the pool stays as it is.
pub fn tidy(root: &Root, idle: &dyn Fn() -> bool) {
    let pool = pool(root);
    tidy_one(&pool);
    empty_trash(&pool.join(TRASH), idle);
}

fn tidy_one(pool: &Path) {
    let names = entries(pool);
    let Some(name) = names.iter().find(|n| n.starts_with(DIRTY)) else {
        let ready = names.iter().filter(|n| !n.ends_with(TIDYING)).count();
        if ready < 2 {
            let _ = add_fresh(pool);
        }
        return;
    };
    let id = &name[DIRTY.len()..];
    // Renamed first, so that no other isola claims or tidies it meanwhile.
    let busy = pool.join(format!("{id}{TIDYING}"));
    if fs::rename(pool.join(name), &busy).is_err() {
        return;
    }
    let work_work = busy.join("work/work");
    let cleared = !work_work.exists() || to_trash(pool, &work_work, id);
    if !cleared || !only_upper_and_work(&busy) || fs::rename(&busy, pool.join(id)).is_err() {
        let _ = remove_any(&busy);
    }
}

/// Move `path` into the trash (made on first use).
fn to_trash(pool: &Path, path: &Path, id: &str) -> bool {
    let trash = pool.join(TRASH);
    let dest = trash.join(id);
    fs::rename(path, &dest).is_ok()
        || (fs::create_dir(&trash).is_ok() && fs::rename(path, &dest).is_ok())
        || remove_any(path).is_ok()
}

/// Remove what is in the trash, one file or directory at a time, while
/// `idle()`; beyond [`TRASH_MAX`] entries, down to it whatever `idle` says.
fn empty_trash(trash: &Path, idle: &dyn Fn() -> bool) {
    // A directory's link count is 2 plus its subdirectories (the trash
    // holds only directories): the number of entries without reading it,
    // where the filesystem counts them (btrfs does not).
    let count = |t: &Path| match fs::symlink_metadata(t).map(|m| m.nlink()) {
        Ok(n) if n >= 2 => n - 2,
        _ => fs::read_dir(t).map_or(0, |d| d.count() as u64),
    };
    let Ok(entries) = fs::read_dir(trash) else {
        return;
    };
    for entry in entries.flatten() {
        let over = count(trash) > TRASH_MAX;
        if !over && !idle() {
            return;
        }
        remove_deepest_first(&entry.path(), &|| over || idle());
    }
}

/// Remove `dir` and what is in it, deepest first, stopping (leaving the
/// rest for later) as soon as `go_on()` is false.
fn remove_deepest_first(dir: &Path, go_on: &dyn Fn() -> bool) -> bool {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let gone = if is_dir {
                remove_deepest_first(&path, go_on)
            } else {
                fs::remove_file(&path).is_ok()
            };
            if !gone || !go_on() {
                return false;
            }
        }
    }
    fs::remove_dir(dir).is_ok()
}

fn add_fresh(pool: &Path) -> std::io::Result<()> {
    let id = crate::id::new_id()?;
    let busy = pool.join(format!("{id}{TIDYING}"));
    fs::create_dir_all(busy.join("work"))?;
    fs::create_dir(busy.join("upper"))?;
    // The merged root takes its mode from upper/: that of a fresh sandbox dir.
    fs::set_permissions(busy.join("upper"), fs::Permissions::from_mode(0o755))?;
    fs::rename(&busy, pool.join(id))
}

/// Remove what a killed isola left half-tidied in the pool, and the trash.
pub fn prune(root: &Root) -> usize {
    let pool = pool(root);
    let _ = remove_any(&pool.join(TRASH));
    entries(&pool)
        .into_iter()
        .filter(|n| n.ends_with(TIDYING))
        .filter(|n| remove_any(&pool.join(n)).is_ok())
        .count()
}

/// An empty `upper/`, root-owned, 0755, with no xattrs but overlayfs'
/// uuid: the merged root takes its attributes from it.
fn upper_pristine(upper: &Path) -> bool {
    fs::symlink_metadata(upper).is_ok_and(|m| {
        m.is_dir() && m.uid() == 0 && m.gid() == 0 && m.permissions().mode() & 0o7777 == 0o755
    }) && empty(upper)
        // Overlayfs marks an upper root with its own uuid: that may stay.
        && xattr::list(upper).map(|mut l| l.all(|n| n == "trusted.overlay.uuid")).unwrap_or(false)
}

/// A sandbox directory holding exactly `upper/` and an empty `work/`.
fn only_upper_and_work(dir: &Path) -> bool {
    let names: Vec<_> = match fs::read_dir(dir) {
        Ok(d) => d.flatten().map(|e| e.file_name()).collect(),
        Err(_) => return false,
    };
    names.len() == 2
        && names.iter().all(|n| n == "upper" || n == "work")
        && fs::symlink_metadata(dir.join("work")).is_ok_and(|m| m.is_dir())
        && empty(&dir.join("work"))
}

fn empty(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use isola_test_support::root_user;

    fn make(root: &Path, name: &str) -> PathBuf {
        let d = root.join("instances").join(name);
        fs::create_dir_all(d.join("upper")).unwrap();
        fs::create_dir_all(d.join("work/work")).unwrap();
        fs::set_permissions(d.join("upper"), fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    /// A scratch store, for tests whose pool checks want a root-owned
    /// `upper/`.
    fn as_root() -> Option<(tempfile::TempDir, Root)> {
        if !root_user() {
            return None;
        }
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        Some((t, root))
    }

    fn pooled(root: &Root) -> Vec<String> {
        let mut names = entries(&pool(root));
        names.sort();
        names
    }

    #[test]
    fn only_dirs_whose_upper_is_untouched_go_back() {
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
            assert_eq!(pooled(&root), ["dirty-a"]);
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
        assert!(!claim(&root, &dest), "a dirty dir is never claimed");
    }

    #[test]
    fn dirty_dirs_are_tidied_before_anyone_claims_them() {
        let Some((t, root)) = as_root() else { return };
        let a = make(t.path(), "a");
        // What a volatile overlay mount leaves behind.
        fs::create_dir_all(a.join("work/work/incompat/volatile")).unwrap();
        fs::write(a.join("work/work/incompat/volatile/dirty"), "").unwrap();
        assert!(recycle(&root, &a, "a"));
        assert!(recycle(&root, &make(t.path(), "b"), "b"));
        assert_eq!(pooled(&root), ["dirty-a", "dirty-b"]);
        let dest = t.path().join("instances/new");
        assert!(!claim(&root, &dest));

        tidy(&root, &|| false);
        tidy(&root, &|| false);
        assert_eq!(pooled(&root), ["a", "b"]);
        for id in ["a", "b"] {
            assert!(pool(&root).join(id).join("work").is_dir());
            assert!(!pool(&root).join(id).join("work/work").exists());
        }
        assert!(claim(&root, &dest));
        assert_eq!(pooled(&root).len(), 1);
        assert!(!dest.join("work/work").exists());
        // Back it comes, dirty until tidied again.
        assert!(recycle(&root, &dest, "new"));
        assert!(pooled(&root).contains(&"dirty-new".to_string()));
    }

    #[test]
    fn tidy_removes_a_dir_with_anything_else_in_it() {
        let Some((t, root)) = as_root() else { return };
        let a = make(t.path(), "a");
        fs::write(a.join("state.json"), "{}").unwrap();
        assert!(recycle(&root, &a, "a"));
        let b = make(t.path(), "b");
        fs::write(b.join("work/stray"), "").unwrap();
        assert!(recycle(&root, &b, "b"));
        tidy(&root, &|| true);
        tidy(&root, &|| true);
        assert_eq!(pooled(&root), Vec::<String>::new());
    }

    #[test]
    fn with_nothing_to_tidy_the_pool_grows_to_two_ready_dirs() {
        let Some((t, root)) = as_root() else { return };
        fs::create_dir_all(t.path().join("instances")).unwrap();
        for _ in 0..3 {
            tidy(&root, &|| true);
        }
        let names = pooled(&root);
        assert_eq!(names.len(), 2, "{names:?}");
        let fresh = pool(&root).join(&names[0]);
        assert!(
            upper_pristine(&fresh.join("upper")) && only_upper_and_work(&fresh),
            "a made dir is as a tidied returned one"
        );
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

    #[test]
    fn tidied_away_trees_wait_in_the_trash_until_isola_is_idle() {
        let Some((t, root)) = as_root() else { return };
        for id in ["a", "b"] {
            let d = make(t.path(), id);
            fs::create_dir_all(d.join("work/work/incompat/volatile")).unwrap();
            fs::write(d.join("work/work/incompat/volatile/dirty"), "").unwrap();
            assert!(recycle(&root, &d, id));
        }
        let trash = pool(&root).join(TRASH);
        // Busy: tidied, but nothing removed.
        tidy(&root, &|| false);
        assert_eq!(fs::read_dir(&trash).unwrap().count(), 1);
        assert!(
            trash.join("a/incompat/volatile/dirty").exists()
                || trash.join("b/incompat/volatile/dirty").exists()
        );
        // Idle for three removals: one tree is gone, the other half gone.
        let left = std::cell::Cell::new(3);
        let idle = || {
            left.set(left.get() - 1);
            left.get() >= 0
        };
        tidy(&root, &idle);
        let remaining: Vec<_> = fs::read_dir(&trash).unwrap().flatten().collect();
        assert!(
            !remaining.is_empty() && remaining.len() <= 2,
            "{remaining:?}"
        );
        // Idle: all gone; prune removes the trash itself.
        tidy(&root, &|| true);
        assert_eq!(fs::read_dir(&trash).unwrap().count(), 0);
        assert_eq!(pooled(&root), ["a", "b"]);
        prune(&root);
        assert!(!trash.exists());
    }

    #[test]
    fn a_full_trash_is_emptied_below_its_cap_even_when_busy() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let trash = pool(&root).join(TRASH);
        for i in 0..TRASH_MAX + 3 {
            fs::create_dir_all(trash.join(format!("t{i}/incompat"))).unwrap();
        }
        tidy(&root, &|| false);
        let left = fs::read_dir(&trash).unwrap().count() as u64;
        assert_eq!(left, TRASH_MAX);
    }
}
