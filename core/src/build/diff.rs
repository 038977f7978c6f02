//! A step's filesystem changes — an overlayfs upper directory — written as an
//! OCI layer tar that is byte for byte the same for the same tree on any machine.
//!
//! Every entry is a ustar header, preceded by a PAX extended header only when
//! the entry needs one (a path or link target over 100 bytes, an id or size
//! too big for ustar's octal fields, xattrs). The `tar` crate's own `Builder`
//! writes GNU headers and GNU long-name entries, so only its `Header` is used.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Every PAX header carries this fixed name: a per-entry or per-process name
/// (GNU tar puts its pid there) would make two builds differ.
const PAX_HEADER_NAME: &[u8] = b"././@PaxHeader";
/// The largest value of ustar's 8-byte (uid, gid) and 12-byte (size, mtime)
/// octal fields; above them the PAX record carries the value.
const USTAR_ID_MAX: u64 = 0o7777777;
const USTAR_NUMBER_MAX: u64 = 0o77777777777;
const BLOCK: usize = 512;

/// How the layer is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    /// Every mtime is clamped to at most this (SOURCE_DATE_EPOCH, or 0), so a
    /// rebuild at another time gives the same bytes.
    pub epoch: u64,
}

/// What one layer holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DiffStats {
    /// Tar entries written, whiteouts and opaque markers included (not the
    /// PAX headers in front of some of them).
    pub entries: u64,
    /// Sum of the sizes of the regular files written.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error(
        "{path:?} in the overlay upper directory carries {xattr}: the overlay was mounted with \
         metacopy or redirect_dir on, so the upper directory alone does not hold the step's \
         changes; mount build overlays with metacopy=off,redirect_dir=off"
    )]
    NotSelfContained { path: String, xattr: String },
    #[error("cannot {op} {path:?} in the overlay upper directory")]
    Read {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path:?} in the overlay upper directory shrank while its layer was written \
         ({expected} bytes expected); nothing may write to a step's upper directory once it has run"
    )]
    Shrank { path: String, expected: u64 },
    #[error("writing the layer tar failed")]
    Write(#[source] io::Error),
}

/// Write the layer tar of `upper` to `out` (uncompressed; the caller
/// compresses and hashes). `skip(rel, is_dir)` leaves out paths the runtime
/// made (mount points such as `proc`, `sys`, `dev` the image did not have): a
/// skipped directory is left out with everything under it. `rel` is relative
/// to `upper`, without a trailing `/` (a name that is not UTF-8 is shown lossily).
///
/// Entries come depth first, children sorted bytewise by name, a directory
/// before its contents; paths are relative, directories end in `/`. Overlay
/// whiteouts (0/0 character devices) become `.wh.NAME` files, an opaque
/// directory gets a `.wh..wh..opq` file right after its own entry, a second
/// path to an inode becomes a hard link to the first, sockets are left out.
pub fn write_layer<W: Write>(
    upper: &Path,
    out: W,
    opts: &DiffOptions,
    skip: &dyn Fn(&str, bool) -> bool,
) -> Result<DiffStats, DiffError> {
    let mut layer = LayerWriter::new(out, opts.epoch);
    // A stack rather than recursion: a deep tree made by a RUN step must not
    // overflow ours. Children are pushed last-first so they pop in order.
    let mut pending = sorted_children(upper, Path::new(""))?;
    while let Some(rel) = pending.pop() {
        let path = upper.join(&rel);
        let meta = fs::symlink_metadata(&path).map_err(read_err(&rel, "inspect"))?;
        if skip(&rel.to_string_lossy(), meta.is_dir()) {
            continue;
        }
        let attrs = Attrs::read(&path, &rel)?;
        if meta.is_dir() {
            layer.dir(&rel, &meta, &attrs)?;
            pending.extend(sorted_children(upper, &rel)?);
        } else {
            layer.non_dir(&path, &rel, &meta, &attrs)?;
        }
    }
    layer.finish()
}

fn show(rel: &Path) -> String {
    rel.to_string_lossy().into_owned()
}

fn read_err<'a>(rel: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> DiffError + 'a {
    move |source| DiffError::Read {
        path: show(rel),
        op,
        source,
    }
}

/// The entries of directory `rel`, as relative paths, in reverse bytewise
/// order of their names (the walk pops from the end).
fn sorted_children(upper: &Path, rel: &Path) -> Result<Vec<PathBuf>, DiffError> {
    let reading = fs::read_dir(upper.join(rel)).map_err(read_err(rel, "list"))?;
    let mut names: Vec<OsString> = Vec::new();
    for entry in reading {
        names.push(entry.map_err(read_err(rel, "list"))?.file_name());
    }
    names.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
    Ok(names.into_iter().map(|name| rel.join(name)).collect())
}

