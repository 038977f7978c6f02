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
    #[error("destination {dest} cannot be resolved in the image: too many levels of symbolic links")]
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
    let (parent, leaf) = copier.parent_dir(&target)?;
    let path = copier.clear_leaf(name, &target, &parent, &leaf)?;
    let mut file = create_nofollow(&path).map_err(write_err(&target))?;
    file.write_all(data).map_err(write_err(&target))?;
    copier.own_file(&file, &target, opts.chmod.unwrap_or(0o644))
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
            let (parent, leaf) = self.parent_dir(&target)?;
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
                None => self.parent_dir(&target)?.0,
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
        let host = resolve(self.root, target)?;
        match fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => Ok(host),
            Ok(_) => Err(CopyError::DirOverFile {
                from: source.to_string(),
                dest: target.to_string(),
            }),
            Err(_) => {
                let (parent, leaf) = self.parent_dir(target)?;
                let host = parent.join(&leaf);
                self.make_dir(&host, target, self.dir_mode(entry))?;
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
                self.set_dir_meta(&host, target, self.dir_mode(entry))?;
            }
            Ok(_) => {
                return Err(CopyError::DirOverFile {
                    from: format!("{source}/{}", entry.rel),
                    dest: target.to_string(),
                })
            }
            Err(_) => self.make_dir(&host, target, self.dir_mode(entry))?,
        }
        Ok(host)
    }

    fn dir_mode(&self, entry: &Entry) -> u32 {
        self.opts.chmod.unwrap_or(entry.meta.mode() & 0o7777)
    }

    fn make_dir(&mut self, host: &Path, target: &str, mode: u32) -> Result<(), CopyError> {
        fs::create_dir(host).map_err(write_err(target))?;
        self.stats.dirs += 1;
        self.set_dir_meta(host, target, mode)
    }

    /// Owner then mode: chown clears set-id bits the mode may carry.
    fn set_dir_meta(&self, host: &Path, target: &str, mode: u32) -> Result<(), CopyError> {
        let dir = open_dir_nofollow(host).map_err(write_err(target))?;
        let (uid, gid) = self.owner();
        std::os::unix::fs::fchown(&dir, Some(uid), Some(gid)).map_err(write_err(target))?;
        dir.set_permissions(Permissions::from_mode(mode))
            .map_err(write_err(target))
    }

    /// The host directory `target`'s last component goes in, made (0755,
    /// the `--chown` owner) where missing, and that component's name.
    fn parent_dir(&mut self, target: &str) -> Result<(PathBuf, String), CopyError> {
        let (parent, leaf) = match target.rsplit_once('/') {
            Some((p, l)) => (if p.is_empty() { "/" } else { p }, l),
            None => ("/", target),
        };
        let mut made = String::new();
        let mut host = self.root.to_path_buf();
        for component in parent.split('/').filter(|c| !c.is_empty()) {
            made = join_image(if made.is_empty() { "/" } else { &made }, component);
            host = resolve(self.root, &made)?;
            match fs::symlink_metadata(&host) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(CopyError::DirOverFile {
                        from: target.to_string(),
                        dest: made,
                    })
                }
                Err(_) => self.make_dir(&host, &made, 0o755)?,
            }
        }
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
            let (uid, gid) = self.owner();
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
            self.own_file(&to, target, mode)?;
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
        let (uid, gid) = self.owner();
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(write_err(target))?;
        fs::set_permissions(&path, Permissions::from_mode(mode)).map_err(write_err(target))?;
        self.stats.files += 1;
        Ok(())
    }

    /// Owner then mode of a file just written: chown clears set-id bits.
    fn own_file(&mut self, file: &File, target: &str, mode: u32) -> Result<(), CopyError> {
        let (uid, gid) = self.owner();
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
        let host = resolve(self.root, dest)?;
        match fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(CopyError::DirOverFile {
                    from: source.rel.clone(),
                    dest: dest.to_string(),
                })
            }
            Err(_) => {
                let (parent, leaf) = self.parent_dir(dest)?;
                self.make_dir(&parent.join(leaf), dest, 0o755)?;
            }
        }
        let file = File::open(&source.path).map_err(read_err(&source.path))?;
        let unpacked = unpack_archive(compression.reader(file), &host, self.opts.owner)
            .map_err(|e| CopyError::Unpack {
                archive: source.rel.clone(),
                dest: dest.to_string(),
                source: e,
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
        .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { b as u32 })
        .sum();
    block.iter().any(|&b| b != 0) && sum == recorded
}
