//! The ELF vmlinux inside a bzImage, so that a kernel with a PVH note is
//! entered through it rather than through the bzImage's own decompressor,
//! which runs in the guest (seconds under PVM's instruction emulator).
//! Extracted once per kernel file and cached under `vm/vmlinux/`.
//!
//! A bzImage's setup header locates the compressed kernel (`payload_offset`
//! and `payload_length`, protocol 2.08+); its last 4 bytes are the size it
//! unpacks to. Debian compresses with LZ4 in the kernel's legacy framing
//! (magic 0x184c2102, then blocks of up to 8 MiB, each behind its
//! compressed length); gzip and zstd payloads are unpacked too.

use std::io::Read;
use std::path::{Path, PathBuf};

const SETUP_SECTS_AT: usize = 0x1f1;
const VERSION_AT: usize = 0x206;
const PAYLOAD_AT: usize = 0x248;
const LZ4_LEGACY: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];
const LZ4_BLOCK: usize = 8 << 20;
/// Far above any kernel: a payload claiming more is refused, not allocated.
const MAX_VMLINUX: usize = 512 << 20;
/// Cached kernels kept; older ones are removed as new ones are added.
const KEEP: usize = 4;

/// Why a bzImage's vmlinux was not taken out (it is then booted as it is).
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("cannot read the kernel")]
    Read(#[source] std::io::Error),
    #[error("not a bzImage")]
    NotABzImage,
    #[error("its boot protocol is older than 2.08 (no payload fields)")]
    OldProtocol,
    #[error("truncated setup header")]
    TruncatedHeader,
    #[error("its payload lies beyond the end of the file")]
    PayloadBeyondEnd,
    #[error("the payload does not end with a plausible uncompressed size")]
    NoSize,
    #[error(
        "its kernel is compressed with a method isola does not unpack (it does LZ4, gzip and zstd)"
    )]
    Compression,
    #[error("the LZ4 stream ends early")]
    Lz4Early,
    #[error("an LZ4 block runs past the end of the stream")]
    Lz4PastEnd,
    #[error("an empty LZ4 block")]
    Lz4Empty,
    #[error("LZ4")]
    Lz4(#[source] lz4_flex::block::DecompressError),
    #[error("unpacking the kernel")]
    Unpack(#[source] std::io::Error),
    #[error("the unpacked kernel is not an ELF file")]
    NotElf,
    #[error("its vmlinux has no PVH note")]
    NoPvhNote,
}

/// The cached ELF for the bzImage at `kernel` if it has a PVH note,
/// extracting it on first use; None when the bzImage should be booted as
/// it is (no PVH note, a compression isola cannot unpack, an error).
pub fn for_boot(state_dir: &Path, kernel: &Path) -> Option<PathBuf> {
    let dir = state_dir.join("vm/vmlinux");
    let key = crate::file_key::key(kernel)?;
    let elf = dir.join(format!("{key}.elf"));
    let without = dir.join(format!("{key}.none"));
    if elf.is_file() {
        return Some(elf);
    }
    if without.exists() {
        return None;
    }
    std::fs::create_dir_all(&dir).ok()?;
    let extracted = std::fs::read(kernel)
        .map_err(ExtractError::Read)
        .and_then(|b| extract(&b))
        .and_then(|vmlinux| {
            if has_pvh_note(&vmlinux) {
                Ok(vmlinux)
            } else {
                Err(ExtractError::NoPvhNote)
            }
        });
    let (path, bytes) = match extracted {
        Ok(vmlinux) => (elf, vmlinux),
        Err(why) => {
            let cause = std::error::Error::source(&why)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            tracing::debug!("booting {} as a bzImage: {why}{cause}", kernel.display());
            (without, Vec::new())
        }
    };
    let tmp = tempfile::NamedTempFile::new_in(&dir).ok()?;
    std::fs::write(tmp.path(), &bytes).ok()?;
    tmp.persist(&path).ok()?;
    crate::file_key::trim(&dir, KEEP);
    (!bytes.is_empty()).then_some(path)
}

/// The uncompressed vmlinux of a bzImage.
pub fn extract(bzimage: &[u8]) -> Result<Vec<u8>, ExtractError> {
    let payload = payload(bzimage)?;
    let size = payload
        .len()
        .checked_sub(4)
        .map(|at| u32::from_le_bytes(payload[at..].try_into().unwrap_or_default()) as usize)
        .filter(|&n| n > 0 && n <= MAX_VMLINUX)
        .ok_or(ExtractError::NoSize)?;
    let vmlinux = if payload.starts_with(&LZ4_LEGACY) {
        lz4_legacy(&payload[4..], size)?
    } else if payload.starts_with(&[0x1f, 0x8b]) {
        read_all(flate2::read::GzDecoder::new(payload), size)?
    } else if payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        // One frame: the payload's size trailer follows it.
        let decoder = zstd::stream::read::Decoder::new(payload)
            .map_err(ExtractError::Unpack)?
            .single_frame();
        read_all(decoder, size)?
    } else {
        return Err(ExtractError::Compression);
    };
    if !vmlinux.starts_with(b"\x7fELF") {
        return Err(ExtractError::NotElf);
    }
    Ok(vmlinux)
}

