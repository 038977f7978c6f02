//! A streaming writer of cpio "newc" archives, the format Linux unpacks as an
//! initramfs. Our own small writer rather than the `cpio` crate (0.4): that
//! crate takes entry names as `&str`, and image paths are bytes that need not
//! be UTF-8; the format itself is fixed and tiny.

use std::io::{self, Read, Write};

const MAGIC: &[u8] = b"070701";
const HEADER_LEN: usize = 110;
const TRAILER: &[u8] = b"TRAILER!!!";

/// Longest entry name, its NUL included, that the kernel's unpacker takes
/// (PATH_MAX in init/initramfs.c).
pub(crate) const NAME_MAX: usize = 4096;

/// The fields of one entry that vary; the device of the archived file is
/// always 0 and no checksum is kept (magic 070701, not 070702).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Header {
    pub ino: u32,
    /// Type and permission bits, as `st_mode`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub size: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

pub(crate) struct Writer<W> {
    out: W,
    written: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Writer<W> {
        Writer { out, written: 0 }
    }

    /// One entry whose data is in memory (a symlink target, a small file).
    pub fn entry(&mut self, name: &[u8], h: &Header, data: &[u8]) -> io::Result<()> {
        if data.len() as u64 != u64::from(h.size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "entry data does not match its size",
            ));
        }
        self.header(name, h)?;
        self.put(data)?;
        self.pad()
    }

    /// One entry whose `h.size` bytes of data are read from `data`, which
    /// must hold at least that many (a file that shrank is an error, not a
    /// misaligned archive). Given a `File` and a `BufWriter<File>`, std's
    /// `io::copy` moves the bytes in the kernel (copy_file_range).
    pub fn file(&mut self, name: &[u8], h: &Header, data: impl Read) -> io::Result<()> {
        self.header(name, h)?;
        let want = u64::from(h.size);
        let copied = io::copy(&mut data.take(want), &mut self.out)?;
        self.written += copied;
        if copied != want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file ended after {copied} of its {want} bytes"),
            ));
        }
        self.pad()
    }

    /// The trailer entry, then a flush; gives back the output and the
    /// archive's length.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        let h = Header {
            nlink: 1,
            ..Header::default()
        };
        self.entry(TRAILER, &h, &[])?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }

    fn header(&mut self, name: &[u8], h: &Header) -> io::Result<()> {
        // Checked by callers with better messages; checked again here so no
        // caller can ever produce an archive the kernel misreads.
        if name.is_empty() || name.contains(&0) || name.len() + 1 > NAME_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "entry name is empty, holds a NUL or is too long",
            ));
        }
        let mut buf = Vec::with_capacity(HEADER_LEN + name.len() + 4);
        buf.extend_from_slice(MAGIC);
        let namesize = name.len() as u32 + 1;
        let fields = [
            h.ino,
            h.mode,
            h.uid,
            h.gid,
            h.nlink,
            h.mtime,
            h.size,
            0, // devmajor
            0, // devminor
            h.rdev_major,
            h.rdev_minor,
            namesize,
            0, // check
        ];
        for v in fields {
            buf.extend_from_slice(format!("{v:08x}").as_bytes());
        }
        buf.extend_from_slice(name);
        buf.push(0);
        self.put(&buf)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Header+name and data each end on a 4-byte boundary; so does the
    /// archive, which lets the kernel find a second archive appended to it.
    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0; 3][..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_header_name_data_and_padding_as_the_kernel_reads_them() {
        let mut w = Writer::new(Vec::new());
        let h = Header {
            ino: 1,
            mode: 0o100644,
            uid: 2,
            gid: 3,
            nlink: 1,
            mtime: 0x5f5e100,
            size: 3,
            rdev_major: 0,
            rdev_minor: 0,
        };
        w.entry(b"a/b", &h, b"xyz").unwrap();
        let (out, len) = w.finish().unwrap();
        assert_eq!(len, out.len() as u64);
        let head = std::str::from_utf8(&out[..HEADER_LEN]).unwrap();
        assert_eq!(
            head,
            "070701\
             00000001000081a4000000020000000300000001\
             05f5e100000000030000000000000000\
             000000000000000000000004\
             00000000"
        );
        // 110 + "a/b\0" = 114, padded to 116; then 3 data bytes padded to 4.
        assert_eq!(&out[110..116], b"a/b\0\0\0");
        assert_eq!(&out[116..120], b"xyz\0");
        assert_eq!(&out[120..126], b"070701");
        assert_eq!(out.len() % 4, 0);
        let trailer_name = &out[120 + HEADER_LEN..120 + HEADER_LEN + 11];
        assert_eq!(trailer_name, b"TRAILER!!!\0");
    }

    #[test]
    fn refuses_bad_names_and_short_files() {
        let mut w = Writer::new(Vec::new());
        let h = Header::default();
        assert!(w.entry(b"a\0b", &h, &[]).is_err());
        assert!(w.entry(b"", &h, &[]).is_err());
        assert!(w.entry(&[b'a'; NAME_MAX], &h, &[]).is_err());
        assert!(w.entry(&[b'a'; NAME_MAX - 1], &h, &[]).is_ok());
        let h = Header {
            size: 10,
            ..Header::default()
        };
        let err = w.file(b"f", &h, &b"short"[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
