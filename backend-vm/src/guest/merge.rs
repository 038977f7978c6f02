//! The merged view overlayfs would mount from an image's layers, held in
//! memory as names and lstat facts (no file data), so the initramfs can be
//! streamed in sorted order with no flattened tree on disk. Same rules as
//! `isola_core::image::flatten`: 0/0 character devices delete, an opaque
//! directory hides what lower layers put in it, an upper entry replaces a
//! lower one, and the upper-most copy of a directory gives its attributes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use isola_core::image::unpack::OPAQUE_XATTR;

use super::archive_error::ArchiveError;

/// Where an entry's content comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The layer at this index: its path joined with the entry's path.
    Layer(usize),
    /// The isola-init binary.
    Init,
    /// Made by isola, with no content (a directory or device node).
    Made,
}

/// The lstat facts the archive needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub rdev: u64,
    /// Identity of the stored inode, to find hard links within a layer.
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
}

impl Stat {
    fn of(m: &Metadata) -> Stat {
        Stat {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            mtime: m.mtime(),
            rdev: m.rdev(),
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
        }
    }

    /// A node isola adds: owned by root, dated 0 so builds are reproducible.
    pub fn made(mode: u32) -> Stat {
        Stat {
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            rdev: 0,
            dev: 0,
            ino: 0,
            nlink: 1,
        }
    }

    pub fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub stat: Stat,
    pub origin: Origin,
    /// Only directories have children; byte order of names, as `ls` in C.
    pub children: BTreeMap<OsString, Node>,
}

impl Node {
    pub fn made(stat: Stat) -> Node {
        Node {
            stat,
            origin: Origin::Made,
            children: BTreeMap::new(),
        }
    }

    pub fn is_dir(&self) -> bool {
        self.stat.kind() == libc::S_IFDIR
    }
}

/// Merge `layers` (bottom first). The root node stands for `/`.
pub(crate) fn merge(layers: &[PathBuf]) -> Result<Node, ArchiveError> {
    let mut root = Node::made(Stat::made(libc::S_IFDIR | 0o755));
    for (index, layer) in layers.iter().enumerate() {
        let meta = fs::symlink_metadata(layer).map_err(read(layer))?;
        if !meta.is_dir() {
            return Err(ArchiveError::NotALayer(layer.clone()));
        }
        if is_opaque(layer)? {
            root.children.clear();
        }
        apply(&mut root, layer, index)?;
    }
    Ok(root)
}

/// Lay the children of the layer directory `dir` over `node`. Only entries
/// that lstat calls directories are descended into, so no symlink is ever
/// followed, in this layer or out of it.
fn apply(node: &mut Node, dir: &Path, layer: usize) -> Result<(), ArchiveError> {
    // Read the whole directory first: no descriptor stays open per level.
    let entries = fs::read_dir(dir)
        .and_then(|rd| rd.collect::<io::Result<Vec<_>>>())
        .map_err(read(dir))?;
    for entry in entries {
        let name = entry.file_name();
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(read(&path))?;
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            node.children.remove(&name); // a whiteout
            continue;
        }
        if ft.is_socket() {
            continue; // not layer content, and newc cannot hold one
        }
        let stat = Stat::of(&meta);
        if !ft.is_dir() {
            node.children.insert(
                name,
                Node {
                    stat,
                    origin: Origin::Layer(layer),
                    children: BTreeMap::new(),
                },
            );
            continue;
        }
        let child = node
            .children
            .entry(name)
            .or_insert_with(|| Node::made(stat));
        if !child.is_dir() || (!child.children.is_empty() && is_opaque(&path)?) {
            child.children.clear();
        }
        child.stat = stat;
        child.origin = Origin::Layer(layer);
        apply(child, &path, layer)?;
    }
    Ok(())
}

/// Whether the layer directory `dir` hides what lower layers have there.
fn is_opaque(dir: &Path) -> Result<bool, ArchiveError> {
    // xattr::get does not follow symlinks (lgetxattr).
    match xattr::get(dir, OPAQUE_XATTR) {
        Ok(v) => Ok(v.as_deref() == Some(b"y")),
        // A filesystem without xattrs has no opaque directories.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(false),
        Err(e) => Err(ArchiveError::Read {
            path: dir.to_path_buf(),
            source: e,
        }),
    }
}

