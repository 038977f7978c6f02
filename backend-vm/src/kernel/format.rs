//! What kind of kernel a file holds, from its first bytes: an ELF vmlinux,
//! or a bzImage with the size it unpacks to. One reading for the kernel
//! store, the VM backend's checks and the monitor's loader.

use std::io::Read;
use std::path::Path;

/// Enough of the file for every field read here.
pub const HEADER_LEN: usize = 0x264;
/// A bzImage's "HdrS" setup-header magic, and its `init_size` field.
const BZIMAGE_MAGIC_AT: usize = 0x202;
const INIT_SIZE_AT: usize = 0x260;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Elf,
    /// `init_size`: the memory the kernel needs once decompressed (0 if
    /// the header given was too short to say).
    BzImage {
        init_size: u64,
    },
}

/// The format of a file starting with `head` (up to [`HEADER_LEN`] bytes).
pub fn format(head: &[u8]) -> Option<Format> {
    if head.starts_with(b"\x7fELF") {
        return Some(Format::Elf);
    }
    if head.get(BZIMAGE_MAGIC_AT..BZIMAGE_MAGIC_AT + 4) != Some(b"HdrS") {
        return None;
    }
    let init_size = head
        .get(INIT_SIZE_AT..INIT_SIZE_AT + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b| u64::from(u32::from_le_bytes(b)));
    Some(Format::BzImage { init_size })
}

/// Read the start of `reader` and say what it holds.
pub fn read_format(reader: &mut impl Read) -> std::io::Result<Option<Format>> {
    let mut head = Vec::with_capacity(HEADER_LEN);
    reader.take(HEADER_LEN as u64).read_to_end(&mut head)?;
    Ok(format(&head))
}

/// [`read_format`] of the file at `path` (`None` also when it cannot be read).
pub fn file_format(path: &Path) -> Option<Format> {
    std::fs::File::open(path)
        .and_then(|mut f| read_format(&mut f))
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_bzimage_and_the_rest() {
        assert_eq!(format(b"\x7fELF\x02\x01"), Some(Format::Elf));
        let mut bz = vec![0u8; HEADER_LEN];
        bz[BZIMAGE_MAGIC_AT..BZIMAGE_MAGIC_AT + 4].copy_from_slice(b"HdrS");
        bz[INIT_SIZE_AT..INIT_SIZE_AT + 4].copy_from_slice(&(51u32 << 20).to_le_bytes());
        assert_eq!(
            format(&bz),
            Some(Format::BzImage {
                init_size: 51 << 20
            })
        );
        assert_eq!(format(&bz[..0x206]), Some(Format::BzImage { init_size: 0 }));
        assert_eq!(format(&bz[..0x205]), None);
        assert_eq!(format(b""), None);
        assert_eq!(format(b"\x7fEL"), None);
        assert_eq!(format(b"#!/bin/sh\n"), None);
        assert_eq!(format(&[0u8; 0x300]), None);
    }

    #[test]
    fn the_hosts_kernel_if_any_is_a_bzimage_with_its_size() {
        let Some(k) = std::fs::read_dir("/boot").ok().and_then(|d| {
            d.flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        }) else {
            isola_test_support::host_has("a kernel in /boot (scripts/setup installs one)", false);
            return;
        };
        match file_format(&k.path()) {
            Some(Format::BzImage { init_size }) => assert!(init_size > 1 << 20),
            other => panic!("{}: {other:?}", k.path().display()),
        }
    }
}
