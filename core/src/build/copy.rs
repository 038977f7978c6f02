//! COPY and ADD onto the root filesystem of the image being built, with
//! docker's rules for destinations, owners and modes; every path written is
//! resolved inside that root, whatever symlinks the image holds.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use nix::sys::stat::{mknod, Mode, SFlag};

use super::context::{ContextError, Entry, Source};
use crate::fsutil::try_secure_join;
use crate::image::unpack::{unpack_archive, UnpackError};

/// Flags of one COPY or ADD.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    /// `--chown`, already resolved to numbers by the caller.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`: the mode of every file and directory copied.
    pub chmod: Option<u32>,
    /// COPY --from: what is copied keeps the owners it has in the stage or
    /// image (docker's builders do; only context files become root's),
    /// unless `--chown` names one.
    pub keep_owners: bool,
    /// ADD: a local tar archive (plain, gzip, bzip2, xz or zstd, told by its
    /// content as docker tells it) is unpacked rather than copied.
    pub add: bool,
}

/// What one COPY or ADD wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopyStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// Bytes of regular-file content copied (archives: unpacked).
    pub bytes: u64,
    pub archives: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("When using {instruction} with more than one source file, the destination must be a directory and end with a / (destination {dest:?})")]
    ManySourcesNeedDir {
        instruction: &'static str,
        dest: String,
    },
    #[error("cannot copy the directory {from:?} to {dest}: the image has a non-directory there; remove it first (RUN rm) or choose another destination")]
    DirOverFile { from: String, dest: String },
    #[error("cannot copy {from:?} to {dest}: the image has a directory there; a file cannot replace it (copy into it with a trailing '/', or remove it first)")]
    FileOverDir { from: String, dest: String },
    #[error(
        "destination {dest} cannot be resolved in the image: too many levels of symbolic links"
    )]
    Loop { dest: String },
    #[error("writing {dest} in the image failed")]
    Write {
        dest: String,
        #[source]
        source: io::Error,
    },
    #[error("reading the source {path} failed")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unpacking the archive {archive:?} into {dest} failed")]
    Unpack {
        archive: String,
        dest: String,
        #[source]
        source: UnpackError,
    },
    #[error(transparent)]
    Context(#[from] ContextError),
}

fn write_err(dest: &str) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Write {
        dest: dest.to_string(),
        source,
    }
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Copy `sources` to `dest` inside `root`, the merged root filesystem of the
/// image being built, as docker's COPY (or ADD, with `opts.add`) does.
///
/// Directories this creates on the way to `dest` are 0755 and owned by the
/// `--chown` owner, else root, as docker's builder creates them; a
/// directory source's contents go into `dest`, which, when created, takes
/// the source directory's mode.
pub fn copy_into(
    root: &Path,
    sources: &[Source],
    dest: &str,
    workdir: &str,
    opts: &CopyOptions,
) -> Result<CopyStats, CopyError> {
    let (dest_path, names_dir) = destination(dest, workdir);
    if sources.len() > 1 && !names_dir {
        return Err(CopyError::ManySourcesNeedDir {
            instruction: if opts.add { "ADD" } else { "COPY" },
            dest: dest.to_string(),
        });
    }
    let into_dir = names_dir || is_dir_in_image(root, &dest_path)?;
    let mut copier = Copier {
        root,
        opts,
        stats: CopyStats::default(),
    };
    for source in sources {
        copier.source(source, &dest_path, into_dir)?;
    }
    Ok(copier.stats)
}

/// COPY's heredoc form (`COPY <<EOF /dest`): a file named `name` holding
/// `data`, mode 0644 unless `--chmod`, placed by the same destination rules.
pub fn write_file(
    root: &Path,
    dest: &str,
    workdir: &str,
    name: &str,
    data: &[u8],
    opts: &CopyOptions,
) -> Result<(), CopyError> {
    let (dest_path, names_dir) = destination(dest, workdir);
    let target = if names_dir || is_dir_in_image(root, &dest_path)? {
        join_image(&dest_path, name)
    } else {
        dest_path
    };
    let mut copier = Copier {
        root,
        opts,
        stats: CopyStats::default(),
    };
    let (parent, leaf) = copier.parent_dir(name, &target)?;
    let path = copier.clear_leaf(name, &target, &parent, &leaf)?;
    let mut file = create_nofollow(&path).map_err(write_err(&target))?;
    file.write_all(data).map_err(write_err(&target))?;
    let owner = copier.owner();
    copier.own_file(&file, &target, opts.chmod.unwrap_or(0o644), owner)
}

