//! The guest's root filesystem as one uncompressed newc archive (the image's
//! layers merged, isola-init as /.isola/init, the mount points and console PID 1
//! needs), and the small per-run archive holding the run spec. Streamed, and
//! deterministic: the same layers and init give the same bytes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use isola_guest_spec::GuestSpec;

use super::archive_error::ArchiveError;
use super::merge::{self, Node, Origin, Stat};
use super::newc::{self, Header};

/// What one archive holds, for timing and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveStats {
    /// Entries, the trailer not counted.
    pub entries: u64,
    pub bytes: u64,
}

/// Directories isola-init mounts on or writes to; the image's own copy is
/// kept when it is a real directory, anything else there is replaced, since
/// init (and the kernel unpacking the spec) must not go through a symlink.
const REQUIRED_DIRS: [(&str, u32); 4] = [
    MOUNT_POINTS[0],
    MOUNT_POINTS[1],
    MOUNT_POINTS[2],
    (".isola", ISOLA_DIR_MODE),
];
/// Where isola-init mounts the kernel's filesystems: real directories in
/// any root it boots into, so that no mount goes through an image's link.
pub(crate) const MOUNT_POINTS: [(&str, u32); 3] = [("proc", 0o555), ("sys", 0o555), ("dev", 0o755)];
/// Added only when the image has nothing there (a symlinked /tmp stays).
const USUAL_DIRS: [(&str, u32); 2] = [("tmp", 0o1777), ("run", 0o755)];
const ISOLA_DIR_MODE: u32 = 0o755;
/// The spec carries the workload's environment: for root (init) only.
const SPEC_MODE: u32 = 0o600;

/// Write the root filesystem of the image whose unpacked layers are
/// `layers` (bottom first) to `out`, with `init` as `/init`. Pass a
/// `BufWriter<File>` (or `&File`) so file data is copied in the kernel.
pub fn write_rootfs<W: Write>(
    layers: &[PathBuf],
    init: &Path,
    out: W,
) -> Result<ArchiveStats, ArchiveError> {
    let init_file = open_init(init)?;
    let mut root = merge::merge(layers)?;
    add_guest_nodes(&mut root);
    let mut w = RootfsWriter {
        layers,
        init,
        init_file,
        links: count_links(&root),
        next_ino: 1,
        entries: 0,
        newc: newc::Writer::new(out),
    };
    // The root itself first: Linux's rootfs (tmpfs) starts out 1777, and a
    // container's / is 0755 root:root, not writable by the workload.
    w.node(&root, b".")?;
    w.children(&root, &mut Vec::new())?;
    let (_, bytes) = w.newc.finish().map_err(ArchiveError::Write)?;
    Ok(ArchiveStats {
        entries: w.entries,
        bytes,
    })
}

/// The per-run archive: the directory of [`isola_guest_spec::PATH`] and the
/// spec as JSON. The kernel unpacks it after the root filesystem archive.
pub fn spec_archive(spec: &GuestSpec) -> Vec<u8> {
    let mut json = spec.to_json();
    // newc sizes are 32-bit. A spec that large (far beyond what execve
    // takes) goes in empty, and isola-init refuses it as invalid JSON.
    if u32::try_from(json.len()).is_err() {
        json.clear();
    }
    let spec_path = isola_guest_spec::PATH.trim_start_matches('/');
    let mut w = newc::Writer::new(Vec::new());
    let mut ino = 0;
    // The kernel creates no missing parents: each one gets an entry.
    let parents: Vec<&Path> = Path::new(spec_path).ancestors().skip(1).collect();
    for dir in parents
        .into_iter()
        .rev()
        .filter(|p| !p.as_os_str().is_empty())
    {
        ino += 1;
        let h = header(ino, &Stat::made(libc::S_IFDIR | ISOLA_DIR_MODE), 2);
        let _ = w.entry(dir.as_os_str().as_bytes(), &h, &[]);
    }
    let mut h = header(ino + 1, &Stat::made(libc::S_IFREG | SPEC_MODE), 1);
    h.size = json.len() as u32;
    // Writing to a Vec cannot fail, and the names and size are valid.
    let _ = w.entry(spec_path.as_bytes(), &h, &json);
    w.finish().map(|(bytes, _)| bytes).unwrap_or_default()
}

