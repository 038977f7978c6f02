//! The layer unpacker on its own: what it keeps (modes, owners, times, links,
//! devices, xattrs), how whiteouts land for overlayfs, and the symlink tricks
//! that must not reach outside the layer.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::fixture::Tar;
use isola_core::image::unpack::{unpack, UnpackError, OPAQUE_XATTR};
use tar::EntryType;

fn unpack_into(tar: Vec<u8>) -> (tempfile::TempDir, Result<(), UnpackError>) {
    let tmp = tempfile::Builder::new()
        .prefix("isola-test-unpack-")
        .tempdir()
        .unwrap();
    fs::create_dir(tmp.path().join("layer")).unwrap();
    let r = unpack(&tar[..], &tmp.path().join("layer")).map(|_| ());
    (tmp, r)
}

#[test]
fn keeps_what_containers_need() {
    if !common::root_user() {
        return;
    }
    let tar = Tar::new()
        .dir("bin", 0o755)
        .file_with("bin/su", b"#!/bin/sh\n", 0o4755, 0, 0, 1_234_567_890)
        .file_with("home", b"", 0o640, 1000, 1001, 1_500_000_000)
        .dir("ro", 0o555)
        .file("ro/inside", b"x")
        .symlink("bin/sh", "busybox")
        .symlink("abs", "/etc/passwd")
        .hardlink("bin/su2", "bin/su")
        .node("dev-null", EntryType::Char, 1, 3, 0o666)
        .node("fifo", EntryType::Fifo, 0, 0, 0o600)
        .with_xattr("cap", b"bin", "user.isola", b"kept")
        .with_xattr("forged", b"bin", "trusted.overlay.redirect", b"/etc")
        .build();
    let (tmp, r) = unpack_into(tar);
    r.unwrap();
    let l = tmp.path().join("layer");
    let m = fs::symlink_metadata(l.join("bin/su")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4755, "setuid survives");
    assert_eq!(m.mtime(), 1_234_567_890);
    let m = fs::symlink_metadata(l.join("home")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (1000, 1001, 0o640));
    assert_eq!(
        fs::metadata(l.join("ro")).unwrap().permissions().mode() & 0o777,
        0o555
    );
    assert_eq!(
        fs::read(l.join("ro/inside")).unwrap(),
        b"x",
        "a read-only dir still gets its children"
    );
    assert_eq!(
        fs::read_link(l.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read_link(l.join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        fs::metadata(l.join("bin/su2")).unwrap().ino(),
        fs::metadata(l.join("bin/su")).unwrap().ino()
    );
    let m = fs::symlink_metadata(l.join("dev-null")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), nix::sys::stat::makedev(1, 3));
    assert!(fs::symlink_metadata(l.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        xattr::get(l.join("cap"), "user.isola").unwrap().as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(
        xattr::get(l.join("forged"), "trusted.overlay.redirect").unwrap(),
        None,
        "overlay metadata can't be forged"
    );
}

#[test]
fn whiteouts_take_the_form_overlayfs_reads() {
    if !common::root_user() {
        return;
    }
    let tar = Tar::new()
        .dir("d", 0o755)
        .file("d/.wh..wh..opq", b"")
        .file("d/new", b"n")
        .file(".wh.gone", b"")
        .file("d/.wh.old", b"")
        .file(".wh..wh.plnk", b"")
        .build();
    let (tmp, r) = unpack_into(tar);
    r.unwrap();
    let l = tmp.path().join("layer");
    for w in ["gone", "d/old"] {
        let m = fs::symlink_metadata(l.join(w)).unwrap();
        assert!(
            m.file_type().is_char_device() && m.rdev() == 0,
            "{w} is a 0/0 whiteout"
        );
    }
    assert_eq!(
        xattr::get(l.join("d"), OPAQUE_XATTR).unwrap().as_deref(),
        Some(&b"y"[..])
    );
    assert!(!l.join("d/.wh..wh..opq").exists() && !l.join(".wh..wh.plnk").exists());
    assert_eq!(fs::read(l.join("d/new")).unwrap(), b"n");
    // ".wh.." would name the parent directory.
    let (_tmp, r) = unpack_into(
        Tar::new()
            .raw(b"d/.wh...", EntryType::Regular, b"", None)
            .build(),
    );
    assert!(matches!(r, Err(UnpackError::Escape { .. })), "{r:?}");
}

#[test]
fn later_entries_replace_earlier_ones_without_following_them() {
    if !common::root_user() {
        return;
    }
    let outside = tempfile::Builder::new()
        .prefix("isola-test-outside-")
        .tempdir()
        .unwrap();
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(outside.path().join("keep"), "keep").unwrap();
    let out = outside.path().to_str().unwrap();
    // A file replaced by a symlink, then the symlink replaced by a file: the
    // write goes to the layer, never to the link's target.
    let tar = Tar::new()
        .file("f", b"1")
        .symlink("f", &format!("{out}/keep"))
        .file("f", b"2")
        .build();
    let (tmp, r) = unpack_into(tar);
    r.unwrap();
    assert_eq!(fs::read(tmp.path().join("layer/f")).unwrap(), b"2");
    assert_eq!(fs::read(outside.path().join("keep")).unwrap(), b"keep");

    // A directory replaced by a symlink to the outside: later writes below it
    // are refused, and the mode the directory entry asked for is not applied
    // through the link.
    let tar = Tar::new()
        .dir("d", 0o700)
        .file("d/a", b"a")
        .symlink("d", out)
        .file("d/b", b"b")
        .build();
    let (_tmp, r) = unpack_into(tar);
    assert!(
        matches!(r, Err(UnpackError::ThroughSymlink { .. })),
        "{r:?}"
    );
    let tar = Tar::new().dir("d", 0o700).symlink("d", out).build();
    let (_tmp, r) = unpack_into(tar);
    r.unwrap();
    assert_eq!(
        fs::metadata(outside.path()).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1);
}
