//! The ELF vmlinux taken out of a real bzImage: the Debian kernel the VM
//! tests boot (scripts/setup installs linux-image-cloud-amd64), whose
//! payload is LZ4 in the kernel's legacy framing.

use std::path::PathBuf;

use isola_test_support::host_has;
use isola_vm::kernel::{self, format as kernel_format, vmlinux};

/// The kernel in /boot; under CI its absence fails the test.
fn boot_kernel() -> Option<PathBuf> {
    let found = kernel::in_boot();
    host_has(
        "a kernel in /boot (scripts/setup installs linux-image-cloud-amd64)",
        found.is_some(),
    );
    found
}

#[test]
fn the_debian_bzimage_unpacks_to_its_vmlinux_with_a_pvh_note() {
    let Some(path) = boot_kernel() else {
        return;
    };
    let bzimage = std::fs::read(&path).unwrap();
    assert!(matches!(
        kernel_format::format(&bzimage),
        Some(kernel_format::Format::BzImage { .. })
    ));
    let elf = vmlinux::extract(&bzimage).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The payload's last 4 bytes: the size the kernel unpacks to.
    let trailer = {
        let setup = (usize::from(bzimage[0x1f1]) + 1) * 512;
        let offset = u32::from_le_bytes(bzimage[0x248..0x24c].try_into().unwrap()) as usize;
        let length = u32::from_le_bytes(bzimage[0x24c..0x250].try_into().unwrap()) as usize;
        let end = setup + offset + length;
        u32::from_le_bytes(bzimage[end - 4..end].try_into().unwrap()) as usize
    };
    assert_eq!(elf.len(), trailer);
    assert!(elf.starts_with(b"\x7fELF\x02\x01"));
    assert!(
        vmlinux::has_pvh_note(&elf),
        "{} has no PVH note",
        path.display()
    );
}

#[test]
fn a_bzimage_is_unpacked_once_then_taken_from_the_cache() {
    let Some(path) = boot_kernel() else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let first = vmlinux::for_boot(state.path(), &path).expect("an ELF for the Debian kernel");
    let made = std::fs::metadata(&first).unwrap().modified().unwrap();
    let again = vmlinux::for_boot(state.path(), &path).unwrap();
    assert_eq!(first, again);
    assert_eq!(std::fs::metadata(&again).unwrap().modified().unwrap(), made);
    // A file that is not a bzImage is booted as it is, and remembered so.
    let other = state.path().join("not-a-kernel");
    std::fs::write(&other, b"hello").unwrap();
    assert_eq!(vmlinux::for_boot(state.path(), &other), None);
    let entries = std::fs::read_dir(state.path().join("vm/vmlinux"))
        .unwrap()
        .count();
    assert_eq!(entries, 2, "one ELF, one negative entry");
}