pub(crate) fn open_init(init: &Path) -> Result<File, ArchiveError> {
    File::open(init).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ArchiveError::InitMissing(init.to_path_buf()),
        _ => ArchiveError::Read {
            path: init.to_path_buf(),
            source,
        },
    })
}

/// isola-init as `/.isola/init` (the kernel is told `rdinit=/.isola/init`:
/// the image's own `/init` stays, and isola-init goes with `/.isola` when it
/// removes the run spec), the directories init needs, `/dev/console` (the
/// kernel opens it as PID 1's stdio before init runs; without it init starts
/// with no stdio) and `/dev/null`.
fn add_guest_nodes(root: &mut Node) {
    add_mount_points(root, &REQUIRED_DIRS);
    if let Some(isola) = root.children.get_mut(OsStr::new(".isola")) {
        let mut init = Node::made(Stat::made(libc::S_IFREG | 0o755));
        init.origin = Origin::Init;
        isola.children.insert("init".into(), init);
    }
    if let Some(dev) = root.children.get_mut(OsStr::new("dev")) {
        for (name, mode, major, minor) in [("console", 0o600, 5, 1), ("null", 0o666, 1, 3)] {
            let mut stat = Stat::made(libc::S_IFCHR | mode);
            stat.rdev = nix::sys::stat::makedev(major, minor);
            dev.children.insert(name.into(), Node::made(stat));
        }
    }
}

/// The directories of `required` (each replacing whatever else the image
/// has there), and [`USUAL_DIRS`] where the image has nothing.
pub(crate) fn add_mount_points(root: &mut Node, required: &[(&str, u32)]) {
    for &(name, mode) in required {
        let node = root
            .children
            .entry(name.into())
            .or_insert_with(|| Node::made(Stat::made(libc::S_IFDIR | mode)));
        if !node.is_dir() {
            *node = Node::made(Stat::made(libc::S_IFDIR | mode));
        }
    }
    for (name, mode) in USUAL_DIRS {
        root.children
            .entry(name.into())
            .or_insert_with(|| Node::made(Stat::made(libc::S_IFDIR | mode)));
    }
}

/// Hard links are kept within a layer only, as overlayfs and `isola export`
/// do: (layer, dev, ino) → how many names the merged view still has.
type LinkKey = (usize, u64, u64);

fn link_key(node: &Node) -> Option<LinkKey> {
    match node.origin {
        Origin::Layer(layer) if node.stat.kind() == libc::S_IFREG && node.stat.nlink > 1 => {
            Some((layer, node.stat.dev, node.stat.ino))
        }
        _ => None,
    }
}

fn count_links(root: &Node) -> HashMap<LinkKey, Link> {
    fn walk(node: &Node, out: &mut HashMap<LinkKey, Link>) {
        for child in node.children.values() {
            if let Some(key) = link_key(child) {
                out.entry(key).or_default().names += 1;
            }
            walk(child, out);
        }
    }
    let mut out = HashMap::new();
    walk(root, &mut out);
    out
}

#[derive(Debug, Default)]
struct Link {
    names: u32,
    written: u32,
    ino: u32,
}

struct RootfsWriter<'a, W: Write> {
    layers: &'a [PathBuf],
    init: &'a Path,
    init_file: File,
    links: HashMap<LinkKey, Link>,
    next_ino: u32,
    entries: u64,
    newc: newc::Writer<W>,
}

