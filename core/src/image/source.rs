//! Where an import reads from: a directory, or a tar archive read in place
//! (one pass over its headers, then random access to each member, so a
//! multi-gigabyte archive is never copied to disk first).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::unpack::clean_path;

pub enum Source {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        file: File,
        members: HashMap<PathBuf, Member>,
    },
}

pub enum Member {
    File { offset: u64, size: u64 },
    Symlink(PathBuf),
}

impl Source {
    pub fn open(path: &Path) -> io::Result<Source> {
        let meta = std::fs::metadata(path)?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let file = File::open(path)?;
        let mut head = [0u8; 4];
        let n = file.read_at(&mut head, 0)?;
        if super::media::Compression::sniff(&head[..n]) != super::media::Compression::None {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the archive is compressed; decompress it first (e.g. gunzip or zstd -d) and import the .tar",
            ));
        }
        let mut members = HashMap::new();
        let mut archive = tar::Archive::new(&file);
        for entry in archive.entries_with_seek()? {
            let entry = entry?;
            let Ok(Some(rel)) = clean_path(&entry.path_bytes()) else {
                continue; // a member no import would look up
            };
            let kind = entry.header().entry_type();
            let member = if kind.is_file() {
                Member::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                }
            } else if kind.is_symlink() || kind.is_hard_link() {
                let Some(target) = entry.link_name_bytes() else {
                    continue;
                };
                let base = if kind.is_symlink() {
                    rel.parent().unwrap_or(Path::new("")).to_path_buf()
                } else {
                    PathBuf::new()
                };
                match resolve_relative(&base, &target) {
                    Some(t) => Member::Symlink(t),
                    None => continue,
                }
            } else {
                continue;
            };
            members.insert(rel, member);
        }
        Ok(Source::Tar {
            path: path.to_path_buf(),
            file,
            members,
        })
    }

    pub fn path(&self) -> &Path {
        match self {
            Source::Dir(p) => p,
            Source::Tar { path, .. } => path,
        }
    }

    pub fn exists(&self, rel: &str) -> bool {
        match self {
            Source::Dir(dir) => safe_rel(rel).is_some_and(|r| dir.join(r).exists()),
            Source::Tar { .. } => self.tar_member(rel).is_ok(),
        }
    }

    /// Open a member by its path inside the source. Paths come from
    /// untrusted manifests, so one that leaves the source is refused.
    pub fn open_member(&self, rel: &str) -> io::Result<(Box<dyn Read + Send + '_>, u64)> {
        match self {
            Source::Dir(dir) => {
                let r = safe_rel(rel).ok_or_else(|| not_found(rel))?;
                let path = dir.join(r);
                let canon_dir = dir.canonicalize()?;
                let canon = path.canonicalize().map_err(|_| not_found(rel))?;
                if !canon.starts_with(&canon_dir) {
                    return Err(not_found(rel));
                }
                let file = File::open(&canon)?;
                let size = file.metadata()?.len();
                Ok((Box::new(file), size))
            }
            Source::Tar { file, .. } => {
                let (offset, size) = self.tar_member(rel)?;
                Ok((
                    Box::new(RangeReader {
                        file,
                        pos: offset,
                        end: offset + size,
                    }),
                    size,
                ))
            }
        }
    }

    fn tar_member(&self, rel: &str) -> io::Result<(u64, u64)> {
        let Source::Tar { members, .. } = self else {
            unreachable!("tar_member on a directory source")
        };
        let mut key = safe_rel(rel).ok_or_else(|| not_found(rel))?;
        for _ in 0..16 {
            match members.get(&key) {
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Symlink(target)) => key = target.clone(),
                None => break,
            }
        }
        Err(not_found(rel))
    }
}

fn safe_rel(rel: &str) -> Option<PathBuf> {
    clean_path(rel.as_bytes()).ok().flatten()
}

/// A link target made relative to the archive root, `None` if it leaves it.
fn resolve_relative(base: &Path, target: &[u8]) -> Option<PathBuf> {
    let target = Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(target));
    let mut out = if target.is_absolute() {
        PathBuf::new()
    } else {
        base.to_path_buf()
    };
    for c in target.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir if !out.pop() => return None,
            _ => {}
        }
    }
    Some(out)
}

fn not_found(rel: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{rel} is missing"))
}

/// Reads one member of the archive by offset, without moving a shared cursor.
struct RangeReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.end - self.pos).min(buf.len() as u64) as usize;
        if left == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..left], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