/// The destination as an absolute, cleaned path in the image, and whether
/// it names a directory by its spelling: a trailing `/`, or `.` (buildkit).
fn destination(dest: &str, workdir: &str) -> (String, bool) {
    let names_dir = dest.is_empty() || dest == "." || dest.ends_with('/') || dest.ends_with("/.");
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{workdir}/{dest}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    (format!("/{}", parts.join("/")), names_dir)
}

fn join_image(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// `path`'s host location inside `root`, links resolved inside it.
fn resolve(root: &Path, path: &str) -> Result<PathBuf, CopyError> {
    try_secure_join(root, path).map_err(|_| CopyError::Loop {
        dest: path.to_string(),
    })
}

fn is_dir_in_image(root: &Path, path: &str) -> Result<bool, CopyError> {
    let host = resolve(root, path)?;
    Ok(fs::symlink_metadata(host).is_ok_and(|m| m.is_dir()))
}

fn last_name(rel: &str) -> &str {
    rel.rsplit('/').find(|c| !c.is_empty()).unwrap_or(rel)
}

struct Copier<'a> {
    root: &'a Path,
    opts: &'a CopyOptions,
    stats: CopyStats,
}

impl Copier<'_> {
    fn owner(&self) -> (u32, u32) {
        self.opts.owner.unwrap_or((0, 0))
    }

    /// The owner a copied entry gets: `--chown`'s, its own for COPY --from,
    /// else root.
    fn owner_of(&self, meta: &fs::Metadata) -> (u32, u32) {
        match self.opts.owner {
            Some(owner) => owner,
            None if self.opts.keep_owners => (meta.uid(), meta.gid()),
            None => (0, 0),
        }
    }

    fn source(&mut self, source: &Source, dest: &str, into_dir: bool) -> Result<(), CopyError> {
        if source.is_dir {
            return self.directory(source, dest);
        }
        let target = if into_dir {
            join_image(dest, last_name(&source.rel))
        } else {
            dest.to_string()
        };
        if self.opts.add {
            if let Some(compression) = archive_kind(&source.path)? {
                return self.unpack(source, dest, compression);
            }
        }
        let entries = source.entries()?;
        let mut links = HashMap::new();
        for entry in &entries {
            let (parent, leaf) = self.parent_dir(&source.rel, &target)?;
            self.non_dir(&source.rel, entry, &target, &parent, &leaf, &mut links)?;
        }
        Ok(())
    }

    /// A directory source: its contents into `dest`, hard links kept.
    fn directory(&mut self, source: &Source, dest: &str) -> Result<(), CopyError> {
        let entries = source.entries()?;
        let mut host_dirs: HashMap<String, PathBuf> = HashMap::new();
        let mut links = HashMap::new();
        for entry in &entries {
            let target = if entry.rel.is_empty() {
                dest.to_string()
            } else {
                join_image(dest, &entry.rel)
            };
            if entry.rel.is_empty() {
                let host = self.top_dir(&source.rel, entry, &target)?;
                host_dirs.insert(String::new(), host);
                continue;
            }
            let (parent_rel, leaf) = match entry.rel.rsplit_once('/') {
                Some((p, l)) => (p, l),
                None => ("", entry.rel.as_str()),
            };
            let parent = match host_dirs.get(parent_rel) {
                Some(p) => p.clone(),
                None => self.parent_dir(&source.rel, &target)?.0,
            };
            if entry.meta.is_dir() {
                let host = self.inner_dir(&source.rel, entry, &target, &parent.join(leaf))?;
                host_dirs.insert(entry.rel.clone(), host);
            } else {
                self.non_dir(&source.rel, entry, &target, &parent, leaf, &mut links)?;
            }
        }
        Ok(())
    }

    /// The directory a directory source's contents go into: made (with the
    /// parents it needs) if missing, left as it is if there.
    fn top_dir(&mut self, source: &str, entry: &Entry, target: &str) -> Result<PathBuf, CopyError> {
        let mode = self.dir_mode(entry);
        // A directory already there keeps its owner; one made takes the
        // source's when owners are kept.
        let existed = is_dir_in_image(self.root, target)?;
        let host = self.ensure_dir(source, target, mode)?;
        if self.opts.keep_owners && !existed {
            self.set_dir_meta(&host, target, mode, self.owner_of(&entry.meta))?;
        }
        Ok(host)
    }

    /// The host directory for `image_path`, made with `mode` (and its
    /// parents 0755) where missing. A dangling link is made where it points,
    /// inside the root, as a chrooted mkdir -p would.
    fn ensure_dir(
        &mut self,
        source: &str,
        image_path: &str,
        mode: u32,
    ) -> Result<PathBuf, CopyError> {
        let host = resolve(self.root, image_path)?;
        match fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => Ok(host),
            Ok(_) => Err(CopyError::DirOverFile {
                from: source.to_string(),
                dest: image_path.to_string(),
            }),
            Err(_) => {
                let real = match host.strip_prefix(self.root) {
                    Ok(rel) => format!("/{}", rel.to_string_lossy()),
                    Err(_) => image_path.to_string(),
                };
                let (parent, leaf) = self.parent_dir(source, &real)?;
                let host = parent.join(leaf);
                self.make_dir(&host, image_path, mode)?;
                Ok(host)
            }
        }
    }

    /// A directory inside a copied tree: merged into one already there (a
    /// link to a directory is followed inside the root, as in a chroot),
    /// made if missing; mode and owner set either way, as docker does.
    fn inner_dir(
        &mut self,
        source: &str,
        entry: &Entry,
        target: &str,
        unresolved: &Path,
    ) -> Result<PathBuf, CopyError> {
        let host = match fs::symlink_metadata(unresolved) {
            Ok(m) if m.file_type().is_symlink() => resolve(self.root, target)?,
            _ => unresolved.to_path_buf(),
        };
        match fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => {
                self.set_dir_meta(
                    &host,
                    target,
                    self.dir_mode(entry),
                    self.owner_of(&entry.meta),
                )?;
            }
            Ok(_) => {
                return Err(CopyError::DirOverFile {
                    from: format!("{source}/{}", entry.rel),
                    dest: target.to_string(),
                })
            }
            Err(_) => {
                self.make_dir(&host, target, self.dir_mode(entry))?;
                self.set_dir_meta(
                    &host,
                    target,
                    self.dir_mode(entry),
                    self.owner_of(&entry.meta),
                )?;
            }
        }
        Ok(host)
    }

    fn dir_mode(&self, entry: &Entry) -> u32 {
        self.opts.chmod.unwrap_or(entry.meta.mode() & 0o7777)
    }

    fn make_dir(&mut self, host: &Path, target: &str, mode: u32) -> Result<(), CopyError> {
        fs::create_dir(host).map_err(write_err(target))?;
        self.stats.dirs += 1;
        self.set_dir_meta(host, target, mode, self.owner())
    }

    /// Owner then mode: chown clears set-id bits the mode may carry.
    fn set_dir_meta(
        &self,
        host: &Path,
        target: &str,
        mode: u32,
        (uid, gid): (u32, u32),
    ) -> Result<(), CopyError> {
        let dir = open_dir_nofollow(host).map_err(write_err(target))?;
        std::os::unix::fs::fchown(&dir, Some(uid), Some(gid)).map_err(write_err(target))?;
        dir.set_permissions(Permissions::from_mode(mode))
            .map_err(write_err(target))
    }

    /// The host directory `target`'s last component goes in, made (0755,
    /// the `--chown` owner) where missing, and that component's name.
    fn parent_dir(&mut self, source: &str, target: &str) -> Result<(PathBuf, String), CopyError> {
        let (parent, leaf) = match target.rsplit_once('/') {
            Some((p, l)) => (if p.is_empty() { "/" } else { p }, l),
            None => ("/", target),
        };
        let host = self.ensure_dir(source, parent, 0o755)?;
        Ok((host, leaf.to_string()))
    }

    /// Make room for a non-directory at `parent/leaf`: a file or link there
    /// is removed (never written through), a directory is an error.
    fn clear_leaf(
        &self,
        source: &str,
        target: &str,
        parent: &Path,
        leaf: &str,
    ) -> Result<PathBuf, CopyError> {
        let path = parent.join(leaf);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => Err(CopyError::FileOverDir {
                from: source.to_string(),
                dest: target.to_string(),
            }),
            Ok(_) => {
                fs::remove_file(&path).map_err(write_err(target))?;
                Ok(path)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(path),
            Err(e) => Err(write_err(target)(e)),
        }
    }

    /// A file, symlink, hard link or special file at `parent/leaf`.
    fn non_dir(
        &mut self,
        source: &str,
        entry: &Entry,
        target: &str,
        parent: &Path,
        leaf: &str,
        links: &mut HashMap<(u64, u64), PathBuf>,
    ) -> Result<(), CopyError> {
        let path = self.clear_leaf(source, target, parent, leaf)?;
        let meta = &entry.meta;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let link = fs::read_link(&entry.path).map_err(read_err(&entry.path))?;
            std::os::unix::fs::symlink(&link, &path).map_err(write_err(target))?;
            let (uid, gid) = self.owner_of(meta);
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(write_err(target))?;
            let mtime = FileTime::from_last_modification_time(meta);
            filetime::set_symlink_file_times(&path, mtime, mtime).map_err(write_err(target))?;
            self.stats.symlinks += 1;
            return Ok(());
        }
        if kind.is_file() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = links.get(&key) {
                // linkat without AT_SYMLINK_FOLLOW: `first` is our own file.
                fs::hard_link(first, &path).map_err(write_err(target))?;
                self.stats.hardlinks += 1;
                return Ok(());
            }
            links.insert(key, path.clone());
        }
        let mode = self.opts.chmod.unwrap_or(meta.mode() & 0o7777);
        if kind.is_file() {
            let mut from = File::open(&entry.path).map_err(read_err(&entry.path))?;
            let mut to = create_nofollow(&path).map_err(write_err(target))?;
            self.stats.bytes += io::copy(&mut from, &mut to).map_err(write_err(target))?;
            self.own_file(&to, target, mode, self.owner_of(meta))?;
            let mtime = FileTime::from_last_modification_time(meta);
            filetime::set_file_handle_times(&to, Some(mtime), Some(mtime))
                .map_err(write_err(target))?;
            return Ok(());
        }
        let sflag = if kind.is_fifo() {
            SFlag::S_IFIFO
        } else if kind.is_char_device() {
            SFlag::S_IFCHR
        } else if kind.is_block_device() {
            SFlag::S_IFBLK
        } else {
            tracing::warn!(source = %entry.path.display(), "not copying a socket");
            return Ok(());
        };
        mknod(&path, sflag, Mode::from_bits_truncate(mode), meta.rdev())
            .map_err(|e| write_err(target)(io::Error::from(e)))?;
        let (uid, gid) = self.owner_of(meta);
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(write_err(target))?;
        fs::set_permissions(&path, Permissions::from_mode(mode)).map_err(write_err(target))?;
        self.stats.files += 1;
        Ok(())
    }

    /// Owner then mode of a file just written: chown clears set-id bits.
    fn own_file(
        &mut self,
        file: &File,
        target: &str,
        mode: u32,
        (uid, gid): (u32, u32),
    ) -> Result<(), CopyError> {
        std::os::unix::fs::fchown(file, Some(uid), Some(gid)).map_err(write_err(target))?;
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(write_err(target))?;
        self.stats.files += 1;
        Ok(())
    }

    /// ADD of a local archive: unpacked into `dest`, made a directory.
    fn unpack(
        &mut self,
        source: &Source,
        dest: &str,
        compression: Compression,
    ) -> Result<(), CopyError> {
        let host = self.ensure_dir(&source.rel, dest, 0o755)?;
        let file = File::open(&source.path).map_err(read_err(&source.path))?;
        let unpacked =
            unpack_archive(compression.reader(file), &host, self.opts.owner).map_err(|e| {
                CopyError::Unpack {
                    archive: source.rel.clone(),
                    dest: dest.to_string(),
                    source: e,
                }
            })?;
        self.stats.archives += 1;
        self.stats.files += unpacked.entries;
        self.stats.bytes += unpacked.content_bytes;
        Ok(())
    }
}