impl<W: Write> RootfsWriter<'_, W> {
    /// Pre-order: each directory before its children, children in byte order.
    fn children(&mut self, dir: &Node, rel: &mut Vec<u8>) -> Result<(), ArchiveError> {
        for (name, child) in &dir.children {
            let len = rel.len();
            if len > 0 {
                rel.push(b'/');
            }
            rel.extend_from_slice(name.as_bytes());
            self.node(child, rel)?;
            self.children(child, rel)?;
            rel.truncate(len);
        }
        Ok(())
    }

    fn node(&mut self, node: &Node, rel: &[u8]) -> Result<(), ArchiveError> {
        if rel.contains(&0) {
            return Err(self.unsupported(rel, "its name contains a NUL byte"));
        }
        if rel.len() + 1 > newc::NAME_MAX {
            return Err(self.unsupported(
                rel,
                format!(
                    "its path is longer than the {} bytes the kernel unpacks",
                    newc::NAME_MAX - 1
                ),
            ));
        }
        self.entries += 1;
        let s = node.stat;
        match s.kind() {
            libc::S_IFDIR => {
                let h = header(self.ino(), &s, 2);
                self.put(rel, &h, &[])
            }
            libc::S_IFLNK => {
                let path = self.source(node, rel);
                let target =
                    fs::read_link(&path).map_err(|source| ArchiveError::Read { path, source })?;
                let target = target.as_os_str().as_bytes();
                if target.len() + 1 > newc::NAME_MAX {
                    return Err(self.unsupported(rel, "its symlink target is too long"));
                }
                let mut h = header(self.ino(), &s, 1);
                h.size = target.len() as u32;
                self.put(rel, &h, target)
            }
            libc::S_IFREG => self.file(node, rel),
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                let mut h = header(self.ino(), &s, 1);
                h.rdev_major = nix::sys::stat::major(s.rdev) as u32;
                h.rdev_minor = nix::sys::stat::minor(s.rdev) as u32;
                self.put(rel, &h, &[])
            }
            // merge drops sockets; nothing else exists.
            _ => {
                self.entries -= 1;
                Ok(())
            }
        }
    }

    /// A regular file. Of several names for one inode all share its number
    /// and only the last carries the data, as GNU cpio writes them; Linux
    /// links each later name to the first and writes the data through it.
    fn file(&mut self, node: &Node, rel: &[u8]) -> Result<(), ArchiveError> {
        let mut h = header(0, &node.stat, 1);
        let key = link_key(node).filter(|k| self.links.get(k).is_some_and(|l| l.names > 1));
        h.ino = match key.and_then(|k| self.links.get(&k)) {
            Some(link) if link.written > 0 => link.ino,
            _ => self.ino(),
        };
        if let Some(link) = key.and_then(|k| self.links.get_mut(&k)) {
            link.ino = h.ino;
            link.written += 1;
            h.nlink = link.names;
            if link.written < link.names {
                return self.put(rel, &h, &[]);
            }
        }
        let path = self.source(node, rel);
        let opened;
        let file = match node.origin {
            Origin::Init => &self.init_file,
            _ => {
                // O_NOFOLLOW: a file swapped for a symlink is refused, not followed.
                opened = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(|source| ArchiveError::Read {
                        path: path.clone(),
                        source,
                    })?;
                &opened
            }
        };
        // The length from the open file: the data written is what was sized.
        let meta = file.metadata().map_err(|source| ArchiveError::Read {
            path: path.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(self.unsupported(
                rel,
                "it stopped being a regular file while the archive was written",
            ));
        }
        h.size = u32::try_from(meta.len()).map_err(|_| {
            self.unsupported(rel, "it is 4 GiB or larger, more than a newc entry holds")
        })?;
        self.newc
            .file(rel, &h, file)
            .map_err(|source| ArchiveError::Copy { path, source })
    }

    fn put(&mut self, rel: &[u8], h: &Header, data: &[u8]) -> Result<(), ArchiveError> {
        self.newc.entry(rel, h, data).map_err(ArchiveError::Write)
    }

    fn ino(&mut self) -> u32 {
        let ino = self.next_ino;
        self.next_ino = self.next_ino.wrapping_add(1);
        ino
    }

    /// Where an entry's content is read from.
    fn source(&self, node: &Node, rel: &[u8]) -> PathBuf {
        match node.origin {
            Origin::Layer(i) => self.layers[i].join(OsStr::from_bytes(rel)),
            Origin::Init | Origin::Made => self.init.to_path_buf(),
        }
    }

    fn unsupported(&self, rel: &[u8], why: impl Into<String>) -> ArchiveError {
        ArchiveError::Unsupported {
            path: format!("/{}", String::from_utf8_lossy(rel)),
            why: why.into(),
        }
    }
}