/// The compressed kernel, from the setup header's fields.
fn payload(bzimage: &[u8]) -> Result<&[u8], ExtractError> {
    let u16_at = |at: usize| {
        bzimage
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bzimage
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if bzimage.get(0x202..0x206) != Some(b"HdrS") {
        return Err(ExtractError::NotABzImage);
    }
    if u16_at(VERSION_AT).unwrap_or(0) < 0x208 {
        return Err(ExtractError::OldProtocol);
    }
    let setup_sects = match bzimage.get(SETUP_SECTS_AT) {
        Some(0) => 4,
        Some(&n) => usize::from(n),
        None => return Err(ExtractError::TruncatedHeader),
    };
    let (offset, length) = (u32_at(PAYLOAD_AT), u32_at(PAYLOAD_AT + 4));
    let start = (setup_sects + 1) * 512 + offset.ok_or(ExtractError::TruncatedHeader)?;
    let end = start + length.ok_or(ExtractError::TruncatedHeader)?;
    bzimage
        .get(start..end)
        .ok_or(ExtractError::PayloadBeyondEnd)
}

/// The kernel's legacy LZ4 stream: blocks behind a u32 length each, until
/// `size` bytes are out (the stream's trailer, the size, would otherwise
/// read as one more length).
fn lz4_legacy(mut stream: &[u8], size: usize) -> Result<Vec<u8>, ExtractError> {
    let mut out = vec![0u8; size];
    let mut done = 0;
    while done < size {
        let len = stream
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or(ExtractError::Lz4Early)?;
        if len.to_le_bytes()[..4] == LZ4_LEGACY {
            // A concatenated stream: its magic, then blocks as before.
            stream = &stream[4..];
            continue;
        }
        let block = stream.get(4..4 + len).ok_or(ExtractError::Lz4PastEnd)?;
        let room = (size - done).min(LZ4_BLOCK);
        let n = lz4_flex::block::decompress_into(block, &mut out[done..done + room])
            .map_err(ExtractError::Lz4)?;
        if n == 0 {
            return Err(ExtractError::Lz4Empty);
        }
        done += n;
        stream = &stream[4 + len..];
    }
    Ok(out)
}

fn read_all(reader: impl Read, size: usize) -> Result<Vec<u8>, ExtractError> {
    let mut out = Vec::with_capacity(size);
    reader
        .take(MAX_VMLINUX as u64)
        .read_to_end(&mut out)
        .map_err(ExtractError::Unpack)?;
    Ok(out)
}

/// Whether an ELF64 image has Xen's PHYS32_ENTRY note, the PVH entry point.
pub fn has_pvh_note(elf: &[u8]) -> bool {
    super::elf_notes::has(elf, super::elf_notes::PVH)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bzImage around `payload`: just the setup header's fields read here.
    fn bzimage(payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 5 * 512];
        b[SETUP_SECTS_AT] = 4;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[VERSION_AT..VERSION_AT + 2].copy_from_slice(&0x20fu16.to_le_bytes());
        b[PAYLOAD_AT..PAYLOAD_AT + 4].copy_from_slice(&16u32.to_le_bytes());
        b[PAYLOAD_AT + 4..PAYLOAD_AT + 8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(&[0xaa; 16]);
        b.extend_from_slice(payload);
        b.extend_from_slice(&[0xbb; 100]);
        b
    }

    fn vmlinux() -> Vec<u8> {
        let mut v = b"\x7fELF\x02\x01".to_vec();
        v.extend((0..20_000u32).flat_map(|i| (i % 251).to_le_bytes()));
        v
    }

    fn with_size(mut payload: Vec<u8>, size: usize) -> Vec<u8> {
        payload.extend_from_slice(&(size as u32).to_le_bytes());
        payload
    }

    #[test]
    fn lz4_legacy_gzip_and_zstd_payloads_unpack() {
        let v = vmlinux();
        let block = lz4_flex::block::compress(&v);
        let mut lz4 = LZ4_LEGACY.to_vec();
        lz4.extend_from_slice(&(block.len() as u32).to_le_bytes());
        lz4.extend_from_slice(&block);
        // Compared as booleans: a failure must not print 80 KB of bytes.
        let same =
            |r: Result<Vec<u8>, ExtractError>| r.map(|got| got == v).map_err(|e| e.to_string());
        assert_eq!(same(extract(&bzimage(&with_size(lz4, v.len())))), Ok(true));

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &v).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(same(extract(&bzimage(&with_size(gz, v.len())))), Ok(true));

        let zst = zstd::encode_all(&v[..], 1).unwrap();
        assert_eq!(same(extract(&bzimage(&with_size(zst, v.len())))), Ok(true));
    }

    #[test]
    fn bad_payloads_are_refused_in_words() {
        let v = vmlinux();
        let xz = with_size(b"\xfd7zXZ\0 data".to_vec(), v.len());
        assert!(extract(&bzimage(&xz))
            .unwrap_err()
            .to_string()
            .contains("LZ4, gzip and zstd"));
        let mut lz4 = LZ4_LEGACY.to_vec();
        lz4.extend_from_slice(&1000u32.to_le_bytes());
        lz4.extend_from_slice(b"short");
        let err = extract(&bzimage(&with_size(lz4, v.len())))
            .unwrap_err()
            .to_string();
        assert!(err.contains("past the end"), "{err}");
        let mut truncated = bzimage(b"payload\0\0\0\x01");
        truncated.truncate(5 * 512 + 20);
        assert!(extract(&truncated)
            .unwrap_err()
            .to_string()
            .contains("beyond the end"));
        assert_eq!(
            extract(b"not a kernel").map_err(|e| e.to_string()),
            Err("not a bzImage".into())
        );
    }
}