/// The extended attributes an entry keeps in the layer, and what overlayfs'
/// own attributes say about it.
#[derive(Debug, Default)]
struct Attrs {
    kept: BTreeMap<Vec<u8>, Vec<u8>>,
    opaque: bool,
}

impl Attrs {
    fn read(path: &Path, rel: &Path) -> Result<Attrs, DiffError> {
        let mut attrs = Attrs::default();
        let names = match xattr::list(path) {
            Ok(names) => names,
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOTSUP) => return Ok(attrs),
            Err(e) => return Err(read_err(rel, "list the extended attributes of")(e)),
        };
        for name in names {
            let key = name.as_bytes();
            // The host's SELinux label says nothing about the image, and
            // would make the same build differ between hosts.
            if key == b"security.selinux" {
                continue;
            }
            let overlay_feature = key
                .strip_prefix(b"trusted.overlay.")
                .or_else(|| key.strip_prefix(b"user.overlay."));
            if matches!(overlay_feature, Some(b"metacopy") | Some(b"redirect")) {
                return Err(DiffError::NotSelfContained {
                    path: show(rel),
                    xattr: name.to_string_lossy().into_owned(),
                });
            }
            let value = match xattr::get(path, &name) {
                Ok(Some(value)) => value,
                Ok(None) => continue,
                Err(e) => return Err(read_err(rel, "read an extended attribute of")(e)),
            };
            match overlay_feature {
                // Only "y": since Linux 6.7 "x" marks a directory holding
                // xwhiteouts, which is not opaque.
                Some(b"opaque") => attrs.opaque = value == b"y",
                Some(_) => {} // origin, impure, nlink...: the overlay's bookkeeping
                None => {
                    attrs.kept.insert(key.to_vec(), value);
                }
            }
        }
        Ok(attrs)
    }
}

/// One tar entry's header fields, before encoding.
#[derive(Debug, Clone)]
struct Head {
    name: Vec<u8>,
    kind: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    size: u64,
    link: Vec<u8>,
    device: (u32, u32),
}

impl Head {
    fn new(name: Vec<u8>, kind: EntryType, meta: &Metadata, epoch: u64) -> Head {
        Head {
            name,
            kind,
            mode: meta.mode() & 0o7777,
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            mtime: clamp_mtime(meta.mtime(), epoch),
            size: 0,
            link: Vec::new(),
            device: (0, 0),
        }
    }

    /// The ustar header, and the PAX records the entry needs in front of it
    /// (sorted by key, as a `BTreeMap` keeps them).
    fn encode(&self, xattrs: &BTreeMap<Vec<u8>, Vec<u8>>) -> (Header, BTreeMap<Vec<u8>, Vec<u8>>) {
        let mut records = BTreeMap::new();
        let mut header = Header::new_ustar();
        let fields = header.as_old_mut();
        if !put_name(&mut fields.name, &self.name) {
            records.insert(b"path".to_vec(), self.name.clone());
        }
        if !put_name(&mut fields.linkname, &self.link) {
            records.insert(b"linkpath".to_vec(), self.link.clone());
        }
        for (key, value, max) in [
            (&b"uid"[..], self.uid, USTAR_ID_MAX),
            (b"gid", self.gid, USTAR_ID_MAX),
            (b"size", self.size, USTAR_NUMBER_MAX),
            (b"mtime", self.mtime, USTAR_NUMBER_MAX),
        ] {
            if value > max {
                records.insert(key.to_vec(), value.to_string().into_bytes());
            }
        }
        header.set_mode(self.mode);
        header.set_uid(self.uid);
        header.set_gid(self.gid);
        header.set_size(self.size);
        header.set_mtime(self.mtime);
        header.set_entry_type(self.kind);
        // Zeros for anything but a device, written as octal as GNU tar and
        // Go write them: readers reject empty numeric fields.
        if let Some(ustar) = header.as_ustar_mut() {
            ustar.set_device_major(self.device.0);
            ustar.set_device_minor(self.device.1);
        }
        for (name, value) in xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(name);
            records.insert(key, value.clone());
        }
        header.set_cksum();
        (header, records)
    }
}

