//! ELF notes of a kernel: Xen's PVH entry note, and the note that marks
//! isola's PVM test kernel. Read from a file's headers and note segments
//! only, so asking costs a few small reads whatever the kernel's size.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Xen's PHYS32_ENTRY note: the kernel has a PVH entry point.
pub const PVH: (&[u8], u32) = (b"Xen", 18);
/// isola's PVM test kernel (backend-vm/kernel/pvm/0005-elf-note.patch).
pub const PVM_TEST_KERNEL: (&[u8], u32) = (b"isola", 0x1501a);

const PT_NOTE: u32 = 4;
/// A note segment larger than this is not a kernel's; it is not read.
const MAX_NOTES: u64 = 1 << 20;

/// Whether the ELF64 image `elf` has the note `(name, kind)`.
pub fn has(elf: &[u8], note: (&[u8], u32)) -> bool {
    let read = |at: u64, n: u64| {
        let at = usize::try_from(at).ok()?;
        elf.get(at..at.checked_add(usize::try_from(n).ok()?)?)
            .map(<[u8]>::to_vec)
    };
    scan(read, note)
}

/// [`has`] for the file at `path` (false when it cannot be read).
pub fn file_has(path: &Path, note: (&[u8], u32)) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let read = |at: u64, n: u64| {
        let mut buf = vec![0; usize::try_from(n).ok()?];
        file.read_exact_at(&mut buf, at).ok()?;
        Some(buf)
    };
    scan(read, note)
}

/// Walks the program headers through `read(offset, len)`; offsets come from
/// the file, so every sum is checked.
fn scan(read: impl Fn(u64, u64) -> Option<Vec<u8>>, (name, kind): (&[u8], u32)) -> bool {
    let Some(header) = read(0, 64) else {
        return false;
    };
    // ELFCLASS64, little-endian.
    if !header.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let phoff = u64_at(&header, 0x20);
    let (phentsize, phnum) = (u16_at(&header, 0x36), u16_at(&header, 0x38));
    if phentsize < 56 {
        return false;
    }
    let Some(table) = read(phoff, phentsize * phnum) else {
        return false;
    };
    table.chunks_exact(phentsize as usize).any(|ph| {
        let (offset, size) = (u64_at(ph, 8), u64_at(ph, 32));
        u32_at(ph, 0) == PT_NOTE as u64
            && size <= MAX_NOTES
            && read(offset, size).is_some_and(|notes| segment_has(&notes, name, kind))
    })
}

/// Whether a note segment holds a note named `name` (without its NUL) of `kind`.
fn segment_has(mut notes: &[u8], name: &[u8], kind: u32) -> bool {
    while notes.len() >= 12 {
        let (namesz, descsz) = (u32_at(notes, 0) as usize, u32_at(notes, 4) as usize);
        let name_end = 12 + namesz.div_ceil(4) * 4;
        let this = notes.get(12..12 + namesz);
        if u32_at(notes, 8) == u64::from(kind)
            && this.and_then(|n| n.strip_suffix(b"\0")) == Some(name)
        {
            return true;
        }
        let next = name_end + descsz.div_ceil(4) * 4;
        match notes.get(next..) {
            Some(rest) => notes = rest,
            None => break,
        }
    }
    false
}

fn u16_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 2)
        .map_or(0, |b| u64::from(u16::from_le_bytes([b[0], b[1]])))
}

fn u32_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 4).map_or(0, |b| {
        u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    })
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 header, one PT_NOTE program header and its notes.
    fn elf_with_notes(notes: &[(&[u8], u32, &[u8])]) -> Vec<u8> {
        let mut segment = Vec::new();
        for (name, kind, desc) in notes {
            let mut name = name.to_vec();
            name.push(0);
            segment.extend((name.len() as u32).to_le_bytes());
            segment.extend((desc.len() as u32).to_le_bytes());
            segment.extend(kind.to_le_bytes());
            segment.extend(&name);
            segment.resize(segment.len().div_ceil(4) * 4, 0);
            segment.extend(*desc);
            segment.resize(segment.len().div_ceil(4) * 4, 0);
        }
        let mut elf = vec![0u8; 64 + 56];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[64..68].copy_from_slice(&PT_NOTE.to_le_bytes());
        elf[72..80].copy_from_slice(&120u64.to_le_bytes());
        elf[96..104].copy_from_slice(&(segment.len() as u64).to_le_bytes());
        elf.extend(segment);
        elf
    }

    #[test]
    fn finds_a_note_by_name_and_kind() {
        let elf = elf_with_notes(&[(b"GNU", 3, b"build-id"), (b"isola", 0x1501a, b"pvm")]);
        assert!(has(&elf, PVM_TEST_KERNEL));
        assert!(!has(&elf, PVH));
        assert!(!has(&elf, (b"isol", 0x1501a)));
        assert!(!has(&elf, (b"isola", 18)));
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), &elf).unwrap();
        assert!(file_has(t.path(), PVM_TEST_KERNEL));
        assert!(!file_has(t.path(), PVH));
    }

    #[test]
    fn truncated_or_lying_headers_are_no_note() {
        let elf = elf_with_notes(&[(b"Xen", 18, &[1, 2, 3, 4])]);
        assert!(has(&elf, PVH));
        for len in 0..elf.len() {
            assert!(!has(&elf[..len], PVH), "{len}");
        }
        let mut lying = elf.clone();
        lying[96..104].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(!has(&lying, PVH));
        lying = elf.clone();
        lying[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(!has(&lying, PVH));
        // A note whose sizes run past the segment ends the walk.
        lying = elf;
        lying[120..124].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(!has(&lying, PVH));
        assert!(!file_has(Path::new("/nonexistent"), PVH));
    }
}