fn header(ino: u32, s: &Stat, nlink: u32) -> Header {
    Header {
        ino,
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
        nlink,
        // newc holds an unsigned 32-bit time: earlier dates become the epoch,
        // later ones 2106.
        mtime: s.mtime.clamp(0, i64::from(u32::MAX)) as u32,
        ..Header::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_node(mode: u32) -> Node {
        let mut node = Node::made(Stat::made(mode));
        node.origin = Origin::Layer(0);
        node
    }

    #[test]
    fn init_needs_real_directories_and_isola_s_console() {
        let mut root = Node::made(Stat::made(libc::S_IFDIR | 0o755));
        root.children
            .insert("dev".into(), layer_node(libc::S_IFLNK | 0o777));
        root.children
            .insert(".isola".into(), layer_node(libc::S_IFREG | 0o644));
        root.children
            .insert("proc".into(), layer_node(libc::S_IFDIR | 0o700));
        root.children
            .insert("run".into(), layer_node(libc::S_IFLNK | 0o777));
        root.children
            .insert("init".into(), layer_node(libc::S_IFDIR | 0o755));
        add_guest_nodes(&mut root);
        let get = |name: &str| &root.children[OsStr::new(name)];
        assert_eq!(get("dev").stat, Stat::made(libc::S_IFDIR | 0o755));
        assert_eq!(get(".isola").stat, Stat::made(libc::S_IFDIR | 0o755));
        // A real directory of the image's is kept as it is; so is a symlink
        // where init needs nothing of its own.
        assert_eq!(get("proc").stat.mode, libc::S_IFDIR | 0o700);
        assert_eq!(get("run").stat.kind(), libc::S_IFLNK);
        assert_eq!(get("tmp").stat.mode, libc::S_IFDIR | 0o1777);
        // The image's own /init stays; isola-init is /.isola/init.
        assert_eq!(get("init").stat.kind(), libc::S_IFDIR);
        assert_eq!(
            get(".isola").children[OsStr::new("init")].origin,
            Origin::Init
        );
        let console = &get("dev").children[OsStr::new("console")];
        assert_eq!(console.stat.rdev, nix::sys::stat::makedev(5, 1));
    }

    #[test]
    fn a_path_longer_than_the_kernel_takes_is_refused_by_name() {
        let mut root = Node::made(Stat::made(libc::S_IFDIR | 0o755));
        let mut node = &mut root;
        for _ in 0..20 {
            let dir = Node::made(Stat::made(libc::S_IFDIR | 0o755));
            node = node.children.entry("d".repeat(250).into()).or_insert(dir);
        }
        let init = tempfile::NamedTempFile::new().unwrap();
        let mut w = RootfsWriter {
            layers: &[],
            init: init.path(),
            init_file: init.reopen().unwrap(),
            links: HashMap::new(),
            next_ino: 1,
            entries: 0,
            newc: newc::Writer::new(io::sink()),
        };
        let err = w.children(&root, &mut Vec::new()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("/dddd") && msg.contains("longer than the 4095 bytes"),
            "{msg}"
        );
    }
}