fn read(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Read {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::fs::symlink;

    fn names(node: &Node) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(node: &Node, prefix: &str, out: &mut Vec<String>) {
            for (name, child) in &node.children {
                let path = format!("{prefix}/{}", name.to_string_lossy());
                out.push(path.clone());
                walk(child, &path, out);
            }
        }
        walk(node, "", &mut out);
        out
    }

    #[test]
    fn upper_entries_replace_lower_ones_of_any_type() {
        let tmp = tempfile::tempdir().unwrap();
        let (l1, l2) = (tmp.path().join("l1"), tmp.path().join("l2"));
        fs::create_dir_all(l1.join("d/sub")).unwrap();
        fs::write(l1.join("d/sub/f"), "x").unwrap();
        fs::write(l1.join("f"), "x").unwrap();
        fs::create_dir_all(l1.join("keep")).unwrap();
        fs::write(l1.join("keep/a"), "x").unwrap();
        fs::create_dir_all(l2.join("f")).unwrap();
        fs::write(l2.join("f/inside"), "x").unwrap();
        fs::create_dir_all(l2.join("keep")).unwrap();
        fs::write(l2.join("keep/b"), "x").unwrap();
        symlink("/etc", l2.join("d")).unwrap();

        let root = merge(&[l1, l2.clone()]).unwrap();
        assert_eq!(
            names(&root),
            ["/d", "/f", "/f/inside", "/keep", "/keep/a", "/keep/b"]
        );
        assert_eq!(root.children[OsStr::new("d")].stat.kind(), libc::S_IFLNK);
        // The merged directory takes the upper layer's attributes.
        assert_eq!(root.children[OsStr::new("keep")].origin, Origin::Layer(1));
        let upper = fs::symlink_metadata(l2.join("keep")).unwrap();
        assert_eq!(root.children[OsStr::new("keep")].stat.ino, upper.ino());
    }

    #[test]
    fn a_symlinked_directory_is_never_descended_into() {
        let tmp = tempfile::tempdir().unwrap();
        let l1 = tmp.path().join("l1");
        fs::create_dir_all(&l1).unwrap();
        symlink("/etc", l1.join("etc")).unwrap();
        symlink("../../../../../../../etc", l1.join("up")).unwrap();
        let root = merge(&[l1]).unwrap();
        assert_eq!(names(&root), ["/etc", "/up"]);
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_lower_entries() {
        if !isola_test_support::root_user() {
            return;
        }
        use nix::sys::stat::{mknod, Mode, SFlag};
        let tmp = tempfile::tempdir().unwrap();
        let (l1, l2) = (tmp.path().join("l1"), tmp.path().join("l2"));
        fs::create_dir_all(l1.join("o")).unwrap();
        fs::write(l1.join("o/old"), "x").unwrap();
        fs::write(l1.join("gone"), "x").unwrap();
        fs::write(l1.join("stay"), "x").unwrap();
        fs::create_dir_all(l2.join("o")).unwrap();
        fs::write(l2.join("o/new"), "x").unwrap();
        xattr::set(l2.join("o"), OPAQUE_XATTR, b"y").unwrap();
        mknod(&l2.join("gone"), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
        // A whiteout of something no lower layer has is harmless.
        mknod(&l2.join("never"), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
        let root = merge(&[l1.clone(), l2.clone()]).unwrap();
        assert_eq!(names(&root), ["/o", "/o/new", "/stay"]);

        // An opaque layer root hides every lower layer.
        let l3 = tmp.path().join("l3");
        fs::create_dir_all(&l3).unwrap();
        fs::write(l3.join("only"), "x").unwrap();
        xattr::set(&l3, OPAQUE_XATTR, b"y").unwrap();
        let root = merge(&[l1, l2, l3]).unwrap();
        assert_eq!(names(&root), ["/only"]);
    }

    #[test]
    fn a_layer_that_is_not_a_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        fs::write(&f, "x").unwrap();
        let err = merge(std::slice::from_ref(&f)).unwrap_err();
        assert!(matches!(err, ArchiveError::NotALayer(p) if p == f));
        let err = merge(&[tmp.path().join("missing")]).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