/// Tar cannot hold times before 1970; anything later than `epoch` is `epoch`.
fn clamp_mtime(mtime: i64, epoch: u64) -> u64 {
    u64::try_from(mtime).unwrap_or(0).min(epoch)
}

/// Put `value` in a fixed header field if it fits; otherwise leave the field
/// holding its first bytes (for readers without PAX) and return false.
fn put_name(field: &mut [u8], value: &[u8]) -> bool {
    let shown = &value[..value.len().min(field.len())];
    field[..shown.len()].copy_from_slice(shown);
    value.len() <= field.len()
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `<len>` counts the
/// whole record, its own digits included.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=' and '\n'
    let mut len = body + 1;
    while body + len.to_string().len() != len {
        len = body + len.to_string().len();
    }
    let mut record = format!("{len} ").into_bytes();
    record.extend_from_slice(key);
    record.push(b'=');
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

struct LayerWriter<W: Write> {
    out: BufWriter<W>,
    epoch: u64,
    /// The first path written for each multiply-linked inode, by (dev, ino).
    first_paths: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
    stats: DiffStats,
}

impl<W: Write> LayerWriter<W> {
    fn new(out: W, epoch: u64) -> Self {
        LayerWriter {
            out: BufWriter::with_capacity(256 * 1024, out),
            epoch,
            first_paths: HashMap::new(),
            buf: vec![0; 256 * 1024],
            stats: DiffStats::default(),
        }
    }

    fn dir(&mut self, rel: &Path, meta: &Metadata, attrs: &Attrs) -> Result<(), DiffError> {
        let mut name = rel.as_os_str().as_bytes().to_vec();
        name.push(b'/');
        let head = Head::new(name.clone(), EntryType::Directory, meta, self.epoch);
        self.header(&head, &attrs.kept)?;
        if attrs.opaque {
            // The marker is written as docker writes it: the directory's
            // owner, permissions and time, on an empty file.
            name.extend_from_slice(OPAQUE_MARKER);
            let mut marker = Head::new(name, EntryType::Regular, meta, self.epoch);
            marker.mode &= 0o777;
            self.header(&marker, &BTreeMap::new())?;
        }
        Ok(())
    }

    fn non_dir(
        &mut self,
        path: &Path,
        rel: &Path,
        meta: &Metadata,
        attrs: &Attrs,
    ) -> Result<(), DiffError> {
        let name = rel.as_os_str().as_bytes().to_vec();
        let file_type = meta.file_type();
        // Checked before hard links: overlayfs links all its whiteouts to
        // one shared inode.
        if file_type.is_char_device() && meta.rdev() == 0 {
            return self.header(
                &Head::new(whiteout_name(rel), EntryType::Regular, meta, self.epoch),
                &BTreeMap::new(),
            );
        }
        if file_type.is_socket() {
            return Ok(()); // a socket is a live endpoint, not content
        }
        if meta.nlink() > 1 {
            match self.first_paths.get(&(meta.dev(), meta.ino())) {
                Some(first) => {
                    let mut head = Head::new(name, EntryType::Link, meta, self.epoch);
                    head.link = first.clone();
                    return self.header(&head, &BTreeMap::new());
                }
                None => {
                    self.first_paths
                        .insert((meta.dev(), meta.ino()), name.clone());
                }
            }
        }
        if file_type.is_file() {
            return self.file(path, rel, name, meta, attrs);
        }
        let mut head = Head::new(name, EntryType::Regular, meta, self.epoch);
        if file_type.is_symlink() {
            head.kind = EntryType::Symlink;
            let target = fs::read_link(path).map_err(read_err(rel, "read the link"))?;
            head.link = target.into_os_string().into_vec();
        } else if file_type.is_fifo() {
            head.kind = EntryType::Fifo;
        } else if file_type.is_char_device() || file_type.is_block_device() {
            head.kind = if file_type.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            };
            let rdev = meta.rdev();
            let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
            // Linux device numbers are 12 and 20 bits wide.
            head.device = (major as u32, minor as u32);
        } else {
            tracing::warn!(entry = %show(rel), "leaving out an upper directory entry of unknown type");
            return Ok(());
        }
        self.header(&head, &attrs.kept)
    }

    fn file(
        &mut self,
        path: &Path,
        rel: &Path,
        name: Vec<u8>,
        meta: &Metadata,
        attrs: &Attrs,
    ) -> Result<(), DiffError> {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .map_err(read_err(rel, "open"))?;
        let mut head = Head::new(name, EntryType::Regular, meta, self.epoch);
        head.size = meta.len();
        self.header(&head, &attrs.kept)?;
        self.content(&mut file, rel, head.size)?;
        self.stats.bytes += head.size;
        Ok(())
    }

    /// Exactly `size` bytes of `file` (what the header announced), padded to
    /// a whole block; a file grown since is cut at `size`.
    fn content(&mut self, file: &mut File, rel: &Path, size: u64) -> Result<(), DiffError> {
        let mut left = size;
        while left > 0 {
            let want = self
                .buf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(DiffError::Shrank {
                        path: show(rel),
                        expected: size,
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(rel, "read")(e)),
            };
            self.out
                .write_all(&self.buf[..n])
                .map_err(DiffError::Write)?;
            left -= n as u64;
        }
        self.pad(size)
    }

    fn pad(&mut self, written: u64) -> Result<(), DiffError> {
        let rem = (written % BLOCK as u64) as usize;
        if rem == 0 {
            return Ok(());
        }
        self.out
            .write_all(&[0; BLOCK][..BLOCK - rem])
            .map_err(DiffError::Write)
    }

    /// Write one entry's header (and its PAX header, if it needs one); the
    /// caller writes the content that `head.size` announced.
    fn header(
        &mut self,
        head: &Head,
        xattrs: &BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> Result<(), DiffError> {
        let (header, records) = head.encode(xattrs);
        if !records.is_empty() {
            self.pax(&records)?;
        }
        self.out
            .write_all(header.as_bytes())
            .map_err(DiffError::Write)?;
        self.stats.entries += 1;
        Ok(())
    }

    fn pax(&mut self, records: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<(), DiffError> {
        let data: Vec<u8> = records
            .iter()
            .flat_map(|(key, value)| pax_record(key, value))
            .collect();
        let mut header = Header::new_ustar();
        header.as_old_mut().name[..PAX_HEADER_NAME.len()].copy_from_slice(PAX_HEADER_NAME);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        if let Some(ustar) = header.as_ustar_mut() {
            ustar.set_device_major(0);
            ustar.set_device_minor(0);
        }
        header.set_size(data.len() as u64);
        header.set_entry_type(EntryType::XHeader);
        header.set_cksum();
        self.out
            .write_all(header.as_bytes())
            .and_then(|()| self.out.write_all(&data))
            .map_err(DiffError::Write)?;
        self.pad(data.len() as u64)
    }

    fn finish(mut self) -> Result<DiffStats, DiffError> {
        // The end of a tar: two zero blocks.
        self.out
            .write_all(&[0; 2 * BLOCK])
            .and_then(|()| self.out.flush())
            .map_err(DiffError::Write)?;
        Ok(self.stats)
    }
}

/// `a/b` hidden by a whiteout is `a/.wh.b` in the layer.
fn whiteout_name(rel: &Path) -> Vec<u8> {
    let mut name = Vec::new();
    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        name.extend_from_slice(parent.as_os_str().as_bytes());
        name.push(b'/');
    }
    name.extend_from_slice(WHITEOUT_PREFIX);
    name.extend_from_slice(rel.file_name().map(|n| n.as_bytes()).unwrap_or_default());
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::unpack::{unpack, OPAQUE_XATTR};
    use filetime::FileTime;
    use isola_test_support::root_user;
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::os::unix::process::CommandExt;

    const SOME_MTIME: i64 = 5000;
    const FUTURE_MTIME: i64 = 4_000_000_000;
    /// A valid version-2 file capability: cap_net_bind_service permitted.
    const CAPABILITY: [u8; 20] = [0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    fn long_dir() -> String {
        "d".repeat(60)
    }
    fn long_file() -> String {
        format!("l/{}/{}", long_dir(), "f".repeat(60))
    }
    fn long_target() -> String {
        "t".repeat(150)
    }

    fn file(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn node(root: &Path, rel: &str, kind: SFlag, dev: u64) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        mknod(&path, kind, Mode::empty(), dev).unwrap();
    }

    /// An upper directory with one of everything; `reverse` creates it in
    /// the opposite order (other inode numbers, other directory order).
    fn make_upper(root: &Path, reverse: bool) {
        type Step = Box<dyn Fn(&Path)>;
        let mut steps: Vec<Step> = vec![
            Box::new(|r| file(r, "B", "upper case sorts first")),
            Box::new(move |r| {
                // The same inode under two names, first made under either.
                let (first, second) = if reverse {
                    ("f-hard", "a/keep")
                } else {
                    ("a/keep", "f-hard")
                };
                file(r, first, "kept");
                fs::create_dir_all(r.join(second).parent().unwrap()).unwrap();
                fs::hard_link(r.join(first), r.join(second)).unwrap();
            }),
            Box::new(|r| node(r, "a/old", SFlag::S_IFCHR, makedev(0, 0))),
            Box::new(|r| symlink("a/keep", r.join("b-link")).unwrap()),
            Box::new(|r| node(r, "c-fifo", SFlag::S_IFIFO, 0)),
            Box::new(|r| node(r, "d-null", SFlag::S_IFCHR, makedev(1, 3))),
            Box::new(|r| node(r, "e-gone", SFlag::S_IFCHR, makedev(0, 0))),
            Box::new(|r| file(r, "g-xattr", "with attributes")),
            Box::new(|r| file(r, "h-future", "from the future")),
            Box::new(|r| file(r, &long_file(), "deep")),
            Box::new(|r| symlink(long_target(), r.join("m-longlink")).unwrap()),
            Box::new(|r| file(r, "proc/self", "made by the runtime")),
            Box::new(|r| {
                std::os::unix::net::UnixListener::bind(r.join("s-sock")).unwrap();
            }),
        ];
        if reverse {
            steps.reverse();
        }
        for step in &steps {
            step(root);
        }
        let chmod = |rel: &str, mode: u32| {
            fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).unwrap()
        };
        std::os::unix::fs::chown(root.join("B"), Some(1000), Some(1000)).unwrap();
        for (rel, mode) in [
            ("B", 0o640),
            ("a", 0o750),
            ("a/keep", 0o4755),
            ("c-fifo", 0o600),
            ("d-null", 0o666),
            ("g-xattr", 0o644),
            ("h-future", 0o600),
            ("l", 0o755),
            (&format!("l/{}", long_dir()), 0o755),
            (&long_file(), 0o644),
            ("proc", 0o555),
        ] {
            chmod(rel, mode);
        }
        xattr::set(root.join("a"), OPAQUE_XATTR, b"y").unwrap();
        xattr::set(root.join("g-xattr"), "user.test", b"hello").unwrap();
        let _ = xattr::set(root.join("g-xattr"), "security.capability", &CAPABILITY);
        set_all_mtimes(root);
    }

    /// Every path's mtime to SOME_MTIME (h-future's far later), deepest
    /// first so that no later change moves a directory's.
    fn set_all_mtimes(root: &Path) {
        let mut paths = Vec::new();
        collect(root, Path::new(""), &mut paths);
        for rel in paths.iter().rev() {
            let secs = if rel == Path::new("h-future") {
                FUTURE_MTIME
            } else {
                SOME_MTIME
            };
            let t = FileTime::from_unix_time(secs, 0);
            filetime::set_symlink_file_times(root.join(rel), t, t).unwrap();
        }
    }

    fn collect(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
        let mut names: Vec<_> = fs::read_dir(root.join(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let child = rel.join(name);
            out.push(child.clone());
            if fs::symlink_metadata(root.join(&child)).unwrap().is_dir() {
                collect(root, &child, out);
            }
        }
    }

    fn skip_runtime(rel: &str, is_dir: bool) -> bool {
        rel == "proc" && is_dir
    }

    fn layer(upper: &Path, epoch: u64) -> (Vec<u8>, DiffStats) {
        let mut out = Vec::new();
        let stats = write_layer(upper, &mut out, &DiffOptions { epoch }, &skip_runtime).unwrap();
        (out, stats)
    }

    #[derive(Debug)]
    struct Seen {
        path: String,
        kind: EntryType,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
        size: u64,
        link: Option<String>,
        device: (u32, u32),
        xattrs: Vec<(String, Vec<u8>)>,
        ustar: bool,
        named: bool,
    }

    fn read_entries(tar_bytes: &[u8]) -> Vec<Seen> {
        let mut archive = tar::Archive::new(tar_bytes);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let xattrs = match entry.pax_extensions().unwrap() {
                Some(exts) => exts
                    .map(|e| e.unwrap())
                    .filter_map(|e| {
                        let key = e.key().unwrap().strip_prefix("SCHILY.xattr.")?;
                        Some((key.to_string(), e.value_bytes().to_vec()))
                    })
                    .collect(),
                None => Vec::new(),
            };
            let h = entry.header();
            seen.push(Seen {
                path: String::from_utf8(entry.path_bytes().into_owned()).unwrap(),
                kind: h.entry_type(),
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
                size: entry.size(),
                link: entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8(l.into_owned()).unwrap()),
                device: (
                    h.device_major().unwrap().unwrap_or(0),
                    h.device_minor().unwrap().unwrap_or(0),
                ),
                xattrs,
                ustar: h.as_ustar().is_some(),
                named: h.username_bytes().is_some_and(|u| !u.is_empty())
                    || h.groupname_bytes().is_some_and(|g| !g.is_empty()),
            });
        }
        seen
    }

    #[test]
    fn every_kind_of_entry_in_order() {
        if !root_user() {
            return;
        }
        let upper = tempfile::tempdir().unwrap();
        make_upper(upper.path(), false);
        let epoch = 1_000_000;
        let (bytes, stats) = layer(upper.path(), epoch);
        let seen = read_entries(&bytes);
        let long_dir_entry = format!("l/{}/", long_dir());
        let long_file_entry = long_file();
        let t = SOME_MTIME as u64;
        #[rustfmt::skip]
        let want: Vec<(&str, EntryType, u32, u64, u64)> = vec![
            ("B", EntryType::Regular, 0o640, 1000, t),
            ("a/", EntryType::Directory, 0o750, 0, t),
            ("a/.wh..wh..opq", EntryType::Regular, 0o750, 0, t),
            ("a/keep", EntryType::Regular, 0o4755, 0, t),
            ("a/.wh.old", EntryType::Regular, 0, 0, t),
            ("b-link", EntryType::Symlink, 0o777, 0, t),
            ("c-fifo", EntryType::Fifo, 0o600, 0, t),
            ("d-null", EntryType::Char, 0o666, 0, t),
            (".wh.e-gone", EntryType::Regular, 0, 0, t),
            ("f-hard", EntryType::Link, 0o4755, 0, t),
            ("g-xattr", EntryType::Regular, 0o644, 0, t),
            ("h-future", EntryType::Regular, 0o600, 0, epoch),
            ("l/", EntryType::Directory, 0o755, 0, t),
            (&long_dir_entry, EntryType::Directory, 0o755, 0, t),
            (&long_file_entry, EntryType::Regular, 0o644, 0, t),
            ("m-longlink", EntryType::Symlink, 0o777, 0, t),
        ];
        let got: Vec<_> = seen
            .iter()
            .map(|s| (s.path.as_str(), s.kind, s.mode, s.uid, s.mtime))
            .collect();
        assert_eq!(got, want);
        assert_eq!(stats.entries, want.len() as u64);
        let content = [
            "upper case sorts first",
            "kept",
            "with attributes",
            "from the future",
            "deep",
        ];
        assert_eq!(
            stats.bytes,
            content.iter().map(|c| c.len() as u64).sum::<u64>()
        );

        let by_path = |p: &str| seen.iter().find(|s| s.path == p).unwrap();
        assert_eq!(by_path("B").gid, 1000);
        assert_eq!(by_path("b-link").link.as_deref(), Some("a/keep"));
        assert_eq!(by_path("f-hard").link.as_deref(), Some("a/keep"));
        assert_eq!(by_path("f-hard").size, 0);
        assert_eq!(by_path("m-longlink").link, Some(long_target()));
        assert_eq!(by_path("d-null").device, (1, 3));
        assert_eq!(by_path("a/.wh.old").size, 0);
        let xattrs = &by_path("g-xattr").xattrs;
        assert!(xattrs.contains(&("user.test".to_string(), b"hello".to_vec())));
        if xattr::get(upper.path().join("g-xattr"), "security.capability")
            .unwrap()
            .is_some()
        {
            assert!(xattrs.contains(&("security.capability".to_string(), CAPABILITY.to_vec())));
        }
        // overlayfs' own attributes never reach the layer.
        assert!(by_path("a/").xattrs.is_empty());
        assert!(
            seen.iter().all(|s| s.ustar && !s.named),
            "ustar headers, no names"
        );
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes() {
        if !root_user() {
            return;
        }
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        make_upper(one.path(), false);
        make_upper(two.path(), true);
        let (first, _) = layer(one.path(), 0);
        let (again, _) = layer(one.path(), 0);
        let (other_order, _) = layer(two.path(), 0);
        assert!(first == again, "two writes of one tree differ");
        assert!(
            first == other_order,
            "one tree made in two orders gives two layers"
        );
        assert!(read_entries(&first).iter().all(|s| s.mtime == 0));
    }

    #[test]
    fn skip_leaves_out_a_directory_and_all_below_it() {
        let upper = tempfile::tempdir().unwrap();
        file(upper.path(), "proc/self/status", "x");
        file(upper.path(), "procfile", "y");
        file(upper.path(), "sys", "a file, not skipped as a directory");
        let mut out = Vec::new();
        let skip = |rel: &str, is_dir: bool| is_dir && (rel == "proc" || rel == "sys");
        write_layer(upper.path(), &mut out, &DiffOptions::default(), &skip).unwrap();
        let paths: Vec<_> = read_entries(&out).into_iter().map(|s| s.path).collect();
        assert_eq!(paths, ["procfile", "sys"]);
    }

    /// The walk of one tree: kind, mode, owner, time, links, content or
    /// target or device, and xattrs, per relative path.
    fn snapshot(root: &Path, leave_out: &[&str]) -> BTreeMap<String, String> {
        let mut paths = Vec::new();
        collect(root, Path::new(""), &mut paths);
        let mut out = BTreeMap::new();
        for rel in paths {
            let shown = rel.to_string_lossy().into_owned();
            if leave_out
                .iter()
                .any(|l| shown == *l || shown.starts_with(&format!("{l}/")))
            {
                continue;
            }
            let path = root.join(&rel);
            let m = fs::symlink_metadata(&path).unwrap();
            let ft = m.file_type();
            let what = if ft.is_file() {
                format!("file {:?}", fs::read_to_string(&path).unwrap())
            } else if ft.is_symlink() {
                format!("symlink {:?}", fs::read_link(&path).unwrap())
            } else if ft.is_dir() {
                "dir".to_string()
            } else {
                format!("node {:o} rdev {}", m.mode() & 0o170000, m.rdev())
            };
            // unpack gives a whiteout no time of its own; only its name counts.
            let whiteout = ft.is_char_device() && m.rdev() == 0;
            let mtime = if whiteout { 0 } else { m.mtime() };
            let mut xattrs: Vec<_> = xattr::list(&path)
                .unwrap()
                .filter(|n| n != "security.selinux")
                .map(|n| {
                    format!(
                        "{}={:?}",
                        n.to_string_lossy(),
                        xattr::get(&path, &n).unwrap()
                    )
                })
                .collect();
            xattrs.sort();
            let line = format!(
                "{what} mode {:o} owner {}:{} mtime {mtime} links {} xattrs {xattrs:?}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                m.nlink(),
            );
            out.insert(shown, line);
        }
        out
    }

    #[test]
    fn unpack_reads_back_the_same_tree() {
        if !root_user() {
            return;
        }
        let upper = tempfile::tempdir().unwrap();
        make_upper(upper.path(), false);
        let (bytes, _) = layer(upper.path(), 1_000_000);
        // The future mtime is clamped in the layer; clamp it here too.
        let t = FileTime::from_unix_time(1_000_000, 0);
        filetime::set_file_times(upper.path().join("h-future"), t, t).unwrap();

        let dest = tempfile::tempdir().unwrap();
        unpack(&bytes[..], dest.path()).unwrap();
        let want = snapshot(upper.path(), &["proc", "s-sock"]);
        let got = snapshot(dest.path(), &[]);
        assert_eq!(got, want);
        let ino = |rel: &str| fs::metadata(dest.path().join(rel)).unwrap().ino();
        assert_eq!(ino("a/keep"), ino("f-hard"));
        assert!(want["a"].contains(OPAQUE_XATTR) && want["a/old"].contains("rdev 0"));
    }

    #[test]
    fn metacopy_and_redirect_are_refused() {
        if !root_user() {
            return;
        }
        for (rel, attr) in [
            ("lib/big.so", "trusted.overlay.metacopy"),
            ("moved", "trusted.overlay.redirect"),
        ] {
            let upper = tempfile::tempdir().unwrap();
            file(upper.path(), rel, "");
            xattr::set(upper.path().join(rel), attr, b"").unwrap();
            let err = write_layer(
                upper.path(),
                io::sink(),
                &DiffOptions::default(),
                &|_, _| false,
            )
            .unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(err, DiffError::NotSelfContained { .. }),
                "{message}"
            );
            assert!(message.contains(rel) && message.contains("metacopy or redirect_dir"));
        }
    }

    #[test]
    fn user_overlay_opaque_marks_a_directory_too() {
        let upper = tempfile::tempdir().unwrap();
        fs::create_dir(upper.path().join("d")).unwrap();
        if xattr::set(upper.path().join("d"), "user.overlay.opaque", b"y").is_err() {
            return; // a filesystem without user xattrs
        }
        let mut out = Vec::new();
        write_layer(upper.path(), &mut out, &DiffOptions::default(), &|_, _| {
            false
        })
        .unwrap();
        let paths: Vec<_> = read_entries(&out).into_iter().map(|s| s.path).collect();
        assert_eq!(paths, ["d/", "d/.wh..wh..opq"]);
    }

    #[test]
    fn big_ids_sizes_and_long_names_go_to_pax_records() {
        let head = Head {
            name: "n".repeat(300).into_bytes(),
            kind: EntryType::Regular,
            mode: 0o644,
            uid: 3_000_000,
            gid: 7,
            mtime: 0,
            size: 9 << 30,
            link: Vec::new(),
            device: (0, 0),
        };
        let (header, records) = head.encode(&BTreeMap::new());
        let keys: Vec<_> = records
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert_eq!(keys, ["path", "size", "uid"]);
        assert_eq!(records[&b"size"[..]], (9u64 << 30).to_string().into_bytes());
        // The header's own fields still carry the values (base-256).
        assert_eq!(header.uid().unwrap(), 3_000_000);
        assert_eq!(header.size().unwrap(), 9 << 30);
    }

    #[test]
    fn pax_records_count_their_own_length() {
        // Every value length, across the points where the length gains a digit.
        for n in 0..1100 {
            let record = pax_record(b"path", "a".repeat(n).as_bytes());
            let text = String::from_utf8(record.clone()).unwrap();
            let (len, rest) = text.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), record.len(), "{text:?}");
            assert!(rest.starts_with("path=") && rest.ends_with('\n'));
        }
    }

    #[test]
    fn mtimes_are_clamped() {
        assert_eq!(clamp_mtime(-5, 100), 0);
        assert_eq!(clamp_mtime(50, 100), 50);
        assert_eq!(clamp_mtime(500, 100), 100);
        assert_eq!(clamp_mtime(500, 0), 0);
    }

    /// Run `script` under `sh` in a mount namespace of its own, private from
    /// `/` down, so no mount it makes reaches the host even if it dies.
    fn in_private_mount_namespace(script: &str, args: &[&Path]) -> std::process::ExitStatus {
        let mut command = std::process::Command::new("sh");
        command.arg("-c").arg(script).arg("sh").args(args);
        // SAFETY: between fork and exec the closure only makes two system
        // calls, allocating nothing.
        unsafe {
            command.pre_exec(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
                nix::mount::mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                    None::<&str>,
                )?;
                Ok(())
            });
        }
        command.status().unwrap()
    }

    #[test]
    fn a_real_overlay_upper_directory() {
        if !root_user() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let [lower, upper, work, merged] =
            ["lower", "upper", "work", "merged"].map(|d| tmp.path().join(d));
        for dir in [&lower, &upper, &work, &merged] {
            fs::create_dir(dir).unwrap();
        }
        file(&lower, "keep.txt", "untouched");
        file(&lower, "gone.txt", "deleted");
        file(&lower, "dir/old.txt", "hidden by the opaque dir");
        file(&lower, "mode.txt", "chmodded");
        let script = r#"set -e
            mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3,metacopy=off,redirect_dir=off" "$4"
            rm "$4/gone.txt"
            rm -rf "$4/dir"
            mkdir "$4/dir"
            echo new > "$4/dir/new.txt"
            chmod 600 "$4/mode.txt"
            umount "$4""#;
        let status = in_private_mount_namespace(script, &[&lower, &upper, &work, &merged]);
        assert!(status.success(), "the overlay script failed: {status}");

        let mut out = Vec::new();
        write_layer(&upper, &mut out, &DiffOptions::default(), &|_, _| false).unwrap();
        let seen = read_entries(&out);
        let got: Vec<_> = seen
            .iter()
            .map(|s| (s.path.as_str(), s.kind, s.mode))
            .collect();
        assert_eq!(
            got,
            [
                ("dir/", EntryType::Directory, 0o755),
                ("dir/.wh..wh..opq", EntryType::Regular, 0o755),
                ("dir/new.txt", EntryType::Regular, 0o644),
                (".wh.gone.txt", EntryType::Regular, 0),
                ("mode.txt", EntryType::Regular, 0o600),
            ]
        );
        assert_eq!(seen[4].size, "chmodded".len() as u64);
        assert!(
            seen.iter().all(|s| s.xattrs.is_empty()),
            "no overlay xattrs: {seen:?}"
        );
    }
}
