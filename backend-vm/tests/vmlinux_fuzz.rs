//! Property test (the bzImage reader's fuzz target): whatever a kernel file
//! holds — a setup header with any payload fields, a payload claiming LZ4,
//! gzip or zstd followed by anything — taking the vmlinux out of it returns
//! an error or an ELF, and neither panics nor allocates without bound.

use isola_vm::kernel::vmlinux;
use proptest::prelude::*;

/// A bzImage with the given payload fields and bytes after the header.
fn bzimage(setup_sects: u8, offset: u32, length: u32, body: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 0x264];
    b[0x1f1] = setup_sects;
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
    b[0x248..0x24c].copy_from_slice(&offset.to_le_bytes());
    b[0x24c..0x250].copy_from_slice(&length.to_le_bytes());
    b.extend_from_slice(body);
    b
}

fn magic() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![0x02, 0x21, 0x4c, 0x18]),
        Just(vec![0x1f, 0x8b]),
        Just(vec![0x28, 0xb5, 0x2f, 0xfd]),
        Just(vec![]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_kernel_file_gives_an_elf_or_an_error(
        setup_sects in 0u8..8,
        offset in 0u32..64,
        length in prop_oneof![0u32..5000, Just(u32::MAX)],
        magic in magic(),
        body in proptest::collection::vec(any::<u8>(), 0..5000),
    ) {
        let start = (usize::from(setup_sects.max(1)) + 1) * 512 + offset as usize;
        let mut bytes = vec![0u8; start.saturating_sub(0x264)];
        bytes.extend_from_slice(&magic);
        bytes.extend_from_slice(&body);
        if let Ok(elf) = vmlinux::extract(&bzimage(setup_sects, offset, length, &bytes)) {
            prop_assert!(elf.starts_with(b"\x7fELF"));
        }
        let _ = vmlinux::has_pvh_note(&[&b"\x7fELF\x02\x01"[..], &body].concat());
    }
}