fn create_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

fn open_dir_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(path)
}

/// How an archive ADD unpacks is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Compression {
    /// Told by the first bytes, as docker's DetectCompression does.
    fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b, 0x08]) {
            Compression::Gzip
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    fn reader(self, file: File) -> Box<dyn Read> {
        let file = io::BufReader::new(file);
        match self {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
            Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(file)),
            Compression::Xz => Box::new(lzma_rust2::XzReader::new(file, true)),
            Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(file) {
                Ok(d) => Box::new(d),
                Err(e) => Box::new(FailingReader(Some(e))),
            },
        }
    }
}

/// A reader whose first read reports why the stream could not be opened.
struct FailingReader(Option<io::Error>);

impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| io::Error::other("stream unavailable")))
    }
}

/// Whether ADD should unpack this file: it decompresses (if compressed) to
/// something that starts with a valid tar header, as docker checks by
/// reading the first header. Anything else is copied as COPY would.
fn archive_kind(path: &Path) -> Result<Option<Compression>, CopyError> {
    let mut head = [0u8; 8];
    let mut file = File::open(path).map_err(read_err(path))?;
    let n = read_up_to(&mut file, &mut head).map_err(read_err(path))?;
    let compression = Compression::detect(&head[..n]);
    let file = File::open(path).map_err(read_err(path))?;
    let mut block = [0u8; 512];
    let mut reader = compression.reader(file);
    match read_up_to(&mut reader, &mut block) {
        Ok(512) if is_tar_header(&block) => Ok(Some(compression)),
        _ => Ok(None),
    }
}

fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A tar header block: its checksum field (octal, bytes 148..156) equals the
/// sum of the block's bytes with that field read as spaces. An all-zero
/// block is an empty archive, which docker does not treat as one either.
fn is_tar_header(block: &[u8; 512]) -> bool {
    let field = &block[148..156];
    let digits: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| !matches!(c, ' ' | '\0'))
        .collect();
    let Ok(recorded) = u32::from_str_radix(&digits, 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    block.iter().any(|&b| b != 0) && sum == recorded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::context::Tree;
    use std::os::unix::fs::symlink;

    struct Fixture {
        ctx: tempfile::TempDir,
        root: tempfile::TempDir,
    }

    /// A context (f.txt 0640, run.sh 0755, dir/{a, sub/b, ln -> a, hard1,
    /// hard2}) and an empty image root.
    fn fixture() -> Fixture {
        let ctx = tempfile::tempdir().unwrap();
        let c = ctx.path();
        fs::create_dir_all(c.join("dir/sub")).unwrap();
        fs::write(c.join("f.txt"), "file").unwrap();
        fs::set_permissions(c.join("f.txt"), Permissions::from_mode(0o640)).unwrap();
        fs::write(c.join("run.sh"), "#!/bin/sh").unwrap();
        fs::set_permissions(c.join("run.sh"), Permissions::from_mode(0o755)).unwrap();
        fs::write(c.join("dir/a"), "a").unwrap();
        fs::write(c.join("dir/sub/b"), "b").unwrap();
        symlink("a", c.join("dir/ln")).unwrap();
        fs::write(c.join("dir/hard1"), "h").unwrap();
        fs::hard_link(c.join("dir/hard1"), c.join("dir/hard2")).unwrap();
        std::os::unix::fs::chown(c.join("f.txt"), Some(1000), Some(1000)).unwrap();
        Fixture {
            ctx,
            root: tempfile::tempdir().unwrap(),
        }
    }

    impl Fixture {
        fn copy(
            &self,
            srcs: &[&str],
            dest: &str,
            opts: &CopyOptions,
        ) -> Result<CopyStats, CopyError> {
            self.copy_in("/", srcs, dest, opts)
        }

        fn copy_in(
            &self,
            workdir: &str,
            srcs: &[&str],
            dest: &str,
            opts: &CopyOptions,
        ) -> Result<CopyStats, CopyError> {
            let tree = Tree::context(self.ctx.path(), |_: &str, _: bool| false);
            let pats: Vec<String> = srcs.iter().map(|s| s.to_string()).collect();
            let sources = tree.resolve(&pats)?;
            copy_into(self.root.path(), &sources, dest, workdir, opts)
        }

        fn at(&self, p: &str) -> PathBuf {
            self.root.path().join(p.trim_start_matches('/'))
        }

        fn read(&self, p: &str) -> String {
            fs::read_to_string(self.at(p)).unwrap()
        }

        fn meta(&self, p: &str) -> fs::Metadata {
            fs::symlink_metadata(self.at(p)).unwrap()
        }
    }

    fn cp() -> CopyOptions {
        CopyOptions::default()
    }

    #[test]
    fn a_file_to_a_file_keeps_its_mode_and_becomes_root_owned() {
        let f = fixture();
        f.copy(&["f.txt"], "/etc/conf", &cp()).unwrap();
        assert_eq!(f.read("etc/conf"), "file");
        let m = f.meta("etc/conf");
        assert_eq!(m.mode() & 0o7777, 0o640);
        assert_eq!((m.uid(), m.gid()), (0, 0));
    }

    #[test]
    fn a_file_goes_inside_a_trailing_slash_or_an_existing_directory() {
        let f = fixture();
        f.copy(&["f.txt"], "/new/", &cp()).unwrap();
        assert_eq!(f.read("new/f.txt"), "file");
        fs::create_dir(f.at("existing")).unwrap();
        f.copy(&["f.txt"], "/existing", &cp()).unwrap();
        assert_eq!(f.read("existing/f.txt"), "file");
    }

    #[test]
    fn missing_parents_are_made_0755_root_owned() {
        let f = fixture();
        f.copy(&["f.txt"], "/a/b/c/f", &cp()).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            let m = f.meta(d);
            assert!(m.is_dir());
            assert_eq!(m.mode() & 0o7777, 0o755, "{d}");
            assert_eq!((m.uid(), m.gid()), (0, 0));
        }
    }

    #[test]
    fn a_relative_destination_is_under_the_workdir() {
        let f = fixture();
        f.copy_in("/app", &["f.txt"], "conf/x", &cp()).unwrap();
        assert_eq!(f.read("app/conf/x"), "file");
        f.copy_in("/app", &["run.sh"], ".", &cp()).unwrap();
        assert_eq!(f.read("app/run.sh"), "#!/bin/sh");
    }

    #[test]
    fn a_directory_source_copies_its_contents_with_links_kept() {
        let f = fixture();
        let stats = f.copy(&["dir"], "/opt", &cp()).unwrap();
        assert_eq!(f.read("opt/a"), "a");
        assert_eq!(f.read("opt/sub/b"), "b");
        assert!(!f.at("opt/dir").exists());
        assert!(f.meta("opt/ln").file_type().is_symlink());
        assert_eq!(fs::read_link(f.at("opt/ln")).unwrap(), Path::new("a"));
        assert_eq!(f.meta("opt/hard1").ino(), f.meta("opt/hard2").ino());
        assert_eq!(stats.hardlinks, 1);
        assert_eq!(stats.symlinks, 1);
    }

    #[test]
    fn wildcards_and_several_sources_go_into_a_directory() {
        let f = fixture();
        f.copy(&["*.txt", "run.sh"], "/bin/", &cp()).unwrap();
        assert_eq!(f.read("bin/f.txt"), "file");
        assert_eq!(f.read("bin/run.sh"), "#!/bin/sh");
    }

    #[test]
    fn several_sources_need_a_destination_ending_in_a_slash() {
        let f = fixture();
        fs::create_dir(f.at("existing")).unwrap();
        for dest in ["/x", "/existing"] {
            let e = f.copy(&["f.txt", "run.sh"], dest, &cp()).unwrap_err();
            assert!(matches!(e, CopyError::ManySourcesNeedDir { .. }), "{e}");
            assert!(e
                .to_string()
                .contains("must be a directory and end with a /"));
        }
    }

    #[test]
    fn copy_from_keeps_the_owners_unless_chown_names_one() {
        let f = fixture();
        let c = f.ctx.path();
        std::os::unix::fs::chown(c.join("dir"), Some(3), Some(4)).unwrap();
        std::os::unix::fs::chown(c.join("dir/sub"), Some(7), Some(8)).unwrap();
        std::os::unix::fs::chown(c.join("dir/sub/b"), Some(9), Some(10)).unwrap();
        std::os::unix::fs::lchown(c.join("dir/ln"), Some(11), Some(12)).unwrap();
        let keep = CopyOptions {
            keep_owners: true,
            ..cp()
        };
        fs::create_dir(f.at("existing")).unwrap();
        f.copy(&["dir"], "/opt", &keep).unwrap();
        f.copy(&["dir"], "/existing", &keep).unwrap();
        f.copy(&["f.txt"], "/f.txt", &keep).unwrap();
        let owner = |p: &str| {
            let m = f.meta(p);
            (m.uid(), m.gid())
        };
        let table = [
            ("opt", (3, 4)),
            ("opt/sub", (7, 8)),
            ("opt/sub/b", (9, 10)),
            ("opt/ln", (11, 12)),
            ("f.txt", (1000, 1000)),
            // A destination already there keeps its owner.
            ("existing", (0, 0)),
        ];
        for (path, expected) in table {
            assert_eq!(owner(path), expected, "{path}");
        }
        let chown = CopyOptions {
            owner: Some((5, 6)),
            ..keep
        };
        f.copy(&["dir"], "/chowned", &chown).unwrap();
        for p in ["chowned", "chowned/sub", "chowned/sub/b", "chowned/ln"] {
            assert_eq!(owner(p), (5, 6), "{p}");
        }
    }

    #[test]
    fn chown_and_chmod_apply_to_what_is_copied_and_the_dirs_made() {
        let f = fixture();
        let opts = CopyOptions {
            owner: Some((1000, 2000)),
            chmod: Some(0o700),
            add: false,
            keep_owners: false,
        };
        f.copy(&["dir"], "/made/here", &opts).unwrap();
        for p in ["made/here/a", "made/here/sub", "made/here/sub/b"] {
            let m = f.meta(p);
            assert_eq!((m.uid(), m.gid()), (1000, 2000), "{p}");
            assert_eq!(m.mode() & 0o7777, 0o700, "{p}");
        }
        let link = f.meta("made/here/ln");
        assert_eq!((link.uid(), link.gid()), (1000, 2000));
        let made = f.meta("made");
        assert_eq!(
            (made.uid(), made.gid(), made.mode() & 0o7777),
            (1000, 2000, 0o755)
        );
    }

    #[test]
    fn an_existing_file_is_replaced_and_a_directory_is_not() {
        let f = fixture();
        fs::create_dir_all(f.at("etc")).unwrap();
        fs::write(f.at("etc/conf"), "old").unwrap();
        f.copy(&["f.txt"], "/etc/conf", &cp()).unwrap();
        assert_eq!(f.read("etc/conf"), "file");
        // A directory over a file is an error, and so is a file over one.
        let e = f.copy(&["dir"], "/etc/conf", &cp()).unwrap_err();
        assert!(matches!(e, CopyError::DirOverFile { .. }), "{e}");
        fs::create_dir_all(f.at("opt/sub/b")).unwrap();
        let e = f.copy(&["dir"], "/opt", &cp()).unwrap_err();
        assert!(matches!(e, CopyError::FileOverDir { .. }), "{e}");
    }

    #[test]
    fn a_top_level_symlink_is_copied_as_what_it_points_to() {
        let f = fixture();
        symlink("f.txt", f.ctx.path().join("link")).unwrap();
        f.copy(&["link"], "/x/", &cp()).unwrap();
        assert!(f.meta("x/link").is_file());
        assert_eq!(f.read("x/link"), "file");
    }

    #[test]
    fn heredoc_files_are_0644_unless_chmod() {
        let f = fixture();
        write_file(f.root.path(), "/etc/", "/", "motd", b"hi", &cp()).unwrap();
        assert_eq!(f.read("etc/motd"), "hi");
        assert_eq!(f.meta("etc/motd").mode() & 0o7777, 0o644);
        let opts = CopyOptions {
            chmod: Some(0o755),
            ..cp()
        };
        write_file(f.root.path(), "run", "/app", "x", b"#!", &opts).unwrap();
        assert_eq!(f.meta("app/run").mode() & 0o7777, 0o755);
    }

    /// A root whose `etc` is `/` and whose `x` climbs out: every write must
    /// still land inside the root.
    #[test]
    fn a_hostile_root_is_never_left() {
        let f = fixture();
        let outside = tempfile::tempdir().unwrap();
        let r = f.root.path();
        symlink("/", r.join("etc")).unwrap();
        let climb = format!("../../../../../../..{}", outside.path().display());
        symlink(&climb, r.join("x")).unwrap();
        symlink(outside.path().join("target"), r.join("leaf")).unwrap();
        fs::write(outside.path().join("target"), "host").unwrap();

        f.copy(&["f.txt"], "/etc/passwd-test", &cp()).unwrap();
        assert_eq!(f.read("passwd-test"), "file");
        f.copy(&["dir"], "/x/", &cp()).unwrap();
        write_file(r, "/x/", "/", "h", b"h", &cp()).unwrap();
        // The final component, a link to the host, is replaced, not written through.
        f.copy(&["f.txt"], "/leaf", &cp()).unwrap();
        assert_eq!(
            fs::read_to_string(outside.path().join("target")).unwrap(),
            "host"
        );
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1);
        assert!(f.meta("leaf").is_file());
        let inner = r.join(outside.path().strip_prefix("/").unwrap());
        assert_eq!(fs::read_to_string(inner.join("a")).unwrap(), "a");
    }

    fn tar_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o640);
            h.set_uid(1234);
            h.set_gid(5678);
            h.set_entry_type(tar::EntryType::Regular);
            // Names as given, `..` included: set_path would refuse them.
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn compress(kind: &str, data: &[u8]) -> Vec<u8> {
        match kind {
            "tar" => data.to_vec(),
            "tar.gz" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "tar.bz2" => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "tar.xz" => {
                let mut e = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::default())
                    .unwrap();
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "tar.zst" => zstd::encode_all(data, 1).unwrap(),
            _ => unreachable!(),
        }
    }

    fn add() -> CopyOptions {
        CopyOptions {
            add: true,
            ..CopyOptions::default()
        }
    }

    #[test]
    fn add_unpacks_local_archives_of_every_compression() {
        for kind in ["tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst"] {
            let f = fixture();
            let tar = tar_with(&[("d/one", b"1"), ("two", b"2"), (".wh.kept", b"w")]);
            fs::write(f.ctx.path().join(format!("a.{kind}")), compress(kind, &tar)).unwrap();
            fs::create_dir_all(f.at("dest")).unwrap();
            fs::write(f.at("dest/two"), "old").unwrap();
            let stats = f.copy(&[&format!("a.{kind}")], "/dest", &add()).unwrap();
            assert_eq!(stats.archives, 1, "{kind}");
            assert_eq!(f.read("dest/d/one"), "1", "{kind}");
            assert_eq!(
                f.read("dest/two"),
                "2",
                "{kind}: existing files are overwritten"
            );
            assert_eq!(f.read("dest/.wh.kept"), "w", "{kind}: not a whiteout");
            let m = f.meta("dest/two");
            assert_eq!(
                (m.uid(), m.gid(), m.mode() & 0o777),
                (1234, 5678, 0o640),
                "{kind}"
            );
        }
    }

    #[test]
    fn add_with_chown_replaces_the_archive_owners() {
        let f = fixture();
        fs::write(f.ctx.path().join("a.tar"), tar_with(&[("x", b"x")])).unwrap();
        let opts = CopyOptions {
            owner: Some((7, 8)),
            ..add()
        };
        f.copy(&["a.tar"], "/d/", &opts).unwrap();
        let m = f.meta("d/x");
        assert_eq!((m.uid(), m.gid()), (7, 8));
    }

    #[test]
    fn add_of_a_non_archive_copies_it_and_copy_never_unpacks() {
        let f = fixture();
        f.copy(&["f.txt"], "/x", &add()).unwrap();
        assert_eq!(f.read("x"), "file");
        let gz = compress("tar.gz", &tar_with(&[("in", b"1")]));
        fs::write(f.ctx.path().join("a.tar.gz"), &gz).unwrap();
        f.copy(&["a.tar.gz"], "/y/", &cp()).unwrap();
        assert_eq!(fs::read(f.at("y/a.tar.gz")).unwrap(), gz);
        // gzip that is not a tar inside: copied too.
        fs::write(
            f.ctx.path().join("plain.gz"),
            compress("tar.gz", b"just text"),
        )
        .unwrap();
        f.copy(&["plain.gz"], "/z/", &add()).unwrap();
        assert!(f.meta("z/plain.gz").is_file());
    }

    #[test]
    fn add_refuses_archive_entries_that_climb_out() {
        for evil in ["../evil", "/abs-evil", "d/../../evil"] {
            let f = fixture();
            fs::write(f.ctx.path().join("a.tar"), tar_with(&[(evil, b"x")])).unwrap();
            fs::create_dir_all(f.at("dest")).unwrap();
            let e = f.copy(&["a.tar"], "/dest/", &add()).unwrap_err();
            assert!(matches!(e, CopyError::Unpack { .. }), "{evil}: {e}");
            assert!(
                !f.at("evil").exists() && !f.root.path().parent().unwrap().join("evil").exists()
            );
        }
    }

    #[test]
    fn add_refuses_writing_through_a_symlink_the_archive_planted() {
        let f = fixture();
        let outside = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "esc", outside.path()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        b.append_data(&mut h, "esc/pwned", &b"x"[..]).unwrap();
        fs::write(f.ctx.path().join("a.tar"), b.into_inner().unwrap()).unwrap();
        assert!(f.copy(&["a.tar"], "/d/", &add()).is_err());
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn destinations_are_cleaned_and_named_as_docker_names_them() {
        let table = [
            ("/a/b", "/", ("/a/b", false)),
            ("x", "/app", ("/app/x", false)),
            ("x/", "/app", ("/app/x", true)),
            (".", "/app", ("/app", true)),
            ("../../..", "/app", ("/", false)),
            ("/a/./b/../c/", "/", ("/a/c", true)),
        ];
        for (dest, workdir, (path, dir)) in table {
            assert_eq!(
                destination(dest, workdir),
                (path.to_string(), dir),
                "{dest}"
            );
        }
    }

    #[test]
    fn tar_headers_are_told_from_other_data() {
        let tar = tar_with(&[("x", b"x")]);
        let block: [u8; 512] = tar[..512].try_into().unwrap();
        assert!(is_tar_header(&block));
        assert!(!is_tar_header(&[0; 512]));
        let mut bad = block;
        bad[0] ^= 1;
        assert!(!is_tar_header(&bad));
    }
}
